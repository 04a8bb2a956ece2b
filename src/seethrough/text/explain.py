"""Which words drove a text model's score: attention rollout and flow next to the attribution methods, and
how faithful each is by deletion and insertion over words.

:func:`explain_text` gives per-token and per-word scores for one method: ``"rollout"`` and ``"flow"``
(attention, :mod:`seethrough.text.attention`) or any method of ``see.attribute`` that serves token
inputs (saliency, grad×input, integrated gradients on the input embeddings, occlusion, LIME,
KernelSHAP), run through the boundary. :func:`word_curves` is deletion/insertion over *words*:
words are replaced by ``[MASK]`` (deletion) or revealed from an all-``[MASK]`` sentence (insertion)
in the order of a ranking, special tokens kept; the AUC of the score curve (the trust family's
:func:`seethrough.metrics.curves.auc`) is compared with random orders.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from ..results import ResultProtocol, records
from ..boundary import Boundary
from ..hooks import hooks
from ..targets import Target, target_indices, target_scores
from .attention import attention_maps, flow, rollout, token_relevance
from .tokens import Tokens, word_spans

ATTENTION_METHODS = ("rollout", "flow")


@dataclass
class TextExplanation(ResultProtocol):
    """One sentence explained: per-token scores (special tokens included), per-word sums, the class explained."""

    method: str
    tokens: list[str]
    scores: torch.Tensor
    words: list[str]
    word_scores: torch.Tensor
    target: int | None
    extra: dict[str, Any] = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    seed: int | None = None


def _one(x: Tokens) -> Tokens:
    if not isinstance(x, Tokens):
        raise TypeError(f"explain_text takes a Tokens batch (see.zoo.preprocess('minilm-l6')('a sentence')), got {type(x).__name__}")
    if len(x) != 1:
        raise ValueError(f"explain one sentence at a time, got {len(x)}")
    return x


def _word_sums(scores: torch.Tensor, t: Tokens) -> tuple[list[str], torch.Tensor]:
    spans = word_spans(t.tokens[0], t.words[0])
    return [w for w, _ in spans], torch.stack([scores[p].sum() for _, p in spans])


@records("model", "x")
def explain_text(model: nn.Module | Boundary, x: Tokens, method: str, target: Target = None, *,
                 query: str | int = "mean", **options: Any) -> TextExplanation:
    """Explain ``model``'s score on one tokenised sentence with ``method``.

    ``target``: the class (``None``: the predicted one); a similarity model's single column needs none.
    ``query`` (rollout and flow only): whose attention row is read, ``"mean"`` of the real tokens (what a
    mean-pooled embedding reads) or a position (0 = ``[CLS]``). ``options`` go to ``see.attribute``.

    >>> from seethrough.text.model import _tiny_bert_classifier
    >>> from seethrough.text.tokens import _toy_tokenizer, encode
    >>> e = explain_text(_tiny_bert_classifier(vocab_size=20), encode(_toy_tokenizer(), "the cat sat"), "rollout")
    >>> e.words, e.word_scores.shape
    (['the', 'cat', 'sat'], torch.Size([3]))
    """
    t = _one(x)
    b = t.boundary(model)
    with torch.no_grad(), hooks(b.model):
        out = b.forward(t.ids)
    cls = target_indices(out, target)
    length = int(t.mask.sum())
    extra: dict[str, Any] = {}
    if method in ATTENTION_METHODS:
        att = attention_maps(model, t)[:, :, :, :length, :length]
        r = rollout(att) if method == "rollout" else flow(att, **options)
        scores = token_relevance(r, query=query)[0]
    else:
        from ..attribution import attribute

        res = attribute(b, t.ids, method, target=cls if cls is not None else target, **options)
        a = getattr(res, "attributions", res).detach()
        for key in ("delta", "completeness", "gap"):
            if hasattr(res, key):
                extra[key] = getattr(res, key)
        a = a[0]
        scores = a.sum(-1) if a.dim() == 2 else a.reshape(-1)
        scores = scores[:length]
    words, ws = _word_sums(scores.double(), t)
    return TextExplanation(method, t.tokens[0], scores.double(), words, ws,
                           None if cls is None else int(cls[0]), extra)


@dataclass
class WordCurves(ResultProtocol):
    """Deletion and insertion over words for one ranking: the curves ``(words + 1,)``, their AUCs, and the
    mean AUC of ``n_random`` random word orders."""

    deletion: torch.Tensor
    insertion: torch.Tensor
    deletion_auc: float
    insertion_auc: float
    random_deletion_auc: float
    random_insertion_auc: float
    options: dict = field(default_factory=dict)
    seed: int | None = None


def _score_kind(out: torch.Tensor) -> str:
    # Petsiuk et al. score the probability; a single-column output (a cosine) is read as is
    return "probability" if out.dim() == 2 and out.shape[1] > 1 else "logit"


def _curve(b: Boundary, t: Tokens, spans: list[list[int]], order: torch.Tensor, cls, target, kind: str,
           mode: str) -> torch.Tensor:
    ids = t.ids[0]
    fill = t.mask_id if t.mask_id is not None else t.pad_id
    masked = ids.clone()
    for p in spans:
        masked[p] = fill
    start, end = (ids, masked) if mode == "deletion" else (masked, ids)
    rows = [start.clone()]
    cur = start.clone()
    for w in order.tolist():
        cur[spans[w]] = end[spans[w]]
        rows.append(cur.clone())
    batch = torch.stack(rows)
    sample = torch.zeros(len(batch), dtype=torch.long)
    with torch.no_grad(), hooks(b.model):
        out = b.forward(batch, sample)
    return target_scores(out, target if cls is None else cls.expand(len(batch)), score=None if cls is None else kind).double()


@records("model", "x", "word_scores")
def word_curves(model: nn.Module | Boundary, x: Tokens, word_scores: torch.Tensor, target: Target = None, *,
                n_random: int = 8, seed: int = 0) -> WordCurves:
    """Deletion (most relevant word first) and insertion curves over the words of one sentence, with AUCs.

    >>> import torch
    >>> from seethrough.text.model import _tiny_bert_classifier
    >>> from seethrough.text.tokens import _toy_tokenizer, encode
    >>> t = encode(_toy_tokenizer(), "the cat sat")
    >>> c = word_curves(_tiny_bert_classifier(vocab_size=20), t, torch.tensor([0.1, 0.5, 0.2]), target=0)
    >>> c.deletion.shape, c.insertion.shape
    (torch.Size([4]), torch.Size([4]))
    """
    from ..metrics.curves import auc, random_ranks

    t = _one(x)
    b = t.boundary(model)
    spans = [p for _, p in word_spans(t.tokens[0], t.words[0])]
    ws = torch.as_tensor(word_scores).double().flatten()
    if len(ws) != len(spans):
        raise ValueError(f"got {len(ws)} word scores for a sentence of {len(spans)} words")
    with torch.no_grad(), hooks(b.model):
        out = b.forward(t.ids)
    cls = target_indices(out, target)
    kind = _score_kind(out)
    order = torch.argsort(ws, descending=True, stable=True)
    dele = _curve(b, t, spans, order, cls, target, kind, "deletion")
    ins = _curve(b, t, spans, order, cls, target, kind, "insertion")
    rnd = random_ranks(n_random, len(spans), seed, torch.device("cpu"))
    rd = torch.stack([_curve(b, t, spans, r, cls, target, kind, "deletion") for r in rnd])
    ri = torch.stack([_curve(b, t, spans, r, cls, target, kind, "insertion") for r in rnd])
    return WordCurves(dele, ins, float(auc(dele[None])[0]), float(auc(ins[None])[0]),
                      float(auc(rd).mean()), float(auc(ri).mean()))


def compare(model: nn.Module | Boundary, x: Tokens, methods: Sequence[str] = ("rollout", "integrated-gradients", "occlusion"),
            target: Target = None, *, n_random: int = 8, seed: int = 0,
            options: dict[str, dict] | None = None) -> dict[str, tuple[TextExplanation, WordCurves]]:
    """The comparison panel's numbers: each method's explanation of the same sentence and its word curves.

    >>> from seethrough.text.model import _tiny_bert_classifier
    >>> from seethrough.text.tokens import _toy_tokenizer, encode
    >>> p = compare(_tiny_bert_classifier(vocab_size=20), encode(_toy_tokenizer(), "the cat sat"), ["rollout", "flow"])
    >>> sorted(p), 0 <= p["flow"][1].deletion_auc <= 1
    (['flow', 'rollout'], True)
    """
    out = {}
    for m in methods:
        e = explain_text(model, x, m, target, **(options or {}).get(m, {}))
        out[m] = (e, word_curves(model, x, e.word_scores, e.target if e.target is not None else target,
                                 n_random=n_random, seed=seed))
    return out
