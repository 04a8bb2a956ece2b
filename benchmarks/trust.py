"""Trust metrics against their peers: one command, one table (ratios, not timed tests).

    python benchmarks/trust.py            # the full table (EfficientNet-Lite0 on labelled photos; minutes)
    python benchmarks/trust.py --quick    # lenet-digits only, to check that everything runs

Rows: model-parameter randomization vs Quantus ``MPRT``; deletion, pixel flipping, region
perturbation and ROAD vs Quantus with equal steps; infidelity and max-sensitivity vs Captum.
Columns: seconds for seethrough and the peer (at its defaults and at its best batch setting), the
peer/ours ratio, and our ratio to the limit (passes needed × the best per-image cost of a batched
forward, or forward + input gradient for the gradient rows, over batch sizes and memory layouts —
contiguous and channels-last — measured here after warm-up). Differences in the *values* are noted: Quantus
randomises layers in definition order (``named_modules``), not execution order; its pixel flipping
reports the raw curve while we report AOPC; Captum's max-sensitivity draws its own perturbations.
Peers are benchmark dependencies only: ``pip install --no-deps quantus cachetools opencv-python-headless``.
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

import seethrough as see

warnings.filterwarnings("ignore")


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def peer_timed(fn):
    """A peer call that may fail on this input: (nan, error text) instead of aborting the table."""
    try:
        return timed(fn)
    except Exception as e:  # noqa: BLE001 - reported in the table's note
        return float("nan"), f"peer failed: {type(e).__name__}: {str(e).splitlines()[0][:80]}"


def pass_cost(model, x, mode="forward"):
    """Best seconds per image of a batched ``mode`` pass ('forward', or 'grad': forward + input gradient)
    over batch sizes *and* memory layouts (contiguous, channels-last), measured here after warm-up:
    the limit of issue 21 (``_bench.per_image_grid``)."""
    from _bench import best_cell, per_image_grid

    return best_cell(per_image_grid(model, x, mode, sizes=(1, 4, 8, 16, 32), images=32))[0]


def gradient_explainer(model, inputs, targets, **kwargs):
    """Quantus's explain_func: our signed gradient, as numpy."""
    x = torch.as_tensor(inputs, dtype=torch.float32)
    return see.attribute(model, x, "saliency", target=torch.as_tensor(targets), abs=False).numpy()


