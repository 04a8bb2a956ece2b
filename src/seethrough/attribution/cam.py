"""Class activation maps: CAM, Grad-CAM, Grad-CAM++, guided Grad-CAM, negative Grad-CAM.

Each variant only decides the channel weights ``α_k`` of the layer's feature maps ``A_k``; the
map is ``Σ_k α_k A_k`` (rectified for the Grad-CAM family), upsampled bilinearly to the input
size (``upsample=False`` keeps the layer's resolution).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..hooks import hooks
from ..layers import resolve_layer
from ..outputs import detach
from ..targets import method_score, target_indices, target_scores
from .registry import register
from .rules import guided_backprop

__all__ = ["default_layer", "class_activation_map"]

_CONVS = (nn.Conv2d,)


def default_layer(model: nn.Module) -> str:
    """The last convolution block: the parent block of the last ``Conv2d`` (``"head"`` in
    EfficientNet-Lite0, ``"layer4.1"`` in a ResNet), or, for a flat model, the activation that
    follows the last conv (``"relu2"`` in LeNet).

    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten())
    >>> default_layer(net)
    '1'
    """
    names = [n for n, m in model.named_modules() if isinstance(m, _CONVS)]
    if not names:
        raise ValueError("no Conv2d layer found; name the layer with feature maps (N, C, h, w) via layer=")
    last = names[-1]
    parent = last.rpartition(".")[0]
    if parent:
        block = resolve_layer(model, parent)
        if not any(isinstance(m, (nn.Flatten, nn.Linear)) for m in block.modules()):
            return parent
        siblings = [f"{parent}.{n}" for n, _ in block.named_children()]
    else:
        siblings = [n for n, _ in model.named_children()]
    from .rules import ACTIVATIONS

    after = siblings[siblings.index(last) + 1:] if last in siblings else []
    if after and isinstance(resolve_layer(model, after[0]), ACTIVATIONS):
        return after[0]
    return last


def _maps(model: nn.Module, x: torch.Tensor, target: Any, layer: str | None, score: str | None = None,
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Feature maps A (N, K, h, w), dscore/dA, the output and the resolved class per sample."""
    name = default_layer(model) if layer is None else layer
    resolve_layer(model, name)  # a clear error for unknown names before any forward
    with hooks(model, capture=name) as rec, torch.enable_grad():
        out = model(x.detach())
        a = rec[name]
        if a.dim() != 4:
            raise ValueError(f"layer {name!r} outputs shape {tuple(a.shape)}; CAM methods need feature maps (N, C, h, w)")
        idx = None if callable(target) and not isinstance(target, torch.Tensor) else target_indices(detach(out), target)
        (g,) = torch.autograd.grad(target_scores(out, target, idx, score).sum(), a, allow_unused=True)
    g = torch.zeros_like(a) if g is None else g
    return a.detach(), g, detach(out), idx


