"""The peer calls of ``benchmarks/run.py``: per row, each peer library at its default and over a small
grid of its batching parameter, on the model as the user gives it (contiguous) at its API's settings.

A peer call is ``Peer(library, setting, default, make)``; ``make(model, x)`` returns the zero-argument
callable that is timed, so the same setting can be re-run on a channels-last model copy (Captum only:
the one extra column of the table). Shared settings come from ``Work`` (sample counts, window, ...).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from _bench import peer, relu6_as_relu


@dataclass
class Peer:
    library: str
    setting: str
    default: bool
    make: Callable[[torch.nn.Module, torch.Tensor], Callable[[], Any]]


@dataclass
class Work:
    """What every row computes: the same numbers for us and the peers."""

    window: int
    stride: int
    n_lime: int
    n_shap: int
    n_rise: int
    n_sg: int
    n_ig: int
    steps: int  # deletion / insertion steps
    grid: tuple[int, ...]  # the peers' batching settings tried
    layers: int | None = None  # sanity cascade: the top layers only (None: every parameterised layer)


def peers_for(model, x, target: int, seg: torch.Tensor, a: torch.Tensor, w: Work) -> dict[str, list[Peer]]:
    """Every peer call per row name (rows whose peers are not installed get none)."""
    out: dict[str, list[Peer]] = {}
    size = x.shape[-1]
    ca = peer("captum")
    if ca is not None:
        import captum.attr as ca

        mask = seg.view(1, 1, *seg.shape[-2:])

        def grid(name, kw, build):
            return [Peer("Captum", "default", True, lambda m, xx: lambda: build(m, xx, {}))] + [
                Peer("Captum", f"{kw}={b}", False, lambda m, xx, b=b: lambda: build(m, xx, {kw: b})) for b in w.grid]

        out["occlusion"] = grid("occlusion", "perturbations_per_eval", lambda m, xx, o: ca.Occlusion(m).attribute(
            xx, sliding_window_shapes=(3, w.window, w.window), strides=(3, w.stride, w.stride), target=target,
            baselines=0.0, **o))
        out["lime"] = grid("lime", "perturbations_per_eval", lambda m, xx, o: ca.Lime(m).attribute(
            xx, target=target, feature_mask=mask, n_samples=w.n_lime, baselines=0.0, **o))
        out["kernel-shap"] = grid("kernel-shap", "perturbations_per_eval", lambda m, xx, o: ca.KernelShap(m).attribute(
            xx, target=target, feature_mask=mask, n_samples=w.n_shap, baselines=0.0, **o))
        out["smoothgrad"] = grid("smoothgrad", "nt_samples_batch_size", lambda m, xx, o: ca.NoiseTunnel(
            ca.Saliency(m)).attribute(xx, nt_type="smoothgrad", nt_samples=w.n_sg, stdevs=0.15, target=target,
                                      abs=False, **o))
        out["integrated-gradients"] = grid("ig", "internal_batch_size", lambda m, xx, o: ca.IntegratedGradients(
            m).attribute(xx, target=target, n_steps=w.n_ig, **o))
        one = lambda label, fn: [Peer("Captum", label, True, fn)]
        out["saliency"] = one("Saliency", lambda m, xx: lambda: ca.Saliency(m).attribute(xx, target=target))
        out["grad-x-input"] = one("InputXGradient", lambda m, xx: lambda: ca.InputXGradient(m).attribute(
            xx, target=target))
        out["gradcam"] = one("LayerGradCam + interpolate", lambda m, xx: lambda: ca.LayerAttribution.interpolate(
            ca.LayerGradCam(m, m.head).attribute(xx, target=target, relu_attributions=True), (size, size), "bilinear"))
        relu = relu6_as_relu(model)  # Captum's rule-based methods hook nn.ReLU only (PEERS.md)
        out["deconvnet"] = one("Deconvolution (ReLU6 as ReLU)", lambda m, xx: lambda: ca.Deconvolution(relu).attribute(
            xx, target=target))
        out["guided-backprop"] = one("GuidedBackprop (ReLU6 as ReLU)", lambda m, xx: lambda: ca.GuidedBackprop(
            relu).attribute(xx, target=target))
        out["deeplift"] = one("DeepLift (ReLU6 as ReLU)", lambda m, xx: lambda: ca.DeepLift(relu).attribute(
            xx, target=target, baselines=0.0))
    lime = peer("lime")
    if lime is not None:
        from lime import lime_image

        seg_np = seg.reshape(seg.shape[-2:]).numpy()
        image = x[0].permute(1, 2, 0).numpy().astype("float64")

        def classify(batch):
            with torch.no_grad():
                return model(torch.from_numpy(batch).permute(0, 3, 1, 2).float()).softmax(1).numpy()

        def lime_call(b):
            kw = {} if b is None else {"batch_size": b}
            return lambda m, xx: lambda: lime_image.LimeImageExplainer(random_state=0).explain_instance(
                image, classify, labels=(target,), top_labels=None, hide_color=0, num_samples=w.n_lime,
                segmentation_fn=lambda _: seg_np, random_seed=0, **kw)

        out.setdefault("lime", []).extend([Peer("lime", "default (batch_size=10)", True, lime_call(None))]
                                          + [Peer("lime", f"batch_size={b}", False, lime_call(b)) for b in w.grid])
    shap = peer("shap")
    if shap is not None:
        out.setdefault("kernel-shap", []).extend(shap_calls(shap, model, x, target, seg, w))
    out.update(quantus_calls(model, x, target, a, w))
    zennit = peer("zennit")
    if zennit is not None:
        with torch.no_grad():
            n_out = model(x).shape[1]
        out["lrp"] = zennit_calls(x, target, n_out)
    return out


def shap_calls(shap, model, x, target, seg, w: Work) -> list[Peer]:
    """shap's KernelExplainer on the superpixels (one background row: every superpixel off = black).
    shap hands every coalition to the function at once and leaves batching to it: the grid is the
    batch size of that function; shap has no default batching of its own."""
    seg = seg.reshape(seg.shape[-2:]).long()
    n = int(seg.max()) + 1

    def f_of(b):
        def f(z):
            out = []
            for i in range(0, len(z), b):
                keep = torch.from_numpy(z[i:i + b]).float()[:, seg]  # (b, H, W): 1 where the superpixel is on
                with torch.no_grad():
                    out.append(model(x * keep[:, None])[:, target])
            return torch.cat(out).numpy()
        return f

    def call(b):
        return lambda m, xx: lambda: shap.KernelExplainer(f_of(b), np.zeros((1, n))).shap_values(
            np.ones((1, n)), nsamples=w.n_shap, silent=True)

    return [Peer("shap", f"function batches of {b}", False, call(b)) for b in w.grid]


def quantus_calls(model, x, target, a, w: Work) -> dict[str, list[Peer]]:
    """Quantus MPRT for the sanity cascade and PixelFlipping for deletion (same explainer / map)."""
    quantus = peer("quantus")
    if quantus is None:
        return {}
    from trust import gradient_explainer  # the explainer benchmarks/trust.py hands Quantus (ours, as numpy)

    if w.layers:  # --quick: a cascade over a few top layers, which MPRT cannot restrict to
        return {"deletion": quantus_calls(model, x, target, a, Work(**{**w.__dict__, "layers": None}))["deletion"]}
    xn, yn, an = x.numpy(), np.array([target]), a.numpy()
    per_step = (x.shape[-1] * x.shape[-2]) // w.steps
    mprt = lambda m, xx: lambda: quantus.MPRT(layer_order="top_down", disable_warnings=True,
                                             return_average_correlation=False)(
        model=m, x_batch=xn, y_batch=yn, a_batch=an, explain_func=gradient_explainer, device="cpu")
    flip = lambda m, xx: lambda: quantus.PixelFlipping(features_in_step=per_step, perturb_baseline="black", abs=False,
                                                       normalise=False, disable_warnings=True)(
        model=m, x_batch=xn, y_batch=yn, a_batch=an, device="cpu", softmax=True)
    return {"sanity cascade": [Peer("Quantus", "MPRT, default", True, mprt)],
            "deletion": [Peer("Quantus", "PixelFlipping, default", True, flip)]}


def zennit_calls(x, target, n_out: int) -> list[Peer]:
    """zennit's EpsilonPlusFlat with its BatchNorm canonizer, through its Gradient attributor, the
    composite registered per call (its documented use). No residual-sum canonizer: zennit has none for
    this model (PEERS.md), which changes its values, not its cost."""
    from zennit.attribution import Gradient
    from zennit.canonizers import SequentialMergeBatchNorm
    from zennit.composites import EpsilonPlusFlat

    onehot = torch.zeros(1, n_out)
    onehot[0, target] = 1.0

    def per_call(m, xx):
        def run():
            with Gradient(model=m, composite=EpsilonPlusFlat(canonizers=[SequentialMergeBatchNorm()])) as attributor:
                return attributor(xx.clone().requires_grad_(), onehot)
        return run

    return [Peer("zennit", "EpsilonPlusFlat + BN canonizer, per call", True, per_call)]
