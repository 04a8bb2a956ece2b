"""``seethrough scan``: one pass of mergeable accumulators over a data set, stored in a folder (resumable)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .base import SHAPE, ArchOpt, ShaOpt, UnsafeOpt, app, friendly, layer_option, load, model_option, out_option, seed_option, top_option

_NAMED = "digits[:train|test|all], fashion-mnist[:train|test], ai-benchmark"


def _data(spec: str, preprocess):
    """A folder, or one of the named sets that need no network."""
    from seethrough.scan import ai_benchmark_photos, digits_source, fashion_mnist

    name, _, split = spec.partition(":")
    if name == "digits":
        return digits_source(split or "test")
    if name == "fashion-mnist":
        return fashion_mnist(split or "test")
    if name == "ai-benchmark":
        return ai_benchmark_photos(preprocess)
    if not Path(spec).is_dir():
        raise ValueError(f"DATA must be a folder of images or one of {_NAMED}; got {spec!r}")
    return spec


@app.command("scan")
@friendly
def scan_cmd(
    data: str = typer.Argument(..., help=f"a folder of images (recursive), or {_NAMED}"),
    model: str = model_option("lenet-digits"),
    arch: Optional[str] = ArchOpt,
    unsafe_pickle: bool = UnsafeOpt,
    sha256: Optional[str] = ShaOpt,
    layer: list[str] = layer_option(..., help="layers to scan: repeat -l or separate by commas"),
    accumulators: str = typer.Option("topk,moments,hist,dead,reservoir", "--accumulators", "-a",
                                     help="comma-separated accumulator names"),
    k: int = top_option(9, "how many top examples to keep (and show) per unit", old="--k"),
    sample: int = typer.Option(1000, "--sample", help="examples in the reservoir sample (for embeddings)"),
    out: Path = out_option("scan", "the stored scan (manifest.json, chunks; a rerun resumes from it)"),
    dask: Optional[str] = typer.Option(None, "--dask", help="'local' for a LocalCluster, or a scheduler address tcp://host:port"),
    workers: int = typer.Option(2, "--workers", help="LocalCluster worker processes (with --dask local)"),
    batch_size: str = typer.Option("auto", "--batch-size", help="'auto' or an int"),
    chunk_size: int = typer.Option(0, "--chunk-size", help="examples per chunk (0 = from the data set's size)"),
    seed: int = seed_option("seed of the reservoir sample"),
):
    """Scan DATA with MODEL: top-k examples, moments, histograms, dead units and a sample, per layer."""
    from rich.console import Console
    from rich.table import Table

    import seethrough as see
    from seethrough.scan import StoreError

    layers = layer  # already flattened by the shared --layer parser
    accs = [s.strip() for s in accumulators.split(",") if s.strip()]
    bs: int | str = batch_size
    if batch_size != "auto":
        if not batch_size.isdigit() or int(batch_size) < 1:
            raise ValueError(f"--batch-size must be 'auto' or a positive int, got {batch_size!r}")
        bs = int(batch_size)
    if chunk_size < 0:
        raise ValueError(f"--chunk-size must be >= 0, got {chunk_size}")
    loaded = load(model, arch, unsafe_pickle, sha256)
    src = _data(data, loaded.preprocess)
    options = {a: o for a, o in (("topk", {"k": k}), ("reservoir", {"size": sample})) if a in accs}
    engine = "dask" if dask else "local"
    address = None if dask in (None, "local") else dask
    try:
        # A zoo name or module:factory goes to Dask workers as is: each loads it once itself.
        # With --input-size/--channels/--mean/... the loaded model (wrapped, on its device) is what is scanned.
        by_name = arch is None and not SHAPE.get() and (model in see.zoo.models() or (":" in model and not Path(model).exists()))
        spec = model if by_name else loaded.model
        res = see.scan(spec, src, layers, accs, options=options, batch_size=bs, engine=engine, address=address,
                       workers=workers, out=out, chunk_size=chunk_size or None, preprocess=loaded.preprocess, seed=seed,
                       progress=True)
    except (StoreError, RuntimeError) as e:  # a full disk or a failed cluster: one line, exit 1
        typer.echo(f"error: {e}".splitlines()[0], err=True)
        raise typer.Exit(1)
    c = res.counts()
    table = Table(title=f"{loaded.name} · {c['seen']:,} of {c['examples']:,} examples · {res.seconds:.1f} s")
    for col in ("layer", "units", "dead", "sparsity", "mean", "std"):
        table.add_column(col, justify="left" if col == "layer" else "right")
    for name in res.layers:
        dead = res.accumulators.get((name, "dead"))
        mom = res.accumulators.get((name, "moments"))
        top = res.accumulators.get((name, "topk"))
        units = len(mom.count) if mom is not None and mom.count is not None else (len(top.ids) if top is not None else 0)
        table.add_row(name, str(units or "-"), f"{dead.dead_fraction:.1%}" if dead else "-", f"{dead.sparsity:.1%}" if dead else "-",
                      f"{mom.mean.mean():.4g}" if mom else "-", f"{mom.std.mean():.4g}" if mom else "-")
    Console().print(table)
    if res.skipped:
        typer.echo(f"skipped {len(res.skipped)} unreadable file(s):", err=True)
        for name, why in res.skipped[:20]:
            typer.echo(f"  {name}: {why}", err=True)
        if len(res.skipped) > 20:
            typer.echo(f"  … and {len(res.skipped) - 20} more (all listed in {out}/manifest.json)", err=True)
    if res.workers_lost:
        typer.echo(f"{len(res.workers_lost)} Dask worker(s) died during the scan; their chunks were rerun on the others", err=True)
    typer.echo(f"scan stored in {out} ({'resumed after ' + str(c['resumed']) + ' chunks, ' if c['resumed'] else ''}"
               f"{c['chunks']} chunks)")


@app.command("atlas")
@friendly
def atlas_cmd(
    scan: Path = typer.Argument(..., help="a stored scan (the folder `seethrough scan -o` wrote)"),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="the scanned model (default: the zoo model the "
                                        "scan's manifest names); without one, whole inputs and no visualisation"),
    arch: Optional[str] = ArchOpt,
    unsafe_pickle: bool = UnsafeOpt,
    sha256: Optional[str] = ShaOpt,
    out: Optional[Path] = out_option(None, "index.html and a page per layer and unit (default: SCAN/atlas)"),
    layer: Optional[list[str]] = layer_option(None, help="only these scanned layers: repeat -l or separate by commas"),
    units: int = typer.Option(0, "--units", help="only the first N units of each layer (0 = all)"),
    steps: int = typer.Option(64, "--steps", help="feature-visualisation steps per unit (0 = no visualisation)"),
    seed: int = seed_option("seed of the feature visualisations' random start"),
):
    """Write the unit atlas of a stored scan as static pages: per unit its top-k crops, histogram,
    dead/alive state and feature visualisation (index.html, one page per layer and per unit)."""
    import seethrough as see
    from seethrough.scan.atlas import write_atlas
    from seethrough.scan.store import read_manifest
    from seethrough.scan.views import as_result

    if units < 0 or steps < 0:
        raise ValueError(f"--units and --steps must be >= 0, got {units} and {steps}")
    res = as_result(scan)
    name = model or ((read_manifest(scan) or {}).get("model") or {}).get("name")
    net = None
    if model is not None or name in see.zoo.models():
        net = load(name, arch, unsafe_pickle, sha256).model
    layers = layer or None
    index = write_atlas(res, net, out, layers=layers, units_per_layer=units or None, steps=steps or 1,
                        visualize=steps > 0, seed=seed)
    what = "no model (whole inputs, no visualisation)" if net is None else f"model {name}"
    typer.echo(f"unit atlas written to {index} ({what}); open it in a browser")
