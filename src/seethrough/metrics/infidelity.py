"""Infidelity (Yeh et al., 2019): does the map predict how the score changes under perturbations?

INFD(Φ, f, x) = E_I[(Iᵀ Φ − (f(x) − f(x − I)))²]. With ``optimal_scaling`` (the authors'
normalised variant) Φ is first multiplied by the β that minimises the expectation, so
multiplying a map by a constant does not change its score.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..attribution.common import make_baseline, resolve_target
from ..batching import bytes_per_item, run_batched
from ..hooks import hooks
from ..deprecation import renamed
from ..inputs import check_images
from ..runner import fast
from ..seeding import stream
from .curves import SCORES, _is_fn, class_score
from .result import ScoreResult

PERTURBATIONS = ("square", "gaussian")


def seeded_blocks(items: torch.Tensor, per: int, shape: torch.Size, seed: int, draw, dtype) -> torch.Tensor:
    """Random tensors for ``items`` (item = sample * per + j): draw j of every sample's own stream
    (:func:`seethrough.seeding.stream`), so an item's draw depends neither on the batch size nor on where
    its sample sits in the batch.

    >>> a = seeded_blocks(torch.arange(6), 3, (2,), 0, torch.rand, torch.float32)
    >>> torch.equal(a[4:], seeded_blocks(torch.arange(4, 6), 3, (2,), 0, torch.rand, torch.float32))
    True
    >>> torch.equal(a[:3], a[3:])  # sample 1 draws what sample 0 draws (what it would draw alone)
    True
    """
    block = draw((per, *shape), generator=stream(seed), dtype=dtype)
    return block[items % per]


def _positive_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {v!r}")
    return v


@renamed(noise="noise_std")
def infidelity(model: nn.Module, x: torch.Tensor, attribution: torch.Tensor, target: Any = None, *,
               perturbation: str = "square", n_samples: int = 64, patch: int | None = None, noise_std: float = 0.1,
               baseline: Any = "black", optimal_scaling: bool = True, score: str = "logit", seed: int = 0,
               batch_size: int | str = "auto", progress: bool = True) -> ScoreResult:
    """Infidelity per sample (lower is better), over ``n_samples`` seeded perturbations.

    ``perturbation="square"``: a random ``patch``×``patch`` square (default a quarter of the shorter
    side) set to ``baseline``, so I = (x − baseline) on the square; ``"gaussian"``: I ~ N(0, noise_std²), ``noise_std`` in pixel units (absolute).

    >>> import seethrough as see
    >>> lin = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> x = torch.rand(2, 1, 4, 4)
    >>> g = see.attribute(lin, x, "saliency", target=0, abs=False)
    >>> see.metrics.infidelity(lin, x, g, 0, n_samples=8, progress=False).values.abs().max().item() < 1e-10
    True
    """
    from ..boundary import image_only

    model = image_only(model, 'infidelity perturbations (in pixel units)')  # rows and tokens: one line, not a traceback
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_images(x, model=model)
    if not isinstance(attribution, torch.Tensor) or attribution.dim() != 4 or attribution.shape[0] != x.shape[0] \
            or attribution.shape[-2:] != x.shape[-2:] or attribution.shape[1] not in (1, x.shape[1]):
        raise ValueError(f"attribution of shape {tuple(getattr(attribution, 'shape', ()))} does not fit x of shape "
                         f"{tuple(x.shape)}; expected ({x.shape[0]}, {x.shape[1]} or 1, {x.shape[2]}, {x.shape[3]})")
    if perturbation not in PERTURBATIONS:
        raise ValueError(f"perturbation must be one of {', '.join(map(repr, PERTURBATIONS))}, got {perturbation!r}")
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(map(repr, SCORES))}, got {score!r}")
    n_samples = _positive_int("n_samples", n_samples)
    h, w = x.shape[-2:]
    patch = max(1, min(h, w) // 4) if patch is None else _positive_int("patch", patch)
    if patch > min(h, w):
        raise ValueError(f"patch must be at most {min(h, w)} pixels (the image's shorter side), got {patch}")
    n = len(x)
    phi = attribution.detach().double()
    base = make_baseline(x, baseline)
    idx = resolve_target(model, x, target)
    tgt = target if idx is None else idx
    # Every sample's squares come from its own stream (the same for each sample): none depends on the batch.
    gen = stream(seed)
    top = torch.randint(0, h - patch + 1, (n_samples,), generator=gen).repeat(n).to(x.device)
    left = torch.randint(0, w - patch + 1, (n_samples,), generator=gen).repeat(n).to(x.device)
    # drawn on the CPU (the same on every device) once, moved once: each batch then indexes it on x's device
    noise = (seeded_blocks(torch.arange(n_samples), n_samples, x.shape[1:], seed, torch.randn, x.dtype).to(x.device)
             if perturbation == "gaussian" else None)
    with torch.no_grad(), hooks(model):
        f_x = class_score(model(x), tgt, score).double()

    def perturb(items: torch.Tensor) -> torch.Tensor:
        i = items // n_samples
        if perturbation == "gaussian":
            return noise[items % n_samples] * noise_std
        rows = torch.arange(h, device=x.device)[None, :, None]
        cols = torch.arange(w, device=x.device)[None, None, :]
        t, l = top[items][:, None, None], left[items][:, None, None]
        m = ((rows >= t) & (rows < t + patch) & (cols >= l) & (cols < l + patch))[:, None]
        return torch.where(m, x[i] - base[i], torch.zeros_like(x[i]))

    def fn(a: int, b: int) -> torch.Tensor:
        items = torch.arange(a, b, device=x.device)
        i = items // n_samples
        pert = perturb(items)
        f_p = class_score(run.model(run.input(x[i] - pert)), tgt if _is_fn(tgt) else tgt[i], score).double()
        proj = (pert.double() * phi[i]).flatten(1).sum(1)
        return torch.stack([proj, f_x[i] - f_p], 1)

    with hooks(model), torch.no_grad(), fast(model, x, "forward") as run:  # channels-last in place, restored
        out = run_batched(run.guard(fn), n * n_samples, batch_size=batch_size, item_bytes=bytes_per_item(x),
                          device=x.device, key=run.key, progress=progress, desc="infidelity")
    proj, delta = out[:, 0].view(n, n_samples), out[:, 1].view(n, n_samples)
    beta = torch.ones(n, dtype=torch.float64, device=proj.device)
    if optimal_scaling:
        denom = (proj ** 2).mean(1)
        beta = torch.where(denom > 0, (proj * delta).mean(1) / denom.clamp_min(1e-300), beta)
    values = ((beta[:, None] * proj - delta) ** 2).mean(1)
    return ScoreResult("infidelity", values, None, {"perturbation": perturbation, "n_samples": n_samples,
                                                    "patch": patch, "noise_std": noise_std, "optimal_scaling": optimal_scaling,
                                                    "score": score, "seed": seed, "beta": beta}, seed=seed)
