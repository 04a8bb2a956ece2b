"""The explorer's HTTP layer: parse a request, call a view through the cache, encode the reply.

Every view has a plain GET endpoint that returns its JSON (computing it once, however many
clients ask), and can also be started as a job (``POST /api/jobs/<view>``) whose progress
the page shows; the page then GETs the same URL and is served from the cache.
"""
from __future__ import annotations

import importlib.util
import json
import math
import threading
from importlib import resources
from typing import Any, Callable

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.formparsers import MultiPartException

from .. import __version__
from ..adversarial import ATTACKS
from ..attribution import METHODS
from ..embed import METHODS as PROJECTIONS
from ..progress import report
from . import views
from .cache import Cache
from .jobs import Jobs
from .session import Session
from .uploads import MAX_BYTES, MAX_SIDE, UploadError, check_declared_length, read_limited

REQUIRED = object()
MULTIPART_SLACK = 64 * 1024  # headers and boundaries around the file in a multipart body


class Superseded(Exception):
    """A newer ε from the same client arrived while this one waited for the model."""


def _projections() -> list[str]:
    """UMAP is an optional extra: offer it only where umap-learn is installed."""
    return [m for m in PROJECTIONS if m != "umap" or importlib.util.find_spec("umap") is not None]


def create_app(session: Session, *, cache_budget: int = 512 * 2**20, workers: int = 1, max_upload: int = MAX_BYTES,
               max_side: int = MAX_SIDE) -> FastAPI:
    """The FastAPI application serving ``session``; ``app.state.cache`` and ``app.state.jobs``
    are its cache (``/api/stats``) and job table.

    >>> from seethrough.web.session import from_zoo
    >>> app = create_app(from_zoo("lenet-digits"))
    >>> app.state.cache.stats()["computations"]
    {}
    """
    app = FastAPI(title="seethrough explorer", version=__version__, docs_url=None, redoc_url=None)
    cache, jobs = Cache(budget=cache_budget, workers=workers), Jobs()
    app.state.cache, app.state.jobs, app.state.session = cache, jobs, session
    latest: dict[str, int] = {}
    latest_guard = threading.Lock()

    def flip(_: Session, input_id: str, method: str) -> dict[str, Any]:
        """Sweep the ε grid (each step cached, so the slider is instant afterwards) and mark the
        smallest ε that changes the label."""
        steps = []
        for i, eps in enumerate(views.EPS_GRID):
            steps.append(compute("adversarial", {"input": input_id, "method": method, "eps": float(eps)}))
            report("ε sweep", i + 1, len(views.EPS_GRID))
        parsed = [json.loads(s) for s in steps]
        first = next((p["eps"] for p in parsed if p["flipped"]), None)
        return {"method": method, "grid": [float(e) for e in views.EPS_GRID], "flip": first,
                "labels": [p["label"] for p in parsed], "clean": parsed[0]["label"]}

    # view name → (function, {param: type or (type, default)}, holds the model)
    kinds: dict[str, tuple[Callable, dict, bool]] = {
        "predictions": (views.predictions, {"input": str, "k": (int, 5)}, True),
        "activations": (views.activation_grid, {"input": str, "layer": str, "show": (str, "auto"), "seed": (int, 0)}, True),
        "unit": (views.unit, {"input": str, "layer": str, "channel": int}, True),
        "attribution": (views.attribution, {"input": str, "method": str, "target": (int, None)}, True),
        "projection": (views.projection, {"input": str, "layer": str, "method": (str, "pca"), "n": (int, 200),
                                          "seed": (int, 0)}, True),
        "adversarial": (views.adversarial, {"input": str, "method": (str, "pgd"), "eps": float}, True),
        "flip": (flip, {"input": str, "method": (str, "pgd")}, False),
    }

    def parse(kind: str, query: dict[str, str]) -> dict[str, Any]:
        if kind not in kinds:
            raise HTTPException(404, f"no view {kind!r}; views: {', '.join(kinds)}")
        params = {}
        for name, spec in kinds[kind][1].items():
            typ, default = spec if isinstance(spec, tuple) else (spec, REQUIRED)
            raw = query.get(name)
            if raw is None or raw == "":
                if default is REQUIRED:
                    raise HTTPException(400, f"{kind} needs the parameter {name!r}")
                params[name] = default
                continue
            try:
                params[name] = typ(raw)
            except ValueError:
                raise HTTPException(400, f"{name} must be {typ.__name__}, got {raw!r}") from None
        return params

    def key_of(kind: str, params: dict[str, Any]) -> tuple:
        return (session.name, kind, tuple(sorted(params.items())))  # inputs are named by content hash or bundle name

    def compute(kind: str, params: dict[str, Any], check: Callable[[], None] | None = None) -> bytes:
        fn, _, holds_model = kinds[kind]
        key = key_of(kind, params)

        def run() -> bytes:
            if check is not None:
                check()
            args = {("input_id" if k == "input" else k): v for k, v in params.items()}
            return json.dumps(_finite(fn(session, **args)), allow_nan=False).encode()

        return cache.get(key, run, kind=kind, model=holds_model)

    def answer(kind: str, params: dict[str, Any], check: Callable[[], None] | None = None) -> Response:
        try:
            return Response(compute(kind, params, check), media_type="application/json")
        except KeyError as e:
            raise HTTPException(404, e.args[0] if e.args else str(e)) from None
        except ValueError as e:
            raise HTTPException(400, str(e)) from None
        except Superseded:  # 204, not an error: the page simply waits for its newer request
            return Response(status_code=204)

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        return {"model": session.name, "version": __version__, "shape": list(session.shape),
                "classes": None if session.labels is None else len(session.labels),
                "inputs": session.input_names(), "layers": session.layers(),
                "methods": [{"name": m.name, "family": m.family, "paper": m.paper} for m in METHODS.values()],
                "attacks": [{"name": a.name, "paper": a.paper, "description": a.description}
                            for a in ATTACKS.values() if "eps" in a.defaults],
                "attacks_without_eps": [a for a, spec in ATTACKS.items() if "eps" not in spec.defaults],
                "projections": _projections(), "eps_grid": [float(e) for e in views.EPS_GRID],
                "data": 0 if session.data is None else len(session.data[0])}

    @app.get("/api/stats")
    def stats() -> dict[str, Any]:
        return cache.stats()

    @app.get("/api/adversarial")
    def adversarial(request: Request) -> Response:
        params = parse("adversarial", dict(request.query_params))
        client, seq = request.query_params.get("client"), request.query_params.get("seq")
        check = None
        if client and seq is not None:
            try:
                n = int(seq)
            except ValueError:
                raise HTTPException(400, f"seq must be an int, got {seq!r}") from None
            with latest_guard:
                latest[client] = max(latest.get(client, n), n)

            def check() -> None:  # run once the model is free: only the client's newest ε is worth computing
                if latest.get(client, n) > n:
                    raise Superseded(f"ε request {n} of client {client!r} was superseded by a newer one")
        return answer("adversarial", params, check)

    @app.get("/api/data/{index}.png")
    def thumbnail(index: int) -> Response:
        if session.data is None or not 0 <= index < len(session.data[0]):
            raise HTTPException(404, f"no data set sample {index}")
        return Response(cache.get((session.name, "thumb", index), lambda: views.thumbnail(session, index),
                                  kind="thumbnail", model=False), media_type="image/png")

    @app.get("/api/{kind}")
    def view(kind: str, request: Request) -> Response:
        return answer(kind, parse(kind, dict(request.query_params)))

    @app.post("/api/jobs/{kind}")
    def start_job(kind: str, request: Request) -> dict[str, Any]:
        params = parse(kind, dict(request.query_params))
        return jobs.submit(kind, key_of(kind, params), lambda: compute(kind, params)).as_dict()

    def known_job(action: Callable[[str], Any], job_id: str) -> dict[str, Any]:
        try:
            return action(job_id).as_dict()
        except KeyError as e:
            raise HTTPException(404, e.args[0]) from None

    @app.get("/api/jobs/{job_id}")
    def job(job_id: str) -> dict[str, Any]:
        return known_job(jobs.get, job_id)

    @app.delete("/api/jobs/{job_id}")
    def cancel(job_id: str) -> dict[str, Any]:
        return known_job(jobs.cancel, job_id)

    @app.post("/api/upload")
    async def upload(request: Request) -> dict[str, Any]:
        try:
            check_declared_length(request.headers.get("content-length"), max_upload + MULTIPART_SLACK)
            body = await read_limited(request.stream(), max_upload + MULTIPART_SLACK)
            data = await _file_bytes(request, body)
            if len(data) > max_upload:
                raise UploadError(413, f"the file is {len(data) / 2**20:.1f} MiB; the limit is {max_upload / 2**20:.0f} MiB")
            input_id = await run_in_threadpool(session.add_upload, data, max_side=max_side)
        except UploadError as e:
            return JSONResponse({"detail": e.message}, status_code=e.status)
        return {"id": input_id, "inputs": session.input_names()}

    static = resources.files("seethrough.web").joinpath("static")

    @app.get("/")
    def index() -> Response:
        return Response(static.joinpath("index.html").read_bytes(), media_type="text/html")

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(static.joinpath("favicon.svg").read_bytes(), media_type="image/svg+xml")

    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    app.router.on_shutdown.append(jobs.shutdown)
    return app


def _finite(value: Any) -> Any:
    """NaN and infinities become null: JSON has no NaN, and the page says "n/a" for it
    (a rank correlation of a constant map is undefined, for one)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


async def _file_bytes(request: Request, body: bytes) -> bytes:
    """The uploaded file: the ``file`` field of a multipart form, or the raw body."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return body

    async def replay() -> dict[str, Any]:  # the body was already read under the size limit
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form()
    except MultiPartException as e:
        raise UploadError(400, f"the upload is not a valid multipart form: {e}") from None
    file = form.get("file")
    if file is None or isinstance(file, str):
        raise UploadError(400, "the form has no file field named 'file'")
    return await file.read()
