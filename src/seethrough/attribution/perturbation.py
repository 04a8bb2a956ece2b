"""Attribution methods of the perturbation family: change the input, watch the score.

Importing this module registers ``occlusion``, ``lime``, ``kernel-shap`` and ``rise``; all four
share :mod:`.masking` (baselines, batched scoring of masked copies) and so run on the
batching engine of :mod:`seethrough.batching`.
"""
from .occlusion import OcclusionDrops, occlusion, occlusion_drops, occlusion_windows
from .rise import RiseMasks, rise
from .superpixels import superpixels
from .surrogate import SuperpixelExplanation, kernel_shap, lime, shapley_kernel, weighted_ridge

__all__ = ["occlusion", "occlusion_drops", "OcclusionDrops", "occlusion_windows", "lime", "kernel_shap", "rise", "RiseMasks", "superpixels",
           "SuperpixelExplanation", "shapley_kernel", "weighted_ridge"]