def rows_for(model, x, y, a, steps, quick):
    from _bench import peer

    quantus = peer("quantus")  # quantus imports zennit when installed, and zennit imports torchvision: peer() stubs it
    if quantus is None:
        raise SystemExit("benchmarks/trust.py needs Quantus (make bench installs it)")
    from captum.metrics import infidelity as c_infidelity
    from captum.metrics import sensitivity_max

    n, (h, w) = len(x), x.shape[-2:]
    per_step = (h * w) // steps
    fwd, grad = pass_cost(model, x), pass_cost(model, x, "grad")
    xn, yn, an = x.numpy(), y.numpy(), a.numpy()
    rows = []

    def row(name, ours, passes, peer_default, peer_best=None, note="", per_pass=None):
        t_ours, _ = ours
        t_peer, out = peer_default
        t_best = peer_best[0] if peer_best else t_peer
        if isinstance(out, str) and out.startswith("peer failed"):
            note = f"{note}; {out}" if note else out
        limit = passes * (fwd if per_pass is None else per_pass)
        rows.append([name, f"{t_ours:.2f}", f"{t_peer:.2f}", f"{t_best:.2f}", f"{t_peer / t_ours:.1f}×",
                     f"{t_best / t_ours:.1f}×", f"{t_ours / limit:.1f}×", note])

    # Deletion ≡ Quantus PixelFlipping (MoRF to black) with the same pixels per step.
    ours = timed(lambda: see.metrics.deletion(model, x, a, y, steps=steps, n_random=0, progress=False))
    pf = lambda bs: timed(lambda: quantus.PixelFlipping(features_in_step=per_step, perturb_baseline="black", abs=False,
                                                        normalise=False, disable_warnings=True)(
        model=model, x_batch=xn, y_batch=yn, a_batch=an, device="cpu", softmax=True, batch_size=bs))
    row("deletion (MoRF → black)", ours, n * (steps + 1) + n, pf(64), pf(8),
        "Quantus: one forward per sample per step (no batching across steps)")
    ours = timed(lambda: see.metrics.pixel_flipping(model, x, a, y, steps=steps, n_random=0, progress=False))
    row("pixel flipping (AOPC)", ours, n * (steps + 1) + n, pf(64), pf(8), "Quantus returns the curve, we add AOPC")
    patch = max(2, h // 16)
    regions = -(-h // patch) * -(-w // patch)
    rsteps = min(steps, regions)
    ours = timed(lambda: see.metrics.region_perturbation(model, x, a, y, patch=patch, steps=rsteps, n_random=0,
                                                         progress=False))
    rp = peer_timed(lambda: quantus.RegionPerturbation(patch_size=patch, regions_evaluation=rsteps, disable_warnings=True,
                                                  abs=False, normalise=False)(
        model=model, x_batch=xn, y_batch=yn, a_batch=an, device="cpu", softmax=True))
    row("region perturbation", ours, n * (rsteps + 1) + n, rp,
        note="regions: ours ceil(k·U/steps) per step; Quantus one region per step, uniform noise")
    fr = (0.1, 0.3, 0.5, 0.7, 0.9) if quick else tuple(np.round(np.arange(0.1, 1.0, 0.1), 2))
    ours = timed(lambda: see.metrics.road(model, x, a, y, fractions=fr, n_random=0, progress=False))
    rd = peer_timed(lambda: quantus.ROAD(percentages=[int(f * 100) for f in fr], noise=0.01, disable_warnings=True,
                                    abs=False, normalise=False)(
        model=model, x_batch=xn, y_batch=yn, a_batch=an, device="cpu", softmax=True))
    row("ROAD (MoRF)", ours, n * (len(fr) + 1) + n, rd, note="both solve the sparse imputation per image and fraction")

    # Infidelity and max-sensitivity vs Captum.
    k = 16 if quick else 64
    ours = timed(lambda: see.metrics.infidelity(model, x, a, y, perturbation="gaussian", n_samples=k, progress=False))

    def perturb(inputs):
        noise = torch.randn_like(inputs) * 0.1
        return noise, inputs - noise

    cap = lambda bs: timed(lambda: c_infidelity(model, perturb, x, a, target=y, n_perturb_samples=k,
                                                max_examples_per_batch=bs, normalize=True))
    row("infidelity (gaussian, optimal scaling)", ours, n * k + n, cap(None), cap(16),
        "Captum scores the softmax-free output like us (score='logit')")
    k = 4 if quick else 16
    ours = timed(lambda: see.metrics.max_sensitivity(model, x, "saliency", y, n_samples=k, progress=False,
                                                     abs=False))

    def cexplain(inputs, target=None):
        inputs = inputs[0] if isinstance(inputs, tuple) else inputs  # Captum passes a tuple of inputs
        if isinstance(target, torch.Tensor) and len(target) != len(inputs):  # perturbed copies: repeat the classes
            target = target.repeat_interleave(len(inputs) // len(target))
        return see.attribute(model, inputs, "saliency", target=target, abs=False)

    sens = lambda bs: peer_timed(lambda: sensitivity_max(cexplain, x, target=y, perturb_radius=0.02, n_perturb_samples=k,
                                                    max_examples_per_batch=bs))
    row("max-sensitivity (gradient)", ours, n * k + n, sens(n * k), sens(4 * n),
        "limit: passes × the best forward + input gradient; Captum uses an L∞ ball of the same radius", per_pass=grad)

    # Randomization vs Quantus MPRT (same explainer, every parameterised layer).
    ours = timed(lambda: see.sanity.randomization(model, x, gradient_explainer_torch, y,
                                                  metrics=("spearman_abs",), progress=False))
    layers = len(ours[1].layers)
    mprt = peer_timed(lambda: quantus.MPRT(layer_order="top_down", disable_warnings=True, return_average_correlation=False)(
        model=model, x_batch=xn, y_batch=yn, a_batch=an, explain_func=gradient_explainer, device="cpu"))
    row("randomization (cascading) vs MPRT", ours, n * (layers + 1), mprt, per_pass=grad,
        note="limit: passes × the best forward + input gradient; Quantus randomises in named_modules() "
             "(definition) order, we trace the execution order")
    return rows


def gradient_explainer_torch(model, x, target):
    return see.attribute(model, x, "saliency", target=target, abs=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="lenet-digits only, few samples")
    args = parser.parse_args()
    torch.manual_seed(0)
    setups = []
    model, _ = see.zoo.load("lenet-digits")
    x, y = see.zoo.digits("test")
    x, y = (x[:4], y[:4]) if args.quick else (x[:32], y[:32])
    setups.append(("lenet-digits 32×32", model, x, y, 16))
    if not args.quick:
        eff, _ = see.zoo.load("efficientnet-lite0")
        xe, ye = see.zoo.imagenet_samples(n=4)
        setups.append(("efficientnet-lite0 224×224", eff, xe, ye, 64))
    header = ["metric", "ours s", "peer s (default)", "peer s (best)", "peer/ours", "best peer/ours", "ours/limit", "note"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for title, model, x, y, steps in setups:
        a = see.attribute(model, x, "grad-x-input", target=y)
        print(f"\n### {title}, {len(x)} images, {steps} steps\n")
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for r in rows_for(model, x, y, a, steps, args.quick):
            print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
