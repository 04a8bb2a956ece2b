"""The local web explorer: ``seethrough explore`` or ``see.explore(model, preprocess, …)``.

A thin layer over the library (FastAPI, an optional extra: ``pip install seethrough[explore]``);
the core library never imports it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from torch import nn

EXTRA = "the explorer needs its extra: pip install 'seethrough[explore]' (fastapi, uvicorn, python-multipart)"


def explore(model: nn.Module | str, preprocess: Callable | None = None, *, labels: Sequence[str] | None = None,
            data: Any = None, images: str | Path | dict | None = None, name: str | None = None,
            host: str = "127.0.0.1", port: int = 0, open_browser: bool = True, threads: int | None = None,
            workers: int = 1, background: bool = False, scan: Any = None):
    """Serve the explorer for ``model`` (a module with its ``preprocess``, or a zoo name).

    ``data = (x, labels)`` feeds the projector and the unit browser (default: the digits test
    set for one-channel models, 20 labelled ImageNet photos for three-channel ones); ``images``
    a folder or ``{name: image}`` of inputs to pick from. Binds 127.0.0.1; ``port=0`` picks a
    free port. ``threads`` sets torch's threads once; ``workers`` model computations run at a
    time. ``background=True`` returns a running server (``.url``, ``.stop()``) instead of blocking.
    While it serves, the model is in eval mode; once it stops, every module's ``training`` flag
    is back as it was found. ``scan``: a ``see.scan`` result or a stored scan's folder; the unit view
    then shows the scanned layers' top-k examples, dead/alive state and histogram from it, and the
    projector can draw its reservoir sample (a scan of other weights is refused).

    >>> import seethrough as see
    >>> server = see.explore("lenet-digits", background=True)
    >>> server.url.startswith("http://127.0.0.1:")
    True
    >>> server.stop()
    """
    try:
        from .app import create_app
        from .server import serve, start
    except ImportError as e:
        raise ImportError(f"{EXTRA} ({e})") from None
    import torch

    from .session import from_zoo, session_for

    if threads is not None:
        torch.set_num_threads(threads)
    if isinstance(model, str):
        session = from_zoo(model, images)
    else:
        if preprocess is None:
            raise ValueError("give the model's preprocess (image → (1, C, H, W) tensor in [0, 1]), e.g. see.zoo.Preprocess(256, 224)")
        session = session_for(model, preprocess, name=name or type(model).__name__, labels=labels, images=images,
                              data=data)
    if scan is not None:
        from .session import attach_scan

        attach_scan(session, scan)
    try:
        app = create_app(session, workers=workers, host=host)
        if background:
            return start(app, host, port, on_stop=session.restore_modes)
        serve(app, host, port, open_browser)
    except BaseException:
        session.restore_modes()
        raise
    session.restore_modes()
    return None


def _view_specs() -> dict:
    """The explorer's views as catalog entries (:mod:`seethrough.catalog`)."""
    from ..spec import Spec
    from .viewspec import VIEWS

    return {name: Spec(name, "view", v.fn, "", v.kinds, v.options, "JSON", v.description) for name, v in VIEWS.items()}


def _register_family() -> None:
    from ..catalog import register_family

    register_family("view", _view_specs)


_register_family()
