"""Optimising inputs: activation maximisation, class models, DeepDream, feature inversion.

>>> import seethrough as see
>>> see.optimize.parse("channel:blocks.10:17").layers
('blocks.10',)
"""
from . import objectives, param, priors, transforms
from .deepdream import dream
from .engine import Visualization
from .inversion import Inversion, invert
from .objectives import Objective, channel, direction, diversity, layer_l2, log_prob, logit, neuron, parse, stack
from .similarity import layout_correlation, ssim
from .maximize import visualize

__all__ = [
    "visualize", "dream", "invert", "Visualization", "Inversion", "Objective", "parse", "logit", "log_prob",
    "neuron", "channel", "layer_l2", "direction", "diversity", "stack", "ssim", "layout_correlation",
    "objectives", "param", "priors", "transforms",
]
