"""How a user's model takes its input on the command line: ``--input-size``, ``--channels``, ``--mean/--std``,
``--labels`` and ``--device`` (read by :func:`seethrough.loading.load_model`), and the hint that names the
option to pass when a model fails on the default 3×224 input.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn


def _shape(input_size: int | None, channels: int | None) -> tuple[int, int]:
    if input_size is not None and not 8 <= input_size <= 4096:
        raise ValueError(f"--input-size must be a side in pixels from 8 to 4096, got {input_size}")
    if channels is not None and channels not in (1, 3):
        raise ValueError(f"--channels must be 1 (grayscale) or 3 (RGB), got {channels}")
    return input_size or 224, channels or 3


def _floats(text: str | Sequence[float], option: str) -> list[float]:
    if not isinstance(text, str):
        return [float(v) for v in text]
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{option} takes comma-separated numbers, one per channel (e.g. 0.5 or 0.485,0.456,0.406), "
                         f"got {text!r}") from None


def _normalization(mean, std, channels: int) -> tuple[list[float], list[float]] | None:
    """``(mean, std)`` per channel for ``--mean/--std`` (one value serves every channel), or ``None``."""
    if mean is None and std is None:
        return None
    if mean is None or std is None:
        raise ValueError("--mean and --std go together: give both (one value, or one per channel)")
    m, s = _floats(mean, "--mean"), _floats(std, "--std")
    for vals, opt in ((m, "--mean"), (s, "--std")):
        if len(vals) not in (1, channels):
            raise ValueError(f"{opt} has {len(vals)} values; the model takes {channels} channel(s): give 1 or {channels}")
    if any(v <= 0 for v in s):
        raise ValueError(f"--std values must be > 0, got {s}")
    return m * (channels // len(m)), s * (channels // len(s))


def _read_labels(path: Path) -> list[str]:
    if not path.is_file():
        raise ValueError(f"--labels: no such file {str(path)!r}; give a text file with one class name per line")
    names = [ln.strip() for ln in path.read_text(encoding="utf-8-sig").splitlines() if ln.strip()]
    if not names:
        raise ValueError(f"--labels: {path} has no class names; give one per line")
    return names


def _device(device: str | None) -> torch.device | None:
    """``--device``: parsed and checked to be available here, else one line naming the choices."""
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device {device!r} is not a device: give cpu, cuda, cuda:N, mps, ...") from None
    if dev.type == "cpu":
        return dev
    module = getattr(torch, dev.type, None)
    available = getattr(module, "is_available", lambda: False)()
    if not available:
        raise ValueError(f"--device {device}: no {dev.type} device is available to this torch (build "
                         f"{torch.__version__}); use --device cpu")
    count = getattr(module, "device_count", lambda: 1)()
    if dev.index is not None and dev.index >= count:
        raise ValueError(f"--device {device}: there are {count} {dev.type} device(s) (0..{count - 1})")
    return dev


class _OnDevice:
    """A preprocessing callable whose tensors land on ``device`` (its other attributes pass through)."""

    def __init__(self, prep: Callable, device: torch.device) -> None:
        self._prep, self.device = prep, device

    def __call__(self, *args, **kwargs):
        return self._prep(*args, **kwargs).to(self.device)

    def __getattr__(self, name: str):
        return getattr(self._prep, name)


def _on_device(loaded, device: torch.device | None):
    """``loaded`` (a LoadedModel) with its model on ``device`` and its preprocessing returning tensors there."""
    if device is None or device.type == "cpu":
        return loaded
    return type(loaded)(loaded.model.to(device), _OnDevice(loaded.preprocess, device), loaded.labels, loaded.name)


def shape_hint(model: nn.Module, channels: int, size: int) -> str:
    """Which option describes the input ``model`` expects, read from its first conv or linear layer.

    >>> shape_hint(nn.Sequential(nn.Conv2d(1, 4, 3)), 3, 224)
    "its first layer '0' takes 1 input channel(s): pass --channels 1 (and --input-size N for its side)"
    >>> shape_hint(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), 3, 224)
    "its first layer '1' takes 784 inputs = 1×28×28: pass --channels 1 --input-size 28"
    """
    import math

    first = next(((n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))), None)
    if first is not None:
        lname, layer = first
        if isinstance(layer, nn.Conv2d) and layer.in_channels != channels:
            return (f"its first layer {lname!r} takes {layer.in_channels} input channel(s): pass --channels "
                    f"{layer.in_channels} (and --input-size N for its side)")
        if isinstance(layer, nn.Linear) and layer.in_features != channels * size * size:
            for c in (channels, 1, 3):
                side = math.isqrt(layer.in_features // c)
                if c * side * side == layer.in_features:
                    return (f"its first layer {lname!r} takes {layer.in_features} inputs = {c}×{side}×{side}: pass "
                            f"--channels {c} --input-size {side}")
    return (f"describe its input with --input-size N (now {size}) and --channels 1 or 3 (now {channels}); "
            "see `seethrough layers -m ...` for its layers")
