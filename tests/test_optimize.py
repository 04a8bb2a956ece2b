"""Optimising inputs: the objective rises, class models are recognised, runs are reproducible
and batch-invariant, inversion loses similarity with depth, and the model is left untouched."""
import pytest
import torch

import seethrough as see
from seethrough.optimize import objectives as O
from seethrough.testing import untouched


@pytest.fixture(scope="module")
def lenet():
    return see.zoo.load("lenet-digits")[0]


@pytest.fixture(scope="module")
def digits():
    x, y = see.zoo.digits("test")
    return x[:4], y[:4]


def _tiny():
    g = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU(inplace=True), torch.nn.Conv2d(6, 8, 3),
                              torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return net


def test_class_models_of_every_digit_are_classified_as_their_class(lenet):
    v = see.visualize(lenet, [f"logit:{c}" for c in range(10)], size=32, param="pixel", transforms=None, steps=30, seed=0)
    assert (v.trace[:, -1] > v.trace[:, 0] + 5).all()
    assert lenet(v.x).argmax(1).tolist() == list(range(10))
    assert v.x.min() >= 0 and v.x.max() <= 1


def test_fourier_with_transforms_and_priors_raises_the_objective_and_hits_the_class(lenet):
    v = see.visualize(lenet, ["logprob:2", "logprob:7"], size=32, param="fourier", transforms="standard",
                      priors={"tv": 0.5, "l2": 0.1, "edge": 0.5}, blur_every=10, steps=40, seed=1)
    assert (v.trace[:, -10:].mean(1) > v.trace[:, :5].mean(1)).all()
    assert lenet(v.x).argmax(1).tolist() == [2, 7]


def test_channel_neuron_direction_and_layer_objectives_rise(lenet):
    objs = [O.channel("conv2", 3), O.neuron("relu1", 2, 5, 7), O.direction("fc1", torch.linspace(-1, 1, 120)),
            O.layer_l2("relu2"), O.neuron("fc2", 10)]
    v = see.visualize(lenet, objs, size=32, param="pixel", transforms=None, steps=15, seed=0)
    assert (v.trace[:, -1] > v.trace[:, 0]).all(), v.trace[:, [0, -1]]


def test_seeded_runs_are_reproducible_and_seeds_differ(lenet):
    kw = dict(size=32, param="fourier", steps=8, priors={"tv": 0.1})
    a = see.visualize(lenet, "channel:conv2:5", seed=3, **kw)
    b = see.visualize(lenet, "channel:conv2:5", seed=3, **kw)
    c = see.visualize(lenet, "channel:conv2:5", seed=4, **kw)
    assert torch.equal(a.x, b.x) and torch.equal(a.trace, b.trace)
    assert not torch.allclose(a.x, c.x, atol=1e-3)


def test_batch_invariance(lenet):
    objs = ["logit:1", "channel:conv2:0", "neuron:relu1:3", "logit:9"]
    kw = dict(size=32, param="fourier", steps=6, seed=0)
    one = see.visualize(lenet, objs, batch_size=1, **kw)
    together = see.visualize(lenet, objs, batch_size=4, **kw)
    assert torch.allclose(one.x, together.x, atol=1e-5)
    assert torch.allclose(one.trace, together.trace, atol=1e-4)


def test_starting_from_an_image_keeps_it_and_traces_its_score(lenet, digits):
    x, y = digits
    v = see.visualize(lenet, [f"logit:{c}" for c in y.tolist()], init=x, param="pixel", transforms=None, steps=1, step_size=1e-6)
    assert torch.allclose(v.x, x, atol=2e-4)
    with torch.no_grad():
        ref = lenet(x).gather(1, y.view(-1, 1)).squeeze(1)
    assert torch.allclose(v.trace[:, 0], ref, atol=1e-2)


def test_diversity_term_pushes_the_batch_apart(lenet):
    kw = dict(n_samples=3, size=32, param="pixel", transforms=None, steps=20, seed=0)
    plain = see.visualize(lenet, "channel:relu2:4", **kw)
    diverse = see.visualize(lenet, "channel:relu2:4", diversity=50.0, **kw)

    def div(x):
        with see.hooks(lenet, capture="relu2") as rec, torch.no_grad():
            lenet(x)
        return O.diversity("relu2").score({"relu2": rec["relu2"]}, None).mean()

    assert div(diverse.x) > div(plain.x) + 0.05


def test_inversion_reduces_the_distance_and_similarity_falls_with_depth(lenet, digits):
    x, _ = digits
    res = see.invert(lenet, x, ["relu1", "relu2", "fc3"], steps=60, tv=0.1, seed=0)  # digits want a small TV weight
    for r in res:
        assert (r.trace[:, -1] < 0.3 * r.trace[:, 0]).all(), (r.layer, r.trace[:, [0, -1]])
    sims = [r.similarity.mean().item() for r in res]
    assert sims[0] > sims[1] > sims[2], sims
    assert sims[0] > 0.75
    # the similarity is SSIM with the original, computed independently here
    assert torch.allclose(res[0].similarity, see.optimize.ssim(res[0].x, x))


def test_dream_amplifies_the_layer_and_stays_an_image():
    net = _tiny()
    x = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    d = see.dream(net, x, ["1", "3"], steps=6, octaves=2, step_size=0.02, jitter=3, seed=0)
    assert d.x.shape == x.shape and 0 <= d.x.min() and d.x.max() <= 1
    assert (d.trace[:, -1] > 1.5 * d.trace[:, 0]).all()
    alone = see.dream(net, x, ["1", "3"], steps=6, octaves=2, step_size=0.02, jitter=3, seed=0, batch_size=1)
    assert torch.allclose(alone.x, d.x, atol=1e-5)


