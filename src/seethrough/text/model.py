"""What the text functions need to know about a model: its transformer inside, its inputs, its heads.

The text functions take the model a user explains — a zoo text model, a Hugging Face model, or a
:class:`~seethrough.boundary.Boundary` of one — and find the Hugging Face transformer inside it
(:func:`find_backbone`): the module with a ``config`` that names its layers and heads. Attention
maps and hidden states are read from that transformer's own ``output_attentions`` /
``output_hidden_states`` outputs, in one forward, inside :func:`seethrough.hooks.hooks` of the whole
model. A model without one (an image CNN) is refused in one line.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..boundary import Boundary
from .tokens import Tokens

NOT_TEXT = ("{what} is not a transformer text model: no Hugging Face transformer inside it (a module with "
            "config.num_hidden_layers and config.num_attention_heads); give minilm-l6, minilm-l6-topics or a "
            "transformers model")


def module_of(model: nn.Module | Boundary) -> nn.Module:
    """The ``nn.Module`` of a model or a boundary.

    >>> net = torch.nn.Linear(2, 2)
    >>> from seethrough.boundary import boundary
    >>> module_of(boundary(net, kind="tabular")) is net
    True
    """
    return model.model if isinstance(model, Boundary) else model


def _is_transformer(m: nn.Module) -> bool:
    cfg = getattr(m, "config", None)
    return hasattr(cfg, "num_hidden_layers") and hasattr(cfg, "num_attention_heads")


def find_backbone(model: nn.Module | Boundary, what: str = "the model") -> nn.Module:
    """The Hugging Face transformer inside ``model`` (the model itself if it is one), else one ``ValueError``.

    >>> find_backbone(torch.nn.Linear(2, 2))
    Traceback (most recent call last):
    ...
    ValueError: the model is not a transformer text model: no Hugging Face transformer inside it (a module with config.num_hidden_layers and config.num_attention_heads); give minilm-l6, minilm-l6-topics or a transformers model
    """
    m = module_of(model)
    if not isinstance(m, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module or a seethrough Boundary, got {type(m).__name__}")
    found = next((sub for _, sub in m.named_modules() if _is_transformer(sub)), None)
    if found is None:
        raise ValueError(NOT_TEXT.format(what=what))
    impl = getattr(found.config, "_attn_implementation", "eager")
    if impl not in (None, "eager"):
        raise ValueError(f"the transformer uses {impl!r} attention, which returns no attention weights: load it with "
                         "attn_implementation='eager' (from_pretrained(..., attn_implementation='eager'))")
    return found


def ids_and_mask(x: Tokens | torch.Tensor, attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids (N, L), mask (N, L))`` from a :class:`Tokens` batch or an id tensor (mask: all ones by default).

    >>> ids, mask = ids_and_mask(torch.tensor([[5, 6, 0]]), torch.tensor([[1, 1, 0]]))
    >>> mask.tolist()
    [[1, 1, 0]]
    """
    if isinstance(x, Tokens):
        if attention_mask is not None:
            raise ValueError("a Tokens batch carries its own attention mask: do not pass attention_mask too")
        return x.ids, x.mask
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.is_floating_point() or x.dtype == torch.bool:
        got = f"shape {tuple(x.shape)} of {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"x must be token ids (N, L) of integers or a Tokens batch (see.zoo.preprocess('minilm-l6')), got {got}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"x must hold at least one token of one sentence, got shape {tuple(x.shape)}")
    mask = torch.ones_like(x) if attention_mask is None else torch.as_tensor(attention_mask).long()
    if mask.shape != x.shape:
        raise ValueError(f"attention_mask has shape {tuple(mask.shape)} but the ids have {tuple(x.shape)}")
    return x, mask


def attention_modules(model: nn.Module | Boundary) -> list[str]:
    """The names of the self-attention modules, one per layer, whose first output is the heads' context.

    They are the modules that carry ``num_attention_heads`` and ``attention_head_size`` (BERT, RoBERTa,
    MiniLM, ELECTRA, …); their output ``(N, L, heads × head size)`` is what a head gate scales.

    >>> attention_modules(_tiny_bert())
    ['encoder.layer.0.attention.self', 'encoder.layer.1.attention.self']
    """
    m = module_of(model)
    found = [n for n, sub in m.named_modules() if hasattr(sub, "num_attention_heads") and hasattr(sub, "attention_head_size")]
    layers = find_backbone(model).config.num_hidden_layers
    if len(found) != layers:
        raise ValueError(f"found {len(found)} self-attention modules with num_attention_heads/attention_head_size for "
                         f"{layers} layers; head masking supports BERT-style encoders")
    return found


def shape(model: nn.Module | Boundary) -> tuple[int, int]:
    """``(layers, heads)`` of the transformer inside ``model``.

    >>> shape(_tiny_bert_classifier())
    (2, 2)
    """
    cfg = find_backbone(model).config
    return int(cfg.num_hidden_layers), int(cfg.num_attention_heads)


def run_backbone(model: nn.Module | Boundary, ids: torch.Tensor, mask: torch.Tensor, **flags: Any):
    """One no-grad forward of the transformer inside ``model`` (inside ``hooks(model)``), with HF output flags.

    >>> len(run_backbone(_tiny_bert(), torch.tensor([[2, 5, 3]]), torch.ones(1, 3), output_hidden_states=True).hidden_states)
    3
    """
    from ..hooks import hooks

    bb = find_backbone(model)
    with torch.no_grad(), hooks(module_of(model)):
        return bb(ids, attention_mask=mask, **flags)


def _tiny_config(**kw: Any):
    from transformers import BertConfig

    cfg = dict(vocab_size=30, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
               max_position_embeddings=16, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    cfg.update(kw)
    c = BertConfig(**cfg)
    c._attn_implementation = "eager"
    return c


def _warm(model: nn.Module) -> nn.Module:
    # transformers 5 installs its output-capturing hooks on the first forward that asks for attentions or
    # hidden states: do it before handing the model out, so seethrough's calls leave it as found
    with torch.no_grad():
        model(torch.tensor([[2, 3]]), attention_mask=torch.ones(1, 2, dtype=torch.long), output_attentions=True,
              output_hidden_states=True)
    return model.eval()


def _tiny_bert(seed: int = 0, **kw: Any) -> nn.Module:
    """A randomly initialised 2-layer, 2-head BERT (hidden 16, vocabulary 30) for doctests and tests."""
    from transformers import BertModel

    torch.manual_seed(seed)
    return _warm(BertModel(_tiny_config(**kw), add_pooling_layer=False))


def _tiny_bert_classifier(seed: int = 0, labels: int = 3, **kw: Any) -> nn.Module:
    """:func:`_tiny_bert` with a sequence-classification head (``.logits`` of ``labels`` classes)."""
    from transformers import BertForSequenceClassification

    torch.manual_seed(seed)
    return _warm(BertForSequenceClassification(_tiny_config(num_labels=labels, **kw)))
