"""Layers as embeddings: export files, pictures, crops and the command line."""
import json

import numpy as np
import pytest
import torch
from matplotlib.offsetbox import AnnotationBbox
from typer.testing import CliRunner

import seethrough as see
from seethrough.cli import app
from seethrough.embed import photo_crops, random_crops, to_json, to_projector


@pytest.fixture(scope="module")
def result():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(10, 6, generator=g) + 5 * c for c in range(3)])
    net = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU())
    return see.embed(net, (x, torch.arange(3).repeat_interleave(10)), ["input", "1"], "pca", classes=["a", "b", "c"], k=3,
                     purity_k=5, progress=False)


def test_projector_files_round_trip(result, tmp_path):
    paths = to_projector(result, tmp_path)
    assert [p.name for p in paths] == ["input.tsv", "1.tsv", "metadata.tsv", "projector_config.json"]
    for name in ("input", "1"):
        np.testing.assert_allclose(np.loadtxt(tmp_path / f"{name}.tsv", delimiter="\t"), result.features[name].numpy(), rtol=1e-5)
    meta = (tmp_path / "metadata.tsv").read_text().splitlines()
    assert meta[0] == "index\tlabel\tclass" and meta[1] == "0\t0\ta" and meta[-1] == "29\t2\tc" and len(meta) == 31
    cfg = json.loads((tmp_path / "projector_config.json").read_text())
    assert cfg["embeddings"][1] == {"tensorName": "1", "tensorShape": [30, 4], "tensorPath": "1.tsv", "metadataPath": "metadata.tsv"}


def test_json_holds_coordinates_labels_and_scores(result, tmp_path):
    d = json.loads(to_json(result, tmp_path / "e.json").read_text())
    assert d["labels"] == result.labels.tolist() and d["classes"] == ["a", "b", "c"] and d["n"] == 30
    layer = d["layers"][1]
    np.testing.assert_allclose(layer["coords"], result["1"].numpy(), atol=1e-5)
    assert layer["separation"] == result.separation["1"]._asdict() and layer["dims"] == 4
    with pytest.raises(ValueError, match=r"\['fc'\] are not in this embedding"):
        to_json(result, tmp_path / "x.json", ["fc"])


def test_unlabelled_metadata_has_no_header(tmp_path):
    e = see.embed(torch.nn.Linear(3, 2), torch.randn(6, 3), ["input"], "pca", progress=False)
    to_projector(e, tmp_path)
    assert (tmp_path / "metadata.tsv").read_text().splitlines() == [str(i) for i in range(6)]
    assert e.separation == {}


def test_embedding_figure_titles_carry_the_scores(result):
    fig = see.render.embedding(result)
    s = result.separation["1"]
    title = fig.axes[1].get_title()
    assert title.startswith("1 · 4 dims") and f"3-NN acc. {s.knn:.1%} → {s.knn_2d:.1%}" in title
    assert f"5-NN purity {s.purity:.1%} → {s.purity_2d:.1%}" in title
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == ["a", "b", "c"]
    offsets = fig.axes[0].collections[2].get_offsets()  # class "c", the third scatter call
    np.testing.assert_allclose(offsets, result["input"][result.labels == 2].numpy(), rtol=1e-6)


def test_thumbnail_markers_one_per_point_framed_by_class():
    x = torch.rand(5, 3, 8, 8)
    fig = see.render.scatter(torch.randn(5, 2), torch.tensor([0, 1, 0, 1, 2]), thumbnails=x)
    boxes = [a for a in fig.axes[0].artists if isinstance(a, AnnotationBbox)]
    assert len(boxes) == 5
    np.testing.assert_allclose(boxes[4].offsetbox.get_data(), x[4].permute(1, 2, 0).numpy())
    with pytest.raises(ValueError, match="one per point"):
        see.render.scatter(torch.randn(5, 2), thumbnails=x[:3])


def test_random_crops_full_scale_crop_is_the_image_and_seeds_differ():
    img = torch.rand(3, 16, 16)
    torch.testing.assert_close(random_crops(img, 2, 16, scale=(1.0, 1.0)), img.expand(2, -1, -1, -1))
    a, b = random_crops(img, 3, 8, seed=0), random_crops(img, 3, 8, seed=1)
    assert not torch.equal(a, b) and a.min() >= 0 and a.max() <= 1
    with pytest.raises(ValueError, match="scale must be"):
        random_crops(img, 2, 8, scale=(0.5, 0.2))


def test_photo_crops_label_each_photo():
    x, y, names = photo_crops(3, 24, photos=["coffee", "rocket"], seed=5)
    assert names == ["coffee", "rocket"] and y.tolist() == [0, 0, 0, 1, 1, 1]
    torch.testing.assert_close(x[3:], random_crops(see.zoo.Preprocess(resize=320, crop=320)(see.zoo.image("rocket")), 3, 24, seed=6))


runner = CliRunner()


def test_cli_writes_the_figure_and_the_exports(tmp_path):
    out, exp = tmp_path / "e", tmp_path / "exp"
    res = runner.invoke(app, ["embed", "--model", "tests.factories:tiny", "--data", "photos", "--samples", "4", "--method",
                              "pca", "-l", "input,3", "--out", str(out), "--export", str(exp)])
    assert res.exit_code == 0, res.output
    assert (out / "embed.png").stat().st_size > 1000 and "figure written" in res.output
    d = json.loads((exp / "embed.json").read_text())
    assert [layer["name"] for layer in d["layers"]] == ["input", "3"] and d["n"] == 4 * len(see.zoo.images())
    assert (exp / "3.tsv").exists() and (exp / "metadata.tsv").read_text().splitlines()[1].endswith(see.zoo.images()[0])


@pytest.mark.parametrize("args,text", [
    (["--layer", "input,fc9"], "unknown layer 'fc9'"),
    (["--method", "tnse"], "unknown projection 'tnse'; available: tsne, pca, umap"),
    (["--data", "/nonexistent"], "--data must be 'digits', 'photos' or an existing folder"),
])
def test_cli_bad_input_is_one_line(args, text, tmp_path):
    res = runner.invoke(app, ["embed", "--model", "tests.factories:tiny", "--data", "photos", "--samples", "2", *args,
                              "--out", str(tmp_path / "e")])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and text in res.output
