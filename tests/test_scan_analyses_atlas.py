"""The unit atlas and the activation atlas, read from scans of lenet-digits on scikit-learn's digits."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

import seethrough as see
from seethrough.hooks import hooks
from seethrough.inspect.topk import crops
from seethrough.scan.activation_atlas import Positions, activation_atlas, predicted_classes
from seethrough.scan.atlas import unit_page_data, unit_records, visualizations, write_atlas
from seethrough.testing import untouched


@pytest.fixture(scope="module")
def lenet():
    model, _ = see.zoo.load("lenet-digits")
    return model


@pytest.fixture(scope="module")
def digits():
    return see.zoo.digits("test")


@pytest.fixture(scope="module")
def scanned(lenet, tmp_path_factory):
    out = tmp_path_factory.mktemp("scan")
    with untouched(lenet):
        return see.scan(lenet, see.scan.digits_source(), ["conv2", "relu3"], ("topk", "hist", "dead", "moments"),
                        batch_size=64, out=out, progress=False)


def _acts(model, x, layer):
    with torch.no_grad(), hooks(model, capture=layer, detach=True) as rec:
        model(x)
    return rec[layer]


def test_unit_examples_agree_with_inspect_topk_crops(lenet, digits, scanned):
    x, _ = digits
    with untouched(lenet):
        recs = unit_records(scanned, "conv2", [0, 3, 7], lenet, visualize=False)
        ref = see.topk(lenet, x, "conv2", k=9, progress=False)
    for r in recs:
        assert r.ids == ref.indices[r.unit].tolist()
        np.testing.assert_allclose(r.values, ref.values[r.unit].double().numpy(), rtol=0, atol=0)
        assert r.cropped
        expected = crops(x[ref.indices[r.unit]], ref.boxes[r.unit])
        assert torch.equal(r.images, expected)


def test_unit_state_histogram_and_moments_are_the_data_sets(lenet, digits, scanned):
    x, _ = digits
    act = _acts(lenet, x, "conv2")  # (N, 16, 10, 10)
    recs = unit_records(scanned, "conv2", None, None, visualize=False)
    assert len(recs) == 16
    for r in recs:
        a = act[:, r.unit]
        assert r.dead == bool((a <= 0).all())
        assert r.active == pytest.approx(float((a > 0).flatten(1).any(1).double().mean()), abs=0)
        assert sum(r.hist_counts) == a.numel()
        assert r.mean == pytest.approx(float(a.double().mean()), rel=1e-9)
        assert not r.images is None and not r.cropped  # no model: whole inputs
    assert any(r.dead for r in recs) and not all(r.dead for r in recs)  # this layer has both (a real property of lenet)


def test_visualisations_are_cached_in_the_scan_folder(lenet, scanned):
    with untouched(lenet):
        first = visualizations(scanned, lenet, "conv2", [1, 2], steps=3)
        cached = sorted(p.name for p in (scanned.folder / "atlas" / "vis" / "conv2").iterdir())
        again = visualizations(scanned, lenet, "conv2", [2, 1], steps=3)
        direct = torch.cat([see.visualize(lenet, f"channel:conv2:{u}", size=32, channels=1, steps=3, seed=0).x for u in (1, 2)])
    assert cached == ["1-3-0-32x32.pt", "2-3-0-32x32.pt"]
    assert torch.equal(again, first.flip(0))
    assert torch.equal(first, direct)


def test_unit_page_data_is_json_for_the_explorer(lenet, scanned):
    with untouched(lenet):
        d = unit_page_data(scanned, "conv2", 4, lenet, steps=2)
    json.dumps(d)
    assert d["state"] in ("dead", "alive") and d["units"] == 16 and len(d["examples"]) == 9
    assert d["examples_note"] == "receptive-field crops"
    assert all(e["image"].startswith("data:image/png;base64,") for e in d["examples"])
    assert d["visualization"].startswith("data:image/png;base64,") and "2 steps" in d["visualization_note"]
    assert d["examples"][0]["value"] >= d["examples"][-1]["value"]
    with pytest.raises(ValueError, match="out of range"):
        unit_page_data(scanned, "conv2", 16)
    with pytest.raises(ValueError, match="was not scanned"):
        unit_page_data(scanned, "conv1", 0)


def test_a_different_model_is_refused(scanned):
    other = see.zoo.load("lenet-digits")[0]
    with torch.no_grad():
        other.conv1.weight.add_(1.0)
    with pytest.raises(ValueError, match="not the one that was scanned"):
        unit_records(scanned, "conv2", [0], other)


def test_static_atlas_pages_are_self_contained(lenet, scanned, tmp_path):
    with untouched(lenet):
        index = write_atlas(scanned, lenet, tmp_path / "atlas", units_per_layer=3, steps=2)
    pages = sorted(p.relative_to(index.parent).as_posix() for p in index.parent.rglob("*.html"))
    assert pages == ["conv2.html", "conv2/0.html", "conv2/1.html", "conv2/2.html", "index.html",
                     "relu3.html", "relu3/0.html", "relu3/1.html", "relu3/2.html"]
    for page in index.parent.rglob("*.html"):
        text = page.read_text()
        assert "http://" not in text and "https://" not in text and "<script" not in text
        for ref in re.findall(r"(?:src|href)='([^']+)'", text):
            assert (page.parent / ref).exists(), (page, ref)
    assert "unit 1" in (index.parent / "conv2.html").read_text()


def test_positions_sample_merges_for_any_split_and_holds_true_activations(lenet, digits):
    x, _ = digits
    act = _acts(lenet, x[:60], "relu2")  # (60, 16, 5, 5)
    ids = torch.arange(60)

    def run(bounds, seed=0):
        parts = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            parts.append(Positions(size=50, per_example=3, seed=1))
            parts[-1].add(act[a:b], ids[a:b])
        g = np.random.default_rng(seed)
        acc = parts.pop(int(g.integers(len(parts))))
        while parts:  # any order, either side
            other = parts.pop(int(g.integers(len(parts))))
            acc = acc.merge(other) if g.random() < 0.5 else other.merge(acc)
        return acc

    whole = run([0, 60])
    for seed, bounds in enumerate(([0, 7, 30, 31, 60], [0, 59, 60], [0, 20, 40, 60])):
        other = run(bounds, seed)
        for field in ("ids", "pos", "keys", "acts"):
            np.testing.assert_array_equal(getattr(other, field), getattr(whole, field))
    flat = act.flatten(2)
    np.testing.assert_array_equal(whole.acts, flat[torch.from_numpy(whole.ids), :, torch.from_numpy(whole.pos)].numpy())
    assert len(set(zip(whole.ids.tolist(), whole.pos.tolist()))) == 50  # distinct positions


@pytest.fixture(scope="module")
def sampled(lenet):
    with untouched(lenet):
        return see.scan(lenet, see.scan.digits_source(), ["relu2"], ["positions"],
                        options={"positions": {"size": 600, "per_example": 2}}, batch_size=64, progress=False)


def test_activation_atlas_cells_are_the_means_of_their_samples(lenet, sampled):
    with untouched(lenet):
        a = activation_atlas(lenet, sampled, "relu2", grid=4, min_count=5, method="pca", steps=6)
    s = sampled["relu2", "positions"]
    cell = (a.layout.double() * 4).floor().long().clamp(0, 3)
    rows, cols = 3 - cell[:, 1], cell[:, 0]
    assert a.images.shape == (len(a.cells), 1, 32, 32)
    for (r, c), n, m in zip(a.cells.tolist(), a.counts.tolist(), a.means):
        inside = (rows == r) & (cols == c)
        assert int(inside.sum()) == n >= 5
        np.testing.assert_allclose(m.numpy(), s.acts[inside.numpy()].astype(np.float64).mean(0), rtol=1e-6, atol=1e-7)
    full = torch.bincount(rows * 4 + cols, minlength=16)
    assert sorted((r * 4 + c) for r, c in a.cells.tolist()) == torch.nonzero(full >= 5).flatten().tolist()
    assert (a.trace[:, -1] >= a.trace[:, 0]).all()  # every cell's optimisation raised its direction score
    assert a.image(cell=16).size == (64, 64)
    again = activation_atlas(lenet, sampled, "relu2", grid=4, min_count=5, method="pca", steps=6)
    assert torch.equal(again.images, a.images) and torch.equal(again.layout, a.layout)


def test_class_atlas_keeps_only_images_predicted_as_the_class(lenet, sampled, digits):
    x, _ = digits
    with untouched(lenet):
        a = activation_atlas(lenet, sampled, "relu2", grid=4, min_count=2, method="pca", steps=2, cls=3)
    s = sampled["relu2", "positions"]
    truth = lenet(x).argmax(1)[torch.from_numpy(s.ids)]
    assert torch.equal(a.predicted, truth)
    assert torch.equal(predicted_classes(lenet, sampled.source, torch.from_numpy(s.ids)), truth)
    assert int(a.counts.sum()) <= int((truth == 3).sum()) and a.settings["samples"] == int((truth == 3).sum())
    with pytest.raises(ValueError, match="positions"):
        activation_atlas(lenet, sampled, "relu3")


@pytest.mark.slow
def test_activation_atlas_default_layout_is_umap_and_seeded(lenet, sampled):
    a = activation_atlas(lenet, sampled, "relu2", grid=4, steps=2)
    b = activation_atlas(lenet, sampled, "relu2", grid=4, steps=2)
    assert a.settings["method"] == "umap" and torch.equal(a.layout, b.layout)


def test_the_explorer_unit_view_reads_a_scan(lenet, scanned):
    pytest.importorskip("fastapi")
    from seethrough.web import views
    from seethrough.web.session import session_for

    s = session_for(lenet, see.zoo.load("lenet-digits")[1], name="lenet-digits")
    s.scan = scanned
    with untouched(lenet):
        page = unit_page_data(scanned, "conv2", 5, lenet, visualize=False)
        view = views.unit(s, "digit-3", "conv2", 5, steps=2)
    assert [e["index"] for e in view["examples"]] == [e["id"] for e in page["examples"]]
    assert [e["image"] for e in view["examples"]] == [e["image"] for e in page["examples"]]
    assert "from the scan of 360 examples" in view["examples_note"] and view["scan"]["state"] == page["state"]
    s.restore_modes()
