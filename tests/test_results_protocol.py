"""The result protocol (issue 19 item 6): every result made by its real producer carries the options and
seed it was made with, round-trips through save/load to an equal object, and has summary(), to_frame()
and an HTML repr. A walk over the package makes a new *Result/*Badge dataclass get the check for free."""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import pkgutil

import numpy as np
import pandas as pd
import pytest
import torch

import seethrough as see
from seethrough.results import ResultProtocol, equal, load
from seethrough.testing import untouched


@pytest.fixture(scope="module")
def lenet():
    model, _ = see.zoo.load("lenet-digits")
    x, y = see.zoo.digits("test")
    return model, x, y


def _ig(m, x, y):
    from seethrough.attribution.gradient import integrated_gradients

    return integrated_gradients(m, x[:2], y[:2], steps=8, progress=False), {"steps": 8, "target": y[:2]}, None


def _attack(m, x, y):
    return see.attack(m, x[:2], "pgd", eps=8, steps=3, seed=3, progress=False), {"eps": 8, "steps": 3, "seed": 3}, 3


def _sphere(m, x, y):
    r = see.attack(m, x[:2], "fgsm", eps=40, progress=False)
    return see.sphere_test(m, x[:2], r, n_samples=20, seed=4, progress=False), {"n_samples": 20, "radius_factor": 2.0}, 4


def _patch(m, x, y):
    return see.train_patch(m, x[:4], 3, steps=3, eval_placements=2, seed=2), {"target": 3, "steps": 3, "eval_placements": 2}, 2


def _score(m, x, y):
    a = torch.zeros(2, 1, 8, 8); a[:, 0, 1, 1] = 1
    mask = torch.zeros(2, 1, 8, 8, dtype=torch.bool); mask[0, ..., :3, :3] = True
    return see.metrics.pointing_game(a, mask, tolerance=1), {"tolerance": 1}, None


def _curve(m, x, y):
    a = see.attribute(m, x[:2], "saliency", target=y[:2])
    return see.metrics.deletion(m, x[:2], a, y[:2], steps=4, seed=5, progress=False), {"steps": 4, "seed": 5}, 5


def _badge(m, x, y):
    from seethrough.sanity.badge import trust_badge

    return trust_badge(m, x[:1], "grad-x-input", y[:1], seed=6), {"method": "grad-x-input"}, 6


def _data_randomization(m, x, y):
    twin, _ = see.zoo.load("lenet-digits", labels="permuted")
    r = see.sanity.data_randomization(m, twin, x[:2], "saliency", metrics=("spearman_abs",))
    return r, {"method": "saliency", "metrics": ("spearman_abs",)}, None


def _sanity(m, x, y):
    r = see.sanity.randomization(m, x[:2], "saliency", metrics=("spearman_abs",), seed=7, progress=False)
    return r, {"method": "saliency", "mode": "cascading", "metrics": ("spearman_abs",)}, 7


def _tcav(m, x, y):
    r = see.concepts.tcav(m, see.concepts.stamp(x[:20]), x[y == 7][:20], "relu4", 7, random_sets=2, random_x=x, seed=8)
    return r, {"random_sets": 2, "seed": 8}, 8


def _weat(m, x, y):
    e = torch.eye(3, dtype=torch.float64)
    return see.text.weat(e[[0, 0]], e[[1, 2]], e[[0]], e[[1]], n_permutations=50, seed=9), {"n_permutations": 50}, 9


def _probe(m, x, y):
    from seethrough.text.model import _tiny_bert
    from seethrough.text.probing import probe
    from seethrough.text.tokens import _toy_tokenizer

    r = probe(_tiny_bert(vocab_size=20, max_position_embeddings=32), _toy_tokenizer(), n_samples=40, tasks=["tense"], seed=10)
    return r, {"n_samples": 40, "tasks": ["tense"]}, 10


def _text(m, x, y):
    from seethrough.text.explain import explain_text
    from seethrough.text.model import _tiny_bert_classifier
    from seethrough.text.tokens import _toy_tokenizer, encode

    r = explain_text(_tiny_bert_classifier(vocab_size=20), encode(_toy_tokenizer(), "the cat sat"), "rollout")
    return r, {"method": "rollout", "query": "mean"}, None


def _report(m, x, y, tmp_path):
    r = see.report.write_report(tmp_path / "report", sections=["model-card"], quick=True, seed=11)
    return r, {"sections": ["model-card"], "quick": True}, 11


