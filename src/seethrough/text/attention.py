"""Attention as an explanation: the maps, rollout and flow (Abnar & Zuidema 2020), head importance (Michel et al. 2019).

* :func:`attention_maps` — every layer's and head's attention ``(N, layers, heads, L, L)`` from ONE
  forward with ``output_attentions=True`` (eager attention).
* :func:`rollout` — ``Â_l = r·I + (1 − r)·mean_h A_l`` (rows re-normalised), multiplied over the
  layers: ``R = Â_L ⋯ Â_1``; row *i* says how much of output token *i* traces back to each input token.
* :func:`flow` — attention flow: the maximum flow from output token *i* to input token *j* in the
  layered graph whose edge ``(l, a) → (l − 1, b)`` has capacity ``Â_l[a, b]``; each row is then
  normalised to sum to 1, as in the authors' code.
* :func:`head_importance` — masking heads: a gate ``ξ_h`` multiplies each head's context (through
  ``hooks(replace=...)``; transformers 5 has no ``head_mask`` argument any more). Reported: the
  proxy ``I_h = E_x |∂S/∂ξ_h|`` of Michel et al. and the actual change of the score when ``ξ_h = 0``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..results import ResultProtocol, records
from ..boundary import Boundary, as_boundary
from ..targets import Target, target_indices, target_scores
from ..hooks import hooks
from .model import attention_modules, ids_and_mask, run_backbone, shape
from .tokens import Tokens


def attention_maps(model: nn.Module | Boundary, x: Tokens | torch.Tensor,
                   attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``(N, layers, heads, L, L)`` attention weights (rows: queries, columns: keys), from one forward.

    >>> from seethrough.text.model import _tiny_bert
    >>> bert = _tiny_bert()
    >>> a = attention_maps(bert, torch.tensor([[2, 7, 9, 3]]))
    >>> a.shape, bool(torch.allclose(a.sum(-1), torch.ones(1, 2, 2, 4)))
    (torch.Size([1, 2, 2, 4, 4]), True)
    """
    ids, mask = ids_and_mask(x, attention_mask)
    out = run_backbone(model, ids, mask, output_attentions=True)
    att = getattr(out, "attentions", None)
    if not att or any(a is None for a in att):
        raise ValueError("the transformer returned no attention weights; load it with attn_implementation='eager'")
    return torch.stack(tuple(att), 1)


def _check_maps(att: torch.Tensor) -> torch.Tensor:
    if not isinstance(att, torch.Tensor) or att.dim() not in (4, 5) or att.shape[-1] != att.shape[-2]:
        got = tuple(att.shape) if isinstance(att, torch.Tensor) else type(att).__name__
        raise ValueError(f"attention must be (N, layers, heads, L, L) or (layers, heads, L, L), got {got}")
    return att if att.dim() == 5 else att.unsqueeze(0)


def mixed(att: torch.Tensor, residual: float = 0.5) -> torch.Tensor:
    """``Â_l``: the head-averaged attention of each layer mixed with the identity (the residual), rows summing to 1.

    >>> mixed(torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])).tolist()
    [[[[0.5, 0.5], [0.5, 0.5]]]]
    """
    if not 0.0 <= residual <= 1.0:
        raise ValueError(f"residual must be in [0, 1] (0.5 in Abnar & Zuidema), got {residual!r}")
    att = _check_maps(att)
    eye = torch.eye(att.shape[-1], dtype=att.dtype, device=att.device)
    a = residual * eye + (1 - residual) * att.mean(2)
    return a / a.sum(-1, keepdim=True)


def rollout(att: torch.Tensor, residual: float = 0.5) -> torch.Tensor:
    """Attention rollout ``R = Â_L ⋯ Â_1``, ``(N, L, L)``: row *i* = how output token *i* draws on the input tokens.

    >>> a = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]], [[[0.0, 1.0], [1.0, 0.0]]]])  # 2 layers, 1 head
    >>> rollout(a).tolist()   # Â2 Â1 = [[.5, .5], [.5, .5]] @ [[1, 0], [.5, .5]]
    [[[0.75, 0.25], [0.75, 0.25]]]
    """
    a = mixed(att, residual)
    r = a[:, 0]
    for layer in range(1, a.shape[1]):
        r = a[:, layer] @ r
    return r


