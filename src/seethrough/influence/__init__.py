"""Influence functions: which training examples made the model decide this? (Koh & Liang 2017).

``see.influence(model, train, test, method=...)`` returns an :class:`Influence` whose scores are
the predicted change of each test loss if a training point were removed (positive = helping).
"""
from .core import METHODS, Influence, Validation, influence
from .solvers import EXACT_MAX_PARAMS

__all__ = ["influence", "Influence", "Validation", "METHODS", "EXACT_MAX_PARAMS"]
