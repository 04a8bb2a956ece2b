"""see.scan on one process: agreement with topk / layer_stats / embed, sources, streaming, hygiene, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import seethrough as see
from seethrough.progress import Cancelled, listen
from seethrough.testing import untouched


@pytest.fixture(scope="module")
def lenet():
    return see.zoo.load("lenet-digits")[0]


@pytest.fixture(scope="module")
def digits():
    return see.zoo.digits("test")


def states_equal(a, b) -> None:
    assert a.accumulators.keys() == b.accumulators.keys()
    for key in a.accumulators:
        sa, sb = a[key].state(), b[key].state()
        assert sa.keys() == sb.keys(), key
        for f in sa:
            assert np.array_equal(np.asarray(sa[f]), np.asarray(sb[f])), (key, f)


def test_scan_reads_like_topk_layer_stats_and_embed(lenet, digits):
    x, y = digits
    with untouched(lenet):
        # batches of 32 on both sides: the same float32 activations, so exact agreement is expected
        res = see.scan(lenet, (x, y), ["conv2", "relu3"], options={"reservoir": {"size": 100}}, batch_size=32,
                       chunk_size=32, progress=False)
    assert res.complete and res.counts()["seen"] == 360 and res.skipped == []
    for layer, unit in (("conv2", None), ("relu3", 7)):
        ref = see.topk(lenet, x, layer, unit=unit, k=9, batch_size=32, progress=False)
        got = see.topk(lenet, None, layer, unit=unit, k=9, scan=res)
        assert torch.equal(got.indices, ref.indices) and torch.equal(got.values, ref.values.double())
        assert (got.positions is None) == (ref.positions is None)
        if ref.positions is not None:
            assert torch.equal(got.positions, ref.positions) and torch.equal(got.boxes, ref.boxes)
    ref = see.layer_stats(lenet, x, ["conv2", "relu3"], batch_size=32, progress=False)
    got = see.layer_stats(None, None, ["conv2", "relu3"], scan=res)
    for layer in ref:
        r, g = ref[layer], got[layer]
        assert (g.count, g.above, g.values, g.low, g.high) == (r.count, r.above, r.values, r.low, r.high)
        assert torch.equal(g.hist, r.hist) and torch.equal(g.active, r.active)
        assert g.total == pytest.approx(r.total, rel=1e-9) and g.std == pytest.approx(r.std, rel=1e-6)
    emb = see.embed(None, None, ["relu3"], "pca", scan=res)
    ids = torch.from_numpy(res["relu3", "reservoir"].ids)
    ref = see.embed(lenet, (x[ids], y[ids]), ["relu3"], "pca", progress=False)
    assert torch.equal(emb.labels, y[ids]) and len(ids) == 100
    torch.testing.assert_close(emb["relu3"], ref["relu3"], atol=1e-4, rtol=1e-4)


def test_sources_tensor_dataset_loader_give_identical_scans(lenet, digits):
    x, y = digits
    x, y = x[:96], y[:96]
    kw = dict(layers=["relu2", "fc3"], batch_size=16, chunk_size=16, progress=False)
    ref = see.scan(lenet, (x, y), **kw)
    ds = torch.utils.data.TensorDataset(x, y)
    for data in (ds, torch.utils.data.DataLoader(ds, batch_size=16), see.scan.source(x, labels=y)):
        states_equal(ref, see.scan(lenet, data, **kw))
    assert see.scan.source(ds).identity == see.scan.source(torch.utils.data.TensorDataset(x.clone(), y)).identity
    assert see.scan.source(ds).identity != see.scan.source(torch.utils.data.TensorDataset(x.flip(0), y)).identity


class CountingDataset(torch.utils.data.Dataset):
    def __init__(self, x):
        self.x, self.reads = x, []

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        self.reads.append(i)
        return self.x[i]


def test_scan_streams_each_example_once_in_batches(lenet, digits):
    ds = CountingDataset(digits[0][:100])
    see.scan.source(ds)  # the identity probes three items
    ds.reads.clear()
    calls = []
    orig = see.scan.DatasetSource.read

    def spy(self, ids):
        calls.append(list(ids))
        return orig(self, ids)

    see.scan.DatasetSource.read = spy
    try:
        res = see.scan(lenet, ds, "relu1", ["moments"], batch_size=8, chunk_size=20, progress=False)
    finally:
        see.scan.DatasetSource.read = orig
    # _item_bytes reads example 0 once to size the batches; after that each example is read exactly once
    assert calls[0] == [0]
    assert sorted(i for c in calls[1:] for i in c) == list(range(100)) and max(len(c) for c in calls) <= 8
    assert res.n_seen == 100


def _write_folder(root, x, per_class=10):
    paths = []
    for c, name in enumerate(["cats", "dogs", "owls"]):
        (root / name).mkdir()
        for j in range(per_class):
            img = Image.fromarray((x[c * per_class + j, 0].numpy() * 255).round().astype(np.uint8))
            p = root / name / f"{j:02d}.png"
            img.save(p)
            paths.append(p)
    (root / "dogs" / "broken.png").write_bytes(b"not a png at all")
    (root / "notes.txt").write_text("a README in the data folder")
    (root / ".hidden.png").write_bytes(b"ignored")
    return paths


def test_folder_source_skips_and_lists_unreadable_files(tmp_path, lenet, digits):
    paths = _write_folder(tmp_path, digits[0])
    prep = see.zoo.preprocess("lenet-digits")
    with untouched(lenet):
        res = see.scan("lenet-digits", tmp_path, ["relu3"], ["topk", "moments", "reservoir"], batch_size=8, progress=False)
    assert res.n == 32 and res.n_seen == 30
    assert [name for name, _ in res.skipped] == ["dogs/broken.png", "notes.txt"]
    assert all("cannot read" in why for _, why in res.skipped)
    assert res.classes == ["cats", "dogs", "owls"] and res.source.name(0) == "cats/00.png"
    # the same images as a tensor, read and preprocessed by hand: the same numbers
    ref_x = torch.cat([prep(see.zoo.read_image(p)) for p in paths])
    ref = see.scan(lenet, ref_x, ["relu3"], ["topk", "moments"], batch_size=8, progress=False)
    folder_ids = [i for i in range(32) if res.source.name(i) not in ("dogs/broken.png", "notes.txt")]
    assert np.array_equal(res["relu3", "topk"].ids, np.array(folder_ids)[ref["relu3", "topk"].ids])
    np.testing.assert_allclose(res["relu3", "moments"].mean, ref["relu3", "moments"].mean, rtol=1e-6)
    names = [res.source.name(int(i)).split("/")[0] for i in res["relu3", "reservoir"].ids]
    assert [res.classes[c] for c in res["relu3", "reservoir"].labels] == names
    x0, label, name = res.source[31]
    assert name == "owls/09.png" and label == 2 and x0.shape == (1, 32, 32)


def test_train_mode_model_scans_as_in_eval_and_is_left_as_found(digits):
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(inplace=True),
                                torch.nn.Dropout(0.5), torch.nn.Flatten(), torch.nn.Linear(4 * 30 * 30, 3))
    x = digits[0][:40]
    ref = see.scan(model.eval(), x, ["2", "5"], batch_size=8, progress=False)
    model.train()
    with untouched(model):
        got = see.scan(model, x, ["2", "5"], batch_size=8, progress=False)
    states_equal(ref, got)
    with untouched(model, allow_raise=Cancelled), listen(lambda d, done, t: (_ for _ in ()).throw(Cancelled("stop"))):
        see.scan(model, x, ["2"], batch_size=8, progress=False)


def test_float64_model_keeps_float64_activations(digits):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(1024, 5)).double()
    x = digits[0][:20].double()
    res = see.scan(model, x, "1", ["topk", "moments"], batch_size=7, progress=False)
    out = model(x).detach()
    np.testing.assert_array_equal(res["1", "topk"].values[:, 0], out.max(0).values.numpy())
    np.testing.assert_allclose(res["1", "moments"].mean, out.mean(0).numpy(), rtol=1e-12)


def test_bad_input_is_one_clear_line(lenet, digits, tmp_path):
    x = digits[0][:10]
    with pytest.raises(ValueError, match="conv9"):
        see.scan(lenet, x, ["conv9"], progress=False)
    with pytest.raises(ValueError, match="engine must be 'local' or 'dask'"):
        see.scan(lenet, x, "fc3", engine="spark", progress=False)
    with pytest.raises(ValueError, match="address= is a Dask scheduler"):
        see.scan(lenet, x, "fc3", address="tcp://127.0.0.1:1", progress=False)
    with pytest.raises(ValueError, match="options given for accumulators not scanned: topk"):
        see.scan(lenet, x, "fc3", ["moments"], options={"topk": {"k": 3}}, progress=False)
    with pytest.raises(ValueError, match="no such folder"):
        see.scan(lenet, tmp_path / "missing", "fc3", progress=False)
    with pytest.raises(TypeError, match="data must be a folder path, a tensor"):
        see.scan(lenet, 42, "fc3", progress=False)

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            yield x[0]

    with pytest.raises(ValueError, match="map-style Dataset"):
        see.scan(lenet, Stream(), "fc3", progress=False)
    res = see.scan(lenet, x, ["fc3"], ["topk"], options={"topk": {"k": 3}}, batch_size=5, progress=False)
    with pytest.raises(ValueError, match=r"k must be an int in 1..3"):
        see.topk(lenet, None, "fc3", k=4, scan=res)
    with pytest.raises(ValueError, match="the scan has no 'hist' for layer 'fc3'"):
        see.layer_stats(None, None, "fc3", scan=res)
    with pytest.raises(KeyError, match="no 'moments' for layer 'fc3'"):
        res["fc3", "moments"]
    with pytest.raises(IndexError, match="out of range"):
        res.source[10]
