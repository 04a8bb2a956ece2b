"""The soft decision tree of Frosst & Hinton 2017, "Distilling a neural network into a soft decision tree".

Each inner node ``i`` sends an input right with probability ``σ(β (w_i·x + b_i))`` (``β``: the
inverse temperature); each leaf holds a class distribution ``softmax(φ_ℓ)``. Training minimises,
for the model's soft targets ``T``, ``−log Σ_ℓ P_ℓ(x) Σ_k T_k log Q_ℓk`` plus the penalty that
pushes every inner node to use both sub-trees equally, weighted ``λ·2^(−depth)``. Prediction
follows the single most probable path.
"""
from __future__ import annotations

import torch
from torch import nn

from ..deprecation import renamed
from ..progress import bar


class SoftTree(nn.Module):
    """A complete soft binary tree of ``depth`` levels of inner nodes over flattened inputs.

    >>> t = SoftTree(4, 3, depth=2)
    >>> [p.shape for p in t.path_probs(torch.zeros(5, 4))]
    [torch.Size([5, 1]), torch.Size([5, 2]), torch.Size([5, 4])]
    """

    def __init__(self, features: int, classes: int, depth: int, beta: float = 1.0) -> None:
        super().__init__()
        self.depth, self.beta = depth, beta
        self.inner = nn.Linear(features, 2 ** depth - 1)  # node i of level d is row 2^d - 1 + i
        self.leaves = nn.Parameter(torch.zeros(2 ** depth, classes))

    def right_probs(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.beta * self.inner(x.flatten(1)))

    def path_probs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Probability of reaching each node, level by level: ``[(N, 1), (N, 2), …, (N, 2^depth)]``."""
        right = self.right_probs(x)
        levels = [torch.ones(len(x), 1, dtype=right.dtype, device=right.device)]
        for d in range(self.depth):
            r = right[:, 2 ** d - 1: 2 ** (d + 1) - 1]
            p = levels[-1]
            levels.append(torch.stack([p * (1 - r), p * r], dim=2).flatten(1))  # children 2i (left), 2i+1 (right)
        return levels

    def leaf_index(self, x: torch.Tensor) -> torch.Tensor:
        """The leaf at the end of the most probable path (greedy: each node's likelier branch)."""
        right = self.right_probs(x) > 0.5
        node = torch.zeros(len(x), dtype=torch.long, device=right.device)
        rows = torch.arange(len(x), device=right.device)
        for d in range(self.depth):
            node = 2 * node + right[rows, 2 ** d - 1 + node].long()
        return node

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities of the max-path leaf."""
        return self.leaves.softmax(1)[self.leaf_index(x)]

    def loss(self, x: torch.Tensor, soft_targets: torch.Tensor, penalty: float) -> torch.Tensor:
        levels = self.path_probs(x)
        leaf_p = levels[-1]
        log_q = self.leaves.log_softmax(1)                              # (L, K)
        cross = soft_targets @ log_q.T                                  # (N, L): Σ_k T_k log Q_ℓk
        loss = -torch.logsumexp(torch.log(leaf_p.clamp_min(1e-12)) + cross, dim=1).mean()
        right = self.right_probs(x)
        for d in range(self.depth):
            p = levels[d]
            r = right[:, 2 ** d - 1: 2 ** (d + 1) - 1]
            alpha = (p * r).sum(0) / p.sum(0).clamp_min(1e-12)
            alpha = alpha.clamp(1e-6, 1 - 1e-6)
            loss = loss - penalty * 2.0 ** (-d) * 0.5 * (alpha.log() + (1 - alpha).log()).sum()
        return loss


@renamed(lr="step_size", batch="batch_size")
def fit_soft_tree(x: torch.Tensor, soft_targets: torch.Tensor, depth: int, *, beta: float = 1.0, penalty: float = 0.1,
                  epochs: int = 40, step_size: float = 0.01, batch_size: int = 64, seed: int = 0,
                  progress: bool = True) -> SoftTree:
    """Train a :class:`SoftTree` on the model's soft targets (Adam with learning rate ``step_size``, minibatches
    of ``batch_size``, seeded; ``progress``: a bar over the epochs).

    >>> t = fit_soft_tree(torch.rand(8, 2), torch.full((8, 2), 0.5), 2, epochs=2, progress=False)
    >>> tuple(t(torch.rand(3, 2)).shape)
    (3, 2)
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # initialised on the CPU (the same tree on every device), then moved to the data's device
        tree = SoftTree(x[0].numel(), soft_targets.shape[1], depth, beta).to(x.device)
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(tree.parameters(), lr=step_size)
        flat = x.flatten(1)
        for _ in bar(range(epochs), desc="soft tree", progress=progress):
            order = torch.randperm(len(x), generator=gen).to(x.device)  # one copy per epoch, not per step
            for a in range(0, len(x), batch_size):
                idx = order[a:a + batch_size]
                opt.zero_grad(set_to_none=True)
                tree.loss(flat[idx], soft_targets[idx], penalty).backward()
                opt.step()
    return tree.eval()
