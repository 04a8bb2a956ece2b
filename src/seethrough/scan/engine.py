"""``see.scan``: run mergeable accumulators over a data set in one streamed pass, locally or on Dask.

The data set's ids are cut into fixed *chunks* (a function of its size only, never of the
engine); each chunk is read and run through the model in batches, inside
:func:`seethrough.hooks.hooks`, into fresh accumulators, and the chunk results are merged into
the running total *in chunk order* - on one process (``engine="local"``) or as Dask tasks whose
results the client merges in the same order (``engine="dask"``). So both engines give the same
result bit for bit with an int ``batch_size`` (``"auto"`` measures batch sizes, and the float
round-off of a convolution can differ between batch sizes by ~1e-7). Memory is one chunk's
batches plus the accumulators, whatever the data set's size. With ``out=`` the merged state is
stored every ``save_every`` chunks, with the finished chunk ids, and a rerun resumes from it.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..batching import bytes_per_item, check_batch_size, run_batched
from ..hooks import hooks
from ..layers import resolve_layers
from ..progress import report
from ..results import ResultProtocol
from . import store
from .accumulators import Accumulator, make
from .sources import Source, source as as_source

DEFAULT_ACCUMULATORS = ("topk", "moments", "hist", "dead", "reservoir")


@dataclass(frozen=True)
class Plan:
    """What every chunk needs to know (picklable: it travels to Dask workers)."""

    layers: tuple[str, ...]
    specs: tuple[tuple[str, dict], ...]  # (accumulator name, options)
    batch_size: int | str
    chunk_size: int
    n: int
    item_bytes: int
    modules: tuple[str, ...] = ()  # where the accumulators are registered: imported on Dask workers first

    def chunk(self, cid: int) -> tuple[int, int]:
        return cid * self.chunk_size, min((cid + 1) * self.chunk_size, self.n)

    @property
    def n_chunks(self) -> int:
        return math.ceil(self.n / self.chunk_size)

    def fresh(self) -> dict[tuple[str, str], Accumulator]:
        import importlib

        for m in self.modules:
            importlib.import_module(m)
        return {(layer, name): make(name, **opts) for layer in self.layers for name, opts in self.specs}


@dataclass
class ChunkResult:
    cid: int
    accs: dict[tuple[str, str], Any]  # accumulators (local) or their states (from a Dask worker)
    seen: int
    skipped: list[tuple[str, str]]
    worker: str = ""
    model_hash: str = ""


def default_chunk_size(n: int) -> int:
    """At least 16 chunks for small sets, at most 512 examples each: depends on ``n`` only.

    >>> default_chunk_size(360), default_chunk_size(100_000)
    (23, 512)
    """
    return int(min(512, max(1, math.ceil(n / 16))))


def run_chunk(model: nn.Module, src: Source, plan: Plan, cid: int) -> ChunkResult:
    """Read chunk ``cid`` of ``src`` in batches, run ``model`` on each inside :func:`hooks`, and add
    every captured layer's activations to fresh accumulators. Unreadable examples are listed."""
    start, stop = plan.chunk(cid)
    accs = plan.fresh()
    seen, skipped = [0], []
    layers = list(plan.layers)
    # sources read to the host; each batch goes to the model's device (one copy per batch: the data is on disk)
    device = next((t.device for t in [*model.parameters(), *model.buffers()]), torch.device("cpu"))
    with torch.no_grad(), hooks(model, capture=layers, detach=True) as rec:

        def forward(a: int, b: int):
            batch = src.read(range(start + a, start + b))
            if batch.x is None:
                return batch, None
            rec.clear()
            model(batch.x.to(device))
            missed = [n for n in layers if not rec.activations[n]]
            if missed:
                raise ValueError(f"layer(s) {', '.join(map(repr, missed))} were not called in the model's forward pass; "
                                 "pick layers the forward uses")
            return batch, {n: rec[n].detach().cpu() for n in layers}

        def add(a: int, b: int, out) -> None:
            batch, acts = out
            skipped.extend(batch.skipped)
            if acts is None:
                return
            for (layer, _), acc in accs.items():
                extra = {}
                if getattr(acc, "needs_inputs", False):
                    extra["inputs"] = batch.x
                if getattr(acc, "needs_labels", False):
                    extra["labels"] = batch.labels
                acc.add(acts[layer], batch.ids, **extra)
            seen[0] += len(batch.ids)

        key = ("scan", id(model), plan.item_bytes, torch.get_num_threads())
        run_batched(forward, stop - start, batch_size=plan.batch_size, item_bytes=plan.item_bytes, key=key,
                    progress=False, on_batch=add, device=device)
    return ChunkResult(cid, accs, seen[0], skipped)


