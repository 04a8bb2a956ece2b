"""Faithfulness and localisation metrics for attribution maps, each next to a random-ranking baseline.

>>> import seethrough as see
>>> sorted(see.metrics.METRICS)[:3]  # the registry: what the CLI's --metric and the report's catalogue list
['deletion', 'infidelity', 'insertion']
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
from .registry import METRICS, Metric, register_metric
from .road import impute, road

# The registry entries (the functions stay importable by name). pointing_game and mosaic need a
# mask or a labelled set rather than a map alone: they are helpers of the localisation test, not entries.
register_metric("deletion", paper="Petsiuk, Das & Saenko, 2018", better="lower")(deletion)
register_metric("insertion", paper="Petsiuk, Das & Saenko, 2018", better="higher")(insertion)
register_metric("pixel-flipping", paper="Bach et al., 2015", better="lower", area="AOPC")(pixel_flipping)
register_metric("region-perturbation", paper="Samek et al., 2017", better="lower", area="AOPC")(region_perturbation)
register_metric("road", paper="Rong et al., 2022", better="lower")(road)
register_metric("infidelity", paper="Yeh et al., 2019", better="lower", curve=False)(infidelity)
register_metric("max-sensitivity", paper="Yeh et al., 2019", better="lower", takes="method", curve=False)(max_sensitivity)

__all__ = ["deletion", "insertion", "pixel_flipping", "region_perturbation", "road", "impute", "infidelity",
           "max_sensitivity", "pointing_game", "mosaic", "Mosaics", "CurveResult", "ScoreResult", "auc", "aopc",
           "METRICS", "Metric", "register_metric"]
