"""Reading outputs: the one place that knows a model or a layer may return a tensor, a tuple, a dict,
a dataclass or a Hugging Face ``ModelOutput`` (docs/boundary.md, "Outputs").

Two readers share one selector language (``None``, a key or attribute name, an index, a callable):

* :func:`select_output` reads the *score* from a model's output (the boundary's ``output=``). Its
  default is a tensor as is, or the ``"logits"`` entry of a dict, dataclass or ``ModelOutput`` (a
  name, Hugging Face's convention); anything else — a tuple, a dict without ``"logits"`` — is one
  line asking for ``output=``: a model's tuple has no convention for where its scores are
  (``(logits, aux)``, ``(features, logits)``, ``(loss, logits)``), so no position is guessed.
* :func:`pick` and :func:`put` read a *layer's* output and put a changed tensor back (captures,
  backward rules, replacements in :func:`seethrough.hooks.hooks`). Their default is the first tensor
  of a tuple, list or dict (in its order): transformer blocks return ``(hidden, attentions, ...)``.

:func:`class_output` is the strict guard of the callers that still run ``model(x)`` themselves and
need a plain tensor (attacks, the CLI's probe): any other output is one ``TypeError`` with a hint.
"""
from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any, Callable

import torch

OutputSelector = None | str | int | Callable[[Any], torch.Tensor]
Path = tuple  # where a picked tensor lives in a structure: keys, indices or attribute names; () is the output itself

TARGET_HINT = "pass target=callable(output) -> (N,) scores, e.g. target=lambda out: {example}[:, 0]"
MODEL_HINT = "wrap the model so that its forward returns the (N, classes) score tensor (here perhaps {example})"
OUTPUT_HINT = "pass output={selector} (a key, an index or a callable output -> tensor) to say which entry is the score"
SCORE_NAMES = ("logits",)  # read by name when no selector is given


def select_output(output: Any, selector: OutputSelector = None, *, hint: str = OUTPUT_HINT,
                  names: tuple[str, ...] = SCORE_NAMES) -> torch.Tensor:
    """The score tensor of a model's output.

    ``None``: a tensor as is, or the ``"logits"`` entry (key or attribute) of a dict, dataclass or
    ``ModelOutput``; other outputs raise a ``TypeError`` that describes them and ends with ``hint``.
    A ``str``: that key or attribute; an ``int``: that index of a tuple or list; a callable:
    whatever it returns. A missing key is an error that lists the keys.

    >>> select_output({"logits": torch.ones(2, 5), "hidden": torch.zeros(2)}).shape
    torch.Size([2, 5])
    >>> select_output((torch.ones(2, 3), torch.zeros(2)), 0).shape
    torch.Size([2, 3])
    >>> select_output((torch.ones(2, 3), torch.zeros(2)))
    Traceback (most recent call last):
    ...
    TypeError: the model returns a tuple of 2 (shapes (2, 3), (2,)), not a tensor of class scores: pass output=0 (a key, an index or a callable output -> tensor) to say which entry is the score
    >>> select_output({"a": torch.ones(1)}, "b")
    Traceback (most recent call last):
    ...
    ValueError: the model's output has no 'b'; its keys are: a
    """
    if selector is None:
        if isinstance(output, torch.Tensor):
            return output
        for name in names:
            found = _lookup(output, name)
            if isinstance(found, torch.Tensor):
                return found
        raise TypeError(_not_scores(output, hint))
    out = _select(output, selector, "the model's output")
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the selected output is a {type(out).__name__}, not a tensor; the model returns {describe(output)}")
    return out


def class_output(output: Any, *, hint: str = TARGET_HINT) -> torch.Tensor:
    """``output`` itself when it is a tensor; otherwise a ``TypeError`` describing it, with ``hint``.

    The guard of callers that use the raw ``model(x)`` afterwards, so a dict is refused even with a
    ``"logits"`` entry (the boundary's :func:`select_output` reads that entry).

    >>> class_output(torch.zeros(2, 3)).shape
    torch.Size([2, 3])
    >>> class_output({"logits": torch.zeros(2, 3)})
    Traceback (most recent call last):
    ...
    TypeError: the model returns a dict with keys ['logits'] (shapes (2, 3)), not a tensor of class scores: pass target=callable(output) -> (N,) scores, e.g. target=lambda out: out['logits'][:, 0]
    """
    return select_output(output, None, hint=hint, names=())


