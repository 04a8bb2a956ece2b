"""One command, one run, one table: seethrough's attribution methods, sanity cascade and
faithfulness curves against the dense limit and the peer libraries (EfficientNet-Lite0, one photo).

    python benchmarks/run.py                   # the full table (estimated 15 minutes on 2 quiet cores)
    python benchmarks/run.py --quick           # 64 px, few samples: checks that everything runs (< 2 min)
    python benchmarks/run.py --json out.json   # every number, also the repeats and the limit grid
    python benchmarks/run.py --compile-rows    # adds our compile=True calls (several minutes more)

*The limit* of a many-pass row = its passes × the best per-image cost of a batched forward (or forward
+ ``torch.autograd.grad`` w.r.t. the input) of the same model over batch sizes 1–32 **and** memory
layouts (contiguous; channels-last input with a channels-last model copy), measured in this run after
a warm-up, at the start and again at the end (the lower of the two per cell is kept: the machine
drifts). Single-pass and rule-based rows compare with one forward + input gradient of the same single
image (batch 1, the better layout). ``torch.compile`` of the same forward is quoted apart (a compiled
copy; ``freezing=True`` for the no-grad forward), with its compile seconds.

Ours: one first call in a fresh process (what a one-off command-line user pays; imports and model
loading excluded), then, in this process, a warm-up call and ``--repeats`` calls: median and min–max.
Peers: at their default and over a small grid of their batching parameter, each warmed up, median of
the repeats, on the model as the user gives it (contiguous) at their API's settings; one extra column:
Captum's best setting handed a channels-last model copy and channels-last input (the user could).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import warnings
from dataclasses import dataclass

import torch
from torch.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import seethrough as see  # noqa: E402
from seethrough.attribution.superpixels import superpixels  # noqa: E402
from seethrough.testing import assert_unchanged, snapshot  # noqa: E402

from _bench import (best_cell, channels_last_copy, compiled_cost, first_call, grid_text, markdown_table,  # noqa: E402
                    merge_min, per_image_grid, timed, verdict, write_json)
from _peers import Work, peers_for  # noqa: E402

warnings.filterwarnings("ignore")
MODEL = "efficientnet-lite0"
# group -> (bound on ours / limit, bound on best peer / ours or None)
TARGETS = {"many-pass": (1.1, 1.2), "single-pass": (1.1, 1.0), "rule-based": (1.5, None)}
NO_PEER = {"rise": "no peer column: neither Captum nor Quantus implements RISE",
           "insertion": "no peer column: Quantus has no insertion curve (PixelFlipping is deletion), Captum none"}


@dataclass
class Row:
    name: str
    group: str
    work: str
    passes: int
    mode: str  # 'forward' or 'grad': which per-image cost the limit multiplies
    call: str  # code run with see, torch, model, x, target, a in scope (here and in the fresh process)
    method: str | None = None  # the registered method it needs (None: not an attribution method)


def rows_for(w: Work, size: int, layers: list[str], compiled: bool = False) -> list[Row]:
    n_occ = len(see.attribution.perturbation.occlusion_windows((size, size), w.window, w.stride)[1])
    at = lambda m, o="": f"see.attribute(model, x, {m!r}, target=target{o})"
    many = [
        ("occlusion", f"window {w.window}, stride {w.stride}", n_occ + 1, "forward",
         at("occlusion", f", window={w.window}, stride={w.stride}, progress=False")),
        ("lime", f"{w.n_lime} samples", w.n_lime + 1, "forward", at("lime", f", n_samples={w.n_lime}, progress=False")),
        ("kernel-shap", f"{w.n_shap} samples", w.n_shap + 1, "forward",
         at("kernel-shap", f", n_samples={w.n_shap}, progress=False")),
        ("rise", f"{w.n_rise} masks", w.n_rise + 1, "forward", at("rise", f", n_samples={w.n_rise}, progress=False")),
        ("smoothgrad", f"{w.n_sg} samples", w.n_sg, "grad", at("smoothgrad", f", n_samples={w.n_sg}, progress=False")),
        ("integrated-gradients", f"{w.n_ig} steps", w.n_ig, "grad",
         at("integrated-gradients", f", steps={w.n_ig}, progress=False")),
    ]
    rows = [Row(n, "many-pass", wk, p, m, c, n) for n, wk, p, m, c in many]
    subset = f", layers={layers!r}" if w.layers else ""  # --quick: the top layers only
    rows += [
        Row("sanity cascade", "many-pass", f"saliency, {len(layers)} layers", len(layers) + 1, "grad",
            f"see.sanity.randomization(model, x, 'saliency', target, metrics=('spearman_abs',), progress=False{subset})"),
        Row("deletion", "many-pass", f"{w.steps} steps", w.steps + 1, "forward",
            f"see.metrics.deletion(model, x, a, target, steps={w.steps}, n_random=0, progress=False)"),
        Row("insertion", "many-pass", f"{w.steps} steps", w.steps + 1, "forward",
            f"see.metrics.insertion(model, x, a, target, steps={w.steps}, n_random=0, progress=False)"),
    ]
    rows += [Row(n, "single-pass", wk, 1, "grad", at(n, o), n) for n, wk, o in (
        ("saliency", "", ""), ("grad-x-input", "", ""), ("gradcam", "layer head", ", layer='head'"))]
    rows += [Row(n, "rule-based", wk, 1, "grad", at(n, o), n) for n, wk, o in (
        ("deconvnet", "", ""), ("guided-backprop", "", ""), ("deeplift", "baseline black", ""),
        ("lrp", "epsilon-plus-flat", ", composite='epsilon-plus-flat'"))]
    if compiled:  # the opt-in compile=True of each many-pass method (issue 21 item 5): last, in its own table
        rows += [Row(f"{n} compile=True", "compiled", wk, p, m, c[:-1] + ", compile=True)", n)
                 for n, wk, p, m, c in many]
    return rows


def work_for(quick: bool) -> Work:
    if quick:
        return Work(window=32, stride=16, n_lime=16, n_shap=16, n_rise=16, n_sg=4, n_ig=4, steps=8, grid=(8,),
                    layers=4)
    return Work(window=32, stride=16, n_lime=300, n_shap=300, n_rise=500, n_sg=50, n_ig=50, steps=64, grid=(8, 16))


def first_call_rows(spec: str, rows: list[Row], quick: bool) -> set[str]:
    if spec == "auto":
        spec = "occlusion,saliency" if quick else "all"
    if spec == "all":  # not the compile=True rows: their warm-up call is already a first call, compiling included
        return {r.name for r in rows if r.group != "compiled"}
    return set() if spec == "none" else {s.strip() for s in spec.split(",")}


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="64 px, few samples and settings, to check the script")
    p.add_argument("--size", type=int, default=None, help="image side in pixels (default 224; --quick: 64)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls after the warm-up (median and min–max)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--photo", default="chelsea")
    p.add_argument("--first-call", default="auto", help="rows timed once in a fresh process: all, none or "
                   "comma-separated names (default: all; --quick: occlusion,saliency)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="the torch.compile column of the limit (default: on; --quick: off)")
    p.add_argument("--compile-rows", action="store_true", help="add a table of our compile=True calls "
                   "(a compile per method and shape: several minutes more)")
    p.add_argument("--only", default=None, help="comma-separated row names to run (default: every row)")
    p.add_argument("--json", default=None, help="write every number to this file")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    q, size = args.quick, args.size or (64 if args.quick else 224)
    w = work_for(q)
    model, prep = see.zoo.load(MODEL)
    for p in model.parameters():  # the peers' gradients must not fill .grad (seethrough freezes them itself)
        p.requires_grad_(False)
    x = prep(see.zoo.image(args.photo))
    if size != x.shape[-1]:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True).clamp(0, 1)
    with torch.no_grad():
        target = int(model(x).argmax())
    a = see.attribute(model, x, "saliency", target=target)  # the map the curves and Quantus score
    seg = superpixels(x, "slic", n_segments=50)
    layers = see.sanity.parameterised_layers(model, x)[::-1][:w.layers or None]  # from the output down
    use_compile = (not q) if args.compile is None else args.compile
    rows = rows_for(w, size, layers, compiled=args.compile_rows)
    names = [r.name for r in rows]
    for option, value in (("--only", args.only), ("--first-call", args.first_call)):
        unknown = [n for n in (value or "").split(",") if n.strip() and n.strip() not in (*names, "all", "none", "auto")]
        if unknown:
            raise SystemExit(f"error: {option}: unknown row(s) {', '.join(unknown)}; rows: {', '.join(names)}")
    if args.only:
        keep = {s.strip() for s in args.only.split(",")}
        rows = [r for r in rows if r.name in keep]
    load = os.getloadavg()
    head = (f"seethrough benchmark · {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC · "
            f"{platform.node()} · {platform.machine()} · torch {torch.__version__} · {torch.get_num_threads()} threads · "
            f"load {load[0]:.1f} · {'QUICK' if q else 'full'} run · {MODEL} on {args.photo} {size}×{size}, target "
            f"{target} · ours: median of {args.repeats} after a warm-up, first call in a fresh process · peers: "
            f"the model as given (contiguous), at their API's settings, default and best of a batching grid "
            f"{'/'.join(map(str, w.grid))}, median of {args.repeats} after a warm-up")
    print("#", head, "\n", flush=True)

    sizes = (1, 4, 8) if q else (1, 2, 4, 8, 16, 32)
    images = 8 if q else 32
    cl = channels_last_copy(model)
    models = {"contiguous": model, "channels-last": cl}
    grids = {m: per_image_grid(model, x, m, sizes, images=images, models=models) for m in ("forward", "grad")}
    for m, g in grids.items():
        print(f"per-image ms, {m} (start): {grid_text(g)}", flush=True)
    compiled = {}
    if use_compile:
        for m in ("forward", "grad"):
            b = best_cell(grids[m])[2]
            try:
                compiled[m] = (*compiled_cost(model, x, m, b, images=images), b)
            except Exception as e:  # noqa: BLE001 - reported
                print(f"note: torch.compile ({m}) failed: {type(e).__name__}: {str(e).splitlines()[0][:100]}")

    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "inputs.pt")
        torch.save({"x": x, "target": target, "a": a}, data)
        setup = ("import warnings; warnings.filterwarnings('ignore')\nimport torch\nimport seethrough as see\n"
                 + (f"torch.set_num_threads({args.threads})\n" if args.threads else "")
                 + f"model, _ = see.zoo.load({MODEL!r})\n_d = torch.load({data!r})\n"
                 "x, target, a = _d['x'], _d['target'], _d['a']\n")
        results = measure(rows, model, cl, x, target, seg, a, w, args, setup, first_call_rows(args.first_call, rows, q))

    again = {m: per_image_grid(model, x, m, sizes, images=images, models=models) for m in ("forward", "grad")}
    for m, g in again.items():
        print(f"per-image ms, {m} (end): {grid_text(g)}")
    limit = {m: merge_min(grids[m], again[m]) for m in grids}
    table, records = build_table([r for r in rows if r.group != "compiled"], results, limit, compiled)
    compiled_table, compiled_records = build_compiled([r for r in rows if r.group == "compiled"], results, limit,
                                                      compiled)
    records += compiled_records
    fwd, grad, grad1 = best_cell(limit["forward"]), best_cell(limit["grad"]), best_cell(limit["grad"], batch=1)
    print(f"\nlimit per image: forward {1e3 * fwd[0]:.1f} ms ({fwd[1]}, batch {fwd[2]}), forward + input gradient "
          f"{1e3 * grad[0]:.1f} ms ({grad[1]}, batch {grad[2]}); one forward + input gradient at batch 1: "
          f"{1e3 * grad1[0]:.1f} ms ({grad1[1]})")
    for m, (cost, setup_s, b) in compiled.items():
        eager = limit[m][("channels-last", b)]
        print(f"torch.compile, {m} (compiled copy{', freezing=True' if m == 'forward' else ''}, batch {b}): "
              f"{1e3 * cost:.1f} ms per image, {eager / cost:.2f}× channels-last eager at that batch, "
              f"{(fwd if m == 'forward' else grad)[0] / cost:.2f}× the limit; compiling took {setup_s:.0f} s")
    print("\n" + table)
    if compiled_table:
        print("\n`compile=True` (target: the eager limit / ours ≥ 1.3; the warm-up call includes compiling; the inductor "
              "cache may hold graphs compiled earlier in this run):\n\n" + compiled_table)
    print("\nIncremental occlusion (exact, past the dense limit): `python benchmarks/incremental_occlusion.py`, "
          "its own table in docs/perturbation.md.")
    for r in records:
        for n in r["notes"]:
            print(f"note: {r['method']}: {n}")
    out = {"header": head, "limit": {m: {f"{l}/b{b}": v for (l, b), v in g.items()} for m, g in limit.items()},
           "start": {m: {f"{l}/b{b}": v for (l, b), v in g.items()} for m, g in grids.items()},
           "compile": {m: {"seconds_per_image": c, "compile_seconds": s, "batch": b} for m, (c, s, b) in compiled.items()},
           "rows": records, "table": table}
    if args.json:
        write_json(args.json, out)
    return out


def measure(rows, model, cl, x, target, seg, a, w, args, setup, fresh):
    peers = peers_for(model, x, target, seg, a, w)
    scope = {"see": see, "torch": torch, "model": model, "x": x, "target": target, "a": a}
    xcl = x.contiguous(memory_format=torch.channels_last)
    pristine = {k: v.clone() for k, v in model.state_dict().items()}
    before = snapshot(model)

    def intact(who: str, notes: list) -> None:
        """Every call must leave the shared model as found; one that does not is named and undone."""
        try:
            assert_unchanged(model, before)
        except AssertionError as e:
            notes.append(f"{who} changed the model ({str(e).splitlines()[0][:80]}): restored")
            model.load_state_dict(pristine)

    results = {}
    for r in rows:
        res = {"notes": [], "peers": []}
        results[r.name] = res
        if r.method and r.method not in see.METHODS:
            res["notes"].append("not registered in this build: row skipped")
            continue
        if r.name in fresh:
            try:
                res["first"] = first_call(setup, r.call)
            except Exception as e:  # noqa: BLE001 - reported
                res["notes"].append(f"first call failed: {e}")
        code = compile(r.call, r.name, "eval")
        try:
            res["ours"] = timed(lambda: eval(code, scope), repeats=args.repeats)
        except (TypeError, ValueError) as e:  # e.g. compile= not accepted by this build
            res["notes"].append(f"ours failed: {type(e).__name__}: {str(e).splitlines()[0][:100]}")
            intact("seethrough", res["notes"])
            continue
        intact("seethrough", res["notes"])
        for p in peers.get(r.name, []):
            try:
                res["peers"].append((p, timed(p.make(model, x), repeats=args.repeats)))
            except Exception as e:  # noqa: BLE001 - a peer failing is reported, not fatal
                res["notes"].append(f"{p.library} {p.setting} failed: {type(e).__name__}: {str(e).splitlines()[0][:90]}")
            intact(f"{p.library} {p.setting}", res["notes"])
        captum = [(p, t) for p, t in res["peers"] if p.library == "Captum"]
        if captum and r.group == "many-pass":
            best = min(captum, key=lambda pt: pt[1].median)[0]
            try:
                res["captum_cl"] = (best.setting, timed(best.make(cl, xcl), repeats=args.repeats))
            except Exception as e:  # noqa: BLE001
                res["notes"].append(f"Captum channels-last failed: {type(e).__name__}")
        if r.name in NO_PEER:
            res["notes"].append(NO_PEER[r.name])
        print(f"  measured {r.name}: ours {res['ours'].median:.3f} s", flush=True)
    return results


def measured(rows, results, records):
    """(row, result) of each row that has our timing; a row without one goes to ``records`` with its notes."""
    for r in rows:
        res = results[r.name]
        if "ours" in res:
            yield r, res
        else:
            records.append({"method": r.name, "notes": res["notes"]})


def build_compiled(rows, results, limit, compiled):
    """The compile=True rows: the first call of the process (compiling included), the median after it,
    against the eager limit (target: ≥ 1.3× faster) and the limit of a compiled copy of the model."""
    header = ["method", "work (passes)", "warm-up call s (compiling included)", "ours s, median (min–max)",
              "eager limit s", "eager limit / ours", "compiled limit s", "ours / compiled limit", "target"]
    table, records = [], []
    for r, res in measured(rows, results, records):
        t = res["ours"]
        eager = r.passes * best_cell(limit[r.mode])[0]
        comp = r.passes * compiled[r.mode][0] if r.mode in compiled else None
        gain = eager / t.median
        table.append([r.name, f"{r.work} ({r.passes})", f"{t.warmup:.1f}", f"{t.median:.3f} ({t.min:.3f}–{t.max:.3f})",
                      f"{eager:.3f}", f"{gain:.2f}", f"{comp:.3f}" if comp else "—",
                      f"{t.median / comp:.2f}" if comp else "—", f"≥ 1.3: {verdict(gain, 1.3, at_most=False)}"])
        records.append({"method": r.name, "group": r.group, "passes": r.passes, "mode": r.mode, "call": r.call,
                        "ours": t, "eager_limit": eager, "compiled_limit": comp, "eager_limit_over_ours": gain,
                        "notes": res["notes"]})
    return (markdown_table(header, table) if table else ""), records


def build_table(rows, results, limit, compiled=None):
    compiled = compiled or {}
    header = ["method", "work (passes)", "first call s", "ours s, median (min–max)", "limit s", "ours / limit",
              "ours / compiled limit",
              "Captum default s", "Captum best s (setting)", "other peer best s (setting)", "best peer / ours",
              "Captum best, channels-last s", "targets"]
    table, records = [], []
    for r, res in measured(rows, results, records):
        ours = res["ours"].median
        cost = best_cell(limit[r.mode])[0] if r.group == "many-pass" else best_cell(limit["grad"], batch=1)[0]
        lim = r.passes * cost
        captum = [(p, t) for p, t in res["peers"] if p.library == "Captum"]
        other = [(p, t) for p, t in res["peers"] if p.library != "Captum"]
        default = next((t.median for p, t in captum if p.default), None)
        best_of = lambda pts: min(pts, key=lambda pt: pt[1].median) if pts else None
        cbest, obest, allbest = best_of(captum), best_of(other), best_of(res["peers"])
        ratio = allbest[1].median / ours if allbest else None
        if r.group == "single-pass":  # the target compares with Captum
            ratio = cbest[1].median / ours if cbest else None
        bound_limit, bound_peer = TARGETS[r.group]
        targets = f"limit ≤ {bound_limit}: {verdict(ours / lim, bound_limit)}"
        if bound_peer is not None:
            targets += f"; peer ≥ {bound_peer}: {verdict(ratio, bound_peer, at_most=False)}"
        cl = res.get("captum_cl")
        comp = r.passes * compiled[r.mode][0] if r.group == "many-pass" and r.mode in compiled else None
        fmt = lambda pt: f"{pt[1].median:.2f} ({pt[0].library + ' ' if pt[0].library != 'Captum' else ''}{pt[0].setting})"
        table.append([r.name, f"{r.work} ({r.passes})".replace(" ()", ""),
                      f"{res['first']:.2f}" if "first" in res else "—",
                      f"{ours:.3f} ({res['ours'].min:.3f}–{res['ours'].max:.3f})", f"{lim:.3f}", f"{ours / lim:.2f}",
                      f"{ours / comp:.2f}" if comp else "—",
                      f"{default:.2f}" if default is not None else "—", fmt(cbest) if cbest else "—",
                      fmt(obest) if obest else "—", f"{ratio:.2f}" if ratio else "—",
                      f"{cl[1].median:.2f} ({cl[0]})" if cl else "—", targets])
        records.append({"method": r.name, "group": r.group, "work": r.work, "passes": r.passes, "mode": r.mode,
                        "call": r.call, "first_call": res.get("first"), "ours": res["ours"], "limit": lim,
                        "ours_over_limit": ours / lim, "compiled_limit": comp, "best_peer_over_ours": ratio, "targets": targets,
                        "peers": [{"library": p.library, "setting": p.setting, "default": p.default, "timing": t}
                                  for p, t in res["peers"]],
                        "captum_channels_last": {"setting": cl[0], "timing": cl[1]} if cl else None,
                        "notes": res["notes"]})
    return markdown_table(header, table), records


if __name__ == "__main__":
    main()
