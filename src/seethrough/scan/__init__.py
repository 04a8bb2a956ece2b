"""Data-set-wide scans: mergeable accumulators run over a folder, a tensor or a Dataset, locally or on Dask.

``see.scan(model, data, layers)`` is the entry point (:func:`seethrough.scan.engine.scan`); the
function carries the rest of the API as attributes, so ``see.scan.load(folder)``,
``see.scan.source(data)`` and ``see.scan.register`` work on the exported name::

    res = see.scan(model, "photos/", ["features.3"], out="scan/")
    again = see.scan.load("scan/")

>>> import seethrough as see
>>> {"topk", "moments", "hist", "dead", "reservoir"} <= set(see.scan.ACCUMULATORS)   # the analyses register more
True
"""
from .accumulators import ACCUMULATORS, Accumulator, example_keys, from_state, make, register, units_view
from .engine import DEFAULT_ACCUMULATORS, ScanResult, default_chunk_size, load, run_chunk
from .engine import scan as _scan
from .sources import (Batch, DatasetSource, FolderSource, Source, TensorSource, ai_benchmark_photos, digits_source,
                      fashion_mnist, source)
from .store import StoreError
from . import activation_atlas as _activation_atlas, iou as _iou  # noqa: F401,E402 - register "positions", "tail", "iou" (also on Dask workers)

scan = _scan
for _name in ("ACCUMULATORS", "Accumulator", "make", "register", "from_state", "example_keys", "units_view",
              "DEFAULT_ACCUMULATORS", "ScanResult", "load", "source", "Source", "Batch", "TensorSource",
              "DatasetSource", "FolderSource", "fashion_mnist", "ai_benchmark_photos", "digits_source", "StoreError",
              "default_chunk_size"):
    setattr(scan, _name, globals()[_name])
del _name

__all__ = ["scan", "load", "source", "ScanResult", "ACCUMULATORS", "Accumulator", "make", "register", "from_state",
           "Source", "TensorSource", "DatasetSource", "FolderSource", "Batch", "fashion_mnist", "ai_benchmark_photos",
           "digits_source", "StoreError", "DEFAULT_ACCUMULATORS", "example_keys", "units_view", "run_chunk",
           "default_chunk_size"]
