"""Looking inside a network: its layers, parameters and activations."""
from .activations import activations, pick_channels
from .examples import topk_table
from .filters import filters
from .hyperplanes import HyperplaneRun, Snapshot, hyperplanes
from .linear import FeatureImportance, breast_cancer_logistic, linear_importance
from .importance import PermutationImportance, RankAgreement, mean_abs, permutation_importance, rank_agreement, top_overlap
from .projection import project, topk_examples
from .receptive import receptive_field
from .stats import LayerStats, batch_stats, layer_stats, merge_stats, sparsity_during_training
from .summary import LayerInfo, summary
from .topk import TopK, crops, topk
from .weights import WeightHealth, high_frequency_energy, weight_health

__all__ = [
    "LayerInfo", "summary", "activations", "pick_channels", "filters", "weight_health", "WeightHealth",
    "high_frequency_energy", "linear_importance", "FeatureImportance", "breast_cancer_logistic", "layer_stats",
    "batch_stats", "merge_stats", "LayerStats", "sparsity_during_training", "topk", "TopK", "crops",
    "receptive_field", "topk_table", "project", "topk_examples", "hyperplanes", "HyperplaneRun", "Snapshot",
    "mean_abs", "permutation_importance", "PermutationImportance", "rank_agreement", "RankAgreement", "top_overlap",
]
