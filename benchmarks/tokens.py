"""Token integrated gradients against Captum's ``LayerIntegratedGradients`` (issue 18 item 8, token part).

    python benchmarks/tokens.py            # minilm-l6-topics (one sentence) and the tiny test transformer, 5 repeats
    python benchmarks/tokens.py --quick    # 2 repeats

Same model, sentence, baseline (every token's word embedding replaced by the pad id's), target and
steps (50, Gauss–Legendre on both sides); the integral runs in the word-embedding space on both sides.
Printed: the largest difference of the (L, D) attributions, of the per-token sums, and the time ratio
(medians of warm wall-clock repeats). One run; nothing here is asserted — values are checked to 1e-4 in
tests/test_tokens_attribution.py.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from pathlib import Path

import torch

import seethrough as see

sys.path.insert(0, str(Path(__file__).parent))
from text import SENTENCE, median_time  # noqa: E402  (benchmarks/text.py: the same sentence and timer)


def compare(name: str, model, ids, mask, pad_id: int, emb, forward, repeats: int, steps: int = 50) -> str:
    from captum.attr import LayerIntegratedGradients

    b = see.boundary(model, kind="tokens", extra={"attention_mask": mask}, pad_id=pad_id)
    ours = lambda: see.attribute(b, ids, "integrated-gradients", target=0, steps=steps, reduce="none",  # noqa: E731
                                 progress=False)
    base = torch.full_like(ids, pad_id)

    def theirs():
        with see.hooks(model):  # eval mode and frozen parameters, as ours
            return LayerIntegratedGradients(forward, emb).attribute(ids, base, target=0, n_steps=steps,
                                                                      additional_forward_args=(mask,))

    a, ref = ours().detach(), theirs().detach()
    full, per_token = float((a - ref).abs().max()), float((a.sum(-1) - ref.sum(-1)).abs().max())
    t_ours, t_theirs = median_time(ours, repeats), median_time(theirs, repeats)
    return (f"| {name} ({ids.shape[1]} tokens) | {t_ours:.3f} s | {t_theirs:.3f} s | {t_ours / t_theirs:.2f}× | "
            f"{full:.1e} | {per_token:.1e} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    repeats = 2 if args.quick else 5
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.transformer_fixtures import tiny_encoder, token_batch

    print(f"# Token IG vs Captum ({datetime.date.today()}, {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}, {os.environ.get('OMP_NUM_THREADS', 'all')} threads)\n")
    print("| model | seethrough | Captum LIG | ratio | max diff (L, D) | max diff per token |\n|---|---|---|---|---|---|")
    tiny = tiny_encoder()
    ids, mask = token_batch(4)
    print(compare("tiny transformer, 4 sequences", tiny, ids, mask, 0, tiny.embeddings.word_embeddings,
                  lambda i, m: tiny(i, attention_mask=m).logits, repeats))
    model, prep = see.zoo.load("minilm-l6-topics")
    t = prep(SENTENCE)
    print(compare("minilm-l6-topics, one sentence", model, t.ids, t.mask, t.pad_id, model.get_input_embeddings(),
                  lambda i, m: model(i, m), repeats))


if __name__ == "__main__":
    main()