@dataclass
class ScanResult(ResultProtocol):
    """The merged accumulators of a scan: ``res[layer, "topk"]``, with counts.

    ``n``: examples in the source; ``n_seen``: examples that went through the model;
    ``skipped``: ``(name, reason)`` of the unreadable ones; ``complete``: every chunk merged
    (a stored partial scan is not complete); ``workers_lost``: Dask workers that died during the
    scan (their chunks were rerun on the others); ``source``: the data, to re-read example ``i``
    (None for a stored scan of a tensor)."""

    layers: list[str]
    accumulators: dict[tuple[str, str], Any]
    n: int
    n_seen: int
    skipped: list[tuple[str, str]]
    source: Source | None
    model_hash: str
    identity: str
    n_chunks: int
    finished: int
    input_shape: tuple[int, ...] = ()
    classes: list[str] | None = None
    folder: Path | None = None
    resumed: int = 0
    workers_lost: list[str] = field(default_factory=list)
    seconds: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    _transient = ("source",)  # the data source is live (a folder reader, a loader): a loaded result has None

    def summary(self) -> str:
        state = "complete" if self.complete else f"partial ({self.finished} of {self.n_chunks} chunks)"
        accs = sorted({a for _, a in self.accumulators})
        return (f"scan of {self.n_seen} of {self.n} examples at {', '.join(self.layers)} ({', '.join(accs)}), {state}; "
                f"{len(self.skipped)} skipped")

    def to_frame(self):
        """One row per (layer, accumulator)."""
        import pandas as pd

        return pd.DataFrame([{"layer": layer, "accumulator": name, "examples": self.n_seen, "complete": self.complete}
                             for layer, name in self.accumulators] or [{"layer": "", "accumulator": "",
                                                                        "examples": self.n_seen, "complete": self.complete}])

    def _state(self) -> dict[str, Any]:
        # Accumulators are stored by their own state() (arrays and names), as the scan store does.
        state = super()._state()
        state["accumulators"] = {k: acc.state() for k, acc in self.accumulators.items()}
        return state

    @classmethod
    def _restore(cls, values: dict[str, Any]) -> "ScanResult":
        from .accumulators import from_state

        obj = super()._restore(values)
        obj.accumulators = {k: from_state(s) for k, s in obj.accumulators.items()}
        return obj

    @property
    def complete(self) -> bool:
        return self.finished == self.n_chunks

    def __getitem__(self, key: tuple[str, str]) -> Any:
        if not (isinstance(key, tuple) and len(key) == 2):
            raise KeyError(f"index a scan result by (layer, accumulator), e.g. res[{self.layers[0]!r}, 'topk']")
        if key not in self.accumulators:
            names = sorted({a for _, a in self.accumulators})
            raise KeyError(f"this scan has no {key[1]!r} for layer {key[0]!r}; layers: {', '.join(self.layers)}; "
                           f"accumulators: {', '.join(names)}")
        return self.accumulators[key]

    def counts(self) -> dict[str, int]:
        """``{"examples", "seen", "skipped", "chunks", "finished", "resumed", "workers_lost"}``."""
        return {"examples": self.n, "seen": self.n_seen, "skipped": len(self.skipped), "chunks": self.n_chunks,
                "finished": self.finished, "resumed": self.resumed, "workers_lost": len(self.workers_lost)}

    def require_complete(self) -> "ScanResult":
        """Raise ``ValueError`` unless every chunk was merged (a partial scan must never pass for a whole one)."""
        if not self.complete:
            where = f" in {self.folder}" if self.folder else ""
            raise ValueError(f"the scan{where} is partial ({self.finished} of {self.n_chunks} chunks, {self.n_seen} of "
                             f"{self.n} examples); rerun the scan with the same out= to finish it")
        return self


def _resolve_model(model: Any) -> tuple[nn.Module, Any, str, Callable | None]:
    """``(module, spec for Dask workers or None, display name, preprocess or None)``."""
    if isinstance(model, nn.Module):
        return model, None, type(model).__name__, None
    if isinstance(model, str):
        from ..loading import load_model

        loaded = load_model(model)
        return loaded.model, model, loaded.name, loaded.preprocess
    if callable(model):
        built = model()
        if not isinstance(built, nn.Module):
            raise TypeError(f"the model factory returned a {type(built).__name__}, not a torch.nn.Module")
        return built, model, getattr(model, "__name__", "model"), None
    raise TypeError(f"model must be an nn.Module, a zoo name / 'module:factory' string, or a zero-arg callable, got {type(model).__name__}")


