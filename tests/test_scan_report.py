"""``seethrough report --scan``: the report's scan section is read from the stored scan, never recomputed."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import seethrough as see
from seethrough.cli import app
from seethrough.report import Context, Figure, Table, Text, write_report
from seethrough.report.sections.scan import DEAD_LISTED, build
from seethrough.scan.views import as_result

LAYERS = ["conv2", "relu3"]


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """lenet-digits over the 360 test digits, stored: the zoo model is named, so the report may trace crops."""
    out = tmp_path_factory.mktemp("scan")
    see.scan("lenet-digits", see.scan.digits_source(), LAYERS, batch_size=64, out=out, progress=False,
             options={"reservoir": {"size": 120}})
    return out


class Forwards:
    """Every input the model is called on while it is attached (a forward hook on the top module)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.inputs: list[torch.Tensor] = []
        self.handle = model.register_forward_hook(lambda m, args, out: self.inputs.append(args[0].detach().clone()))

    def remove(self) -> None:
        self.handle.remove()


def _tables(blocks, prefix: str) -> list[Table]:
    return [b for b in blocks if isinstance(b, Table) and b.title.startswith(prefix)]


def test_the_section_reads_the_stored_top_k_and_never_runs_the_model_over_the_data(stored):
    res = as_result(stored)
    ctx = Context(quick=True, scan=res)
    model, _ = ctx.model("lenet-digits")  # the instance the section will use for receptive fields
    seen = Forwards(model)
    try:
        blocks = build(ctx)
    finally:
        seen.remove()
    # The only forwards are the receptive-field trace of conv2 (a forward and a backward pass of a blank
    # input), never a digit of the data set: a recomputation would call the model on the 360 digits.
    assert len(seen.inputs) <= 2 and all(not x.any() for x in seen.inputs)
    assert sum(len(x) for x in seen.inputs) < 360
    for layer in LAYERS:
        (table,) = _tables(blocks, f"{layer}: top-9 example ids")
        ids = res[layer, "topk"].ids
        assert len(table.rows) == min(len(ids), 64)
        for unit, state, row_ids, _values in table.rows:
            assert [int(i) for i in row_ids.split()] == ids[unit].tolist()
            assert state == ("dead" if res[layer, "dead"].dead[unit] else "alive")
    (stats,) = _tables(blocks, "Layer statistics")
    for row in stats.rows:  # the dead-unit counts are the stored accumulator's
        dead = res[row[0], "dead"].dead
        ids = np.flatnonzero(dead)
        listed = ", ".join(map(str, ids[:DEAD_LISTED])) + (f", … ({len(ids) - DEAD_LISTED} more)" if len(ids) > DEAD_LISTED else "")
        assert row[3].startswith(f"{int(dead.sum())} (") and row[5] == (listed or "none")
    titles = [b.title for b in blocks if isinstance(b, Figure)]
    assert "conv2: top-9 examples of units 0–7" in titles and any(t.startswith("The reservoir sample") for t in titles)
    # the crops are the receptive fields of the stored positions: what see.topk(scan=) gives, read from the scan
    top = see.topk(model, None, "conv2", k=9, scan=res)
    assert top.boxes is not None and top.indices[:8].tolist() == res["conv2", "topk"].ids[:8].tolist()


def test_a_scan_whose_data_is_gone_still_reports_ids_statistics_and_the_sample(tmp_path):
    model, _ = see.zoo.load("lenet-digits")
    x, y = see.zoo.digits("test")
    see.scan(model, (x[:100], y[:100]), ["relu3"], batch_size=50, out=tmp_path, progress=False,
             options={"reservoir": {"size": 40}})
    res = as_result(tmp_path)  # a stored scan of a tensor: the data is not in the folder
    assert res.source is None
    seen = Forwards(model)
    try:
        blocks = build(Context(quick=True, scan=res))
    finally:
        seen.remove()
    assert not seen.inputs
    (table,) = _tables(blocks, "relu3: top-9 example ids")
    assert [int(i) for i in table.rows[5][2].split()] == res["relu3", "topk"].ids[5].tolist()
    assert any(isinstance(b, Text) and "not available any more" in b.text for b in blocks)
    assert not any(isinstance(b, Figure) and b.title.startswith("relu3: top-9 examples") for b in blocks)
    e = see.embed(None, None, ["relu3"], "pca", scan=res, progress=False)  # the sample the section drew
    assert len(e["relu3"]) == 40


def test_the_report_with_a_scan_alone_is_that_section_and_a_rerun_reuses_it(stored, tmp_path):
    res = write_report(tmp_path / "r", quick=True, scan=stored)
    assert res.failures == {} and list(res.seconds) == ["scan"]
    page = res.path.read_text(encoding="utf-8")
    ids = as_result(stored)["conv2", "topk"].ids
    assert f"<td>3</td><td>{'alive' if not as_result(stored)['conv2', 'dead'].dead[3] else 'dead'}</td>" \
           f"<td>{' '.join(map(str, ids[3].tolist()))}</td>" in page
    assert write_report(tmp_path / "r", quick=True, scan=stored).reused == ["scan"]


def test_the_cli_reads_the_scan_and_bad_folders_are_one_line(stored, tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["report", "--scan", str(stored), "--quick", "-o", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    assert "report written to" in r.output and (tmp_path / "r" / "index.html").is_file()
    for args, message in ((["--scan", str(tmp_path / "none")], "holds no stored scan"),
                          (["--section", "scan"], "the scan section reads a stored scan: give --scan FOLDER")):
        r = runner.invoke(app, ["report", "-o", str(tmp_path / "bad"), *args])
        lines = r.output.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.output


def test_a_partial_scan_is_refused(tmp_path):
    from seethrough.progress import Cancelled, listen

    model, _ = see.zoo.load("lenet-digits")
    x, _ = see.zoo.digits("test")

    def stop(desc, done, total) -> None:
        if desc == "scan" and done == 3:
            raise Cancelled("interrupted after 3 chunks")

    with listen(stop), pytest.raises(Cancelled):
        see.scan(model, x[:64], ["relu3"], ["moments"], batch_size=8, chunk_size=8, save_every=1, out=tmp_path,
                 progress=False)
    with pytest.raises(ValueError, match=re.escape("is partial")):
        write_report(tmp_path / "r", scan=tmp_path)
