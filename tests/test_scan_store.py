"""Stored scans: the folder format, resuming an interrupted scan, a full disk, and the CLI."""
from __future__ import annotations

import errno
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import seethrough as see
from seethrough.cli import app
from seethrough.progress import Cancelled, listen
from seethrough.scan import store

from .test_scan_engine import states_equal

KW = dict(layers=["conv2", "relu3"], batch_size=16, chunk_size=24, progress=False)  # 15 chunks of the test digits


@pytest.fixture(scope="module")
def lenet():
    return see.zoo.load("lenet-digits")[0]


@pytest.fixture(scope="module")
def data():
    return see.zoo.digits("test")


@pytest.fixture(scope="module")
def whole(lenet, data):
    return see.scan(lenet, data, **KW)


def _stop_after(chunks: int):
    def listener(desc, done, total):
        if desc == "scan" and done == chunks:
            raise Cancelled(f"interrupted after {done} chunks")

    return listener


def test_an_interrupted_scan_resumes_to_the_identical_result(tmp_path, lenet, data, whole):
    with pytest.raises(Cancelled), listen(_stop_after(5)):
        see.scan(lenet, data, out=tmp_path, save_every=2, **KW)
    m = store.read_manifest(tmp_path)
    assert m["finished"] == [0, 1, 2, 3] and not m["complete"] and m["n_chunks"] == 15  # saved every 2 chunks
    partial = see.scan.load(tmp_path)
    assert not partial.complete and partial.n_seen == 96
    with pytest.raises(ValueError, match=r"partial \(4 of 15 chunks, 96 of 360 examples\)"):
        see.topk(lenet, None, "conv2", scan=tmp_path)
    ran = []
    with listen(lambda desc, done, total: ran.append(done) if desc == "scan" else None):
        res = see.scan(lenet, data, out=tmp_path, **KW)
    assert res.resumed == 4 and ran == list(range(5, 16))  # the finished chunks were skipped
    states_equal(res, whole)
    assert res.n_seen == 360 and see.scan.load(tmp_path).complete
    states_equal(see.scan.load(tmp_path), whole)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", f"state-{m['generation'] + 3}.npz"]


def test_a_complete_stored_scan_is_read_not_recomputed(tmp_path, lenet, data, whole, monkeypatch):
    see.scan(lenet, data, out=tmp_path, **KW)
    from seethrough.scan import engine

    monkeypatch.setattr(engine, "run_chunk", lambda *a: pytest.fail("a finished scan ran a chunk again"))
    again = see.scan(lenet, data, out=tmp_path, **KW)
    states_equal(again, whole)
    assert again.resumed == 15
    loaded = see.scan.load(tmp_path)
    assert loaded.source is None and loaded.identity.startswith("tensor:")  # a tensor is not stored: load(data=) gives it back
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["model"]["hash"] == whole.model_hash and m["data"]["identity"] == whole.identity
    assert m["layers"] == ["conv2", "relu3"] and m["complete"] and m["skipped"] == []


def test_a_folder_of_another_model_or_data_is_refused(tmp_path, lenet, data):
    see.scan(lenet, data, out=tmp_path, **KW)
    other = see.zoo.load("lenet-digits", labels="permuted")[0]
    with pytest.raises(ValueError, match="holds a scan of another model"):
        see.scan(other, data, out=tmp_path, **KW)
    with pytest.raises(ValueError, match="holds a scan of another data"):
        see.scan(lenet, (data[0][:100], data[1][:100]), out=tmp_path, **KW)
    with pytest.raises(ValueError, match="holds a scan of another layers"):
        see.scan(lenet, data, out=tmp_path, **{**KW, "layers": ["conv2"]})
    with pytest.raises(ValueError, match="is not the data of the scan"):
        see.scan.load(tmp_path, data=data[0][:10])
    assert see.scan.load(tmp_path, data=data).source.identity == see.scan.source(data).identity
    with pytest.raises(ValueError, match="holds no stored scan"):
        see.scan.load(tmp_path / "nothing")


