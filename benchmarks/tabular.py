"""Tabular KernelSHAP against the shap package's KernelExplainer: one run, one markdown table (ratios).

    python benchmarks/tabular.py                 # 20 held-out rows, 1000 coalitions, 100 background rows
    python benchmarks/tabular.py --rows 4        # a quick check that everything runs

Both explain the same score of mlp-breast-cancer (the log-odds of benign, one output) on the same
held-out rows with the same background (100 training rows): ``see.attribute(..., "kernel-shap",
kind="tabular", background=bg, n_samples=1000)`` and ``shap.KernelExplainer(f, bg).shap_values(rows,
nsamples=1000, l1_reg=False)``. shap's default ``l1_reg="num_features(10)"`` keeps only 10 features
non-zero, which is another estimator; ``l1_reg=False`` is plain KernelSHAP. The two libraries draw
coalitions differently, so their values can only agree to within sampling noise: the table gives
each library's agreement with itself across two seeds (the noise floor) beside the agreement
between them (Pearson correlation over every (row, feature) value and the largest absolute
difference, in log-odds). Both are warmed on two rows first; seconds are wall-clock for all rows.
``shap`` is a benchmark dependency (the ``bench`` extra).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
import warnings

import numpy as np
import torch

import seethrough as see
from seethrough.zoo import tabular as tab

warnings.filterwarnings("ignore")


def agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(Pearson correlation over all values, max |a − b|)."""
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1]), float(np.abs(a - b).max())


def ours(model, rows, bg, names, n_samples, seed):
    a = see.attribute(model, rows, "kernel-shap", target=tab.benign_log_odds, kind="tabular", feature_names=names,
                      background=bg, n_samples=n_samples, seed=seed, progress=False)
    return getattr(a, "attributions", a).detach().double().reshape(len(rows), -1).numpy()


def theirs(model, rows, bg, n_samples, seed):
    import shap

    def f(x: np.ndarray) -> np.ndarray:
        with see.hooks(model), torch.no_grad():
            return tab.benign_log_odds(model(torch.from_numpy(np.asarray(x, dtype=np.float32)))).double().numpy()

    np.random.seed(seed)  # KernelExplainer draws its coalitions from numpy's global generator
    explainer = shap.KernelExplainer(f, bg.numpy())
    return np.asarray(explainer.shap_values(rows.numpy(), nsamples=n_samples, l1_reg=False, silent=True), dtype=np.float64)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--background", type=int, default=100)
    args = ap.parse_args()
    import shap

    model, _ = see.zoo.load("mlp-breast-cancer")
    x, _, names = see.zoo.breast_cancer("test")
    rows, bg = x[: args.rows], tab.background(args.background)
    with see.hooks(model), torch.no_grad():
        score = tab.benign_log_odds(model(rows)).double().numpy()
        base = float(tab.benign_log_odds(model(bg)).double().mean())

    ours(model, rows[:2], bg, names, args.samples, 0)  # warm both (batch-size probing, imports, allocations)
    theirs(model, rows[:2], bg, args.samples, 0)
    t_ours, a0 = timed(lambda: ours(model, rows, bg, names, args.samples, 0))
    t_shap, s0 = timed(lambda: theirs(model, rows, bg, args.samples, 0))
    a1 = ours(model, rows, bg, names, args.samples, 1)
    s1 = theirs(model, rows, bg, args.samples, 1)

    self_ours, self_shap, cross = agreement(a0, a1), agreement(s0, s1), agreement(a0, s0)
    eff_ours = float(np.abs(base + a0.sum(1) - score).max())
    eff_shap = float(np.abs(base + s0.sum(1) - score).max())
    scale = float(np.abs(s0).max())
    print(f"# Tabular KernelSHAP vs shap.KernelExplainer — {datetime.date.today()}, one run on a shared "
          f"{os.cpu_count()}-core machine ({platform.machine()}, {torch.get_num_threads()} torch thread(s), "
          f"torch {torch.__version__}, shap {shap.__version__})\n")
    print(f"mlp-breast-cancer, {args.rows} held-out rows × 30 features, {args.samples} coalitions, background "
          f"{args.background} training rows, score = log-odds of benign (largest |value| {scale:.3f}).\n")
    print("| | seethrough | shap KernelExplainer (`l1_reg=False`) |")
    print("|---|---|---|")
    print(f"| seconds, {args.rows} rows (warmed) | {t_ours:.2f} | {t_shap:.2f} |")
    print(f"| shap / seethrough time | 1 | {t_shap / t_ours:.1f}× |")
    print(f"| self-agreement, seed 0 vs 1: correlation | {self_ours[0]:.4f} | {self_shap[0]:.4f} |")
    print(f"| self-agreement, seed 0 vs 1: max abs difference | {self_ours[1]:.4f} | {self_shap[1]:.4f} |")
    print(f"| base + Σ values − f(x), max abs (efficiency) | {eff_ours:.1e} | {eff_shap:.1e} |")
    print(f"\nseethrough vs shap (seed 0 each): correlation {cross[0]:.4f}, max abs difference {cross[1]:.4f} "
          f"(noise floors: {self_ours[1]:.4f} ours, {self_shap[1]:.4f} shap).")


if __name__ == "__main__":
    main()