def flow(att: torch.Tensor, residual: float = 0.5, *, attention_mask: torch.Tensor | None = None,
         normalize: bool = True) -> torch.Tensor:
    """Attention flow, ``(N, L, L)``: the max flow from output token *i* (last layer) to input token *j* (layer 0).

    Capacities are the entries of :func:`mixed`; padding (``attention_mask`` 0) is left out of the graph
    and gets 0. With ``normalize`` each row is divided by its sum (the authors' normalisation).
    scipy's Dinic max flow computes each flow on capacities in units of 2⁻²⁴ (it takes integers), so a
    flow is exact to about 1e-6.

    >>> a = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]], [[[0.0, 1.0], [1.0, 0.0]]]])
    >>> flow(a, normalize=False).tolist()   # sum_k min(Â2[i, k], Â1[k, j])
    [[[1.0, 0.5], [1.0, 0.5]]]
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_flow

    a = mixed(att, residual).double()
    n, layers, length = a.shape[0], a.shape[1], a.shape[-1]
    mask = torch.ones(n, length, dtype=torch.bool) if attention_mask is None else torch.as_tensor(attention_mask).bool()
    out = torch.zeros(n, length, length, dtype=torch.float64)
    for s in range(n):
        real = mask[s].nonzero().flatten()
        k = len(real)
        w = torch.round(a[s][:, real][:, :, real] * _UNIT).long()  # (layers, k, k) integer capacities
        # node (l, i) is l·k + i; edge (l + 1, i) → (l, j) carries Â_{l+1}[i, j]
        lay, i, j = torch.meshgrid(torch.arange(layers), torch.arange(k), torch.arange(k), indexing="ij")
        graph = csr_matrix((w.flatten().numpy().astype("int32"), (((lay + 1) * k + i).flatten().numpy(),
                                                                   (lay * k + j).flatten().numpy())),
                           shape=((layers + 1) * k,) * 2)
        for qi in range(k):
            for kj in range(k):
                f = maximum_flow(graph, layers * k + qi, kj, method="dinic").flow_value
                out[s, real[qi], real[kj]] = f / _UNIT
        if normalize:
            out[s] = out[s] / out[s].sum(-1, keepdim=True).clamp_min(1e-300)
    return out.to(att.dtype)


_UNIT = float(2 ** 24)  # capacities ≤ 1 → ≤ 2²⁴ units; each row of Â sums to 1, so no flow nears int32's 2³¹


def token_relevance(r: torch.Tensor, attention_mask: torch.Tensor | None = None, query: str | int = "mean") -> torch.Tensor:
    """Per-input-token relevance ``(N, L)`` from a rollout/flow matrix: the row of one query token (an int, 0 for
    ``[CLS]``) or the mean over the real query tokens (``"mean"``, what a mean-pooled sentence embedding reads).

    >>> token_relevance(torch.tensor([[[0.5, 0.5], [0.0, 1.0]]])).tolist()
    [[0.25, 0.75]]
    """
    if query == "mean":
        m = torch.ones(r.shape[:2], dtype=r.dtype) if attention_mask is None else torch.as_tensor(attention_mask).to(r.dtype)
        out = (r * m.unsqueeze(-1)).sum(1) / m.sum(1, keepdim=True).clamp_min(1)
        return out * m
    if isinstance(query, bool) or not isinstance(query, int):
        raise ValueError(f"query must be 'mean' or a token position, got {query!r}")
    return r[:, query]


@dataclass
class HeadImportance(ResultProtocol):
    """Head importance ``(layers, heads)`` two ways, and the unmasked score they refer to.

    ``gradient``: Michel et al.'s proxy ``mean_x |∂S/∂ξ_h|`` at ξ = 1. ``signed``: ``mean_x ∂S/∂ξ_h``,
    the first-order prediction of ``-masked``. ``masked``: ``mean_x [S(ξ_h = 0) − S]``, the real change
    when the head alone is masked. ``score``: ``mean_x S``.
    """

    gradient: torch.Tensor
    signed: torch.Tensor
    masked: torch.Tensor
    score: float
    options: dict = field(default_factory=dict)
    seed: int | None = None


def _gate(gates: torch.Tensor, heads: int):
    def scale(ctx: torch.Tensor) -> torch.Tensor:
        n, length, width = ctx.shape
        g = gates.to(ctx.dtype).reshape(n, 1, heads, 1)
        return (ctx.reshape(n, length, heads, width // heads) * g).reshape(n, length, width)

    return scale


def gated_scores(b: Boundary, ids: torch.Tensor, rows: torch.Tensor, gates: torch.Tensor, classes: torch.Tensor | None,
                 target: Target, score: str | None) -> torch.Tensor:
    """Scores ``(B,)`` of the rows ``ids`` (sample ``rows``) with head gates ``gates (B, layers, heads)``.

    >>> from seethrough.text.model import _tiny_bert_classifier
    >>> from seethrough.boundary import boundary
    >>> b = boundary(_tiny_bert_classifier(), kind="tokens")
    >>> ids = torch.tensor([[2, 7, 3]])
    >>> s = gated_scores(b, ids, torch.tensor([0]), torch.ones(1, 2, 2), torch.tensor([1]), None, "logit")
    >>> bool(torch.allclose(s, b.forward(ids)[:, 1]))
    True
    """
    names = attention_modules(b)
    heads = gates.shape[-1]
    swaps = {name: _gate(gates[:, i], heads) for i, name in enumerate(names)}
    with hooks(b.model, replace=swaps):
        out = b.forward(ids, rows)
    return target_scores(out, target if classes is None else classes, score=score)


@records("model", "x")
def head_importance(model: nn.Module | Boundary, x: Tokens | torch.Tensor, target: Target = None, *,
                    attention_mask: torch.Tensor | None = None, score: str | None = None,
                    batch_size: int = 64, **how: Any) -> HeadImportance:
    """How much each head matters to the target score, by gradient (Michel et al.'s proxy) and by masking it.

    One backward gives every gate's gradient; the masked scores are ``layers × heads`` forwards of every
    sentence, run in batches. ``score`` is the class score read (``"logit"`` by default; ``"log-probability"``
    with the true labels as ``target`` is Michel et al.'s negative loss).

    >>> from seethrough.text.model import _tiny_bert_classifier
    >>> imp = head_importance(_tiny_bert_classifier(), torch.tensor([[2, 7, 9, 3]]), target=1)
    >>> imp.gradient.shape, imp.masked.shape
    (torch.Size([2, 2]), torch.Size([2, 2]))
    """
    ids, mask = ids_and_mask(x, attention_mask)
    b = as_boundary(model, ids, kind="tokens", extra={"attention_mask": mask}, **how)
    layers, heads = shape(b)
    n = ids.shape[0]
    rows = torch.arange(n)
    with torch.no_grad(), hooks(b.model):
        clean = b.forward(ids, rows)
    classes = target_indices(clean, target)
    kind = score if score is not None else (None if classes is None else "logit")
    gates = torch.ones(n, layers, heads, dtype=torch.float64, requires_grad=True)
    s = gated_scores(b, ids, rows, gates, classes, target, kind)
    (grad,) = torch.autograd.grad(s.sum(), gates)
    base = s.detach()
    # every (sample, head) pair with that head's gate at 0, in batches
    pairs = torch.cartesian_prod(torch.arange(n), torch.arange(layers * heads))
    drops = torch.zeros(n, layers * heads, dtype=torch.float64)
    with torch.no_grad():
        for start in range(0, len(pairs), batch_size):
            p = pairs[start:start + batch_size]
            g = torch.ones(len(p), layers * heads, dtype=torch.float64)
            g[torch.arange(len(p)), p[:, 1]] = 0.0
            sub = None if classes is None else classes[p[:, 0]]
            masked = gated_scores(b, ids[p[:, 0]], p[:, 0], g.reshape(-1, layers, heads), sub, target, kind)
            drops[p[:, 0], p[:, 1]] = masked.double() - base[p[:, 0]].double()
    return HeadImportance(grad.abs().mean(0), grad.mean(0), drops.mean(0).reshape(layers, heads),
                          float(base.double().mean()))
