"""Everything visual: numpy/PIL/matplotlib live here, never in the computation."""
# One import line per render module; each family adds its own.
from .optimize import figure_to_image, gallery, trace_plot  # noqa: F401
from .lime import lime_mask, superpixel_boundaries  # noqa: F401
from .heatmap import attribution_figure, overlay, panel  # noqa: F401
from .scatter import embedding, scatter, scatter_grid  # noqa: F401
from .grids import (activation_figure, channel_grid, channel_tiles, filter_figure, filter_grid, tile,  # noqa: F401
                    topk_caption, topk_figure, topk_grid)
from .readable import constant_units, for_display, grid_shape, is_signed, robust_scale, save_picture  # noqa: F401
from .plots import histogram_plot, importance_plot, sparsity_plot, weight_health_plot  # noqa: F401
from .animation import hyperplane_frame, hyperplane_frames, save_gif  # noqa: F401
from .adversarial import attack_figure, difference, patch_figure, robustness_plot, save_png  # noqa: F401
from .trust import badge_strip, faithfulness_figure, sanity_figure, side_by_side  # noqa: F401
from .concepts import fidelity_plot, influence_gallery, loo_scatter, tcav_plot, tree_plot  # noqa: F401
from .tabular import feature_bars, importance_bars, rank_heatmap, summary_plot, waterfall, waterfall_steps  # noqa: F401
from .scan import activation_atlas_image, atlas_pages, dissection_plot, histogram_image, unit_image  # noqa: F401
from .text import attention_html, head_view, model_view, probe_plot, projection_bars, tokens_html, tokens_image  # noqa: F401
