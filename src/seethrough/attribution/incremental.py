"""Incremental occlusion (Krypton: Nakandala, Kumar & Papakonstantinou, SIGMOD 2019).

An occluding patch changes only a small box of each early feature map. The clean image's
activations are computed once per image (cached); for every patch, each conv / pool / pointwise
layer recomputes only its *update box*: the patch's box propagated through the layer's kernel,
stride and padding. The input of that computation is read from the cached clean activations with
the previous layer's update box spliced in (:func:`_window`), so the result equals the dense
forward wherever it is computed, and outside the box the cache is already right. Patches are
batched: for a fixed window every patch's box has the same size at every layer (boxes at the
border are shifted inward, which keeps them covering every changed position).

The model is traced with ``torch.fx``. A box that grows to the whole map, a global pool, a
flatten, a linear layer or any op not handled here turns that node *dense*: the full map of every
patch is assembled (cache + box) and the rest runs as the model itself would, on the batch. Ops the
engine does not know (a custom module, ``AvgPool2d`` with padding, …) therefore still work; they
are listed in :attr:`Plan.fallback`. A model fx cannot trace runs as dense occlusion (``Plan.reason``).

Approximate mode (``projection=τ``, the paper's projective-field threshold): an update box may not
grow past ``ceil(τ·size)`` of its map on each axis; it is centred on its exact box and the changes
that fall outside are dropped (read from the cache). ``τ = 1`` is exact.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import fx, nn
from torch.nn import functional as F

# Modules that act on each position alone: a box in, the same box out.
_POINTWISE_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.SiLU, nn.GELU,
                      nn.Hardswish, nn.Hardsigmoid, nn.ELU, nn.Identity, nn.Dropout, nn.BatchNorm2d)
_POINTWISE_FUNCTIONS = {torch.relu, F.relu, F.relu6, torch.sigmoid, torch.tanh, F.silu, F.gelu, F.hardtanh,
                        operator.add, operator.sub, operator.mul, operator.truediv, torch.add, torch.sub, torch.mul}
_POINTWISE_METHODS = {"relu", "sigmoid", "tanh", "add", "sub", "mul", "div", "clamp"}


def _extra_leaves() -> tuple[type, ...]:
    # Imported late: the zoo is not a dependency of the attribution package, only known to it.
    from ..zoo.efficientnet import SameConv2d
    from ..zoo.normalize import Normalize

    return SameConv2d, Normalize


@dataclass
class Plan:
    """How the engine ran a model: ``incremental`` nodes computed on update boxes, ``dense`` nodes
    computed in full per patch, ``fallback`` the nodes that went dense only because the engine has
    no rule for them (``reason`` says why nothing ran incrementally, if so)."""

    incremental: list[str] = field(default_factory=list)
    dense: list[str] = field(default_factory=list)
    fallback: list[str] = field(default_factory=list)
    reason: str | None = None


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, _extra_leaves()) or super().is_leaf_module(m, qualname)


def trace(model: nn.Module) -> tuple[fx.Graph | None, str | None]:
    """The model's fx graph, or ``(None, why)`` when it cannot be traced.

    >>> g, why = trace(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()))
    >>> [n.op for n in g.nodes], why
    (['placeholder', 'call_module', 'call_module', 'output'], None)
    """
    try:
        return _Tracer().trace(model), None
    except Exception as e:  # noqa: BLE001 - any trace failure means: run dense
        return None, f"torch.fx cannot trace the model ({type(e).__name__}: {str(e).splitlines()[0][:120]})"


@dataclass
class _Tile:
    """A node's value for a batch of patches: the cached clean map with ``tile`` at (top, left)."""

    tile: torch.Tensor  # (B, C, h, w)
    top: torch.Tensor  # (B,) rows
    left: torch.Tensor  # (B,) columns


@dataclass
class _Full:
    value: Any  # the node's full value for the batch (B, ...)


def _clean_pass(model: nn.Module, graph: fx.Graph, x: torch.Tensor) -> dict[fx.Node, Any]:
    """Every node's value on the clean images (the cache), by running the graph node by node."""
    gm = fx.GraphModule(model, graph)
    values: dict[fx.Node, Any] = {}

    class _Record(fx.Interpreter):
        def run_node(self, n: fx.Node) -> Any:
            out = super().run_node(n)
            values[n] = out
            return out

    _Record(gm).run(x)
    return values


