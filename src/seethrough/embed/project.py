"""Projecting ``(N, D)`` features to 2-D: t-SNE (openTSNE, scikit-learn fallback), PCA, UMAP.

The libraries work on float64 numpy arrays; conversion happens here, at the boundary, and
the coordinates come back as a tensor on the features' device and dtype. Every method is
seeded: the same seed gives the same picture, bit for bit.
"""
from __future__ import annotations

import warnings

import torch

from ..inputs import check_finite
from ..progress import bar as progress_bar, report

METHODS = ("tsne", "pca", "umap")
BACKENDS = ("auto", "opentsne", "sklearn")


def check_features(features: object, *, name: str = "features") -> torch.Tensor:
    """An ``(N, D)`` float tensor whose rows are not all identical."""
    if not isinstance(features, torch.Tensor):
        raise TypeError(f"{name} must be an (N, D) torch.Tensor, got {type(features).__name__}")
    if features.dim() != 2:
        raise ValueError(f"{name} must have shape (N, D), one row per sample, got {tuple(features.shape)}; flatten it with .flatten(1)")
    check_finite(features, name=name)
    if len(features) < 2:
        raise ValueError(f"{name} has {len(features)} sample; an embedding needs at least 2 (t-SNE and UMAP at least 4)")
    if bool((features == features[:1]).all()):
        raise ValueError(f"{name}: the activations are constant over all {len(features)} samples (a dead or saturated layer?), so there is nothing to embed; pick another layer")
    return features


def pca_reduce(features: torch.Tensor, dims: int | None = 50, *, seed: int = 0) -> torch.Tensor:
    """The first ``dims`` principal components of ``features`` (unchanged when ``D <= dims``
    or ``dims`` is None): the usual denoising and speed-up before t-SNE or UMAP.

    >>> f = torch.randn(20, 8, generator=torch.Generator().manual_seed(0))
    >>> pca_reduce(f, 3).shape, pca_reduce(f, None).shape
    (torch.Size([20, 3]), torch.Size([20, 8]))
    """
    features = check_features(features)
    if dims is None or dims == 0:
        return features
    if isinstance(dims, bool) or not isinstance(dims, int) or dims < 2:
        raise ValueError(f"pca must be None (no reduction) or an int >= 2 of dimensions to keep, got {dims!r}")
    if features.shape[1] <= dims:
        return features
    from sklearn.decomposition import PCA

    k = min(dims, len(features))
    out = PCA(n_components=k, random_state=seed).fit_transform(_numpy(features))
    return _back(out, features)


def max_perplexity(n: int) -> float:
    """The largest perplexity ``n`` samples support: t-SNE looks at ``3 × perplexity`` neighbours.

    >>> max_perplexity(100)
    33.0
    """
    return (n - 1) / 3


