"""How well classes separate in a space, from each sample's nearest neighbours.

Two scores, computed the same way in a layer's own activation space and in its 2-D
embedding, so the numbers side by side say whether the picture exaggerates or hides
structure:

* **k-NN accuracy**: leave-one-out majority vote of the ``k`` nearest other samples. On
  easy data (the digits) it is near 99 % already on raw pixels, so it hardly moves.
* **neighbour purity**: the fraction of the ``k`` nearest other samples that share the
  sample's class. With a wider neighbourhood (30) it is graded, and it is what shows
  classes pulling apart with depth.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .project import check_features


def neighbor_scores(features: torch.Tensor, labels: torch.Tensor, k: int = 5, purity_k: int = 30,
                    *, block: int = 1024) -> tuple[float, float]:
    """``(k-NN accuracy, neighbour purity)`` from one exact nearest-neighbour search.

    Euclidean distances in float64, ``block`` rows at a time (memory ``block × N``); the
    sample itself is left out; a tied vote goes to the smallest class index, as in
    scikit-learn's ``KNeighborsClassifier``. ``purity_k`` is capped at ``N - 1``.

    >>> f = torch.tensor([[0.0], [0.1], [0.2], [5.0], [5.1], [5.2]])
    >>> neighbor_scores(f, torch.tensor([0, 0, 0, 1, 1, 1]), k=2, purity_k=3)
    (1.0, 0.6666666666666666)
    """
    features = check_features(features)
    n = len(features)
    labels = _check_labels(labels, n)
    for name, v in (("k", k), ("purity_k", purity_k)):
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v:
            raise ValueError(f"{name} must be a positive int (neighbours per sample), got {v!r}")
    if k >= n:
        raise ValueError(f"k must be at most N - 1 = {n - 1} for {n} samples, got {k}")
    purity_k = min(purity_k, n - 1)
    f = features.detach().to(torch.float64)
    y = labels.to(f.device)
    n_classes = int(y.max()) + 1
    correct, same = 0, 0
    for start in range(0, n, block):
        stop = min(start + block, n)
        d = torch.cdist(f[start:stop], f)
        d[torch.arange(stop - start), torch.arange(start, stop)] = float("inf")  # leave the sample itself out
        nearest = y[d.topk(max(k, purity_k), largest=False).indices]  # sorted, nearest first
        votes = F.one_hot(nearest[:, :k], n_classes).sum(1)
        correct += int((votes.argmax(1) == y[start:stop]).sum())  # argmax takes the first maximum
        same += int((nearest[:, :purity_k] == y[start:stop, None]).sum())
    return correct / n, same / (n * purity_k)


def knn_accuracy(features: torch.Tensor, labels: torch.Tensor, k: int = 5) -> float:
    """Leave-one-out accuracy of a ``k``-nearest-neighbour majority vote (Euclidean).

    >>> f = torch.tensor([[0.0], [0.1], [0.2], [5.0], [5.1], [5.2]])
    >>> knn_accuracy(f, torch.tensor([0, 0, 0, 1, 1, 1]), k=2)
    1.0
    """
    return neighbor_scores(features, labels, k, 1)[0]


def neighbor_purity(features: torch.Tensor, labels: torch.Tensor, k: int = 30) -> float:
    """Mean fraction of each sample's ``k`` nearest other samples that share its class.

    >>> f = torch.tensor([[0.0], [0.1], [5.0], [5.1]])
    >>> neighbor_purity(f, torch.tensor([0, 0, 1, 1]), k=1)
    1.0
    """
    return neighbor_scores(features, labels, 1, k)[1]


def _check_labels(labels: object, n: int) -> torch.Tensor:
    if not isinstance(labels, torch.Tensor):
        labels = torch.as_tensor(labels)
    if labels.dim() != 1 or len(labels) != n:
        raise ValueError(f"labels must be a 1-D sequence of {n} class indices (one per sample), got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.dtype == torch.bool or (len(labels) and int(labels.min()) < 0):
        raise ValueError("labels must be non-negative integer class indices (int64), e.g. the y of see.zoo.digits()")
    return labels.long()


def nearest(features: torch.Tensor, query: int, k: int = 5) -> torch.Tensor:
    """Indices of the ``k`` rows of ``features`` closest to row ``query`` (Euclidean, itself
    left out), nearest first.

    >>> nearest(torch.tensor([[0.0], [0.1], [0.3], [5.0]]), 0, k=2).tolist()
    [1, 2]
    """
    features = check_features(features)
    n = len(features)
    if isinstance(query, bool) or not isinstance(query, int) or not -n <= query < n:
        raise ValueError(f"query must be a row index in 0..{n - 1}, got {query!r}")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k < n:
        raise ValueError(f"k must be an int in 1..{n - 1} (neighbours of one of {n} rows), got {k!r}")
    f = features.detach().to(torch.float64)
    query %= n  # a negative index counts from the end, as in Python
    d = torch.cdist(f[query:query + 1], f)[0]
    d[query] = float("inf")
    return d.topk(k, largest=False).indices
