"""``seethrough explore --scan``: the unit view and the projector read a stored scan; bad scans are one line / 4xx."""
from __future__ import annotations

import copy

import pytest
import torch
from typer.testing import CliRunner

import seethrough as see
from seethrough.cli import app as cli
from seethrough.web.app import create_app
from seethrough.web.session import attach_scan, from_zoo

from .conftest import local

LAYERS = ["conv2", "relu3"]


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    out = tmp_path_factory.mktemp("scan")
    see.scan("lenet-digits", see.scan.digits_source(), LAYERS, batch_size=64, out=out, progress=False,
             options={"reservoir": {"size": 80}})
    return out


@pytest.fixture(scope="module")
def client(stored):
    session = attach_scan(from_zoo("lenet-digits"), stored)
    with local(create_app(session)) as c:
        yield c, session.scan


def test_the_api_serves_the_scanned_units_with_the_stored_top_k(client):
    c, res = client
    info = c.get("/api/info").json()["scan"]
    assert info["seen"] == 360 and [l["name"] for l in info["layers"]] == LAYERS
    conv2 = info["layers"][0]
    assert conv2["units"] == 16 and conv2["k"] == 9 and conv2["sample"] == 80
    assert conv2["dead"] == [u for u in range(16) if res["conv2", "dead"].dead[u]]
    for layer in LAYERS:
        units = c.get("/api/scan_units", params={"layer": layer}).json()["units"]
        assert [u["ids"] for u in units] == res[layer, "topk"].ids.tolist()
        assert [u["state"] for u in units] == ["dead" if d else "alive" for d in res[layer, "dead"].dead]
    page = c.get("/api/scan_unit", params={"layer": "conv2", "channel": 3}).json()
    assert [e["id"] for e in page["examples"]] == res["conv2", "topk"].ids[3].tolist()
    assert page["examples_note"] == "receptive-field crops" and page["histogram"]["counts"]
    # the unit browser beside an input shows the scan's examples, not a top-k over the explorer's data set
    unit = c.get("/api/unit", params={"input": "digit-0", "layer": "conv2", "channel": 3}).json()
    assert [e["index"] for e in unit["examples"]] == res["conv2", "topk"].ids[3].tolist()
    assert unit["scan"]["state"] in ("dead", "alive") and "from the scan of 360 examples" in unit["examples_note"]


def test_the_projector_draws_the_stored_sample(client):
    c, res = client
    r = c.get("/api/scan_projection", params={"layer": "relu3", "method": "pca"}).json()
    sample = res["relu3", "reservoir"]
    assert r["n"] == 80 and [p["index"] for p in r["points"]] == sample.ids.tolist()
    assert [p["label"] for p in r["points"]] == sample.labels.tolist()
    want = see.embed(None, None, ["relu3"], "pca", scan=res, progress=False)["relu3"]  # the library's own embedding
    xy = torch.tensor([[p["x"], p["y"]] for p in r["points"]], dtype=torch.float64)
    lo, hi = want.min(0).values, want.max(0).values
    assert torch.allclose(xy, ((want - lo) / (hi - lo)).double(), atol=1e-6)
    png = c.get(f"/api/scan/{int(sample.ids[0])}.png")
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"


@pytest.mark.parametrize("path, params, status, words", [
    ("/api/scan_units", {"layer": "fc3"}, 400, "layer 'fc3' was not scanned; scanned layers: conv2, relu3"),
    ("/api/scan_unit", {"layer": "conv2", "channel": 16}, 400, "unit 16 is out of range"),
    ("/api/scan_projection", {"layer": "conv2", "method": "nope"}, 400, "unknown projection 'nope'"),
    ("/api/scan/360.png", {}, 404, "no scanned example '360'"),
])
def test_bad_scan_requests_are_one_line_4xx(client, path, params, status, words):
    c, _ = client
    r = c.get(path, params=params)
    assert r.status_code == status and words in r.json()["detail"] and "\n" not in r.json()["detail"], r.text


def test_without_a_scan_the_scan_views_are_404(lenet_session):
    with local(create_app(lenet_session)) as c:
        assert c.get("/api/info").json()["scan"] is None
        r = c.get("/api/scan_units", params={"layer": "conv2"})
        assert r.status_code == 404 and "start the explorer with --scan FOLDER" in r.json()["detail"]


def test_a_missing_partial_or_foreign_scan_is_refused_in_one_line(stored, tmp_path):
    with pytest.raises(ValueError, match="holds no stored scan"):
        attach_scan(from_zoo("lenet-digits"), tmp_path)
    other = copy.deepcopy(see.zoo.load("lenet-digits")[0])
    with torch.no_grad():
        other.conv1.weight.add_(0.01)
    see.scan(other, see.scan.digits_source(), ["relu3"], ["dead"], batch_size=64, out=tmp_path / "other", progress=False)
    with pytest.raises(ValueError, match="was made with other weights than lenet-digits"):
        attach_scan(from_zoo("lenet-digits"), tmp_path / "other")
    runner = CliRunner()
    for folder, words in ((tmp_path / "none", "holds no stored scan"), (tmp_path / "other", "other weights")):
        r = runner.invoke(cli, ["explore", "--model", "lenet-digits", "--no-browser", "--scan", str(folder)])
        lines = r.output.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], r.output


def test_the_atlas_command_writes_static_pages_from_the_stored_scan(stored, tmp_path):
    r = CliRunner().invoke(cli, ["atlas", str(stored), "-o", str(tmp_path / "atlas"), "--units", "2", "--steps", "0",
                                 "-l", "conv2"])
    assert r.exit_code == 0, r.output
    assert "model lenet-digits" in r.output
    pages = sorted(p.relative_to(tmp_path / "atlas").as_posix() for p in (tmp_path / "atlas").rglob("*.html"))
    assert pages == ["conv2.html", "conv2/0.html", "conv2/1.html", "index.html"]
    r = CliRunner().invoke(cli, ["atlas", str(tmp_path / "none")])
    assert r.exit_code == 2 and "holds no stored scan" in r.output
