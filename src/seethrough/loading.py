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
from typing import Callable, Sequence

import torch
from torch import nn

from . import zoo
from .loading_input import _device, _normalization, _on_device, _read_labels, _shape, shape_hint  # noqa: F401

_MODEL_SUFFIXES = (".pt", ".pth", ".ts", ".pkl", ".bin", ".ptl")


@dataclass
class LoadedModel:
    model: nn.Module
    preprocess: Callable
    labels: list[str] | None
    name: str


def _factory(spec: str) -> Callable[[], nn.Module]:
    """``module:attr`` (importable, or found in the current folder) or ``path/to/file.py:attr``.

    >>> _factory("tests.factories:tiny").__name__
    'tiny'
    """
    mod_name, _, attr = spec.rpartition(":")
    if not mod_name or not attr:
        raise ValueError(f"a factory is written module:callable or path/to/file.py:callable, got {spec!r}")
    if mod_name.endswith(".py") or "/" in mod_name or "\\" in mod_name:
        module = _module_from_file(Path(mod_name), spec)
    else:
        module = _import(mod_name, spec)
    fn = module
    for part in attr.split("."):
        if not hasattr(fn, part):
            raise ValueError(f"{mod_name!r} has no attribute {attr!r}")
        fn = getattr(fn, part)
    if not callable(fn):
        raise ValueError(f"{spec!r} is not callable")
    return fn


def _import(mod_name: str, spec: str):
    """Import ``mod_name``, also from the current folder: the ``seethrough`` script's own folder is on
    ``sys.path`` but the folder it runs in is not, so ``mymod:factory`` needed ``PYTHONPATH=.``."""
    import os
    import sys

    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.append(cwd)  # last: a module of the user's never shadows an installed package
    try:
        return importlib.import_module(mod_name)
    except ImportError as e:
        raise ValueError(f"cannot import {mod_name!r} for {spec!r} (looked in the installed packages and in {cwd}): "
                         f"{e}") from e
    finally:
        if added:
            sys.path.remove(cwd)


def _module_from_file(path: Path, spec: str):
    """Run a ``.py`` file as a module (its folder on ``sys.path`` meanwhile, for its own imports)."""
    import importlib.util
    import sys

    if path.suffix != ".py":
        raise ValueError(f"{spec!r}: {str(path)!r} is not a .py file; write path/to/file.py:factory or module:factory")
    if not path.is_file():
        raise ValueError(f"{spec!r}: no such Python file {str(path)!r}")
    name = f"seethrough_user_{path.resolve().as_posix().encode().hex()[-16:]}_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    loader_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(loader_spec)
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    sys.modules[name] = module  # registered before it runs, as import does (dataclasses, pickling need it)
    try:
        loader_spec.loader.exec_module(module)
    except Exception as e:  # the user's file: a syntax error, a failed import, anything
        del sys.modules[name]
        raise ValueError(f"{path} fails to import: {type(e).__name__}: {_first_line(e)}") from e
    finally:
        sys.path.remove(folder)
    return module


def _as_module(obj: object, spec: str) -> nn.Module:
    if not isinstance(obj, nn.Module):
        raise ValueError(f"{spec!r} gave a {type(obj).__name__}, not a torch.nn.Module")
    return obj


