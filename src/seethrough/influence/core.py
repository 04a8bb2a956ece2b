"""``see.influence``: which training examples made the model decide this? (Koh & Liang 2017).

The score of training point ``i`` for test point ``t`` is the **predicted change of the test
loss if ``i`` is removed from the training set** (and the model retrained to optimality):

    score[t, i] = (1/n) · ∇L_tᵀ (H + λI)⁻¹ ∇L_i        (= −(1/n) · I_up,loss of Koh & Liang)

in loss units, where ``H`` is the Hessian of the *mean* training loss at the trained
parameters and ``λ`` the damping. Positive: removing the point would raise the test loss, so
the point was *helping*; negative: it was *harmful*.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..batching import check_batch_size, run_batched
from ..hooks import hooks
from ..results import ResultProtocol, records
from . import ekfac as _ekfac
from .grads import Flat, Loss, check_loss, cross_entropy, hessian, hvp, select
from .solvers import EXACT_MAX_PARAMS, cg, exact_inverse, lissa, top_eigenvalue

METHODS = ("exact", "cg", "lissa", "ekfac", "tracin")


@dataclass
class Validation(ResultProtocol):
    """Leave-one-out check: predicted vs actual change of one test loss after removing each point."""

    indices: torch.Tensor
    predicted: torch.Tensor
    actual: torch.Tensor
    pearson: float
    spearman: float
    test: int
    options: dict = field(default_factory=dict)
    seed: int | None = None

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame({"train_index": self.indices.tolist(), "predicted": self.predicted.tolist(),
                             "actual": self.actual.tolist()})


@dataclass
class Influence(ResultProtocol):
    """Influence scores ``(n_test, n_train)``: predicted test-loss change if a training point is removed.

    Positive = the training point was helping that test point, negative = harmful (loss units).
    """

    scores: torch.Tensor
    method: str
    damping: float
    options: dict[str, Any]
    train: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    test_loss: torch.Tensor
    _self: Callable[[], torch.Tensor] = field(repr=False, default=None)
    _loss: Loss = field(repr=False, default=None)
    seed: int | None = None  # influence draws nothing at random
    _transient = ("_self", "_loss")  # live closures over the model: a loaded result has scores, not self_influence()

    def summary(self) -> str:
        return (f"{self.method} influence of {self.scores.shape[1]} training points on {self.scores.shape[0]} test "
                f"points (damping {self.damping:g}); largest |score| {float(self.scores.abs().max()):.3g}")

    def to_frame(self):
        """One row per test × training point: the score."""
        import pandas as pd

        t, r = self.scores.shape
        return pd.DataFrame({"test": torch.arange(t).repeat_interleave(r).tolist(), "train": torch.arange(r).repeat(t).tolist(),
                             "score": self.scores.double().flatten().tolist()})

    def _check_test(self, test: int) -> int:
        n = self.scores.shape[0]
        if isinstance(test, bool) or not isinstance(test, int) or not -n <= test < n:
            raise ValueError(f"test index {test!r} out of range: there are {n} test points (0..{n - 1})")
        return test % n

    def top(self, k: int = 8, kind: str = "helpful", test: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """``(indices, scores)`` of the ``k`` most helpful (largest positive) or harmful (most negative) points.

        >>> import torch
        >>> r = Influence(torch.tensor([[0.5, -2.0, 1.0]]), "exact", 0.0, {}, (None, None), (None, None), torch.zeros(1))
        >>> r.top(1, "helpful")[0].tolist(), r.top(1, "harmful")[0].tolist()
        ([2], [1])
        """
        if kind not in ("helpful", "harmful"):
            raise ValueError(f"kind must be 'helpful' or 'harmful', got {kind!r}")
        s = self.scores[self._check_test(test)]
        k = min(int(k), s.numel())
        vals, idx = s.topk(k, largest=kind == "helpful")
        return idx, vals

    def self_influence(self) -> torch.Tensor:
        """``(n_train,)``: each point's influence on its own loss, ``(1/n)·∇L_iᵀ(H+λI)⁻¹∇L_i`` (TracIn: Σ lr·‖∇L_i‖²).

        Large values mark points the model had to bend to fit: mislabelled ones rank first.
        """
        if self._self is None:
            raise ValueError("self-influence needs the training gradients; this result was built without them")
        return self._self()

    @records("retrain")
    def validate(self, k: int, retrain: Callable[[torch.Tensor], nn.Module], test: int = 0) -> Validation:
        """Retrain without each of the ``k`` top-|score| points and compare with the predicted changes.

        ``retrain(keep)`` gets the kept training indices and returns a trained model; it is
        called once with every index as the reference, then once per removed point.
        """
        t = self._check_test(test)
        if not isinstance(k, int) or k < 2:
            raise ValueError(f"validate needs k >= 2 points to correlate, got {k!r}")
        n = self.scores.shape[1]
        idx = self.scores[t].abs().topk(min(k, n)).indices
        xt, yt = self.test[0][t:t + 1], self.test[1][t:t + 1]

        def test_loss(m: nn.Module) -> float:
            with hooks(m), torch.no_grad():
                out = m(xt.to(next(m.parameters()).dtype))
                return float(self._loss(out.double(), yt).sum())

        everything = torch.arange(n)
        base = test_loss(retrain(everything))
        actual = torch.tensor([test_loss(retrain(everything[everything != i])) - base for i in idx.tolist()],
                              dtype=torch.float64)
        predicted = self.scores[t, idx].double()
        return Validation(idx, predicted, actual, _pearson(predicted, actual), _spearman(predicted, actual), t)

    def to_frame(self):
        """Long table: one row per (test, train) pair with the score and the training label."""
        import pandas as pd

        nt, n = self.scores.shape
        return pd.DataFrame({
            "test": torch.arange(nt).repeat_interleave(n).tolist(),
            "train": torch.arange(n).repeat(nt).tolist(),
            "train_label": self.train[1].repeat(nt).tolist(),
            "score": self.scores.reshape(-1).tolist(),
        })


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a @ b) / (a.norm() * b.norm()).clamp_min(1e-300))


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a.numpy(), b.numpy()).statistic)


def _check_data(data, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(data, (tuple, list)) or len(data) != 2 or not all(isinstance(d, torch.Tensor) for d in data):
        raise TypeError(f"{what} must be a pair (inputs, labels) of tensors, got {type(data).__name__}")
    x, y = data
    if len(x) == 0:
        raise ValueError(f"the {what} set is empty")
    if len(x) != len(y):
        raise ValueError(f"{what}: {len(x)} inputs but {len(y)} labels")
    return x, y


def influence(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    loss: Loss | None = None,
    method: str = "exact",
    damping: float = 0.0,
    params: Sequence[str] | None = None,
    *,
    checkpoints: Sequence[tuple[Any, float]] | None = None,
    cg_tol: float = 1e-10,
    lissa_depth: int = 1000,
    lissa_scale: float | None = None,
    batch_size: int | str = "auto",
    dtype: torch.dtype = torch.float64,
    progress: bool = True,
) -> Influence:
    """Influence of every training point on every test point's loss (see the module docstring for the sign).

    ``method``: ``"exact"`` (explicit Hessian, up to 5,000 parameters), ``"cg"`` and ``"lissa"``
    (Hessian-vector products), ``"ekfac"`` (Linear/Conv2d layers, Gauss–Newton curvature) or
    ``"tracin"`` (``checkpoints=[(state_dict or model, learning_rate), …]``, no Hessian).
    ``loss(output, y)`` returns one value per example (default: cross-entropy). ``damping`` is
    added to the Hessian of the mean loss: for a model trained with L2 penalty ``λ/2·‖θ‖²`` on
    the mean loss, ``damping=λ`` makes the Hessian that of the training objective.

    >>> import torch, seethrough as see
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Linear(4, 3)
    >>> x, y = torch.randn(50, 4), torch.randint(0, 3, (50,))
    >>> r = see.influence(model, (x, y), (x[:1], y[:1]), damping=0.01)
    >>> r.scores.shape, r.top(3)[0].shape, bool(r.scores[0, 0] > 0)   # a point helps its own loss
    (torch.Size([1, 50]), torch.Size([3]), True)
    """
    if method not in METHODS:
        raise ValueError(f"unknown influence method {method!r}; choose one of {', '.join(METHODS)}")
    if isinstance(damping, bool) or not isinstance(damping, (int, float)) or damping < 0:
        raise ValueError(f"damping must be a number >= 0 (it is added to the Hessian), got {damping!r}")
    check_batch_size(batch_size)
    x, y = _check_data(train, "train")
    xt, yt = _check_data(test, "test")
    active = [n for n, m in model.named_modules() if isinstance(m, nn.modules.dropout._DropoutNd) and m.training]
    if active:
        raise ValueError(f"dropout is active in {active[0]!r} (model in train mode): the loss must be deterministic "
                         f"for influence; call model.eval() first")
    loss = loss or cross_entropy
    options = {"damping": damping, "params": params, "dtype": str(dtype).replace("torch.", "")}
    if params is None:  # read before hooks() freezes every parameter for the duration
        params = [n for n, p in model.named_parameters() if p.requires_grad]
        if not params:
            raise ValueError("the model has no trainable parameters (requires_grad) to compute influence over; pass params=[...]")
    with hooks(model):
        if method == "tracin":
            return _tracin(model, (x, y), (xt, yt), loss, params, checkpoints, dtype, batch_size, progress, options)
        names = _ekfac.flat_names(model, _ekfac.layer_params(model, params)) if method == "ekfac" else params
        flat = select(model, names, loss, dtype)
        check_loss(flat, x, y)
        n = len(x)
        if method == "exact" and flat.size > EXACT_MAX_PARAMS:
            raise ValueError(f"method='exact' builds the explicit Hessian and is for small models (<= {EXACT_MAX_PARAMS:,} "
                             f"parameters); this one has {flat.size:,}: use method='cg', 'lissa' or 'ekfac', or params=[...]")
        solve = _solver(flat, x, y, method, float(damping), cg_tol, lissa_depth, lissa_scale, options)
        g_test = flat.per_example(xt, yt)
        s_test = solve(g_test)
        scores = _scores(flat, x, y, s_test, n, batch_size, progress)
        test_loss = flat.losses(flat.theta, xt, yt).detach()

    def self_influence() -> torch.Tensor:
        with hooks(model):
            def fn(a: int, b: int) -> torch.Tensor:
                g = flat.per_example(x[a:b], y[a:b])
                return (g * solve(g)).sum(1) / n

            return run_batched(fn, n, batch_size=batch_size, progress=progress, desc="self-influence",
                               item_bytes=flat.size * 64, device=x.device)

    return Influence(scores, method, float(damping), options, (x, y), (xt, yt), test_loss, self_influence, loss)


def _solver(flat: Flat, x, y, method: str, damping: float, cg_tol: float, depth: int, scale: float | None,
            options: dict) -> Callable[[torch.Tensor], torch.Tensor]:
    """``solve(G)``: rows of ``G`` multiplied by ``(H + λI)⁻¹``."""
    if method == "exact":
        inv = exact_inverse(hessian(flat, x, y), damping)
        return lambda g: g @ inv
    if method == "ekfac":
        blocks = _ekfac.fit(flat, _layers_of(flat), x, y)
        return lambda g: _ekfac.solve(blocks, g, damping, "ekfac")
    h = lambda v: hvp(flat, x, y, v)  # noqa: E731
    if method == "cg":
        options["cg_tol"] = cg_tol
        return lambda g: cg(h, g, damping, tol=cg_tol)
    if scale is None:
        scale = 1.1 * (top_eigenvalue(h, flat.size, flat.dtype, device=flat.theta.device) + damping)
    options.update(lissa_depth=depth, lissa_scale=scale)
    return lambda g: lissa(h, g, damping, scale=scale, depth=depth)


def _layers_of(flat: Flat) -> list[str]:
    return list(dict.fromkeys(n.rsplit(".", 1)[0] for n in flat.names))


def _scores(flat: Flat, x, y, s_test: torch.Tensor, n: int, batch_size, progress: bool) -> torch.Tensor:
    def fn(a: int, b: int) -> torch.Tensor:
        return flat.per_example(x[a:b], y[a:b]) @ s_test.T / n

    return run_batched(fn, len(x), batch_size=batch_size, progress=progress, desc="influence",
                       item_bytes=flat.size * 64, device=x.device).T.contiguous()


def _tracin(model, train, test, loss, params, checkpoints, dtype, batch_size, progress, options) -> Influence:
    """TracIn (Pruthi et al. 2020): Σ_k lr_k · ∇L_t(θ_k)·∇L_i(θ_k) over saved checkpoints."""
    if not checkpoints:
        raise ValueError("method='tracin' needs checkpoints=[(state_dict or model, learning_rate), ...]")
    (x, y), (xt, yt) = train, test
    scores = torch.zeros(len(xt), len(x), dtype=dtype, device=x.device)
    selfs = torch.zeros(len(x), dtype=dtype, device=x.device)
    flat = select(model, params, loss, dtype)
    check_loss(flat, x, y)
    for state, lr in checkpoints:
        state = state.state_dict() if isinstance(state, nn.Module) else state
        missing = [n for n in flat.names if n not in state]
        if missing:
            raise ValueError(f"checkpoint lacks parameter {missing[0]!r}")
        theta = torch.cat([state[n].detach().reshape(-1).to(dtype) for n in flat.names])
        ck = Flat(model, flat.names, flat.shapes, theta,
                  {**flat.fixed, **{n: v.detach().to(dtype) if v.is_floating_point() else v
                                    for n, v in state.items() if n not in flat.names}}, loss, dtype)
        gt = ck.per_example(xt, yt)

        def fn(a: int, b: int, ck=ck, gt=gt) -> torch.Tensor:
            g = ck.per_example(x[a:b], y[a:b])
            return torch.cat([g @ gt.T, (g * g).sum(1, keepdim=True)], dim=1)

        out = run_batched(fn, len(x), batch_size=batch_size, progress=progress, desc="tracin", item_bytes=ck.size * 64,
                          device=x.device)
        scores += float(lr) * out[:, :-1].T
        selfs += float(lr) * out[:, -1]
    options["checkpoints"] = len(checkpoints)
    test_loss = flat.losses(flat.theta, xt, yt).detach()
    return Influence(scores, "tracin", 0.0, options, train, test, test_loss, lambda: selfs.clone(), loss)
