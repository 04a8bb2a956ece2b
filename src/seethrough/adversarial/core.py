"""``see.attack``: one call for every registered attack, returning an :class:`AttackResult`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..batching import check_batch_size, grad_sizes, model_key, run_batched
from ..boundary import Boundary, as_boundary
from ..hooks import hooks
from ..inputs import check_images
from ..outputs import MODEL_HINT, class_output
from ..results import ResultProtocol
from ..targets import target_indices
from .attacks import ATTACKS, PIXEL, perturb, resolve_options


@dataclass
class AttackResult(ResultProtocol):
    """What an attack did, per sample (first dimension ``N``).

    ``history_class`` / ``history_prob``: the predicted class and its probability at every
    iteration, ``(N, steps + 1)``, column 0 being the clean image; ``history_goal_prob``: the
    probability of the true class (untargeted) or of the target (targeted).
    ``relative``: ‖x − x̃‖₂ / ‖x‖₂; ``linf``: max |x − x̃| in pixel units (0-255).
    ``success``: untargeted — the prediction differs from ``label``; targeted — it equals
    ``target``. ``success_8bit``: the same after rounding ``x_adv`` to 8-bit pixels, as a
    PNG stores it. ``already_wrong``: the clean prediction already differed from the given
    ``label`` (reported, not an error).
    """

    method: str
    options: dict[str, Any]
    x: torch.Tensor
    x_adv: torch.Tensor
    label: torch.Tensor
    target: torch.Tensor | None
    history_class: torch.Tensor
    history_prob: torch.Tensor
    history_goal_prob: torch.Tensor
    success: torch.Tensor
    success_8bit: torch.Tensor
    pred_8bit: torch.Tensor
    already_wrong: torch.Tensor
    relative: torch.Tensor = field(init=False)
    linf: torch.Tensor = field(init=False)
    seed: int | None = None  # the seed of the attack's random start (0 unless given); options hold it too

    def __post_init__(self) -> None:
        delta = (self.x_adv - self.x).flatten(1)
        self.relative = delta.norm(dim=1) / self.x.flatten(1).norm(dim=1).clamp_min(1e-12)
        self.linf = delta.abs().amax(dim=1) * PIXEL

    @property
    def clean_class(self) -> torch.Tensor:
        return self.history_class[:, 0]

    @property
    def pred(self) -> torch.Tensor:
        return self.history_class[:, -1]

    @property
    def prob(self) -> torch.Tensor:
        return self.history_prob[:, -1]

    @property
    def targeted(self) -> bool:
        return self.target is not None

    def x_adv_8bit(self) -> torch.Tensor:
        """``x_adv`` rounded to the 256 levels an 8-bit PNG can hold."""
        return quantize(self.x_adv)

    def summary(self, labels: list[str] | None = None) -> str:
        """One line: the sample's :meth:`lines` for one image, else how many attacks succeeded."""
        if len(self.label) == 1:
            return self.lines(labels)[0]
        goal = "targeted" if self.targeted else "untargeted"
        return (f"{self.method} ({goal}) on {len(self.label)} images: {int(self.success.sum())} succeed, "
                f"{int(self.success_8bit.sum())} after 8-bit rounding; median L∞ {float(self.linf.median()):.2f}")

    def lines(self, labels: list[str] | None = None) -> list[str]:
        """One line per sample: classes, confidence, perturbation size and success (``summary()`` before issue 19)."""
        name = (lambda c: labels[c] if labels is not None and c < len(labels) else str(c))
        lines = []
        for i in range(len(self.label)):
            c0, c1 = int(self.clean_class[i]), int(self.pred[i])
            goal = f"target {name(int(self.target[i]))}" if self.targeted else f"away from {name(int(self.label[i]))}"
            note = " (the clean image was already misclassified)" if self.already_wrong[i] else ""
            lines.append(
                f"{name(c0)} ({self.history_prob[i, 0]:.1%}) → {name(c1)} ({self.prob[i]:.1%}) · {self.method} {goal} · "
                f"‖δ‖/‖x‖ = {self.relative[i]:.4f}, L∞ = {self.linf[i]:.2f}/255 · "
                f"{'success' if self.success[i] else 'failed'}, after 8-bit rounding: "
                f"{'still fools' if self.success_8bit[i] else 'no longer fools'}{note}"
            )
        return lines


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Round images in [0, 1] to 8-bit levels (k/255), as saving to PNG does.

    >>> quantize(torch.tensor([0.0, 0.5, 0.999])).mul(255).tolist()
    [0.0, 128.0, 255.0]
    """
    return (x.clamp(0, 1) * PIXEL).round() / PIXEL


def attack(
    model: nn.Module,
    x: torch.Tensor,
    method: str = "pgd",
    target: Any = None,
    *,
    label: Any = None,
    batch_size: int | str = "auto",
    progress: bool = True,
    **options: Any,
) -> AttackResult:
    """Attack ``model`` on images ``x`` (in [0, 1]) with a method of :data:`ATTACKS`.

    ``target=None`` is untargeted: push each image away from ``label`` (default: the
    model's clean prediction). ``target=t`` (an int or one class per sample) makes every
    image class ``t``. Options (``eps`` and bim/pgd's ``step_size`` in 0-255 pixel units): ascent
    ``step_size, steps, clamp, space`` (``step_size`` is the course's learning rate and acts on the
    model's normalised input by default; ``space="pixel"``: on [0, 1] pixels); fgsm ``eps, norm``; bim ``eps, steps, step_size, norm``; pgd
    additionally ``random_start, seed``. ``norm`` is ``"linf"`` or ``"l2"``. On tabular rows (a
    tabular boundary, or a module with ``(N, F)`` float rows) ``eps``/``step_size`` are in the features'
    own units (a number or one value per feature) and steps are clamped to the boundary's ``ranges``
    (:mod:`seethrough.adversarial.tabular`).

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x, y = see.zoo.digits("test")
    >>> r = see.attack(model, x[:4], "pgd", label=y[:4], eps=64, steps=10)
    >>> bool((r.linf <= 64 + 1e-3).all()), r.history_class.shape
    (True, torch.Size([4, 11]))
    """
    if isinstance(model, Boundary) or (isinstance(model, nn.Module) and isinstance(x, torch.Tensor) and x.dim() == 2
                                       and x.is_floating_point()):
        b = as_boundary(model, x)
        if b.kind == "tabular":  # rows: a budget in feature units, clamped to the boundary's ranges
            return _attack_rows(b, x, method, target, label, batch_size, progress, options)
        if b.kind != "image":
            raise ValueError(f"attacks are defined for images and tabular rows; this input is {b.kind!r} "
                             "(token ids have no gradient direction to step along)")
        model = b.model
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_images(x, model=model)
    check_batch_size(batch_size)
    opts = resolve_options(method, options, x)
    if callable(target) and not isinstance(target, torch.Tensor):
        raise TypeError("an attack needs a class target (an int or one class per sample), not a callable")
    x = x.detach()
    with hooks(model):
        with torch.no_grad():
            probe = class_output(model(x[:1]), hint=MODEL_HINT)
        if probe.dim() != 2:
            raise ValueError(f"attacks need a classifier output of shape (N, classes), got {tuple(probe.shape)}")
        with torch.no_grad():
            clean = run_batched(lambda a, b: model(x[a:b]).argmax(dim=1), len(x), batch_size=batch_size,
                                key=model_key(model, x, "forward"), progress=progress, desc="clean predictions",
                                device=x.device)
        fake = torch.zeros(len(x), probe.shape[1], dtype=probe.dtype, device=probe.device)
        label_idx = clean if label is None else _classes(fake, label, "label")
        target_idx = None if target is None else _classes(fake, target, "target")
        goal = label_idx if target_idx is None else target_idx
        gen = torch.Generator().manual_seed(int(opts.get("seed", 0)))
        build = ATTACKS[method].build
        start, step, steps = build(x, gen, **opts, **({"model": model} if ATTACKS[method].needs_model else {}))

        def run(a: int, b: int):
            return perturb(model, x[a:b], goal[a:b], target_idx is not None, start[a:b], step, steps, f"{method} step")

        x_adv, h_cls, h_prob, h_goal = run_batched(
            run, len(x), batch_size=batch_size, **grad_sizes(x), device=x.device,
            key=model_key(model, x, "grad"), progress=progress, desc=f"{method} attack",
        )
        with torch.no_grad():
            pred_8bit = run_batched(lambda a, b: model(quantize(x_adv[a:b])).argmax(dim=1), len(x), batch_size=batch_size,
                                    key=model_key(model, x, "forward"), progress=False, device=x.device)
    succeeded = (lambda c: c == target_idx) if target_idx is not None else (lambda c: c != label_idx)
    return AttackResult(
        method=method, options=opts, x=x, x_adv=x_adv, label=label_idx, target=target_idx,
        history_class=h_cls, history_prob=h_prob, history_goal_prob=h_goal,
        success=succeeded(h_cls[:, -1]), success_8bit=succeeded(pred_8bit), pred_8bit=pred_8bit,
        already_wrong=clean != label_idx, seed=int(opts.get("seed", 0)),
    )


def _attack_rows(b: Boundary, x: torch.Tensor, method: str, target: Any, label: Any, batch_size: int | str,
                 progress: bool, options: dict[str, Any]) -> AttackResult:
    """:func:`attack` on tabular rows (:mod:`.tabular`): ``linf`` of the result is in feature units and
    ``success_8bit`` equals ``success`` (rows are not quantised)."""
    from .tabular import tabular_build, tabular_options

    b.check(x)
    check_batch_size(batch_size)
    opts = tabular_options(method, options)
    if callable(target) and not isinstance(target, torch.Tensor):
        raise TypeError("an attack needs a class target (an int or one class per sample), not a callable")
    x = x.detach()
    with hooks(b.model):
        with torch.no_grad():
            logits = b.forward(x)
        if logits.dim() != 2:
            raise ValueError(f"attacks need a classifier output of shape (N, classes), got {tuple(logits.shape)}")
        clean = logits.argmax(1)
        label_idx = clean if label is None else _classes(logits, label, "label")
        target_idx = None if target is None else _classes(logits, target, "target")
        goal = label_idx if target_idx is None else target_idx
        start, step, steps = tabular_build(b, method, x, torch.Generator().manual_seed(int(opts.get("seed", 0))), opts)

        def run(a: int, c: int):
            rows = torch.arange(a, c, device=x.device)
            return perturb(lambda z: b.forward(z, rows), x[a:c], goal[a:c], target_idx is not None, start[a:c], step,
                           steps, f"{method} step")

        x_adv, h_cls, h_prob, h_goal = run_batched(run, len(x), batch_size=batch_size, **grad_sizes(x),
                                                   device=x.device,
                                                   key=model_key(b.model, x, "grad-tabular"), progress=progress,
                                                   desc=f"{method} attack")
    succeeded = (lambda c: c == target_idx) if target_idx is not None else (lambda c: c != label_idx)
    success = succeeded(h_cls[:, -1])
    r = AttackResult(method=method, options=opts, x=x, x_adv=x_adv, label=label_idx, target=target_idx,
                     history_class=h_cls, history_prob=h_prob, history_goal_prob=h_goal, success=success,
                     success_8bit=success, pred_8bit=h_cls[:, -1], already_wrong=clean != label_idx,
                     seed=int(opts.get("seed", 0)))
    r.linf = (x_adv - x).abs().amax(dim=1)  # feature units, not 0-255 pixel levels
    return r


def _classes(fake_output: torch.Tensor, value: Any, name: str) -> torch.Tensor:
    """Validate a class argument with the shared target rules, naming the option on error."""
    try:
        return target_indices(fake_output, value)
    except (ValueError, TypeError) as e:
        raise type(e)(f"{name}: {e}") from e
