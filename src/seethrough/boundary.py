"""The one boundary between the methods and a user's model (docs/boundary.md).

A :class:`Boundary` says what the input is (its ``kind``), which extra forward arguments every
pass takes (``extra``: one row per sample, sliced along with the samples; ``static``: passed as
is) and how a score tensor is read from the output (``output``). Methods evaluate the model only
through :meth:`Boundary.forward`, inside :func:`seethrough.hooks.hooks`; a plain ``nn.Module``
becomes a boundary with the kind inferred from ``x``, so image users change nothing.

>>> import torch, seethrough as see
>>> net = torch.nn.Sequential(torch.nn.Linear(3, 2))
>>> b = see.boundary(net, kind="tabular", feature_names=["a", "b", "c"])
>>> b.forward(torch.zeros(4, 3)).shape
torch.Size([4, 2])
>>> b.check(torch.zeros(4, 2))
Traceback (most recent call last):
...
ValueError: x has 2 features per row but the boundary names 3 (a, b, c); give rows of shape (N, 3)
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from .hooks import Recorder, hooks
from .inputs import check_finite, check_images, check_matches_model, first_conv
from .outputs import OUTPUT_HINT, OutputSelector, select_output

KINDS = ("image", "tabular", "tokens", "tensor")
# The keyword arguments that describe the boundary (not a method option): every entry point
# that takes a model splits these off its keywords and builds the boundary from them.
FIELDS = ("kind", "output", "extra", "static", "feature_names", "background", "ranges",
          "embedding", "pad_id", "mask_id")


@dataclass(frozen=True, eq=False)
class Boundary:
    """A user's model with what the methods need to know about its inputs and outputs.

    Build it with :func:`boundary`; the fields are documented in docs/boundary.md.
    """

    model: nn.Module
    kind: str = "image"
    output: OutputSelector = None
    extra: Mapping[str, torch.Tensor] = field(default_factory=dict)
    static: Mapping[str, Any] = field(default_factory=dict)
    feature_names: tuple[str, ...] | None = None
    background: torch.Tensor | None = None
    ranges: torch.Tensor | None = None
    embedding: str | None = None
    pad_id: int | None = None
    mask_id: int | None = None

    # ------------------------------------------------------------------ the forward
    def call(self, x: torch.Tensor, rows: torch.Tensor | None = None) -> Any:
        """``model(x, **extra[rows], **static)`` as the model returns it; call it inside ``hooks()``.

        ``rows[i]`` is the sample that row ``i`` of ``x`` belongs to (perturbed or interpolated
        copies of one sample share its ``extra`` row); by default row ``i`` is sample ``i``.
        """
        kwargs = dict(self.static)
        if self.extra:
            if rows is None:
                n = next(iter(self.extra.values())).shape[0]
                if x.shape[0] != n:
                    raise ValueError(f"x has {x.shape[0]} rows but the extra forward arguments have {n}; "
                                     "pass rows= (the sample of each row)")
                kwargs.update(self.extra)
            else:
                rows = torch.as_tensor(rows, dtype=torch.long)
                kwargs.update({k: v[rows.to(v.device)] for k, v in self.extra.items()})
        return self.model(x, **kwargs)

    def forward(self, x: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The score tensor of :meth:`call`: its output read through :attr:`output` (:func:`select`)."""
        return self.select(self.call(x, rows))

    def select(self, out: Any) -> torch.Tensor:
        """The score tensor of a model output, read with this boundary's ``output`` selector.

        A callable *target* is given the output as the model returns it when ``output`` is None
        (what it was written for), and the selected tensor otherwise (docs/boundary.md).
        """
        return select_output(out, self.output, hint=OUTPUT_HINT)

    # ------------------------------------------------------------------ checks
    def check(self, x: object, *, name: str = "x", rows: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` if it is a valid batch of this boundary's kind; else one clear ``ValueError``/``TypeError``.

        ``rows``: the samples the rows of ``x`` are (a batch of a larger data set), so the extra
        arguments are checked at those rows; by default ``x`` holds every sample.
        """
        if self.kind == "image":
            x = check_images(x, name=name, model=self.model)
        elif not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor ({_SHAPES[self.kind]}), got {type(x).__name__}")
        elif x.dim() == 0 or x.shape[0] == 0:
            raise ValueError(f"{name} must be a non-empty batch ({_SHAPES[self.kind]}), got shape {tuple(x.shape)}")
        elif self.kind == "tokens":
            self._check_tokens(x, name)
        else:
            check_finite(x, name=name)
            check_matches_model(x, self.model, name=name, image=False)
            if self.kind == "tabular":
                self._check_rows(x, name)
        self._check_extra(x, rows)
        return x

    def _check_rows(self, x: torch.Tensor, name: str) -> None:
        if x.dim() != 2:
            raise ValueError(f"{name} must be tabular rows (N, features), got shape {tuple(x.shape)}")
        want = self.n_features()
        if want is not None and x.shape[1] != want:
            names = f" ({', '.join(self.feature_names)})" if self.feature_names and want <= 8 else ""
            source = ("the boundary names" if self.feature_names is not None else "the background has"
                      if self.background is not None else "the model's first Linear layer takes")
            raise ValueError(f"{name} has {x.shape[1]} features per row but {source} {want}{names}; "
                             f"give rows of shape (N, {want})")

    def _check_tokens(self, x: torch.Tensor, name: str) -> None:
        if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
            raise TypeError(f"{name} must hold integer token ids (torch.long), got dtype {x.dtype}")
        if x.dim() != 2:
            raise ValueError(f"{name} must be token ids of shape (N, L), got {tuple(x.shape)}")
        vocab = self.vocab_size()
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or (vocab is not None and hi >= vocab):
            raise ValueError(f"{name} has token ids in [{lo}, {hi}] but the vocabulary has {vocab} ids (0..{vocab - 1})"
                             if vocab is not None else f"{name} has negative token ids ({lo})")

    def _check_extra(self, x: torch.Tensor, rows: torch.Tensor | None = None) -> None:
        for k, v in self.extra.items():
            if rows is None and v.shape[0] != x.shape[0]:
                raise ValueError(f"extra argument {k!r} has {v.shape[0]} rows but x has {x.shape[0]} samples")
            last = int(torch.as_tensor(rows).max()) if rows is not None and len(rows) else -1
            if last >= v.shape[0]:
                raise ValueError(f"extra argument {k!r} has {v.shape[0]} rows but the data has more samples "
                                 f"(sample {last}); give one row per sample")
            if self.kind == "tokens" and v.dim() >= 2 and v.shape[1] != x.shape[1]:
                raise ValueError(f"extra argument {k!r} has length {v.shape[1]} but the sequences have {x.shape[1]} tokens")

    # ------------------------------------------------------------------ what the kinds know
    def n_features(self) -> int | None:
        """The number of features of a tabular row, from the names, the background or the model's first
        parameterised layer when it is a Linear (``None`` when none of these tells)."""
        if self.feature_names is not None:
            return len(self.feature_names)
        if self.background is not None:
            return int(self.background.shape[1])
        first = next((m for m in self.model.modules()
                      if not any(True for _ in m.children()) and any(True for _ in m.parameters(recurse=False))), None)
        return first.in_features if isinstance(first, nn.Linear) else None

    def embedding_name(self) -> str:
        """The module whose output is the space token gradients are taken in."""
        if self.embedding is not None:
            return self.embedding
        names = {m: n for n, m in self.model.named_modules()}
        get = getattr(self.model, "get_input_embeddings", None)
        if callable(get):
            emb = get()
            if emb in names:
                return names[emb]
        found = [n for n, m in self.model.named_modules() if isinstance(m, nn.Embedding)]
        if len(found) == 1:
            return found[0]
        raise ValueError(f"cannot tell which embedding module the token ids go through ({len(found)} nn.Embedding "
                         f"modules{': ' + ', '.join(found[:6]) if found else ''}); pass embedding='name'")

    def vocab_size(self) -> int | None:
        if self.kind != "tokens":
            return None
        try:
            emb = dict(self.model.named_modules())[self.embedding_name()]
        except (ValueError, KeyError):
            return None
        return getattr(emb, "num_embeddings", None)

    @property
    def hookable(self) -> bool:
        """False for TorchScript models (or models holding a TorchScript part): they cannot take the hooks
        that captures, rules and layer attribution need (``seethrough.hooks.HOOKLESS`` says which methods run)."""
        return not any(isinstance(m, torch.jit.ScriptModule) for m in self.model.modules())


_SHAPES = {"image": "(N, C, H, W) in [0, 1]", "tabular": "(N, features) rows", "tokens": "(N, L) integer ids",
           "tensor": "(N, ...) floats"}
SHAPES = _SHAPES  # what each kind of batch looks like, for one-line refusals elsewhere


def infer_kind(x: object) -> str:
    """The input kind a tensor looks like: integer 2-D → tokens, float 4-D → image, float 2-D → tabular.

    >>> infer_kind(torch.zeros(2, 3, 8, 8)), infer_kind(torch.zeros(2, 5)), infer_kind(torch.zeros(2, 7, dtype=torch.long))
    ('image', 'tabular', 'tokens')
    """
    if not isinstance(x, torch.Tensor):
        return "image"  # check_images names the problem
    if not x.is_floating_point() and x.dim() == 2:
        return "tokens"
    if x.dim() == 4:
        return "image"
    if x.dim() == 2:
        return "tabular"
    return "tensor"


def boundary(model: nn.Module | Boundary, **how: Any) -> Boundary:
    """Describe ``model``'s inputs and outputs for every seethrough method (docs/boundary.md).

    ``how`` takes the :data:`FIELDS`; given a :class:`Boundary`, returns a copy with those changed.

    >>> net = torch.nn.Embedding(10, 4)
    >>> see_b = boundary(net, kind="tokens")
    >>> see_b.embedding_name(), see_b.vocab_size()
    ('', 10)
    """
    unknown = sorted(set(how) - set(FIELDS))
    if unknown:
        raise TypeError(f"unknown keyword(s) {', '.join(unknown)}: neither an option of this call nor a boundary field "
                        f"({', '.join(FIELDS)})")
    how = {k: v for k, v in how.items() if v is not None}
    if isinstance(model, Boundary):
        return _validated(replace(model, **how)) if how else model
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module or a seethrough Boundary, got {type(model).__name__}")
    return _validated(Boundary(model, **how))


def as_boundary(model: nn.Module | Boundary, x: object = None, **how: Any) -> Boundary:
    """The boundary a method works through: ``model`` as given, with ``how``, the kind inferred from ``x``.

    >>> as_boundary(torch.nn.Linear(3, 1), torch.zeros(2, 3)).kind
    'tabular'
    """
    if isinstance(model, Boundary):
        return boundary(model, **how)
    how = dict(how)
    if how.get("kind") is None:
        how["kind"] = infer_kind(x)
        if how["kind"] != "image" and isinstance(first_conv(model), nn.Conv2d):
            # a model that starts with a 2-D convolution takes images: a (C, H, W) image without its batch
            # dimension or a gray (N, H, W) batch gets the image checks' hint, not a shape error inside the model
            how["kind"] = "image"
    return boundary(model, **how)


def split_fields(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(boundary fields, method options)`` from one keyword dict.

    >>> split_fields({"kind": "tabular", "steps": 8})
    ({'kind': 'tabular'}, {'steps': 8})
    """
    how = {k: v for k, v in options.items() if k in FIELDS}
    return how, {k: v for k, v in options.items() if k not in FIELDS}


def _validated(b: Boundary) -> Boundary:
    if b.kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}, got {b.kind!r}")
    extra = dict(b.extra or {})
    for k, v in extra.items():
        if not isinstance(v, torch.Tensor) or v.dim() == 0:
            raise TypeError(f"extra argument {k!r} must be a tensor with one row per sample, got {type(v).__name__}")
    names = None if b.feature_names is None else tuple(str(n) for n in b.feature_names)
    bg = b.background
    if bg is not None:
        bg = torch.as_tensor(bg)
        if bg.dim() != 2 or not bg.is_floating_point():
            raise ValueError(f"background must be float rows (M, features), got shape {tuple(bg.shape)} of {bg.dtype}")
        if names is not None and bg.shape[1] != len(names):
            raise ValueError(f"background has {bg.shape[1]} columns but feature_names has {len(names)}")
    if b.ranges is not None:
        r = torch.as_tensor(b.ranges)
        if r.dim() != 2 or r.shape[0] != 2 or bool((r[0] > r[1]).any()):
            raise ValueError("ranges must be a (2, features) tensor of per-feature (min, max) with min <= max")
    return replace(b, extra=extra, static=dict(b.static or {}), feature_names=names, background=bg)


# ---------------------------------------------------------------------------------- layers and tokens
def capture(b: Boundary, x: torch.Tensor, layers: list[str], rows: torch.Tensor | None = None, *,
            layer_output: OutputSelector = None, strict: bool = True) -> Recorder:
    """One forward of ``x`` through the boundary (no autograd) recording ``layers``: a detached
    :class:`~seethrough.hooks.Recorder`. The model's own output is not read, so any output kind works;
    a named layer the forward never called is a ``ValueError``.

    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())
    >>> capture(boundary(net, kind="tabular"), torch.ones(4, 3), ["0"])["0"].shape
    torch.Size([4, 2])
    """
    with torch.no_grad(), hooks(b.model, capture=layers, detach=True, output=layer_output, strict=strict) as rec:
        b.call(x, rows)
    missed = [n for n in layers if strict and not rec.activations[n]]
    if missed:
        raise ValueError(f"layer(s) {', '.join(map(repr, missed))} were not called in the model's forward pass; "
                         "pick layers the forward uses")
    return rec


def token_states(b: Boundary, x: torch.Tensor, act: torch.Tensor) -> bool:
    """True when ``act`` is per-token states ``(N, L, D)`` of the token ids ``x (N, L)``: units are then its
    last dimension (the hidden features) and positions its second (the tokens), unlike a conv's ``(N, C, L)``.

    >>> b = boundary(torch.nn.Embedding(5, 2), kind="tokens")
    >>> token_states(b, torch.zeros(3, 7, dtype=torch.long), torch.zeros(3, 7, 16))
    True
    """
    return b.kind == "tokens" and act.dim() == 3 and tuple(act.shape[:2]) == tuple(x.shape[:2])


def token_mask(b: Boundary, x: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Which tokens of ``x (N, L)`` are real, ``(N, L)`` bool: the ``attention_mask`` extra argument if
    there is one (nonzero = real), else the ids that are not ``pad_id``, else every token.

    >>> b = boundary(torch.nn.Embedding(5, 2), kind="tokens", pad_id=0)
    >>> token_mask(b, torch.tensor([[3, 1, 0]])).tolist()
    [[True, True, False]]
    """
    mask = b.extra.get("attention_mask")
    if mask is not None:
        mask = mask if rows is None else mask[torch.as_tensor(rows, dtype=torch.long).to(mask.device)]
        return mask.to(x.device) != 0
    if b.pad_id is not None:
        return x != b.pad_id
    return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)


# ---------------------------------------------------------------------------------- the attribution space
def space_layer(b: Boundary, layer: str | None = None) -> str | None:
    """The layer whose output is the attribution space: ``layer`` if given, the embedding for token ids,
    else ``None`` (the input itself).

    >>> space_layer(boundary(torch.nn.Embedding(5, 2), kind="tokens")), space_layer(boundary(torch.nn.Linear(2, 1)))
    ('', None)
    """
    if layer is not None:
        return layer
    return b.embedding_name() if b.kind == "tokens" else None


def space_values(b: Boundary, x: torch.Tensor, rows: torch.Tensor | None = None, layer: str | None = None, *,
                 layer_output: OutputSelector = None) -> torch.Tensor:
    """The point of the attribution space that ``x`` maps to: the (detached) selected output of
    :func:`space_layer`, or ``x`` itself.

    >>> emb = torch.nn.Embedding(5, 2)
    >>> b = boundary(torch.nn.Sequential(emb), kind="tokens")
    >>> torch.equal(space_values(b, torch.tensor([[1, 4]])), emb.weight[[1, 4]].unsqueeze(0))
    True
    """
    name = space_layer(b, layer)
    if name is None:
        return x.detach()
    if not name:  # the model is the embedding itself
        with torch.no_grad(), hooks(b.model):
            return b.call(x, rows).detach()
    return capture(b, x, [name], rows, layer_output=layer_output)[name]


def space_forward(b: Boundary, layer: str | None, values: torch.Tensor, x: torch.Tensor,
                  rows: torch.Tensor | None = None, *, layer_output: OutputSelector = None,
                  rules: Mapping | None = None) -> torch.Tensor:
    """The score tensor of a forward that continues from ``values``, a point of ``layer``'s output space.

    ``b.forward(x, rows)`` with :func:`space_layer`'s selected output replaced by ``values`` (through
    ``hooks(replace=...)``; ``x`` gives the rest of the pass: token ids for the mask and positions, the
    input for skip connections); with no layer (images, rows, tensors) the space is the input and
    ``values`` is run as ``x``. Gradients reach ``values``: ``autograd.grad(score, values)`` is the
    gradient in the layer's space — layer gradient × activation, layer integrated gradients and token
    attribution all start here. ``rules`` are backward rules to apply in the same pass.

    >>> emb = torch.nn.Embedding(5, 2)
    >>> b = boundary(torch.nn.Sequential(emb, torch.nn.Flatten(), torch.nn.Linear(4, 1)), kind="tokens")
    >>> ids = torch.tensor([[1, 4]])
    >>> v = space_values(b, ids).requires_grad_()
    >>> torch.equal(space_forward(b, None, v, ids), b.forward(ids))
    True
    """
    name = space_layer(b, layer)
    if name is None:
        with hooks(b.model, rules=rules):
            return b.forward(values, rows)
    with hooks(b.model, rules=rules, replace={name: values}, output={name: layer_output}):
        return b.forward(x, rows)


def image_only(model: nn.Module | Boundary, what: str) -> nn.Module:
    """The ``nn.Module`` for a function that only makes sense on images (filters as pictures, receptive
    fields, image crops); a boundary of another kind is refused in one line.

    >>> image_only(boundary(torch.nn.Linear(3, 1), kind="tabular"), "receptive fields")
    Traceback (most recent call last):
    ...
    ValueError: receptive fields are defined for image inputs (N, C, H, W); this boundary's input is 'tabular' ((N, features) rows)
    """
    if isinstance(model, Boundary):
        if model.kind != "image":
            raise ValueError(f"{what} are defined for image inputs (N, C, H, W); this boundary's input is "
                             f"{model.kind!r} ({_SHAPES[model.kind]})")
        return model.model
    return model