def test_a_full_disk_is_a_clear_error_and_earlier_results_stay_intact(tmp_path, lenet, data, whole, monkeypatch):
    real, writes = store._write, []

    def write(path, data_):
        writes.append(path.name)
        if len(writes) > 4:  # two saves (state + manifest each) succeed, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data_)

    monkeypatch.setattr(store, "_write", write)
    with pytest.raises(see.scan.StoreError, match=r"the disk is full .* the results stored before are intact \(4 of 15 chunks\)"):
        see.scan(lenet, data, out=tmp_path, save_every=2, **KW)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "state-2.npz"]  # no temporary file left
    kept = see.scan.load(tmp_path)
    assert kept.finished == 4 and kept.n_seen == 96
    monkeypatch.setattr(store, "_write", real)
    res = see.scan(lenet, data, out=tmp_path, **KW)
    assert res.resumed == 4
    states_equal(res, whole)


runner = CliRunner()


def test_cli_scan_stores_resumes_and_lists_skipped_files(tmp_path):
    out = tmp_path / "scan"
    r = runner.invoke(app, ["scan", "digits", "-m", "lenet-digits", "-l", "relu1,relu3", "-o", str(out), "--batch-size", "32"])
    assert r.exit_code == 0, r.output
    assert "360 of 360 examples" in r.output and "relu3" in r.output and f"scan stored in {out}" in r.output
    res = see.scan.load(out)
    model = see.zoo.load("lenet-digits")[0]
    ref = see.scan(model, see.scan.digits_source("test"), ["relu1", "relu3"], batch_size=32, progress=False)
    states_equal(res, ref)
    r = runner.invoke(app, ["scan", "digits", "-m", "lenet-digits", "-l", "relu1,relu3", "-o", str(out), "--batch-size", "32"])
    assert r.exit_code == 0 and "resumed after 16 chunks" in r.output
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        see.zoo.image("coffee").resize((40 + i, 40)).save(photos / f"{i}.png")
    (photos / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
    r = runner.invoke(app, ["scan", str(photos), "-l", "fc3", "-o", str(tmp_path / "p"), "-a", "topk", "--top", "2"])
    assert r.exit_code == 0, r.output
    assert "skipped 1 unreadable file(s):" in r.output and "bad.jpg: cannot read" in r.output


@pytest.mark.parametrize("args, message", [
    (["nowhere", "-l", "fc3"], "DATA must be a folder of images or one of"),
    (["digits", "-l", "conv9"], "conv9"),
    (["digits", "-l", "fc3", "--batch-size", "big"], "--batch-size must be 'auto' or a positive int"),
    (["digits", "-l", "fc3", "-a", "topk,nope"], "unknown accumulator 'nope'"),
])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, args, message):
    r = runner.invoke(app, ["scan", *args, "-o", str(tmp_path / "s")])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_cli_full_disk_exits_1_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "_write", lambda p, d: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
    r = runner.invoke(app, ["scan", "digits", "-l", "fc3", "-o", str(tmp_path / "s"), "--batch-size", "64"])
    assert r.exit_code == 1 and "the disk is full" in r.output and "nothing was stored yet" in r.output
    assert not (tmp_path / "s" / "manifest.json").exists()


def test_stored_states_are_plain_npz(tmp_path, lenet, data):
    see.scan(lenet, data, ["relu3"], ["topk"], batch_size=64, out=tmp_path, progress=False)
    m = store.read_manifest(tmp_path)
    with np.load(tmp_path / m["state"], allow_pickle=False) as z:
        assert {"relu3|topk|ids", "relu3|topk|values", "relu3|topk|positions", "relu3|topk|name"} <= set(z.files)
        ref = see.topk(lenet, data[0], "relu3", k=9, batch_size=64, progress=False)
        assert torch.equal(torch.from_numpy(z["relu3|topk|ids"]), ref.indices)
