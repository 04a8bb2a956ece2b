"""Text commands: ``explain-text``, ``attention``, ``probe`` and ``bias`` (the bundled MiniLM models; docs/text.md).

They run the zoo's text models (``minilm-l6``, ``minilm-l6-topics``); any other ``--model`` is refused
in one line before anything loads. Errors go through ``seethrough.cli.friendly`` like every command.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..raw import raw_line, save_raw
from .base import app, layer_option, no_input, one_layer, out_dir, out_option, renamed, seed_option, target_option

TEXT_MODELS = ("minilm-l6-topics", "minilm-l6")
DEFAULT_METHODS = "rollout,integrated-gradients,occlusion"
TextModelOpt = typer.Option(None, "--model", "-m", help="minilm-l6-topics (the topic classifier) or minilm-l6 (with "
                            "--pair: the cosine similarity of the two sentences); default: minilm-l6 with --pair, "
                            "else minilm-l6-topics")


def require_text_model(name: str) -> None:
    """One clear line unless ``name`` is a zoo text model (checked before anything loads).

    >>> require_text_model("lenet-digits")
    Traceback (most recent call last):
    ...
    ValueError: lenet-digits is not a text model: the text commands run minilm-l6-topics or minilm-l6 (for your own transformers model use seethrough.text in Python)
    """
    if name not in TEXT_MODELS:
        raise ValueError(f"{name} is not a text model: the text commands run {' or '.join(TEXT_MODELS)} "
                         "(for your own transformers model use seethrough.text in Python)")


def text_model(name: Optional[str], pair: Optional[str]):
    """``(model, preprocess, labels, name)`` for the text commands: the similarity model with ``pair``."""
    from .. import zoo

    name = name or ("minilm-l6" if pair is not None else "minilm-l6-topics")
    require_text_model(name)
    if pair is not None:
        if name != "minilm-l6":
            raise ValueError(f"--pair explains the similarity of two sentences with minilm-l6, not {name}: drop --model")
        return zoo.similarity(pair), zoo.preprocess("minilm-l6"), ["cosine"], name
    if name == "minilm-l6":
        raise ValueError("minilm-l6 outputs a 384-d embedding, not a score: give --pair \"another sentence\" to "
                         "explain their similarity, or --model minilm-l6-topics")
    model, prep = zoo.load(name)
    return model, prep, zoo.labels(name), name


def parse_text_methods(spec: str) -> list[str]:
    """``"a,b"`` → the methods; attention (rollout, flow) or registry methods that take token inputs.

    >>> parse_text_methods("rollout, flow")
    ['rollout', 'flow']
    """
    from ..attribution import METHODS
    from ..text.explain import ATTENTION_METHODS

    names = [m.strip() for m in spec.split(",") if m.strip()]
    if not names:
        raise ValueError("--method needs at least one method name")
    known = [*ATTENTION_METHODS, *METHODS]
    unknown = [m for m in names if m not in known]
    if unknown:
        raise ValueError(f"--method: unknown method(s) {', '.join(unknown)}; available: {', '.join(known)}")
    return names


@app.command("explain-text")
@no_input  # the zoo's text models only: no image shape options
def explain_text(
    sentence: str = typer.Argument(..., help="the sentence to explain"),
    pair: Optional[str] = typer.Option(None, "--pair", help="a second sentence: explain their cosine similarity (minilm-l6)"),
    method: str = typer.Option(DEFAULT_METHODS, "--method", help="comma-separated: rollout, flow, or token attribution "
                               "methods (saliency, grad-x-input, integrated-gradients, occlusion, lime, kernel-shap)"),
    target: Optional[int] = target_option(None, "topic to explain (default: the predicted one)"),
    model: Optional[str] = TextModelOpt,
    out: Path = out_option("explain-text", "METHOD.png, explain.html, words.csv, explain-text.npz/.json/.csv"),
    seed: int = seed_option("seed of the random methods (lime, kernel-shap) and of the random deletion baseline"),
):
    """Colour the words of SENTENCE by how much each drove the topic (or, with --pair, the similarity)."""
    import csv

    from ..attribution import METHODS
    from ..render import tokens_html, tokens_image
    from ..text.explain import explain_text as _explain, word_curves
    from .explain import takes_seed

    names = parse_text_methods(method)
    net, prep, labels, name = text_model(model, pair)
    t = prep(sentence)
    out.mkdir(parents=True, exist_ok=True)
    parts, rows, values, scores = [], [], {}, []
    for m in names:
        e = _explain(net, t, m, target, **({"seed": seed} if m in METHODS and takes_seed(m) else {}))
        c = word_curves(net, t, e.word_scores, e.target, seed=seed)
        what = f"similarity to {pair!r}" if pair is not None else f"topic {labels[e.target]}"
        title = f"{m} · {what} · deletion AUC {c.deletion_auc:.3f} (random {c.random_deletion_auc:.3f})"
        tokens_image(e.words, e.word_scores, title=title).save(out / f"{m}.png")
        parts.append(tokens_html(e.words, e.word_scores, title=title))
        rows.extend([m, w, f"{v:.6g}"] for w, v in zip(e.words, e.word_scores.tolist()))
        values[m], values[f"{m}-curves"] = e, c
        scores.append({"method": m, "target": e.target, "deletion_auc": c.deletion_auc,
                       "insertion_auc": c.insertion_auc, "random_deletion_auc": c.random_deletion_auc})
        typer.echo(f"{m}: " + " ".join(f"{w}({v:+.3f})" for w, v in zip(e.words, e.word_scores.tolist())))
    (out / "explain.html").write_text("<!doctype html><meta charset='utf-8'><body style='font:15px sans-serif'>"
                                      + "\n".join(parts) + "</body>", encoding="utf-8")
    with open(out / "words.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["method", "word", "score"], *rows])
    typer.echo(f"written to {out}")
    import pandas as pd

    typer.echo(save_raw(out, "explain-text", values, table=pd.DataFrame(scores), seed=seed,
                        options={"sentence": sentence, "pair": pair, "methods": names, "target": target, "model": name}))


@app.command()
@no_input
def attention(
    sentence: str = typer.Argument(..., help="the sentence whose attention to draw"),
    layer: Optional[list[str]] = layer_option(["0"], one=True, help="layer (a number) of the head view PNG"),
    head: Optional[int] = typer.Option(None, "--head", help="head of the head view PNG (default: the layer's mean)"),
    model: Optional[str] = typer.Option("minilm-l6", "--model", "-m", help="minilm-l6 or minilm-l6-topics"),
    out: Path = out_option("attention", "head-view.png, model-view.png, attention.html (self-contained), rollout.png, "
                           "flow.png, attention.npz/.json"),
):
    """Draw every layer's and head's attention on SENTENCE, and its attention rollout and flow."""
    from .. import zoo
    from ..render import attention_html, figure_to_image, head_view, model_view, tokens_image
    from ..text import attention_maps, flow, rollout, token_relevance
    from ..text.explain import _word_sums

    text = one_layer(layer, "attention") or "0"
    if not text.lstrip("-").isdigit():
        raise ValueError(f"--layer of attention is a layer number (0, 1, ...), got {text!r}")
    layer = int(text)
    require_text_model(model)
    net, prep = zoo.load(model)
    t = prep(sentence)
    att = attention_maps(net, t)
    layers, heads = att.shape[1:3]
    if not 0 <= layer < layers or (head is not None and not 0 <= head < heads):
        raise ValueError(f"--layer must be in 0..{layers - 1} and --head in 0..{heads - 1}")
    out.mkdir(parents=True, exist_ok=True)
    figure_to_image(head_view(att[0], t.tokens[0], layer, head)).save(out / "head-view.png")
    figure_to_image(model_view(att[0], t.tokens[0])).save(out / "model-view.png")
    (out / "attention.html").write_text(attention_html(att[0], t.tokens[0], title=f"{model} · {sentence}"), encoding="utf-8")
    values = {"attention": att}
    for name, r in (("rollout", rollout(att)), ("flow", flow(att))):
        words, ws = _word_sums(token_relevance(r)[0].double(), t)
        tokens_image(words, ws, title=f"attention {name} (mean over the tokens' rows)").save(out / f"{name}.png")
        values[name], values[f"{name}-words"] = r, ws
    typer.echo(f"{layers} layers × {heads} heads over {len(t.tokens[0])} tokens; written to {out}")
    typer.echo(save_raw(out, "attention", values, options={"sentence": sentence, "model": model, "layer": layer,
                                                           "head": head, "tokens": list(t.tokens[0]), "words": words}))


@app.command()
def probe(
    n: int = renamed("--samples", "--n", 1000, "generated sentences per set (two sets: plain and bigram-shifted)"),
    tasks: Optional[str] = typer.Option(None, "--tasks", help="comma-separated probing tasks (default: all six)"),
    seed: int = seed_option("seed of the generated sentences and the probes"),
    out: Path = out_option("probe", "probe.png (accuracy by layer), probe.csv, probe.npz/.json"),
):
    """Probe minilm-l6's layers for sentence length, word content, bigram shift, tense and subject/object number."""
    import csv

    from .. import zoo
    from ..render import probe_plot
    from ..text.probing import TASKS, probe as _probe

    if n < 20:
        raise ValueError(f"--samples {n} is too few sentences to fit and test a probe: give at least 20")
    names = [s.strip() for s in tasks.split(",") if s.strip()] if tasks else list(TASKS)
    bad = [s for s in names if s not in TASKS]
    if bad or not names:
        raise ValueError(f"--tasks: unknown task(s) {', '.join(bad) or '(none)'}; available: {', '.join(TASKS)}")
    net, _ = zoo.load("minilm-l6")
    r = _probe(net, zoo.tokenizer("minilm-l6"), n_samples=n, seed=seed, tasks=names)
    out = out_dir(out) / "probe.png"
    probe_plot(r.accuracy, r.control, majority=r.majority, title=f"minilm-l6 · {n} sentences").savefig(out, dpi=100)
    with open(out.with_suffix(".csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["task", "layer", "accuracy", "control", "selectivity", "majority"])
        for task in names:
            for lay, (a, c) in enumerate(zip(r.accuracy[task].tolist(), r.control[task].tolist())):
                w.writerow([task, lay, f"{a:.4f}", f"{c:.4f}", f"{a - c:.4f}", f"{r.majority[task]:.4f}"])
    for task in names:
        best = int(r.accuracy[task].argmax())
        typer.echo(f"{task:15s} best layer {best}: accuracy {float(r.accuracy[task][best]):.1%}, selectivity "
                   f"{float(r.selectivity[task][best]):+.1%}")
    typer.echo(f"written to {out}")
    saved = r.save(out.with_suffix(""))  # probe.npz + probe.json; probe.csv above is already its table
    typer.echo(raw_line([saved.with_suffix(".npz"), saved, out.with_suffix(".csv")]))


@app.command()
def bias(
    words: Optional[str] = typer.Option(None, "--words", help="comma-separated words to project on the gender direction "
                                        "(default: 24 occupations)"),
    direction: str = typer.Option("pca", "--direction", help="pca (of the definitional pairs) or difference (he − she)"),
    pieces: str = typer.Option("error", "--pieces", help="a word of several word pieces: error (refuse) or mean (average them)"),
    out: Path = out_option("bias", "bias.png (the projection figure), bias.npz/.json/.csv"),
    seed: int = seed_option("seed of the WEAT permutation test"),
):
    """Project words of minilm-l6's input embeddings on the gender direction; WEAT before and after neutralising."""
    import torch

    from .. import zoo
    from ..render import projection_bars
    from ..text import bias as B

    if direction not in ("pca", "difference"):
        raise ValueError(f"--direction must be pca or difference, got {direction!r}")
    names = [w.strip() for w in words.split(",") if w.strip()] if words else list(B.OCCUPATIONS)
    net, _ = zoo.load("minilm-l6")
    tok = zoo.tokenizer("minilm-l6")
    vec = B.word_vectors(net, tok, names, pieces=pieces, what="--words list").double()
    pairs = torch.stack([B.word_vectors(net, tok, list(p), what="definitional pairs") for p in B.DEFINITIONAL_PAIRS])
    g, share = B.gender_direction(pairs, direction)
    before, after = B.projections(vec, g), B.projections(B.neutralise(vec, g), g)
    out = out_dir(out) / "bias.png"
    projection_bars(names, before, after, title=f"minilm-l6 input embeddings · gender direction ({direction})").savefig(out, dpi=100)
    typer.echo(f"gender direction: {direction}" + (f" (first component: {share:.0%} of the pairs' variance)" if direction == "pca" else ""))
    for w, v in sorted(zip(names, before.tolist()), key=lambda p: p[1]):
        typer.echo(f"  {w:15s} {v:+.3f}")
    values = {"direction": g, "before": before, "after": after}
    for label, sets in (("WEAT 6 career/family × male/female names", (B.WEAT_CAREER, B.WEAT_FAMILY, B.WEAT_MALE_NAMES, B.WEAT_FEMALE_NAMES)),
                        ("WEAT 8 science/arts × male/female terms", (B.WEAT_SCIENCE, B.WEAT_ARTS, B.WEAT_MALE, B.WEAT_FEMALE))):
        x, y, a, b = (B.word_vectors(net, tok, list(s)).double() for s in sets)
        r0, r1 = B.weat(x, y, a, b, seed=seed), B.weat(B.neutralise(x, g), B.neutralise(y, g), a, b, seed=seed)
        typer.echo(f"{label}: effect size {r0.effect_size:+.2f} (p = {r0.p_value:.3f}); after neutralising the targets "
                   f"{r1.effect_size:+.2f} (p = {r1.p_value:.3f})")
        key = label.split(" ")[0].lower() + label.split(" ")[1]  # weat6, weat8
        values[key], values[f"{key}-neutralised"] = r0, r1
    typer.echo(f"written to {out}")
    import pandas as pd

    table = pd.DataFrame({"word": names, "before": before.tolist(), "after": after.tolist()})
    typer.echo(save_raw(out.parent, "bias", values, table=table, seed=seed,
                        options={"words": names, "direction": direction, "pieces": pieces, "share": share}))
