"""Concepts: does the model use this human concept? CAVs and TCAV (Kim et al. 2018), concept sets offline."""
from .cav import CAV, cav
from .flips import flip_rate
from .sets import KINDS, crops, procedural, random_sets, stamp, stamp_mixed
from .tcav import LayerTCAV, TCAVResult, directional_grads, tcav

__all__ = ["cav", "CAV", "tcav", "TCAVResult", "LayerTCAV", "directional_grads", "procedural", "crops", "stamp",
           "random_sets", "stamp_mixed", "KINDS", "flip_rate"]
