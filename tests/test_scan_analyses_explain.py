"""Explanations over a folder: maps, CSV, faithfulness scores, the same on any chunking and on Dask."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import seethrough as see
from seethrough.metrics import deletion, insertion
from seethrough.scan.explain_dir import explain_folder
from seethrough.testing import untouched


@pytest.fixture(scope="module")
def lenet():
    model, _ = see.zoo.load("lenet-digits")
    return model


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Six digits in two class folders, and one file that is not an image."""
    root = tmp_path_factory.mktemp("digits")
    x, y = see.zoo.digits("test")
    for i in range(6):
        (root / f"class{int(y[i]) % 2}").mkdir(exist_ok=True)
        see.zoo.to_image(x[i]).save(root / f"class{int(y[i]) % 2}" / f"d{i}.png")
    (root / "class0" / "broken.png").write_bytes(b"not a png")
    return root


def _inputs(folder, names):
    prep = see.zoo.load("lenet-digits")[1]
    return torch.cat([prep(see.zoo.read_image(folder / n)) for n in names])


def test_maps_csv_and_scores_match_direct_calls(lenet, folder, tmp_path):
    with untouched(lenet):
        r = explain_folder(lenet, folder, "saliency,gradcam", tmp_path, steps=5, preprocess=see.zoo.load("lenet-digits")[1],
                           labels=[str(i) for i in range(10)], progress=False)
    t = r.table
    assert len(t) == 12 and set(t.method) == {"saliency", "gradcam"}
    assert r.skipped == [("class0/broken.png", r.skipped[0][1])] and "cannot read" in r.skipped[0][1]
    assert (tmp_path / "skipped.csv").exists()
    pd.testing.assert_frame_equal(pd.read_csv(r.csv, dtype={"label": str, "predicted_label": str}), t, check_dtype=False)
    names = sorted(set(t.name))
    x = _inputs(folder, names)
    with untouched(lenet), torch.no_grad():
        pred = lenet(x).softmax(1)
    for k, name in enumerate(names):
        row = t[(t.name == name) & (t.method == "saliency")].iloc[0]
        assert row.predicted == int(pred[k].argmax()) and row.probability == pytest.approx(float(pred[k].max()), rel=1e-6)
        assert row.label == name.split("/")[0] and row.predicted_label == str(row.predicted)
        a = see.attribute(lenet, x[k:k + 1], "saliency", target=int(row.predicted))
        np.testing.assert_allclose(np.load(tmp_path / f"maps/{name}.saliency.npy"), a[0].numpy(), rtol=1e-6, atol=1e-8)
        assert (tmp_path / row["map"]).exists()
        seed = int(row.id)  # the random ranking is seeded by the image's id (seed 0)
        d = deletion(lenet, x[k:k + 1], a, int(row.predicted), steps=5, seed=seed, progress=False)
        i = insertion(lenet, x[k:k + 1], a, int(row.predicted), steps=5, seed=seed, progress=False)
        assert row.deletion == pytest.approx(float(d.score[0]), abs=1e-6)
        assert row.deletion_random == pytest.approx(float(d.random_score[0]), abs=1e-6)
        assert row.insertion == pytest.approx(float(i.score[0]), abs=1e-6)
        assert row.insertion_random == pytest.approx(float(i.random_score[0]), abs=1e-6)


def test_rows_do_not_depend_on_chunks_or_batches(lenet, folder, tmp_path):
    runs = [explain_folder(lenet, folder, "grad-x-input", tmp_path / f"o{c}{b}", steps=4, chunk_size=c, batch_size=b,
                           preprocess=see.zoo.load("lenet-digits")[1], progress=False).table
            for c, b in ((7, 16), (1, 1), (3, 2))]
    cols = ["name", "predicted", "deletion", "deletion_random", "insertion", "insertion_random"]
    for other in runs[1:]:
        pd.testing.assert_frame_equal(other[cols], runs[0][cols], rtol=1e-6)


@pytest.mark.slow  # a LocalCluster's workers import torch and seethrough: a minute and more on 2 busy cores
def test_the_dask_engine_gives_the_local_rows(folder, tmp_path):
    from seethrough.testing import torch_threads

    with torch_threads(1):  # the workers' arithmetic: one thread each
        local = explain_folder("lenet-digits", folder, "saliency", tmp_path / "local", steps=4, progress=False).table
    dask = explain_folder("lenet-digits", folder, "saliency", tmp_path / "dask", steps=4, engine="dask", workers=2,
                          progress=False).table
    cols = ["name", "predicted", "probability", "deletion", "deletion_random", "insertion", "insertion_random"]
    pd.testing.assert_frame_equal(dask[cols], local[cols], rtol=1e-6)
    np.testing.assert_array_equal(np.load(tmp_path / "dask/maps/class1/d0.png.saliency.npy"),
                                  np.load(tmp_path / "local/maps/class1/d0.png.saliency.npy"))


def test_bad_input_is_one_clear_line(lenet, folder, tmp_path):
    with pytest.raises(ValueError, match="unknown method"):
        explain_folder(lenet, folder, "gradkam", tmp_path)
    with pytest.raises(ValueError, match="no such folder"):
        explain_folder(lenet, tmp_path / "nowhere", "saliency", tmp_path)
    with pytest.raises(ValueError, match="engine must be"):
        explain_folder(lenet, folder, "saliency", tmp_path, engine="spark")
    with pytest.raises(ValueError, match="steps must be"):
        explain_folder(lenet, folder, "saliency", tmp_path, steps=0)


def test_the_cli_explains_a_folder(folder, tmp_path):
    from typer.testing import CliRunner

    from seethrough.cli import app

    res = CliRunner().invoke(app, ["explain", str(folder), "--method", "saliency", "-m", "lenet-digits", "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "6 maps of 6 images" in res.output and "skipped class0/broken.png" in res.output
    table = pd.read_csv(tmp_path / "explanations.csv")
    assert len(table) == 6 and (tmp_path / "maps" / "class1" / "d0.png.saliency.png").exists()
    bad = CliRunner().invoke(app, ["explain", str(folder), "--trust", "-m", "lenet-digits", "-o", str(tmp_path)])
    assert bad.exit_code == 2 and "--trust explains one image" in bad.output and "Traceback" not in bad.output