def _finish(m: torch.Tensor, x: torch.Tensor, upsample: bool, rectify: bool) -> torch.Tensor:
    m = m.unsqueeze(1)
    if rectify:
        m = m.clamp_min(0)
    if upsample and m.shape[-2:] != x.shape[-2:]:
        m = F.interpolate(m, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return m


def _gradcam_weights(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return g.mean((2, 3))


def _gradcam_pp_weights(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    # Chattopadhay et al. eq. 19 with the exponential of the score, whose higher derivatives are
    # powers of the first one (the usual closed form).
    g2, g3 = g * g, g * g * g
    denom = 2 * g2 + a.sum((2, 3), keepdim=True) * g3
    alpha = torch.where(g != 0, g2 / torch.where(denom != 0, denom, torch.ones_like(denom)), torch.zeros_like(g))
    return (alpha * g.clamp_min(0)).sum((2, 3))


def _negative_weights(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return -g.mean((2, 3))


def _weighted(weights: Callable, model, x, target, layer, upsample, score):
    a, g, _, _ = _maps(model, x, target, layer, method_score(score, target, "logit"))
    w = weights(a, g)
    return _finish((w[:, :, None, None] * a).sum(1), x, upsample, rectify=True)



@register("gradcam", family="cam", paper="Selvaraju et al., 2017", region=True)
def gradcam(model: nn.Module, x: torch.Tensor, target: Any = None, *, layer: str | None = None,
            upsample: bool = True, score: str | None = None) -> torch.Tensor:
    """Grad-CAM: ``ReLU(Σ_k mean(∂score/∂A_k) · A_k)`` at ``layer``, upsampled to x's size.

    ``score``: the logit (default, as the paper: "the score before the softmax"),
    ``"probability"`` or ``"log-probability"``; the same option for every CAM variant.

    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
    ...                           torch.nn.Flatten(), torch.nn.Linear(2, 3))
    >>> gradcam(net, torch.rand(2, 1, 8, 8), target=0).shape
    torch.Size([2, 1, 8, 8])
    """
    return _weighted(_gradcam_weights, model, x, target, layer, upsample, score)


@register("gradcam++", family="cam", paper="Chattopadhay et al., 2018", region=True)
def gradcam_pp(model: nn.Module, x: torch.Tensor, target: Any = None, *, layer: str | None = None,
               upsample: bool = True, score: str | None = None) -> torch.Tensor:
    """Grad-CAM++: channel weights ``Σ_ij α_ij ReLU(∂score/∂A_kij)`` with the closed-form ``α``.

    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(72, 3))
    >>> bool((gradcam_pp(net, torch.rand(1, 1, 8, 8), target=0) >= 0).all())
    True
    """
    return _weighted(_gradcam_pp_weights, model, x, target, layer, upsample, score)


@register("gradcam-negative", family="cam", paper="Selvaraju et al., 2017 (counterfactual explanations)", region=True)
def gradcam_negative(model: nn.Module, x: torch.Tensor, target: Any = None, *, layer: str | None = None,
                     upsample: bool = True, score: str | None = None) -> torch.Tensor:
    """Counterfactual Grad-CAM: regions whose removal would *raise* the target score
    (the Grad-CAM paper's negative-gradient weights ``−mean(∂score/∂A_k)``).

    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(72, 3))
    >>> x = torch.rand(1, 1, 8, 8)
    >>> torch.allclose(gradcam_negative(net, x, 0), gradcam(net, x, lambda out: -out[:, 0]))
    True
    """
    return _weighted(_negative_weights, model, x, target, layer, upsample, score)


def _gap_linear(model: nn.Module, a: torch.Tensor, out: torch.Tensor) -> nn.Linear:
    """The linear layer that reads the global average of ``a``: checked on the actual outputs."""
    for m in reversed([m for m in model.modules() if isinstance(m, nn.Linear)]):
        if m.in_features == a.shape[1] and m.out_features == out.shape[1]:
            pooled = F.linear(a.mean((2, 3)), m.weight, m.bias)
            if torch.allclose(pooled, out, rtol=1e-4, atol=1e-4 * float(out.abs().max().clamp_min(1))):
                return m
    raise ValueError(
        "cam needs the layer to be followed by global average pooling and one linear layer (output = W·mean(A) + b); "
        "this model is not (use 'gradcam', which works for any head)"
    )


@register("cam", family="cam", paper="Zhou et al., 2016", region=True)
def class_activation_map(model: nn.Module, x: torch.Tensor, target: Any = None, *, layer: str | None = None,
                         upsample: bool = True, score: str | None = None) -> torch.Tensor:
    """CAM: ``Σ_k w_ck A_k`` with the classifier's weights (signed, not rectified).

    The layer must feed global average pooling and one linear layer; the weights are found
    and the structure checked automatically. The map decomposes the logit (its mean plus the
    bias is the logit), so ``score`` can only be ``"logit"`` (the default); another score is a
    ``ValueError`` (use ``gradcam`` with ``score="probability"``).

    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
    ...                           torch.nn.Flatten(), torch.nn.Linear(2, 3))
    >>> class_activation_map(net, torch.rand(1, 1, 8, 8), target=2, layer="1", upsample=False).shape
    torch.Size([1, 1, 6, 6])
    """
    if callable(target) and not isinstance(target, torch.Tensor):
        raise TypeError("cam weights the feature maps by one class's classifier row; give a class target, not a callable")
    if method_score(score, target, "logit") != "logit":
        raise ValueError(f"cam decomposes the logit (classifier row · pooled maps), so score must be 'logit', got {score!r}; "
                         "use 'gradcam' for another score")
    a, _, out, idx = _maps(model, x, target, layer)
    lin = _gap_linear(model, a, out)
    w = lin.weight.detach()[idx]
    return _finish((w[:, :, None, None] * a).sum(1), x, upsample, rectify=False)


@register("guided-gradcam", family="cam", paper="Selvaraju et al., 2017")
def guided_gradcam(model: nn.Module, x: torch.Tensor, target: Any = None, *, layer: str | None = None,
                   score: str | None = None) -> torch.Tensor:
    """Guided Grad-CAM: guided back-propagation ⊙ the upsampled Grad-CAM map; shaped like x.
    Both factors read the same ``score`` (the logit by default).

    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(72, 3))
    >>> guided_gradcam(net, torch.rand(1, 1, 8, 8), target=0).shape
    torch.Size([1, 1, 8, 8])
    """
    if target is None:  # fix the class once so both factors explain the same decision
        with hooks(model), torch.no_grad():
            target = target_indices(model(x), None)
    return guided_backprop(model, x, target, score=score) * gradcam(model, x, target, layer=layer, score=score)