def test_dream_gradient_is_the_activation():
    # ∂ mean(h²)/∂h = 2h / size: DeepDream's "gradient = h".
    h = torch.randn(2, 3, 4, 4, requires_grad=True)
    s = O.layer_l2("l").score({"l": h}, None)
    (g,) = torch.autograd.grad(s.sum(), h)
    assert torch.allclose(g, 2 * h / 48)


def test_objectives_match_brute_force_and_combine():
    h = torch.randn(3, 5, 6, 7, generator=torch.Generator().manual_seed(0))
    out = torch.randn(3, 10, generator=torch.Generator().manual_seed(1))
    acts = {"l": h}
    assert torch.equal(O.neuron("l", 4, 1, 2).score(acts, out), torch.stack([h[i, 4, 1, 2] for i in range(3)]))
    assert torch.allclose(O.channel("l", 2).score(acts, out), torch.stack([h[i, 2].sum() / 42 for i in range(3)]))
    v = torch.randn(5, dtype=torch.float64)
    ref = torch.stack([sum(float(v[c]) * h[i, c].double() for c in range(5)).mean() / v.norm() for i in range(3)])
    assert torch.allclose(O.direction("l", v).score(acts, out).double(), ref, atol=1e-5)
    combo = O.parse("2*logit:3 - logprob:1 + channel:l:0")
    want = 2 * out[:, 3] - torch.log_softmax(out, 1)[:, 1] + h[:, 0].mean((1, 2))
    assert torch.allclose(combo.score(acts, out), want, atol=1e-6)
    assert combo.layers == ("l",)


def test_bad_objective_strings_are_clear_errors():
    for bad, text in [("logit", "cannot parse"), ("logit:x", "integers"), ("pixel:3", "cannot parse"),
                      ("channel:conv1", "expected channel:LAYER:C"), ("neuron:conv1:1:2", "LAYER:C:Y:X"), ("", "objective string")]:
        with pytest.raises((ValueError, TypeError), match=text):
            O.parse(bad)


def test_bad_layers_channels_and_positions_raise_and_leave_the_model_untouched(lenet):
    lenet.fc1.weight.grad = torch.ones_like(lenet.fc1.weight)  # a stray .grad must survive too
    try:
        kw = dict(size=32, steps=2, transforms=None)
        for obj, text in [("channel:conv2:16", "channel 16 is out of range: layer 'conv2' has 16 channels"),
                          ("neuron:fc1:3:1:1", "no spatial extent"), ("neuron:conv1:0:40:1", "outside layer 'conv1'"),
                          ("channel:conv9:1", "unknown layer 'conv9'"), ("logit:10", "class 10 is out of range")]:
            with untouched(lenet, allow_raise=ValueError), pytest.raises(ValueError, match=text):
                see.visualize(lenet, obj, **kw)
        with pytest.raises(ValueError, match="rejected an input"):
            see.visualize(lenet, "logit:1", size=64, steps=1)
    finally:
        lenet.fc1.weight.grad = None


def test_visualize_dream_invert_leave_a_model_in_train_mode_untouched():
    net = _tiny().train()
    net[0].weight.requires_grad_(False)
    net[2].weight.grad = torch.full_like(net[2].weight, 0.5)
    x = torch.rand(1, 3, 24, 24)
    with untouched(net):
        see.visualize(net, "logit:1 + channel:2:3", size=24, steps=3, diversity=1.0, n_samples=2)
    with untouched(net):
        see.dream(net, x, "1", steps=2, octaves=2)
    with untouched(net):
        see.invert(net, x, ["1", "3"], steps=4)  # at least one step per coarse scale
    assert net.training and not net[0].weight.requires_grad


def test_efficientnet_class_models_are_classified_as_their_class():
    model, _ = see.zoo.load("efficientnet-lite0")
    v = see.visualize(model, ["logit:37", "logit:258"], size=64, param="fourier", transforms=None, steps=20, seed=0)
    assert (v.trace[:, -1] > v.trace[:, 0] + 50).all()
    with untouched(model), torch.no_grad():
        assert model(v.x).argmax(1).tolist() == [37, 258]


def test_report_section_quick():
    import seethrough.report.sections  # noqa: F401  (registers the sections)
    from seethrough.report.registry import SECTIONS, Context, Figure, Table

    blocks = SECTIONS["optimize"].build(Context(quick=True))
    titles = [b.title for b in blocks if isinstance(b, Figure)]
    assert titles[0] == "lenet-digits: one class model per digit"
    assert {"Pixels without priors vs Fourier with transforms", "DeepDream on chelsea",
            "Feature inversion: what a layer keeps"} <= set(titles)
    contrast = next(b for b in blocks if isinstance(b, Figure) and b.title.startswith("Pixels"))
    assert "adversarial example, not a feature" in contrast.caption
    classes, inversion = [b for b in blocks if isinstance(b, Table)]
    assert [(r[0], r[1]) for r in classes.rows] == [(str(c), str(c)) for c in range(10)]  # asked → predicted
    ssim = [float(r[1]) for r in inversion.rows]
    assert [r[0] for r in inversion.rows][-1] == "fc3" and ssim[0] > ssim[-1] + 0.1  # similarity falls with depth
