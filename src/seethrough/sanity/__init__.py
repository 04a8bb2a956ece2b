"""Sanity checks for saliency maps (Adebayo et al., 2018): does the map depend on the model and the data?

>>> import seethrough as see
>>> a = torch.arange(16.0).reshape(1, 1, 4, 4)
>>> see.sanity.similarity(a, -a, "spearman").item()
-1.0
"""
import torch  # noqa: F401  (used by the doctest)

from .badge import TrustBadge, trust_badge
from .data_randomization import DataRandomization, data_randomization
from .randomization import SanityResult, parameterised_layers, randomization, randomize_layer
from .similarity import METRICS, similarity, sobel

__all__ = ["randomization", "data_randomization", "similarity", "sobel", "SanityResult", "DataRandomization",
           "parameterised_layers", "randomize_layer", "METRICS", "TrustBadge", "trust_badge"]
