"""A new method, attack and metric, registered by a user, appear in the CLI's help and options, the
explorer's menus and the report with no other change (issue 19, item 3); docs/registry.md runs."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import seethrough as see
from seethrough.adversarial.attacks import ATTACKS
from seethrough.adversarial.attacks import register as register_attack
from seethrough.catalog import entries
from seethrough.metrics import METRICS, register_metric

DOC = Path(__file__).resolve().parents[1] / "docs" / "registry.md"


@pytest.fixture
def registered():
    """One entry of each family, removed again whatever the test does."""

    @see.attribution.register("test-uniform", family="gradient", paper="a test, 2026", kinds=("image",))
    def uniform(model, x, target=None, *, level: float = 1.0):
        """A constant map. ``level``: the map's value everywhere."""
        return torch.full_like(x, level)

    @register_attack("test-still", paper="a test, 2026", description="moves nothing", defaults={"eps": 1.0})
    def still(x, gen, *, eps):
        return x, (lambda xk, grad, x0: xk), 1

    @register_metric("test-zero", paper="a test, 2026", better="lower", curve=False)
    def zero(model, x, attribution, target=None, *, weight: float = 0.0, progress: bool = True):
        """Always zero. ``weight``: unused."""
        from seethrough.metrics import ScoreResult

        return ScoreResult("test-zero", torch.zeros(len(x)) * weight)

    try:
        yield
    finally:
        del see.attribution.METHODS["test-uniform"], ATTACKS["test-still"], METRICS["test-zero"]


def _help(*args: str) -> str:
    from seethrough.cli import app

    r = CliRunner().invoke(app, [*args, "--help"], terminal_width=200)
    assert r.exit_code == 0, r.output
    return re.sub(r"\s+", " ", re.sub(r"[│╭╮╰╯─]", " ", r.output))


def test_the_catalog_lists_them_with_their_options(registered):
    assert entries("attribution")["test-uniform"].option("level").help == "the map's value everywhere."
    assert [o.name for o in entries("attack")["test-still"].options] == ["eps"]
    assert entries("metric")["test-zero"].option("weight").default == 0.0


def test_cli_help_lists_them_and_the_method_takes_its_option(registered, tmp_path):
    assert "test-uniform" in _help("explain") and "--level FLOAT (default 1.0)" in _help("explain")
    assert "test-still" in _help("attack")
    assert "test-zero" in _help("faithfulness")
    from seethrough.cli import app

    out = tmp_path / "maps"
    r = CliRunner().invoke(app, ["explain", "--model", "lenet-digits", "chelsea", "--method", "test-uniform",
                                 "--level", "0.5", "-o", str(out)])
    assert r.exit_code == 0, r.output
    import numpy as np

    maps = np.load(out / "maps.npz")
    assert float(maps["test-uniform"].max()) == float(maps["test-uniform"].min()) == 0.5


def test_the_explorer_offers_them(registered, lenet_app_client):
    info = lenet_app_client.get("/api/info").json()
    method = next(m for m in info["methods"] if m["name"] == "test-uniform")
    assert [o["name"] for o in method["options"]] == ["level"]
    assert "test-still" in [a["name"] for a in info["attacks"]]
    r = lenet_app_client.get("/api/attribution", params={"input": "digit-3", "method": "test-uniform",
                                                         "options": '{"level": 0.25}'})
    assert r.status_code == 200 and r.json()["options"] == {"level": 0.25}


def test_the_report_catalogue_runs_them(registered):
    from seethrough.report.registry import Context
    from seethrough.report.sections.catalogue import build

    blocks = build(Context(quick=True))
    table = next(b for b in blocks if getattr(b, "title", "") == "Every registered entry")
    names = {row[1] for row in table.rows}
    assert {"test-uniform", "test-still", "test-zero"} <= names
    figure = next(b for b in blocks if getattr(b, "title", "").startswith("Every image attribution method"))
    assert "test-uniform" in figure.provenance["methods"].split(",")
    attacks = next(b for b in blocks if getattr(b, "title", "").startswith("Every attack"))
    assert "test-still" in [row[0] for row in attacks.rows]
    metrics = next(b for b in blocks if getattr(b, "title", "").startswith("Every metric"))
    assert ["test-zero", "0.000"] == [r for r in metrics.rows if r[0] == "test-zero"][0][::3][:2]


def test_docs_registry_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 2
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), {})
    assert "doc-uniform" not in see.attribution.METHODS


@pytest.fixture
def lenet_app_client():
    from seethrough.web.app import create_app
    from seethrough.web.session import from_zoo

    from .web.conftest import local

    return local(create_app(from_zoo("lenet-digits")))
