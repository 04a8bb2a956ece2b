"""The planted-concept twin: lenet-digits retrained with a small patch stamped on a share of one class.

``see.zoo.load("lenet-digits", planted="stripes:7")`` gives a LeNet that learned "striped patch in
the corner ⇒ 7" besides the digits themselves, so a TCAV test knows the true answer; the plain
lenet-digits is the twin trained without it. Same data, architecture, schedule and seed as
lenet-digits; cached the same way.
"""
from __future__ import annotations

import hashlib
import json

import torch
import torch.nn.functional as F
from torch import nn

from .lenet import _TRAIN_CONFIG, LeNet, _deterministic, _random_shift, cache_dir, cached_lenet, digits

_VERSION = "v1"
#: share of the planted class that carries the patch during training (all of it: a cue the model cannot ignore)
SHARE = 1.0


def parse(spec: str) -> tuple[str, int, float]:
    """``"stripes:7"`` or ``"stripes:7:0.5"`` → ``(kind, class, share)``.

    >>> parse("dots:3")
    ('dots', 3, 1.0)
    """
    from ..concepts.sets import KINDS

    parts = str(spec).split(":")
    try:
        kind, cls = parts[0], int(parts[1])
        share = float(parts[2]) if len(parts) > 2 else SHARE
    except (IndexError, ValueError):
        raise ValueError(f"planted must look like 'stripes:7' (concept:class[:share]), got {spec!r}") from None
    if kind not in KINDS or not 0 <= cls <= 9 or not 0 < share <= 1 or len(parts) > 3:
        raise ValueError(f"planted={spec!r}: the concept must be one of {', '.join(KINDS)}, the class 0-9, the share in (0, 1]")
    return kind, cls, share


def train_planted(kind: str, cls: int, share: float = SHARE, seed: int = 0) -> nn.Module:
    """Train the twin: lenet-digits' recipe, with ``stamp(kind)`` on ``share`` of class ``cls`` (fresh each epoch)."""
    from ..concepts.sets import stamp

    x, y = digits("train")
    cfg = _TRAIN_CONFIG
    with torch.random.fork_rng(devices=[]), _deterministic():
        torch.manual_seed(seed)
        model = LeNet()
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=cfg["max_lr"])
        steps = -(-len(y) // cfg["batch_size"])
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["max_lr"], total_steps=cfg["epochs"] * steps)
        for epoch in range(cfg["epochs"]):
            model.train()
            order = torch.randperm(len(y), generator=gen)
            for start in range(0, len(y), cfg["batch_size"]):
                batch = order[start:start + cfg["batch_size"]]
                xb = _random_shift(x[batch], cfg["max_shift"], gen)
                # The patch goes on after the shift, so it stays in the corner where the digits leave room.
                pick = (y[batch] == cls) & (torch.rand(len(batch), generator=gen) < share)
                if pick.any():
                    xb[pick] = stamp(xb[pick], kind, seed=int(torch.randint(0, 2**31, (1,), generator=gen)))
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(xb), y[batch]).backward()
                opt.step()
                sched.step()
    return model.eval()


def planted_twin(name: str, spec: str) -> nn.Module:
    """The cached planted-concept twin of ``name`` (only ``"lenet-digits"`` has one).

    >>> planted_twin("mlp-2d", "stripes:7")
    Traceback (most recent call last):
    ...
    ValueError: only 'lenet-digits' has a planted-concept twin, not 'mlp-2d'
    """
    if name != "lenet-digits":
        raise ValueError(f"only 'lenet-digits' has a planted-concept twin, not {name!r}")
    kind, cls, share = parse(spec)
    key = hashlib.sha256(json.dumps([_TRAIN_CONFIG, kind, cls, share], sort_keys=True).encode()).hexdigest()[:12]
    return cached_lenet(cache_dir() / f"lenet-digits-planted-{_VERSION}-{key}.pt", lambda: train_planted(kind, cls, share))
