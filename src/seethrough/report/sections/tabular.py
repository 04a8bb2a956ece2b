"""Tabular data: mlp-breast-cancer explained row by row and globally, and how far the methods agree.

Every attribution here explains the same score, the model's log-odds of "benign"
(:func:`seethrough.zoo.tabular.benign_log_odds`), which is also what the logistic regression of the
"Inside the network" section outputs, so the five global importances answer one question. The
perturbation methods and integrated gradients take the same background: 100 training rows.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...attribution import attribute
from ...hooks import hooks
from ...inspect import breast_cancer_logistic, mean_abs, permutation_importance, rank_agreement, top_overlap
from ...inspect.importance import top_features
from ...render import importance_bars, rank_heatmap, summary_plot, waterfall
from ...zoo import tabular as tab
from ..registry import Context, Text, section

MODEL = "mlp-breast-cancer"
ROW = 3  # the held-out row of the one-row story (the CLI's example: seethrough explain --row 3)
METHODS = {"integrated gradients": "integrated-gradients", "KernelSHAP": "kernel-shap", "LIME": "lime"}


def settings(quick: bool) -> dict:
    """How much the section computes: ``rows`` held-out rows (``None``: all 143) and each method's budget.

    >>> settings(True)["rows"], settings(False)["rows"]
    (20, None)
    """
    return {"rows": 20 if quick else None, "background": 100, "repeats": 10 if quick else 30,
            "integrated-gradients": {"steps": 32 if quick else 64},
            "kernel-shap": {"n_samples": 256 if quick else 1000},
            "lime": {"n_samples": 256 if quick else 1000}}


def explain(model, x: torch.Tensor, method: str, bg: torch.Tensor, names: list[str], seed: int, quick: bool) -> torch.Tensor:
    """``(N, F)`` attributions of the benign log-odds with ``method`` and the section's settings."""
    opts = dict(settings(quick)[method])
    if method != "integrated-gradients":
        opts["seed"] = seed
    a = attribute(model, x, method, target=tab.benign_log_odds, kind="tabular", feature_names=names, background=bg,
                  progress=False, **opts)
    return getattr(a, "attributions", a).detach().reshape(len(x), -1).double()


@dataclass
class Story:
    """Everything the section shows, computed once (the tests recompute parts of it independently)."""

    names: list[str]
    x: torch.Tensor  # the explained held-out rows
    row: int  # index of the one-row story inside ``x``
    base: float  # mean log-odds over the background
    score: float  # the model's log-odds of the row
    attributions: dict[str, torch.Tensor]  # method label -> (N, F)
    importance: dict[str, torch.Tensor]  # column label -> (F,)
    accuracy: float  # the MLP's on all held-out rows
    logreg_accuracy: float


def story(model, quick: bool, seed: int = 0) -> Story:
    """Compute the section's numbers: attributions, five global importances, the row's base value and score."""
    cfg = settings(quick)
    x_all, y_all, names = tab.breast_cancer("test")
    x = x_all if cfg["rows"] is None else x_all[: cfg["rows"]]
    bg = tab.background(cfg["background"], seed=seed)
    attributions = {label: explain(model, x, m, bg, names, seed, quick) for label, m in METHODS.items()}
    perm = permutation_importance(model, x_all, y_all, repeats=cfg["repeats"], seed=seed)
    fit = breast_cancer_logistic(seed=0)  # the split of the zoo model (seed 0), not the report's seed
    importance = {label: mean_abs(a) for label, a in attributions.items()}
    importance["permutation (accuracy drop)"] = perm.mean
    importance["logistic regression |w|"] = fit.model.weight.detach()[0].double().abs()
    with hooks(model), torch.no_grad():
        base = float(tab.benign_log_odds(model(bg)).double().mean())
        score = float(tab.benign_log_odds(model(x[ROW : ROW + 1]))[0])
    return Story(names, x, ROW, base, score, attributions, importance, perm.accuracy, fit.accuracy)


