"""Every command writes its raw results beside its pictures (issue 19 item 6): NAME.npz + NAME.json (+ .csv for a
table) in its -o folder, named in its last line, reloadable with seethrough.results.load, and equal to the library
call on the same input. CLI and library run under one thread so float32 kernels are the same on both sides."""
from __future__ import annotations

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import seethrough as see
from seethrough.cli import app
from seethrough.raw import CommandResult
from seethrough.results import equal, load
from seethrough.testing import torch_threads

runner = CliRunner()


@pytest.fixture(scope="module")
def lenet():
    return see.zoo.load("lenet-digits")


@pytest.fixture()
def digit(tmp_path):
    path = tmp_path / "digit.png"
    see.zoo.to_image(see.zoo.digits("test")[0][0]).save(path)
    return path


def run(args: list[str], folder, name: str, *suffixes: str) -> None:
    """Run a command; its last line names the raw files, which are all there."""
    with torch_threads(1):
        res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    last = res.output.strip().splitlines()[-1]
    assert last.startswith("raw results:"), res.output
    for suffix in suffixes or (".npz", ".json"):
        assert str(folder / f"{name}{suffix}") in last and (folder / f"{name}{suffix}").is_file(), (suffix, last)


def test_filters(lenet, tmp_path):
    run(["filters", "-m", "lenet-digits", "-l", "conv2", "--filters", "4", "--in-channels", "6", "-o", str(tmp_path)],
        tmp_path, "filters")
    r = load(tmp_path / "filters")
    assert isinstance(r, CommandResult) and r.options == {"layer": "conv2", "filters": 4, "channels": 6}
    assert equal(r.values["weight"], see.filters(lenet[0], "conv2", filters=4, channels=6))
    assert r.values["weight"].shape == (4, 6, 5, 5)


def test_activations(lenet, digit, tmp_path):
    run(["activations", str(digit), "-m", "lenet-digits", "-l", "conv2", "--top", "5", "-o", str(tmp_path)],
        tmp_path, "activations")
    r = load(tmp_path / "activations.json")
    model, prep = lenet
    with torch_threads(1):
        ref = see.activations(model, prep(digit), "conv2")["conv2"]
    assert r.values["activation"].shape == ref.shape and torch.allclose(r.values["activation"], ref, atol=1e-6)
    assert len(r.values["shown"]) == 5 and r.options["layer"] == "conv2" and r.seed is None


def test_stats(lenet, tmp_path):
    run(["stats", "-m", "lenet-digits", "-l", "relu3", "-l", "relu1", "-o", str(tmp_path)], tmp_path, "stats",
        ".npz", ".json", ".csv")
    r = load(tmp_path / "stats")
    with torch_threads(1):
        ref = see.layer_stats(lenet[0], see.zoo.digits("all")[0], ["relu3", "relu1"], progress=False)
    assert list(r.values) == ["relu3", "relu1"]
    for name, s in ref.items():
        got = r.values[name]
        assert type(got).__name__ == "LayerStats" and got.count == s.count
        assert torch.equal(got.active, s.active) and got.sparsity == pytest.approx(s.sparsity, abs=1e-9)
    table = pd.read_csv(tmp_path / "stats.csv")
    assert table["layer"].tolist() == ["relu3", "relu1"]
    assert table["dead"].tolist() == pytest.approx([ref["relu3"].dead_fraction, ref["relu1"].dead_fraction])


def test_topk(lenet, tmp_path):
    run(["topk", "-m", "lenet-digits", "-l", "conv1", "--units", "2", "--top", "4", "-o", str(tmp_path)], tmp_path,
        "topk", ".npz", ".json", ".csv")
    from seethrough.inspect.topk import TopK

    r = TopK.load(tmp_path / "topk")
    with torch_threads(1):
        ref = see.topk(lenet[0], see.zoo.digits("all")[0], "conv1", k=4, progress=False)
    assert torch.equal(r.indices, ref.indices) and torch.allclose(r.values, ref.values, atol=1e-6)
    assert torch.equal(r.boxes, ref.boxes) and r.options["k"] == 4


def test_hyperplanes(tmp_path):
    run(["hyperplanes", "--steps", "16", "--seed", "2", "-o", str(tmp_path)], tmp_path, "hyperplanes",
        ".npz", ".json", ".csv")
    r = load(tmp_path / "hyperplanes")
    with torch_threads(1):
        ref = see.hyperplanes(steps=16, seed=2)
    assert type(r).__name__ == "HyperplaneRun" and r.seed == 2
    assert [s.step for s in r.snapshots] == [s.step for s in ref.snapshots] == [1, 4, 7, 10, 16]
    assert r.snapshots[-1].loss == pytest.approx(ref.snapshots[-1].loss, abs=1e-6)


