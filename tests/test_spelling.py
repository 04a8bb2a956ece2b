"""One spelling per concept (issue 19, item 5): no old option name in any registry or public signature,
every old name still works once with a FutureWarning and the same result, old and new together is a
TypeError, the former ``(model, layer, x)`` order is moved back with a warning, and our own code
(defaults, registries, the docs' example) raises no FutureWarning of ours."""
from __future__ import annotations

import inspect
import re
import warnings
from pathlib import Path

import pytest
import torch

import seethrough as see
from seethrough.testing import torch_threads, untouched

FAMILIES = ("attribution", "metrics", "sanity", "adversarial", "optimize", "embed", "inspect", "concepts",
            "influence", "distill", "scan", "text")
# Old spellings that must not come back as a parameter name (the new name in the comment).
OLD = {
    "n_perturbations": "n_samples", "queries": "n_samples", "n_queries": "n_samples", "n": "n_samples",
    "batch": "batch_size", "lr": "step_size", "learning_rate": "step_size",
    "noise": "relative_noise or noise_std", "epsilon": "stabilizer", "kind": "method (or pattern)",
}
# ``n`` that is not a count of samples: a property of the data or a number of channels, said where kept.
NOT_A_SAMPLE_COUNT = {
    ("embed", "max_perplexity"): "n is the number of points being projected, the input of the rule",
    ("inspect", "pick_channels"): "n is the number of channels shown",
    ("scan", "default_chunk_size"): "n is the size of the data set being split",
}
WARNED = "removed in the next release"


def _public_functions():
    for fam in FAMILIES:
        mod = getattr(see, fam) if fam not in ("embed", "influence", "distill", "scan") else \
            __import__(f"seethrough.{fam}", fromlist=["_"])
        for name in getattr(mod, "__all__", ()):
            fn = getattr(mod, name, None)
            if callable(fn) and not inspect.isclass(fn):
                yield fam, name, fn
    for name in see.__all__:
        fn = getattr(see, name)
        if inspect.isfunction(fn):
            yield "seethrough", name, fn


def _params(fn) -> list[str]:
    try:
        return list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return []


def test_no_old_spelling_in_a_public_signature_or_a_registry():
    from seethrough import catalog

    bad = []
    for fam, name, fn in _public_functions():
        for p in _params(fn):
            if p in OLD and (fam, name) not in NOT_A_SAMPLE_COUNT:
                bad.append(f"{fam}.{name}({p}=): say {OLD[p]}")
    for m in see.attribution.METHODS.values():
        for fn in (m.fn, getattr(m.fn, "__seethrough_impl__", None)):
            bad += [f"attribution {m.name} ({p}=)" for p in _params(fn) if fn is not None and p in OLD]
    for a in see.ATTACKS.values():
        bad += [f"attack {a.name} default {k}" for k in a.defaults if k in OLD]
    for family in ("attribution", "attack", "metric", "objective", "projection", "influence", "sanity"):
        for spec in catalog.entries(family).values():
            bad += [f"{family} {spec.name} option {o.name}" for o in spec.options if o.name in OLD]
    assert not bad, "old spellings: " + "; ".join(bad)


def test_no_public_function_takes_the_layer_before_the_data():
    bad = []
    for fam, name, fn in _public_functions():
        ps = _params(fn)
        if len(ps) >= 3 and ps[0] == "model" and ps[1] in ("layer", "layers") and \
                any(p == "x" or p.endswith("_x") or p == "probe" for p in ps[2:]):
            bad.append(f"{fam}.{name}{tuple(ps[:3])}")
    assert not bad, "(model, layer, x) order: " + ", ".join(bad)


# ----------------------------------------------------------------------------- old names still work
@pytest.fixture(scope="module")
def lenet():
    model, _ = see.zoo.load("lenet-digits")
    x, y = see.zoo.digits("test")
    return model, x[:2], y[:2]


def _mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def _tensors(r) -> list[torch.Tensor]:
    """Every tensor a result holds (a tensor, a tuple, a dataclass, a list of them), for an exact comparison."""
    if isinstance(r, torch.Tensor):
        return [r]
    if isinstance(r, (tuple, list)):
        return [t for v in r for t in _tensors(v)]
    if isinstance(r, dict):
        return [t for k in sorted(r, key=str) for t in _tensors(r[k])]
    if isinstance(r, torch.nn.Module):
        return [p.detach() for p in r.parameters()]
    if hasattr(r, "__dataclass_fields__"):
        return [t for k in r.__dataclass_fields__ for t in _tensors(getattr(r, k))]
    if isinstance(r, float):
        return [torch.tensor(r, dtype=torch.float64)]
    return []


