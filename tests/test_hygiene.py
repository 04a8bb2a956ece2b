"""Every entry point leaves a model in *train mode* exactly as found — also when a forward raises.

The model has BatchNorm (a train-mode forward moves ``running_mean`` and ``num_batches_tracked``),
Dropout (a train-mode forward picks the target at random) and an inplace ReLU; it has
``.grad``s from a training step. The entries are read from the registries (attribution
methods, attacks, metrics) so a newly registered one is covered without editing this file.
"""
from __future__ import annotations

import copy
import inspect

import pytest
import torch
from torch import nn

import seethrough as see
from seethrough.attribution.common import resolve_target
from seethrough.distill import soft_vs_hard
from seethrough.testing import untouched

# A random tiny net gives constant maps and chance-level CAVs, and says so; the values are not the point here.
pytestmark = pytest.mark.filterwarnings("ignore:.*(similarit|undefined).*:RuntimeWarning",
                                        "ignore:the concept CAVs:UserWarning")
CLASSES, SIDE = 4, 16


class Planted(RuntimeError):
    """The failure a test plants in the k-th forward pass."""


class TrainNet(nn.Module):
    """conv → BatchNorm → inplace ReLU → pool → conv → ReLU → GAP → Dropout → linear, on 3×16×16 images.

    Forward passes of every instance — deep copies included (the counter lives on the class) —
    are counted, and the ``fail_at``-th raises :class:`Planted`.
    """

    state = {"calls": 0, "fail_at": None}

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.relu1 = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(8, CLASSES)

    def forward(self, x):
        TrainNet.state["calls"] += 1
        if TrainNet.state["calls"] == TrainNet.state["fail_at"]:
            raise Planted(f"planted failure in forward {TrainNet.state['calls']}")
        h = self.pool(self.relu1(self.bn(self.conv1(x))))
        return self.fc(self.drop(self.flatten(self.gap(self.relu2(self.conv2(h))))))


def trained(seed: int = 0) -> TrainNet:
    """In train mode after three training steps: BN statistics moved (num_batches_tracked = 3), grads set."""
    net = TrainNet(seed).train()
    data = torch.rand(8, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(seed + 1))
    for _ in range(3):
        net(data).sum().backward()
    assert int(net.bn.num_batches_tracked) == 3 and net.fc.weight.grad is not None
    return net


X = torch.rand(2, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(7))
ATTRIBUTION = torch.rand(2, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(8))

# The cheap setting of each expensive option; an entry gets those its function accepts.
# (Methods taking **options are listed by name: their signature does not say what they accept.)
CHEAP = {"n_samples": 4, "steps": 4, "fractions": (0.5,), "patch": 4, "n_random": 1,
         "window": 8, "stride": 8, "progress": False, "eps": 8.0}
METHOD_OPTIONS = {"smoothgrad": {"n_samples": 2}, "smoothgrad-sq": {"n_samples": 2}, "vargrad": {"n_samples": 2},
                  "integrated-gradients": {"steps": 4}, "lime": {"n_samples": 16, "n_segments": 4},
                  "kernel-shap": {"n_samples": 16, "n_segments": 4}}


def cheap(fn) -> dict:
    params = inspect.signature(fn).parameters
    return {k: v for k, v in CHEAP.items() if k in params}


def method_options(name: str) -> dict:
    return {**cheap(see.attribution.METHODS[name].fn), **METHOD_OPTIONS.get(name, {})}


