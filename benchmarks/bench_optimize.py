"""Step throughput of ``see.visualize`` against a hand-written Adam loop and, where it imports, Lucent.

Same model (EfficientNet-Lite0), objective (mean of channel 17 of blocks.10), size, steps,
batch, Fourier parameterization and standard transforms.

    OMP_NUM_THREADS=2 python benchmarks/bench_optimize.py [--size 128] [--steps 32] [--batch 4]

torch-lucent declares torchvision as a dependency (and imports it at import time for one
``Normalize``), which would replace our CPU torch. To compare anyway, install it beside the
project without dependencies (``pip install --no-deps --target DIR torch-lucent kornia kornia-rs
decorator``) and pass ``--lucent DIR``: the script stubs ``torchvision.transforms.Normalize``
and ``IPython.display`` (unused on this path). Measured here: torch-lucent 0.1.8 then fails
inside its rotation transform on current kornia (0.9 removed ``kornia.get_rotation_matrix2d``),
so the comparison that runs is against the hand-written loop.
"""
import argparse
import sys
import time
import types

import torch

import seethrough as see
from seethrough.optimize import param as P
from seethrough.optimize import transforms as T


def ours(model, a):
    return see.visualize(model, "channel:blocks.10:17", n=a.batch, size=a.size, steps=a.steps, seed=0, batch_size=a.batch)


def handwritten(model, a):
    """The plainest correct loop: a forward hook, torch.optim.Adam, loss.backward()."""
    p = P.fourier((a.batch, 3, a.size, a.size))
    opt = torch.optim.Adam([p.raw], lr=0.05)
    tf = T.standard(a.size)
    g = torch.Generator().manual_seed(0)
    grabbed = {}
    h = model.blocks[10].register_forward_hook(lambda m, i, o: grabbed.__setitem__("a", o))
    wanted = [q.requires_grad for q in model.parameters()]
    for q in model.parameters():
        q.requires_grad_(False)
    try:
        for _ in range(a.steps):
            opt.zero_grad()
            x = tf(p.image(), g)
            model(torch.nn.functional.interpolate(x, size=(a.size, a.size), mode="bilinear"))
            loss = -grabbed["a"][:, 17].mean()
            loss.backward()
            opt.step()
    finally:
        h.remove()
        for q, w in zip(model.parameters(), wanted):
            q.requires_grad_(w)
    return p.image().detach()


def lucent(model, a, path):
    sys.path.insert(0, path)
    tv = types.ModuleType("torchvision")
    tv.transforms = types.ModuleType("torchvision.transforms")
    tv.transforms.Normalize = lambda *args, **kw: None
    ipy = types.ModuleType("IPython")
    ipy.display = types.ModuleType("IPython.display")
    sys.modules.update({"torchvision": tv, "torchvision.transforms": tv.transforms, "IPython": ipy, "IPython.display": ipy.display})
    from lucent.optvis import param, render, transform

    return render.render_vis(model, "blocks_10:17", lambda: param.image(a.size, batch=a.batch),
                             transforms=transform.standard_transforms, thresholds=(a.steps,), show_image=False,
                             progress=False, preprocess=False, fixed_image_size=a.size)


def timed(fn, *args):
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lucent", default=None, help="folder where torch-lucent was installed with --no-deps")
    a = ap.parse_args()
    model, _ = see.zoo.load("efficientnet-lite0")
    ours(model, argparse.Namespace(**{**vars(a), "steps": 2}))  # warm-up (allocator, first-call costs)
    w = torch.zeros(1, requires_grad=True)
    w.grad = torch.ones(1)
    torch.optim.Adam([w]).step()  # torch.optim's first step imports the compiler stack (seconds)
    rows = [("seethrough visualize", timed(ours, model, a)), ("hand-written Adam loop", timed(handwritten, model, a))]
    if a.lucent:
        try:
            rows.append(("lucent render_vis", timed(lucent, model, a, a.lucent)))
        except (ImportError, AttributeError) as e:  # torch-lucent 0.1.8 calls kornia APIs removed since
            print(f"lucent could not run: {type(e).__name__}: {e}")
    print(f"EfficientNet-Lite0, channel blocks.10:17, {a.batch}×{a.size}², {a.steps} steps, {torch.get_num_threads()} threads")
    for name, sec in rows:
        print(f"{name:24s} {sec:7.2f} s   {1000 * sec / a.steps:7.1f} ms/step   {1000 * sec / a.steps / a.batch:6.1f} ms/step/image")


if __name__ == "__main__":
    main()
