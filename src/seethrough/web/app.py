"""The explorer's HTTP layer: parse a request, call a view through the cache, encode the reply.

Every view has a plain GET endpoint that returns its JSON (computing it once, however many
clients ask), and can also be started as a job (``POST /api/jobs/<view>``) whose progress
the page shows; the page then GETs the same URL and is served from the cache.

Cheap requests never wait behind heavy ones: every endpoint runs on the event loop, a cached
answer is returned from there, and only a real computation goes to a thread — the view pool
(``view_threads``, its queue bounded by ``max_waiting``: more is a 503) or the job pool. Page,
info, job progress and cancel never touch a thread at all. Bad input is always a 4xx with a
one-line ``detail``; a 500 would be a bug.
"""
from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import re
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.formparsers import MultiPartException

from .._version import __version__
from ..adversarial import ATTACKS
from ..attribution import METHODS
from ..embed import METHODS as PROJECTIONS
from ..progress import report
from . import textviews, views
from .cache import Cache
from .guard import Guard, new_token
from .jobs import Busy, Jobs
from .page import add_page
from .session import Session
from .viewspec import VIEWS, Sentence
from ..catalog import entries
from ..spec import Spec
from .uploads import MAX_BYTES, MAX_SIDE, UploadError, check_declared_length, read_limited

REQUIRED = object()
# Options the page sets itself or that need Python objects (a layer has its own menu; a tensor baseline
# or a memory budget is no control): the page offers every other option of the chosen entry.
HIDDEN_OPTIONS = ("layer", "unit", "batch_size", "memory_budget", "reduce", "segments", "rules", "background",
                  "output", "boundary")
MULTIPART_SLACK = 64 * 1024  # headers and boundaries around the file in a multipart body
INT32 = (-2**31, 2**31 - 1)  # wide enough for any class, channel or sample size; never an OverflowError below
BOUNDS = {"seed": (0, 2**32 - 1), "seq": (0, 2**53)}
MAX_TEXT = 256
MAX_SENTENCE = 8192  # characters of a typed sentence: room for the model's 512 tokens, whose limit the library checks
_INT = re.compile(r"-?[0-9]{1,20}")
JSON = "application/json"


class Superseded(Exception):
    """A newer ε from the same client arrived while this one waited for the model."""


class Newest:
    """The newest ε request number of each of the last ``max_clients`` clients (LRU).

    >>> n = Newest(max_clients=2)
    >>> n.note("a", 1); n.note("a", 3); n.superseded("a", 1), n.superseded("a", 3)
    (True, False)
    >>> n.note("b", 1); n.note("c", 1); len(n)  # "a" was the least recently seen
    2
    """

    def __init__(self, max_clients: int = 256) -> None:
        self._seq: OrderedDict[str, int] = OrderedDict()
        self._max, self._guard = max_clients, threading.Lock()

    def note(self, client: str, n: int) -> None:
        with self._guard:
            self._seq[client] = max(self._seq.get(client, n), n)
            self._seq.move_to_end(client)
            while len(self._seq) > self._max:
                self._seq.popitem(last=False)

    def superseded(self, client: str, n: int) -> bool:
        with self._guard:
            return self._seq.get(client, n) > n

    def __len__(self) -> int:
        return len(self._seq)


def _projections() -> list[str]:
    """UMAP is an optional extra: offer it only where umap-learn is installed."""
    return [m for m in PROJECTIONS if m != "umap" or importlib.util.find_spec("umap") is not None]


def controls(spec: Spec) -> list[dict[str, Any]]:
    """An entry's options as the page draws them (one control each): the spec, JSON-safe.

    >>> [c["name"] for c in controls(entries("attribution")["integrated-gradients"])][:2]
    ['baseline', 'steps']
    """
    out = []
    for o in spec.options:
        if o.name in HIDDEN_OPTIONS or o.required:
            continue
        default = o.default if isinstance(o.default, (bool, int, float, str)) or o.default is None else str(o.default)
        out.append({"name": o.name, "type": o.type, "default": _finite(default),
                    "choices": list(o.choices) if o.choices else None,
                    "range": list(o.range) if o.range else None, "help": o.help})
    return out


def value_of(name: str, raw: str, typ: type) -> Any:
    """One query parameter parsed as ``typ``, or a one-line 400 saying what would be right.

    >>> value_of("channel", "3", int), value_of("eps", "2.5", float)
    (3, 2.5)
    >>> value_of("target", "99999999999999999999", int)
    Traceback (most recent call last):
    ...
    fastapi.exceptions.HTTPException: 400: target must be a whole number from -2147483648 to 2147483647, got '99999999999999999999'
    """
    if typ is int:
        lo, hi = BOUNDS.get(name, INT32)
        if not _INT.fullmatch(raw) or not lo <= int(raw) <= hi:
            raise HTTPException(400, f"{name} must be a whole number from {lo} to {hi}, got {raw[:40]!r}")
        return int(raw)
    if typ is float:
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or len(raw) > 40:
            raise HTTPException(400, f"{name} must be a finite number, e.g. 2 or 0.5, got {raw[:40]!r}")
        return value
    if typ is Sentence:
        if len(raw) > MAX_SENTENCE:
            raise HTTPException(400, f"{name} is {len(raw)} characters long; at most {MAX_SENTENCE} are allowed")
        return raw
    if len(raw) > MAX_TEXT:
        raise HTTPException(400, f"{name} is {len(raw)} characters long; at most {MAX_TEXT} are allowed")
    return raw


