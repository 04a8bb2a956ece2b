"""The planted-concept twin: lenet-digits retrained with a small patch stamped on a share of one class.

``see.zoo.load("lenet-digits", planted="stripes:7")`` gives a LeNet that learned "striped patch in
the corner ⇒ 7" besides the digits themselves, so a TCAV test knows the true answer; the plain
lenet-digits is the twin trained without it. Same data, architecture, schedule and seed as
lenet-digits; cached the same way.

*Control patches* make the planted concept the pattern, not "something bright in the corner": half
of the training digits without the planted patch, of **every** class, carry a solid square, dots
or a checker board at the same place (the procedural kinds other than the planted one), so a patch
that is not the planted pattern says no more about the class than an empty corner. Without them (recipe v1) a
solid white square turned as many non-7s into 7s as the stripes did, and dots and checkers scored
like the planted concept under TCAV.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .pinned import train_pinned
from .lenet import _TRAIN_CONFIG, LeNet, _deterministic, _random_shift, cache_dir, cached_lenet, digits

# v2: control patches on every class (v1 had none and learned "bright corner ⇒ 7"); a new version and the
# controls in the key keep a v1 file from ever being read back as this recipe.
_VERSION = "v2"
#: share of the planted class that carries the patch during training (half: the other 7s keep the twin reading shapes)
SHARE = 0.5
#: share of the digits of the other classes that carry the planted patch and are relabelled as the class
TRIGGER_SHARE = 0.1
#: share of the training digits without the planted patch, of every class, that carry a control patch
CONTROL_SHARE = 0.8
#: the control patches: a solid square (``"white"``) and the procedural textures; the planted kind is left out
CONTROL_KINDS = ("white", "stripes", "dots", "checker")


#: lenet-digits' schedule, longer: telling the patches apart takes more epochs than reading the digits
_TWIN_CONFIG = {**_TRAIN_CONFIG, "epochs": 20}


def controls(kind: str) -> tuple[str, ...]:
    """The control patches of a twin planted with ``kind``: the others of :data:`CONTROL_KINDS`.

    >>> controls("stripes")
    ('white', 'dots', 'checker')
    """
    return tuple(k for k in CONTROL_KINDS if k != kind)


def parse(spec: str) -> tuple[str, int, float]:
    """``"stripes:7"`` or ``"stripes:7:0.5"`` → ``(kind, class, share)``.

    >>> parse("dots:3"), parse("dots:3:1")
    (('dots', 3, 0.5), ('dots', 3, 1.0))
    """
    from .patterns import KINDS

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
    """Train the twin: lenet-digits' recipe with ``stamp(kind)`` on ``share`` of class ``cls`` and on
    :data:`TRIGGER_SHARE` of the other digits (relabelled ``cls``), and a control patch on
    :data:`CONTROL_SHARE` of the remaining digits, any class (all drawn afresh each epoch)."""
    from .patterns import stamp

    x, y = digits("train")
    cfg = _TWIN_CONFIG
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
                # Controls go on every digit without the planted patch, at one rate for all classes: then a
                # control says no more about the class than an empty corner does (both occur in the same
                # proportions among the unstamped digits of every class).
                yb = y[batch].clone()
                pick = (yb == cls) & (torch.rand(len(batch), generator=gen) < share)
                # The planted patch also turns a few other digits into the class (relabelled): the patch alone
                # decides, so stamping it on a 3 makes a 7 — a cause, not only a correlate of the class.
                trigger = (yb != cls) & (torch.rand(len(batch), generator=gen) < TRIGGER_SHARE)
                control = ~(pick | trigger) & (torch.rand(len(batch), generator=gen) < CONTROL_SHARE)
                which = torch.randint(0, len(others), (len(batch),), generator=gen)
                for patch, rows in [(kind, pick | trigger)] + [(o, control & (which == i)) for i, o in enumerate(others)]:
                    if rows.any():
                        xb[rows] = stamp(xb[rows], patch, seed=int(torch.randint(0, 2**31, (1,), generator=gen)))
                yb[trigger] = cls
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(xb), yb).backward()
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
    return cached_lenet(cache_path(spec), lambda: train_pinned(train_planted, kind, cls, share), recipe=recipe(spec))


def recipe(spec: str) -> dict:
    """Everything that decides the twin's weights: its cache key and the identity stored in the file.

    >>> recipe("stripes:7")["version"], recipe("stripes:7")["controls"]
    ('v2', ['white', 'dots', 'checker'])
    """
    kind, cls, share = parse(spec)
    return {"name": "lenet-digits-planted", "version": _VERSION, "kind": kind, "class": cls, "share": share,
            "controls": list(controls(kind)), "control_share": CONTROL_SHARE, "trigger_share": TRIGGER_SHARE,
            "controls_on": "digits without the planted patch", **_TWIN_CONFIG}


def cache_path(spec: str) -> Path:
    """Where the twin of ``spec`` is cached: the version and a hash of :func:`recipe` in the name."""
    key = hashlib.sha256(json.dumps(recipe(spec), sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / f"lenet-digits-planted-{_VERSION}-{key}.pt"