def _scan(m, x, y):
    r = see.scan(m, x[:40], ["relu3"], ("topk", "dead"), batch_size=20, progress=False, seed=12)
    return r, {"batch_size": 20}, 12


def _embed(m, x, y):
    return see.embed(m, (x[:40], y[:40]), "fc1", "pca", seed=13, progress=False), {"pca": 50, "k": 5}, 13


def _influence(m, x, y):
    g = torch.Generator().manual_seed(0)
    lin = torch.nn.Linear(4, 3)
    xs, ys = torch.randn(30, 4, generator=g), torch.randint(0, 3, (30,), generator=g)
    return see.influence(lin, (xs, ys), (xs[:2], ys[:2]), damping=0.01), {"damping": 0.01}, None


def _distill(m, x, y):
    return see.distill(m, (x[:120], y[:120]), depth=2, seed=14), {"seed": 14}, 14


def _visualize(m, x, y):
    v = see.visualize(m, "logit:3", size=32, param="pixel", transforms=None, steps=3, seed=15, progress=False)
    return v, {"steps": 3, "seed": 15}, 15


def _invert(m, x, y):
    return see.invert(m, x[:1], "relu1", steps=4, seed=16, progress=False), {"steps": 4, "seed": 16}, 16


def _dissect(m, x, y):
    from seethrough.scan.concepts import Probe
    from seethrough.scan.dissect import dissect

    d = dissect(m, "conv1", Probe(n=24, size=32, channels=1), progress=False)
    return d, {"resolution": 32}, None


def _atlas(m, x, y):
    from seethrough.scan.activation_atlas import activation_atlas

    res = see.scan(m, x[:60], ["relu2"], ["positions"], options={"positions": {"size": 60, "per_example": 1}},
                   batch_size=30, progress=False)
    a = activation_atlas(m, res, "relu2", grid=2, method="pca", steps=2, seed=17)
    return a, {"grid": 2, "steps": 2, "seed": 17}, 17


def _folder(m, x, y, tmp_path):
    from seethrough.scan.explain_dir import explain_folder

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(2):
        see.zoo.to_image(x[i]).save(imgs / f"{i}.png")
    r = explain_folder(m, imgs, "saliency", tmp_path / "fold", steps=4, seed=18, progress=False,
                       preprocess=see.zoo.load("lenet-digits")[1])
    return r, {"method": "saliency", "steps": 4}, 18


def _topk(m, x, y):
    return see.topk(m, x[:50], "conv2", unit=3, k=4, progress=False), {"unit": 3, "k": 4}, None


def _stats(m, x, y):
    return see.layer_stats(m, x[:50], ["relu1"], progress=False)["relu1"], {"layers": ["relu1"]}, None


def _weights(m, x, y):
    return see.weight_health(m, ["conv1"])[0], {"layers": ["conv1"], "duplicate": 0.99}, None


def _hyperplanes(m, x, y):
    return see.hyperplanes(steps=4, snapshots=[1, 4], grid=4, seed=19), {"steps": 4, "snapshots": [1, 4], "grid": 4}, 19


def _lime(m, x, y):
    r = see.lime(m, x[:1], y[:1], n_samples=30, n_segments=4, seed=20, progress=False)
    return r, {"n_samples": 30, "n_segments": 4}, 20


def _occlusion(m, x, y):
    from seethrough.attribution.occlusion import occlusion_drops

    return occlusion_drops(m, x[:1], y[:1], window=8, stride=8), {"window": 8, "stride": 8}, None


def _word_curves(m, x, y):
    from seethrough.text.explain import word_curves
    from seethrough.text.model import _tiny_bert_classifier
    from seethrough.text.tokens import _toy_tokenizer, encode

    t = encode(_toy_tokenizer(), "the cat sat")
    r = word_curves(_tiny_bert_classifier(vocab_size=20), t, torch.tensor([0.1, 0.5, 0.2]), target=0, n_random=2, seed=21)
    return r, {"n_random": 2, "target": 0}, 21


def _heads(m, x, y):
    from seethrough.text.attention import head_importance
    from seethrough.text.model import _tiny_bert_classifier
    from seethrough.text.tokens import _toy_tokenizer, encode

    r = head_importance(_tiny_bert_classifier(vocab_size=20), encode(_toy_tokenizer(), "the cat sat"), 1)
    return r, {"target": 1}, None


