"""The runner (seethrough.runner.fast): channels-last in place and restored exactly, the fallback for models
that break in channels-last, and batch sizes remembered per model and weights (seethrough.batching)."""
import copy
import gc

import pytest
import torch
from torch import nn

import seethrough as see
from seethrough import batching, runner
from seethrough.batching import chosen_batch_size, model_key, run_batched
from seethrough.hooks import hooks
from seethrough.runner import fast, fingerprint
from seethrough.testing import untouched


def _net(dtype=torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 4, 3),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).to(dtype)


def _state(model: nn.Module) -> dict:
    """Everything about every parameter and buffer that an exact restore must keep."""
    return {n: (t.data_ptr(), t.stride(), t.dtype, t.detach().clone(), t.requires_grad, t._version)
            for n, t in [*model.named_parameters(), *model.named_buffers()]}


def _same(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    for n in before:
        ptr, stride, dtype, value, rg, version = before[n]
        ptr2, stride2, dtype2, value2, rg2, version2 = after[n]
        assert (ptr, stride, dtype, rg, version) == (ptr2, stride2, dtype2, rg2, version2), n
        assert torch.equal(value, value2), n


def test_fast_converts_in_place_and_restores_the_very_tensors():
    net = _net().train()
    net[0].weight.grad = torch.ones_like(net[0].weight)
    before, grad = _state(net), net[0].weight.grad
    x = torch.rand(4, 3, 10, 10)
    with hooks(net), torch.no_grad(), fast(net, x) as run:
        assert run.model is net and run.layout == torch.channels_last  # no copy: the model itself
        assert net[0].weight.is_contiguous(memory_format=torch.channels_last)
        assert not net[0].weight.is_contiguous()
        y = run.model(run.input(x))
    _same(before, _state(net))
    assert net.training and net[0].weight.grad is grad
    with hooks(net), torch.no_grad():
        assert torch.allclose(y, net(x), atol=1e-5)


def test_fast_restores_when_the_body_raises():
    net = _net()
    before = _state(net)
    with pytest.raises(ZeroDivisionError):
        with fast(net, torch.rand(2, 3, 8, 8)):
            assert net[3].weight.is_contiguous(memory_format=torch.channels_last)
            1 / 0
    _same(before, _state(net))


class FailsAtForward(nn.Module):
    """A conv net whose ``fail_at``-th forward raises, to fail a method midway."""

    def __init__(self, fail_at: int):
        super().__init__()
        self.net, self.calls, self.fail_at = _net(), 0, fail_at

    def forward(self, x):
        self.calls += 1
        if self.calls == self.fail_at:
            assert self.net[0].weight.is_contiguous(memory_format=torch.channels_last)  # raised mid-run, converted
            raise RuntimeError("planted failure in a forward")
        return self.net(x)


@pytest.mark.parametrize("method, options", [("occlusion", dict(window=2, stride=2, batch_size=4)),
                                             ("smoothgrad", dict(n_samples=12, batch_size=4))])
def test_a_forward_that_raises_mid_run_leaves_the_very_tensors(method, options):
    model = FailsAtForward(fail_at=3).train()
    before = _state(model)
    with untouched(model, allow_raise=RuntimeError):
        see.attribute(model, torch.rand(2, 3, 6, 6), method, target=0, progress=False, **options)
    assert model.calls == 3  # the failure was reached, after two batches had run
    _same(before, _state(model))


@pytest.mark.parametrize("method", ["saliency", "guided-backprop", "deeplift", "gradcam", "lrp"])
def test_a_single_pass_that_raises_leaves_the_very_tensors(method):
    """The single-pass methods convert the model in place too (FailsAtForward checks it was channels-last when
    it raised): the failure propagates and every parameter and buffer is the tensor it was."""
    model = FailsAtForward(fail_at=2 if method == "deeplift" else 1).train()  # DeepLIFT: its pass after the reference's
    before = _state(model)
    with untouched(model, allow_raise=RuntimeError):
        see.attribute(model, torch.rand(2, 3, 6, 6), method, target=0)
    assert model.calls == model.fail_at
    _same(before, _state(model))


def test_no_conv_or_no_image_batch_runs_as_given():
    lin = nn.Linear(4, 2)
    with fast(lin, torch.rand(3, 4)) as run:
        assert run.model is lin and run.layout == torch.contiguous_format
    with fast(_net(), torch.rand(3, 5)) as run:  # not a 4-D batch
        assert run.layout == torch.contiguous_format
    with pytest.raises(ValueError, match="mode must be one of 'forward', 'grad'"):
        with fast(lin, torch.rand(3, 4), "backward"):
            pass


def test_no_model_copy_per_call(monkeypatch):
    """The deep copy per call is gone: occlusion, SmoothGrad and IG never copy the model."""
    model, _ = see.zoo.load("lenet-digits")
    x, y = see.zoo.digits("test")

    def refuse(*a, **k):
        raise AssertionError("a model copy was made")

    monkeypatch.setattr(copy, "deepcopy", refuse)
    with untouched(model):
        see.attribute(model, x[:2], "occlusion", target=y[:2], window=8, stride=8, progress=False)
        see.attribute(model, x[:2], "smoothgrad", target=y[:2], n_samples=4, progress=False)
        see.attribute(model, x[:2], "integrated-gradients", target=y[:2], steps=4, progress=False)


CASES = {
    "occlusion": dict(window=3, stride=2),
    "rise": dict(n_samples=24, cells=3),
    "lime": dict(n_samples=24, segments="grid", n_segments=4),
    "kernel-shap": dict(n_samples=24, segments="grid", n_segments=4),
    "smoothgrad": dict(n_samples=6),
    "integrated-gradients": dict(steps=6),
    "occlusion-layer": dict(layer="2"),
    # the single-pass methods run their one pass channels-last too (attribution.where.gradient_at, cam._maps)
    "saliency": dict(abs=False),
    "grad-x-input": {},
    "guided-backprop": {},
    "deconvnet": {},
    "deeplift": {},
    "gradcam": dict(layer="3"),
    "lrp": {},
}
SINGLE = ("saliency", "grad-x-input", "guided-backprop", "deconvnet", "deeplift", "gradcam", "lrp")


@pytest.mark.parametrize("name", list(CASES))
def test_channels_last_equals_the_contiguous_path_in_float64(monkeypatch, name):
    """In float64 both layouts give the same numbers to 1e-10; the model is left as found, the output float64."""
    net = _net(torch.float64).eval()
    x = torch.rand(3, 3, 9, 9, dtype=torch.float64)
    method = "occlusion" if name == "occlusion-layer" else name
    seen = []
    original = runner.wants_channels_last
    monkeypatch.setattr(runner, "wants_channels_last", lambda m, v: seen.append(original(m, v)) or original(m, v))
    before = _state(net)
    options = CASES[name] if name in SINGLE else {"progress": False, **CASES[name]}
    with untouched(net):
        fast_way = see.attribute(net, x, method, target=1, **options)
    _same(before, _state(net))
    assert any(seen)  # the channels-last path ran
    monkeypatch.setattr(runner, "wants_channels_last", lambda m, v: False)
    plain = see.attribute(net, x, method, target=1, **options)
    assert fast_way.dtype == torch.float64
    assert fast_way.is_contiguous() or fast_way.dim() != 4  # handed back in the input's layout
    assert torch.allclose(fast_way, plain, rtol=1e-10, atol=1e-12)


def test_max_sensitivity_runs_channels_last_with_the_numbers_of_the_contiguous_path(monkeypatch):
    """Max-sensitivity explains its perturbed batches through the runner: in float64 both layouts give the
    same values to 1e-10, and the model is left as found."""
    net = _net(torch.float64).eval()
    x = torch.rand(3, 3, 9, 9, dtype=torch.float64)
    seen = []
    original = runner.wants_channels_last
    monkeypatch.setattr(runner, "wants_channels_last", lambda m, v: seen.append(original(m, v)) or original(m, v))
    before = _state(net)
    with untouched(net):
        fast_way = see.metrics.max_sensitivity(net, x, "saliency", 1, n_samples=5, progress=False).values
    _same(before, _state(net))
    assert any(seen)
    monkeypatch.setattr(runner, "wants_channels_last", lambda m, v: False)
    plain = see.metrics.max_sensitivity(net, x, "saliency", 1, n_samples=5, progress=False).values
    assert fast_way.dtype == torch.float64 and bool(torch.isfinite(plain).all())
    assert torch.allclose(fast_way, plain, rtol=1e-10, atol=1e-12)


class ViewsItsWeight(nn.Module):
    """A forward that breaks in channels-last: ``.view`` on a permuted (channels-last) weight."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(2, 4, 3)
        self.act = nn.ReLU()  # a module, so the rule methods (guided back-propagation, DeepLIFT) change its backward
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        flat = self.conv.weight.view(4, -1)  # needs the contiguous layout
        h = torch.nn.functional.conv2d(x, flat.view_as(self.conv.weight), self.conv.bias)
        return self.fc(self.act(h).mean((2, 3)))


@pytest.mark.parametrize("method, options", [("occlusion", dict(window=4, stride=2, progress=False)),
                                             ("smoothgrad", dict(n_samples=5, progress=False)),
                                             ("integrated-gradients", dict(steps=5, progress=False)),
                                             ("saliency", {}), ("guided-backprop", {}), ("deeplift", {})])
def test_a_model_that_breaks_in_channels_last_falls_back_to_contiguous(method, options):
    net = ViewsItsWeight().eval()
    x = torch.rand(2, 2, 8, 8, dtype=torch.float64)
    net.double()
    with pytest.raises(RuntimeError, match="stride"):  # the model really breaks in channels-last
        net.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    net.to(memory_format=torch.contiguous_format)
    runner._NO_CHANNELS_LAST.pop(net, None)
    before = _state(net)
    with untouched(net):
        got = see.attribute(net, x, method, target=0, **options)
    _same(before, _state(net))
    assert net in runner._NO_CHANNELS_LAST  # remembered: the next call starts contiguous
    again = see.attribute(net, x, method, target=0, **options)
    assert torch.allclose(got, again, rtol=1e-12, atol=1e-14)
    # The reference: the same method on a model without the .view (same weights, same function).
    plain = nn.Sequential(copy.deepcopy(net.conv), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          copy.deepcopy(net.fc)).eval()
    want = see.attribute(plain, x, method, target=0, **options)
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)


def test_an_error_that_is_not_about_the_layout_is_not_retried():
    net = _net()
    calls = []

    def fn(a, b):
        calls.append(a)
        raise RuntimeError("planted failure")

    with pytest.raises(RuntimeError, match="planted"):
        with fast(net, torch.rand(2, 3, 8, 8)) as run:
            run_batched(run.guard(fn), 4, batch_size=2, progress=False)
    assert calls == [0] and net not in runner._NO_CHANNELS_LAST


# ------------------------------------------------------------------------------------ batch-size memory
def test_a_remembered_size_belongs_to_the_model_object_not_its_id():
    net = _net()
    x = torch.rand(2, 3, 8, 8)
    key = model_key(net, x, "forward")
    batching._remember(key, 7)
    assert chosen_batch_size(model_key(net, x, "forward")) == 7
    other = _net()  # same architecture and weights, another object: no hit
    assert chosen_batch_size(model_key(other, x, "forward")) is None
    del net
    gc.collect()
    assert key.ref() is None and chosen_batch_size(key) is None  # a dead model's key never hits


def test_changed_weights_re_measure():
    net = _net()
    x = torch.rand(2, 3, 8, 8)
    batching._remember(model_key(net, x, "grad"), 9)
    assert chosen_batch_size(model_key(net, x, "grad")) == 9
    assert chosen_batch_size(model_key(net, x, "forward")) is None  # another mode
    assert chosen_batch_size(model_key(net, x[:, :, :4], "grad")) is None  # another shape
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    net(x).sum().backward()
    opt.step()  # an optimizer step
    assert chosen_batch_size(model_key(net, x, "grad")) is None
    batching._remember(model_key(net, x, "grad"), 9)
    net.load_state_dict(_net().state_dict())  # new weights loaded
    assert chosen_batch_size(model_key(net, x, "grad")) is None


def test_fingerprint_sees_versions_pointers_and_values():
    net = _net()
    fp, fpv = fingerprint(net), fingerprint(net, values=True)
    net[0].weight.data.copy_(net[0].weight.data * 2)  # bypasses the version counter
    assert fingerprint(net) == fp and fingerprint(net, values=True) != fpv
    net[0].weight.data = net[0].weight.data.clone()  # a new tensor: a new pointer
    assert fingerprint(net) != fp


def test_a_method_remembers_its_probed_size_and_does_not_probe_again(monkeypatch):
    """Over PROBE_FROM passes the first call probes; the second call with the same model and weights does not."""
    monkeypatch.setattr(batching, "PROBE_FROM", 8)
    net = _net().eval()
    x = torch.rand(1, 3, 9, 9)
    sizes = []
    real = batching.run_batched

    def spy(fn, n, **kw):
        def wrapped(a, b):
            sizes.append(b - a)
            return fn(a, b)
        return real(wrapped, n, **kw)

    monkeypatch.setattr("seethrough.attribution.masking.run_batched", spy)
    see.attribute(net, x, "rise", target=0, n_samples=100, cells=3, progress=False)
    first, sizes[:] = list(sizes), []
    see.attribute(net, x, "rise", target=0, n_samples=100, cells=3, progress=False)
    assert first[:2] == [8, 16]  # probing starts at 8
    chosen = chosen_batch_size(model_key(net, x, "forward"))
    assert chosen in first and set(sizes[:-1]) == {chosen}


def test_the_example_in_docs_speed_runs():
    import pathlib
    import re

    text = (pathlib.Path(__file__).parent.parent / "docs" / "speed.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/speed.md", "exec"), {})
