"""A defence: adversarial training (PGD examples in every batch), and robust accuracy.

:func:`adversarial_training` trains a *copy* of a model (the caller's model is left as
found); :func:`digits_model` gives the cached lenet-digits variants the report, tests and
the transferability check use: an independently seeded clean one and a PGD-trained one.
"""
from __future__ import annotations

import copy
import hashlib
import json
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..deprecation import renamed
from ..hooks import hooks
from ..inputs import check_images
from ..progress import bar
from .attacks import ATTACKS, perturb, resolve_options
from .core import attack


@renamed(lr="step_size")
def adversarial_training(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float = 32.0,
    steps: int = 5,
    epochs: int = 8,
    batch_size: int = 32,
    step_size: float = 3e-3,
    mix: float = 0.5,
    seed: int = 0,
    reinit: bool = True,
    progress: bool = True,
) -> nn.Module:
    """Train a copy of ``model`` on ``(x, y)`` with PGD examples (L∞, ``eps`` in 0-255
    pixel units, ``steps`` steps, random start) made afresh for every batch.

    The loss is ``(1 - mix)·CE(clean) + mix·CE(adversarial)`` (``mix=1``: Madry et al.'s
    pure adversarial objective; ``eps=0``: ordinary training). ``reinit`` resets the copy's
    parameters (seeded) first. Adam with a one-cycle schedule peaking at ``step_size`` (the
    learning rate); deterministic for a seed.

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x, y = see.zoo.digits("train")
    >>> robust = see.adversarial_training(model, x[:64], y[:64], eps=16, steps=2, epochs=1, progress=False)
    >>> robust is not model, robust.training
    (True, False)
    """
    check_images(x, model=model)
    if not isinstance(y, torch.Tensor) or y.shape != (len(x),) or y.is_floating_point():
        raise ValueError(f"y must be an integer tensor of one label per image, shape ({len(x)},)")
    if not 0.0 <= mix <= 1.0:
        raise ValueError(f"mix (weight of the adversarial loss) must be in [0, 1], got {mix!r}")
    for name, v in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    opts = resolve_options("pgd", {"eps": eps, "steps": steps}, x)
    net = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if reinit:
            for m in net.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
        for p in net.parameters():
            p.requires_grad_(True)
            p.grad = None
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(net.parameters(), lr=step_size)
        per_epoch = -(-len(x) // batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=step_size, total_steps=epochs * per_epoch)
        for _ in bar(range(epochs), desc="adversarial training", progress=progress):
            order = torch.randperm(len(x), generator=gen)
            for a in range(0, len(x), batch_size):
                xb, yb = x[order[a:a + batch_size]], y[order[a:a + batch_size]]
                loss = 0.0
                if mix < 1:
                    net.train()
                    loss = (1 - mix) * F.cross_entropy(net(xb), yb)
                if mix > 0 and opts["eps"] > 0:
                    with hooks(net):  # eval mode and frozen weights while the examples are made
                        start, step, n = ATTACKS["pgd"].build(xb, gen, **opts)
                        xa = perturb(net, xb, yb, False, start, step, n)[0]
                    net.train()
                    loss = loss + mix * F.cross_entropy(net(xa), yb)
                elif mix > 0:
                    net.train()
                    loss = loss + mix * F.cross_entropy(net(xb), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()  # our own copy: its .grad is ours to use
                opt.step()
                sched.step()
    for p in net.parameters():
        p.grad = None
    return net.eval()


def robust_accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: Sequence[float], method: str = "pgd", *,
    progress: bool = True, **options
) -> torch.Tensor:
    """Accuracy under ``method`` at every ``eps`` (pixel units); ``eps=0`` is the clean accuracy.
    ``progress``: a bar over the budgets.

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x, y = see.zoo.digits("test")
    >>> acc = see.robust_accuracy(model, x[:50], y[:50], eps=[0, 64])
    >>> bool(acc[0] > acc[1])
    True
    """
    if isinstance(eps, (int, float)):
        eps = [eps]
    accs = [(attack(model, x, method, label=y, eps=float(e), progress=False, **options).pred == y).float().mean()
            for e in bar(eps, desc="robust accuracy", progress=progress)]
    return torch.stack(accs)


# ----------------------------------------------------------------------------- cached digit models


# Two cheap recipes (seconds to a minute on a CPU, then cached): an independently seeded
# clean model trained from scratch, and the zoo model fine-tuned with PGD examples, which
# reaches most of the robustness of training from scratch at a fraction of the cost.
SEEDED_RECIPE = {"eps": 0.0, "epochs": 8, "step_size": 3e-3, "reinit": True}
ROBUST_RECIPE = {"steps": 3, "epochs": 3, "step_size": 1e-3, "mix": 0.5, "reinit": False}
_VERSION = 1


def _cached(recipe: dict, seed: int) -> nn.Module:
    from .. import zoo
    from ..zoo.lenet import cache_dir, cached_lenet  # the zoo's cache: one environment variable moves them all
    from ..zoo.pinned import train_pinned

    # Hashed under the recipe's former key "lr", so the models cached before the rename stay valid.
    named = {("lr" if k == "step_size" else k): v for k, v in recipe.items()}
    blob = json.dumps({**named, "seed": seed, "version": _VERSION}, sort_keys=True).encode()
    path = cache_dir() / f"lenet-digits-adv-{hashlib.sha256(blob).hexdigest()[:12]}.pt"

    return cached_lenet(path, lambda: train_pinned(_train_digits, recipe, seed))


def _train_digits(recipe: dict, seed: int) -> nn.Module:
    """One cached digit model's training (module-level: :func:`seethrough.zoo.pinned.train_pinned` runs it)."""
    from .. import zoo

    x, y = zoo.digits("train")
    return adversarial_training(zoo.load("lenet-digits")[0], x, y, seed=seed, **recipe)


def digits_model(seed: int = 1) -> nn.Module:
    """lenet-digits' architecture trained from scratch with another ``seed`` (clean
    training, 8 epochs): the second model of the transferability check. Cached.

    >>> m = digits_model(seed=1)
    >>> sum(p.numel() for p in m.parameters())
    61706
    """
    return _cached(SEEDED_RECIPE, seed)


def robust_digits_model(eps: float = 32.0, seed: int = 0) -> nn.Module:
    """The zoo's lenet-digits fine-tuned by :func:`adversarial_training` with PGD at
    ``eps`` (pixel units; 3 epochs, 3 PGD steps, half clean / half adversarial loss). Cached.

    >>> m = robust_digits_model()
    >>> m.training
    False
    """
    return _cached({**ROBUST_RECIPE, "eps": float(eps)}, seed)
