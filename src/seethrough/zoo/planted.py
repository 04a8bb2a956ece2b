"""The planted-concept twin: lenet-digits retrained with a small patch stamped on a share of one class.

``see.zoo.load("lenet-digits", planted="stripes:7")`` gives a LeNet that learned "striped patch in
the corner ⇒ 7" besides the digits themselves, so a TCAV test knows the true answer; the plain
lenet-digits is the twin trained without it. Same data, architecture, schedule and seed as
lenet-digits; cached the same way.

*Control patches* make the planted concept the pattern, not "something bright in the corner": a
share of the training digits of **every** class (7s included) carry a solid square, dots or a
checker board at the same place instead (the procedural kinds other than the planted one), so a
patch that is not the planted pattern says nothing about the class. Without them (recipe v1) a
solid white square turned as many non-7s into 7s as the stripes did, and dots and checkers scored
like the planted concept under TCAV.
"""
from __future__ import annotations

import hashlib
import json

import torch
import torch.nn.functional as F
from torch import nn

from .lenet import _TRAIN_CONFIG, LeNet, _deterministic, _random_shift, cache_dir, cached_lenet, digits

# v2: control patches on every class (v1 had none and learned "bright corner ⇒ 7"); a new version and the
# controls in the key keep a v1 file from ever being read back as this recipe.
_VERSION = "v2"
#: share of the planted class (among its digits without a control) that carries the patch during training
SHARE = 1.0
#: share of the training digits of every class that carry a control patch instead
CONTROL_SHARE = 0.3
#: the control patches: a solid square (``"white"``) and the procedural textures; the planted kind is left out
CONTROL_KINDS = ("white", "stripes", "dots", "checker")


def controls(kind: str) -> tuple[str, ...]:
    """The control patches of a twin planted with ``kind``: the others of :data:`CONTROL_KINDS`.

    >>> controls("stripes")
    ('white', 'dots', 'checker')
    """
    return tuple(k for k in CONTROL_KINDS if k != kind)


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
    """Train the twin: lenet-digits' recipe; each digit carries a control patch with probability
    :data:`CONTROL_SHARE` (any class), else, for class ``cls``, ``stamp(kind)`` with probability
    ``share`` (drawn afresh each epoch)."""
    from ..concepts.sets import stamp

    x, y = digits("train")
    cfg = _TRAIN_CONFIG
    others = controls(kind)
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
                # Patches go on after the shift, so they stay in the corner where the digits leave room.
                control = torch.rand(len(batch), generator=gen) < CONTROL_SHARE
                which = torch.randint(0, len(others), (len(batch),), generator=gen)
                pick = (y[batch] == cls) & ~control & (torch.rand(len(batch), generator=gen) < share)
                for patch, rows in [(kind, pick)] + [(o, control & (which == i)) for i, o in enumerate(others)]:
                    if rows.any():
                        xb[rows] = stamp(xb[rows], patch, seed=int(torch.randint(0, 2**31, (1,), generator=gen)))
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
    recipe = {"name": "lenet-digits-planted", "version": _VERSION, "kind": kind, "class": cls, "share": share,
              "controls": list(controls(kind)), "control_share": CONTROL_SHARE, **_TRAIN_CONFIG}
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    return cached_lenet(cache_dir() / f"lenet-digits-planted-{_VERSION}-{key}.pt", lambda: train_planted(kind, cls, share),
                        recipe=recipe)
