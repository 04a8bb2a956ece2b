"""Explanations over a folder: one attribution map per image and method, and a CSV of predictions
and faithfulness scores (deletion and insertion AUCs from :mod:`seethrough.metrics`, each beside a
random ranking's), on the scan engine's chunks - in this process or as Dask tasks.

The folder is read as a :class:`~.sources.FolderSource` (recursive; an unreadable file is listed,
not fatal). Its ids are cut into the scan engine's chunks; a chunk is one map task (on Dask the
model and the source reach each worker once) and returns the maps, which the client writes:
``out/maps/<relative path>.<method>.png`` (overlay) and ``.npy`` (the raw map, float32), and
``out/explanations.csv``. An image's row depends on that image only (the random rankings of the
metrics are seeded by its id), so chunking and the engine do not change the numbers.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..deprecation import renamed
from ..results import ResultProtocol, call_options

METRICS = ("deletion", "insertion")


@dataclass(frozen=True)
class Job:
    """Everything a chunk needs (picklable: it travels to Dask workers)."""

    methods: tuple[str, ...]
    options: tuple[tuple[str, Any], ...]
    target: int | None
    steps: int
    n_random: int
    seed: int
    batch: int
    chunk_size: int
    n: int
    per_method: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()  # each method's own options

    def chunk(self, cid: int) -> tuple[int, int]:
        return cid * self.chunk_size, min((cid + 1) * self.chunk_size, self.n)


@dataclass
class FolderExplanation(ResultProtocol):
    """``table``: one row per (image, method) - the CSV written to ``csv``; ``skipped``: ``(name, reason)``."""

    table: Any
    out: Path
    csv: Path
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None

    def summary(self) -> str:
        return (f"{len(self.table)} explanations ({self.table['method'].nunique() if len(self.table) else 0} methods) "
                f"written to {self.out}; {len(self.skipped)} images skipped")

    def to_frame(self):
        """The table itself: one row per (image, method)."""
        return self.table


def _parse_methods(method: str | Sequence[str]) -> tuple[str, ...]:
    from ..attribution import METHODS

    names = [m.strip() for m in method.split(",")] if isinstance(method, str) else list(method)
    names = [m for m in names if m]
    if not names:
        raise ValueError("method: give at least one attribution method, e.g. 'gradcam'")
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; available: {', '.join(METHODS)}")
    return tuple(dict.fromkeys(names))


def explain_chunk(model: nn.Module, src, job: Job, cid: int) -> dict[str, Any]:
    """One map task: predictions, maps and metric scores of chunk ``cid``'s readable images."""
    from ..attribution import METHODS, attribute
    from ..hooks import forward
    from ..metrics import deletion, insertion

    start, stop = job.chunk(cid)
    rows, maps, skipped = [], {}, []
    opts = dict(job.options)
    for a in range(start, stop, job.batch):
        batch = src.read(range(a, min(a + job.batch, stop)))
        skipped.extend(batch.skipped)
        if batch.x is None:
            continue
        x = batch.x
        prob = torch.softmax(forward(model, x).float(), 1)
        pred = prob.argmax(1)
        target = pred if job.target is None else torch.full_like(pred, job.target)
        for name in job.methods:
            options = {k: v for k, v in opts.items() if k != "layer" or METHODS[name].family == "cam"}
            options.update(dict(dict(job.per_method).get(name, ())))
            amap = attribute(model, x, name, target=target, **options).detach()
            for j, i in enumerate(batch.ids.tolist()):
                row = {"id": i, "name": src.name(i), "label": None if batch.labels[j] < 0 else int(batch.labels[j]),
                       "predicted": int(pred[j]), "probability": float(prob[j, pred[j]]), "method": name,
                       "target": int(target[j])}
                for metric, fn in (("deletion", deletion), ("insertion", insertion)):
                    # seeded by the image's id: its random baseline does not depend on its batch
                    r = fn(model, x[j:j + 1], amap[j:j + 1], target[j:j + 1], steps=job.steps, n_random=job.n_random,
                           seed=job.seed * 1_000_003 + i, progress=False)
                    row[metric], row[f"{metric}_random"] = float(r.score[0]), float(r.random_score[0])
                rows.append(row)
                maps[(i, name)] = (x[j].numpy(), amap[j].float().numpy())
    return {"cid": cid, "rows": rows, "maps": maps, "skipped": skipped}


def _task(model_arg: Any, key: str, src, job: Job, cid: int, threads: int | None) -> dict[str, Any]:
    from .dask_backend import _LOCK, _model_on_worker

    if threads:
        torch.set_num_threads(threads)
    with _LOCK:
        model, _ = _model_on_worker(model_arg, key)
        return explain_chunk(model, src, job, cid)


def _run_dask(model: nn.Module, spec: Any, src, job: Job, n_chunks: int, done: Callable, address: Any, workers: int) -> None:
    import uuid

    from distributed import as_completed

    from .dask_backend import Boxed, _client

    client, cluster, owned = _client(address, workers)
    try:
        model_arg = spec if isinstance(spec, str) else client.scatter(Boxed(spec if spec is not None else model), broadcast=True)
        src_f = client.scatter(src, broadcast=True)
        token = uuid.uuid4().hex[:8]
        key = f"{spec if isinstance(spec, str) else 'object'}-{token}"
        threads = 1 if cluster is not None else None
        futures = [client.submit(_task, model_arg, key, src_f, job, c, threads, key=f"seethrough-explain-{token}-{c}",
                                 pure=False) for c in range(n_chunks)]
        for fut in as_completed(futures):
            done(fut.result())
    finally:
        if owned:
            client.close()
        if cluster is not None:
            cluster.close()


