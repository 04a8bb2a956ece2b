"""The Dask engine: chunks as tasks on a ``distributed`` cluster, merged on the client in chunk order.

The model reaches each worker once: a zoo name / ``module:factory`` string is loaded by the
worker itself and kept for the worker's life; an in-memory model (or a factory) is scattered
to every worker once (``client.scatter(..., broadcast=True)``), never pickled per task. The
source is scattered the same way. At most ``2 × workers`` chunks are in flight, so the
client holds few results at a time. When a worker dies, the scheduler reruns its chunks on
the others; a chunk that kills workers repeatedly fails the scan with its counts, and the
merged state stored so far (``out=``) stays valid for a resume. ``distributed`` is imported only
here, so ``import seethrough`` stays fast.
"""
from __future__ import annotations

import logging
import threading
import uuid
from typing import Any, Callable

import torch
from torch import nn

from .engine import ChunkResult, Plan, run_chunk
from .sources import Source

# Per worker process: the scan's model key → (model, state hash); the last few only, so a long-lived
# worker does not keep every model it ever scanned. LOADS counts builds (tests: once per worker).
_MODELS: dict[str, tuple[nn.Module, str]] = {}
_KEEP = 2
LOADS = [0]
_LOCK = threading.Lock()  # a model's hooks are per model: one chunk at a time per worker process


class Boxed:
    """Carries a model (or factory) to the workers by plain pickle: distributed's own serializer for
    ``nn.Module`` walks ``__dict__`` and turns the hook ``OrderedDict``s into ``dict``s, which breaks hooks."""

    def __init__(self, obj: Any):
        self.obj = obj


def _model_on_worker(arg: Any, key: str) -> tuple[nn.Module, str]:
    from ..zoo.cache import state_sha256

    if key not in _MODELS:
        LOADS[0] += 1
        while len(_MODELS) >= _KEEP:
            _MODELS.pop(next(iter(_MODELS)))
        if isinstance(arg, Boxed):
            arg = arg.obj
        if isinstance(arg, nn.Module):
            model = arg
        elif isinstance(arg, str):
            from ..loading import load_model

            model = load_model(arg).model
        else:
            model = arg()
        _MODELS[key] = (model, state_sha256(model.state_dict()))
    return _MODELS[key]


def chunk_task(model_arg: Any, key: str, src: Source, plan: Plan, cid: int, threads: int | None) -> ChunkResult:
    """One chunk on a worker: the accumulators come back as their serialisable states."""
    if threads:
        torch.set_num_threads(threads)
    with _LOCK:
        model, digest = _model_on_worker(model_arg, key)
        r = run_chunk(model, src, plan, cid)
    try:
        from distributed import get_worker

        r.worker = get_worker().address
    except (ImportError, ValueError):
        pass
    r.accs = {k: acc.state() for k, acc in r.accs.items()}
    r.model_hash = digest
    return r


def _client(address: Any, workers: int):
    """``(client, cluster or None, owned)`` for ``address``: None starts a LocalCluster on 127.0.0.1."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ValueError("engine='dask' needs dask.distributed: pip install 'dask[distributed]'") from None
    if isinstance(address, Client):
        return address, None, False
    if address is not None:
        try:
            import dask

            return Client(address, timeout=dask.config.get("distributed.comm.timeouts.connect")), None, True
        except (OSError, TimeoutError) as e:
            raise ValueError(f"cannot reach the Dask scheduler at {address!r} ({e}); give a running scheduler's address "
                             "(tcp://host:8786) or leave address out for a local cluster") from None
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    import dask

    # distributed starts workers with MALLOC_TRIM_THRESHOLD_=65536, which hands every freed activation
    # buffer back to the OS: torch then faults its pages in again each batch (3× slower here). Unset it,
    # and the workers' statistical profiler, which samples the task thread every 10 ms.
    # The active memory manager would trim the broadcast model and source to one replica, which a
    # dead worker then takes with it; on our own cluster keep every replica.
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                          "distributed.worker.profile.enabled": False,
                          "distributed.scheduler.active-memory-manager.start": False}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, silence_logs=logging.ERROR,
                               env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    return Client(cluster), cluster, True


def run_dask(model: nn.Module, spec: Any, src: Source, plan: Plan, todo: list[int], merge: Callable[[ChunkResult], None],
             *, address: Any = None, workers: int = 2) -> list[str]:
    """Run chunks ``todo`` as tasks; ``merge`` each result on the client in ``todo`` order.
    Returns the addresses of workers lost during the scan."""
    from distributed import as_completed
    from distributed.client import FutureCancelledError

    client, cluster, owned = _client(address, workers)
    try:
        before = set(client.scheduler_info()["workers"])
        if not before:
            client.wait_for_workers(1, timeout=30)
            before = set(client.scheduler_info()["workers"])
        threads = 1 if cluster is not None else None
        token = uuid.uuid4().hex[:8]
        key = f"{spec if isinstance(spec, str) else 'object'}-{token}"  # loaded once per worker and scan
        window = 2 * max(len(before), 1)
        queue = list(todo)
        inputs: list = []  # (model, source) scattered to every worker, again if the cluster loses them

        def scatter() -> None:
            model_arg = spec if isinstance(spec, str) else client.scatter(Boxed(spec if spec is not None else model), broadcast=True)
            inputs[:] = [model_arg, client.scatter(src, broadcast=True), inputs[2] + 1 if inputs else 1]

        cids: dict[str, tuple[int, int]] = {}  # task key → (chunk id, scatter generation)

        def submit(cid: int):
            gen = inputs[2]
            fut = client.submit(chunk_task, inputs[0], key, inputs[1], plan, cid, threads, pure=False, retries=0,
                                key=f"seethrough-scan-{token}-{cid}-g{gen}")
            cids[fut.key] = (cid, gen)
            return fut

        scatter()
        running = as_completed([submit(queue.pop(0)) for _ in range(min(window, len(queue)))])
        order, pending, merged = list(todo), {}, 0
        for fut in running:
            cid, gen = cids.pop(fut.key)
            try:
                r = fut.result()
            except FutureCancelledError as e:
                # A dead worker can take the last copy of the scattered model or source with it (the
                # active memory manager trims broadcast replicas): scatter them again, rerun the chunk.
                if inputs[2] <= 3:
                    if gen == inputs[2]:
                        scatter()
                    running.add(submit(cid))
                    continue
                raise _failed(cid, e, merged, len(order)) from e
            except Exception as e:  # noqa: BLE001 - a task failed: name it, with the counts
                raise _failed(cid, e, merged, len(order)) from e
            pending[r.cid] = r
            while merged < len(order) and order[merged] in pending:
                merge(pending.pop(order[merged]))
                merged += 1
            if queue:
                running.add(submit(queue.pop(0)))
        after = set(client.scheduler_info()["workers"])
        return sorted(before - after)
    finally:
        if owned:
            client.close()
        if cluster is not None:
            cluster.close()


def _failed(cid: int, e: BaseException, merged: int, total: int) -> RuntimeError:
    why = str(e).splitlines()[0] if str(e) else ""
    return RuntimeError(f"the Dask scan failed on chunk {cid} ({type(e).__name__}: {why}); {merged} of {total} chunks were "
                        "merged, none silently dropped; rerun with out= to resume")