def _specs(accumulators: Sequence[str], options: dict | None, seed: int) -> tuple[tuple[str, dict], ...]:
    names = [accumulators] if isinstance(accumulators, str) else list(accumulators)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"accumulators must name each accumulator once, got {names}")
    options = dict(options or {})
    unknown = set(options) - set(names)
    if unknown:
        raise ValueError(f"options given for accumulators not scanned: {', '.join(sorted(unknown))}")
    specs = []
    for name in names:
        opts = dict(options.get(name, {}))
        if name == "reservoir":
            opts.setdefault("seed", seed)
        make(name, **opts)  # a bad name or option fails here, before any work
        specs.append((name, opts))
    return tuple(specs)


def _item_bytes(src: Source) -> tuple[int, tuple[int, ...]]:
    for i in range(min(len(src), 16)):
        b = src.read([i])
        if b.x is not None:
            return bytes_per_item(b.x, "forward"), tuple(b.x.shape[1:])
    raise ValueError("none of the first 16 examples of the data can be read; check the folder (or the dataset)")


def scan(model: Any, data: Any, layers: str | Sequence[str], accumulators: Sequence[str] = DEFAULT_ACCUMULATORS, *,
         options: dict | None = None, batch_size: int | str = "auto", engine: str = "local", address: Any = None,
         workers: int = 2, out: str | Path | None = None, chunk_size: int | None = None, save_every: int = 4,
         preprocess: Callable | None = None, progress: bool = True, seed: int = 0) -> ScanResult:
    """Run ``accumulators`` on every layer of ``layers`` over ``data`` in one streamed pass.

    ``model``: an ``nn.Module``, a zoo name or ``module:factory`` (then Dask workers load it
    themselves, once each), or a zero-arg callable. ``data``: anything :func:`source` takes
    (a folder, a tensor, ``(x, labels)``, a Dataset, a DataLoader). ``options``: per accumulator,
    e.g. ``{"topk": {"k": 9}}``. ``engine="dask"`` starts a ``LocalCluster`` of ``workers``
    processes (one thread each) on 127.0.0.1, or uses ``address`` (a scheduler address or a
    ``distributed.Client``). ``out``: a folder to store the result in and resume from.

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> res = see.scan(model, see.zoo.digits("test"), ["relu3"], ("topk", "dead"), batch_size=32, progress=False)
    >>> res.n_seen, res["relu3", "topk"].ids.shape, int(res["relu3", "dead"].n)
    (360, (120, 9), 360)
    """
    t0 = time.perf_counter()
    check_batch_size(batch_size)
    if engine not in ("local", "dask"):
        raise ValueError(f"engine must be 'local' or 'dask', got {engine!r}")
    if address is not None and engine != "dask":
        raise ValueError("address= is a Dask scheduler: pass engine='dask' with it")
    if isinstance(save_every, bool) or not isinstance(save_every, int) or save_every < 1:
        raise ValueError(f"save_every must be a positive int (chunks between saves), got {save_every!r}")
    module, spec, model_name, zoo_prep = _resolve_model(model)
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"layers must name each layer once, e.g. ['features.3'], got {names}")
    resolve_layers(module, names)
    specs = _specs(accumulators, options, seed)
    src = as_source(data, preprocess=preprocess or zoo_prep)
    if batch_size == "auto" and src.batch_hint:
        batch_size = src.batch_hint
    n = len(src)
    if chunk_size is None:
        chunk_size = default_chunk_size(n)
    elif isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    item_bytes, input_shape = _item_bytes(src)
    from .accumulators import ACCUMULATORS

    modules = tuple(sorted({ACCUMULATORS[a].__module__ for a, _ in specs} - {"__main__"}))
    plan = Plan(tuple(names), specs, batch_size, chunk_size, n, item_bytes, modules)
    from ..zoo.cache import state_sha256

    model_hash = state_sha256(module.state_dict())
    manifest = {"model": {"hash": model_hash, "name": model_name}, "data": {"identity": src.identity, "n": n,
                "source": src.spec, "classes": src.classes, "input_shape": list(input_shape)},
                "layers": names, "accumulators": [[a, o] for a, o in specs], "chunk_size": chunk_size,
                "n_chunks": plan.n_chunks, "batch_size": batch_size, "seed": seed}
    res = ScanResult(names, plan.fresh(), n, 0, [], src, model_hash, src.identity, plan.n_chunks, 0,
                     input_shape, src.classes, Path(out) if out is not None else None,
                     options={"accumulators": [[a, o] for a, o in specs], "chunk_size": chunk_size,
                              "batch_size": batch_size, "engine": engine}, seed=seed)
    done: list[int] = []
    if out is not None:
        stored = store.read_manifest(out)
        if stored is not None:
            _check_same_scan(stored, manifest, out)
            done = list(stored["finished"])
            res.accumulators = store.load_states(out, stored) if done else res.accumulators
            res.n_seen, res.skipped = stored["n_seen"], [tuple(s) for s in stored["skipped"]]
            res.finished = res.resumed = len(done)
            res.workers_lost = list(stored.get("workers_lost", []))
    todo = [c for c in range(plan.n_chunks) if c not in set(done)]
    if not todo:
        res.seconds = time.perf_counter() - t0
        return res
    from ..progress import bar as progress_bar

    bar = progress_bar(total=n, initial=sum(plan.chunk(c)[1] - plan.chunk(c)[0] for c in done), desc="scan",
                       progress=progress, unit="ex", leave=True)
    since_save = [0]

    def merge(r: ChunkResult) -> None:
        from .accumulators import from_state

        if r.model_hash and r.model_hash != model_hash:
            raise RuntimeError(f"worker {r.worker} loaded a different model (state hash {r.model_hash[:12]}…, client "
                               f"{model_hash[:12]}…): give the workers the same weights")
        for key, acc in r.accs.items():
            res.accumulators[key].merge(from_state(acc) if isinstance(acc, dict) else acc)
        res.n_seen += r.seen
        res.skipped.extend(r.skipped)
        done.append(r.cid)
        res.finished = len(done)
        bar.update(plan.chunk(r.cid)[1] - plan.chunk(r.cid)[0])
        since_save[0] += 1
        if out is not None and (since_save[0] >= save_every or res.complete):
            _save(out, manifest, res, done)
            since_save[0] = 0
        report("scan", res.finished, plan.n_chunks)

    try:
        if engine == "local":
            for cid in todo:
                merge(run_chunk(module, src, plan, cid))
        else:
            from .dask_backend import run_dask

            res.workers_lost += run_dask(module, spec, src, plan, todo, merge, address=address, workers=workers)
    finally:
        bar.close()
    res.skipped.sort()
    if res.n_seen + len(res.skipped) != n:  # every example is either seen or listed: never a silent gap
        raise RuntimeError(f"the scan accounted for {res.n_seen + len(res.skipped)} of {n} examples "
                           f"({res.n_seen} seen, {len(res.skipped)} skipped): not returning a partial result")
    if out is not None and since_save[0]:
        _save(out, manifest, res, done)
    res.seconds = time.perf_counter() - t0
    return res


