"""Text models: attention extraction and probing against their plain limits, token IG against Captum (ratios).

    python benchmarks/text.py                # 2000 probing sentences, 7 repeats
    python benchmarks/text.py --quick        # 300 sentences, 3 repeats: a check that everything runs

* attention: ``see.text.attention_maps(model, tokens)`` against a plain ``bert(ids, attention_mask=mask,
  output_attentions=True)`` of the same transformer under ``torch.no_grad()`` (target ≤ 1.1×);
* probing: ``see.text.probe(model, n=N)`` (generation, tokenisation, two batched forwards, 12 probe fits)
  against the sum of one plain batched forward over the same sentence sets with ``output_hidden_states``
  and the same probe fits on precomputed features (target ≤ 1.2×);
* token integrated gradients (50 steps) against Captum's ``LayerIntegratedGradients`` on the word
  embeddings of minilm-l6-topics, same sentence, baseline and steps: the largest difference of per-token
  values and the time ratio — run only when ``see.attribute`` serves token ids.
Seconds are medians of wall-clock repeats, warm.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time

import torch

import seethrough as see
from seethrough.text import probing as P

SENTENCE = "The striker scored a late goal in the pouring rain."


def median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_attention(repeats: int) -> tuple[float, float]:
    model, prep = see.zoo.load("minilm-l6")
    t = prep([SENTENCE] * 8)
    bert = model.bert

    def plain():
        with torch.no_grad():
            bert(t.ids, attention_mask=t.mask, output_attentions=True)

    return median_time(lambda: see.text.attention_maps(model, t), repeats), median_time(plain, repeats)


def bench_probe(n: int, repeats: int) -> tuple[float, float, float]:
    model, _ = see.zoo.load("minilm-l6")
    tok = see.zoo.tokenizer("minilm-l6")
    sentences = P.generate(n, 0)
    plain_texts = [s.text for s in sentences]
    shift_texts, shift_labels = P.bigram_shift(sentences, 0)

    def forward_only():
        feats = []
        for texts in (plain_texts, shift_texts):
            for i in range(0, len(texts), 128):
                enc = tok(texts[i:i + 128], padding=True, return_tensors="pt")
                with torch.no_grad():
                    hs = model.bert(enc["input_ids"], attention_mask=enc["attention_mask"], output_hidden_states=True).hidden_states
                feats.append(hs)
        return feats

    feats = {"plain": P.sentence_features(model, tok, plain_texts), "shift": P.sentence_features(model, tok, shift_texts)}

    def fits_only():
        for task in P.TASKS:
            if task == "bigram-shift":
                labels, types, f = shift_labels, [s.subject for s in sentences], feats["shift"]
            else:
                (labels, types), f = P.task_labels(sentences, task), feats["plain"]
            P.probe_layers(f, labels, seed=0)
            P.probe_layers(f, P.control_labels(labels, types, 0), seed=0)

    ours = median_time(lambda: P.probe(model, tok, n=n, seed=0), repeats)
    return ours, median_time(forward_only, repeats), median_time(fits_only, repeats)


def bench_ig(repeats: int) -> str:
    model, prep = see.zoo.load("minilm-l6-topics")
    t = prep(SENTENCE)
    b = t.boundary(model)
    try:
        ours = see.attribute(b, t.ids, "integrated-gradients", target=0, steps=50)
    except (TypeError, ValueError) as e:
        return f"| token IG vs Captum LayerIntegratedGradients | not run: see.attribute does not serve token ids yet ({e}) | | |"
    from captum.attr import LayerIntegratedGradients

    ours_t = median_time(lambda: see.attribute(b, t.ids, "integrated-gradients", target=0, steps=50), repeats)
    emb = model.get_input_embeddings()
    base = torch.full_like(t.ids, t.pad_id)

    def theirs():
        with see.hooks(model):
            lig = LayerIntegratedGradients(lambda ids: model(ids, t.mask), emb)
            return lig.attribute(t.ids, base, target=0, n_steps=50).sum(-1)

    ref = theirs()
    a = getattr(ours, "attributions", ours).detach()
    a = a.sum(-1) if a.dim() == 3 else a
    diff = float((a - ref).abs().max())
    theirs_t = median_time(theirs, repeats)
    return f"| token IG (50 steps) vs Captum LayerIntegratedGradients | {ours_t:.3f} s | {theirs_t:.3f} s | {ours_t / theirs_t:.2f}× (max diff {diff:.1e}) |"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n, repeats = (300, 3) if args.quick else (2000, 7)
    att, att_ref = bench_attention(repeats)
    pr, fwd, fits = bench_probe(n, 3)  # a probing run is long: three repeats, medians
    print(f"# Text benchmarks ({datetime.date.today()}, {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}, {os.environ.get('OMP_NUM_THREADS', 'all')} threads)\n")
    print("| what | seethrough | limit | ratio |\n|---|---|---|---|")
    print(f"| attention maps, 8 sentences (vs plain output_attentions forward) | {att:.3f} s | {att_ref:.3f} s | {att / att_ref:.2f}× |")
    print(f"| probing all 7 layers, 6 tasks + controls, {n} sentences (vs forward {fwd:.2f} s + fits {fits:.2f} s) | "
          f"{pr:.2f} s | {fwd + fits:.2f} s | {pr / (fwd + fits):.2f}× |")
    print(bench_ig(max(1, repeats // 2)))


if __name__ == "__main__":
    main()
