"""compile=True (seethrough.runner): equal to eager, compiled once per model and shape, recompiled when the
weights change, and a failed compile falls back to eager with one warning. The real compiles take
tens of seconds on this CPU, so those tests are marked slow; the fallback test compiles nothing."""
import copy
import warnings

import pytest
import torch

import seethrough as see
from seethrough import catalog, runner
from seethrough.progress import listen
from seethrough.testing import untouched


@pytest.fixture()
def lenet():
    model = copy.deepcopy(see.zoo.load("lenet-digits")[0])  # a copy: a test changes its weights
    x, y = see.zoo.digits("test")
    yield model, x[:2], y[:2]
    runner._COMPILED.pop(model, None)


def test_a_compile_that_fails_runs_eager_with_one_warning(monkeypatch, lenet):
    model, x, y = lenet

    def broken(module, **kw):
        def fn(*a, **k):
            raise RuntimeError("backend exploded")
        return fn

    monkeypatch.setattr(torch, "compile", broken)
    eager = see.attribute(model, x, "rise", target=y, n_samples=32, progress=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with untouched(model):
            got = see.attribute(model, x, "rise", target=y, n_samples=32, progress=False, compile=True)
            again = see.attribute(model, x, "rise", target=y, n_samples=32, progress=False, compile=True)
    lines = [str(w.message) for w in caught if "compile=True" in str(w.message)]
    assert len(lines) == 1 and "backend exploded" in lines[0] and "running eager" in lines[0]
    assert torch.allclose(got, eager, atol=1e-6) and torch.equal(got, again)
    assert runner.compiled_count(model) == 0


def test_compile_is_an_option_of_every_many_pass_method():
    for name in ("occlusion", "lime", "kernel-shap", "rise", "smoothgrad", "integrated-gradients"):
        opt = catalog.get("attribution", name).option("compile")
        assert opt.type == "bool" and opt.default is False and "torch.compile" in opt.help, name


def test_compile_refuses_what_it_cannot_compile(lenet):
    model, x, y = lenet
    with pytest.raises(ValueError, match="compile=True compiles dense occlusion of images"):
        see.attribute(model, x, "occlusion", target=y, layer="conv2", compile=True)
    with pytest.raises(ValueError, match="compile must be True or False"):
        see.attribute(model, x, "smoothgrad", target=y, compile="yes")


@pytest.mark.slow
def test_compiled_occlusion_equals_eager_compiles_once_and_recompiles_on_new_weights(lenet):
    model, x, y = lenet
    options = dict(window=8, stride=4, progress=False)
    eager = see.attribute(model, x, "occlusion", target=y, **options)
    said = []
    with listen(lambda desc, done, total: said.append(desc) if "compiled" in desc else None), untouched(model):
        first = see.attribute(model, x, "occlusion", target=y, compile=True, **options)
        second = see.attribute(model, x, "occlusion", target=y, compile=True, **options)
    assert torch.allclose(first, eager, rtol=1e-4, atol=1e-4) and torch.equal(first, second)
    assert runner.compiled_count(model) == 1 and len(said) == 1  # one compile, its time reported once
    from seethrough.attribution.occlusion import occlusion_drops

    d = occlusion_drops(model, x, y, window=8, stride=4, progress=False, compile=True)
    assert d.options["compile"] is True  # the result records the option
    # New weights: the frozen graph holds the old ones as constants, so it must recompile.
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)
    eager2 = see.attribute(model, x, "occlusion", target=y, **options)
    got2 = see.attribute(model, x, "occlusion", target=y, compile=True, **options)
    assert not torch.allclose(eager2, eager, atol=1e-2)  # the change matters
    assert torch.allclose(got2, eager2, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("method, options", [("smoothgrad", dict(n_samples=12)), ("integrated-gradients", dict(steps=12))])
def test_compiled_gradient_methods_equal_eager(lenet, method, options):
    model, x, y = lenet
    eager = see.attribute(model, x, method, target=y, progress=False, **options)
    with untouched(model):
        got = see.attribute(model, x, method, target=y, progress=False, compile=True, **options)
    assert runner.compiled_count(model) >= 1
    assert torch.allclose(got, eager, rtol=1e-4, atol=1e-5 * float(eager.abs().max()))
