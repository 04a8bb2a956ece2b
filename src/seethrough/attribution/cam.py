"""Class activation maps: CAM, Grad-CAM, Grad-CAM++, guided Grad-CAM, negative Grad-CAM.

Each variant only decides the channel weights ``α_k`` of the layer's feature maps ``A_k``; the
map is ``Σ_k α_k A_k`` (rectified for the Grad-CAM family), upsampled bilinearly to the input
size (``upsample=False`` keeps the layer's resolution).

Positions. A conv layer's ``(N, C, h, w)`` output has its positions on the grid. A layer with
token outputs ``(N, T, D)`` (transformer blocks; a tuple output is read at its first tensor) has
them on the tokens, its units on the last dimension; the reshape rule (:func:`position_maps`):

* token ids ``(N, L)``: ``T`` must be ``L``; the map is ``(N, L)``, one score per token, 0 on
  padding. ``cls_token=True`` drops position 0 (a ``[CLS]`` the classifier reads: its map value is
  set to 0); by default every token is a position — ids carry no sign of which one is a CLS.
* images ``(N, C, H, W)`` (a ViT): ``T = g²`` patches on a ``g × g`` grid, or ``T = g² + 1``: a CLS
  token first, detected by the count and dropped (``cls_token=`` overrides); the grid map is
  upsampled to the image. Any other ``T`` is refused in one line.

A layer without positions (``(N, D)``: an MLP on tabular rows) is refused in one line. The default
layer is the last conv block, and a last ``Conv2d`` whose kernel equals its stride (a ViT-style
patch embedding: the patches before any attention) is refused as a default — name a token layer.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..boundary import as_boundary, token_mask
from ..hooks import hooks
from ..layers import resolve_layer
from ..runner import once
from ..targets import is_callable_target, method_score, target_indices
from .masking import read_scores
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


def _default_layer(model: nn.Module) -> str:
    convs = [m for m in model.modules() if isinstance(m, _CONVS)]
    if convs:
        last = convs[-1]
        k, st = tuple(last.kernel_size), tuple(last.stride)
        if k == st and max(k) > 1:
            name = next(n for n, m in model.named_modules() if m is last)
            raise ValueError(f"the last Conv2d, {name!r}, has kernel = stride = {k}: a ViT-style patch embedding, whose maps "
                             "are the patches before any attention; name the token layer to explain with layer= (its "
                             "(N, tokens, D) output is reshaped to the patch grid, a CLS token dropped)")
    return default_layer(model)


def position_maps(a: torch.Tensor, kind: str, x: torch.Tensor, name: str, cls_token: bool | None = None,
                  ) -> tuple[torch.Tensor, int]:
    """``(maps (N, K, h, w), dropped)``: a layer's output with its positions on a grid (module docstring).

    ``dropped`` is 1 when a CLS token (position 0) was left out, else 0.

    >>> position_maps(torch.zeros(2, 17, 8), "image", torch.zeros(2, 3, 32, 32), "blocks.1")[0].shape
    torch.Size([2, 8, 4, 4])
    >>> position_maps(torch.zeros(2, 7, 8), "tokens", torch.zeros(2, 7, dtype=torch.long), "blocks.1")[0].shape
    torch.Size([2, 8, 7, 1])
    """
    if a.dim() == 4 and kind == "image":
        return a, 0
    if a.dim() != 3:
        raise ValueError(f"layer {name!r} outputs shape {tuple(a.shape)}, which has no positions; CAM methods need "
                         "feature maps (N, C, h, w) or tokens (N, tokens, D)")
    n, t, d = a.shape
    if kind == "tokens":
        if t != x.shape[1]:
            raise ValueError(f"layer {name!r} outputs {t} positions but the sequences have {x.shape[1]} tokens; name a "
                             "layer whose output is (N, tokens, D)")
        return a.transpose(1, 2).unsqueeze(-1), int(bool(cls_token))
    g0, g1 = math.isqrt(t), math.isqrt(max(t - 1, 0))
    drop = (g1 * g1 == t - 1 and g0 * g0 != t) if cls_token is None else bool(cls_token)
    g = g1 if drop else g0
    if g * g != t - int(drop) or g == 0:
        raise ValueError(f"layer {name!r} outputs {t} tokens, neither a square grid of patches nor a CLS token plus one "
                         f"(cls_token={cls_token}); CAM reshapes (N, tokens, D) to the patch grid")
    return a[:, int(drop):].transpose(1, 2).reshape(n, d, g, g), int(drop)


def _maps(model: nn.Module, x: torch.Tensor, target: Any, layer: str | None, score: str | None = None,
          cls_token: bool | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, int]:
    """Feature maps A (N, K, h, w), dscore/dA, the selected output, the class per sample, CLS dropped (0/1)."""
    b = as_boundary(model, x)
    if b.kind not in ("image", "tokens"):
        raise ValueError(f"CAM methods need a layer with spatial or token positions; this input is {b.kind!r}, "
                         "whose layers have none")
    if layer is None and b.kind == "tokens":
        raise ValueError("CAM on token ids needs layer= (a module whose output is (N, tokens, D), e.g. the last "
                         "transformer block); there is no default")
    name = _default_layer(b.model) if layer is None else layer
    resolve_layer(b.model, name)  # a clear error for unknown names before any forward

    def one_pass(run) -> tuple:
        rec.clear()  # a retry after a layout fallback records afresh
        out = b.call(run.input(x.detach()))
        a = rec[name]
        position_maps(a, b.kind, x, name, cls_token)  # refuse a layer without positions before the backward
        idx = None if is_callable_target(target) else target_indices(b.select(out).detach(), target)
        (g,) = torch.autograd.grad(read_scores(b, out, target, idx, score).sum(), a, allow_unused=True)
        return out, a, idx, g

    # channels-last like the gradient methods (seethrough.runner.fast): the forward dominates a CAM's cost
    with hooks(b.model, capture=name) as rec, torch.enable_grad():
        out, a, idx, g = once(b.model, x, one_pass)
    g = torch.zeros_like(a) if g is None else g
    maps, drop = position_maps(a.detach(), b.kind, x, name, cls_token)
    # the selected scores are needed for a class target (CAM's classifier row); a callable target read the
    # raw output itself, which may be a tuple with no selector
    selected = b.select(out).detach() if idx is not None or b.output is not None else None
    return maps, position_maps(g, b.kind, x, name, cls_token)[0], selected, idx, drop


def _finish(m: torch.Tensor, x: torch.Tensor, upsample: bool, rectify: bool, model: Any = None, drop: int = 0,
            ) -> torch.Tensor:
    m = m.unsqueeze(1)
    if rectify:
        m = m.clamp_min(0)
    b = as_boundary(model if model is not None else nn.Identity(), x)
    if b.kind == "tokens":  # (N, 1, L, 1) -> (N, L): one score per token, 0 on padding and a dropped CLS
        m = m[:, 0, :, 0] * token_mask(b, x)
        if drop:
            m[:, 0] = 0
        return m
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


def _weighted(weights: Callable, model, x, target, layer, upsample, score, cls_token=None):
    a, g, _, _, drop = _maps(model, x, target, layer, method_score(score, target, "logit"), cls_token)
    w = weights(a, g)
    return _finish((w[:, :, None, None] * a).sum(1), x, upsample, rectify=True, model=model, drop=drop)



@register("gradcam", family="cam", paper="Selvaraju et al., 2017", region=True, kinds=("image", "tokens"))
def gradcam(model: nn.Module, x: torch.Tensor, target: Any = None, *, layer: str | None = None,
            upsample: bool = True, score: str | None = None, cls_token: bool | None = None) -> torch.Tensor:
    """Grad-CAM: ``ReLU(Σ_k mean(∂score/∂A_k) · A_k)`` at ``layer``, upsampled to x's size.

    ``score``: the logit (default, as the paper: "the score before the softmax"),
    ``"probability"`` or ``"log-probability"``; the same option for every CAM variant.

    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
    ...                           torch.nn.Flatten(), torch.nn.Linear(2, 3))
    >>> gradcam(net, torch.rand(2, 1, 8, 8), target=0).shape
    torch.Size([2, 1, 8, 8])
    """
    return _weighted(_gradcam_weights, model, x, target, layer, upsample, score, cls_token)


@register("gradcam++", family="cam", paper="Chattopadhay et al., 2018", region=True, kinds=("image", "tokens"))
def gradcam_pp(model: nn.Module, x: torch.Tensor, target: Any = None, *, layer: str | None = None,
               upsample: bool = True, score: str | None = None, cls_token: bool | None = None) -> torch.Tensor:
    """Grad-CAM++: channel weights ``Σ_ij α_ij ReLU(∂score/∂A_kij)`` with the closed-form ``α``.

    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(72, 3))
    >>> bool((gradcam_pp(net, torch.rand(1, 1, 8, 8), target=0) >= 0).all())
    True
    """
    return _weighted(_gradcam_pp_weights, model, x, target, layer, upsample, score, cls_token)


@register("gradcam-negative", family="cam", paper="Selvaraju et al., 2017 (counterfactual explanations)", region=True, kinds=("image", "tokens"))
def gradcam_negative(model: nn.Module, x: torch.Tensor, target: Any = None, *, layer: str | None = None,
                     upsample: bool = True, score: str | None = None, cls_token: bool | None = None) -> torch.Tensor:
    """Counterfactual Grad-CAM: regions whose removal would *raise* the target score
    (the Grad-CAM paper's negative-gradient weights ``−mean(∂score/∂A_k)``).

    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(72, 3))
    >>> x = torch.rand(1, 1, 8, 8)
    >>> torch.allclose(gradcam_negative(net, x, 0), gradcam(net, x, lambda out: -out[:, 0]))
    True
    """
    return _weighted(_negative_weights, model, x, target, layer, upsample, score, cls_token)


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


@register("cam", family="cam", paper="Zhou et al., 2016", region=True, kinds=("image", "tokens"))
def class_activation_map(model: nn.Module, x: torch.Tensor, target: Any = None, *, layer: str | None = None,
                         upsample: bool = True, score: str | None = None, cls_token: bool | None = None) -> torch.Tensor:
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
    a, _, out, idx, drop = _maps(model, x, target, layer, cls_token=cls_token)
    lin = _gap_linear(as_boundary(model, x).model, a, out)
    w = lin.weight.detach()[idx]
    return _finish((w[:, :, None, None] * a).sum(1), x, upsample, rectify=False, model=model, drop=drop)


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

