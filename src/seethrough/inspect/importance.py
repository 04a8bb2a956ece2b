"""Global feature importance for tabular models, and how far two importance rankings agree.

Attribution methods explain one row; a global importance is one number per feature over many
rows. :func:`mean_abs` reduces per-row attributions to the mean |attribution| per feature;
:func:`permutation_importance` measures the drop in accuracy when one column is shuffled among
the rows (Breiman, 2001), which needs no gradients and no baseline. :func:`rank_agreement` and
:func:`top_overlap` compare rankings: Spearman's ρ and Kendall's τ-b (ties allowed) between every
pair of methods, and how many of the top-k features two methods share.

>>> imp = {"a": torch.tensor([3., 2., 1.]), "b": torch.tensor([1., 2., 3.])}
>>> rank_agreement(imp).spearman.tolist()
[[1.0, -1.0], [-1.0, 1.0]]
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..results import ResultProtocol, records


def mean_abs(attributions: torch.Tensor) -> torch.Tensor:
    """The mean |attribution| per feature of ``(N, F)`` per-row attributions, in float64.

    >>> mean_abs(torch.tensor([[1., -2.], [-3., 0.]])).tolist()
    [2.0, 1.0]
    """
    if not isinstance(attributions, torch.Tensor) or attributions.dim() != 2 or attributions.shape[0] == 0:
        raise ValueError("attributions must be a non-empty (rows, features) tensor, got "
                         f"{tuple(attributions.shape) if isinstance(attributions, torch.Tensor) else type(attributions).__name__}")
    return attributions.detach().double().abs().mean(0)


@dataclass(frozen=True)
class PermutationImportance(ResultProtocol):
    """Mean and std over the repeats of the accuracy drop when a column is shuffled; ``accuracy`` unshuffled."""

    mean: torch.Tensor  # (F,) float64
    std: torch.Tensor  # (F,) float64
    accuracy: float
    repeats: int
    options: dict = field(default_factory=dict)
    seed: int | None = None


@records("model", "rows", "labels")
def permutation_importance(model: nn.Module, rows: torch.Tensor, labels: torch.Tensor, *, repeats: int = 10,
                           seed: int = 0) -> PermutationImportance:
    """The drop in ``model``'s accuracy on ``(rows, labels)`` when each column in turn is shuffled among the rows.

    Every (repeat, feature) pair gets its own permutation from one generator seeded with ``seed``;
    all ``repeats × F`` shuffled copies are scored in one batched forward (eval mode, the model
    left as found).

    >>> net = torch.nn.Linear(2, 2)
    >>> with torch.no_grad():
    ...     _ = net.weight.copy_(torch.tensor([[1., 0.], [-1., 0.]])); _ = net.bias.zero_()
    >>> x = torch.randn(200, 2, generator=torch.Generator().manual_seed(0)); y = (x[:, 0] < 0).long()
    >>> r = permutation_importance(net, x, y, repeats=3)
    >>> r.accuracy, r.mean[1].item() == 0.0, r.mean[0].item() > 0.3
    (1.0, True, True)
    """
    from ..hooks import hooks

    if not isinstance(rows, torch.Tensor) or rows.dim() != 2:
        raise ValueError(f"rows must be a (N, features) tensor, got {getattr(rows, 'shape', type(rows).__name__)}")
    labels = torch.as_tensor(labels)
    if labels.shape != (rows.shape[0],):
        raise ValueError(f"labels must have one entry per row ({rows.shape[0]}), got shape {tuple(labels.shape)}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive int, got {repeats!r}")
    n, f = rows.shape
    g = torch.Generator().manual_seed(seed)
    perms = torch.stack([torch.randperm(n, generator=g) for _ in range(repeats * f)]).view(repeats, f, n)
    shuffled = rows.detach().unsqueeze(0).unsqueeze(0).repeat(repeats, f, 1, 1)  # (R, F, N, F)
    for j in range(f):  # copy (r, j) gets column j in the order perms[r, j]; the other columns stay in place
        shuffled[:, j, :, j] = rows.detach()[perms[:, j], j]
    with hooks(model), torch.no_grad():  # eval mode, the model left as found
        out = model(torch.cat([rows.detach(), shuffled.reshape(-1, f)]))
    correct = out.argmax(1).cpu() == labels.cpu().repeat(1 + repeats * f)
    base = correct[:n].double().mean()
    acc = correct[n:].view(repeats, f, n).double().mean(2)
    drop = base - acc
    return PermutationImportance(drop.mean(0), drop.std(0, unbiased=repeats > 1) if repeats > 1 else torch.zeros(f, dtype=torch.float64),
                                 float(base), repeats)


@dataclass(frozen=True)
class RankAgreement(ResultProtocol):
    """Pairwise Spearman ρ and Kendall τ-b between the importance vectors of ``names``."""

    names: list[str]
    spearman: torch.Tensor  # (M, M) float64
    kendall: torch.Tensor  # (M, M) float64
    options: dict = field(default_factory=dict)
    seed: int | None = None


@records("importances")
def rank_agreement(importances: dict[str, torch.Tensor]) -> RankAgreement:
    """Spearman's ρ and Kendall's τ-b between every pair of per-feature importance vectors.

    A constant vector has no ranking: its correlations are NaN, not a made-up number.

    >>> r = rank_agreement({"x": torch.tensor([1., 2, 3, 4]), "y": torch.tensor([1., 3, 2, 4])})
    >>> round(r.spearman[0, 1].item(), 3), round(r.kendall[0, 1].item(), 3)
    (0.8, 0.667)
    """
    import warnings

    from scipy.stats import kendalltau, spearmanr

    names = list(importances)
    vecs = [torch.as_tensor(v).detach().double().cpu().reshape(-1).numpy() for v in importances.values()]
    if len({len(v) for v in vecs}) > 1:
        raise ValueError(f"importance vectors have different lengths {[len(v) for v in vecs]}; give one value per feature each")
    m = len(vecs)
    rho = torch.ones(m, m, dtype=torch.float64)
    tau = torch.ones(m, m, dtype=torch.float64)
    with warnings.catch_warnings():  # a constant vector: scipy warns and returns NaN, which is the answer
        warnings.simplefilter("ignore")
        for i in range(m):
            for j in range(i + 1, m):
                rho[i, j] = rho[j, i] = float(spearmanr(vecs[i], vecs[j]).statistic)
                tau[i, j] = tau[j, i] = float(kendalltau(vecs[i], vecs[j]).statistic)
    return RankAgreement(names, rho, tau)


def top_features(importance: torch.Tensor, k: int) -> list[int]:
    """Indices of the ``k`` largest values, largest first (ties keep the feature order).

    >>> top_features(torch.tensor([0.1, 0.5, 0.5, 0.2]), 3)
    [1, 2, 3]
    """
    return torch.sort(torch.as_tensor(importance).detach().double(), descending=True, stable=True).indices[:k].tolist()


def top_overlap(a: torch.Tensor, b: torch.Tensor, k: int = 5) -> int:
    """How many of the top-``k`` features of ``a`` are also in the top-``k`` of ``b``.

    >>> top_overlap(torch.tensor([4., 3, 2, 1]), torch.tensor([1., 3, 4, 2]), k=2)
    1
    """
    return len(set(top_features(a, k)) & set(top_features(b, k)))