def _linear_rows():
    g = torch.Generator().manual_seed(1)
    lin = torch.nn.Linear(4, 3)
    return lin, torch.randn(40, 4, generator=g), torch.randint(0, 3, (40,), generator=g)


def _permutation(m, x, y):
    from seethrough.inspect.importance import permutation_importance

    lin, rows, labels = _linear_rows()
    return permutation_importance(lin, rows, labels, repeats=2, seed=22), {"repeats": 2}, 22


def _rank(m, x, y):
    from seethrough.inspect.importance import rank_agreement

    return rank_agreement({"a": torch.tensor([1.0, 2, 3]), "b": torch.tensor([3.0, 1, 2])}), {}, None


def _linear(m, x, y):
    from seethrough.inspect.linear import linear_importance

    return linear_importance(torch.tensor([[1.0, -3.0, 2.0]]), ["a", "b", "c"]), {"names": ["a", "b", "c"], "output": 0}, None


def _validation(m, x, y):
    lin, rows, labels = _linear_rows()
    r = see.influence(lin, (rows, labels), (rows[:1], labels[:1]), damping=0.1)
    return r.validate(3, lambda keep: lin), {"k": 3, "test": 0}, None


def _prediction(m, x, y):
    (top,) = see.predict(m, x[:1], k=2)
    return top[0], {"k": 2}, None


def _logistic(m, x, y):
    from seethrough.inspect.linear import breast_cancer_logistic

    fit = breast_cancer_logistic(seed=23, C=0.5)
    return fit, {"C": 0.5}, 23


def _command(m, x, y):
    from seethrough.raw import CommandResult

    r = CommandResult("stats", see.layer_stats(m, x[:20], ["relu1"], progress=False),
                      pd.DataFrame({"layer": ["relu1"], "dead": [0.0]}), {"layers": ["relu1"]}, None)
    return r, {"layers": ["relu1"]}, None


PRODUCERS = {"Prediction": _prediction, "LogisticFit": _logistic, "CommandResult": _command,
             "OcclusionDrops": _occlusion, "WordCurves": _word_curves, "HeadImportance": _heads,
             "PermutationImportance": _permutation, "RankAgreement": _rank, "FeatureImportance": _linear,
             "Validation": _validation,
             "IGResult": _ig, "AttackResult": _attack, "SphereResult": _sphere, "PatchResult": _patch,
             "ScoreResult": _score, "CurveResult": _curve, "TrustBadge": _badge, "SanityResult": _sanity,
             "DataRandomization": _data_randomization,
             "TCAVResult": _tcav, "WeatResult": _weat, "ProbeResult": _probe, "TextExplanation": _text,
             "ReportResult": _report, "ScanResult": _scan, "Embedding": _embed, "Influence": _influence,
             "Surrogate": _distill, "Visualization": _visualize, "Inversion": _invert, "Dissection": _dissect,
             "ActivationAtlas": _atlas, "FolderExplanation": _folder, "TopK": _topk, "LayerStats": _stats,
             "WeightHealth": _weights, "HyperplaneRun": _hyperplanes, "SuperpixelExplanation": _lime}


@pytest.mark.parametrize("name", sorted(PRODUCERS))
def test_result_follows_the_protocol(name, lenet, tmp_path):
    model, x, y = lenet
    make = PRODUCERS[name]
    with untouched(model):
        r, given, seed = make(model, x, y, tmp_path) if "tmp_path" in inspect.signature(make).parameters else make(model, x, y)
    assert type(r).__name__ == name and isinstance(r, ResultProtocol)
    # options and seed are what the call was given
    assert isinstance(r.options, dict) and r.seed == seed
    for k, v in given.items():
        assert k in r.options and equal(r.options[k], v), (k, r.options.get(k), v)
    # save -> load gives an equal object, through the module-level load and the class's own
    meta = r.save(tmp_path / "saved" / name)
    assert meta.suffix == ".json" and meta.with_suffix(".npz").is_file()
    stored = json.loads(meta.read_text())
    assert stored["class"].endswith(":" + type(r).__qualname__) and stored["version"] == see.__version__
    back = load(meta)
    assert type(back) is type(r) and equal(back, r)
    assert equal(type(r).load(tmp_path / "saved" / name), r)
    assert back.options.keys() == r.options.keys() and back.seed == r.seed
    # the line, the table, the notebook repr
    text = r.summary()
    assert isinstance(text, str) and text.strip() and "\n" not in text.strip()
    frame = r.to_frame()
    assert isinstance(frame, pd.DataFrame) and len(frame) >= 1
    page = r._repr_html_()
    assert name in page and "options" in page and "seed" in page
    for k in given:
        assert k in page


