"""An interrupted report resumes: finished sections are kept on disk and reused, the rest rebuilt."""
from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from PIL import Image
from typer.testing import CliRunner

import seethrough as see
from seethrough.cli import app
from seethrough.report import SECTIONS, Figure, Table, Text, section

KEYS = ["resume-a", "resume-b", "resume-c"]


@pytest.fixture
def cheap_sections():
    """Three cheap sections; ``resume-b`` raises KeyboardInterrupt on its first build (a Ctrl-C)."""
    calls: Counter = Counter()
    interrupt = {"resume-b": 1}

    def make(key: str, colour: tuple[int, int, int]):
        def build(ctx):
            calls[key] += 1
            if interrupt.get(key, 0) > 0:
                interrupt[key] -= 1
                raise KeyboardInterrupt
            img = Image.new("RGB", (8, 8), colour if not ctx.quick else (0, 0, 0))
            return [Text(f"{key} with seed {ctx.seed}"), Figure(f"{key} figure", img, "a square", {"size": (8, 8)}),
                    Table(f"{key} table", ["x", "seed"], [[1.5, ctx.seed]], "one row", {"seed": ctx.seed})]
        return build

    for n, (key, colour) in enumerate(zip(KEYS, [(255, 0, 0), (0, 255, 0), (0, 0, 255)])):
        section(key, key.title(), order=900 + n)(make(key, colour))
    try:
        yield calls
    finally:
        for key in KEYS:
            SECTIONS.pop(key, None)


def _page(out) -> str:
    # the build times differ from run to run; everything else on the page must not
    page = (out / "index.html").read_text()
    page = re.sub(r"section built in [0-9.]+ s[^<]*", "", page)
    return re.sub(r"(seconds=)[0-9.]+|\d{4}-\d\d-\d\d \d\d:\d\d", "", page)


def test_interrupted_report_resumes_without_rebuilding(cheap_sections, tmp_path):
    calls = cheap_sections
    out = tmp_path / "rep"
    with pytest.raises(KeyboardInterrupt):
        see.report.write_report(out, sections=KEYS, seed=3)
    assert calls == Counter({"resume-a": 1, "resume-b": 1})
    assert sorted(p.name for p in (out / ".sections").iterdir()) == ["resume-a"]  # only the finished one is kept
    res = see.report.write_report(out, sections=KEYS, seed=3)
    assert calls == Counter({"resume-a": 1, "resume-b": 2, "resume-c": 1})  # a was not rebuilt
    assert res.reused == ["resume-a"] and res.failures == {}
    page = (out / "index.html").read_text()
    for key in KEYS:  # the page is complete, every figure on disk
        assert f"{key} with seed 3" in page and f"{key} table" in page
    for src in re.findall(r"src='([^']+)'", page):
        assert (out / src).is_file(), src
    assert Image.open(out / "img" / "resume-a-1.png").getpixel((0, 0)) == (255, 0, 0)
    assert "kept from an earlier run" in page.split("id='resume-b'")[0]  # said of a, not of b
    # a reused section reads exactly as a fresh one
    fresh = see.report.write_report(tmp_path / "fresh", sections=KEYS, seed=3)
    assert fresh.reused == [] and _page(out) == _page(tmp_path / "fresh")


def test_rerun_reuses_everything_and_options_or_fresh_rebuild(cheap_sections, tmp_path):
    calls = cheap_sections
    out = tmp_path / "rep"
    see.report.write_report(out, sections=["resume-a", "resume-c"], seed=0)
    assert see.report.write_report(out, sections=["resume-a", "resume-c"], seed=0).reused == ["resume-a", "resume-c"]
    assert calls == Counter({"resume-a": 1, "resume-c": 1})
    res = see.report.write_report(out, sections=["resume-a", "resume-c"], seed=1)  # another option: rebuilt
    assert res.reused == [] and calls == Counter({"resume-a": 2, "resume-c": 2})
    assert "resume-a with seed 1" in (out / "index.html").read_text()
    res = see.report.write_report(out, sections=["resume-a"], seed=1, quick=True)
    assert res.reused == [] and calls["resume-a"] == 3
    assert Image.open(out / "img" / "resume-a-1.png").getpixel((0, 0)) == (0, 0, 0)
    res = see.report.write_report(out, sections=["resume-a"], seed=1, quick=True, fresh=True)
    assert res.reused == [] and calls["resume-a"] == 4


def test_half_written_or_foreign_sections_are_never_reused(cheap_sections, tmp_path):
    calls = cheap_sections
    out = tmp_path / "rep"
    see.report.write_report(out, sections=["resume-a"])
    store = out / ".sections"
    # a run killed while storing leaves a temporary folder: cleaned, never read
    (store / "resume-c.abc123.tmp").mkdir()
    (store / "resume-c.abc123.tmp" / "manifest.json").write_text("{}")
    # a manifest from another version of the code
    manifest = json.loads((store / "resume-a" / "manifest.json").read_text())
    manifest["identity"]["code"] = "something else"
    (store / "resume-a" / "manifest.json").write_text(json.dumps(manifest))
    res = see.report.write_report(out, sections=["resume-a", "resume-c"])
    assert res.reused == [] and calls == Counter({"resume-a": 2, "resume-c": 1})
    assert sorted(p.name for p in store.iterdir()) == ["resume-a", "resume-c"]
    # a stored figure that went missing: rebuilt
    next((store / "resume-a").glob("*.png")).unlink()
    assert see.report.write_report(out, sections=["resume-a"]).reused == [] and calls["resume-a"] == 3
    # a section built on other CPU kernels (before MKL_CBWR was pinned): its numbers are another model's
    manifest = json.loads((store / "resume-a" / "manifest.json").read_text())
    assert manifest["identity"]["kernels"]["MKL_CBWR"] == "AVX2,STRICT"
    del manifest["identity"]["kernels"]["MKL_CBWR"]
    (store / "resume-a" / "manifest.json").write_text(json.dumps(manifest))
    assert see.report.write_report(out, sections=["resume-a"]).reused == [] and calls["resume-a"] == 4


def test_a_failing_section_is_not_kept(cheap_sections, tmp_path):
    calls = cheap_sections

    @section("resume-broken", "Broken", order=950)
    def _broken(ctx):
        calls["resume-broken"] += 1
        raise RuntimeError("boom")

    try:
        for _ in range(2):
            res = see.report.write_report(tmp_path, sections=["resume-a", "resume-broken"])
            assert res.failures == {"resume-broken": "RuntimeError: boom"}
    finally:
        SECTIONS.pop("resume-broken")
    assert calls == Counter({"resume-a": 1, "resume-broken": 2}) and res.reused == ["resume-a"]


def test_cli_interrupt_then_resume(cheap_sections, tmp_path):
    calls = cheap_sections
    out = tmp_path / "rep"
    args = ["report", "--out", str(out), *[a for k in KEYS for a in ("-s", k)]]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 130 and "Traceback" not in res.output
    assert res.output.strip() == (f"error: interrupted; the finished sections are kept in {out / '.sections'}: "
                                  "run the same command again to resume")
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "1 section(s) reused, --fresh rebuilds them" in res.output
    assert calls == Counter({"resume-a": 1, "resume-b": 2, "resume-c": 1})
    assert CliRunner().invoke(app, [*args, "--fresh"]).exit_code == 0
    assert calls == Counter({"resume-a": 2, "resume-b": 3, "resume-c": 2})
