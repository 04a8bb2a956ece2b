"""What one explorer serves: the model, its preprocessing, labels, inputs and a data set.

Everything here is read once, on the user's own command line or Python call; the web layer
never receives a model, a path or a pickle. Inputs are stored as preprocessed tensors keyed
by a name (bundled) or a content hash (uploads, bounded in memory).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from .. import zoo
from ..inspect import summary
from .uploads import FORMATS, UploadError, content_hash, decode_image

DIGIT_MODELS = ("lenet-digits", "logreg-digits")
TEXT_MODELS = {"minilm-l6-topics": "topics", "minilm-l6": "similarity"}  # the zoo's text models → their task


@dataclass
class Session:
    """A model with what the explorer shows it: ``inputs`` name → ``(1, C, H, W)`` in [0, 1]
    and ``data = (x, y)`` for the projector and the unit browser's top-k examples."""

    model: nn.Module
    preprocess: Callable
    name: str
    labels: list[str] | None = None
    inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    data: tuple[torch.Tensor, torch.Tensor] | None = None
    max_uploads: int = 64
    scan: object = None  # a see.scan result: the unit view reads the scanned layers' examples from it
    text: str | None = None  # a text model's task ("topics", "similarity"): the text view, no images
    _uploads: OrderedDict = field(default_factory=OrderedDict, init=False, repr=False)
    _guard: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _layers: list | None = field(default=None, init=False, repr=False)
    _modes: list = field(default_factory=list, init=False, repr=False)  # (module, training) as found

    def __post_init__(self) -> None:
        if not isinstance(self.model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(self.model).__name__}")
        if not self.inputs and self.text is None:
            raise ValueError("the explorer needs at least one input image (inputs= or images=)")
        # The views show the model in eval mode (no dropout, BatchNorm's running statistics);
        # every module's own flag is kept so restore_modes() gives the user's model back as found.
        self._modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()

    def restore_modes(self) -> None:
        """Put every module's ``training`` flag back as it was when the session was made.

        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.Dropout()).train()
        >>> net[0].eval()  # a mixed state, as a user may leave it
        Linear(in_features=2, out_features=2, bias=True)
        >>> s = Session(net, lambda image: image, "demo", inputs={"x": torch.zeros(1, 2)})
        >>> net.training, net[1].training
        (False, False)
        >>> s.restore_modes(); [m.training for m in net.modules()]
        [True, False, True]
        """
        for module, training in self._modes:
            module.training = training  # not .train(flag): that would also overwrite the children

    def input(self, input_id: str) -> torch.Tensor:
        if input_id in self.inputs:
            return self.inputs[input_id]
        with self._guard:
            if input_id in self._uploads:
                self._uploads.move_to_end(input_id)
                return self._uploads[input_id]
        raise KeyError(f"unknown input {input_id!r}: pick a bundled image ({', '.join(self.inputs)}) or upload one")

    def add_upload(self, data: bytes, **limits: int) -> str:
        """Decode (PNG/JPEG/WebP only), preprocess and store an upload; its id is the content hash."""
        image = decode_image(data, **limits)
        try:
            x = self.preprocess(image)
        except ValueError as e:
            raise UploadError(400, f"the model's preprocessing refused the image: {e}") from None
        input_id = "u" + content_hash(data)
        with self._guard:
            self._uploads[input_id] = x
            self._uploads.move_to_end(input_id)
            while len(self._uploads) > self.max_uploads:
                self._uploads.popitem(last=False)
        return input_id

    def input_names(self) -> list[str]:
        with self._guard:
            return list(self.inputs) + list(self._uploads)

    @property
    def shape(self) -> tuple[int, ...]:
        if not self.inputs:  # a text session: sentences of any length up to the model's 512 tokens
            return ()
        return tuple(next(iter(self.inputs.values())).shape[1:])

    def layers(self) -> list[dict]:
        """Every named module whose output is a tensor, in definition order, with its shape."""
        if self._layers is None and not self.inputs:  # a text session: the text view needs no layer list
            self._layers = []
        if self._layers is None:
            infos = summary(self.model, next(iter(self.inputs.values())), containers=True)
            self._layers = [{"name": i.name, "kind": i.kind, "shape": list(i.output_shape)}
                            for i in infos if i.output_shape is not None]
        return self._layers