def _entries() -> dict:
    """id → call(model, x). Registries first, then the other entry points that run a forward."""
    out = {}
    for name in see.attribution.METHODS:
        out[f"attribute:{name}"] = lambda m, x, n=name: see.attribute(m, x, n, **method_options(n))
        out[f"attribute:{name}+trust"] = lambda m, x, n=name: see.attribute(m, x, n, trust=True, **method_options(n))
    for name, spec in see.ATTACKS.items():
        opts = {k: CHEAP[k] for k in ("steps", "eps") if k in spec.defaults}
        out[f"attack:{name}"] = lambda m, x, n=name, o=opts: see.attack(m, x, n, progress=False, **o)
    for name in see.metrics.__all__:
        fn = getattr(see.metrics, name)
        if not inspect.isfunction(fn) or list(inspect.signature(fn).parameters)[:1] != ["model"]:
            continue  # pointing_game, auc, mosaic: no model involved
        third = list(inspect.signature(fn).parameters)[2]
        arg = {"attribution": ATTRIBUTION, "method": "saliency"}[third]
        out[f"metrics:{name}"] = lambda m, x, f=fn, a=arg: f(m, x, a, **cheap(f))
    out.update({
        "sanity:randomization": lambda m, x: see.sanity.randomization(m, x, "saliency", progress=False),
        "sanity:randomization-independent": lambda m, x: see.sanity.randomization(m, x, "gradcam", mode="independent",
                                                                                  progress=False),
        "sanity:data_randomization": lambda m, x: see.sanity.data_randomization(m, trained(5), x, "saliency"),
        "predict": lambda m, x: see.predict(m, x, k=2),
        "activations": lambda m, x: see.activations(m, x, ["bn", "relu1", "fc"]),
        "layer_stats": lambda m, x: see.layer_stats(m, x, ["relu1", "relu2"], progress=False),
        "topk": lambda m, x: see.topk(m, x, "relu2", unit=0, k=2, progress=False),
        "embed": lambda m, x: see.embed(m, x, ["gap"], "pca", progress=False),
        "visualize": lambda m, x: see.visualize(m, "logit:1", size=SIDE, channels=3, steps=2),
        "dream": lambda m, x: see.dream(m, x[:1], "relu2", steps=1, octaves=1, jitter=0),
        "invert": lambda m, x: see.invert(m, x[:1], "relu2", steps=4),  # at least 2 steps per coarse scale
        "integrated_gradients": lambda m, x: see.integrated_gradients(m, x, steps=4, progress=False),
        "sphere_test": lambda m, x: see.sphere_test(m, x, x.flip(-1), n_samples=4, progress=False),
        "train_patch": lambda m, x: see.train_patch(m, x, 1, steps=2, n_samples=2, eval_placements=2),
        "transfer": lambda m, x: see.transfer(see.attack(trained(5), x, "fgsm", progress=False), m),
        "robust_accuracy": lambda m, x: see.robust_accuracy(m, x, torch.tensor([0, 1]), [0.0, 8.0], steps=2),
        "adversarial_training": lambda m, x: see.adversarial_training(m, x, torch.tensor([0, 1]), steps=1, epochs=1),
        "distill": lambda m, x: see.distill(m, x.repeat(2, 1, 1, 1), depth=1, n_samples=2),
        "distill:soft_vs_hard": lambda m, x: soft_vs_hard(m, (x.repeat(2, 1, 1, 1), torch.tensor([0, 1, 0, 1])), depth=1,
                                                          epochs=1),
        "tcav": lambda m, x: see.concepts.tcav(m, torch.rand(4, 3, SIDE, SIDE), x.repeat(2, 1, 1, 1), "relu2", 1,
                                               random_sets=2, random_x=torch.rand(8, 3, SIDE, SIDE)),
    })
    return out


ENTRIES = _entries()


def _run_counting(call, model) -> int:
    TrainNet.state.update(calls=0, fail_at=None)
    call(model, X)
    return TrainNet.state["calls"]


@pytest.fixture(autouse=True)
def _deterministic_batches(monkeypatch):
    """``batch_size="auto"`` times a few batch sizes, so the number of forwards varies between runs; one batch
    of everything (the memory cap) makes "fail at the last forward" land on the same pass every time."""
    from seethrough import batching

    monkeypatch.setattr(batching, "_PROBE_SIZES", ())
    monkeypatch.setattr(batching, "_CHOSEN", {})
    yield
    TrainNet.state.update(calls=0, fail_at=None)


def test_the_model_would_show_a_stray_forward():
    """The test has teeth: one plain forward in train mode changes what untouched() checks, and Dropout
    changes the predicted class."""
    model = trained()
    with pytest.raises(AssertionError, match="running_mean|num_batches_tracked"):
        with untouched(model):
            with torch.no_grad():
                model(X)
    model = trained()
    eval_class = copy.deepcopy(model).eval()(X).argmax(1)
    torch.manual_seed(0)
    with torch.no_grad():
        draws = torch.stack([model(X).argmax(1) for _ in range(30)])
    assert (draws != eval_class).any()


@pytest.mark.parametrize("entry", list(ENTRIES))
def test_train_mode_model_is_left_as_found(entry):
    model = trained()
    with untouched(model):
        n = _run_counting(ENTRIES[entry], model)
    assert n >= 1
    # The same when a forward raises: at the first forward and at the last one of a full run.
    for fail_at in sorted({1, n}):
        model = trained()
        TrainNet.state.update(calls=0, fail_at=fail_at)
        with untouched(model):
            with pytest.raises((Planted, ValueError, RuntimeError)):
                ENTRIES[entry](model, X)
        assert TrainNet.state["calls"] >= fail_at  # the planted failure was reached


def test_the_target_in_train_mode_is_the_eval_argmax():
    model = trained()
    want = copy.deepcopy(model).eval()(X).argmax(1)
    with untouched(model):
        got = [resolve_target(model, X, None) for _ in range(3)]
    assert all(torch.equal(g, want) for g in got)


@pytest.mark.parametrize("name", list(see.attribution.METHODS))
def test_every_method_explains_the_eval_class_in_train_mode(name):
    """target=None in train mode explains the eval-mode prediction: the same map as passing that class."""
    model = trained()
    want = copy.deepcopy(model).eval()(X).argmax(1)
    with untouched(model):
        first = see.attribute(model, X, name, **method_options(name))
        again = see.attribute(model, X, name, **method_options(name))
        explicit = see.attribute(model, X, name, target=want, **method_options(name))
    assert torch.equal(first, again)
    assert torch.equal(first, explicit)


def test_a_method_that_refuses_the_model_leaves_it_as_found():
    """CAM needs GAP + one linear layer right after the layer: at relu1 it refuses, after a forward."""
    model = trained()
    with untouched(model):
        with pytest.raises(ValueError, match="global average pooling"):
            see.attribute(model, X, "cam", layer="relu1")
