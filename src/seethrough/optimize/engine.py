"""The gradient-ascent loop that visualize and invert share, and the result they return.

Images of a batch never interact (unless a diversity term couples them), so the loop
runs in chunks through :func:`seethrough.batching.run_batched`; every chunk replays the
same seeded transform sequence and each image draws its starting noise from its own
index, so the result does not depend on how the batch was split.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..batching import check_batch_size, grad_sizes, model_key, run_batched
from ..hooks import hooks
from ..results import ResultProtocol
from ..progress import bar, report
from . import param as _param
from .priors import blur

Score = Callable[[Mapping[str, torch.Tensor], torch.Tensor], torch.Tensor]


@dataclass
class Visualization(ResultProtocol):
    """An optimised batch: ``x`` ``(N, C, H, W)`` in [0, 1] ready to feed to the model,
    ``trace`` ``(N, steps)`` the objective (priors excluded) before each step, ``names``
    what each image maximised, and the ``settings`` used (for provenance)."""

    x: torch.Tensor
    trace: torch.Tensor
    names: list[str]
    settings: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None

    @property
    def options(self) -> dict[str, Any]:
        """The result protocol's name for ``settings`` (the same dict)."""
        return self.settings

    def summary(self) -> str:
        names = ", ".join(dict.fromkeys(self.names))
        return (f"{type(self).__name__} of {len(self.x)} images ({names}): objective {float(self.trace[:, 0].mean()):.3g} "
                f"→ {float(self.trace[:, -1].mean()):.3g} over {self.trace.shape[1]} steps")

    def to_frame(self):
        """One row per image × step: the objective."""
        import pandas as pd

        n, s = self.trace.shape
        return pd.DataFrame({"image": torch.arange(n).repeat_interleave(s).tolist(),
                             "name": [self.names[i] for i in range(n) for _ in range(s)],
                             "step": torch.arange(s).repeat(n).tolist(), "objective": self.trace.double().flatten().tolist()})

    @property
    def images(self) -> list:
        """The images as PIL pictures."""
        from ..zoo import to_image

        return [to_image(xi) for xi in self.x]


def check_steps(steps: object, name: str = "steps") -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"{name} must be a positive int, got {steps!r}")
    return steps