def _not_scores(output: Any, hint: str) -> str:
    if isinstance(output, Mapping):
        keys = list(output)
        what = f"a {type(output).__name__} with keys {keys}" + _shapes(output.values())
        example, selector = (f"out[{keys[0]!r}]", repr(keys[0])) if keys else ("out[...]", "'<key>'")
    elif isinstance(output, (tuple, list)):
        what = f"a {type(output).__name__} of {len(output)}" + _shapes(output)
        first = next((i for i, o in enumerate(output) if isinstance(o, torch.Tensor)), 0)
        example, selector = f"out[{first}]", str(first)
    else:
        what, example, selector = f"a {type(output).__name__}", "out", "callable"
    return f"the model returns {what}, not a tensor of class scores: " + hint.format(example=example, selector=selector)


def _shapes(items) -> str:
    shapes = [tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__ for v in list(items)[:4]]
    return f" (shapes {', '.join(map(str, shapes))})" if shapes else ""


# ---------------------------------------------------------------------------------- layer outputs
def pick(output: Any, selector: OutputSelector = None, *, what: str = "the output") -> tuple[torch.Tensor, Path | None]:
    """``(tensor, path)``: the selected tensor of a layer's output and where it lives in it.

    ``None`` takes the tensor itself or the first tensor of a tuple, list or dict (in its order);
    a key, an index or a callable select as in :func:`select_output`. ``path`` is ``None`` when a
    callable computed a new tensor instead of returning one of the output's own.

    >>> t, path = pick((torch.ones(2, 4, 8), torch.zeros(2, 4, 4)))
    >>> t.shape, path
    (torch.Size([2, 4, 8]), (0,))
    >>> pick({"hidden": torch.ones(1), "attn": torch.zeros(1)}, "attn")[1]
    ('attn',)
    """
    if selector is None:
        found = _first_tensor(output)
        if found is None:
            raise TypeError(f"{what} is {describe(output)}, which holds no tensor; "
                            "pass an output selector (a key, an index or a callable output -> tensor)")
        return found
    t = _select(output, selector, what)
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"the selected part of {what} is a {type(t).__name__}, not a tensor; {what} is {describe(output)}")
    return t, locate(output, t)


def put(output: Any, path: Path, value: torch.Tensor) -> Any:
    """``output`` with the tensor at ``path`` replaced by ``value`` (a new structure; ``output`` unchanged).

    >>> put((torch.zeros(1), "x"), (0,), torch.ones(1))
    (tensor([1.]), 'x')
    """
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(output, Mapping):
        new = _copy_mapping(output)
        new[head] = put(output[head], rest, value)
        return new
    if isinstance(output, tuple) and hasattr(output, "_fields"):  # a namedtuple
        return output._replace(**{output._fields[head]: put(output[head], rest, value)})
    if isinstance(output, (tuple, list)):
        items = list(output)
        items[head] = put(items[head], rest, value)
        return type(output)(items)
    if dataclasses.is_dataclass(output):
        return dataclasses.replace(output, **{head: put(getattr(output, head), rest, value)})
    raise TypeError(f"cannot put a tensor back into a {type(output).__name__}")


def locate(output: Any, target: torch.Tensor) -> Path | None:
    """The path of ``target`` (by identity) inside ``output``, or ``None`` if it is not one of its tensors.

    >>> t = torch.ones(1)
    >>> locate({"a": (None, t)}, t), locate((t,), torch.ones(1))
    (('a', 1), None)
    """
    if output is target:
        return ()
    for key, item in _items(output):
        sub = locate(item, target)
        if sub is not None:
            return (key, *sub)
    return None


def _first_tensor(output: Any) -> tuple[torch.Tensor, Path] | None:
    if isinstance(output, torch.Tensor):
        return output, ()
    for key, item in _items(output):
        found = _first_tensor(item)
        if found is not None:
            return found[0], (key, *found[1])
    return None


def _items(output: Any) -> list[tuple[Any, Any]]:
    if isinstance(output, Mapping):
        return list(output.items())
    if isinstance(output, (tuple, list)):
        return list(enumerate(output))
    if dataclasses.is_dataclass(output) and not isinstance(output, type):
        return [(f.name, getattr(output, f.name)) for f in dataclasses.fields(output)]
    return []


