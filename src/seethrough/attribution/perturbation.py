"""Attribution methods of the perturbation family: change the input, watch the score.

Importing this module registers ``occlusion``, ``lime``, ``kernel-shap`` and ``rise``; all four
share :mod:`.masking` (baselines, batched scoring of masked copies) and so run on the
batching engine of :mod:`seethrough.batching`. They serve images, tabular rows (a switched-off
feature takes the background's values) and token ids (a switched-off token becomes the mask/pad
id): docs/boundary.md, docs/tabular.md.
"""
from .masking import Positions, position_scores, positions
from .occlusion import OcclusionDrops, occlusion, occlusion_drops, occlusion_positions, occlusion_windows
from .rise import RiseMasks, rise
from .superpixels import superpixels
from .surrogate import SuperpixelExplanation, kernel_shap, lime, position_segments, shapley_kernel, weighted_ridge

__all__ = ["occlusion", "occlusion_drops", "OcclusionDrops", "occlusion_windows", "occlusion_positions", "lime",
           "kernel_shap", "rise", "RiseMasks", "superpixels", "SuperpixelExplanation", "shapley_kernel", "weighted_ridge",
           "Positions", "positions", "position_scores", "position_segments"]