def _write(out: Path, name: str, method: str, x: np.ndarray, amap: np.ndarray) -> str:
    from ..render import for_display, overlay

    rel = Path("maps") / f"{name}.{method}"
    (out / rel).parent.mkdir(parents=True, exist_ok=True)
    np.save(out / f"{rel}.npy", amap.astype(np.float32))
    overlay(torch.from_numpy(x)[None], for_display(method, torch.from_numpy(amap)[None])).save(out / f"{rel}.png")
    return f"{rel.as_posix()}.png"


@renamed(batch="batch_size")
def explain_folder(model: Any, folder: str | Path, method: str | Sequence[str], out: str | Path, *,
                   engine: str = "local", address: Any = None, workers: int = 2, target: int | None = None,
                   layer: str | None = None, steps: int = 16, n_random: int = 1, preprocess: Callable | None = None,
                   labels: Sequence[str] | None = None, chunk_size: int | None = None, batch_size: int = 16,
                   seed: int = 0, method_options: dict[str, dict] | None = None,
                   progress: bool = True) -> FolderExplanation:
    """Explain every image under ``folder`` with ``method`` (a name, ``"a,b"`` or a list) into ``out``.

    ``model``: an ``nn.Module``, a zoo name or ``module:factory`` (Dask workers then load it
    themselves); ``preprocess``: images → tensors (default: the zoo model's, else the 224-px centre
    crop); ``target``: the class explained (default: each image's predicted class); ``layer``: for
    the CAM methods; ``method_options``: each method's own options (``{"integrated-gradients": {"steps":
    64}}``); ``steps``/``n_random``: the deletion/insertion curves (steps per curve, random
    rankings averaged); ``batch_size``: images per forward pass; ``engine``/``address``/``workers``: as
    :func:`seethrough.scan`.

    >>> import seethrough as see, tempfile
    >>> from pathlib import Path
    >>> from seethrough.scan.explain_dir import explain_folder
    >>> d = Path(tempfile.mkdtemp())
    >>> x, _ = see.zoo.digits("test")
    >>> for i in range(3):
    ...     see.zoo.to_image(x[i]).save(d / f"{i}.png")
    >>> r = explain_folder("lenet-digits", d, "saliency", d / "out", steps=4, progress=False)
    >>> list(r.table["name"]), sorted(p.name for p in (d / "out" / "maps").iterdir())[:2]
    (['0.png', '1.png', '2.png'], ['0.png.saliency.npy', '0.png.saliency.png'])
    """
    opts = call_options(locals(), "model", "preprocess")
    opts["preprocess"] = None if preprocess is None else repr(preprocess)  # code, not data: kept readable
    from ..progress import bar as progress_bar

    from .engine import _resolve_model, default_chunk_size
    from .sources import FolderSource

    t0 = time.perf_counter()
    if engine not in ("local", "dask"):
        raise ValueError(f"engine must be 'local' or 'dask', got {engine!r}")
    methods = _parse_methods(method)
    for what, v, lo in (("steps", steps, 1), ("n_random", n_random, 0), ("batch_size", batch_size, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{what} must be an int >= {lo}, got {v!r}")
    if target is not None and (isinstance(target, bool) or not isinstance(target, int) or target < 0):
        raise ValueError(f"target must be a class index (int >= 0) or None for the predicted class, got {target!r}")
    if isinstance(model, str):
        from ..loading import load_model

        loaded = load_model(model)
        module, spec, prep, labels = loaded.model, model, loaded.preprocess, labels or loaded.labels
    else:
        module, spec, _, prep = _resolve_model(model)
    if layer is not None:
        from ..layers import resolve_layer

        resolve_layer(module, layer)
    src = FolderSource(folder, preprocess or prep)
    n = len(src)
    chunk_size = chunk_size or default_chunk_size(n)
    per_method = tuple((m, tuple(sorted((method_options or {}).get(m, {}).items()))) for m in methods)
    job = Job(methods, (("layer", layer),) if layer else (), target, steps, n_random, seed, batch_size, chunk_size, n,
              per_method)
    n_chunks = -(-n // chunk_size)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows, skipped = [], []
    bar = progress_bar(total=n, desc="explain", unit="img", progress=progress, leave=True)

    def done(r: dict[str, Any]) -> None:
        for row in r["rows"]:
            x, amap = r["maps"][(row["id"], row["method"])]
            row["map"] = _write(out, row["name"], row["method"], x, amap)
            row["predicted_label"] = labels[row["predicted"]] if labels and row["predicted"] < len(labels) else None
            rows.append(row)
        skipped.extend(r["skipped"])
        a, b = job.chunk(r["cid"])
        bar.update(b - a)

    try:
        if engine == "local":
            for c in range(n_chunks):
                done(explain_chunk(module, src, job, c))
        else:
            _run_dask(module, spec, src, job, n_chunks, done, address, workers)
    finally:
        bar.close()
    import pandas as pd

    cols = ["id", "name", "label", "predicted", "predicted_label", "probability", "method", "target", "deletion",
            "deletion_random", "insertion", "insertion_random", "map"]
    table = pd.DataFrame(rows, columns=cols).sort_values(["id", "method"], kind="stable").reset_index(drop=True)
    if src.classes:
        table["label"] = [None if pd.isna(v) else src.classes[int(v)] for v in table["label"]]
    csv = out / "explanations.csv"
    table.to_csv(csv, index=False)
    if skipped:
        pd.DataFrame(sorted(skipped), columns=["name", "reason"]).to_csv(out / "skipped.csv", index=False)
    return FolderExplanation(table, out, csv, sorted(skipped), time.perf_counter() - t0, options=opts, seed=seed)
