"""Loading a user's model from the command line: zoo name, factory, TorchScript or state dict.

Every way a user's file can be wrong ends in one ``ValueError`` line naming the file: missing,
a folder, a SHA-256 other than ``sha256=``, a zip whose members fail their CRC (flipped bytes in
a TorchScript file or a ``torch.save`` file), an unreadable pickle, a pickled model without
``unsafe_pickle=True``, a state dict that does not fit ``arch``. A loaded user model is then run
once on a blank input of the size the CLI feeds it, so a forward that fails, or returns a tuple
or a dict instead of one score tensor, is named at load time rather than deep inside a method.
"""
from __future__ import annotations

import importlib
import pickle
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from . import zoo

_MODEL_SUFFIXES = (".pt", ".pth", ".ts", ".pkl", ".bin", ".ptl")


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
    sha256: str | None = None,
    probe: bool = True,
) -> LoadedModel:
    """Resolve a ``--model`` value.

    ``spec`` is a zoo name, ``package.module:factory`` (a callable returning an
    ``nn.Module``), a TorchScript file, or a state dict (then ``arch`` names the factory).
    A pickled full model is only unpickled with ``unsafe_pickle=True``; ``sha256`` (64 hex
    digits) is checked against the file's bytes before anything is read from it. A user's
    model is run in float32 (its images are float32; other float weights are converted, with
    a warning) and, with ``probe``, once on a blank ``(1, 3, input_size, input_size)`` image.

    >>> load_model("lenet-digits").name
    'lenet-digits'
    >>> load_model("tests.factories:tiny", sha256="0" * 64)
    Traceback (most recent call last):
    ...
    ValueError: --sha256 checks a model file, and 'tests.factories:tiny' is not a file
    """
    path = Path(spec)
    is_file_spec = spec not in zoo.models() and (path.suffix in _MODEL_SUFFIXES or path.exists())
    if sha256 is not None and not is_file_spec:
        raise ValueError(f"--sha256 checks a model file, and {spec!r} is not a file")
    if spec in zoo.models():
        model, prep = zoo.load(spec)
        return LoadedModel(model, prep, zoo.labels(spec), spec)
    prep = zoo.Preprocess(resize=round(input_size * 256 / 224), crop=input_size)
    if is_file_spec:
        model, name = _load_file(path, arch, unsafe_pickle, sha256), path.name
    elif ":" in spec:
        model, name = _as_module(_factory(spec)(), spec), spec
    else:
        import difflib

        close = difflib.get_close_matches(spec, list(zoo.models()), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"unknown model {spec!r}{hint}: give a zoo name ({', '.join(zoo.models())}), package.module:factory, "
            "a TorchScript file, or a state dict with --arch"
        )
    model = _as_float32(model.eval(), name)
    if probe:
        _probe(model, prep, name, input_size)
    return LoadedModel(model, prep, None, name)


def _as_float32(model: nn.Module, name: str) -> nn.Module:
    """The CLI feeds float32 images: a model with other float weights is converted (it is ours, loaded from disk)."""
    dtypes = {t.dtype for t in [*model.parameters(), *model.buffers()] if t.is_floating_point()}
    other = sorted(str(d).removeprefix("torch.") for d in dtypes - {torch.float32})
    if other:
        warnings.warn(f"{name} has {', '.join(other)} weights; the command line runs it in float32", stacklevel=3)
        model = model.float()
    return model


def _probe(model: nn.Module, prep: Callable, name: str, size: int) -> None:
    from PIL import Image

    from .hooks import forward
    from .outputs import MODEL_HINT, class_output

    x = prep(Image.new("RGB", (size, size), (128, 128, 128)))
    try:
        out = forward(model, x)
    except Exception as e:  # the user's forward, on the input every command will give it
        raise ValueError(f"{name} fails on a {tuple(x.shape)} float32 image in [0, 1], what the command line feeds "
                         f"it: {type(e).__name__}: {_first_line(e)}") from e
    try:
        class_output(out, hint=MODEL_HINT)
    except TypeError as e:
        raise ValueError(f"{name}: {e}") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return re.sub(r"\x1b\[[0-9;]*m", "", text.splitlines()[0])


def _is_zip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def _check_zip(path: Path) -> bool:
    """Every member of a zip (TorchScript and ``torch.save`` files are zips) passes its CRC-32;
    torch's own reader does not check it, so flipped bytes would otherwise load as wrong weights.
    Returns whether the archive is TorchScript (it has ``code/``)."""
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
            names = z.namelist()
    except Exception as e:  # a damaged directory or header: zipfile raises many kinds
        raise ValueError(f"{path} is a damaged zip archive ({type(e).__name__}: {_first_line(e)}); "
                         "the model file is corrupt or truncated") from None
    if bad is not None:
        raise ValueError(f"{path} is corrupt: its member {bad} fails its CRC check (flipped or truncated bytes)")
    return any("/code/" in n or n.endswith("/constants.pkl") for n in names)


def _load_file(path: Path, arch: str | None, unsafe_pickle: bool, sha256: str | None = None) -> nn.Module:
    if path.is_dir():
        raise ValueError(f"{path} is a folder; --model needs a model file (TorchScript or state dict)")
    if not path.is_file():
        raise ValueError(f"no such model file: {path}")
    if sha256 is not None:
        from .zoo.cache import verify_sha256

        verify_sha256(path, sha256)
    if _is_zip(path) and _check_zip(path):
        try:
            return torch.jit.load(str(path), map_location="cpu")
        except Exception as e:
            raise ValueError(f"{path} is a TorchScript archive that cannot be loaded: {_first_line(e)}") from None
    return _from_pickle(path, arch, unsafe_pickle)


def _from_pickle(path: Path, arch: str | None, unsafe_pickle: bool) -> nn.Module:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Weights only load failed" not in str(e):
            raise ValueError(f"{path} cannot be read: it is corrupt or not a PyTorch file ({_first_line(e)})") from None
        detail = next((ln.split("error:", 1)[1].strip() for ln in str(e).splitlines() if "WeightsUnpickler error:" in ln), "")
        if not unsafe_pickle:
            what = (f"it holds pickled code objects ({detail.split(' was ')[0]})" if "Unsupported global" in detail
                    else f"it is not a plain state dict, or it is corrupt ({detail or 'refused by the weights-only loader'})")
            raise ValueError(f"{path} is not a TorchScript file or a plain state dict: {what}; unpickling it can run "
                             "arbitrary code: pass --unsafe-pickle if you trust it") from None
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e2:  # the file's own pickle: a missing module, or garbage
            raise ValueError(f"{path} cannot be unpickled even with --unsafe-pickle: {type(e2).__name__}: "
                             f"{_first_line(e2)}") from None
    except Exception as e:  # not a pickle torch can read: garbage, truncated, a damaged stream
        raise ValueError(f"{path} cannot be read: it is corrupt or not a PyTorch file "
                         f"({type(e).__name__}: {_first_line(e)})") from None
    if isinstance(obj, nn.Module):
        return obj
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        if arch is None:
            raise ValueError(f"{path} holds a state dict; name the architecture with --arch package.module:factory")
        model = _as_module(_factory(arch)(), arch)
        try:
            missing, unexpected = model.load_state_dict(obj, strict=False)
        except RuntimeError as e:  # same names, other shapes
            raise ValueError(f"state dict {path} does not fit {arch}: {_first_line(e)}") from None
        if missing or unexpected:
            raise ValueError(f"state dict does not fit {arch}: missing {list(missing)[:5]}, unexpected {list(unexpected)[:5]}")
        return model
    raise ValueError(f"{path} holds a {type(obj).__name__}, not a model or a state dict")