def _cases(lenet):
    model, x, y = lenet
    mlp = _mlp()
    rows = see.zoo.toy_2d(200)
    a = see.attribute(model, x, "grad-x-input", target=y)
    mask = torch.zeros(32, 32, dtype=torch.bool)
    mask[8:12, 8:12] = True
    pool = see.zoo.digits("train")[0][:60]
    photos = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    from seethrough.adversarial import random_placements
    from seethrough.distill import fit_soft_tree
    from seethrough.embed import random_crops
    return {
        # name: (call(**kw), new keywords, old keywords)
        "smoothgrad noise": (lambda **k: see.attribute(model, x, "smoothgrad", target=y, n_samples=3, batch_size=6, **k),
                             {"relative_noise": 0.2}, {"noise": 0.2}),
        "smoothgrad kind": (lambda **k: see.attribution.gradient.smoothgrad(model, x, y, n_samples=3, batch_size=6, progress=False, **k),
                            {"method": "vargrad"}, {"kind": "vargrad"}),
        "lrp epsilon": (lambda **k: see.attribute(model, x, "lrp", target=y, composite="epsilon", **k),
                        {"stabilizer": 1e-3}, {"epsilon": 1e-3}),
        "lrp_relevances epsilon": (lambda **k: see.attribution.lrp.lrp_relevances(model, x, y, **k),
                                   {"stabilizer": 1e-2}, {"epsilon": 1e-2}),
        "deeplift eps": (lambda **k: see.attribute(model, x, "deeplift", target=y, **k),
                         {"stabilizer": 1e-3}, {"eps": 1e-3}),
        "max_sensitivity n_perturbations": (
            lambda **k: see.metrics.max_sensitivity(model, x, "saliency", y, batch_size=6, progress=False, **k),
            {"n_samples": 3}, {"n_perturbations": 3}),
        "infidelity noise": (lambda **k: see.metrics.infidelity(model, x, a, y, perturbation="gaussian", n_samples=4,
                                                                batch_size=8, progress=False, **k), {"noise_std": 0.05}, {"noise": 0.05}),
        "road noise": (lambda **k: see.metrics.road(model, x[:1], a[:1], y[:1], fractions=(0.5,), progress=False, **k),
                       {"noise_std": 0.05}, {"noise": 0.05}),
        "impute noise": (lambda **k: see.metrics.impute(x[0], mask, seed=1, **k), {"noise_std": 0.05}, {"noise": 0.05}),
        "mosaic n": (lambda **k: see.metrics.mosaic(photos, torch.arange(4), grid=2, seed=0, **k),
                     {"n_samples": 2}, {"n": 2}),
        "sphere_test n": (lambda **k: see.sphere_test(model, x, x.flip(-1), batch_size=16, progress=False, **k),
                          {"n_samples": 8}, {"n": 8}),
        "ascent lr": (lambda **k: see.attack(model, x, "ascent", steps=2, batch_size=2, progress=False, **k),
                      {"step_size": 0.2}, {"lr": 0.2}),
        "train_patch lr, batch": (lambda **k: see.train_patch(model, x, 1, steps=2, eval_placements=2, progress=False, **k),
                                  {"step_size": 0.1, "n_samples": 3}, {"lr": 0.1, "batch": 3}),
        "random_placements n": (lambda **k: random_placements(n_images=2, scale=(0.25, 0.4), max_angle=0.1,
                                                              gen=torch.Generator().manual_seed(0), **k),
                                {"n_samples": 3}, {"n": 3}),
        "adversarial_training lr": (
            lambda **k: see.adversarial_training(model, x, y, eps=8, steps=1, epochs=1, batch_size=2, progress=False, **k),
            {"step_size": 1e-3}, {"lr": 1e-3}),
        "visualize n, lr": (lambda **k: see.visualize(model, "logit:3", size=32, param="pixel", transforms=None, steps=2,
                                                      batch_size=2, progress=False, **k),
                            {"n_samples": 2, "step_size": 0.1}, {"n": 2, "lr": 0.1}),
        "invert lr": (lambda **k: see.invert(model, x[:1], "relu1", steps=2, scales=1, progress=False, **k),
                      {"step_size": 0.1}, {"lr": 0.1}),
        "hyperplanes lr": (lambda **k: see.hyperplanes(steps=3, snapshots=[3], grid=4, **k),
                           {"step_size": 0.01}, {"lr": 0.01}),
        "distill kind, queries, noise": (lambda **k: see.distill(mlp, rows, depth=3, **k),
                                         {"method": "tree", "n_samples": 50, "noise_std": 0.2},
                                         {"kind": "tree", "queries": 50, "noise": 0.2}),
        "fit_soft_tree lr, batch": (lambda **k: fit_soft_tree(rows[0], torch.full((200, 2), 0.5), 2, epochs=1,
                                                              progress=False, **k),
                                    {"step_size": 0.05, "batch_size": 32}, {"lr": 0.05, "batch": 32}),
        "procedural kind, n": (lambda **k: see.concepts.procedural(size=16, channels=1, **k),
                               {"pattern": "dots", "n_samples": 2}, {"kind": "dots", "n": 2}),
        "stamp kind": (lambda **k: see.concepts.stamp(x, seed=1, **k), {"pattern": "checker"}, {"kind": "checker"}),
        "flip_rate kind": (lambda **k: see.concepts.flip_rate(model, pool[:20], target=7, **k),
                           {"pattern": "stripes"}, {"kind": "stripes"}),
        "random_sets n": (lambda **k: see.concepts.random_sets(pool, 2, seed=3, **k), {"n_samples": 5}, {"n": 5}),
        "random_crops n": (lambda **k: random_crops(photos[0, :, :, :12], size=8, seed=0, **k),
                           {"n_samples": 3}, {"n": 3}),
    }