def project(
    features: torch.Tensor,
    method: str = "tsne",
    *,
    seed: int = 0,
    perplexity: float = 30.0,
    pca: int | None = 50,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    init: str = "pca",
    backend: str = "auto",
    n_jobs: int = 1,
    progress: bool = True,
) -> torch.Tensor:
    """Project ``(N, D)`` features to ``(N, 2)`` coordinates.

    ``method``: ``"tsne"`` (openTSNE: Barnes-Hut below 10 000 samples, FFT-accelerated
    interpolation above, openTSNE's own choice; ``backend="sklearn"``
    or a missing openTSNE uses scikit-learn's Barnes-Hut TSNE), ``"pca"`` or ``"umap"``
    (needs umap-learn). ``pca``: reduce to that many principal components first (t-SNE and
    UMAP only; None to skip). A perplexity above what ``N`` samples support is clamped with
    a warning, and so is ``n_neighbors``. ``init``: t-SNE's starting layout, ``"pca"``
    (stable global structure; the seed then matters little) or ``"random"`` (the seed
    decides the layout: the pitfall the report shows). t-SNE reports its progress as
    ``("t-SNE", iterations done, iterations)`` (scikit-learn: ``0/1`` then ``1/1``) to
    :mod:`seethrough.progress`; a listener raising ``Cancelled`` stops it. Its bar is drawn by
    :func:`seethrough.progress.bar`'s rule; ``progress=False`` hides it.

    >>> f = torch.randn(50, 10, generator=torch.Generator().manual_seed(0))
    >>> a = project(f, "tsne", seed=1, perplexity=10)
    >>> torch.equal(a, project(f, "tsne", seed=1, perplexity=10)), a.shape
    (True, torch.Size([50, 2]))
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(map(repr, METHODS))}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(map(repr, BACKENDS))}")
    features = check_features(features)
    n = len(features)
    if method == "pca":
        from sklearn.decomposition import PCA

        if features.shape[1] < 2:
            raise ValueError(f"PCA to 2-D needs at least 2 feature dimensions, got {features.shape[1]}")
        return _back(PCA(n_components=2, random_state=seed).fit_transform(_numpy(features)), features)
    if n < 4:
        raise ValueError(f"{method} needs at least 4 samples, got {n}; use method='pca' for so few")
    reduced = pca_reduce(features, pca, seed=seed)
    if method == "umap":
        return _back(_umap(_numpy(reduced), n_neighbors, min_dist, seed), features)
    if init not in ("pca", "random"):
        raise ValueError(f"init must be 'pca' or 'random', got {init!r}")
    return _back(_tsne(_numpy(reduced), _clamp_perplexity(perplexity, n), seed, init, backend, n_jobs, progress), features)


def _clamp_perplexity(perplexity: float, n: int) -> float:
    if isinstance(perplexity, bool) or not isinstance(perplexity, (int, float)) or not perplexity > 0:
        raise ValueError(f"perplexity must be a positive number (5 to 50 is usual), got {perplexity!r}")
    top = max_perplexity(n)
    if perplexity > top:
        warnings.warn(f"perplexity {perplexity:g} is too high for {n} samples (t-SNE needs 3 × perplexity < N); using {top:g}",
                      UserWarning, stacklevel=3)
        return top
    return float(perplexity)


_TSNE = "t-SNE"
_EARLY_ITERS, _ITERS = 250, 500  # openTSNE's defaults, spelled out so the reported total is right
# openTSNE computes the KL divergence for each callback call, so not every iteration; 25
# divides both phases, so the last call reports the total.
_REPORT_EVERY = 25


class _Iterations:
    """An openTSNE callback that reports iterations across both phases (each phase counts
    from 1 again in openTSNE). Returning False means "go on"; a ``Cancelled`` raised by the
    listener passes through openTSNE untouched (it only catches its own interrupt)."""

    def __init__(self, total: int, bar=None):
        self.done, self.total, self.bar = 0, total, bar

    def __call__(self, iteration: int, error: float, embedding) -> bool:
        self.done += _REPORT_EVERY
        if self.bar is not None:
            self.bar.update(_REPORT_EVERY)
        report(_TSNE, self.done, self.total)
        return False


def _tsne(x, perplexity: float, seed: int, init: str, backend: str, n_jobs: int, progress: bool = True):
    if backend in ("auto", "opentsne"):
        try:
            import openTSNE
        except ImportError:
            if backend == "opentsne":
                raise ImportError("backend='opentsne' needs openTSNE: pip install openTSNE") from None
        else:
            total = _EARLY_ITERS + _ITERS
            bar = progress_bar(total=total, desc=_TSNE, unit="it", progress=progress)
            tsne = openTSNE.TSNE(n_components=2, perplexity=perplexity, random_state=seed, n_jobs=n_jobs,
                                 negative_gradient_method="auto", initialization=init, verbose=False,
                                 early_exaggeration_iter=_EARLY_ITERS, n_iter=_ITERS,
                                 callbacks=_Iterations(total, bar), callbacks_every_iters=_REPORT_EVERY)
            report(_TSNE, 0, total)
            with bar:
                return tsne.fit(x).view(type(x))  # a plain ndarray, not openTSNE's embedding object
    from sklearn.manifold import TSNE

    # scikit-learn has no iteration callback: report the phase only.
    report(_TSNE, 0, 1)
    out = TSNE(n_components=2, perplexity=perplexity, init=init, random_state=seed, n_jobs=n_jobs).fit_transform(x)
    report(_TSNE, 1, 1)
    return out


def _umap(x, n_neighbors: int, min_dist: float, seed: int):
    try:
        import umap
    except ImportError:
        raise ImportError("method='umap' needs umap-learn: pip install 'seethrough[umap]' (or pip install umap-learn)") from None
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, int) or n_neighbors < 2:
        raise ValueError(f"n_neighbors must be an int >= 2 (15 is usual), got {n_neighbors!r}")
    if not 0 <= min_dist <= 1:
        raise ValueError(f"min_dist must lie in [0, 1] (0.1 is usual), got {min_dist!r}")
    if n_neighbors >= len(x):
        warnings.warn(f"n_neighbors {n_neighbors} is too high for {len(x)} samples; using {len(x) - 1}", UserWarning, stacklevel=3)
        n_neighbors = len(x) - 1
    with warnings.catch_warnings():
        # umap warns that a fixed random_state disables parallelism: that is the point of a seed.
        warnings.filterwarnings("ignore", message=".*n_jobs.*")
        reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, random_state=seed)
        return reducer.fit_transform(x)


def _numpy(t: torch.Tensor):
    return t.detach().to("cpu", torch.float64).numpy()


def _back(a, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(a.copy(order="C")).to(device=like.device, dtype=like.dtype)
