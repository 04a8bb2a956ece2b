"""Faithfulness and localisation metrics for attribution maps, each next to a random-ranking baseline.

>>> import seethrough as see
>>> sorted(see.metrics.__all__)[:3]
['CurveResult', 'Mosaics', 'ScoreResult']
"""
from .curves import CurveResult, aopc, auc
from .deletion import deletion
from .infidelity import infidelity
from .insertion import insertion
from .max_sensitivity import max_sensitivity
from .mosaic import Mosaics, mosaic
from .pixel_flipping import pixel_flipping
from .pointing_game import pointing_game
from .region_perturbation import region_perturbation
from .result import ScoreResult
from .road import impute, road

__all__ = ["deletion", "insertion", "pixel_flipping", "region_perturbation", "road", "impute", "infidelity",
           "max_sensitivity", "pointing_game", "mosaic", "Mosaics", "CurveResult", "ScoreResult", "auc", "aopc"]
