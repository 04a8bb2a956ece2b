"""The course's robustness observations, as checks a user runs on their own model.

* :func:`sphere_test`: adversarial directions are rare. Points drawn uniformly on a sphere
  around ``x`` whose radius is a multiple of the adversarial distance ‖x − x̃‖ almost never
  change the label, although the adversarial example, *closer*, did.
* :func:`transfer`: adversarial examples made on one model often fool another one trained
  independently on the same data.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..batching import bytes_per_item, check_batch_size, model_key, run_batched
from ..deprecation import renamed
from ..hooks import hooks
from ..inputs import check_images
from ..outputs import MODEL_HINT, class_output
from ..results import ResultProtocol, call_options
from .core import AttackResult


@dataclass
class SphereResult(ResultProtocol):
    """Per image: the sphere's ``radius`` (in [0, 1] input units, L2), the clean class, and
    how many of the ``n`` points on the sphere the model labels differently (``changed``)."""

    radius: torch.Tensor
    clean_class: torch.Tensor
    classes: torch.Tensor  # (N, n) predicted class at every sampled point
    n: int
    options: dict = field(default_factory=dict)
    seed: int | None = None

    def summary(self) -> str:
        return (f"random sphere test, {self.n} points per image on {len(self.radius)} images: a median of "
                f"{float(self.fraction.median()):.1%} of the points change the class")

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame({"sample": range(len(self.radius)), "radius": self.radius.double().tolist(),
                             "clean_class": self.clean_class.tolist(), "changed": self.changed.tolist(),
                             "fraction": self.fraction.tolist()})

    @property
    def changed(self) -> torch.Tensor:
        return (self.classes != self.clean_class[:, None]).sum(dim=1)

    @property
    def fraction(self) -> torch.Tensor:
        return self.changed.float() / self.n


def _direction(shape: tuple[int, ...], seed: int, index: int) -> torch.Tensor:
    # One generator per point: the sample does not depend on how points are batched.
    gen = torch.Generator().manual_seed(seed * 1_000_003 + index)
    u = torch.randn(shape, generator=gen, dtype=torch.float64)
    return u / u.norm()


@renamed(n="n_samples")
def sphere_test(
    model: nn.Module,
    x: torch.Tensor,
    x_adv: torch.Tensor | AttackResult,
    n_samples: int = 1000,
    radius_factor: float = 2.0,
    *,
    seed: int = 0,
    clamp: bool = False,
    batch_size: int | str = "auto",
    progress: bool = True,
) -> SphereResult:
    """Sample ``n_samples`` points uniformly on the sphere of radius ``radius_factor``·‖x − x̃‖
    around each image of ``x`` and record the model's class at each.

    ``clamp=True`` clips the points to [0, 1] (then they lie on the sphere only where the
    clip does not bite); by default they are left as sampled, as in the course.

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x, y = see.zoo.digits("test")
    >>> r = see.attack(model, x[:1], "fgsm", eps=40)
    >>> s = see.sphere_test(model, x[:1], r, n_samples=50)
    >>> bool(r.success[0]), int(s.changed[0]) < 50
    (True, True)
    """
    if isinstance(x_adv, AttackResult):
        x_adv = x_adv.x_adv
    opts = call_options(locals(), "model", "x", "x_adv")
    check_images(x, model=model)
    check_images(x_adv, name="x_adv", kind="tensor")  # an unclamped attack (ascent, clamp=False) may leave [0, 1]
    check_batch_size(batch_size)
    if x_adv.shape != x.shape:
        raise ValueError(f"x_adv must have the shape of x {tuple(x.shape)}, got {tuple(x_adv.shape)}")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples (points per image) must be a positive int, got {n_samples!r}")
    n = n_samples
    if isinstance(radius_factor, bool) or not isinstance(radius_factor, (int, float)) or not 0 < radius_factor < 1e6:
        raise ValueError(f"radius_factor must be a positive number (2 = twice the adversarial distance), got {radius_factor!r}")
    x = x.detach()
    radius = radius_factor * (x_adv.detach() - x).flatten(1).norm(dim=1)
    shape = tuple(x.shape[1:])

    def points(a: int, b: int) -> torch.Tensor:
        idx = torch.arange(a, b)
        dirs = torch.stack([_direction(shape, seed, int(t)) for t in idx]).to(x)
        img = idx // n
        p = x[img] + radius[img].view(-1, *([1] * len(shape))) * dirs
        return p.clamp(0, 1) if clamp else p

    with hooks(model), torch.no_grad():
        clean = class_output(model(x), hint=MODEL_HINT).argmax(dim=1)
        classes = run_batched(lambda a, b: model(points(a, b)).argmax(dim=1), len(x) * n, batch_size=batch_size,
                              item_bytes=bytes_per_item(x, "forward"), device=x.device, key=model_key(model, x, "forward"),
                              progress=progress, desc="sphere test")
    return SphereResult(radius=radius, clean_class=clean, classes=classes.view(len(x), n), n=n, options=opts, seed=seed)


def transfer(result: AttackResult, other: nn.Module, *, batch_size: int | str = "auto") -> torch.Tensor:
    """Does each adversarial image of ``result`` also fool ``other``? ``(N,)`` bool.

    Untargeted: ``other`` predicts something else than the true ``label``; targeted: it
    predicts the target.

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x, y = see.zoo.digits("test")
    >>> r = see.attack(model, x[:8], "pgd", label=y[:8], eps=64)
    >>> bool((see.transfer(r, model) == r.success).all())
    True
    """
    if not isinstance(result, AttackResult):
        raise TypeError(f"transfer takes the AttackResult of see.attack, got {type(result).__name__}")
    if not isinstance(other, nn.Module):
        raise TypeError(f"other must be a torch.nn.Module, got {type(other).__name__}")
    x_adv = result.x_adv
    with hooks(other), torch.no_grad():
        pred = run_batched(lambda a, b: other(x_adv[a:b]).argmax(dim=1), len(x_adv), batch_size=batch_size,
                           key=model_key(other, x_adv, "forward"), progress=False, device=x_adv.device)
    return pred == result.target if result.targeted else pred != result.label
