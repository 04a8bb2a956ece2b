"""How cost grows: per many-pass method, time against the number of passes and against the image size,
and peak memory against the memory budget (EfficientNet-Lite0 on a bundled photo, resized).

    python benchmarks/scaling.py            # the full tables (estimated 5–10 minutes on 2 quiet cores)
    python benchmarks/scaling.py --quick    # 64–128 px, few passes: checks that it runs (about a minute)
    python benchmarks/scaling.py --json out.json

*Passes*: 4 pass counts over an 8× range at one size; least squares ``time = a + b·passes``: ``b`` (ms
per pass) next to the limit per pass (the best per-image forward, or forward + input gradient, over
batch sizes and layouts at that size, measured here), ``a`` (ms, the per-call constant) and the largest
relative residual (small = linear). *Size*: a fixed, small pass count at 64–512 px; ``time = a + c·MP``
(MP = megapixels): ``c / passes`` is ms per pass per megapixel, with the same residual check. Every
timing: a warm-up call, then the median of ``--repeats`` calls. *Memory*: each call once in a fresh
process: the peak resident-memory growth during the call (the kernel's peak counter ``VmHWM``, reset first)
against ``seethrough.batching.default_memory_budget()``, and once with a small ``memory_budget=``.
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import warnings

import torch
from torch.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import seethrough as see  # noqa: E402
from seethrough.batching import default_memory_budget  # noqa: E402

from _bench import best_cell, linear_fit, markdown_table, per_image_grid, timed, write_json  # noqa: E402

warnings.filterwarnings("ignore")
MODEL = "efficientnet-lite0"


def call_of(method: str, n: int, size: int, budget: int | None = None) -> tuple[str, int, str]:
    """(code, passes, mode) of ``method`` with pass-count parameter ``n`` at ``size`` px: the code runs
    with see, model, x, target, a in scope. Occlusion's ``n`` is its stride (window = 2 × stride, at
    most the image), so its passes are the windows + 1."""
    mem = f", memory_budget={budget}" if budget else ""
    at = lambda m, o: f"see.attribute(model, x, {m!r}, target=target, progress=False{o})"
    if method == "occlusion":
        window = min(2 * n, size)
        passes = len(see.attribution.perturbation.occlusion_windows((size, size), window, n)[1]) + 1
        return at("occlusion", f", window={window}, stride={n}{mem}"), passes, "forward"
    if method in ("lime", "kernel-shap", "rise"):
        return at(method, f", n_samples={n}{mem}"), n + 1, "forward"
    if method == "smoothgrad":
        return at(method, f", n_samples={n}"), n, "grad"
    if method == "integrated-gradients":
        return at(method, f", steps={n}"), n, "grad"
    if method == "deletion":
        return f"see.metrics.deletion(model, x, a, target, steps={n}, n_random=0, progress=False)", n + 1, "forward"
    raise ValueError(f"unknown method {method!r}")


METHODS = ("occlusion", "lime", "kernel-shap", "rise", "smoothgrad", "integrated-gradients", "deletion")


def settings(quick: bool) -> dict:
    """Pass-count parameters (4 values, 8× apart end to end), sizes, and the fixed parameter per size."""
    if quick:
        return {"methods": METHODS, "size": 64, "sizes": (64, 96, 128), "repeats": 1,
                "passes": {m: (4, 8, 16, 32) for m in METHODS} | {"occlusion": (16, 11, 8, 6)},  # 10–82 passes
                "fixed": {m: 8 for m in METHODS}, "memory": (128,), "memory_methods": ("rise",)}
    return {"methods": METHODS, "size": 128, "sizes": (64, 128, 224, 320, 512), "repeats": 3,
            "passes": {m: (25, 50, 100, 200) for m in ("lime", "kernel-shap", "rise")}
            | {m: (8, 16, 32, 64) for m in ("smoothgrad", "integrated-gradients", "deletion")}
            | {"occlusion": (32, 16, 11, 8)},  # 10, 50, 122, 226 passes at 128 px
            "fixed": {m: 16 for m in METHODS}, "memory": (224, 512), "memory_methods": ("rise", "occlusion", "lime")}


def photo(size: int) -> torch.Tensor:
    """The bundled photo, preprocessed for the model (224 px) and resized to ``size`` px."""
    _, prep = see.zoo.load(MODEL)
    x = prep(see.zoo.image("chelsea"))
    if size != x.shape[-1]:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
    return x.clamp(0, 1)


def scope_at(model, size: int) -> dict:
    x = photo(size)
    with torch.no_grad():
        target = int(model(x).argmax())
    a = see.attribute(model, x, "saliency", target=target)
    return {"see": see, "torch": torch, "model": model, "x": x, "target": target, "a": a}


def run_call(code: str, scope: dict, repeats: int) -> float:
    c = compile(code, "call", "eval")
    return timed(lambda: eval(c, scope), repeats=repeats).median


def by_passes(model, s: dict, repeats: int) -> tuple[list, list]:
    size = s["size"]
    scope = scope_at(model, size)
    grids = {m: per_image_grid(model, scope["x"], m, (1, 4, 8, 16), images=16) for m in ("forward", "grad")}
    rows, records = [], []
    for method in s["methods"]:
        points = []
        for n in s["passes"][method]:
            code, passes, mode = call_of(method, n, size)
            points.append((passes, run_call(code, scope, repeats)))
        a, b, resid = linear_fit([p for p, _ in points], [t for _, t in points])
        lim = best_cell(grids[mode])[0]
        rows.append([method, size, ", ".join(str(p) for p, _ in points), ", ".join(f"{1e3 * t:.0f}" for _, t in points),
                     f"{1e3 * b:.2f}", f"{1e3 * a:.0f}", f"{100 * resid:.1f} %", f"{1e3 * lim:.2f} ({mode})",
                     f"{b / lim:.2f}"])
        records.append({"method": method, "size": size, "points": points, "a": a, "b": b, "max_residual": resid,
                        "limit_per_pass": lim, "mode": mode})
        print(f"  passes: {method} b {1e3 * b:.2f} ms/pass", flush=True)
    return rows, records


def by_size(model, s: dict, repeats: int) -> tuple[list, list]:
    rows, records = [], []
    scopes = {size: scope_at(model, size) for size in s["sizes"]}
    for method in s["methods"]:
        points = []
        for size in s["sizes"]:
            n = s["fixed"][method] if method != "occlusion" else size // 4  # occlusion: 3 × 3 windows at every size
            code, passes, _ = call_of(method, n, size)
            points.append((size, passes, run_call(code, scopes[size], repeats)))
        mp = [size * size / 1e6 for size, _, _ in points]
        a, c, resid = linear_fit(mp, [t for *_, t in points])
        passes = points[0][1]
        rows.append([method, passes, ", ".join(f"{size}: {1e3 * t:.0f}" for size, _, t in points),
                     f"{1e3 * c / passes:.1f}", f"{1e3 * a:.0f}", f"{100 * resid:.1f} %"])
        records.append({"method": method, "passes": passes, "points": points, "a": a, "c": c,
                        "ms_per_pass_per_mp": 1e3 * c / passes, "max_residual": resid})
        print(f"  size: {method} {1e3 * c / passes:.1f} ms/pass/MP", flush=True)
    return rows, records


def memory(s: dict, threads: int | None) -> tuple[list, list]:
    """Peak RSS growth of one call in a fresh process, default budget and a small one: 64 MiB, or twice
    what seethrough estimates one item needs where that is more (a 512 px image: 192 MiB a forward)."""
    from seethrough.batching import bytes_per_item

    here = os.path.dirname(os.path.abspath(__file__))
    rows, records = [], []
    for size in s["memory"]:
        small = max(64 * 2**20, 2 * bytes_per_item(torch.zeros(1, 3, size, size)))
        for method in s["memory_methods"]:
            n = 64 if method != "occlusion" else max(4, size // 8)
            for budget in (None, small):
                code, passes, _ = call_of(method, n, size, budget)
                setup = (f"import sys; sys.path.insert(0, {here!r})\nimport warnings; warnings.filterwarnings('ignore')\n"
                         + (f"import torch; torch.set_num_threads({threads})\n" if threads else "")
                         + f"import scaling, _bench, seethrough as see\nmodel, _ = see.zoo.load({MODEL!r})\n"
                         f"sc = scaling.scope_at(model, {size})\n")
                call = (f"grew, _ = _bench.peak_rss_growth(lambda: eval({code!r}, sc))\n"
                        "print('PEAK_GROWTH', grew)\nimport seethrough.batching as B; print('BUDGET', B.default_memory_budget())")
                out = peak_in_fresh_process(setup, call)
                cap = budget or out["budget"]
                rows.append([method, size, passes, "default" if budget is None else f"memory_budget={small / 2**20:.0f} MiB",
                             f"{cap / 2**20:.0f}", f"{out['grew'] / 2**20:.0f}", f"{out['grew'] / cap:.2f}"])
                records.append({"method": method, "size": size, "passes": passes, "budget": cap,
                                "default_budget": budget is None, "peak_growth": out["grew"]})
                print(f"  memory: {method} {size} px budget {cap / 2**20:.0f} MiB: grew {out['grew'] / 2**20:.0f} MiB",
                      flush=True)
    return rows, records


def peak_in_fresh_process(setup: str, call: str) -> dict:
    import subprocess

    code = f"{setup}\n{call}\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    vals = {}
    for line in out.stdout.splitlines():
        if line.startswith("PEAK_GROWTH"):
            vals["grew"] = int(line.split()[1])
        elif line.startswith("BUDGET"):
            vals["budget"] = int(line.split()[1])
    if len(vals) != 2:
        raise RuntimeError(f"memory run failed: {(out.stderr or out.stdout).strip().splitlines()[-1:]}")
    return vals


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeats", type=int, default=None, help="timed calls after the warm-up (default 3; --quick 1)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-memory", action="store_true", help="skip the memory table (fresh processes)")
    p.add_argument("--methods", default=None, help="comma-separated subset of " + ", ".join(METHODS))
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    s = settings(args.quick)
    if args.methods:
        chosen = [m.strip() for m in args.methods.split(",")]
        unknown = [m for m in chosen if m not in METHODS]
        if unknown:
            p.error(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
        s["methods"] = tuple(chosen)
        s["memory_methods"] = tuple(m for m in s["memory_methods"] if m in chosen)
    repeats = args.repeats or s["repeats"]
    model, _ = see.zoo.load(MODEL)
    load = os.getloadavg()
    head = (f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC · torch {torch.__version__} · "
            f"{torch.get_num_threads()} threads · load {load[0]:.1f} · {MODEL} on chelsea · median of {repeats} "
            f"after a warm-up · {'QUICK' if args.quick else 'full'} run")
    print("#", head, "\n", flush=True)
    rows_p, rec_p = by_passes(model, s, repeats)
    rows_s, rec_s = by_size(model, s, repeats)
    rows_m, rec_m = ([], []) if args.no_memory else memory(s, args.threads)
    tables = [markdown_table(["method", "px", "passes", "ms per call", "b: ms per pass", "a: ms per call",
                              "largest residual", "limit ms per pass", "b / limit"], rows_p),
              markdown_table(["method", "passes", "ms per call at px", "ms per pass per megapixel", "a: ms",
                              "largest residual"], rows_s)]
    if rows_m:
        tables.append(markdown_table(["method", "px", "passes", "budget", "budget MiB", "peak RSS growth MiB",
                                      "growth / budget"], rows_m))
    print("\n\n".join(tables))
    out = {"header": head, "passes": rec_p, "size": rec_s, "memory": rec_m, "tables": tables,
           "default_memory_budget": default_memory_budget("cpu")}
    if args.json:
        write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
