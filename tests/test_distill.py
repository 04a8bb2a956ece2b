"""Distillation: fidelity rises with depth on mlp-2d, model labels beat true labels on fidelity, the soft
tree's path probabilities sum to one, paths, hygiene and bad input."""
import pytest
import torch

import seethrough as see
from seethrough.testing import untouched


@pytest.fixture(scope="module")
def mlp():
    return see.zoo.load("mlp-2d")[0]


def test_fidelity_on_a_dense_grid_rises_with_depth_and_becomes_high(mlp):
    data = see.zoo.toy_2d(400)
    axis = torch.linspace(-1.2, 1.2, 80)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        truth = mlp(grid).argmax(1)
    fid = []
    for depth in (1, 4, 8, 12):
        with untouched(mlp):
            s = see.distill(mlp, data, depth=depth, seed=0)
        fid.append((s.predict(grid) == truth).float().mean().item())
    assert fid == sorted(fid) and fid[-1] > 0.9, fid


def test_model_labels_give_a_more_faithful_tree_than_true_labels():
    model, _ = see.zoo.load("lenet-digits")
    x, y = see.zoo.digits("all")
    own = see.distill(model, (x, y), depth=6, n_samples=0)
    true = see.distill(model, (x, y), depth=6, fit_to="labels")
    assert own.fidelity > true.fidelity


def test_soft_tree_path_probabilities_sum_to_one_and_paths_follow_the_max(mlp):
    x, y = see.zoo.toy_2d(200)
    s = see.distill(mlp, (x, y), method="soft-tree", depth=3, epochs=5)
    levels = s.estimator.path_probs(x)
    for level in levels:
        assert torch.allclose(level.sum(1), torch.ones(len(x)), atol=1e-6)
    steps = s.path(x[0])
    assert len(steps) == 3 and all(st.probability >= 0.5 for st in steps)
    leaf = s.estimator.leaf_index(x[:1]).item()
    assert leaf == int("".join(str(int(st.right)) for st in steps), 2)


def test_tree_path_replays_the_prediction(mlp):
    x, y = see.zoo.toy_2d(300)
    s = see.distill(mlp, (x, y), depth=5)
    t = s.estimator.tree_
    for i in range(10):
        steps = s.path(x[i])
        node = 0
        for st in steps:
            assert st.node == node and st.right == (x[i, st.feature].item() > st.threshold)
            node = t.children_right[node] if st.right else t.children_left[node]
        assert t.value[node].argmax() == s.predict(x[i:i + 1]).item()


def test_bad_input(mlp):
    x, y = see.zoo.toy_2d(100)
    with pytest.raises(ValueError, match="depth must be an int >= 1"):
        see.distill(mlp, x, depth=0)
    with pytest.raises(ValueError, match="non-empty"):
        see.distill(mlp, x[:0])
    with pytest.raises(ValueError, match="unknown surrogate method"):
        see.distill(mlp, x, method="forest")
    with untouched(mlp, allow_raise=ValueError):
        see.distill(mlp, x, depth=-1)


def test_cli_distill_influence_tcav_errors_and_output(tmp_path):
    from typer.testing import CliRunner

    from seethrough.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["distill", "--model", "logreg-digits", "--depth", "2", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "fidelity" in res.output and (tmp_path / "tree.png").stat().st_size > 1000
    for args, message in ((["distill", "--depth", "0"], "depth must be an int >= 1"),
                          (["influence", "--test-index", "999"], "out of range"),
                          (["tcav", "--random-sets", "1"], "random_sets must be an int >= 2"),
                          (["influence", "--damping", "-1"], "damping must be")):
        res = runner.invoke(app, args)
        assert res.exit_code == 2 and message in res.output, (args, res.output)