def check_positive(v: object, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
        raise ValueError(f"{name} must be a positive number, got {v!r}")
    return float(v)


def image_seed(seed: int, index: int) -> torch.Generator:
    """A generator for image ``index`` of a run: independent of how the batch is chunked."""
    return torch.Generator().manual_seed(seed * 1_000_003 + index)


SIZE_HINT = "pass the size and channels it expects, e.g. size=32, channels=1 for lenet-digits"


def forward_checked(model: nn.Module, x: torch.Tensor, hint: str = SIZE_HINT) -> torch.Tensor:
    """``model(x)``, turning a shape mismatch into an error that names the input size and
    ``hint``: what the *calling* function lets the user change (only options it takes)."""
    try:
        return model(x)
    except RuntimeError as e:
        if "out of memory" in str(e).lower():
            raise
        raise ValueError(f"the model rejected an input of shape {tuple(x.shape)} ({str(e).splitlines()[0]}); {hint}") from e


def new_param(kind: str, shape: tuple[int, int, int, int], first: int, seed: int, init: torch.Tensor | None,
              device, dtype, shared: bool = False) -> _param.Param:
    """A parameterization for images ``first … first+N−1``: per-image seeded noise, or ``init``.
    ``shared``: every image starts from the same noise (image 0's), so an image's result does not
    depend on its place in the batch (inversion: one reconstruction per input, not samples)."""
    # Every draw comes from a local generator: torch's global random state is never advanced.
    p = _param.make(kind, shape, device=device, dtype=dtype, generator=image_seed(seed, first))
    with torch.no_grad():
        if init is not None:
            p.set_image(init)
        else:
            for i in range(shape[0]):
                index = 0 if shared else first + i
                p.raw[i] = _param.make(kind, (1, *shape[1:]), generator=image_seed(seed, index), dtype=dtype).raw[0].to(device)
    return p


def ascend(model: nn.Module, p: _param.Param, score: Score, layers: Sequence[str], *, steps: int, step_size: float,
           transform=None, penalty=None, extra: Score | None = None, blur_every: int = 0, blur_sigma: float = 0.5,
           generator: torch.Generator | None = None, desc: str = "visualize step", hint: str = SIZE_HINT,
           out_size: tuple[int, int] | None = None, decay: bool = False, first: int = 0, total: int | None = None,
           progress: bool = True) -> torch.Tensor:
    """Maximise ``score + extra − penalty`` over ``p`` with Adam; returns the trace of ``score``
    ``(N, steps)`` (``extra`` - a diversity term - is optimised but not traced).

    The transformed image is resized back to ``p``'s size (or to ``out_size``: the size the
    model sees when ``p`` is a coarser image, upsampled first), so models with a fixed input
    size (a LeNet) take transforms that pad or rescale. ``decay``: the learning rate falls
    linearly to 0 over the steps. Every step is reported as ``(desc, first + step, total)``
    (:mod:`seethrough.progress`); a listener raising ``Cancelled`` stops the loop. ``step_size``:
    Adam's learning rate; ``progress``: a bar over the steps (:func:`seethrough.progress.bar`).
    """
    step_adam = _adam(p.raw, step_size, decay=steps if decay else 0)
    size = out_size
    trace = []
    with hooks(model, capture=list(layers)) as rec:
        for step in bar(range(steps), desc=desc, progress=progress):
            img = p.image()
            size = size or tuple(img.shape[-2:])
            # a coarser image (coarse-to-fine inversion) is seen, and judged by the priors, at full size
            img = img if tuple(img.shape[-2:]) == size else F.interpolate(img, size=size, mode="bilinear", align_corners=False)
            seen = img if transform is None else transform(img, generator)
            if tuple(seen.shape[-2:]) != size:
                seen = F.interpolate(seen, size=size, mode="bilinear", align_corners=False)
            rec.clear()
            out = forward_checked(model, seen, hint) if step == 0 else model(seen)
            acts = {n: rec[n] for n in layers}
            s = score(acts, out)
            trace.append(s.detach())
            gain = s if extra is None else s + extra(acts, out)
            if penalty is not None:
                gain = gain - penalty(img)
            (g,) = torch.autograd.grad(-gain.sum(), p.raw)
            step_adam(g)
            if blur_every and (step + 1) % blur_every == 0 and step + 1 < steps:
                with torch.no_grad():
                    p.set_image(blur(p.image(), blur_sigma))
            report(desc, first + step + 1, total or steps)
        rec.clear()
    return torch.stack(trace, 1)


def _adam(x: torch.Tensor, lr: float, betas=(0.9, 0.999), eps: float = 1e-8, decay: int = 0) -> Callable[[torch.Tensor], None]:
    """Adam (Kingma & Ba, 2015) on one tensor, written out: ``torch.optim``'s first step
    imports the compiler stack (seconds), and element-wise updates keep images independent.
    ``decay=n``: the learning rate falls linearly from ``lr`` to ``lr/n`` over ``n`` steps."""
    m, v = torch.zeros_like(x), torch.zeros_like(x)
    t = 0

    def step(g: torch.Tensor) -> None:
        nonlocal t
        t += 1
        rate = lr * (1 - (t - 1) / decay) if decay else lr
        with torch.no_grad():
            m.mul_(betas[0]).add_(g, alpha=1 - betas[0])
            v.mul_(betas[1]).addcmul_(g, g, value=1 - betas[1])
            denom = (v / (1 - betas[1] ** t)).sqrt_().add_(eps)
            x.addcdiv_(m, denom, value=-rate / (1 - betas[0] ** t))

    return step


def chunked(run: Callable[[int, int], tuple[torch.Tensor, torch.Tensor]], n: int, like: torch.Tensor, model: nn.Module,
            mode: str, batch_size: int | str, desc: str, progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``run(start, stop) -> (x, trace)`` over ``n`` images in automatically sized chunks."""
    check_batch_size(batch_size)
    return run_batched(run, n, batch_size=batch_size, **grad_sizes(like), device=like.device,
                       key=model_key(model, like, mode), desc=desc, progress=progress)
