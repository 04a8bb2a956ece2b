"""Write the registered sections to ``index.html`` + ``img/``: one page, no network at view time."""
from __future__ import annotations

import difflib
import html
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..progress import Cancelled
from ..results import ResultProtocol, call_options
from . import resume
from .registry import SECTIONS, Block, Context, Figure, Table, Text
from .resume import save_image

_CSS = """
body{font-family:system-ui,sans-serif;margin:0;display:flex;color:#222}
nav{position:sticky;top:0;height:100vh;overflow:auto;min-width:13em;background:#f4f4f4;padding:1em;box-sizing:border-box}
nav a{display:block;color:#225;text-decoration:none;margin:.3em 0}
main{padding:1em 2em;max-width:75em}
figure{margin:1.5em 0}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.92em;margin-top:.3em}.prov{font-family:monospace;font-size:.8em;color:#666}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}
.failed{border:2px solid #c33;background:#fee;padding:.8em;white-space:pre-wrap;font-family:monospace;font-size:.85em}
"""


@dataclass
class ReportResult(ResultProtocol):
    path: Path
    seconds: dict[str, float] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None

    def summary(self) -> str:
        failed = f", {len(self.failures)} failed ({', '.join(self.failures)})" if self.failures else ""
        return f"report at {self.path}: {len(self.seconds)} sections built, {len(self.reused)} reused{failed}"

    def to_frame(self):
        """One row per section: seconds, reused, failure."""
        import pandas as pd

        keys = list(dict.fromkeys([*self.seconds, *self.reused, *self.failures]))
        return pd.DataFrame({"section": keys or [""], "seconds": [self.seconds.get(k, float("nan")) for k in keys] or [float("nan")],
                             "reused": [k in self.reused for k in keys] or [False],
                             "failure": [self.failures.get(k, "") for k in keys] or [""]})
    skipped: dict[str, str] = field(default_factory=dict)  # section → why it was not built (a report for --model)


def _choose(keys: Sequence[str] | None, *, scan: bool = False, user: bool = False) -> list[str]:
    ordered = sorted(SECTIONS, key=lambda k: (SECTIONS[k].order, k))
    if not keys:  # a stored scan alone makes a report of that scan; without one the scan section has nothing to read
        if scan:
            return ["scan"]
        return [k for k in ordered if k != "scan" and (user or SECTIONS[k].models != "user")]
    unknown = [k for k in keys if k not in SECTIONS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], ordered, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown report section {unknown[0]!r}{hint} (sections: {', '.join(ordered)})")
    if "scan" in keys and not scan:
        raise ValueError("the scan section reads a stored scan: give --scan FOLDER (a folder written by seethrough scan -o)")
    needs_model = [k for k in keys if SECTIONS[k].models == "user"]
    if needs_model and not user:
        raise ValueError(f"the section {needs_model[0]!r} is built on your model: give --model (or model= in Python)")
    return [k for k in ordered if k in keys or (scan and k == "scan")]


def _provenance(prov: dict[str, Any]) -> str:
    return " · ".join(f"{k}={v}" for k, v in prov.items())


