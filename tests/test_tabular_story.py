"""The tabular story: the waterfall's axiom, the summary plot's dots, global importance, the report section, the CLI."""
from __future__ import annotations

import csv
import re

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import seethrough as see
from seethrough.cli import app
from seethrough.inspect import mean_abs, permutation_importance, rank_agreement, top_overlap
from seethrough.render import summary_plot, waterfall, waterfall_steps
from seethrough.report.registry import Context
from seethrough.report.sections import tabular as section
from seethrough.testing import untouched
from seethrough.zoo import tabular as tab

runner = CliRunner()


@pytest.fixture(scope="module")
def model():
    return see.zoo.load("mlp-breast-cancer")[0]


@pytest.fixture(scope="module")
def data():
    x, y, names = see.zoo.breast_cancer("test")
    return x, y, names, tab.background(100)


def log_odds(model, x) -> torch.Tensor:
    with see.hooks(model), torch.no_grad():
        return tab.benign_log_odds(model(x)).double()


def kernel_shap(model, x, bg, names, n_samples=256, seed=0):
    return see.attribute(model, x, "kernel-shap", target=tab.benign_log_odds, kind="tabular", feature_names=names,
                         background=bg, n_samples=n_samples, seed=seed, progress=False)


# --- one row: the waterfall ends at the model's score (KernelSHAP's efficiency) ----------------------


def test_waterfall_base_plus_contributions_is_the_models_score(model, data):
    x, _, names, bg = data
    rows = x[:4]
    with untouched(model):
        phi = kernel_shap(model, rows, bg, names).double()
    assert phi.shape == (4, 30)
    base = float(log_odds(model, bg).mean())  # E[f(X)] over the background, computed here, not by the method
    for i in range(4):
        steps = waterfall_steps(phi[i], base, top=12, names=names, row=rows[i])
        assert steps[0].start == base and len(steps) == 13 and steps[0].feature is None  # 12 features + the rest
        assert all(a.end == b.start for a, b in zip(steps, steps[1:]))  # each bar starts where the last ended
        assert steps[-1].end == pytest.approx(float(log_odds(model, rows[i : i + 1])[0]), abs=1e-4)
        shown = [s.feature for s in steps[1:]]
        assert sorted(shown, key=lambda j: -abs(float(phi[i, j])))[0] == shown[-1]  # the largest ends the walk
    fig = waterfall(phi[0], rows[0], names, base=base, top=12)
    label = fig.axes[0].get_xlabel()
    assert f"{base:.4g}" in label and f"{base + float(phi[0].sum()):.4g}" in label


def test_summary_plot_has_one_dot_per_row_and_feature_at_its_attribution(model, data):
    x, _, names, bg = data
    rows = x[:12]
    phi = kernel_shap(model, rows, bg, names, n_samples=128)
    for top, shown in ((None, 30), (15, 15)):
        fig = summary_plot(phi, rows, names, top=top)
        (dots,) = fig.axes[0].collections
        xy = np.asarray(dots.get_offsets())
        assert len(xy) == len(rows) * shown
        order = np.argsort(-phi.abs().mean(0).numpy(), kind="stable")[:shown]
        for pos, j in enumerate(order):  # the dots of row pos of the plot are feature j's attributions
            here = np.abs(xy[:, 1] - pos) < 0.45
            assert np.allclose(np.sort(xy[here, 0]), np.sort(phi[:, j].numpy()), atol=1e-6)
        colour = np.asarray(dots.get_array())
        assert colour.min() >= 0 and colour.max() <= 1


# --- global importance --------------------------------------------------------------------------------


def test_permutation_importance_of_a_feature_the_model_ignores_is_zero(model, data):
    import copy

    x, y, _, _ = data
    blind = copy.deepcopy(model)
    with torch.no_grad():
        blind.fc1.weight[:, 7] = 0  # feature 7 no longer reaches the network
    with untouched(blind.train()):
        r = permutation_importance(blind, x, y, repeats=5, seed=0)
    assert r.mean[7] == 0 and r.std[7] == 0
    assert r.accuracy == pytest.approx(float((log_odds(blind, x) > 0).long().eq(y).double().mean()))
    assert r.mean.max() > 0  # the other features do matter
    assert torch.equal(r.mean, permutation_importance(blind, x, y, repeats=5, seed=0).mean)  # seeded