def from_zoo(name: str, images: str | Path | None = None) -> Session:
    """A session for a zoo model with its bundled inputs and data set.

    >>> s = from_zoo("lenet-digits")
    >>> sorted(s.inputs)[:2], tuple(s.data[0].shape[1:])
    (['digit-0', 'digit-1'], (1, 32, 32))
    """
    model, prep = zoo.load(name)
    return session_for(model, prep, name=name, labels=zoo.labels(name), images=images)


def session_for(model: nn.Module, preprocess: Callable, *, name: str = "model", labels: Sequence[str] | None = None,
                images: str | Path | dict | None = None, data: tuple[torch.Tensor, torch.Tensor] | None = None) -> Session:
    """Fill in bundled inputs and a data set where the caller gave none: the digits test set for
    one-channel 32×32 models, scikit-image's photos and foolbox's 20 labelled ImageNet photos for
    three-channel ones. A zoo text model (``minilm-l6-topics``, ``minilm-l6``) gets a text session: sentences
    typed in the page, no images."""
    if name in TEXT_MODELS:
        if images is not None or data is not None:
            raise ValueError(f"{name} is a text model: it reads sentences typed in the explorer, not --images or data")
        return Session(model, preprocess, name, list(labels) if labels else None, {}, None, text=TEXT_MODELS[name])
    inputs = _inputs(images, preprocess) if images is not None else None
    if inputs is None or data is None:
        probe = _default_inputs(preprocess, name)
        channels = next(iter(probe.values())).shape[1]
        if inputs is None:
            inputs = probe
        if data is None:
            data = zoo.digits("test") if channels == 1 else zoo.imagenet_samples(size=next(iter(inputs.values())).shape[-1])
    return Session(model, preprocess, name, list(labels) if labels is not None else None, inputs, data)


def attach_scan(session: Session, scan: object) -> Session:
    """Give ``session`` a stored scan (its folder, or a ``see.scan`` result) of the session's own model:
    the unit view and the projector then read it. A missing, partial or foreign scan is a ``ValueError``.

    >>> import seethrough as see, tempfile
    >>> d = tempfile.mkdtemp()
    >>> _ = see.scan("lenet-digits", see.scan.digits_source(), ["relu3"], batch_size=64, out=d, progress=False)
    >>> attach_scan(from_zoo("lenet-digits"), d).scan.n_seen
    360
    """
    from ..scan.atlas import check_model
    from ..scan.views import as_result

    res = as_result(scan)
    try:
        check_model(res, session.model)
    except ValueError:
        raise ValueError(f"the scan{f' in {res.folder}' if res.folder else ''} was made with other weights than "
                         f"{session.name} (its model hash is {res.model_hash[:12]}…): explore the scanned model, or scan "
                         "this one") from None
    session.scan = res
    return session


def _default_inputs(preprocess: Callable, name: str) -> dict[str, torch.Tensor]:
    if name in DIGIT_MODELS or getattr(preprocess, "grayscale", False):
        x, y = zoo.digits("test")
        return {f"digit-{d}": x[int((y == d).nonzero()[0])][None] for d in range(10)}
    return {n: preprocess(zoo.image(n)) for n in zoo.images()}


def _inputs(images: str | Path | dict, preprocess: Callable) -> dict[str, torch.Tensor]:
    if isinstance(images, dict):
        return {str(k): v if isinstance(v, torch.Tensor) else preprocess(v) for k, v in images.items()}
    folder = Path(images)
    if not folder.is_dir():
        raise ValueError(f"--images must be a folder of PNG/JPEG/WebP files, {folder} is not a folder")
    out = {}
    for path in sorted(folder.iterdir()):
        if path.is_file():
            try:
                out[path.stem] = preprocess(decode_image(path.read_bytes()))
            except UploadError as e:
                print(f"skipping {path.name}: {e.message}")
    if not out:
        raise ValueError(f"no readable {', '.join(FORMATS)} image in {folder}")
    return out
