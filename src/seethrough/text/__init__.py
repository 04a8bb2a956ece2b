"""Text models: attention maps, rollout and flow, head importance, probing, word-embedding bias (docs/text.md).

transformers is imported only when a function needs it; the zoo's ``minilm-l6`` models are the bundled examples.
"""
from .attention import HeadImportance, attention_maps, flow, head_importance, mixed, rollout, token_relevance
from .bias import (DEFINITIONAL_PAIRS, OCCUPATIONS, WeatResult, contextual_vectors, gender_direction, neutralise,
                   projections, weat, word_vectors)
from .model import find_backbone
from .probing import TASKS, ProbeResult, probe
from .tokens import Tokens, check_text, encode, merge_words, word_spans

__all__ = ["attention_maps", "rollout", "flow", "mixed", "token_relevance", "head_importance", "HeadImportance",
           "find_backbone", "probe", "ProbeResult", "TASKS", "word_vectors", "contextual_vectors", "gender_direction",
           "projections", "neutralise", "weat", "WeatResult", "DEFINITIONAL_PAIRS", "OCCUPATIONS", "Tokens", "encode", "check_text", "merge_words", "word_spans"]
