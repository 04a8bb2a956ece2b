"""Sentences as token ids, and sub-word pieces merged back into words.

:func:`encode` turns sentences into a padded :class:`Tokens` batch with a Hugging Face tokenizer:
ids ``(N, L)``, the attention mask, the token strings and, per token, the word it belongs to. Bad
text is refused in one line: an empty sentence, or one longer than the model reads (``max_length``,
512 tokens for MiniLM's position embeddings) — refused, not truncated, so an explanation never
silently drops the end of a sentence.

:func:`merge_words` sums (or averages) per-token scores over the pieces of each word
(``"play"`` + ``"##ing"`` → ``"playing"``) and drops the special tokens.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch


@dataclass(frozen=True, eq=False)
class Tokens:
    """A padded batch of tokenised sentences.

    ``ids`` and ``mask`` are ``(N, L)`` long tensors (mask 1 = a real token); ``tokens[i]`` lists the
    real tokens of sentence ``i`` (special ones included) and ``words[i]`` the index of the word each
    belongs to (``None`` for ``[CLS]``/``[SEP]``).
    """

    ids: torch.Tensor
    mask: torch.Tensor
    tokens: list[list[str]]
    words: list[list[int | None]]
    texts: list[str]
    pad_id: int = 0
    mask_id: int | None = None
    special: tuple[int, ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return len(self.texts)

    def boundary(self, model: Any, **how: Any):
        """``see.boundary(model, kind="tokens", extra={"attention_mask": mask}, pad_id=..., mask_id=...)``.

        >>> t = Tokens(torch.tensor([[1, 2]]), torch.ones(1, 2, dtype=torch.long), [["a", "b"]], [[0, 1]], ["a b"])
        >>> t.boundary(torch.nn.Embedding(5, 2)).kind
        'tokens'
        """
        from ..boundary import boundary

        return boundary(model, kind="tokens", extra={"attention_mask": self.mask}, pad_id=self.pad_id,
                        mask_id=self.mask_id, **how)

    def lengths(self) -> list[int]:
        """The number of real tokens of each sentence."""
        return [int(n) for n in self.mask.sum(1)]


def check_text(texts: str | Sequence[str], *, name: str = "text") -> list[str]:
    """``texts`` as a non-empty list of non-blank strings, else one clear ``ValueError``/``TypeError``.

    >>> check_text("a dog")
    ['a dog']
    >>> check_text(["a dog", "  "])
    Traceback (most recent call last):
    ...
    ValueError: text 1 is empty: give a sentence with at least one word
    """
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, (list, tuple)) or not texts:
        raise TypeError(f"{name} must be a sentence (str) or a non-empty list of sentences, got {type(texts).__name__}")
    out = []
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{name} {i} must be a str, got {type(t).__name__}")
        if not t.strip():
            raise ValueError(f"{name}{'' if len(texts) == 1 else f' {i}'} is empty: give a sentence with at least one word")
        out.append(t)
    return out


def encode(tokenizer: Any, texts: str | Sequence[str], *, max_length: int = 512, name: str = "text") -> Tokens:
    """Tokenise ``texts`` into one padded batch; refuse (one line) an empty text or one over ``max_length`` tokens.

    ``tokenizer`` is a Hugging Face (fast) tokenizer; the word of each token comes from its
    ``word_ids()``.

    >>> from seethrough.text.tokens import _toy_tokenizer
    >>> t = encode(_toy_tokenizer(), ["the cat sat", "a dog"])
    >>> t.ids.shape, t.tokens[1], t.words[1]
    (torch.Size([2, 5]), ['[CLS]', 'a', 'dog', '[SEP]'], [None, 0, 1, None])
    """
    texts = check_text(texts, name=name)
    # verbose=False: our own one-line refusal below replaces the tokenizer's logged length warning
    enc = tokenizer(texts, padding=True, truncation=False, return_tensors="pt", verbose=False)
    ids, mask = enc["input_ids"].long(), enc["attention_mask"].long()
    lengths = mask.sum(1).tolist()
    for i, n in enumerate(lengths):
        if n > max_length:
            which = "" if len(texts) == 1 else f" {i}"
            raise ValueError(f"{name}{which} has {n} tokens but the model reads at most {max_length}: shorten it "
                             "(long text is refused, not truncated, so no word is silently left out)")
    tokens, words = [], []
    for i, n in enumerate(lengths):
        real = ids[i][mask[i].bool()].tolist()
        tokens.append(tokenizer.convert_ids_to_tokens(real))
        w = enc.word_ids(i)
        words.append([w[j] for j in range(len(w)) if mask[i, j]])
    special = tuple(int(s) for s in getattr(tokenizer, "all_special_ids", []) or [])
    return Tokens(ids, mask, tokens, words, texts, pad_id=int(tokenizer.pad_token_id or 0),
                  mask_id=getattr(tokenizer, "mask_token_id", None), special=special)


def word_spans(tokens: Sequence[str], words: Sequence[int | None]) -> list[tuple[str, list[int]]]:
    """``[(word, [token positions])]`` for the words of one sentence, special tokens left out.

    A word's text joins its pieces, dropping WordPiece's ``##`` continuation marks.

    >>> word_spans(["[CLS]", "play", "##ing", "cards", "[SEP]"], [None, 0, 0, 1, None])
    [('playing', [1, 2]), ('cards', [3])]
    """
    spans: dict[int, list[int]] = {}
    for pos, w in enumerate(words):
        if w is not None:
            spans.setdefault(w, []).append(pos)
    out = []
    for w in sorted(spans):
        text = "".join(tokens[p][2:] if tokens[p].startswith("##") else tokens[p] for p in spans[w])
        out.append((text, spans[w]))
    return out


def merge_words(scores: torch.Tensor, tokens: Sequence[str], words: Sequence[int | None], *,
                how: str = "sum") -> tuple[list[str], torch.Tensor]:
    """Per-token ``scores (L,)`` of one sentence → ``(words, per-word scores)``, special tokens dropped.

    ``how="sum"`` keeps additive attributions additive (integrated gradients' completeness, SHAP's
    efficiency); ``"mean"`` suits attention weights.

    >>> merge_words(torch.tensor([9.0, 1.0, 2.0, 4.0, 9.0]), ["[CLS]", "play", "##ing", "cards", "[SEP]"],
    ...             [None, 0, 0, 1, None])
    (['playing', 'cards'], tensor([3., 4.]))
    """
    if how not in ("sum", "mean"):
        raise ValueError(f"how must be 'sum' or 'mean', got {how!r}")
    scores = torch.as_tensor(scores)
    if scores.dim() != 1 or scores.shape[0] < len(words):
        raise ValueError(f"scores must be one value per token ({len(words)}), got shape {tuple(scores.shape)}")
    spans = word_spans(tokens, words)
    vals = [scores[p].sum() if how == "sum" else scores[p].mean() for _, p in spans]
    return [w for w, _ in spans], torch.stack(vals) if vals else scores[:0]


def _toy_tokenizer():
    """A tiny WordPiece fast tokenizer built in memory (for doctests and tests: no model files)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "cat", "dog", "sat", "ran", "play", "##ing",
             "cards", "he", "she", "man", "woman", "doctor", "nurse"]
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")
