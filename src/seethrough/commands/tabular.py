"""The tabular side of ``seethrough explain``: ``--row N`` (a held-out row) and ``--csv rows.csv``.

No command is registered here; :mod:`seethrough.commands.explain` calls :func:`explain_rows`.
For every row and method it writes ``row{N}-{method}.png`` (``{stem}-{i}-{method}.png`` for a CSV's rows) (a waterfall for KernelSHAP, whose
contributions add up exactly to the score minus the background's mean score; bars for the other
methods) and one ``attributions.csv`` with a line per (row, method): the class explained, the
score, the base value, the sum of the contributions and one column per feature.
"""
from __future__ import annotations

import csv
from pathlib import Path

import torch

#: the methods ``explain --row/--csv`` runs when ``--method`` is not given
DEFAULT_METHODS = "kernel-shap,integrated-gradients"


def read_rows(path: Path, names: list[str]) -> torch.Tensor:
    """The rows of a CSV file whose header is the model's feature names (any column order), as float32 ``(N, F)``.

    Anything else is one ``ValueError`` line: other columns, an empty file, a value that is not a number.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "r.csv"; _ = p.write_text("b,a\\n2,1\\n4,3\\n")
    >>> read_rows(p, ["a", "b"]).tolist()
    [[1.0, 2.0], [3.0, 4.0]]
    """
    from ..zoo.tabular import match_columns

    with open(path, newline="", encoding="utf-8-sig") as f:
        lines = [r for r in csv.reader(f) if any(c.strip() for c in r)]
    if not lines:
        raise ValueError(f"{path} is empty: give a header of the {len(names)} feature names and one row per line")
    header = [c.strip() for c in lines[0]]
    try:
        match_columns(header, names)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    if len(lines) < 2:
        raise ValueError(f"{path} has a header but no rows")
    col = {c: i for i, c in enumerate(header)}
    out = torch.empty(len(lines) - 1, len(names))
    for r, line in enumerate(lines[1:], 1):
        if len(line) != len(header):
            raise ValueError(f"{path} line {r + 1} has {len(line)} values but the header has {len(header)} columns")
        for j, n in enumerate(names):
            cell = line[col[n]].strip()
            try:
                out[r - 1, j] = float(cell)
            except ValueError:
                raise ValueError(f"{path} line {r + 1}, column {n!r}: {cell!r} is not a number") from None
    if not torch.isfinite(out).all():
        raise ValueError(f"{path} holds a NaN or infinite value; every feature needs a finite number")
    return out


def require_tabular(name: str) -> None:
    """One clear line unless ``name`` is a tabular zoo model (checked before anything is loaded).

    >>> require_tabular("lenet-digits")
    Traceback (most recent call last):
    ...
    ValueError: --row and --csv explain rows of a tabular model (mlp-breast-cancer); lenet-digits is not one: give --model mlp-breast-cancer, or an IMAGE
    """
    from ..zoo.tabular import DATASETS

    if name not in DATASETS:
        raise ValueError(f"--row and --csv explain rows of a tabular model ({', '.join(DATASETS)}); {name} is not one: "
                         f"give --model {next(iter(DATASETS))}, or an IMAGE")


def pick_rows(name: str, row: int | None, csv_path: Path | None) -> tuple[torch.Tensor, list[str], list[str]]:
    """``(rows, row labels, feature names)`` for ``--row`` or ``--csv`` of the tabular zoo model ``name``.

    A held-out row is labelled ``row{N}``; the rows of ``rows.csv`` are ``rows-0``, ``rows-1``, …

    >>> x, ids, names = pick_rows("mlp-breast-cancer", 3, None)
    >>> tuple(x.shape), ids
    ((1, 30), ['row3'])
    """
    from ..zoo.tabular import DATASETS

    require_tabular(name)
    if (row is None) == (csv_path is None):
        raise ValueError("give one of --row N (a held-out row) or --csv FILE, not both")
    test, _, names = DATASETS[name]("test")
    if row is not None:
        if not 0 <= row < len(test):
            raise ValueError(f"--row {row} is out of range: the held-out set has {len(test)} rows (0..{len(test) - 1})")
        return test[row : row + 1], [f"row{row}"], names
    x = read_rows(csv_path, names)
    return x, [f"{csv_path.stem}-{i}" for i in range(len(x))], names


def explain_rows(loaded, methods: list[str], *, row: int | None, csv_path: Path | None, target: int | None,
                 out: Path, options: dict[str, dict] | None = None) -> list[Path]:
    """Attribute each row with each method (with its ``options[method]``); write the PNGs and
    ``attributions.csv``; return the files written."""
    from ..attribution import METHODS, attribute
    from ..hooks import hooks
    from ..render import feature_bars, figure_to_image, waterfall
    from ..targets import target_indices, target_scores
    from ..zoo.tabular import background

    x, ids, names = pick_rows(loaded.name, row, csv_path)
    model, bg = loaded.model, background()
    with hooks(model), torch.no_grad():
        logits, bg_logits = model(x), model(bg)
    classes = target_indices(logits, target)  # the predicted class of each row, or --target for all
    # every method first, so a method that refuses the input leaves no half-written folder behind
    attributions = {m: attribute(model, x, m, target=classes, kind="tabular", feature_names=names, background=bg,
                                 **(options or {}).get(m, {})) for m in methods}
    out.mkdir(parents=True, exist_ok=True)
    written, lines = [], []
    for method, a in attributions.items():
        a = getattr(a, "attributions", a).detach().reshape(len(x), -1).double()
        kind = METHODS[method].score  # what the method explains: a class's logit, or its probability (LIME)
        score = target_scores(logits, classes, score=kind).double()
        for i, rid in enumerate(ids):
            label = loaded.labels[classes[i]] if loaded.labels else str(int(classes[i]))
            title = f"{loaded.name} · {rid} · {method} · class {int(classes[i])} ({label})"
            if method == "kernel-shap":  # efficiency: the contributions add up to f(x) − E[f(background)]
                base = float(target_scores(bg_logits, int(classes[i]), score=kind).double().mean())
                fig = waterfall(a[i], x[i], names, base=base, title=title, score_label=f"{kind} of {label}")
            else:
                base = float("nan")
                fig = feature_bars(a[i], x[i], names, title=title, xlabel=f"{method} ({kind} of {label})")
            path = out / f"{rid}-{method}.png"
            figure_to_image(fig).save(path)
            written.append(path)
            lines.append([rid, method, int(classes[i]), label, f"{float(score[i]):.6g}", f"{base:.6g}",
                          f"{float(a[i].sum()):.6g}", *[f"{v:.6g}" for v in a[i].tolist()]])
    table = out / "attributions.csv"
    with open(table, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["row", "method", "class", "label", "score", "base", "sum", *names])
        w.writerows(lines)
    from ..results import write_maps  # as for an image: maps.npz (method → (rows, features)) and scores.json

    maps = {m: getattr(a, "attributions", a).detach().reshape(len(x), -1) for m, a in attributions.items()}
    arrays, scores = write_maps(out, maps, {"rows": [str(r) for r in ids], "model": loaded.name, "target": target,
                                            "classes": classes, "features": list(names), "methods": list(methods),
                                            "options": options or {m: {} for m in methods}})
    return [*written, table, arrays, scores]
