"""``seethrough explore``: the local web explorer (needs ``pip install 'seethrough[explore]'``)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .base import ArchOpt, ModelOpt, ShaOpt, UnsafeOpt, app, friendly, load


@app.command()
@friendly
def explore(
    model: str = ModelOpt,
    arch: Optional[str] = ArchOpt,
    unsafe_pickle: bool = UnsafeOpt,
    sha256: Optional[str] = ShaOpt,
    images: Optional[Path] = typer.Option(None, "--images", help="a folder of PNG/JPEG/WebP inputs to pick from "
                                          "(default: the bundled photos, or test digits for a digits model)"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on; anything but localhost is reachable "
                             "by others and the explorer has no authentication (only loopback names and this "
                             "address are served)"),
    port: int = typer.Option(0, "--port", help="0 picks a free port; the URL is printed"),
    no_browser: bool = typer.Option(False, "--no-browser", help="do not open a browser tab"),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads, set once at start-up (default: torch's)"),
    workers: int = typer.Option(1, "--workers", help="model computations at a time; the rest wait in a queue"),
    scan: Optional[Path] = typer.Option(None, "--scan", help="a stored scan of this model (folder written by "
                                        "`seethrough scan -o`): the unit view and the projector read it"),
):
    """Serve an interactive explorer of the model: predictions, activations, units, attribution,
    embeddings and adversarial examples, on this machine only by default. A text model (minilm-l6-topics, or
    minilm-l6 for the similarity of a pair) gets the text view: type a sentence, see its words coloured by a
    method, its attention by layer and head, and the probe curves."""
    try:
        from seethrough.web.app import create_app
        from seethrough.web.server import serve
    except ImportError as e:
        from seethrough.web import EXTRA

        raise ValueError(f"{EXTRA} ({e})") from None
    import torch

    from seethrough.web.session import TEXT_MODELS, attach_scan, session_for

    if not 0 <= port <= 65535:
        raise ValueError(f"--port must be a whole number from 0 to 65535 (0 picks a free one), got {port}")
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    if model in TEXT_MODELS and (images is not None or scan is not None):  # refused before the model loads
        raise ValueError(f"{model} is a text model: its explorer reads sentences typed in the page; --images and "
                         "--scan are for image models")
    loaded = load(model, arch, unsafe_pickle, sha256)  # read once, here, from the user's own command line
    session = session_for(loaded.model, loaded.preprocess, name=loaded.name, labels=loaded.labels, images=images)
    if scan is not None:  # read and checked before the server starts: a bad folder is one line, exit 2
        attach_scan(session, scan)
    serve(create_app(session, workers=workers, host=host), host, port, open_browser=not no_browser)