def test_equal_sees_a_changed_array(lenet, tmp_path):
    """The round-trip check could fail: a loaded result whose array was changed is not equal."""
    model, x, y = lenet
    r, _, _ = _ig(model, x, y)
    back = load(r.save(tmp_path / "ig"))
    back.attribution[0, 0, 0, 0] += 1.0
    assert not equal(back, r)
    # the notebook table carries a thumbnail of the map, decodable as a PNG of the map's aspect
    import base64
    import io

    from PIL import Image

    page = r._repr_html_()
    png = page.split("data:image/png;base64,")[1].split("'")[0]
    assert Image.open(io.BytesIO(base64.b64decode(png))).size == (96, 96)
    assert equal(load(r.save(tmp_path / "ig64")), r)


def test_float64_and_nan_survive(tmp_path):
    from seethrough.metrics.result import ScoreResult

    r = ScoreResult("m", torch.tensor([0.1, float("nan")], dtype=torch.float64), None,
                    {"nested": {"a": np.arange(3), (1, 2): [torch.ones(2, dtype=torch.bfloat16)]}, "t": (1, "x")}, seed=4)
    back = load(r.save(tmp_path / "s.json"))
    assert back.values.dtype == torch.float64 and torch.isnan(back.values[1])
    assert back.options["nested"][(1, 2)][0].dtype == torch.bfloat16 and back.options["t"] == (1, "x")
    assert equal(back, r)


def test_load_refuses_a_foreign_class(tmp_path):
    from seethrough.metrics.result import ScoreResult

    path = ScoreResult("m", torch.zeros(1)).save(tmp_path / "s")
    meta = json.loads(path.read_text())
    meta["class"] = "os:system"
    path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="only seethrough result classes"):
        load(path)
    with pytest.raises(ValueError, match="no saved result"):
        load(tmp_path / "missing")
    good = ScoreResult("m", torch.zeros(1)).save(tmp_path / "t")
    with pytest.raises(TypeError, match="not a SanityResult"):
        see.sanity.SanityResult.load(good) if hasattr(see.sanity, "SanityResult") else \
            importlib.import_module("seethrough.sanity.randomization").SanityResult.load(good)


def _result_classes() -> dict[str, type]:
    """Every dataclass of the package named *Result or *Badge, or following the protocol."""
    found = {}
    for info in pkgutil.walk_packages(see.__path__, "seethrough."):
        if info.name.startswith(("seethrough.web.static",)):
            continue
        mod = importlib.import_module(info.name)
        for obj in vars(mod).values():
            if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == info.name and (
                    obj.__name__.endswith(("Result", "Badge")) or issubclass(obj, ResultProtocol)):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return found


# Internal, not part of the public API: a chunk's accumulators travelling from a Dask worker to the client.
INTERNAL = {"seethrough.scan.engine.ChunkResult"}


def test_every_result_dataclass_follows_the_protocol():
    classes = _result_classes()
    assert len(classes) >= len(PRODUCERS)
    for qual, cls in sorted(classes.items()):
        if qual in INTERNAL:
            continue
        assert issubclass(cls, ResultProtocol), f"{qual} does not inherit seethrough.results.ResultProtocol"
        names = {f.name for f in dataclasses.fields(cls)}
        assert "seed" in names, f"{qual} has no seed field"
        assert "options" in names or isinstance(getattr(cls, "options", None), property), f"{qual} has no options"
        assert inspect.signature(cls.summary).return_annotation in ("str", str), f"{qual}.summary() must return a str"
        assert cls.__name__ in PRODUCERS, f"{qual} has no producer in PRODUCERS: add one so its round trip is tested"


def _digit_png(tmp_path, x):
    path = tmp_path / "digit.png"
    see.zoo.to_image(x[0]).save(path)
    return path