def _depends(graph: fx.Graph) -> set[fx.Node]:
    """Nodes whose value depends on the input (the others are the same for every patch)."""
    dep: set[fx.Node] = set()
    for n in graph.nodes:
        if n.op == "placeholder" or any(a in dep for a in n.all_input_nodes):
            dep.add(n)
    return dep


def _fit(top: torch.Tensor, size: int, n: int) -> tuple[torch.Tensor, int]:
    """A box of ``size`` at ``top`` moved inside ``[0, n)`` (it still covers the in-map changes)."""
    size = min(size, n)
    return top.clamp(0, n - size), size


def _grow(top: torch.Tensor, size: int, k: int, s: int, d: int, pad: int, n_out: int,
          tau: float | None) -> tuple[torch.Tensor, int]:
    """The output rows a sliding window layer changes when input rows [top, top+size) change."""
    a = top + pad - (k - 1) * d
    new_top = -torch.div(-a, s, rounding_mode="floor")  # ceil(a / s)
    new_size = (size - 1 + (k - 1) * d) // s + 1
    if tau is not None and new_size > (cap := max(1, math.ceil(tau * n_out))):
        new_top, new_size = new_top + (new_size - cap) // 2, cap
    return _fit(new_top, new_size, n_out)


def _window(cache: torch.Tensor, state: _Tile | None, img: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
            h: int, w: int, fill: float) -> torch.Tensor:
    """Rows top..top+h, columns left..left+w of every patch's map ``(B, C, h, w)``: the tile where it
    lies, the cached clean map elsewhere, ``fill`` outside the map (the layer's padding).

    ``cache`` is channels-last ``(N, H, W, C)`` so that each gathered position reads C contiguous values.
    """
    hh, ww = cache.shape[1:3]
    rows = top[:, None] + torch.arange(h, device=top.device)
    cols = left[:, None] + torch.arange(w, device=top.device)
    out = cache[img[:, None, None], rows.clamp(0, hh - 1)[:, :, None], cols.clamp(0, ww - 1)[:, None, :]]
    if state is not None and (fast := _same_offset(state, top, left, h, w)) is not None:
        y0, x0 = fast  # away from the borders every patch's tile sits at the same place: a slice copy
        th, tw = state.tile.shape[2:]
        out[:, y0:y0 + th, x0:x0 + tw] = state.tile.permute(0, 2, 3, 1)
    elif state is not None:
        th, tw = state.tile.shape[2:]
        yr, xc = rows - state.top[:, None], cols - state.left[:, None]
        inside = (((yr >= 0) & (yr < th))[:, :, None] & ((xc >= 0) & (xc < tw))[:, None, :])
        t = state.tile.permute(0, 2, 3, 1)
        b = torch.arange(len(img), device=top.device)[:, None, None]
        out = torch.where(inside[..., None], t[b, yr.clamp(0, th - 1)[:, :, None], xc.clamp(0, tw - 1)[:, None, :]], out)
    inmap = ((rows >= 0) & (rows < hh))[:, :, None] & ((cols >= 0) & (cols < ww))[:, None, :]
    if not bool(inmap.all()):
        out = out.masked_fill(~inmap[..., None], fill)
    return out.permute(0, 3, 1, 2)


def _same_offset(state: _Tile, top: torch.Tensor, left: torch.Tensor, h: int, w: int) -> tuple[int, int] | None:
    """The tile's offset in the window when it is the same for every patch and the tile lies inside."""
    dy, dx = state.top - top, state.left - left
    y0, x0 = int(dy[0]), int(dx[0])
    th, tw = state.tile.shape[2:]
    if y0 < 0 or x0 < 0 or y0 + th > h or x0 + tw > w or bool((dy != y0).any()) or bool((dx != x0).any()):
        return None
    return y0, x0


