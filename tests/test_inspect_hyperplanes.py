"""The perceptron's hyperplanes: snapshots reproduce the zoo's mlp-2d training exactly."""
import pytest
import torch
from PIL import Image

from seethrough.zoo.toy2d import mlp_2d, train_mlp_2d
from seethrough.inspect import hyperplanes
from seethrough.inspect.hyperplanes import default_steps
from seethrough.render import hyperplane_frames, save_gif


def test_default_steps_follow_the_course():
    assert default_steps(1000)[:9] == [1, 4, 7, 10, 16, 34, 77, 100, 200] and default_steps(1000)[-1] == 1000


def test_snapshots_reproduce_the_zoo_training_exactly():
    # The zoo's mlp-2d is train_mlp_2d(mlp_2d(0)) for 1000 steps; 250 steps test the same path faster.
    run = hyperplanes(steps=250, snapshots=[1, 250], grid=16)
    zoo_mlp = train_mlp_2d(mlp_2d(0), steps=250)
    last = run.snapshots[-1]
    assert torch.equal(last.weight, zoo_mlp.fc1.weight) and torch.equal(last.bias, zoo_mlp.fc1.bias)
    # The decision regions are the trained model's class-1 probability on the grid.
    x0, x1, y0, y1 = run.extent
    p = torch.tensor([[x1, y1]])
    assert last.regions[-1, -1].item() == pytest.approx(zoo_mlp(p).softmax(1)[0, 1].item(), abs=1e-6)
    assert last.loss < run.snapshots[0].loss and last.accuracy > 0.85


def test_frames_and_gif(tmp_path):
    run = hyperplanes(steps=20, snapshots=[1, 7, 20], grid=10)
    frames = hyperplane_frames(run, size=2, dpi=40)
    path = save_gif(frames, tmp_path / "h.gif")
    assert Image.open(path).n_frames == 3
    assert [s.step for s in run.snapshots] == [1, 7, 20]


def test_bad_input():
    with pytest.raises(ValueError, match="snapshots"):
        hyperplanes(steps=10, snapshots=[20])
    with pytest.raises(ValueError, match="steps must be"):
        hyperplanes(steps=0)
