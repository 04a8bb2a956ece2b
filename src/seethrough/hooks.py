"""The one place where seethrough touches a user's model.

Every method runs its forward/backward passes inside :func:`hooks`, which

* captures the outputs of named layers (one capture per call, so a module used twice
  in a forward gives two entries),
* replaces the backward pass of chosen modules by a *rule* (deconvnet, guided
  back-propagation, LRP, DeepLIFT are all rules),
* replaces the output of chosen layers by given tensors (``replace=``: a forward from a point
  of a layer's output space, e.g. token embeddings, layer integrated gradients),
* puts the model in eval mode and stops parameter gradients for the duration,

and on exit - also after an exception - restores every training flag, every
``requires_grad``, the buffers (when run in train mode), and removes every hook.

A layer whose output is a tuple, a list, a dict or a ``ModelOutput`` (every transformer block)
is read through an *output selector* (``output=``, per layer): by default the first tensor of it.
The selected tensor is what is recorded, what a rule sees and what a replacement stands for;
downstream modules get the original structure with that tensor swapped in.

TorchScript modules take no hooks: :func:`hooks` refuses to capture, replace or attach rules on
them in one line (:data:`HOOKLESS`) instead of silently running the plain forward; with nothing
to hook, it still gives them eval mode and the restore.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Mapping

import torch
from torch import nn

from .layers import resolve_layer, resolve_layers
from .outputs import OutputSelector, pick, put

# rule(module, x, y, grad_y) -> grad_x : the gradient that flows to the module's input. A rule may carry
# ``rule.observe(module, x, out)``, called on every forward call with the module's input and the output it
# passes on (also without autograd: a recording pass), and ``rule.bind(module, x, y) -> rule``, the rule
# for that one call (DeepLIFT pairs each call with the same call of the reference pass).
Rule = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
Selector = type | tuple | Callable[[str, nn.Module], bool]


@dataclass(frozen=True)
class GradRule:
    """A rule that only changes the gradient arriving at a module's output: ``fn(module, grad_y) -> grad_y``;
    the module's own backward then runs as usual. Guided back-propagation is one (``f'(s)·1{g>0}·g`` is the
    unit's own backward of the clamped gradient): a tensor hook on the output, with no copy of it and no
    custom autograd Function, so it costs what the plain gradient costs plus the one clamp.

    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    >>> x = torch.ones(1, 2, requires_grad=True)
    >>> with hooks(net, rules={torch.nn.ReLU: GradRule(lambda m, g: -g)}):
    ...     plain = net(x).sum()
    >>> (g,) = torch.autograd.grad(plain, x)
    >>> bool(torch.equal(g, -torch.autograd.grad(net(x).sum(), x)[0]))
    True
    """

    fn: Callable[[nn.Module, torch.Tensor], torch.Tensor]
Replacement = torch.Tensor | Callable[[torch.Tensor], torch.Tensor]

# What runs on a model without hooks, and what does not: the one line every refusal gives.
NEED_HOOKS = ("activations", "layer statistics", "top-k", "embed of inner layers", "the CAM family", "guided backprop",
              "deconvnet", "DeepLIFT", "LRP", "layer=/unit= attribution")
NO_HOOKS = ("saliency", "gradient×input", "sensitivity", "SmoothGrad", "integrated gradients", "occlusion", "LIME",
            "KernelSHAP", "RISE", "predict", "attacks")
HOOKLESS = ("{what} is a TorchScript module, which takes no hooks: methods that capture layers or change backward rules ("
            + ", ".join(NEED_HOOKS) + ") cannot run on it; those that only need forwards and input gradients can ("
            + ", ".join(NO_HOOKS) + "); load the eager nn.Module for the others")


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
    output: OutputSelector | Mapping[str, OutputSelector] = None,
    replace: Mapping[str, Replacement] | None = None,
    train: bool = False,
    detach: bool = False,
    strict: bool = True,
) -> Iterator[Recorder]:
    """Capture layer outputs, swap backward rules and/or replace layer outputs, leaving the model as found.

    ``capture``: layer names whose outputs are recorded (kept in the graph unless
    ``detach``, so ``torch.autograd.grad(score, rec.activations[name])`` gives layer
    gradients). Downstream layers receive a copy, so an inplace activation after a
    captured layer cannot overwrite the capture.
    ``rules``: maps a module type (or tuple of types, or ``predicate(name, module)``) to a
    rule ``(module, x, y, grad_y) -> grad_x``; the first matching selector wins.
    ``output``: how a tensor is read from a layer whose output is not one (a tuple, a list, a dict, a
    ``ModelOutput``): one selector for every layer or ``{layer name: selector}``. The default takes
    the first tensor (a transformer block's hidden states); a key, an index or a callable
    ``output -> tensor`` pick another (see :func:`seethrough.outputs.pick`). The selected tensor is
    recorded, seen by a rule, or replaced; the rest of the structure passes through unchanged.
    ``replace``: ``{layer name: tensor or fn(selected output) -> tensor}``; the layer's selected
    output becomes that tensor on every call (same shape), so the forward continues from a point of
    the layer's output space and gradients reach the given tensor. Captures of a replaced layer
    record the replacement.
    ``train``: run in train mode (buffers such as BatchNorm statistics are restored).
    ``strict=False``: a captured layer whose output holds no tensor (or not the selected one) is
    skipped instead of raising, for surveys over every module.

    A TorchScript module is refused in one line (:data:`HOOKLESS`) when anything is to be captured,
    replaced or ruled; ``hooks(scripted)`` alone still runs it in eval mode and restores it.

    >>> import torch, seethrough as see
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    >>> with see.hooks(net, capture="1") as rec:
    ...     _ = net(torch.ones(4, 2))
    >>> rec["1"].shape
    torch.Size([4, 3])
    >>> net[1]._forward_hooks
    OrderedDict()
    >>> with see.hooks(net, replace={"1": torch.zeros(4, 3)}):
    ...     torch.equal(net(torch.ones(4, 2)), net[2].bias.expand(4, 1))
    True
    """
    model = getattr(model, "model", model) if not isinstance(model, nn.Module) else model  # a Boundary
    targets = resolve_layers(model, capture)
    swaps = {name: (resolve_layer(model, name), value) for name, value in (replace or {}).items()}
    selectors = _selectors(model, output)
    _refuse_hookless(model, [*targets.values(), *(m for m, _ in swaps.values())], bool(rules))
    flags = {m: m.training for m in model.modules()}
    grads_wanted = {p: p.requires_grad for p in model.parameters()}
    saved_buffers = [(b, b.detach().clone()) for b in model.buffers()] if train else []
    handles: list = []
    rec = Recorder(activations={n: [] for n in targets}, calls={n: 0 for n in targets})
    try:
        # only what differs is set (and later restored): Module.train and __setattr__ walk ~200 modules
        # of a real network twice per call, a few ms on every single-pass method (measured, cProfile)
        if any(flag != train for flag in flags.values()):
            model.train(train)
        for p, wanted in grads_wanted.items():
            if wanted:
                p.requires_grad_(False)
        # Order matters: hooks run in registration order, each seeing the output the previous one
        # returned. Rules wrap the module's own output, a replacement then stands in for it (cutting
        # the module's backward), and captures record what flows on.
        if rules:
            for name, module in model.named_modules():
                rule = next((r for s, r in rules.items() if _matches(s, name, module)), None)
                if rule is not None:
                    handles.extend(_register(model, name, _attach_rule(module, rule, name, selectors(name))))
        for name, (module, value) in swaps.items():
            handles.extend(_register(model, name, [(module.register_forward_hook, _replace_hook(name, value, selectors(name)))]))
        for name, module in targets.items():
            hook = _capture_hook(rec, name, detach, strict, selectors(name))
            handles.extend(_register(model, name, [(module.register_forward_hook, hook)]))
        yield rec
    finally:
        for h in handles:
            h.remove()
        for m, flag in flags.items():
            if m.training != flag:
                m.training = flag
        for p, wanted in grads_wanted.items():
            if p.requires_grad != wanted:
                p.requires_grad_(wanted)
        with torch.no_grad():
            for b, saved in saved_buffers:
                b.copy_(saved)


def is_scripted(module: nn.Module) -> bool:
    """True for a TorchScript module (scripted or traced), which takes no Python hooks.

    >>> is_scripted(torch.nn.ReLU())
    False
    """
    return isinstance(module, torch.jit.ScriptModule)


def hookless_error(what: str = "the model", method: str | None = None) -> TypeError:
    """The one line for a model that cannot take the hooks a method needs (``method`` named first if given).

    >>> str(hookless_error(method="LRP")).split(":")[0]
    'LRP needs hooks, but the model is a TorchScript module, which takes no hooks'
    """
    return TypeError((f"{method} needs hooks, but " if method else "") + HOOKLESS.format(what=what))


def require_hooks(model: nn.Module, method: str) -> None:
    """Refuse a TorchScript model (or one holding a TorchScript part) for ``method`` before any work: for
    methods that would otherwise fail elsewhere first (a default-layer search, a model copy).

    >>> require_hooks(torch.nn.Linear(2, 1), "LRP")  # an eager model passes
    """
    model = getattr(model, "model", model) if not isinstance(model, nn.Module) else model
    if any(is_scripted(m) for m in model.modules()):
        raise hookless_error("the model" if is_scripted(model) else "a part of the model", method)


def _refuse_hookless(model: nn.Module, hooked: list[nn.Module], ruled: bool) -> None:
    # Rules must reach every module of their kind: one scripted submodule anywhere would silently
    # keep its plain backward (guided backprop equal to the gradient), so any is refused.
    scripted = [m for m in (model.modules() if ruled else hooked) if is_scripted(m)]
    if scripted:
        raise hookless_error("the model" if scripted[0] is model or is_scripted(model) else "a part of the model")


def _register(model: nn.Module, name: str, pairs: list) -> list:
    handles = []
    for register, hook in pairs:
        try:
            handles.append(register(hook))
        except RuntimeError as e:  # a module kind that refuses hooks without being a ScriptModule
            for h in handles:
                h.remove()
            raise hookless_error(f"layer {name!r}" if name else "the model") from e
    return handles


def _selectors(model: nn.Module, output: OutputSelector | Mapping[str, OutputSelector]) -> Callable[[str], OutputSelector]:
    """``layer name -> selector``: one selector given applies to every layer; a mapping names them (others: None)."""
    if isinstance(output, Mapping):
        for name in output:
            resolve_layer(model, name)  # an unknown name lists the closest
        return lambda name: output.get(name)
    return lambda name: output


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


def _capture_hook(rec: Recorder, name: str, detach: bool, strict: bool = True, selector: OutputSelector = None):
    what = f"layer {name!r}'s output"

    def hook(module, inputs, output):
        try:
            t, path = pick(output, selector, what=what)
        except (TypeError, ValueError):
            if not strict:
                return None
            raise
        rec.calls[name] += 1
        rec.order.append(name)
        if detach:
            t = t.detach()
        elif torch.is_grad_enabled() and not t.requires_grad and path is not None:
            # Parameters are frozen inside hooks(): a layer gradient must still be reachable
            # when the input does not require grad, so the capture becomes a graph leaf.
            t = t.detach().requires_grad_()
        rec.activations[name].append(t)
        if path is None:  # a callable computed a new tensor: recorded, the forward goes on unchanged
            return None
        # Downstream gets a copy: an inplace op there must not rewrite what we recorded.
        return put(output, path, t.clone())

    return hook


def _replace_hook(name: str, value: Replacement, selector: OutputSelector):
    what = f"layer {name!r}'s output"

    def hook(module, inputs, output):
        t, path = pick(output, selector, what=what)
        if path is None:
            raise TypeError(f"replace={{{name!r}: ...}} needs an output selector that returns one of the layer's own "
                            "tensors (a key or an index), not a computed one")
        new = value(t) if callable(value) and not isinstance(value, torch.Tensor) else value
        if not isinstance(new, torch.Tensor):
            raise TypeError(f"replace[{name!r}] must be a tensor or fn(output) -> tensor, got {type(new).__name__}")
        if new.shape != t.shape:
            raise ValueError(f"replace[{name!r}] has shape {tuple(new.shape)} but the layer's output is {tuple(t.shape)}; "
                             "give one value per sample of the batch being run")
        return put(output, path, new)

    return hook


def _attach_rule(module: nn.Module, rule: Rule, name: str = "", selector: OutputSelector = None) -> list:
    """``(register, hook)`` pairs that intercept ``module``'s backward with ``rule``; they work for repeated
    calls and inplace modules, and on tuple/dict outputs through ``selector``.

    One forward hook per module (the input read from the hook's ``inputs``); only an inplace module,
    which overwrites its input, also gets a pre-hook that keeps the input and hands the module a copy."""
    inplace = bool(getattr(module, "inplace", False))
    what = f"layer {name!r}'s output"
    if isinstance(rule, GradRule):
        def grad_hook(mod, inputs, output):
            y, path = pick(output, selector, what=what)
            if path is None:
                raise TypeError(f"a backward rule on {name!r} needs an output selector that returns one of its tensors")
            if torch.is_grad_enabled() and y.requires_grad:
                y.register_hook(lambda g: rule.fn(mod, g))  # lives with this pass's graph, not on the module
            return None

        return [(module.register_forward_hook, grad_hook)]

    def one_input(mod, inputs) -> torch.Tensor:
        if len(inputs) != 1 or not isinstance(inputs[0], torch.Tensor):
            raise TypeError(f"a backward rule needs a module with one tensor input; {type(mod).__name__} got {len(inputs)}")
        return inputs[0]

    def wrap(mod, x, output):
        y, path = pick(output, selector, what=what)
        if path is None:
            raise TypeError(f"a backward rule on {name!r} needs an output selector that returns one of its tensors")
        if not torch.is_grad_enabled() or not (x.requires_grad or y.requires_grad):
            if observe is not None:
                observe(mod, x, y)
            return None
        out = _RuleGrad.apply(x, y, mod, rule if bind is None else bind(mod, x, y))
        if observe is not None:
            observe(mod, x, out)
        return put(output, path, out)

    observe, bind = getattr(rule, "observe", None), getattr(rule, "bind", None)
    if not inplace:
        return [(module.register_forward_hook, lambda mod, inputs, output: wrap(mod, one_input(mod, inputs), output))]
    stash: list[torch.Tensor] = []

    def pre(mod, inputs):
        x = one_input(mod, inputs)
        stash.append(x)
        return (x.clone(),)  # the module would overwrite x, which the rule needs in the backward

    return [(module.register_forward_pre_hook, pre),
            (module.register_forward_hook, lambda mod, inputs, output: wrap(mod, stash.pop(), output))]
