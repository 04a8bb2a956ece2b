"""Receptive fields measured from the gradient support, not from a hand-kept table.

The support of d(unit)/d(input) is the set of input pixels that can influence the unit.
The plain gradient can miss pixels (a ReLU that is off, a max-pool that picked another
element, cancellation in a sum), so the support is measured on a *structural* backward
pass: every weight by its magnitude, every elementwise module (activations, BatchNorm) as
identity, every max-pool as its average-pool. All terms are then non-negative and no path
can cancel, so the support is exactly the set of pixels connected to the unit - for any
architecture, including padding, strides, dilations and residual additions.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..batching import run_batched
from ..boundary import image_only
from ..deprecation import layer_moved
from ..hooks import hooks
from ..layers import resolve_layer

_ELEMENTWISE = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Sigmoid,
    nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.Softsign, nn.Tanhshrink, nn.Threshold,
    nn.modules.batchnorm._BatchNorm, nn.Dropout, nn.Dropout2d, nn.Identity,
)
_MAXPOOL = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)


def _positive(g: torch.Tensor) -> torch.Tensor:
    # Rescaled so long chains of small weights cannot underflow to zero.
    g = g.abs()
    m = g.amax()
    return g / m if m > 0 else g


def _abs_weight_rule(module, x, y, grad_y):
    x = x.detach().requires_grad_()
    # A shallow copy with its own parameter dict: the user's module keeps its weights, and
    # calling .forward (not __call__) skips the hooks, which would re-enter this rule.
    twin = copy.copy(module)
    twin._parameters = {**module._parameters, "weight": module.weight.detach().abs()}
    if getattr(module, "bias", None) is not None:
        twin._parameters["bias"] = None
    out = twin.forward(x)
    return _positive(torch.autograd.grad(out, x, grad_y.abs())[0])


def _pool_rule(module, x, y, grad_y):
    x = x.detach().requires_grad_()
    d = x.dim() - 2 if not isinstance(module, (nn.AdaptiveMaxPool1d, nn.MaxPool1d)) or x.dim() == 3 else x.dim() - 1
    if isinstance(module, (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)):
        fn = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}[d]
        out = fn(x, module.output_size)
    else:
        fn = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[d]
        out = fn(x, module.kernel_size, module.stride, module.padding, module.ceil_mode)
    return _positive(torch.autograd.grad(out, x, grad_y.abs())[0])


def _identity_rule(module, x, y, grad_y):
    if x.shape != y.shape:
        x = x.detach().requires_grad_()
        with torch.enable_grad():
            return _positive(torch.autograd.grad(module.forward(x), x, grad_y.abs())[0])
    return grad_y.abs()


def _through_forward(module, x, y, grad_y):
    x = x.detach().requires_grad_()
    with torch.enable_grad():
        return _positive(torch.autograd.grad(module.forward(x), x, grad_y.abs())[0])


STRUCTURAL_RULES = {
    (nn.modules.conv._ConvNd, nn.Linear): _abs_weight_rule,
    _MAXPOOL: _pool_rule,
    _ELEMENTWISE: _identity_rule,
}


@layer_moved(2)
def receptive_field(
    model: nn.Module, x: torch.Tensor, layer: str, positions: torch.Tensor, *, batch_size: int | str = "auto"
) -> torch.Tensor:
    """Input boxes ``(P, 4)`` = ``(top, left, bottom, right)``, ends exclusive, of the layer's
    spatial ``positions (P, 2)`` = ``(row, col)``, for inputs shaped like ``x`` (one sample suffices).

    The box of a position covers every input pixel that any channel at that position is
    connected to (clipped to the image). The former order ``(model, layer, x, positions)`` still works
    for one release, with a ``FutureWarning``.

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> receptive_field(model, torch.zeros(1, 1, 32, 32), "conv2", torch.tensor([[0, 0], [3, 5]])).tolist()
    [[0, 0, 14, 14], [6, 10, 20, 24]]
    """
    model = image_only(model, "receptive fields")
    resolve_layer(model, layer)
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"x must be an image batch (N, C, H, W) to measure receptive fields, got {getattr(x, 'shape', type(x))}")
    positions = torch.as_tensor(positions, dtype=torch.long).reshape(-1, 2)
    sample = torch.zeros_like(x[:1])
    with torch.no_grad(), hooks(model, capture=layer, detach=True) as rec:
        model(sample)
    out_shape = rec[layer].shape
    if len(out_shape) != 4:
        raise ValueError(
            f"layer {layer!r} has output shape {tuple(out_shape[1:])} per sample: no spatial positions, so no receptive "
            "field; choose a convolutional layer with (C, H, W) output"
        )
    h, w = out_shape[-2:]
    if positions.numel() and ((positions < 0).any() or (positions[:, 0] >= h).any() or (positions[:, 1] >= w).any()):
        raise ValueError(f"positions must lie inside the layer's {h}×{w} map")
    uniq, inverse = torch.unique(positions, dim=0, return_inverse=True) if positions.numel() else (positions, positions[:, 0])

    module = resolve_layer(model, layer)
    own_rule = next((r for sel, r in STRUCTURAL_RULES.items() if isinstance(module, sel)), _through_forward)

    def boxes(a: int, b: int) -> torch.Tensor:
        pos = uniq[a:b]

        def seed_rule(mod, x_in, y, grad_y):
            # The backward starts here: whatever arrives from downstream is replaced by the
            # one-hot seed of each sample's position, then this layer's own structural rule.
            seed = torch.zeros_like(y)
            seed[torch.arange(b - a), :, pos[:, 0], pos[:, 1]] = 1.0
            return own_rule(mod, x_in, y, seed)

        inp = sample.expand(b - a, *sample.shape[1:]).clone().requires_grad_()
        rules = {(lambda n, m: m is module): seed_rule, **STRUCTURAL_RULES}
        with hooks(model, rules=rules):
            out = model(inp)
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"receptive fields need a model returning a tensor, got {type(out).__name__}")
            (g,) = torch.autograd.grad(out.sum(), inp, allow_unused=True)
        if g is None:
            raise ValueError(f"layer {layer!r} does not reach the model output, so its receptive field cannot be traced")
        return _support_box(g.abs().sum(1))

    if not len(uniq):
        return torch.zeros(0, 4, dtype=torch.long)
    found = run_batched(boxes, len(uniq), batch_size=batch_size if batch_size != "auto" else 64, progress=False,
                        device=sample.device)
    return found[inverse]


def _support_box(g: torch.Tensor) -> torch.Tensor:
    """``(N, H, W)`` → the bounding box of the non-zero entries of each map, ``(N, 4)``."""
    rows, cols = g.amax(2) > 0, g.amax(1) > 0
    ar_h, ar_w = torch.arange(g.shape[1]), torch.arange(g.shape[2])
    big = max(g.shape[1:])
    top = torch.where(rows, ar_h, big).amin(1)
    bottom = torch.where(rows, ar_h, -1).amax(1) + 1
    left = torch.where(cols, ar_w, big).amin(1)
    right = torch.where(cols, ar_w, -1).amax(1) + 1
    return torch.stack([top, left, bottom, right], 1)