def test_visualize(lenet, tmp_path):
    from seethrough.commands.optimize import _input_size
    from seethrough.commands.base import load as load_model

    run(["visualize", "logit:3", "-m", "lenet-digits", "--param", "pixel", "--no-transforms", "--steps", "6",
         "--seed", "4", "-o", str(tmp_path)], tmp_path, "visualize", ".npz", ".json", ".csv")
    r = load(tmp_path / "visualize")
    side, channels = _input_size(load_model("lenet-digits", None, False), None)
    with torch_threads(1):
        ref = see.visualize(lenet[0], ["logit:3"], size=side, channels=channels, param="pixel", steps=6,
                            transforms=None, seed=4)
    assert type(r).__name__ == "Visualization" and r.seed == 4 and r.names == ["logit:3"]
    assert torch.allclose(r.x, ref.x, atol=1e-5) and torch.allclose(r.trace, ref.trace, rtol=1e-4, atol=1e-5)
    assert r.trace[0, -1] > r.trace[0, 0]  # the optimisation raised the logit: the file is not the start


def test_dream_and_invert(lenet, tmp_path):
    from seethrough.commands.base import load as load_model

    photo = tmp_path / "coffee.png"
    see.zoo.image("coffee").resize((64, 48)).save(photo)
    run(["dream", str(photo), "-m", "tests.factories:tiny", "-l", "0", "--steps", "2", "--octaves", "2",
         "-o", str(tmp_path / "d")], tmp_path / "d", "dream", ".npz", ".json", ".csv")
    r = load(tmp_path / "d" / "dream")
    tiny = load_model("tests.factories:tiny", None, False)
    with torch_threads(1):
        ref = see.dream(tiny.model, tiny.preprocess(photo), ["0"], steps=2, octaves=2, step_size=0.01, seed=0)
    assert torch.allclose(r.x, ref.x, atol=1e-5) and r.x.shape == (1, 3, 224, 224)

    run(["invert", str(photo), "-m", "lenet-digits", "-l", "relu1", "-l", "fc3", "--steps", "5", "-o",
         str(tmp_path / "i")], tmp_path / "i", "invert")
    r = load(tmp_path / "i" / "invert")
    model, prep = lenet
    with torch_threads(1):
        x = prep(photo)
        ref = see.invert(model, x, ["relu1", "fc3"], steps=5, tv=3.0, alpha=1.0, seed=0)
    assert list(r.values) == ["original", "relu1", "fc3"] and equal(r.values["original"], x)
    for got, want in zip((r.values["relu1"], r.values["fc3"]), ref):
        assert type(got).__name__ == "Inversion" and got.layer == want.layer
        assert torch.allclose(got.x, want.x, atol=1e-5)


def test_predict_writes_its_table_only_with_out(lenet, digit, tmp_path):
    with torch_threads(1):
        plain = runner.invoke(app, ["predict", str(digit), "-m", "lenet-digits", "--top", "3"])
    assert plain.exit_code == 0 and "raw results" not in plain.output
    run(["predict", str(digit), "-m", "lenet-digits", "--top", "3", "-o", str(tmp_path)], tmp_path, "predictions",
        ".npz", ".json", ".csv")
    r = load(tmp_path / "predictions")
    model, prep = lenet
    with torch_threads(1):
        (ref,) = see.predict(model, prep(digit), k=3, labels=see.zoo.labels("lenet-digits"))
    got = r.values["predictions"]
    assert [p.index for p in got] == [p.index for p in ref]
    assert [p.probability for p in got] == pytest.approx([p.probability for p in ref], abs=1e-6)
    table = pd.read_csv(tmp_path / "predictions.csv")
    assert table["class"].tolist() == [p.index for p in ref] and table["rank"].tolist() == [1, 2, 3]


