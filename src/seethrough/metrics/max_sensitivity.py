"""Max-sensitivity (Yeh et al., 2019): how much can the map change under a tiny input change?

SENS_max(Φ, x) = max over ‖y − x‖∞ ≤ r of ‖Φ(y) − Φ(x)‖ / ‖Φ(x)‖ — relative to the map's norm, as
the authors define it, so a map's scale does not matter. The maximum is estimated by Monte
Carlo over ``n_samples`` seeded points drawn uniformly in the L∞ ball (not clipped to [0, 1],
as the authors).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..deprecation import renamed
from ..batching import grad_sizes, run_batched
from ..hooks import hooks
from ..runner import fast
from .explainer import Explainer, explain, fixed_target
from .infidelity import seeded_blocks
from .result import ScoreResult


@renamed(n_perturbations="n_samples")
def max_sensitivity(model: nn.Module, x: torch.Tensor, method: Explainer = "saliency", target: Any = None, *,
                    radius: float = 0.02, n_samples: int = 16, seed: int = 0, batch_size: int | str = "auto",
                    progress: bool = True, options: dict[str, Any] | None = None, **method_options: Any) -> ScoreResult:
    """Max-sensitivity of ``method`` (a registry name or ``fn(model, x, target) -> map``) per sample,
    over ``n_samples`` perturbations.

    The explained class is fixed on the clean input; lower is more stable. Other keywords go to the
    method; ``options`` (a dict) too, for a method option spelt like one of ours: SmoothGrad's own
    count is ``options={"n_samples": 8}``.

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x, y = see.zoo.digits("test")
    >>> constant = lambda m, x, t: torch.ones_like(x)
    >>> see.metrics.max_sensitivity(model, x[:2], constant, progress=False).values.tolist()
    [0.0, 0.0]
    """
    from ..boundary import image_only

    model = image_only(model, 'max-sensitivity perturbations (in pixel units)')  # rows and tokens: one line, not a traceback
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not radius > 0:
        raise ValueError(f"radius must be a number > 0 (L∞ radius in pixel units of [0, 1]), got {radius!r}")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
    method_options = {**method_options, **(options or {})}
    tgt = fixed_target(model, x, target)
    ref = explain(model, x, method, tgt, method_options).double()
    norm = ref.flatten(1).norm(dim=1)
    n = len(x)
    # drawn on the CPU (the same on every device) once, moved once: each batch then indexes it on x's device
    block = seeded_blocks(torch.arange(n_samples), n_samples, x.shape[1:], seed, torch.rand, x.dtype).to(x.device)

    def fn(a: int, b: int) -> torch.Tensor:
        items = torch.arange(a, b, device=x.device)
        i = items // n_samples
        noise = block[items % n_samples]
        y = run.input(x[i].detach() + (2 * noise - 1) * radius)
        t = tgt if callable(tgt) and not isinstance(tgt, torch.Tensor) else tgt[i]
        m = explain(run.model, y, method, t, method_options).double()
        return (m - ref[i]).flatten(1).norm(dim=1)

    # the explanations of the perturbed batches run channels-last, the model converted in place and restored
    with hooks(model), fast(model, x, "grad") as run:
        diff = run_batched(run.guard(fn), n * n_samples, batch_size=batch_size, **grad_sizes(x),
                           device=x.device, key=run.key, progress=progress, desc="max-sensitivity")
    worst = diff.view(n, n_samples).max(1).values
    values = torch.where(norm > 0, worst / norm.clamp_min(1e-300), torch.full_like(worst, float("nan")))
    name = method if isinstance(method, str) else getattr(method, "__name__", "custom")
    return ScoreResult("max_sensitivity", values, None,
                       {"method": name, "radius": radius, "n_samples": n_samples, "seed": seed}, seed=seed)
