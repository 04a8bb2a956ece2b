"""Adversarial attacks: loss ascent, FGSM, BIM and PGD, untargeted or targeted.

Every attack works in the model's input space, images in [0, 1] (normalisation lives
inside the model), so the ε-ball and the valid pixel range are projected onto exactly
there. ε and step sizes are given in pixel units (0-255) of the image, as papers quote
them: ``eps=2`` allows each pixel to move by 2/255.

An attack is a *step rule* ``step(x_k, grad, x) -> x_{k+1}`` plus a starting point; the
loop, the history and the batching are shared (:func:`perturb`). ``grad`` is already the
direction that helps the attacker: the gradient of the cross-entropy of the true class
(untargeted), or minus the gradient of the target's cross-entropy (targeted).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..deprecation import rename_keys
from ..progress import report

PIXEL = 255.0  # ε and step sizes are in 0-255 pixel units; tensors live in [0, 1]

Step = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Attack:
    """A registered attack: ``build(x, gen, **options) -> (start, step, steps)``; a builder
    with ``needs_model`` also gets ``model=`` (to read the model's input normalisation)."""

    name: str
    build: Callable[..., tuple[torch.Tensor, Step, int]]
    paper: str
    description: str
    defaults: dict[str, Any]
    needs_model: bool = False


ATTACKS: dict[str, Attack] = {}
RENAMED = {"lr": "step_size"}  # old option names every attack still accepts for one release (issue 19)


def register(name: str, *, paper: str, description: str, defaults: dict[str, Any], needs_model: bool = False) -> Callable:
    """Register an attack builder; ``defaults`` lists every option it accepts."""

    def wrap(build: Callable) -> Callable:
        if name in ATTACKS:
            raise ValueError(f"attack {name!r} registered twice")
        ATTACKS[name] = Attack(name, build, paper, description, dict(defaults), needs_model)
        return build

    return wrap


def input_std(model: nn.Module) -> torch.Tensor | None:
    """The per-channel std ``(1, C, 1, 1)`` of the model's input normalisation - the first
    :class:`seethrough.zoo.Normalize` module (zoo models, ``see.zoo.with_normalization``) - or
    ``None`` when the model has none.

    >>> import seethrough as see
    >>> [round(s, 3) for s in input_std(see.zoo.with_normalization(torch.nn.Conv2d(3, 1, 1))).flatten().tolist()]
    [0.229, 0.224, 0.225]
    >>> input_std(torch.nn.Conv2d(3, 1, 1)) is None
    True
    """
    from ..zoo.normalize import Normalize  # here, not at import time: the zoo is heavier than the attacks

    return next((m.std for m in model.modules() if isinstance(m, Normalize)), None)


# ----------------------------------------------------------------------------- geometry
def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    """Per-sample L2 norm, shaped to broadcast against ``t``."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str = "linf") -> torch.Tensor:
    """Project ``x_adv`` onto the ε-ball around ``x`` (ε in [0, 1] units) and onto [0, 1].

    For L∞ the result lies exactly within ``[x - eps, x + eps]`` as computed in the
    tensor's dtype; clipping to [0, 1] afterwards never leaves the ball because ``x`` is
    inside [0, 1].

    >>> x = torch.full((1, 1, 1, 3), 0.5)
    >>> project(torch.tensor([[[[0.0, 0.52, 1.0]]]]), x, 0.1).tolist()
    [[[[0.4000000059604645, 0.5199999809265137, 0.6000000238418579]]]]
    """
    if norm == "linf":
        x_adv = torch.minimum(torch.maximum(x_adv, x - eps), x + eps)
    else:
        delta = x_adv - x
        scale = (eps / _flat_norm(delta).clamp_min(1e-12)).clamp(max=1.0)
        x_adv = x + delta * scale
    return x_adv.clamp(0.0, 1.0)


def _direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """The steepest-ascent step of unit size under ``norm``."""
    if norm == "linf":
        return grad.sign()
    return grad / _flat_norm(grad).clamp_min(1e-12)


def _random_start(x: torch.Tensor, eps: float, norm: str, gen: torch.Generator) -> torch.Tensor:
    """A uniform random point of the ε-ball (drawn on the CPU so seeds match across devices)."""
    shape = tuple(x.shape)
    d = math.prod(shape[1:])

    def one() -> torch.Tensor:
        if norm == "linf":
            return (torch.rand(shape[1:], generator=gen, dtype=torch.float64) * 2 - 1) * eps
        u = torch.randn(shape[1:], generator=gen, dtype=torch.float64)
        return u / u.norm() * torch.rand((), generator=gen, dtype=torch.float64) ** (1.0 / d) * eps

    # Every sample draws from the same seeded stream: its start never depends on where it sits in the batch.
    state = gen.get_state()
    draws = []
    for _ in range(shape[0]):
        gen.set_state(state)
        draws.append(one())
    noise = torch.stack(draws) if draws else torch.zeros(shape, dtype=torch.float64)
    return project(x + noise.to(x), x, eps, norm)


# ----------------------------------------------------------------------------- the attacks
@register("ascent", paper="the course's loop: SGD on −cross-entropy w.r.t. the (normalised) input",
          description="gradient ascent on the loss with a learning rate (step_size), no ε-ball; by default the step "
                      "acts on the model's normalised input, as in the course; pixels kept in [0, 1]",
          defaults={"step_size": 0.1, "steps": 10, "clamp": True, "space": "normalized"}, needs_model=True)
def _ascent(x, gen, *, step_size, steps, clamp, space, model):
    lr = step_size  # the course's SGD learning rate
    # The course runs SGD on the tensor the network sees, z = (x − mean)/std. A step of lr·∇_z
    # there is, in pixel units, x ← x + lr·std²·∇_x (∇_z = std·∇_x and Δx = std·Δz): about 20×
    # smaller than lr·∇_x with ImageNet's std ≈ 0.226. space="pixel" steps lr·∇_x directly.
    std = input_std(model) if space == "normalized" else None
    scale = 1.0 if std is None else std.to(device=x.device, dtype=x.dtype) ** 2

    def step(xk, grad, x0):
        xk = xk + lr * scale * grad  # SGD on −CE: x ← x − lr·∇(−CE)
        return xk.clamp(0.0, 1.0) if clamp else xk

    return x, step, steps


@register("fgsm", paper="Goodfellow, Shlens & Szegedy, 2015",
          description="one step of size ε along the sign of the gradient (L2: along the gradient)",
          defaults={"eps": 2.0, "norm": "linf"})
def _fgsm(x, gen, *, eps, norm):
    e = eps / PIXEL

    def step(xk, grad, x0):
        return project(xk + e * _direction(grad, norm), x0, e, norm)

    return x, step, 1


def _iterative(x, gen, *, eps, steps, step_size, norm, start):
    e = eps / PIXEL
    alpha = (2.5 * eps / steps if step_size is None else step_size) / PIXEL

    def step(xk, grad, x0):
        return project(xk + alpha * _direction(grad, norm), x0, e, norm)

    return (_random_start(x, e, norm, gen) if start else x), step, steps


@register("bim", paper="Kurakin, Goodfellow & Bengio, 2017",
          description="iterated FGSM (I-FGSM) projected onto the ε-ball and [0, 1] after every step",
          defaults={"eps": 2.0, "steps": 10, "step_size": None, "norm": "linf"})
def _bim(x, gen, *, eps, steps, step_size, norm):
    return _iterative(x, gen, eps=eps, steps=steps, step_size=step_size, norm=norm, start=False)


@register("pgd", paper="Madry, Makelov, Schmidt, Tsipras & Vladu, 2018",
          description="projected gradient descent from a random point of the ε-ball",
          defaults={"eps": 2.0, "steps": 10, "step_size": None, "norm": "linf", "random_start": True, "seed": 0})
def _pgd(x, gen, *, eps, steps, step_size, norm, random_start, seed):
    return _iterative(x, gen, eps=eps, steps=steps, step_size=step_size, norm=norm, start=random_start)


# ----------------------------------------------------------------------------- validation
def resolve_options(method: str, options: dict[str, Any], x: torch.Tensor) -> dict[str, Any]:
    """Merge ``options`` with the method's defaults; bad values are a ``ValueError`` naming the option."""
    import difflib

    if method not in ATTACKS:
        close = difflib.get_close_matches(str(method), list(ATTACKS), n=2, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown attack method {method!r}{hint}; available: {', '.join(ATTACKS)}")
    defaults = ATTACKS[method].defaults
    options = rename_keys(method, options, **RENAMED)  # ascent's lr= (issue 19): one release
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise TypeError(f"attack {method!r} does not take option(s) {', '.join(unknown)}; it takes: {', '.join(defaults)}")
    opts = {**defaults, **options}
    d = math.prod(x.shape[1:])
    if "norm" in opts and opts["norm"] not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2', got {opts['norm']!r}")
    if "space" in opts and opts["space"] not in ("normalized", "pixel"):
        raise ValueError(f"space must be 'normalized' (step_size acts on the model's normalised input, as in the "
                         f"course) or 'pixel' (step_size acts on [0, 1] pixels), got {opts['space']!r}")
    if "eps" in opts:
        eps = opts["eps"]
        top = PIXEL if opts.get("norm") == "linf" else PIXEL * math.sqrt(d)
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 <= eps <= top or eps != eps:
            raise ValueError(
                f"eps is in pixel units (0-255 per pixel) and must lie in [0, {top:.0f}] for norm={opts.get('norm')!r}, "
                f"got {eps!r}; e.g. eps=2 lets each pixel move by 2/255"
            )
    if "steps" in opts and (isinstance(opts["steps"], bool) or not isinstance(opts["steps"], int) or opts["steps"] < 1):
        raise ValueError(f"steps must be a positive int, got {opts['steps']!r}")
    for name in ("step_size",):
        v = opts.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or v == math.inf):
            raise ValueError(f"{name} must be a positive finite number, got {v!r}")
    return opts


# ----------------------------------------------------------------------------- the shared loop
def _record(out: torch.Tensor, goal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    out = out.detach()
    probs = (out if out.dtype == torch.float64 else out.float()).softmax(dim=1)  # float64 in, float64 out
    p, c = probs.max(dim=1)
    return c, p, probs.gather(1, goal.view(-1, 1)).squeeze(1)


def perturb(
    model: nn.Module, x: torch.Tensor, goal: torch.Tensor, targeted: bool, start: torch.Tensor, step: Step, steps: int,
    desc: str = "attack step",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run ``steps`` steps from ``start``; the caller holds :func:`seethrough.hooks`.

    ``goal`` is the class to move away from (untargeted) or towards (targeted). Returns
    ``x_adv`` and the history ``(N, steps + 1)`` of the predicted class, its probability
    and the goal's probability; column 0 is the clean input. Every iteration is reported as
    ``(desc, k, steps)`` (:mod:`seethrough.progress`).
    """
    with torch.no_grad():
        hist = [_record(model(x), goal)]
    xk = start.detach()
    for k in range(steps):
        xk = xk.detach().requires_grad_(True)
        out = model(xk)
        if k > 0:
            hist.append(_record(out, goal))
        loss = F.cross_entropy(out, goal, reduction="sum")  # "sum": each sample's gradient is its own
        (grad,) = torch.autograd.grad(loss, xk)
        with torch.no_grad():
            xk = step(xk.detach(), -grad if targeted else grad, x)
        report(desc, k + 1, steps)
    with torch.no_grad():
        hist.append(_record(model(xk), goal))
    cls, prob, goal_prob = (torch.stack(h, dim=1) for h in zip(*hist))
    return xk.detach(), cls, prob, goal_prob
