"""What to maximise: small composable objectives (Lucent-style), one score per image.

An :class:`Objective` maps what a forward pass produced - the captured layer outputs and
the model output - to a ``(N,)`` tensor of scores, one per image of the batch. Objectives
combine by ``+``, ``-`` and scaling, and :func:`parse` reads the CLI's string form
(``"logit:285"``, ``"channel:blocks.10:17"``, ``"layer:blocks.4 - 0.5*diversity:blocks.4"``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch

# (activations by layer name, model output) -> (N,) scores
ScoreFn = Callable[[Mapping[str, torch.Tensor], torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Objective:
    """A scalar-per-image objective; ``layers`` are the layer outputs it reads.

    >>> obj = logit(3) - 0.5 * logit(1)
    >>> obj.score({}, torch.tensor([[0.0, 2.0, 0.0, 5.0]])).tolist()
    [4.0]
    >>> obj.name
    'logit:3 - 0.5*logit:1'
    """

    fn: ScoreFn
    name: str
    layers: tuple[str, ...] = ()

    def score(self, acts: Mapping[str, torch.Tensor], output: torch.Tensor) -> torch.Tensor:
        return self.fn(acts, output)

    def __add__(self, other: "Objective") -> "Objective":
        other = _as_objective(other)
        name = f"{self.name} - {other.name[1:]}" if other.name.startswith("-") else f"{self.name} + {other.name}"
        return Objective(lambda a, o: self.fn(a, o) + other.fn(a, o), name, _union(self, other))

    def __sub__(self, other: "Objective") -> "Objective":
        return self + (-1.0) * _as_objective(other)

    def __neg__(self) -> "Objective":
        return (-1.0) * self

    def __mul__(self, k: float) -> "Objective":
        if isinstance(k, bool) or not isinstance(k, (int, float)):
            raise TypeError(f"an objective is scaled by a number, got {type(k).__name__}")
        k = float(k)
        name = self.name if k == 1 else f"-{self.name}" if k == -1 else f"{k:g}*{self.name}"
        return Objective(lambda a, o: k * self.fn(a, o), name, self.layers)

    __rmul__ = __mul__


def _as_objective(obj: object) -> Objective:
    if isinstance(obj, Objective):
        return obj
    if isinstance(obj, str):
        return parse(obj)
    raise TypeError(f"expected an Objective or an objective string such as 'logit:285', got {type(obj).__name__}")


def _union(*objs: Objective) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n for o in objs for n in o.layers))


def _act(acts: Mapping[str, torch.Tensor], layer: str) -> torch.Tensor:
    return acts[layer]


def _check_channel(h: torch.Tensor, layer: str, channel: int) -> None:
    if h.dim() < 2:
        raise ValueError(f"layer {layer!r} outputs shape {tuple(h.shape)}; a channel objective needs (N, C, …)")
    if not 0 <= channel < h.shape[1]:
        raise ValueError(f"channel {channel} is out of range: layer {layer!r} has {h.shape[1]} channels (0..{h.shape[1] - 1})")


def _check_class(output: torch.Tensor, c: int) -> None:
    if output.dim() != 2:
        raise ValueError(f"a class objective needs a model output (N, classes), got {tuple(output.shape)}")
    if not 0 <= c < output.shape[1]:
        raise ValueError(f"class {c} is out of range: the model has {output.shape[1]} classes (0..{output.shape[1] - 1})")


def _index(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    return value


def logit(c: int) -> Objective:
    """The class logit ``output[:, c]`` (Simonyan et al.'s class model score).

    >>> logit(1).score({}, torch.tensor([[1.0, 7.0]])).tolist()
    [7.0]
    """
    c = _index(c, "class")

    def fn(acts, out):
        _check_class(out, c)
        return out[:, c]

    return Objective(fn, f"logit:{c}")


def log_prob(c: int) -> Objective:
    """The class log-probability ``log_softmax(output)[:, c]``: raising it also lowers the other classes.

    >>> round(log_prob(0).score({}, torch.tensor([[0.0, 0.0]])).item(), 4)
    -0.6931
    """
    c = _index(c, "class")

    def fn(acts, out):
        _check_class(out, c)
        return torch.log_softmax(out, dim=1)[:, c]

    return Objective(fn, f"logprob:{c}")


def neuron(layer: str, channel: int, y: int | None = None, x: int | None = None) -> Objective:
    """One unit: ``h[:, channel, y, x]`` (the centre when ``y``/``x`` are None); on a layer
    without spatial extent (``(N, C)``) it is ``h[:, channel]`` and ``y``/``x`` must be None.

    >>> h = torch.arange(18.0).view(1, 2, 3, 3)
    >>> neuron("l", 1, 0, 2).score({"l": h}, None).tolist()
    [11.0]
    >>> neuron("l", 1).score({"l": h}, None).tolist()
    [13.0]
    """
    channel = _index(channel, "channel")
    pos = (y, x)
    for v in pos:
        if v is not None:
            _index(v, "neuron position")

    def fn(acts, out):
        h = _act(acts, layer)
        _check_channel(h, layer, channel)
        if h.dim() == 2:
            if pos != (None, None):
                raise ValueError(f"layer {layer!r} has no spatial extent (output {tuple(h.shape)}); "
                                 f"drop the position: neuron({layer!r}, {channel})")
            return h[:, channel]
        if h.dim() != 4:
            raise ValueError(f"a neuron objective needs layer output (N, C) or (N, C, H, W); {layer!r} gives {tuple(h.shape)}")
        hh, ww = h.shape[2:]
        yy = hh // 2 if y is None else y
        xx = ww // 2 if x is None else x
        if not (0 <= yy < hh and 0 <= xx < ww):
            raise ValueError(f"neuron position (y={yy}, x={xx}) is outside layer {layer!r}'s {hh}×{ww} map")
        return h[:, channel, yy, xx]

    where = "" if pos == (None, None) else f":{y}:{x}"
    return Objective(fn, f"neuron:{layer}:{channel}{where}", (layer,))


def channel(layer: str, channel: int) -> Objective:
    """The mean of one channel's map, ``h[:, channel].mean()`` per image.

    >>> h = torch.arange(8.0).view(1, 2, 2, 2)
    >>> channel("l", 1).score({"l": h}, None).tolist()
    [5.5]
    """
    ch = _index(channel, "channel")

    def fn(acts, out):
        h = _act(acts, layer)
        _check_channel(h, layer, ch)
        return h[:, ch].reshape(h.shape[0], -1).mean(1)

    return Objective(fn, f"channel:{layer}:{ch}", (layer,))


def layer_l2(layer: str) -> Objective:
    """DeepDream's objective: the mean square of the whole layer, ``mean(h²)`` per image
    (its gradient with respect to ``h`` is ``h`` up to a constant).

    >>> layer_l2("l").score({"l": torch.tensor([[1.0, 3.0]])}, None).tolist()
    [5.0]
    """
    return Objective(lambda acts, out: _act(acts, layer).pow(2).flatten(1).mean(1), f"layer:{layer}", (layer,))


def direction(layer: str, vector: Sequence[float] | torch.Tensor) -> Objective:
    """A direction ``v`` in the layer's activation space: ``⟨h, v⟩ / ‖v‖`` averaged over positions.

    >>> h = torch.tensor([[[[1.0]], [[2.0]]]])   # (1, 2, 1, 1)
    >>> direction("l", [3.0, 4.0]).score({"l": h}, None).tolist()
    [2.200000047683716]
    """
    v = torch.as_tensor(vector, dtype=torch.float32).flatten()
    norm = v.norm()
    if v.numel() == 0 or not torch.isfinite(v).all() or norm == 0:
        raise ValueError("direction needs a non-zero, finite vector with one entry per channel")
    v = v / norm

    def fn(acts, out):
        h = _act(acts, layer)
        if h.dim() < 2 or h.shape[1] != v.numel():
            raise ValueError(f"direction has {v.numel()} entries but layer {layer!r} has {h.shape[1] if h.dim() > 1 else 0} channels")
        w = v.to(h.device, h.dtype).view(1, -1, *([1] * (h.dim() - 2)))
        return (h * w).sum(1).reshape(h.shape[0], -1).mean(1)

    return Objective(fn, f"direction:{layer}", (layer,))


def diversity(layer: str) -> Objective:
    """Minus the mean cosine similarity of each image's Gram matrix with the others' at ``layer``
    (Olah et al. 2017): added with a weight, it pushes a batch apart. Zero for one image.

    >>> h = torch.tensor([[[[1.0]], [[0.0]]], [[[0.0]], [[1.0]]]])   # two orthogonal images
    >>> diversity("l").score({"l": h}, None).tolist()
    [-0.0, -0.0]
    """

    def fn(acts, out):
        h = _act(acts, layer)
        n = h.shape[0]
        if n < 2:
            return h.new_zeros(n)
        f = h.reshape(n, h.shape[1], -1)
        gram = torch.nn.functional.normalize((f @ f.transpose(1, 2)).reshape(n, -1), dim=1)
        sim = gram @ gram.T
        return -(sim.sum(1) - sim.diagonal()) / (n - 1)

    return Objective(fn, f"diversity:{layer}", (layer,))


def stack(objectives: Sequence[Objective | str]) -> Objective:
    """One objective per image: image ``i`` of the batch maximises ``objectives[i]``.

    >>> s = stack([logit(0), logit(1)])
    >>> s.score({}, torch.tensor([[1.0, 2.0], [3.0, 4.0]])).tolist()
    [1.0, 4.0]
    """
    objs = [_as_objective(o) for o in objectives]
    if not objs:
        raise ValueError("stack needs at least one objective")

    def fn(acts, out):
        n = out.shape[0] if out is not None else next(iter(acts.values())).shape[0]
        if n % len(objs):
            raise ValueError(f"a batch of {n} images cannot be split among {len(objs)} objectives")
        per = n // len(objs)
        return torch.cat([o.fn(acts, out)[i * per:(i + 1) * per] for i, o in enumerate(objs)])

    return Objective(fn, " | ".join(o.name for o in objs), _union(*objs))


_KINDS = {
    "logit": (logit, (int,)),
    "logprob": (log_prob, (int,)),
    "neuron": (neuron, (str, int, int, int)),
    "channel": (channel, (str, int)),
    "layer": (layer_l2, (str,)),
    "diversity": (diversity, (str,)),
    "direction": (direction, (str, "vector")),
}
_TERM = re.compile(r"^\s*(?:([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*\*\s*)?([a-z]+):(.+?)\s*$", re.IGNORECASE)
_FORMS = ("logit:C", "logprob:C", "channel:LAYER:C", "neuron:LAYER:C[:Y:X]", "layer:LAYER",
          "direction:LAYER:v1,v2,…", "diversity:LAYER")


def parse(text: str) -> Objective:
    """Read an objective from its string form; terms combine with ``+``/``-`` and ``k*``.

    >>> parse("channel:blocks.10:17 - 0.5*diversity:blocks.10").name
    'channel:blocks.10:17 - 0.5*diversity:blocks.10'
    >>> parse("logit:285").score({}, torch.zeros(1, 1000)).shape
    torch.Size([1])
    """
    if isinstance(text, Objective):
        return text
    if not isinstance(text, str) or not text.strip():
        raise TypeError(f"an objective string such as 'logit:285' is needed, got {text!r}")
    # Split on + / - only where they start a new term ("a:1 - 2*b:x"), so layer names keep their dashes.
    pieces = re.split(r"\s+([+-])\s+", " " + text.strip())
    total: Objective | None = None
    sign = 1.0
    for i, piece in enumerate(pieces):
        if i % 2 == 1:
            sign = 1.0 if piece == "+" else -1.0
            continue
        piece = piece.strip()
        if piece.startswith("-"):
            sign, piece = -sign, piece[1:].strip()
        term = _parse_term(piece, text)
        term = term if sign == 1.0 else -1.0 * term
        total = term if total is None else total + term
    return total


def _parse_term(piece: str, whole: str) -> Objective:
    m = _TERM.match(piece)
    if not m or m.group(2).lower() not in _KINDS:
        raise ValueError(f"cannot parse objective {piece!r} in {whole!r}; use one of: {', '.join(_FORMS)}")
    weight, kind, rest = m.group(1), m.group(2).lower(), m.group(3)
    fn, types = _KINDS[kind]
    if types[0] is str:
        # The layer name may itself contain ':'-free dots; the numeric fields come last.
        parts = rest.rsplit(":", len(types) - 1) if len(types) > 1 else [rest]
        layer, args = parts[0], parts[1:]
    else:
        layer, args = None, rest.split(":")
    if kind == "neuron" and len(args) not in (1, 3):
        raise ValueError(f"neuron takes LAYER:C or LAYER:C:Y:X, got {piece!r}")
    if kind != "neuron" and len(args) != len(types) - (types[0] is str):
        raise ValueError(f"cannot parse objective {piece!r}; expected {next(f for f in _FORMS if f.startswith(kind + ':'))}")
    try:
        if kind == "direction":
            values = [float(v) for v in args[0].split(",")]
            obj = fn(layer, values)
        else:
            ints = [int(a) for a in args]
            obj = fn(*([layer] if layer is not None else []), *ints)
    except ValueError as e:
        if "invalid literal" in str(e) or "could not convert" in str(e):
            raise ValueError(f"cannot parse objective {piece!r}: expected integers (floats for direction) after the layer") from None
        raise
    return obj if weight is None else float(weight) * obj
