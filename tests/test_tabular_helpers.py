"""The tabular pieces that do not need tabular attribution: importance helpers, the pictures, the CLI's refusals.

The waterfall's axiom is checked on a linear model, whose exact Shapley values with a background
are known in closed form: φ_j = w_j (x_j − mean of the background's column j).
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import seethrough as see
from seethrough.cli import app
from seethrough.inspect import permutation_importance, rank_agreement, top_overlap
from seethrough.render import summary_plot, waterfall, waterfall_steps
from seethrough.testing import untouched
from seethrough.zoo import tabular as tab

runner = CliRunner()


def one_line(res, *fragments):
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in res.output, res.output
    for f in fragments:
        assert f in lines[0], (f, lines[0])


def test_waterfall_of_exact_shapley_values_ends_at_the_linear_models_score():
    x, _, names = see.zoo.breast_cancer("test")
    bg = tab.background(100).double()
    g = torch.Generator().manual_seed(0)
    w, b = torch.randn(30, generator=g, dtype=torch.float64), 0.3
    f = lambda r: r.double() @ w + b  # noqa: E731
    base = float(f(bg).mean())
    for i in range(5):
        phi = w * (x[i].double() - bg.mean(0))  # exact interventional Shapley values of a linear model
        steps = waterfall_steps(phi, base, top=12, names=names, row=x[i])
        assert steps[0].start == base and steps[0].feature is None and len(steps) == 13
        assert all(a.end == b.start for a, b in zip(steps, steps[1:]))
        assert steps[-1].end == pytest.approx(float(f(x[i : i + 1])[0]), abs=1e-9)
        assert [s.feature for s in steps[1:]][-1] == int(phi.abs().argmax())  # the largest ends the walk
    fig = waterfall(phi, x[4], names, base=base, top=12)
    assert f"{base:.4g}" in fig.axes[0].get_xlabel() and f"{float(f(x[4:5])[0]):.4g}" in fig.axes[0].get_xlabel()


def test_summary_plot_has_one_dot_per_row_and_feature_at_its_attribution():
    x, _, names = see.zoo.breast_cancer("test")
    rows = x[:12]
    phi = torch.randn(12, 30, generator=torch.Generator().manual_seed(1))
    for top, shown in ((None, 30), (15, 15)):
        (dots,) = summary_plot(phi, rows, names, top=top).axes[0].collections
        xy = np.asarray(dots.get_offsets())
        assert len(xy) == len(rows) * shown
        order = np.argsort(-phi.abs().mean(0).numpy(), kind="stable")[:shown]
        for pos, j in enumerate(order):  # the dots on line pos of the plot are feature j's attributions
            here = np.abs(xy[:, 1] - pos) < 0.45
            assert np.allclose(np.sort(xy[here, 0]), np.sort(phi[:, j].numpy()), atol=1e-6)
        colour = np.asarray(dots.get_array())
        assert colour.min() >= 0 and colour.max() <= 1


def test_permutation_importance_of_a_feature_the_model_ignores_is_zero():
    model, _ = see.zoo.load("mlp-breast-cancer")
    x, y, _ = see.zoo.breast_cancer("test")
    blind = copy.deepcopy(model)
    with torch.no_grad():
        blind.fc1.weight[:, 7] = 0  # feature 7 no longer reaches the network
    with untouched(blind.train()):
        r = permutation_importance(blind, x, y, repeats=5, seed=0)
    assert r.mean[7] == 0 and r.std[7] == 0 and r.mean.max() > 0
    with see.hooks(blind), torch.no_grad():
        acc = float((blind(x).argmax(1) == y).double().mean())
    assert r.accuracy == acc
    assert torch.equal(r.mean, permutation_importance(blind, x, y, repeats=5, seed=0).mean)  # seeded


def test_rank_agreement_matches_a_hand_written_spearman_and_kendall():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(30, generator=g, dtype=torch.float64), torch.rand(30, generator=g, dtype=torch.float64)
    ranks = lambda v: torch.argsort(torch.argsort(v)).double() - 14.5  # noqa: E731 - no ties in continuous draws
    ra, rb = ranks(a), ranks(b)
    r = rank_agreement({"a": a, "b": b})
    assert float(r.spearman[0, 1]) == pytest.approx(float((ra * rb).sum() / (ra.norm() * rb.norm())), abs=1e-12)
    sign = torch.sign(a[:, None] - a[None]) * torch.sign(b[:, None] - b[None])
    assert float(r.kendall[0, 1]) == pytest.approx(float(sign.sum() / (30 * 29)), abs=1e-12)
    assert top_overlap(a, b, 5) == len(set(torch.topk(a, 5).indices.tolist()) & set(torch.topk(b, 5).indices.tolist()))
    assert torch.isnan(rank_agreement({"a": a, "c": torch.ones(30)}).spearman[0, 1])


def test_explain_rows_bad_input_is_one_line_exit_2(tmp_path):
    names = tab.feature_names()
    good = ",".join(names)
    bad_cols = tmp_path / "bad.csv"
    bad_cols.write_text(good.replace("mean radius", "radius") + "\n" + ",".join(["1"] * 30) + "\n")
    one_line(runner.invoke(app, ["explain", "-m", "mlp-breast-cancer", "--csv", str(bad_cols), "-o", str(tmp_path / "o")]),
             "do not match the model's 30 features", "missing mean radius", "unexpected radius")
    short = tmp_path / "short.csv"
    short.write_text(",".join(names[:29]) + "\n" + ",".join(["1"] * 29) + "\n")
    one_line(runner.invoke(app, ["explain", "-m", "mlp-breast-cancer", "--csv", str(short)]), "missing worst fractal dimension")
    text = tmp_path / "text.csv"
    text.write_text(good + "\n" + ",".join(["1"] * 29 + ["big"]) + "\n")
    one_line(runner.invoke(app, ["explain", "-m", "mlp-breast-cancer", "--csv", str(text)]), "'big' is not a number")
    one_line(runner.invoke(app, ["explain", "-m", "mlp-breast-cancer", "--csv", str(tmp_path / "nope.csv")]),
             "no such file", "nope.csv")
    one_line(runner.invoke(app, ["explain", "-m", "mlp-breast-cancer", "--row", "143"]),
             "--row 143 is out of range: the held-out set has 143 rows (0..142)")
    one_line(runner.invoke(app, ["explain", "-m", "mlp-breast-cancer", "--row", "-1"]), "--row -1 is out of range")
    one_line(runner.invoke(app, ["explain", "-m", "lenet-digits", "--row", "3"]), "lenet-digits is not one")
    one_line(runner.invoke(app, ["explain", "-m", "mlp-breast-cancer", "--row", "3", "--csv", str(bad_cols)]), "not both")
    one_line(runner.invoke(app, ["explain", "-m", "mlp-breast-cancer"]), "give an IMAGE to explain, or --row N / --csv FILE")
    one_line(runner.invoke(app, ["explain", "-m", "mlp-breast-cancer", "--row", "3", "--method", "saliencyy"]),
             "unknown method(s) saliencyy")
    assert not (tmp_path / "o").exists()  # nothing written for refused input