@section("tabular", "Tabular data", order=27)
def build(ctx: Context) -> list:
    model, _ = ctx.model(MODEL)
    cfg = settings(ctx.quick)
    sw = ctx.stopwatch()
    s = story(model, ctx.quick, ctx.seed)
    n, f = s.x.shape
    shap = s.attributions["KernelSHAP"]
    budget = (f"KernelSHAP n_samples={cfg['kernel-shap']['n_samples']}, LIME n_samples={cfg['lime']['n_samples']}, "
              f"IG steps={cfg['integrated-gradients']['steps']}, background={cfg['background']} training rows")
    blocks: list = [Text(
        f"{MODEL}: a {f}-feature MLP on scikit-learn's breast-cancer rows whose first module standardises the raw "
        f"measurements, {s.accuracy:.1%} accurate on the {len(tab.breast_cancer('test')[1])} held-out rows. Every "
        "method explains its log-odds of benign; perturbation methods and integrated gradients take a background "
        f"of {cfg['background']} training rows as what an absent feature becomes. {n} held-out rows are explained.")]

    # --- one row ---------------------------------------------------------------------------------------
    phi = shap[s.row]
    total = float(phi.sum())
    blocks.append(sw.figure(
        f"Held-out row {s.row}, KernelSHAP", waterfall(phi, s.x[s.row], s.names, base=s.base, top=12,
                                                      title=f"{MODEL} · row {s.row} · KernelSHAP",
                                                      score_label="log-odds benign"),
        f"From the base value E[f(X)] = {s.base:.3f} (the mean log-odds over the background) the {f} contributions "
        f"add {total:+.3f}, reaching {s.base + total:.3f}; the model's log-odds for the row is {s.score:.3f} "
        f"(difference {abs(s.base + total - s.score):.1e}). Each bar is a feature at the row's value; the 12 "
        f"largest are drawn, the other {f - 12} together.",
        model=MODEL, method="kernel-shap", options=budget, seed=ctx.seed))

    # --- global importance -------------------------------------------------------------------------------
    sw = ctx.stopwatch()
    imp = s.importance
    cols = list(imp)
    order = top_features(imp["KernelSHAP"], 15)
    top_shap = s.names[order[0]]
    ranks = {c: {j: r for r, j in enumerate(top_features(imp[c], f), 1)} for c in cols}
    blocks.append(sw.figure(
        "Global importance, five ways", importance_bars(imp, s.names, top=15, order_by="KernelSHAP",
                                                        title=f"{MODEL}: the 15 most important features by KernelSHAP"),
        f"Mean |attribution| over the {n} rows for integrated gradients, KernelSHAP and LIME, the accuracy drop when a "
        f"column is shuffled among the held-out rows ({cfg['repeats']} shuffles each; unshuffled accuracy "
        f"{s.accuracy:.1%}), and |w| of a logistic regression on standardised features (held-out accuracy "
        f"{s.logreg_accuracy:.1%}). Each column is scaled to its own largest value. KernelSHAP's first feature, "
        f"{top_shap}, is ranked {', '.join(f'{ranks[c][order[0]]}' for c in cols if c != 'KernelSHAP')} by the others "
        f"({', '.join(c for c in cols if c != 'KernelSHAP')}).",
        model=MODEL, method="integrated-gradients, kernel-shap, lime, permutation_importance, linear_importance",
        options=budget, seed=ctx.seed))
    blocks.append(sw.table(
        "Global importance (top 15 by KernelSHAP)", ["feature", *cols],
        [[s.names[j], *[f"{float(imp[c][j]):.3g} (#{ranks[c][j]})" for c in cols]] for j in order],
        "Each value with its rank among the 30 features for that method (#1 the most important).", model=MODEL))

    # --- rank agreement ------------------------------------------------------------------------------------
    sw = ctx.stopwatch()
    agree = rank_agreement(imp)
    k5 = top_overlap(imp["KernelSHAP"], imp["integrated gradients"], 5)
    i, j = cols.index("KernelSHAP"), cols.index("integrated gradients")
    lr = cols.index("logistic regression |w|")
    worst = min(((a, b) for a in range(len(cols)) for b in range(a + 1, len(cols))), key=lambda p: agree.spearman[p])
    blocks.append(sw.figure(
        "Rank agreement", rank_heatmap(agree.spearman, cols, title="Spearman ρ between the global importances"),
        f"KernelSHAP and integrated gradients agree on {k5} of their top-5 features (Spearman ρ "
        f"{float(agree.spearman[i, j]):.2f}, Kendall τ {float(agree.kendall[i, j]):.2f} over all {f}); KernelSHAP "
        f"and the logistic regression's |w|: ρ {float(agree.spearman[i, lr]):.2f}. The least alike pair is "
        f"{cols[worst[0]]} and {cols[worst[1]]} (ρ {float(agree.spearman[worst]):.2f}).",
        model=MODEL, method="rank_agreement", options=budget, seed=ctx.seed))
    blocks.append(sw.table(
        "Rank agreement: Kendall τ and shared top-5", ["", *cols],
        [[c, *[f"τ {float(agree.kendall[a, b]):.2f} · top-5 {top_overlap(imp[c], imp[d], 5)}" for b, d in enumerate(cols)]]
         for a, c in enumerate(cols)],
        "Kendall τ-b over the 30 features and the number of top-5 features each pair shares.", model=MODEL))

    # --- summary plot ------------------------------------------------------------------------------------
    sw = ctx.stopwatch()
    j0 = order[0]
    corr = float(torch.corrcoef(torch.stack([s.x[:, j0].double(), shap[:, j0]]))[0, 1])
    blocks.append(sw.figure(
        "Summary plot (KernelSHAP)", summary_plot(shap, s.x, s.names, top=15, title=f"{MODEL} · KernelSHAP · {n} rows",
                                                  xlabel="contribution to the log-odds of benign"),
        f"One dot per row and feature ({n} × 15 of the {f} features shown), at its KernelSHAP contribution, red for "
        f"a high value of the feature and blue for a low one. For {top_shap} the correlation between the value and "
        f"its contribution is {corr:+.2f}: high values push the row towards "
        f"{'benign' if corr > 0 else 'malignant'}.",
        model=MODEL, method="kernel-shap", options=budget, seed=ctx.seed))
    return blocks
