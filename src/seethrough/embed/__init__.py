"""Layers as embeddings: t-SNE, PCA and UMAP maps of what each layer does to a data set.

``see.embed(model, data, layers, method)`` is the entry point; the pieces are public too::

    from seethrough.embed import collect, project, knn_accuracy, to_projector
"""
from .collect import collect, default_layers
from .core import Embedding, Separation, embed
from .crops import photo_crops, random_crops
from .export import to_json, to_projector
from .project import METHODS, max_perplexity, pca_reduce, project
from .scores import knn_accuracy, nearest, neighbor_purity, neighbor_scores

__all__ = ["embed", "Embedding", "Separation", "collect", "default_layers", "project", "pca_reduce", "max_perplexity",
           "METHODS", "knn_accuracy", "nearest", "neighbor_purity", "neighbor_scores", "random_crops", "photo_crops", "to_projector", "to_json"]