def _save(out: str | Path, manifest: dict, res: ScanResult, done: list[int]) -> None:
    store.save(out, {**manifest, "finished": sorted(done), "complete": res.complete, "n_seen": res.n_seen,
                     "skipped": sorted(map(list, res.skipped)), "workers_lost": res.workers_lost}, res.accumulators)


def _check_same_scan(stored: dict, manifest: dict, out: str | Path) -> None:
    for key, what in (("model", "model"), ("data", "data"), ("layers", "layers"), ("accumulators", "accumulators"),
                      ("chunk_size", "chunk size"), ("batch_size", "batch size")):
        a, b = stored.get(key), manifest[key]
        if key == "model":
            a, b = (a or {}).get("hash"), b["hash"]
        elif key == "data":
            a, b = (a or {}).get("identity"), b["identity"]
        if a != b:
            raise ValueError(f"{out} holds a scan of another {what} ({a!r} there, {b!r} now): "
                             "choose another out= folder, or delete it to scan again")


def load(folder: str | Path, data: Any = None) -> ScanResult:
    """Read a stored scan (complete or partial). ``data`` gives the source back for a scan of a
    tensor (checked against the stored identity); folders and bundled sets are rebuilt.

    >>> import seethrough as see, tempfile
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> d = tempfile.mkdtemp()
    >>> _ = see.scan(model, see.scan.digits_source(), "fc3", ["moments"], batch_size=64, out=d, progress=False)
    >>> r = see.scan.load(d)
    >>> r.complete, r.n_seen, r.source.identity
    (True, 360, 'digits:test')
    """
    from .sources import from_spec

    m = store.read_manifest(folder)
    if m is None:
        raise ValueError(f"{folder} holds no stored scan (no {store.MANIFEST}); run seethrough scan ... -o {folder} first")
    src = as_source(data) if data is not None else from_spec(m["data"].get("source"))
    if src is not None and src.identity != m["data"]["identity"]:
        raise ValueError(f"the data given is not the data of the scan in {folder} (identity {src.identity!r}, "
                         f"stored {m['data']['identity']!r})")
    accs = store.load_states(folder, m) if m["finished"] else {}
    return ScanResult(list(m["layers"]), accs, m["data"]["n"], m["n_seen"], [tuple(s) for s in m["skipped"]], src,
                      m["model"]["hash"], m["data"]["identity"], m["n_chunks"], len(m["finished"]),
                      tuple(m["data"].get("input_shape", ())), m["data"].get("classes"), Path(folder),
                      resumed=len(m["finished"]), workers_lost=list(m.get("workers_lost", [])),
                      options={"accumulators": m.get("accumulators", []), "chunk_size": m.get("chunk_size"),
                               "batch_size": m.get("batch_size")}, seed=m.get("seed"))