CASES = ["smoothgrad noise", "smoothgrad kind", "lrp epsilon", "lrp_relevances epsilon", "deeplift eps",
         "max_sensitivity n_perturbations", "infidelity noise", "road noise", "impute noise", "mosaic n", "sphere_test n",
         "ascent lr", "train_patch lr, batch", "random_placements n", "adversarial_training lr", "visualize n, lr",
         "invert lr", "hyperplanes lr", "distill kind, queries, noise", "fit_soft_tree lr, batch", "procedural kind, n",
         "stamp kind", "flip_rate kind", "random_sets n", "random_crops n"]


@pytest.mark.parametrize("case", CASES)
def test_an_old_name_warns_once_and_gives_the_new_names_result(lenet, case):
    call, new, old = _cases(lenet)[case]
    with torch_threads(1), untouched(lenet[0]):
        with warnings.catch_warnings(record=True) as quiet:
            warnings.simplefilter("always")
            want = call(**new)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = call(**old)
    ours = [w for w in caught if issubclass(w.category, FutureWarning) and WARNED in str(w.message)]
    assert not [w for w in quiet if issubclass(w.category, FutureWarning) and WARNED in str(w.message)], \
        "the new names must not warn"
    assert len(ours) == len(old), [str(w.message) for w in caught]
    for w in ours:  # each message names the old and the new keyword
        o, n = re.search(r"\((\w+)=\.\.\.\) is renamed (\w+)=", str(w.message)).groups()
        assert old.get(o) is not None and new.get(n) is not None and n != o
        assert Path(w.filename).name == "test_spelling.py" or "seethrough" in w.filename  # points at a caller
    a, b = _tensors(want), _tensors(got)
    assert a and len(a) == len(b)
    for u, v in zip(a, b):
        assert torch.equal(u, v), case


@pytest.mark.parametrize("case", ["smoothgrad noise", "max_sensitivity n_perturbations", "ascent lr", "distill kind, queries, noise"])
def test_the_old_and_the_new_name_together_is_a_type_error_naming_both(lenet, case):
    call, new, old = _cases(lenet)[case]
    o, n = next(iter(old)), next(iter(new))
    with pytest.raises(TypeError, match=rf"both {o}= \(the old name\) and {n}="):
        call(**{o: old[o], n: new[n]})


