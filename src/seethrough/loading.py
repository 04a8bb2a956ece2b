"""Loading a user's model from the command line: zoo name, factory, TorchScript or state dict."""
from __future__ import annotations

import importlib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from . import zoo


@dataclass
class LoadedModel:
    model: nn.Module
    preprocess: Callable
    labels: list[str] | None
    name: str


def _factory(spec: str) -> Callable[[], nn.Module]:
    mod_name, _, attr = spec.partition(":")
    if not mod_name or not attr:
        raise ValueError(f"a factory is written package.module:callable, got {spec!r}")
    try:
        module = importlib.import_module(mod_name)
    except ImportError as e:
        raise ValueError(f"cannot import {mod_name!r} for {spec!r}: {e}") from e
    fn = module
    for part in attr.split("."):
        if not hasattr(fn, part):
            raise ValueError(f"{mod_name!r} has no attribute {attr!r}")
        fn = getattr(fn, part)
    if not callable(fn):
        raise ValueError(f"{spec!r} is not callable")
    return fn


def _as_module(obj: object, spec: str) -> nn.Module:
    if not isinstance(obj, nn.Module):
        raise ValueError(f"{spec!r} gave a {type(obj).__name__}, not a torch.nn.Module")
    return obj


def load_model(
    spec: str,
    *,
    arch: str | None = None,
    unsafe_pickle: bool = False,
    input_size: int = 224,
) -> LoadedModel:
    """Resolve a ``--model`` value.

    ``spec`` is a zoo name, ``package.module:factory`` (a callable returning an
    ``nn.Module``), a TorchScript file, or a state dict (then ``arch`` names the factory).
    A pickled full model is only unpickled with ``unsafe_pickle=True``.

    >>> load_model("lenet-digits").name
    'lenet-digits'
    """
    if spec in zoo.models():
        model, prep = zoo.load(spec)
        return LoadedModel(model, prep, zoo.labels(spec), spec)
    prep = zoo.Preprocess(resize=round(input_size * 256 / 224), crop=input_size)
    path = Path(spec)
    if path.suffix in (".pt", ".pth", ".ts", ".pkl", ".bin") or path.exists():
        return LoadedModel(_load_file(path, arch, unsafe_pickle).eval(), prep, None, path.name)
    if ":" in spec:
        model = _as_module(_factory(spec)(), spec)
        return LoadedModel(model.eval(), prep, None, spec)
    import difflib

    close = difflib.get_close_matches(spec, list(zoo.models()), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(
        f"unknown model {spec!r}{hint}: give a zoo name ({', '.join(zoo.models())}), package.module:factory, "
        "a TorchScript file, or a state dict with --arch"
    )


def _load_file(path: Path, arch: str | None, unsafe_pickle: bool) -> nn.Module:
    if not path.is_file():
        raise ValueError(f"no such model file: {path}")
    if zipfile.is_zipfile(path):
        try:
            return torch.jit.load(str(path), map_location="cpu")
        except (RuntimeError, ValueError):
            pass  # a zip that is not TorchScript: torch.save's format, handled below
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # weights_only refuses anything but tensors and plain containers
        if not unsafe_pickle:
            raise ValueError(
                f"{path} is not a TorchScript file or a plain state dict (it may be a pickled model, which can run "
                "arbitrary code when loaded); pass --unsafe-pickle if you trust it"
            ) from e
        obj = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(obj, nn.Module):
        return obj
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        if arch is None:
            raise ValueError(f"{path} holds a state dict; name the architecture with --arch package.module:factory")
        model = _as_module(_factory(arch)(), arch)
        missing, unexpected = model.load_state_dict(obj, strict=False)
        if missing or unexpected:
            raise ValueError(f"state dict does not fit {arch}: missing {list(missing)[:5]}, unexpected {list(unexpected)[:5]}")
        return model
    raise ValueError(f"{path} holds a {type(obj).__name__}, not a model or a state dict")
