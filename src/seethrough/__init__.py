"""seethrough: open the black box of trained PyTorch networks.

>>> import seethrough as see
>>> sorted(see.zoo.models())
['efficientnet-lite0', 'lenet-digits', 'logreg-digits', 'minilm-l6', 'minilm-l6-topics', 'mlp-2d', 'mlp-breast-cancer']
"""
from . import inspect, render, report, zoo
from . import metrics, progress, sanity
from .attribution import METHODS, attribute
from .predict import Prediction, predict
from .hooks import Recorder, hooks
from .boundary import Boundary, boundary  # the function shadows the module, like embed
from .layers import layer_names, resolve_layer
from .targets import target_indices, target_scores
from .attribution.gradient import IGResult, integrated_gradients
from .attribution.perturbation import SuperpixelExplanation, kernel_shap, lime, superpixels
from . import optimize
from .optimize import Inversion, Visualization, dream, invert, visualize
from .embed import Embedding, embed  # the function `embed` shadows the subpackage: import pieces with `from seethrough.embed import …`
from .inspect import activations, filters, hyperplanes, layer_stats, topk, weight_health
from .adversarial import ATTACKS, AttackResult, adversarial_training, attack, robust_accuracy, sphere_test, train_patch, transfer
from .influence import Influence, influence  # the function shadows the subpackage, like embed
from . import concepts
from . import text  # attention, probing, word-embedding bias (transformers is imported only when used)
from .distill import Surrogate, distill  # the function shadows the subpackage, like embed
from .web import explore  # fastapi is imported only when the explorer starts
from .scan import scan  # the function shadows the subpackage, like embed; dask is imported only by engine="dask"

from ._version import __version__  # noqa: E402  (its own module: report and web stamp it)

__all__ = ["boundary", "Boundary", "attribute", "METHODS", "render", "zoo", "inspect", "report", "predict", "Prediction", "hooks", "Recorder", "layer_names", "resolve_layer", "target_indices", "target_scores", "integrated_gradients", "IGResult", "lime", "kernel_shap", "superpixels", "SuperpixelExplanation", "optimize", "visualize", "dream", "invert", "Visualization", "Inversion", "embed", "Embedding", "activations", "filters", "hyperplanes", "layer_stats", "topk", "weight_health", "ATTACKS", "AttackResult", "attack", "sphere_test", "transfer", "train_patch", "adversarial_training", "robust_accuracy", "sanity", "metrics", "progress", "explore", "scan", "text", "__version__"]
