"""The explorer's text view, as JSON: a sentence's tokens scored by a method, its attention by layer and head,
and the probe curves. Every number comes from ``seethrough.text`` (docs/text.md); these functions only
tokenise with the session's preprocessing, call the library and encode the results.

A text session (``minilm-l6-topics``, or ``minilm-l6`` whose score is the cosine with a second sentence,
the pair) holds no images: its ``text`` is the task. Any text view on an image session is a one-line 400.
"""
from __future__ import annotations

from typing import Any

import torch

from .. import render
from ..attribution import METHODS
from ..progress import report
from ..text import attention_maps, probe
from ..text.explain import ATTENTION_METHODS, explain_text
from ..zoo.text import similarity
from .session import Session
from .views import data_url

PROBE_N = 300  # generated sentences per probing set: once per session, a job with progress


def methods() -> list[str]:
    """Attention rollout and flow, then every registry method that serves token inputs (the menu fills itself).

    >>> methods()[:2], "integrated-gradients" in methods(), "guided-gradcam" in methods()
    (['rollout', 'flow'], True, False)
    """
    return [*ATTENTION_METHODS, *(name for name, spec in METHODS.items() if "tokens" in spec.kinds)]


def _text(s: Session) -> str:
    if s.text is None:
        raise ValueError(f"{s.name} is an image model: the text view needs a text model "
                         "(seethrough explore -m minilm-l6-topics, or -m minilm-l6 for the similarity of a pair)")
    return s.text


def _scored(s: Session, pair: str | None) -> torch.nn.Module:
    """The model whose score is explained: the classifier, or minilm-l6's cosine with the pair sentence."""
    if _text(s) != "similarity":
        if pair is not None:
            raise ValueError(f"{s.name} classifies one sentence: drop the pair (it is for minilm-l6's similarity)")
        return s.model
    if pair is None or not pair.strip():
        raise ValueError(f"{s.name} outputs an embedding, not a score: give a pair sentence to explain the "
                         "cosine similarity of the two")
    s.preprocess(pair)  # the pair gets the same one-line refusals (empty, over 512 tokens) as the sentence
    return similarity(pair, s.model)  # the session's own encoder, not a fresh copy


def _number(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return v.detach().double().tolist()
    return float(v) if isinstance(v, (int, float)) else None


def tokens(s: Session, text: str, method: str, pair: str | None = None, target: int | None = None) -> dict[str, Any]:
    """``text``'s tokens and words coloured by ``method`` (``explain_text``'s numbers, as they are).

    >>> from seethrough.text.model import _tiny_bert_classifier  # a tiny random BERT: no model files
    >>> from seethrough.text.tokens import _toy_tokenizer, encode
    >>> tiny = Session(_tiny_bert_classifier(vocab_size=20), lambda text: encode(_toy_tokenizer(), text), "tiny",
    ...                ["a", "b", "c"], {}, text="topics")
    >>> r = tokens(tiny, "the cat sat", "rollout")
    >>> r["words"], r["tokens"], len(r["scores"]), r["explains"].startswith("topic ")
    (['the', 'cat', 'sat'], ['[CLS]', 'the', 'cat', 'sat', '[SEP]'], 5, True)
    >>> tokens(tiny, "the cat sat", "rollout", pair="a dog")
    Traceback (most recent call last):
    ...
    ValueError: tiny classifies one sentence: drop the pair (it is for minilm-l6's similarity)
    """
    _text(s)
    if method not in methods():
        raise ValueError(f"unknown method {method!r} for token inputs; available: {', '.join(methods())}")
    t = s.preprocess(text)
    model = _scored(s, pair)
    if s.text == "similarity" and target is not None:
        raise ValueError("the similarity has one score (the cosine): give no target")
    if target is not None and s.labels and not 0 <= target < len(s.labels):
        raise ValueError(f"target must be a class from 0 to {len(s.labels) - 1} ({', '.join(s.labels)}), got {target}")
    try:
        e = explain_text(model, t, method, target)
    except (TypeError, NotImplementedError) as err:  # a method that cannot serve this input: the user's 400, one line
        raise ValueError(f"{method} cannot explain this sentence: {err}".splitlines()[0]) from None
    what = (f"the cosine similarity with {pair!r}" if s.text == "similarity"
            else f"topic {e.target} · {s.labels[e.target] if s.labels else e.target}")
    extra = {k: _number(v) for k, v in e.extra.items()}
    return {"method": method, "text": text, "pair": pair, "target": e.target, "explains": what,
            "tokens": e.tokens, "scores": e.scores.tolist(), "words": e.words, "word_scores": e.word_scores.tolist(),
            "words_html": render.tokens_html(e.words, e.word_scores), "tokens_html": render.tokens_html(e.tokens, e.scores),
            "extra": {k: v for k, v in extra.items() if v is not None}}


def attention(s: Session, text: str, layer: int = 0, head: int = -1) -> dict[str, Any]:
    """The head view of one layer and head (``head=-1``: the layer's mean) of ``text``, as a PNG data URL.

    >>> from seethrough.text.model import _tiny_bert_classifier
    >>> from seethrough.text.tokens import _toy_tokenizer, encode
    >>> tiny = Session(_tiny_bert_classifier(vocab_size=20), lambda text: encode(_toy_tokenizer(), text), "tiny",
    ...                None, {}, text="topics")
    >>> r = attention(tiny, "the cat sat", layer=1, head=0)
    >>> r["layers"], r["heads"], r["image"].startswith("data:image/png;base64,")
    (2, 2, True)
    """
    _text(s)
    t = s.preprocess(text)
    att = attention_maps(s.model, t)[0]
    layers, heads = att.shape[:2]
    if not 0 <= layer < layers or not -1 <= head < heads:
        raise ValueError(f"layer must be from 0 to {layers - 1} and head from 0 to {heads - 1} (or -1, the mean of the "
                         f"layer's heads), got layer {layer}, head {head}")
    fig = render.head_view(att, t.tokens[0], layer, None if head < 0 else head)
    return {"layers": layers, "heads": heads, "layer": layer, "head": head, "tokens": t.tokens[0],
            "image": data_url(render.figure_to_image(fig))}


def model_view(s: Session, text: str) -> dict[str, Any]:
    """Every layer's and head's attention map of ``text`` in one grid (bertviz's model view, as a PNG)."""
    _text(s)
    t = s.preprocess(text)
    att = attention_maps(s.model, t)[0]
    return {"layers": att.shape[0], "heads": att.shape[1], "tokens": t.tokens[0],
            "image": data_url(render.figure_to_image(render.model_view(att, t.tokens[0])))}


def probe_curves(s: Session) -> dict[str, Any]:
    """Probe accuracy by layer for the six bundled tasks, with the control tasks (one computation per session)."""
    _text(s)
    report("probing the layers", 0, 1)
    r = probe(s.model, n_samples=PROBE_N)
    report("probing the layers", 1, 1)
    fig = render.probe_plot(r.accuracy, r.control, majority=r.majority, title=f"{s.name}: probing accuracy by layer")
    return {"n": r.n, "tasks": list(r.accuracy), "accuracy": {k: v.tolist() for k, v in r.accuracy.items()},
            "control": {k: v.tolist() for k, v in r.control.items()}, "majority": r.majority,
            "image": data_url(render.figure_to_image(fig))}

