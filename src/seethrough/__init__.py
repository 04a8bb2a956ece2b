"""seethrough: open the black box of trained PyTorch networks.

>>> import seethrough as see
>>> sorted(see.zoo.models())
['efficientnet-lite0', 'lenet-digits', 'mlp-2d']
"""
from . import inspect, render, report, zoo
from .attribution import METHODS, attribute
from .predict import Prediction, predict
from .hooks import Recorder, hooks
from .layers import layer_names, resolve_layer
from .targets import target_indices, target_scores

__version__ = "0.1.0"

__all__ = ["attribute", "METHODS", "render", "zoo", "inspect", "report", "predict", "Prediction", "hooks", "Recorder", "layer_names", "resolve_layer", "target_indices", "target_scores", "__version__"]
