"""openTSNE against scikit-learn's TSNE, side by side in one run.

Two workloads: the lenet-digits layer activations of all 1797 digits (each layer reduced
to 50 principal components, as ``see.embed`` does), and a random 20 000 × 50 matrix
(Gaussian clusters; only with ``--large``, scikit-learn takes minutes there). Both
libraries get the same perplexity, PCA initialisation, seed and thread count; openTSNE uses
its automatic gradient method (Barnes-Hut below 10 000 points, FFT interpolation above)
and is also timed with FFT forced. Prints seconds and the ratio sklearn / openTSNE.

    python benchmarks/tsne.py            # digits layers
    python benchmarks/tsne.py --large    # + the 20 000 × 50 matrix
    python benchmarks/tsne.py --threads 2
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch


def _opentsne(x: np.ndarray, threads: int, gradient: str) -> np.ndarray:
    import openTSNE

    return np.asarray(openTSNE.TSNE(perplexity=30, initialization="pca", random_state=0, n_jobs=threads,
                                    negative_gradient_method=gradient).fit(x))


def _sklearn(x: np.ndarray, threads: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    return TSNE(perplexity=30, init="pca", random_state=0, n_jobs=threads).fit_transform(x)


def _timed(fn, *args) -> tuple[float, np.ndarray]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def _knn(coords: np.ndarray, y: np.ndarray) -> float:
    from seethrough.embed import knn_accuracy

    return knn_accuracy(torch.from_numpy(coords), torch.from_numpy(y), 5)


def workloads(large: bool) -> list[tuple[str, np.ndarray, np.ndarray]]:
    import seethrough as see
    from seethrough.embed import collect, pca_reduce

    x, y = see.zoo.digits("all")
    model, _ = see.zoo.load("lenet-digits")
    acts = collect(model, x, ["input", "pool2", "relu3", "fc3"], progress=False)
    out = [(f"digits {name} ({a.shape[1]} → {min(50, a.shape[1])} dims)", pca_reduce(a, 50).double().numpy(), y.numpy())
           for name, a in acts.items()]
    if large:
        g = np.random.default_rng(0)
        centres = 6 * g.standard_normal((20, 50))
        labels = g.integers(0, 20, 20_000)
        out.append(("random 20000 × 50 (20 clusters)", centres[labels] + g.standard_normal((20_000, 50)), labels))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--large", action="store_true", help="also run the 20 000 × 50 matrix (scikit-learn takes minutes)")
    ap.add_argument("--threads", type=int, default=1, help="threads for both libraries (n_jobs)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import openTSNE
    import sklearn

    print(f"openTSNE {openTSNE.__version__} · scikit-learn {sklearn.__version__} · {platform.processor() or platform.machine()} · "
          f"{args.threads} thread(s) · perplexity 30, PCA init, seed 0")
    header = f"{'workload':42s} {'openTSNE auto':>14s} {'openTSNE fft':>13s} {'sklearn':>9s} {'sklearn/auto':>13s}  5-NN acc. (auto / sklearn)"
    print(header)
    print("-" * len(header))
    for name, x, y in workloads(args.large):
        t_auto, a = _timed(_opentsne, x, args.threads, "auto")
        t_fft, _ = _timed(_opentsne, x, args.threads, "fft")
        t_sk, s = _timed(_sklearn, x, args.threads)
        print(f"{name:42s} {t_auto:13.1f}s {t_fft:12.1f}s {t_sk:8.1f}s {t_sk / t_auto:12.2f}×  {_knn(a, y):.3f} / {_knn(s, y):.3f}",
              flush=True)


if __name__ == "__main__":
    main()