def _block_html(block: Block, key: str, n: int, img_dir: Path) -> str:
    e = html.escape
    if isinstance(block, Text):
        return "".join(f"<p>{e(p.strip())}</p>" for p in block.text.split("\n\n") if p.strip())
    if isinstance(block, Figure):
        path = save_image(block.image, img_dir / f"{key}-{n}.png")
        return (f"<figure><h3>{e(block.title)}</h3><img src='img/{path.name}' alt='{e(block.title)}'>"
                f"<figcaption>{e(block.caption)}<div class='prov'>{e(_provenance(block.provenance))}</div>"
                "</figcaption></figure>")
    if isinstance(block, Table):
        head = "".join(f"<th>{e(str(c))}</th>" for c in block.columns)
        body = "".join("<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in row) + "</tr>" for row in block.rows)
        prov = f"<div class='prov'>{e(_provenance(block.provenance))}</div>" if block.provenance else ""
        return (f"<h3>{e(block.title)}</h3><table><tr>{head}</tr>{body}</table>"
                f"<p class='caption'>{e(block.caption)}</p>{prov}")
    raise TypeError(f"unknown report block {type(block).__name__}")


def write_report(out: str | Path = "report", sections: Sequence[str] | None = None, *, quick: bool = False,
                 seed: int = 0, progress: bool = False, fresh: bool = False, scan: Any = None, model: Any = None,
                 images: Any = None) -> ReportResult:
    """Build the chosen sections (all by default) into ``out/index.html``; a failing section becomes an error box.

    ``scan``: a stored scan's folder (or a ``see.scan`` result) for the ``scan`` section, which reads it
    and never runs the model over the data; with ``scan`` and no ``sections``, the report is that section alone.

    ``model``: a user's model (a :class:`seethrough.loading.LoadedModel`, as ``seethrough report --model``
    loads it) run on ``images`` (a folder; default the bundled photos): the sections built on it are built,
    and each section built on the bundled zoo models is skipped with that reason stated on the page.
    Sections of a user's model are always rebuilt (its weights are not part of the resume store's identity).

    Finished sections are kept in ``out/.sections`` (see :mod:`seethrough.report.resume`): a rerun
    with the same options reuses them and builds only the rest, so an interrupted report resumes.
    ``fresh=True`` rebuilds everything.

    >>> import tempfile, seethrough as see
    >>> out = tempfile.mkdtemp()
    >>> res = see.report.write_report(out, sections=["model-card"], quick=True)
    >>> res.path.name, res.failures, res.reused
    ('index.html', {}, [])
    >>> see.report.write_report(out, sections=["model-card"], quick=True).reused
    ['model-card']
    """
    opts = call_options(locals(), "model", "scan", "images")
    if scan is not None:
        from ..scan.views import as_result

        scan = as_result(scan)  # a missing, foreign or partial scan: one clear ValueError before anything is built
    keys = _choose(sections, scan=scan is not None, user=model is not None)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file: the report needs a folder (it writes index.html, img/ and {resume.STORE}/ there)")
    img_dir = out / "img"
    img_dir.mkdir(parents=True, exist_ok=True)
    store = out / resume.STORE
    resume.clean(store)
    ctx = Context(quick=quick, seed=seed, progress=progress, scan=scan, user=model, user_images=images)
    result = ReportResult(out / "index.html", options=opts, seed=seed)
    parts, nav = [], []
    for key in ctx.bar(keys, "report sections"):
        sec = SECTIONS[key]
        if model is not None and sec.models == "zoo":  # a zoo-only section: say so instead of building it
            reason = (f"Skipped for {model.name}: this section is built on the bundled models (zoo models, their data "
                      "and labels), not on a model given with --model.")
            nav.append(f"<a href='#{key}'>{html.escape(sec.title)}</a>")
            parts.append(f"<section id='{key}'><h2>{html.escape(sec.title)}</h2><p class='skipped'>"
                         f"{html.escape(reason)}</p></section>")
            result.skipped[key] = reason
            continue
        ident = resume.identity(sec, quick=quick, seed=seed)
        if key == "scan":  # reused only for the very same stored scan (same folder, same save)
            from .sections.scan import scan_identity

            ident["scan"] = scan_identity(scan)
        kept = None if fresh or model is not None else resume.load(store, key, ident)
        from ..progress import visible

        if visible(progress):
            from tqdm.auto import tqdm

            tqdm.write(f"section {key} {'(kept from an earlier run)' if kept else '…'}")
        start = time.perf_counter()
        try:
            if kept is not None:
                blocks, built = kept
                result.reused.append(key)
            else:
                blocks = sec.build(ctx)
                built = time.perf_counter() - start
                blocks = resume.store(store, key, ident, blocks, built)  # before the page: a crash later keeps it
            body = "".join(_block_html(b, key, n, img_dir) for n, b in enumerate(blocks))
        except Cancelled:  # the caller stopped the job: not a broken section
            raise
        except Exception as err:  # a broken section must not take the report down with it
            result.failures[key] = f"{type(err).__name__}: {err}"
            built = time.perf_counter() - start
            body = (f"<div class='failed'>This section failed: {html.escape(result.failures[key])}\n\n"
                    f"{html.escape(traceback.format_exc(limit=6))}</div>")
        result.seconds[key] = time.perf_counter() - start
        note = " (kept from an earlier run with the same options; --fresh rebuilds it)" if kept is not None else ""
        nav.append(f"<a href='#{key}'>{html.escape(sec.title)}</a>")
        parts.append(f"<section id='{key}'><h2>{html.escape(sec.title)}</h2>{body}"
                     f"<p class='prov'>section built in {built:.1f} s{note}</p></section>")
    mode = "quick" if quick else "full"
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>seethrough report</title><style>{_CSS}</style>"
            f"</head><body><nav><b>seethrough</b>{''.join(nav)}</nav><main><h1>seethrough report</h1>"
            f"<p class='prov'>{mode} run · seed={seed} · {time.strftime('%Y-%m-%d %H:%M')}</p>{''.join(parts)}"
            "</main></body></html>")
    result.path.write_text(page, encoding="utf-8")
    return result