def test_the_former_layer_first_order_is_moved_back_with_a_warning(lenet):
    model, x, y = lenet
    pool = see.zoo.digits("train")[0]
    concept = see.concepts.stamp(pool[:20], seed=1)
    pos = torch.tensor([[0, 0], [3, 5]])
    pairs = {
        "receptive_field": (lambda: see.inspect.receptive_field(model, x[:1], "conv2", pos),
                            lambda: see.inspect.receptive_field(model, "conv2", x[:1], pos)),
        "directional_grads": (lambda: see.concepts.directional_grads(model, x, "relu3", 7),
                              lambda: see.concepts.directional_grads(model, "relu3", x, 7)),
        "cav": (lambda: see.concepts.cav(model, concept, pool[40:60], "relu2").vector,
                lambda: see.concepts.cav(model, "relu2", concept, pool[40:60]).vector),
        "tcav": (lambda: see.concepts.tcav(model, concept, pool[:20], ["relu3"], 7, random_sets=2, random_x=pool[100:]),
                 lambda: see.concepts.tcav(model, ["relu3"], concept, pool[:20], 7, random_sets=2, random_x=pool[100:])),
    }
    with torch_threads(1), untouched(model), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a CAV at chance warns; not what is tested here
        for name, (new, old) in pairs.items():
            with warnings.catch_warnings(record=True) as quiet:
                warnings.simplefilter("always", FutureWarning)
                want = new()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", FutureWarning)
                got = old()
            assert not [w for w in quiet if issubclass(w.category, FutureWarning) and "removed in the next" in str(w.message)], name
            msgs = [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
            assert len(msgs) == 1 and "old argument order" in msgs[0] and "the old order is removed in the next release" \
                in msgs[0], (name, msgs)
            a = [t for t in _tensors(want) if t.is_floating_point() or t.dtype == torch.long]
            b = [t for t in _tensors(got) if t.is_floating_point() or t.dtype == torch.long]
            assert a and len(a) == len(b) and all(torch.equal(u, v) for u, v in zip(a, b)), name


def test_signatures_show_the_new_names_only():
    from seethrough.attribution.gradient import smoothgrad

    assert "relative_noise" in inspect.signature(smoothgrad).parameters
    assert "noise" not in inspect.signature(smoothgrad).parameters
    assert smoothgrad.__seethrough_renamed__ == {"kind": "method", "noise": "relative_noise"}
    assert smoothgrad.__doc__.startswith("Gradients averaged")


def test_our_own_defaults_and_the_docs_example_raise_no_future_warning_of_ours(lenet):
    model, x, y = lenet
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=f".*{WARNED}", category=FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        for name in ("smoothgrad", "vargrad", "lrp", "deeplift", "integrated-gradients"):
            see.attribute(model, x, name, target=y, **({"n_samples": 2} if "grad" in name and "int" not in name else {}))
        for name in see.ATTACKS:
            see.attack(model, x, name, steps=1, progress=False) if "steps" in see.ATTACKS[name].defaults \
                else see.attack(model, x, name, progress=False)
        see.metrics.max_sensitivity(model, x, "saliency", y, n_samples=2, progress=False)
        see.visualize(model, "logit:1", size=32, param="pixel", transforms=None, steps=1, progress=False)
        see.distill(_mlp(), see.zoo.toy_2d(100), depth=2)
        # the Spellings section's example, run as written
        doc = (Path(__file__).parents[1] / "docs" / "attribution.md").read_text()
        block = doc.split("## Spellings", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        exec(compile(block, "docs/attribution.md#spellings", "exec"), {})


def test_the_cli_step_size_reaches_ascent_and_nothing_of_ours_warns(tmp_path, monkeypatch):
    from PIL import Image
    from typer.testing import CliRunner

    import seethrough.adversarial as adv
    from seethrough.cli import app

    seen = []
    real = adv.attack
    monkeypatch.setattr(adv, "attack", lambda *a, **k: seen.append(k) or real(*a, **k))  # the command imports it per call
    img = tmp_path / "digit.png"
    Image.fromarray((see.zoo.digits("test")[0][0, 0].numpy() * 255).astype("uint8")).save(img)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=f".*{WARNED}", category=FutureWarning)
        for method in ("ascent", "pgd"):
            step = ["--step-size", "0.3"] if method == "ascent" else []
            r = CliRunner().invoke(app, ["attack", str(img), "-m", "lenet-digits", "--method", method, "--steps", "1",
                                         *step, "--out", str(tmp_path / method)])
            assert r.exit_code == 0, r.output
    assert seen[0]["step_size"] == 0.3 and "lr" not in seen[0]
    assert seen[1].get("step_size") is None  # pgd keeps its own step (2.5 ε / steps) when none is given
