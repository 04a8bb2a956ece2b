"""The one place where seethrough touches a user's model.

Every method runs its forward/backward passes inside :func:`hooks`, which

* captures the outputs of named layers (one capture per call, so a module used twice
  in a forward gives two entries),
* replaces the backward pass of chosen modules by a *rule* (deconvnet, guided
  back-propagation, LRP, DeepLIFT are all rules),
* puts the model in eval mode and stops parameter gradients for the duration,

and on exit - also after an exception - restores every training flag, every
``requires_grad``, the buffers (when run in train mode), and removes every hook.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Mapping

import torch
from torch import nn

from .layers import resolve_layers

# rule(module, x, y, grad_y) -> grad_x : the gradient that flows to the module's input.
Rule = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
Selector = type | tuple | Callable[[str, nn.Module], bool]


@dataclass
class Recorder:
    """What a :func:`hooks` context captured: layer name → one tensor per call."""

    activations: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # captured layer names in call order (execution order)

    def __getitem__(self, name: str) -> torch.Tensor:
        """The output of the layer's last call (most layers are called once)."""
        outs = self.activations.get(name)
        if not outs:
            raise KeyError(f"layer {name!r} was not called in the forward pass")
        return outs[-1]

    def clear(self) -> None:
        for v in self.activations.values():
            v.clear()


class _RuleGrad(torch.autograd.Function):
    """Identity on ``y`` in the forward; in the backward, ``rule`` decides what reaches ``x``."""

    @staticmethod
    def forward(ctx, x, y, module, rule):
        ctx.save_for_backward(x, y)
        ctx.module, ctx.rule = module, rule
        # A fresh tensor, not a view: downstream inplace ops on views of custom Functions fail.
        return y.clone()

    @staticmethod
    def backward(ctx, grad_y):
        x, y = ctx.saved_tensors
        with torch.enable_grad():
            grad_x = ctx.rule(ctx.module, x, y, grad_y)
        return grad_x, None, None, None


def _matches(selector: Selector, name: str, module: nn.Module) -> bool:
    if isinstance(selector, (type, tuple)):
        return isinstance(module, selector)
    return bool(selector(name, module))


@contextmanager
def hooks(
    model: nn.Module,
    capture: str | Iterable[str] = (),
    rules: Mapping[Selector, Rule] | None = None,
    *,
    train: bool = False,
    detach: bool = False,
    strict: bool = True,
) -> Iterator[Recorder]:
    """Capture layer outputs and/or swap backward rules, leaving the model as found.

    ``capture``: layer names whose outputs are recorded (kept in the graph unless
    ``detach``, so ``torch.autograd.grad(score, rec.activations[name])`` gives layer
    gradients). Downstream layers receive a copy, so an inplace activation after a
    captured layer cannot overwrite the capture.
    ``rules``: maps a module type (or tuple of types, or ``predicate(name, module)``) to a
    rule ``(module, x, y, grad_y) -> grad_x``; the first matching selector wins.
    ``train``: run in train mode (buffers such as BatchNorm statistics are restored).
    ``strict=False``: a captured layer whose output is not a tensor (a tuple, a dict) is
    skipped instead of raising, for surveys over every module.

    >>> import torch, seethrough as see
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    >>> with see.hooks(net, capture="1") as rec:
    ...     _ = net(torch.ones(4, 2))
    >>> rec["1"].shape
    torch.Size([4, 3])
    >>> net[1]._forward_hooks
    OrderedDict()
    """
    targets = resolve_layers(model, capture)
    flags = {m: m.training for m in model.modules()}
    grads_wanted = {p: p.requires_grad for p in model.parameters()}
    saved_buffers = [(b, b.detach().clone()) for b in model.buffers()] if train else []
    handles: list = []
    rec = Recorder(activations={n: [] for n in targets}, calls={n: 0 for n in targets})
    try:
        model.train(train)
        for p in grads_wanted:
            p.requires_grad_(False)
        for name, module in targets.items():
            handles.append(module.register_forward_hook(_capture_hook(rec, name, detach, strict)))
        if rules:
            for name, module in model.named_modules():
                rule = next((r for s, r in rules.items() if _matches(s, name, module)), None)
                if rule is not None:
                    handles.extend(_attach_rule(module, rule))
        yield rec
    finally:
        for h in handles:
            h.remove()
        for m, flag in flags.items():
            m.training = flag
        for p, wanted in grads_wanted.items():
            p.requires_grad_(wanted)
        with torch.no_grad():
            for b, saved in saved_buffers:
                b.copy_(saved)


def forward(model: nn.Module, x: torch.Tensor) -> object:
    """``model(x)`` without autograd inside :func:`hooks`: the model in eval mode (Dropout off, BatchNorm
    reading its running statistics), and left exactly as found, also in train mode.

    The forward every "pick the class on the clean input" step uses, so the target never
    depends on a Dropout draw and never moves a running statistic.

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.9)).train()
    >>> torch.equal(forward(net, torch.ones(3, 2)), forward(net, torch.ones(3, 2)))
    True
    >>> net.training
    True
    """
    with hooks(model), torch.no_grad():
        return model(x)


def _capture_hook(rec: Recorder, name: str, detach: bool, strict: bool = True):
    def hook(module, inputs, output):
        if not isinstance(output, torch.Tensor):
            if not strict:
                return None
            raise TypeError(f"layer {name!r} returns {type(output).__name__}, not a tensor; capture a layer that outputs a tensor")
        rec.calls[name] += 1
        rec.order.append(name)
        if detach:
            output = output.detach()
        elif torch.is_grad_enabled() and not output.requires_grad:
            # Parameters are frozen inside hooks(): a layer gradient must still be reachable
            # when the input does not require grad, so the capture becomes a graph leaf.
            output = output.detach().requires_grad_()
        rec.activations[name].append(output)
        # Downstream gets a copy: an inplace op there must not rewrite what we recorded.
        return output.clone()

    return hook


def _attach_rule(module: nn.Module, rule: Rule) -> list:
    """Intercept ``module``'s backward with ``rule``; works for repeated calls and inplace modules."""
    stash: list[torch.Tensor] = []
    inplace = bool(getattr(module, "inplace", False))

    def pre(mod, inputs):
        if len(inputs) != 1 or not isinstance(inputs[0], torch.Tensor):
            raise TypeError(f"a backward rule needs a module with one tensor input; {type(mod).__name__} got {len(inputs)}")
        x = inputs[0]
        stash.append(x)
        if inplace:
            # The module would overwrite x, which the rule needs in the backward.
            return (x.clone(),)
        return None

    def post(mod, inputs, output):
        x = stash.pop()
        if not torch.is_grad_enabled() or not (x.requires_grad or output.requires_grad):
            return None
        return _RuleGrad.apply(x, output, mod, rule)

    return [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
