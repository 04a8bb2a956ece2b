"""see.scan on a Dask LocalCluster (2 worker processes, 1 thread each): the local result, bit for bit; faults."""
from __future__ import annotations

import os
import signal

import distributed
import pytest

import seethrough as see
from seethrough.progress import listen
from seethrough.testing import torch_threads, untouched

from .test_scan_engine import states_equal

pytestmark = pytest.mark.slow  # starting worker processes that import torch takes seconds

KW = dict(layers=["conv2", "relu3"], batch_size=16, progress=False)


@pytest.fixture(scope="module")
def client():
    from seethrough.scan.dask_backend import _client

    c, cluster, _ = _client(None, 2)  # the engine's own LocalCluster settings
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def lenet():
    return see.zoo.load("lenet-digits")[0]


@pytest.fixture(scope="module")
def data():
    return see.zoo.digits("test")


@pytest.fixture(scope="module")
def local(lenet, data):
    with torch_threads(1):  # the workers' arithmetic: one thread each
        return see.scan(lenet, data, **KW)


def test_dask_gives_the_local_result_bit_for_bit(client, lenet, data, local):
    info = client.scheduler_info()["workers"]
    assert len(info) == 2 and all(w["nthreads"] == 1 and w["host"] == "127.0.0.1" for w in info.values())
    assert set(client.run(lambda: __import__("torch").get_num_threads()).values()) == {1}
    with untouched(lenet):
        res = see.scan(lenet, data, engine="dask", address=client, **KW)
    states_equal(res, local)  # top-k ids identical; moments identical too (same chunks, merged in chunk order)
    assert res.counts() == {**local.counts(), "workers_lost": 0}


def test_workers_load_a_named_model_once_each(client, data, local):
    from seethrough.scan import dask_backend

    def loads():  # on a worker
        return __import__("importlib").import_module("seethrough.scan.dask_backend").LOADS[0]

    before = sum(client.run(loads).values())
    res = see.scan("lenet-digits", data, engine="dask", address=client, **KW)
    after = client.run(loads)
    assert res.n_chunks == 16 and sum(after.values()) - before <= 2  # 16 chunks, at most one load per worker
    states_equal(res, local)
    assert dask_backend.LOADS[0] == 0  # the client never ran a chunk itself


def test_a_killed_worker_costs_no_chunk(lenet, data, local):
    """A LocalCluster started by the engine; one worker process is killed after the first merged chunk."""
    killed = []

    def kill_one(desc, done, total):
        if desc == "scan" and done == 1 and not killed:
            client = distributed.default_client()
            addr, pid = sorted(client.run(os.getpid).items())[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(addr)

    with listen(kill_one):
        res = see.scan(lenet, data, engine="dask", chunk_size=8, **KW)
    assert killed and res.workers_lost == killed  # reported, not hidden
    assert res.n_seen == 360 and res.complete
    ref = see.scan(lenet, data, chunk_size=8, **KW)
    states_equal(res, ref)


def test_unreachable_scheduler_is_one_clear_line(lenet, data):
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}), pytest.raises(ValueError, match="cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'"):
        see.scan(lenet, data, engine="dask", address="tcp://127.0.0.1:9", **KW)


class Poison(__import__("torch").utils.data.Dataset):
    """Example 13 kills whichever Dask worker process reads it (the client reads it unharmed)."""

    def __init__(self, x):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        if i == 13:
            try:
                distributed.get_worker()
            except ValueError:
                return self.x[i]
            os._exit(1)
        return self.x[i]


def test_a_chunk_that_kills_its_workers_fails_the_scan_clearly(tmp_path, lenet, data):
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), pytest.raises(
            RuntimeError, match=r"the Dask scan failed on chunk \d \(KilledWorker.* of 5 chunks were merged, none silently dropped") as e:
        # The poisoned chunk is 1, but the worker it kills may take another running chunk with it and
        # that one can be reported first: the message names a chunk; what matters is the count below.
        see.scan(lenet, Poison(data[0][:40]), "fc3", ["moments"], batch_size=8, chunk_size=8, engine="dask",
                 out=tmp_path, save_every=1, progress=False)
    merged = int(str(e.value).split(" of 5 chunks")[0].rsplit(" ", 1)[-1])
    assert merged <= 1  # chunks merge in order: nothing after the failed chunk 1
    if merged:  # what was merged before the failure is stored, and marked partial
        kept = see.scan.load(tmp_path)
        assert not kept.complete and kept.finished == 1 and kept.n_seen == 8
    else:
        assert not (tmp_path / "manifest.json").exists()