def _sliding(m: nn.Module, in_shape: torch.Size) -> tuple[tuple, tuple, tuple, tuple, float, Callable] | None:
    """(kernel, stride, dilation, padding-before per axis, fill, op on an unpadded window) of a
    conv / pool module, or None when the engine has no exact rule for it."""
    pair = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v)  # noqa: E731
    same_conv = _extra_leaves()[0]
    if isinstance(m, nn.Conv2d) and (type(m) is nn.Conv2d or type(m) is same_conv) and m.padding_mode == "zeros":
        k, s, d = m.kernel_size, m.stride, m.dilation
        if type(m) is same_conv:  # TF "SAME": the padding depends on the input size (SameConv2d.forward)
            pads = tuple(max((math.ceil(n / st) - 1) * st + (kk - 1) * dd + 1 - n, 0) // 2
                         for n, kk, st, dd in zip(in_shape[-2:], k, s, d))
        elif m.padding == "same":
            pads = tuple(dd * (kk - 1) // 2 for kk, dd in zip(k, d))
        elif m.padding == "valid":
            pads = (0, 0)
        else:
            pads = pair(m.padding)
        op = lambda t: F.conv2d(t, m.weight, m.bias, s, 0, d, m.groups)  # noqa: E731
        return k, s, d, pads, 0.0, op
    if type(m) is nn.MaxPool2d and not m.return_indices:
        k, d, p = pair(m.kernel_size), pair(m.dilation), pair(m.padding)
        s = pair(m.stride if m.stride is not None else m.kernel_size)
        return k, s, d, p, -math.inf, lambda t: F.max_pool2d(t, k, s, 0, d, ceil_mode=m.ceil_mode)
    if type(m) is nn.AvgPool2d and m.padding in (0, (0, 0)) and not m.ceil_mode and m.divisor_override is None:
        k = pair(m.kernel_size)
        s = pair(m.stride if m.stride is not None else m.kernel_size)
        return k, s, (1, 1), (0, 0), 0.0, lambda t: F.avg_pool2d(t, k, s)
    return None


class Engine:
    """Scores of occluded copies computed incrementally; built once per call (graph + clean cache)."""

    def __init__(self, model: nn.Module, graph: fx.Graph, x: torch.Tensor, projection: float | None = None):
        self.model, self.graph, self.tau = model, graph, projection
        self.clean = _clean_pass(model, graph, x)
        self.dep = _depends(graph)
        # Channels-last caches of every 4-d map that depends on the input (read by _window).
        self.cache = {n: v.permute(0, 2, 3, 1).contiguous() for n, v in self.clean.items()
                      if n in self.dep and isinstance(v, torch.Tensor) and v.dim() == 4}
        self.plan = Plan()

    def _full(self, n: fx.Node, v: Any, img: torch.Tensor) -> Any:
        """A node's value for the batch as the model sees it (assembling the map from cache + tile)."""
        if isinstance(v, _Full):
            return v.value
        if not isinstance(v, _Tile):
            return v
        full = self.cache[n][img]  # a copy (advanced indexing)
        th, tw = v.tile.shape[2:]
        rows = v.top[:, None] + torch.arange(th, device=img.device)
        cols = v.left[:, None] + torch.arange(tw, device=img.device)
        b = torch.arange(len(img), device=img.device)[:, None, None]
        full[b, rows[:, :, None], cols[:, None, :]] = v.tile.permute(0, 2, 3, 1)
        return full.permute(0, 3, 1, 2)

    def _note(self, n: fx.Node, where: str, fallback: bool = False) -> None:
        if n.name not in self.plan.incremental and n.name not in self.plan.dense:
            getattr(self.plan, where).append(n.name)
            if fallback:
                self.plan.fallback.append(n.name)

    def run(self, img: torch.Tensor, top: torch.Tensor, left: torch.Tensor, patch: torch.Tensor) -> Any:
        """The model's output for the images ``img`` with ``patch`` (B, C, h, w) pasted at (top, left)."""
        env: dict[fx.Node, Any] = {}
        for n in self.graph.nodes:
            if n.op == "placeholder":
                env[n] = _Tile(patch, top, left)
                continue
            if n.op == "output":
                return fx.node.map_arg(n.args[0], lambda a: self._full(a, env[a], img))
            if n not in self.dep:
                env[n] = self.clean[n]
                continue
            env[n] = self._step(n, env, img)
        raise ValueError("the traced graph has no output")

    def _step(self, n: fx.Node, env: dict, img: torch.Tensor) -> Any:
        args = [a for a in n.all_input_nodes if a in self.dep]
        tiles = [a for a in args if isinstance(env[a], _Tile)]
        rule = self._rule(n, env, tiles) if tiles else None
        if rule is not None and len(tiles) == len(args):
            out = rule(img)
            if out is not None:
                self._note(n, "incremental")
                return out
        if tiles:  # no box rule here, a box filled the map, or an operand is dense: dense from here on
            self._note(n, "dense", fallback=rule is None and not self._expected_dense(n))
        a = fx.node.map_arg(n.args, lambda v: self._full(v, env[v], img) if v in env else self.clean[v])
        kw = fx.node.map_arg(n.kwargs, lambda v: self._full(v, env[v], img) if v in env else self.clean[v])
        if n.op == "call_module":
            return _Full(self.model.get_submodule(n.target)(*a, **kw))
        if n.op == "call_function":
            return _Full(n.target(*a, **kw))
        if n.op == "call_method":
            return _Full(getattr(a[0], n.target)(*a[1:], **kw))
        return _Full(self.clean[n])

    def _expected_dense(self, n: fx.Node) -> bool:
        """Global pooling, flattening and linear layers are dense by design, not a fallback."""
        if n.op == "call_module":
            return isinstance(self.model.get_submodule(n.target), (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d,
                                                                    nn.Flatten, nn.Linear))
        return n.target in (torch.flatten, F.adaptive_avg_pool2d, F.linear, "flatten", "view", "reshape", "mean")

    def _rule(self, n: fx.Node, env: dict, tiles: list[fx.Node]) -> Callable | None:
        """The box computation for node ``n`` (a function of the batch's images), or None."""
        src = tiles[0]
        if src not in self.cache or n not in self.cache:
            return None
        if n.op == "call_module":
            m = self.model.get_submodule(n.target)
            if isinstance(m, _POINTWISE_MODULES + (_extra_leaves()[1],)) and len(n.args) == 1 and not n.kwargs:
                return lambda img: _Tile(m(env[src].tile), env[src].top, env[src].left)
            geo = _sliding(m, self.clean[src].shape) if len(n.args) == 1 and not n.kwargs else None
            if geo is None:
                return None
            return lambda img: self._slide(n, src, env[src], img, *geo)
        pointwise = (n.op == "call_function" and n.target in _POINTWISE_FUNCTIONS) or (
            n.op == "call_method" and n.target in _POINTWISE_METHODS)
        if not pointwise:
            return None
        consts = [a for a in n.all_input_nodes if a not in self.dep]
        if any(isinstance(self.clean[a], torch.Tensor) and self.clean[a].dim() >= 2
               and self.clean[a].shape[-2:].numel() > 1 for a in consts):
            return None  # a constant with spatial extent does not broadcast onto a box
        if any(self.clean[a].shape != self.clean[n].shape for a in tiles):
            return None  # broadcasting between maps of different sizes: not a box op
        return lambda img: self._pointwise(n, tiles, env, img)

    def _slide(self, n, src, v: _Tile, img, k, s, d, pads, fill, op) -> _Tile | None:
        n_out = self.clean[n].shape[-2:]
        (top, h), (left, w) = (_grow(t, size, k[i], s[i], d[i], pads[i], n_out[i], self.tau)
                               for i, (t, size) in enumerate(((v.top, v.tile.shape[2]), (v.left, v.tile.shape[3]))))
        if h == n_out[0] and w == n_out[1]:
            return None  # the box is the whole map: the dense op is cheaper than gathering
        hi, wi = (h - 1) * s[0] + (k[0] - 1) * d[0] + 1, (w - 1) * s[1] + (k[1] - 1) * d[1] + 1
        win = _window(self.cache[src], v, img, top * s[0] - pads[0], left * s[1] - pads[1], hi, wi, fill)
        return _Tile(op(win), top, left)

    def _pointwise(self, n, tiles, env, img) -> _Tile:
        hw = self.clean[n].shape[-2:]
        if len(tiles) == 1:
            v = env[tiles[0]]
            top, left, (h, w) = v.top, v.left, v.tile.shape[2:]
        else:  # the union of the operands' boxes
            vs = [env[a] for a in tiles]
            top = torch.stack([u.top for u in vs]).min(0).values
            left = torch.stack([u.left for u in vs]).min(0).values
            h = int((torch.stack([u.top + u.tile.shape[2] for u in vs]).max(0).values - top).max())
            w = int((torch.stack([u.left + u.tile.shape[3] for u in vs]).max(0).values - left).max())
            (top, h), (left, w) = _fit(top, h, hw[0]), _fit(left, w, hw[1])
        boxes = {a: (env[a].tile if len(tiles) == 1 else _window(self.cache[a], env[a], img, top, left, h, w, 0.0))
                 for a in tiles}
        val = lambda a: boxes[a] if a in boxes else self.clean[a]  # noqa: E731
        a, kw = fx.node.map_arg(n.args, val), fx.node.map_arg(n.kwargs, val)
        if n.op == "call_module":
            out = self.model.get_submodule(n.target)(*a, **kw)
        elif n.op == "call_function":
            out = n.target(*a, **kw)
        else:
            out = getattr(a[0], n.target)(*a[1:], **kw)
        return _Tile(out, top, left)


def incremental_scores(model: Any, x: torch.Tensor, target: Any, indices: torch.Tensor | None,
                       corners: list[tuple[int, int]], window: tuple[int, int], baseline: torch.Tensor, *,
                       score: str | None, projection: float | None = None, batch_size: int | str = "auto",
                       memory_budget: int | None = None, progress: bool = True) -> tuple[list[torch.Tensor] | None, Plan]:
    """The score of every (image, window) occluded copy, computed incrementally: one ``(windows,)``
    tensor per image, and the :class:`Plan` it ran. Returns ``None`` scores with the plan's reason
    when the model cannot run incrementally (the caller then runs dense occlusion).

    >>> net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 36, 3))
    >>> x = torch.rand(1, 1, 6, 6)
    >>> s, plan = incremental_scores(net, x, 0, torch.tensor([0]), [(0, 0), (2, 3)], (2, 2), torch.zeros_like(x),
    ...                              score="logit", progress=False)
    >>> x2 = x.clone(); x2[..., 2:4, 3:5] = 0
    >>> torch.allclose(s[0][1], net(x2)[0, 0], atol=1e-6), plan.incremental, plan.fallback
    (True, ['_0', '_1'], [])
    """
    from ..batching import bytes_per_item, run_batched
    from ..boundary import as_boundary
    from ..hooks import hooks
    from ..runner import fast
    from .masking import read_scores

    b = as_boundary(model, x)
    if b.extra or b.static:
        return None, Plan(reason="the model takes extra forward arguments")
    graph, why = trace(b.model)
    if graph is not None and sum(n.op == "placeholder" for n in graph.nodes) != 1:
        graph, why = None, "the model's forward takes more than the image"  # the patch would reach every input
    if graph is None:
        return None, Plan(reason=why)
    (wh, ww), n_img, n_pos = window, x.shape[0], len(corners)
    tops = torch.tensor([r for r, _ in corners], device=x.device)
    lefts = torch.tensor([c for _, c in corners], device=x.device)
    with hooks(b.model, detach=True), torch.no_grad(), fast(b.model, x, "forward", key_mode="forward-incremental") as run:
        engine = Engine(b.model, graph, run.input(x), projection)

        def evaluate(start: int, stop: int) -> torch.Tensor:
            item = torch.arange(start, stop, device=x.device)
            img, pos = item // n_pos, item % n_pos
            top, left = tops[pos], lefts[pos]
            rows = top[:, None] + torch.arange(wh, device=x.device)
            cols = left[:, None] + torch.arange(ww, device=x.device)
            patch = baseline[img[:, None, None], :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
            out = engine.run(img, top, left, patch)
            return read_scores(b, out, target, None if indices is None else indices[img], score).detach()

        scores = run_batched(evaluate, n_img * n_pos, batch_size=batch_size, item_bytes=bytes_per_item(x, "forward"),
                             memory_budget=memory_budget, key=run.key, progress=progress, desc="occlusion (incremental)",
                             device=x.device)
    return list(scores.view(n_img, n_pos)), engine.plan