def create_app(session: Session, *, cache_budget: int = 512 * 2**20, workers: int = 1, max_upload: int = MAX_BYTES,
               max_side: int = MAX_SIDE, host: str = "127.0.0.1", token: str | None = None, view_threads: int = 8,
               max_waiting: int = 64, max_clients: int = 256) -> FastAPI:
    """The FastAPI application serving ``session`` to the page at ``host`` (the address it
    binds: it decides which ``Host`` names are served). ``app.state`` holds its ``cache``
    (``/api/stats``), ``jobs``, ``newest`` (per-client ε numbers) and ``token``.

    >>> from seethrough.web.session import from_zoo
    >>> app = create_app(from_zoo("lenet-digits"))
    >>> app.state.cache.stats()["computations"], len(app.state.token) > 40
    ({}, True)
    """
    app = FastAPI(title="seethrough explorer", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    token = token or new_token()
    cache, jobs, newest = Cache(budget=cache_budget, workers=workers), Jobs(max_pending=max_waiting), Newest(max_clients)
    app.state.cache, app.state.jobs, app.state.session, app.state.newest, app.state.token = cache, jobs, session, newest, token
    app.add_middleware(Guard, token=token, bind_host=host)
    pool = ThreadPoolExecutor(max_workers=view_threads, thread_name_prefix="seethrough-view")
    waiting = [0]  # view computations handed to the pool and not finished (only the event loop changes it)
    layers = session.layers()  # read once now: a forward pass must not run beside a computation later

    def flip(_: Session, input_id: str, method: str, options: str = "{}") -> dict[str, Any]:
        """Sweep the ε grid (each step cached, so the slider is instant afterwards) and mark the
        smallest ε that changes the label."""
        steps = []
        for i, eps in enumerate(views.EPS_GRID):
            steps.append(compute("adversarial", {"input": input_id, "method": method, "eps": float(eps),
                                                 "options": options}))
            report("ε sweep", i + 1, len(views.EPS_GRID))
        parsed = [json.loads(s) for s in steps]
        first = next((p["eps"] for p in parsed if p["flipped"]), None)
        return {"method": method, "grid": [float(e) for e in views.EPS_GRID], "flip": first,
                "labels": [p["label"] for p in parsed], "clean": parsed[0]["label"]}

    # view name → (function, {param: type or (type, default)}, holds the model): the registry (viewspec)
    kinds: dict[str, tuple[Callable, dict, bool]] = {
        name: (v.fn or flip, v.params, v.holds_model) for name, v in VIEWS.items()}
    scan_summary = views.scan_summary(session)

    def parse(kind: str, query: dict[str, str]) -> dict[str, Any]:
        if kind not in kinds:
            raise HTTPException(404, f"no view {kind[:40]!r}; views: {', '.join(kinds)}")
        params = {}
        for name, spec in kinds[kind][1].items():
            typ, default = spec if isinstance(spec, tuple) else (spec, REQUIRED)
            raw = query.get(name)
            if raw is None or raw == "":
                if default is REQUIRED:
                    raise HTTPException(400, f"{kind} needs the parameter {name!r}")
                params[name] = default
            else:
                params[name] = value_of(name, raw, typ)
        return params

    def key_of(kind: str, params: dict[str, Any]) -> tuple:
        return (session.name, kind, tuple(sorted(params.items())))  # inputs are named by content hash or bundle name

    def compute(kind: str, params: dict[str, Any], check: Callable[[], None] | None = None) -> bytes:
        fn, _, holds_model = kinds[kind]

        def run() -> bytes:
            report(kind, 0, 0)  # a job's checkpoint: stop here if nobody waits any more
            if check is not None:
                check()
            args = {("input_id" if k == "input" else k): v for k, v in params.items()}
            return json.dumps(_finite(fn(session, **args)), allow_nan=False).encode()

        return cache.get(key_of(kind, params), run, kind=kind, model=holds_model)

    async def answer(kind: str, params: dict[str, Any], check: Callable[[], None] | None = None) -> Response:
        found, body = cache.lookup(key_of(kind, params))
        if found:
            return Response(body, media_type=JSON)
        if waiting[0] >= max_waiting:
            raise HTTPException(503, f"{max_waiting} computations are already waiting for the model; try again shortly",
                                headers={"Retry-After": "2"})
        waiting[0] += 1
        try:
            body = await asyncio.get_running_loop().run_in_executor(pool, compute, kind, params, check)
        except KeyError as e:
            raise HTTPException(404, str(e.args[0] if e.args else e)) from None
        except (ValueError, OverflowError) as e:
            raise HTTPException(400, str(e)) from None
        except Superseded:  # 204, not an error: the page simply waits for its newer request
            return Response(status_code=204)
        finally:
            waiting[0] -= 1
        return Response(body, media_type=JSON)

    @app.get("/api/info")
    async def info() -> dict[str, Any]:
        return {"model": session.name, "version": __version__, "shape": list(session.shape),
                "classes": None if session.labels is None else len(session.labels),
                "inputs": session.input_names(), "layers": layers,
                "methods": [{"name": m.name, "family": m.family, "paper": m.paper,
                             "options": controls(entries("attribution")[m.name])} for m in METHODS.values()],
                "attacks": [{"name": a.name, "paper": a.paper, "description": a.description,
                             "options": [o for o in controls(entries("attack")[a.name]) if o["name"] != "eps"]}
                            for a in ATTACKS.values() if "eps" in a.defaults],
                "attacks_without_eps": [a for a, spec in ATTACKS.items() if "eps" not in spec.defaults],
                "projections": _projections(), "eps_grid": [float(e) for e in views.EPS_GRID],
                "data": 0 if session.data is None else len(session.data[0]), "scan": scan_summary,
                "text": None if session.text is None else {
                    "task": session.text, "methods": textviews.methods(), "labels": session.labels or [],
                    "max_tokens": getattr(session.preprocess, "max_length", None)}}

    @app.get("/api/stats")
    async def stats() -> dict[str, Any]:
        return {**cache.stats(), "jobs": jobs.stats(), "waiting": waiting[0], "clients": len(newest)}

    @app.get("/api/adversarial")
    async def adversarial(request: Request) -> Response:
        params = parse("adversarial", dict(request.query_params))
        client, seq = request.query_params.get("client"), request.query_params.get("seq")
        check = None
        if client and seq is not None:
            n = value_of("seq", seq, int)
            client = value_of("client", client, str)
            newest.note(client, n)

            def check() -> None:  # run once the model is free: only the client's newest ε is worth computing
                if newest.superseded(client, n):
                    raise Superseded(f"ε request {n} of client {client!r} was superseded by a newer one")
        return await answer("adversarial", params, check)

    @app.get("/api/data/{index}.png")
    async def thumbnail(index: str) -> Response:
        if session.data is None or not _INT.fullmatch(index) or not 0 <= int(index) < len(session.data[0]):
            raise HTTPException(404, f"no data set sample {index[:40]!r}")
        key, i = (session.name, "thumb", int(index)), int(index)
        found, body = cache.lookup(key)
        if not found:  # a small PNG of a data set sample: no model, no queue
            body = await run_in_threadpool(cache.get, key, lambda: views.thumbnail(session, i), kind="thumbnail", model=False)
        return Response(body, media_type="image/png")

    @app.get("/api/scan/{index}.png")
    async def scan_thumbnail(index: str) -> Response:
        src = None if session.scan is None else session.scan.source
        if src is None or not _INT.fullmatch(index) or not 0 <= int(index) < len(src):
            why = "no stored scan" if session.scan is None else "the scan's data is not available" if src is None else ""
            raise HTTPException(404, f"no scanned example {index[:40]!r}" + (f" ({why})" if why else ""))
        key, i = (session.name, "scan-thumb", int(index)), int(index)
        found, body = cache.lookup(key)
        if not found:  # re-read from the scan's data source: no model, no queue
            body = await run_in_threadpool(cache.get, key, lambda: views.scan_thumbnail(session, i), kind="thumbnail",
                                           model=False)
        return Response(body, media_type="image/png")

    @app.get("/api/{kind}")
    async def view(kind: str, request: Request) -> Response:
        return await answer(kind, parse(kind, dict(request.query_params)))

    @app.post("/api/jobs/{kind}")
    async def start_job(kind: str, request: Request) -> dict[str, Any]:
        params = parse(kind, dict(request.query_params))
        key = key_of(kind, params)
        try:  # already cached: a ticket that is done at once, no thread
            return jobs.submit(kind, key, lambda: compute(kind, params), ready=cache.lookup(key)[0]).as_dict()
        except Busy as e:
            raise HTTPException(503, str(e), headers={"Retry-After": "2"}) from None

    def known_job(action: Callable[[str], Any], job_id: str) -> dict[str, Any]:
        try:
            return action(job_id).as_dict()
        except KeyError as e:
            raise HTTPException(404, e.args[0]) from None

    @app.get("/api/jobs/{job_id}")
    async def job(job_id: str) -> dict[str, Any]:
        return known_job(jobs.get, job_id)

    @app.delete("/api/jobs/{job_id}")
    async def cancel(job_id: str) -> dict[str, Any]:
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

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body")) or "request"
        return JSONResponse({"detail": f"{where}: {first.get('msg', 'invalid')}"}, status_code=400)

    @app.exception_handler(Exception)
    async def bug(_: Request, e: Exception) -> JSONResponse:  # never for bad input: those are 4xx above
        return JSONResponse({"detail": f"internal error (a bug; please report it): {type(e).__name__}: {e}"[:300]},
                            status_code=500)

    add_page(app, token)

    def shutdown() -> None:
        jobs.shutdown()
        pool.shutdown(wait=False, cancel_futures=True)

    app.router.on_shutdown.append(shutdown)
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