def test_rank_agreement_matches_a_hand_written_spearman_and_top_overlap():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(30, generator=g, dtype=torch.float64), torch.rand(30, generator=g, dtype=torch.float64)
    ranks = lambda v: torch.argsort(torch.argsort(v)).double()  # noqa: E731 - no ties in continuous draws
    ra, rb = ranks(a) - 14.5, ranks(b) - 14.5
    rho = float((ra * rb).sum() / (ra.norm() * rb.norm()))
    r = rank_agreement({"a": a, "b": b})
    assert float(r.spearman[0, 1]) == pytest.approx(rho, abs=1e-12)
    sign = torch.sign(a[:, None] - a[None]) * torch.sign(b[:, None] - b[None])
    assert float(r.kendall[0, 1]) == pytest.approx(float(sign.sum() / (30 * 29)), abs=1e-12)
    assert top_overlap(a, b, 5) == len(set(torch.topk(a, 5).indices.tolist()) & set(torch.topk(b, 5).indices.tolist()))
    assert torch.isnan(rank_agreement({"a": a, "c": torch.ones(30)}).spearman[0, 1])


# --- the report section: built in quick mode, every number in a caption recomputed here ---------------


def _number(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    assert m, (pattern, text)
    return float(m.group(1))


@pytest.fixture(scope="module")
def built(model):
    ctx = Context(quick=True)
    ctx._models[section.MODEL] = (model, tab.rows)
    with untouched(model):
        blocks = section.build(ctx)
    return {b.title: b for b in blocks if hasattr(b, "title")}


def test_section_row_caption_states_base_plus_contributions_equals_the_score(built, model, data):
    x, _, _, bg = data
    cap = built[f"Held-out row {section.ROW}, KernelSHAP"].caption
    base = _number(r"E\[f\(X\)\] = (-?\d+\.\d+)", cap)
    added = _number(r"contributions add ([+-]\d+\.\d+)", cap)
    score = _number(r"log-odds for the row is (-?\d+\.\d+)", cap)
    assert base == pytest.approx(float(log_odds(model, bg).mean()), abs=5e-4)
    assert score == pytest.approx(float(log_odds(model, x[section.ROW : section.ROW + 1])[0]), abs=5e-4)
    assert base + added == pytest.approx(score, abs=2e-3)  # the axiom, as the reader sees it


def test_section_importance_and_agreement_captions_are_recomputed(built, model, data):
    x, y, names, bg = data
    rows = x[: section.settings(True)["rows"]]
    shap = kernel_shap(model, rows, bg, names, n_samples=section.settings(True)["kernel-shap"]["n_samples"])
    ig = see.attribute(model, rows, "integrated-gradients", target=tab.benign_log_odds, kind="tabular",
                       feature_names=names, background=bg, steps=section.settings(True)["integrated-gradients"]["steps"])
    ig = getattr(ig, "attributions", ig)
    cap = built["Rank agreement"].caption
    k5 = int(_number(r"agree on (\d) of their top-5", cap))
    assert k5 == len(set(torch.topk(mean_abs(shap), 5).indices.tolist()) & set(torch.topk(mean_abs(ig), 5).indices.tolist()))
    fit = see.inspect.breast_cancer_logistic(seed=0)
    rho_lr = _number(r"logistic regression's \|w\|: ρ (-?\d\.\d\d)", cap)
    from scipy.stats import spearmanr

    assert rho_lr == pytest.approx(spearmanr(mean_abs(shap).numpy(), fit.model.weight[0].detach().abs().numpy()).statistic,
                                   abs=0.006)
    cap = built["Global importance, five ways"].caption
    assert _number(r"unshuffled accuracy (\d+\.\d)%", cap) == pytest.approx(100 * tab.tabular_accuracy(model), abs=0.05)
    assert _number(r"held-out accuracy (\d+\.\d)%", cap) == pytest.approx(100 * fit.accuracy, abs=0.05)
    first = names[int(torch.argmax(mean_abs(shap)))]
    assert f"KernelSHAP's first feature, {first}," in cap
    cap = built["Summary plot (KernelSHAP)"].caption
    j = names.index(first)
    corr = float(np.corrcoef(rows[:, j].double().numpy(), shap[:, j].double().numpy())[0, 1])
    assert _number(r"contribution is ([+-]\d\.\d\d)", cap) == pytest.approx(corr, abs=0.006)
    table = built["Global importance (top 15 by KernelSHAP)"]
    assert len(table.rows) == 15 and table.rows[0][0] == first and len(table.columns) == 6


# --- the command line ------------------------------------------------------------------------------------


def test_explain_row_writes_a_png_per_method_and_a_csv(tmp_path, model, data):
    x, _, names, bg = data
    out = tmp_path / "o"
    res = runner.invoke(app, ["explain", "--model", "mlp-breast-cancer", "--row", "3", "--method", "kernel-shap,saliency",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "row3-kernel-shap.png").is_file() and (out / "row3-saliency.png").is_file()
    with open(out / "attributions.csv", newline="") as f:
        lines = list(csv.DictReader(f))
    assert [ln["method"] for ln in lines] == ["kernel-shap", "saliency"]
    shap = lines[0]
    cls = int(shap["class"])
    with see.hooks(model), torch.no_grad():
        logits, bg_logits = model(x[3:4]).double(), model(bg).double()
    assert cls == int(logits.argmax(1)) and shap["label"] == ["malignant", "benign"][cls]
    assert float(shap["score"]) == pytest.approx(float(logits[0, cls]), rel=1e-5)
    assert float(shap["base"]) == pytest.approx(float(bg_logits[:, cls].mean()), rel=1e-5)
    values = [float(shap[n]) for n in names]
    assert float(shap["base"]) + sum(values) == pytest.approx(float(shap["score"]), abs=1e-3)  # efficiency, in the file


def test_explain_csv_explains_every_row_in_any_column_order(tmp_path, data):
    x, _, names, _ = data
    path = tmp_path / "rows.csv"
    perm = list(reversed(range(30)))
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([names[j] for j in perm])
        for r in x[3:5].tolist():
            w.writerow([repr(r[j]) for j in perm])
    out = tmp_path / "o"
    res = runner.invoke(app, ["explain", "-m", "mlp-breast-cancer", "--csv", str(path), "--method", "saliency", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["attributions.csv", "maps.npz", "rows-0-saliency.png",
                                                     "rows-1-saliency.png", "scores.json"]
    # the same numbers as --row for the same held-out row
    runner.invoke(app, ["explain", "-m", "mlp-breast-cancer", "--row", "4", "--method", "saliency", "-o", str(tmp_path / "r")])
    with open(out / "attributions.csv", newline="") as f, open(tmp_path / "r" / "attributions.csv", newline="") as g:
        from_csv, from_row = list(csv.DictReader(f))[1], next(csv.DictReader(g))
    assert [from_csv[n] for n in names] == [from_row[n] for n in names]


# The CLI's bad-input lines for rows are tested in tests/test_tabular_helpers.py.


def test_explain_rows_leaves_a_train_mode_model_untouched(tmp_path, model):
    import copy

    from seethrough.commands.tabular import explain_rows
    from seethrough.loading import LoadedModel

    net = copy.deepcopy(model).train()
    loaded = LoadedModel(net, tab.rows, ["malignant", "benign"], "mlp-breast-cancer")
    with untouched(net):
        files = explain_rows(loaded, ["kernel-shap", "integrated-gradients"], row=5, csv_path=None, target=1,
                             out=tmp_path)
    assert sorted(p.name for p in files) == ["attributions.csv", "maps.npz", "row5-integrated-gradients.png",
                                             "row5-kernel-shap.png", "scores.json"]
    assert net.training