def load_model(
    spec: str,
    *,
    arch: str | None = None,
    unsafe_pickle: bool = False,
    input_size: int | None = None,
    sha256: str | None = None,
    probe: bool = True,
    channels: int | None = None,
    mean: str | Sequence[float] | None = None,
    std: str | Sequence[float] | None = None,
    labels: str | Path | None = None,
    device: str | None = None,
) -> LoadedModel:
    """Resolve a ``--model`` value.

    ``spec`` is a zoo name, ``module:factory`` (a callable returning an ``nn.Module``; the module is
    looked for in the installed packages and in the current folder), ``path/to/file.py:factory``,
    a TorchScript file, or a state dict (then ``arch`` names the factory).
    A pickled full model is only unpickled with ``unsafe_pickle=True``; ``sha256`` (64 hex
    digits) is checked against the file's bytes before anything is read from it. A user's
    model is run in float32 (its images are float32; other float weights are converted, with
    a warning) and, with ``probe``, once on a blank ``(1, channels, input_size, input_size)`` image
    (defaults 3 and 224). ``mean``/``std`` wrap it with :func:`seethrough.zoo.with_normalization`
    (images stay in [0, 1]); ``labels`` is a file of class names, one per line; ``device`` moves the
    model there and the preprocessing's tensors with it.

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
    dev = _device(device)
    if spec in zoo.models():
        given = [f"--{k.replace('_', '-')}" for k, v in (("input_size", input_size), ("channels", channels),
                                                          ("mean", mean), ("std", std), ("labels", labels)) if v is not None]
        if given:
            raise ValueError(f"{spec} is a zoo model with its own input size, channels, normalisation and labels: "
                             f"{', '.join(given)} describe your own models only; drop them")
        model, prep = zoo.load(spec)
        return _on_device(LoadedModel(model, prep, zoo.labels(spec), spec), dev)
    size, chans = _shape(input_size, channels)
    prep = zoo.Preprocess(resize=round(size * 256 / 224), crop=size, grayscale=chans == 1, min_side=min(32, size))
    if is_file_spec:
        model, name = _load_file(path, arch, unsafe_pickle, sha256), path.name
    elif ":" in spec:
        model, name = _as_module(_factory(spec)(), spec), spec
    else:
        import difflib

        close = difflib.get_close_matches(spec, list(zoo.models()), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"unknown model {spec!r}{hint}: give a zoo name ({', '.join(zoo.models())}), module:factory, "
            "path/to/file.py:factory, a TorchScript file, or a state dict with --arch"
        )
    model = _as_float32(model.eval(), name)
    norm = _normalization(mean, std, chans)
    if norm is not None:
        model = zoo.with_normalization(model, *norm)
    names = _read_labels(Path(labels)) if labels is not None else None
    loaded = _on_device(LoadedModel(model, prep, names, name), dev)
    if probe:
        _probe(loaded.model, loaded.preprocess, name, size, chans, names, labels)
    return loaded


def _as_float32(model: nn.Module, name: str) -> nn.Module:
    """The CLI feeds float32 images: a model with other float weights is converted (it is ours, loaded from disk)."""
    dtypes = {t.dtype for t in [*model.parameters(), *model.buffers()] if t.is_floating_point()}
    other = sorted(str(d).removeprefix("torch.") for d in dtypes - {torch.float32})
    if other:
        warnings.warn(f"{name} has {', '.join(other)} weights; the command line runs it in float32", stacklevel=3)
        model = model.float()
    return model


def _probe(model: nn.Module, prep: Callable, name: str, size: int, channels: int = 3,
           labels: list[str] | None = None, labels_file=None) -> None:
    from PIL import Image

    from .hooks import forward
    from .outputs import MODEL_HINT, class_output

    x = prep(Image.new("RGB", (size, size), (128, 128, 128)))
    try:
        out = forward(model, x)
    except Exception as e:  # the user's forward, on the input every command will give it
        raise ValueError(f"{name} fails on a {tuple(x.shape)} float32 image in [0, 1], what the command line feeds "
                         f"it: {type(e).__name__}: {_first_line(e)}; {shape_hint(model, channels, size)}") from e
    try:
        scores = class_output(out, hint=MODEL_HINT)
    except TypeError as e:
        raise ValueError(f"{name}: {e}") from None
    if labels is not None and len(labels) != scores.shape[-1]:
        raise ValueError(f"--labels {labels_file} has {len(labels)} names but {name} outputs {scores.shape[-1]} "
                         "class scores: give one name per output, in order")


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
