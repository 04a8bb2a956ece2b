"""A tiny randomly initialised Hugging Face-style text classifier in plain torch (no download, no
``transformers``): what the boundary is designed for.

* ``model(input_ids, attention_mask=None, inputs_embeds=None)`` returns a :class:`ModelOutput` (a dict
  whose entries are also attributes, like HF's) with ``"logits"`` and ``"attentions"``;
* ``embeddings.word_embeddings`` is an ``nn.Embedding`` (also ``get_input_embeddings()``), followed by
  position embeddings, a LayerNorm and Dropout;
* ``blocks.0`` and ``blocks.1`` return a TUPLE ``(hidden, attention_weights)``, as HF encoder layers
  do, and the model carries on with element 0;
* padding is masked out of the attention keys; the classifier reads the first token through a pooler.
"""
from __future__ import annotations

import math

import torch
from torch import nn

VOCAB, DIM, HEADS, LENGTH, CLASSES = 50, 16, 2, 7, 3


class ModelOutput(dict):
    """A dict whose entries are attributes too (``out.logits is out["logits"]``)."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


class Embeddings(nn.Module):
    def __init__(self):
        super().__init__()
        self.word_embeddings = nn.Embedding(VOCAB, DIM, padding_idx=0)
        self.position_embeddings = nn.Embedding(LENGTH, DIM)
        self.norm = nn.LayerNorm(DIM)
        self.dropout = nn.Dropout(0.1)

    def forward(self, input_ids=None, inputs_embeds=None):
        words = self.word_embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        positions = torch.arange(words.shape[1], device=words.device)
        return self.dropout(self.norm(words + self.position_embeddings(positions)))


class Block(nn.Module):
    """Self-attention + feed-forward, post-norm; returns ``(hidden, attention weights (N, H, L, L))``."""

    def __init__(self):
        super().__init__()
        self.query, self.key, self.value = nn.Linear(DIM, DIM), nn.Linear(DIM, DIM), nn.Linear(DIM, DIM)
        self.attn_out = nn.Linear(DIM, DIM)
        self.norm1, self.norm2 = nn.LayerNorm(DIM), nn.LayerNorm(DIM)
        self.ffn = nn.Sequential(nn.Linear(DIM, 2 * DIM), nn.GELU(), nn.Linear(2 * DIM, DIM))
        self.dropout = nn.Dropout(0.1)

    def forward(self, hidden, attention_mask=None):
        n, length, _ = hidden.shape
        split = lambda t: t.view(n, length, HEADS, DIM // HEADS).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.query(hidden)), split(self.key(hidden)), split(self.value(hidden))
        scores = q @ k.transpose(-1, -2) / math.sqrt(DIM // HEADS)
        if attention_mask is not None:
            scores = scores.masked_fill(attention_mask[:, None, None, :] == 0, torch.finfo(scores.dtype).min)
        weights = scores.softmax(-1)
        context = (self.dropout(weights) @ v).transpose(1, 2).reshape(n, length, DIM)
        hidden = self.norm1(hidden + self.attn_out(context))
        hidden = self.norm2(hidden + self.dropout(self.ffn(hidden)))
        return hidden, weights


class TinyEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embeddings = Embeddings()
        self.blocks = nn.ModuleList([Block(), Block()])
        self.pooler = nn.Sequential(nn.Linear(DIM, DIM), nn.Tanh())
        self.classifier = nn.Linear(DIM, CLASSES)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None):
        hidden = self.embeddings(input_ids, inputs_embeds)
        attentions = []
        for block in self.blocks:
            out = block(hidden, attention_mask)
            hidden = out[0]
            attentions.append(out[1])
        return ModelOutput(logits=self.classifier(self.pooler(hidden[:, 0])), attentions=tuple(attentions))


def tiny_encoder(seed: int = 0) -> TinyEncoder:
    """The model, randomly initialised with ``seed``, in eval mode."""
    torch.manual_seed(seed)
    return TinyEncoder().eval()


def token_batch(n: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids (n, LENGTH), attention_mask (n, LENGTH))``: sequences of different lengths, padded with id 0
    (sample ``i`` has ``LENGTH - i % 3`` real tokens)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (n, LENGTH), generator=g)
    mask = torch.ones(n, LENGTH, dtype=torch.long)
    for i in range(n):
        pad = i % 3
        if pad:
            ids[i, -pad:] = 0
            mask[i, -pad:] = 0
    return ids, mask


class LeNetLike(nn.Module):
    """A small conv net with ReLUs, a max-pool and a Linear head, for TorchScript tests (8×8 gray input)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        h = self.pool(self.relu1(self.conv1(x)))
        return self.fc(self.gap(self.relu2(self.conv2(h))).flatten(1))


def lenet_like(seed: int = 0) -> LeNetLike:
    torch.manual_seed(seed)
    return LeNetLike().eval()
