"""Adversarial examples: how fragile is the model?

Every attack is registered in :data:`ATTACKS` and called the same way::

    see.attack(model, x, "pgd", eps=2)              # untargeted, ε = 2/255 per pixel
    see.attack(model, x, "pgd", target=859, eps=4)  # make it a toaster
"""
from .attacks import ATTACKS, Attack, project, register
from .core import AttackResult, attack, quantize
from .patch import PatchResult, Placements, apply_patch, random_placements, train_patch
from .sphere import SphereResult, sphere_test, transfer
from .training import adversarial_training, digits_model, robust_accuracy, robust_digits_model

__all__ = [
    "ATTACKS", "Attack", "AttackResult", "attack", "project", "quantize", "register",
    "PatchResult", "Placements", "apply_patch", "random_placements", "train_patch",
    "SphereResult", "sphere_test", "transfer",
    "adversarial_training", "digits_model", "robust_accuracy", "robust_digits_model",
]