def _copy_mapping(output: Mapping) -> Any:
    # A shallow copy keeps the type (dict, OrderedDict, a ModelOutput, whose __setitem__ also sets the
    # attribute); a Mapping that cannot be copied or assigned becomes a plain dict.
    try:
        new = copy.copy(output)
        new.__setitem__  # noqa: B018 - read-only Mappings have none
    except (TypeError, AttributeError):
        return dict(output)
    return new


# ---------------------------------------------------------------------------------- shared
def _select(output: Any, selector: OutputSelector, what: str) -> Any:
    if callable(selector):
        return selector(output)
    if isinstance(selector, str):
        return _by_key(output, selector, what)
    if isinstance(selector, int) and not isinstance(selector, bool):
        if not isinstance(output, (tuple, list)) or not -len(output) <= selector < len(output):
            raise ValueError(f"output={selector} needs a tuple output with that index; {what} is {describe(output)}")
        return output[selector]
    raise TypeError(f"output must be None, a key name, an index or a callable, got {type(selector).__name__}")


def _lookup(output: Any, key: str) -> Any:
    if isinstance(output, Mapping):
        return output.get(key)
    if isinstance(output, (tuple, list, torch.Tensor)):
        return None
    return getattr(output, key, None)


def _by_key(output: Any, key: str, what: str) -> Any:
    if isinstance(output, Mapping):
        if key in output:
            return output[key]
        raise ValueError(f"{what} has no {key!r}; its keys are: {', '.join(map(str, output))}")
    if not isinstance(output, (tuple, list, torch.Tensor)) and hasattr(output, key):
        return getattr(output, key)
    raise ValueError(f"{what} has no {key!r}; it is {describe(output)}")


def describe(output: Any) -> str:
    """A short description of an output: its type, keys or length, and shapes.

    >>> describe((torch.zeros(2, 3), None))
    'a tuple of 2 (shapes (2, 3), NoneType)'
    """
    if isinstance(output, torch.Tensor):
        return f"a tensor of shape {tuple(output.shape)}"
    if isinstance(output, Mapping):
        return f"a {type(output).__name__} with keys {list(output)}"
    if isinstance(output, (tuple, list)):
        return f"a {type(output).__name__} of {len(output)}" + _shapes(output)
    return f"a {type(output).__name__}"


def batch_len(output: Any) -> int | None:
    """The batch size of an output: the first dimension of its first tensor (``None`` without one).

    >>> batch_len((torch.zeros(5, 2), torch.zeros(5)))
    5
    """
    if isinstance(output, torch.Tensor):
        return output.shape[0] if output.dim() else None
    items = output.values() if isinstance(output, Mapping) else output if isinstance(output, (tuple, list)) else ()
    for v in items:
        n = batch_len(v)
        if n is not None:
            return n
    return None


def detach(output: Any) -> Any:
    """``output`` with every tensor in it detached (tensors, and tuples, lists and dicts of them).

    >>> detach({"a": torch.ones(1, requires_grad=True)})["a"].requires_grad
    False
    """
    return _map(lambda t: t.detach(), output)


def rows(output: Any, stop: int) -> Any:
    """The first ``stop`` samples of an output: every tensor in it sliced ``[:stop]`` (the clean half of
    a batch that also holds baselines).

    >>> rows((torch.arange(4), {"b": torch.zeros(4, 2)}), 2)[1]["b"].shape
    torch.Size([2, 2])
    """
    return _map(lambda t: t[:stop] if t.dim() else t, output)


def _map(fn, output: Any) -> Any:
    if isinstance(output, torch.Tensor):
        return fn(output)
    if isinstance(output, Mapping):
        items = {k: _map(fn, v) for k, v in output.items()}
        try:
            return type(output)(items)
        except TypeError:  # a Mapping subclass without a dict constructor
            return items
    if isinstance(output, tuple) and hasattr(output, "_fields"):  # a namedtuple
        return type(output)(*(_map(fn, v) for v in output))
    if isinstance(output, (tuple, list)):
        return type(output)(_map(fn, v) for v in output)
    return output
