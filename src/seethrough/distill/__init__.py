"""Distillation: a decision tree (or Frosst & Hinton's soft decision tree) that imitates a model."""
from .core import DEPTHS, KINDS, Step, Surrogate, distill, soft_vs_hard
from .soft_tree import SoftTree, fit_soft_tree

__all__ = ["distill", "Surrogate", "Step", "SoftTree", "fit_soft_tree", "KINDS", "DEPTHS", "soft_vs_hard"]