def test_explain_a_folder_writes_maps_like_one_image(lenet, tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    x, _ = see.zoo.digits("test")
    for i in range(2):
        see.zoo.to_image(x[i]).save(imgs / f"{i}.png")
    out = tmp_path / "o"
    with torch_threads(1):
        res = runner.invoke(app, ["explain", str(imgs), "-m", "lenet-digits", "--method", "saliency", "-o", str(out)])
    assert res.exit_code == 0, res.output
    maps, scores = load(out / "maps.npz"), load(out / "scores.json")
    assert sorted(maps) == ["0.png.saliency", "1.png.saliency"] and scores["methods"] == ["saliency"]
    assert scores["images"] == ["0.png", "1.png"] and len(scores["explanations"]) == 2
    model, prep = lenet
    for i in range(2):
        with torch_threads(1):
            xi = prep(imgs / f"{i}.png")
            ref = see.attribute(model, xi, "saliency", target=int(model(xi).argmax(1)[0]))
        got = maps[f"{i}.png.saliency"]
        assert got.numel() == ref.numel() and torch.allclose(got.flatten(), ref.flatten(), atol=1e-6)


def test_explain_rows_writes_maps_like_one_image(tmp_path):
    from seethrough.commands.tabular import pick_rows
    from seethrough.zoo.tabular import background

    out = tmp_path / "r"
    with torch_threads(1):
        res = runner.invoke(app, ["explain", "-m", "mlp-breast-cancer", "--row", "4", "--method",
                                  "saliency,integrated-gradients", "-o", str(out)])
    assert res.exit_code == 0, res.output
    maps, scores = load(out / "maps.npz"), load(out / "scores.json")
    model, _ = see.zoo.load("mlp-breast-cancer")
    rows, ids, names = pick_rows("mlp-breast-cancer", 4, None)
    target = int(model(rows).argmax(1)[0])
    assert scores["rows"] == ids == ["row4"] and scores["classes"] == [target] and scores["features"] == names
    for m in ("saliency", "integrated-gradients"):
        with torch_threads(1):
            ref = see.attribute(model, rows, m, target=[target], kind="tabular", feature_names=names,
                                background=background())
        assert torch.allclose(maps[m], ref.reshape(1, -1), atol=1e-6), m


def test_text_commands(tmp_path):
    from seethrough import zoo
    from seethrough.text import attention_maps
    from seethrough.text.explain import explain_text

    sentence = "The team won the final match."
    run(["explain-text", sentence, "--method", "rollout", "-o", str(tmp_path / "e")], tmp_path / "e", "explain-text",
        ".npz", ".json", ".csv")
    r = load(tmp_path / "e" / "explain-text")
    net, prep = zoo.load("minilm-l6-topics")
    with torch_threads(1):
        t = prep(sentence)
        ref = explain_text(net, t, "rollout", None)
    got = r.values["rollout"]
    assert type(got).__name__ == "TextExplanation" and got.words == ref.words and got.target == ref.target
    assert torch.allclose(got.word_scores, ref.word_scores, atol=1e-6)
    table = pd.read_csv(tmp_path / "e" / "explain-text.csv")
    assert table["deletion_auc"].tolist() == pytest.approx([r.values["rollout-curves"].deletion_auc])

    run(["attention", sentence, "-o", str(tmp_path / "a")], tmp_path / "a", "attention")
    r = load(tmp_path / "a" / "attention")
    net, prep = zoo.load("minilm-l6")
    with torch_threads(1):
        ref = attention_maps(net, prep(sentence))
    assert r.values["attention"].shape == ref.shape and torch.allclose(r.values["attention"], ref, atol=1e-6)
    assert r.options["tokens"][0] == "[CLS]"


def test_probe_and_bias(tmp_path):
    from seethrough import zoo
    from seethrough.text import bias as B
    from seethrough.text.probing import probe

    run(["probe", "--samples", "40", "--tasks", "length", "-o", str(tmp_path / "p")], tmp_path / "p", "probe",
        ".npz", ".json", ".csv")
    r = load(tmp_path / "p" / "probe")
    with torch_threads(1):
        ref = probe(zoo.load("minilm-l6")[0], zoo.tokenizer("minilm-l6"), n_samples=40, seed=0, tasks=["length"])
    assert type(r).__name__ == "ProbeResult"
    assert torch.allclose(r.accuracy["length"].double(), ref.accuracy["length"].double(), atol=1e-9)

    run(["bias", "--words", "nurse,carpenter", "-o", str(tmp_path / "b")], tmp_path / "b", "bias", ".npz", ".json",
        ".csv")
    r = load(tmp_path / "b" / "bias")
    net, tok = zoo.load("minilm-l6")[0], zoo.tokenizer("minilm-l6")
    vec = B.word_vectors(net, tok, ["nurse", "carpenter"]).double()
    pairs = torch.stack([B.word_vectors(net, tok, list(p)) for p in B.DEFINITIONAL_PAIRS])
    g, _ = B.gender_direction(pairs, "pca")
    assert torch.allclose(r.values["before"], B.projections(vec, g), atol=1e-9)
    assert type(r.values["weat6"]).__name__ == "WeatResult"
    assert pd.read_csv(tmp_path / "b" / "bias.csv")["word"].tolist() == ["nurse", "carpenter"]
