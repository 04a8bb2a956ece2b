"""The trust badge: the cheap checks shown next to every attribution map.

Three numbers, each against a reference measured the same way, and a verdict that states its reasons:

* the map's rank correlation (Spearman of absolute maps) with the maps of copies whose *top*
  parameterised layer is randomised, the mean over three draws — a map that does not change
  (ρ ≥ 0.5) does not explain the model's decision (Adebayo et al., 2018). One draw is not enough:
  for Grad-CAM on chelsea (EfficientNet-Lite0) four draws gave 0.66, −0.13, 0.49 and 0.06. A constant
  map has no ranking: ρ is *undefined*, never "barely changes";
* its deletion AUC (lower is better) against the same curve for the *least*-relevant-first order
  (Samek et al., 2017): on photos a random ranking deletes scattered patches, which destroys the
  class by itself (random deletion AUC 0.10 against 0.25 for Grad-CAM on chelsea), so it is a
  reference no map can beat; the reverse order perturbs the image as the map does. (With a shared
  reference image this is the same as insertion AUC > deletion AUC.) The random ranking's AUC is
  still computed and reported;
* its insertion AUC (higher is better) against a random ranking's (Petsiuk et al., 2018),

at 16 steps of square patches. Deletion and insertion run between the image and a *reference*
chosen to fit the model: the first of a blurred copy, the image's mean colour and black that takes
away at least half of the explained class's probability. A fixed reference can leave the evidence
in place — LeNet calls a blurred digit by its class with probability 0.99, so insertion from blur
starts and ends saturated and every map, random or not, scores about 1. When no reference takes the
class away, the two checks are reported as uninformative rather than failed.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..attribution import set_trust_badge
from ..layers import resolve_layer
from ..results import ResultProtocol, call_options
from .common import explain_seeded, fixed_target
from .randomization import layer_seed, parameterised_layers, randomize_layer
from .similarity import similarity

BADGE_STEPS = 16
BADGE_RANDOM = 2  # random rankings averaged: one is noisy on 16-step curves
BADGE_DRAWS = 3  # random draws of the top layer averaged for ρ: one draw is noisy (see the module docstring)
DEPENDS_ON_MODEL = 0.5  # ρ below this after randomising the top layer: the map depends on the model
REFERENCES = ("blur", "mean colour", "black")
REMOVES_EVIDENCE = 0.5  # a reference must take away at least half of the class probability
MIN_RANGE = 0.1  # below this drop of the class probability, deletion and insertion cannot tell maps apart


@dataclass
class TrustBadge(ResultProtocol):
    """Per-sample ``(N,)`` tensors: ``randomized_top`` (mean ρ over the top-layer draws; NaN: undefined),
    deletion and insertion AUCs, their random-ranking references and ``deletion_lerf`` (deletion in the
    least-relevant-first order, what deletion is judged against); ``reference`` the name of the image
    deletion ends at and insertion starts from, ``p_image``/``p_reference`` the explained class's
    probability on the image and on it; ``verdict`` one line per sample with its reasons."""

    top_layer: str
    randomized_top: torch.Tensor
    deletion: torch.Tensor
    deletion_random: torch.Tensor
    insertion: torch.Tensor
    insertion_random: torch.Tensor
    verdict: list[str]
    reference: list[str] = field(default_factory=list)
    deletion_lerf: torch.Tensor | None = None
    p_image: torch.Tensor | None = None
    p_reference: torch.Tensor | None = None
    options: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None  # the seed in effect for the random top layers and rankings

    def to_frame(self):
        import pandas as pd

        n = len(self.verdict)
        nan = [float("nan")] * n
        return pd.DataFrame({"sample": range(n), "top_layer": self.top_layer,
                             "spearman_randomized_top": self.randomized_top.tolist(),
                             "deletion_auc": self.deletion.tolist(), "deletion_random": self.deletion_random.tolist(),
                             "deletion_lerf": nan if self.deletion_lerf is None else self.deletion_lerf.tolist(),
                             "insertion_auc": self.insertion.tolist(), "insertion_random": self.insertion_random.tolist(),
                             "reference": self.reference or [""] * n,
                             "p_image": nan if self.p_image is None else self.p_image.tolist(),
                             "p_reference": nan if self.p_reference is None else self.p_reference.tolist(),
                             "verdict": self.verdict})

    def _deletion(self, i: int) -> str:
        ref = f"least relevant first {self.deletion_lerf[i]:.2f}" if self.deletion_lerf is not None else \
            f"random {self.deletion_random[i]:.2f}"
        return f"{self.deletion[i]:.2f} ({ref})"

    def lines(self, i: int = 0) -> list[str]:
        """The badge for sample ``i`` as short lines (the numbers, then the verdict): what the picture shows."""
        ref = self.reference[i] if self.reference else "blur"
        return [f"rank corr. after top layer random {rho_text(float(self.randomized_top[i]))}",
                f"deletion to {ref} {self._deletion(i)}",
                f"insertion from {ref} {self.insertion[i]:.2f} (random {self.insertion_random[i]:.2f})",
                self.verdict[i]]

    def summary(self, i: int = 0) -> str:
        """One line for sample ``i``, for captions and the CLI."""
        ref = f" · reference {self.reference[i]}" if self.reference else ""
        return (f"ρ(top layer random) {rho_text(float(self.randomized_top[i]))} · deletion {self._deletion(i)} · "
                f"insertion {self.insertion[i]:.2f} (random {self.insertion_random[i]:.2f}){ref} → {self.verdict[i]}")


def rho_text(rho: float) -> str:
    """ρ for display: NaN (a constant map, no ranking) is written "undefined", never as a number.

    >>> rho_text(0.123), rho_text(float("nan"))
    ('0.12', 'undefined')
    """
    return "undefined" if math.isnan(rho) else f"{rho:.2f}"


def verdict(rho: float, deletion: float, deletion_lerf: float, insertion: float, insertion_random: float,
            informative: bool = True) -> str:
    """A short reading of the three checks, naming the reason for every caution.

    >>> verdict(0.1, 0.2, 0.4, 0.7, 0.5)
    'passes: depends on the model, beats the reverse order on deletion and random on insertion'
    >>> verdict(float("nan"), 0.2, 0.4, 0.7, 0.5)
    'caution: rank correlation undefined (constant map)'
    >>> verdict(0.8, 0.5, 0.4, 0.7, 0.5)
    'caution: barely changes when the top layer is randomised; deletion no faster than least relevant first'
    """
    problems = []
    if math.isnan(rho):
        problems.append("rank correlation undefined (constant map)")
    elif rho >= DEPENDS_ON_MODEL:
        problems.append("barely changes when the top layer is randomised")
    if not informative:
        problems.append("deletion/insertion uninformative (no reference removes the class)")
    else:
        if not deletion < deletion_lerf:
            problems.append("deletion no faster than least relevant first")
        if not insertion > insertion_random:
            problems.append("insertion no better than random")
    if not problems:
        return "passes: depends on the model, beats the reverse order on deletion and random on insertion"
    return "caution: " + "; ".join(problems)


def badge_patch(h: int, w: int) -> int:
    """Patch side so the image has ≥ 16 × 16 units: 1 px up to 32 px images, 7 px at 224."""
    return max(1, min(h, w) // 32)


def reference_images(model: nn.Module, x: torch.Tensor, target: Any) -> tuple[torch.Tensor, list[str], torch.Tensor, torch.Tensor]:
    """Per sample, the first of :data:`REFERENCES` whose class probability is at most half the image's
    (else the one with the lowest): ``(references, names, p_image, p_reference)``.

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x, y = see.zoo.digits("test")
    >>> ref, names, p_x, p_ref = reference_images(model, x[:2], y[:2])
    >>> ref.shape == x[:2].shape, bool((p_ref < p_x).all())
    (True, True)
    """
    from ..attribution.common import make_baseline
    from ..batching import run_batched
    from ..hooks import hooks
    from ..metrics.curves import _is_fn, class_score

    cands = torch.stack([x.detach(), make_baseline(x, "blur"), x.detach().mean(dim=(2, 3), keepdim=True).expand_as(x),
                         torch.zeros_like(x)])  # (1 + R, N, C, H, W)
    k, n = cands.shape[:2]

    def fn(a: int, b: int) -> torch.Tensor:
        items = torch.arange(a, b, device=x.device)
        with torch.no_grad():
            out = model(cands[items // n, items % n])
        return class_score(out, target if _is_fn(target) else target[items % n], "probability")

    with hooks(model):
        p = run_batched(fn, k * n, progress=False, desc="references", device=x.device).view(k, n).double()
    ok = p[1:] <= REMOVES_EVIDENCE * p[:1]
    first = torch.where(ok.any(0), ok.double().argmax(0), p[1:].argmin(0))
    idx = torch.arange(n, device=x.device)
    return cands[1 + first, idx], [REFERENCES[int(j)] for j in first], p[0], p[1 + first, idx]


def trust_badge(model: nn.Module, x: torch.Tensor, method: Any, target: Any = None,
                attribution: torch.Tensor | None = None, *, seed: int | None = None, **method_options: Any) -> TrustBadge:
    """The cheap checks for ``method``'s map of ``x`` (computed unless ``attribution`` is given).

    ``seed`` (default 0) seeds the random top layers and rankings; it is also passed to the method
    when the method takes one (LIME, RISE, SmoothGrad...), so its maps of the model and of the
    randomised copies draw the same noise.

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x, y = see.zoo.digits("test")
    >>> a, badge = see.attribute(model, x[:1], "grad-x-input", target=y[:1], trust=True)
    >>> badge.verdict[0].split(":")[0] in ("passes", "caution")
    True
    """
    call = call_options(locals(), "model", "x", "attribution")  # first: before the imports add locals
    from ..metrics import deletion, insertion
    from ..metrics.curves import auc, curve_metric

    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"seed must be an int, got {seed!r}")
    method_seed, seed = seed, 0 if seed is None else seed
    target = fixed_target(model, x, target)
    if attribution is None:
        attribution = explain_seeded(model, x, method, target, method_options, method_seed)
    order = parameterised_layers(model, x)
    top = order[-1]
    rhos = []
    for draw in range(BADGE_DRAWS):  # draw k: the first step of see.sanity.randomization with seed + k
        twin = copy.deepcopy(model)  # the user's model is never modified
        randomize_layer(twin if top == "" else resolve_layer(twin, top), layer_seed(seed + draw, len(order) - 1))
        r = similarity(attribution, explain_seeded(twin, x, method, target, method_options, method_seed), "spearman_abs")
        rhos.append(r[None] if r.dim() == 0 else r)
    # A draw whose map is constant (Grad-CAM's ReLU can zero it) has no ranking and is left out; a
    # constant original map leaves every draw out: NaN, reported as "undefined".
    rho = torch.stack(rhos).nanmean(0)
    ref, names, p_x, p_ref = reference_images(model, x, target)
    patch = badge_patch(*x.shape[-2:])
    units = -(-x.shape[-2] // patch) * -(-x.shape[-1] // patch)
    opts = dict(steps=min(BADGE_STEPS, units), patch=patch, n_random=BADGE_RANDOM, seed=seed, progress=False)
    d = deletion(model, x, attribution, target, baseline=ref, **opts)
    lerf = curve_metric("deletion", model, x, attribution, target, start=x.detach(), end=ref, order="lerf", score="probability",
                        summary=auc, batch_size="auto", **{**opts, "n_random": 0})
    i = insertion(model, x, attribution, target, start=ref, **opts)
    words = [verdict(float(rho[k]), float(d.score[k]), float(lerf.score[k]), float(i.score[k]),
                     float(i.random_score[k]), informative=bool(p_x[k] - p_ref[k] >= MIN_RANGE)) for k in range(len(x))]
    return TrustBadge(top or "(the model)", rho.to(d.score.dtype), d.score, d.random_score, i.score, i.random_score, words,
                      names, lerf.score, p_x, p_ref, options=call, seed=seed)


# attribute(..., trust=True) calls the badge through this hook: attribution sits below sanity and
# must not import it (issue 19: no import cycles).
set_trust_badge(trust_badge)