def test_cli_explain_writes_maps_and_scores(lenet, tmp_path):
    """maps.npz holds each method's map, equal to see.attribute on the same image and target; scores.json
    says what made them. The CLI and the API run under one thread so the float32 kernels are the same."""
    from typer.testing import CliRunner

    from seethrough.cli import app
    from seethrough.testing import torch_threads

    model, x, y = lenet
    png, out = _digit_png(tmp_path, x), tmp_path / "out"
    with torch_threads(1):
        res = CliRunner().invoke(app, ["explain", str(png), "-m", "lenet-digits", "--method", "saliency,lime",
                                       "-t", "4", "--seed", "3", "-o", str(out)])
        assert res.exit_code == 0, res.output
        maps, scores = load(out / "maps.npz"), load(out / "scores.json")
        xi = see.zoo.load("lenet-digits")[1](png)
        ref = {"saliency": see.attribute(model, xi, "saliency", target=4),
               "lime": see.attribute(model, xi, "lime", target=4, seed=3, progress=False)}
    assert sorted(maps) == ["lime", "saliency"]
    for name, a in ref.items():
        assert maps[name].shape == a.shape and torch.allclose(maps[name], a, rtol=1e-5, atol=1e-6), name
    assert scores["target"] == 4 and scores["seed"] == 3 and scores["methods"] == ["saliency", "lime"]
    assert scores["options"] == {"saliency": {}, "lime": {"seed": 3}} and scores["label"] == "4"
    # another target gives other maps: the file is not a constant
    with torch_threads(1):
        other = see.attribute(model, xi, "saliency", target=1)
    assert not torch.allclose(maps["saliency"], other)


def test_cli_attack_writes_a_reloadable_result(lenet, tmp_path):
    from typer.testing import CliRunner

    from seethrough.adversarial import AttackResult
    from seethrough.cli import app

    model, x, y = lenet
    png, out = _digit_png(tmp_path, x), tmp_path / "atk"
    res = CliRunner().invoke(app, ["attack", str(png), "-m", "lenet-digits", "--method", "fgsm", "--eps", "30",
                                   "-o", str(out)])
    assert res.exit_code == 0, res.output
    r = AttackResult.load(out / "attack")
    assert r.method == "fgsm" and r.options["eps"] == 30 and r.x_adv.shape == r.x.shape
    assert float(r.linf[0]) <= 30 + 1e-3 and float(r.linf[0]) > 0
    frame = pd.read_csv(out / "attack.csv")
    assert len(frame) == 1 and bool(frame["success"][0]) == bool(r.success[0])


def test_the_docs_example_runs(tmp_path, monkeypatch, capsys):
    """docs/results.md's first example, run as written; the numbers it prints are the ones it states."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "results.md").read_text()
    block = doc.split("```python\n")[1].split("```")[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "docs/results.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "16 None" and lines[1] == "3 ['sample', 'gap', 'score']"
    assert "# 16 None" in block and "# 3 ['sample', 'gap', 'score']" in block
    assert lines[2].startswith("integrated gradients (16 steps) on 3 samples")
    assert (tmp_path / "ig.npz").is_file() and (tmp_path / "ig.json").is_file()


# The rule of docs/results.md: pictures are PIL images, charts matplotlib figures, save_* a Path,
# *_html a str; the remaining public names are helpers that return data and say which.
PICTURE, CHART = {"Image.Image", "list[Image.Image]"}, {"Figure"}
OTHER = {"Path", "str", "None", "torch.Tensor", "tuple[int, int]", "bool", "float", "list[Step]"}


def test_every_render_function_states_what_it_returns():
    import matplotlib.figure
    from PIL import Image

    funcs = {n: f for n in dir(see.render) if not n.startswith("_")
             and inspect.isfunction(f := getattr(see.render, n)) and f.__module__.startswith("seethrough.render")}
    assert len(funcs) > 40
    for name, f in funcs.items():
        ret = inspect.signature(f).return_annotation
        ret = ret.strip("\"'") if isinstance(ret, str) else getattr(ret, "__name__", str(ret))
        assert ret in PICTURE | CHART | OTHER, f"see.render.{name} returns {ret!r}: a picture is a PIL.Image, a chart a Figure"
        if name.startswith("save_"):
            assert ret in ("Path", "None"), name
    # the annotations say what the functions return
    stats = see.layer_stats(see.zoo.load("lenet-digits")[0], see.zoo.digits("test")[0][:20], ["relu1"], progress=False)
    fig = see.render.histogram_plot(stats)
    assert isinstance(fig, matplotlib.figure.Figure)
    assert isinstance(see.render.figure_to_image(fig), Image.Image)
    assert isinstance(see.render.overlay(torch.rand(1, 3, 8, 8), torch.rand(1, 1, 8, 8)), Image.Image)
