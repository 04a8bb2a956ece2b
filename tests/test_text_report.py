"""The report's "Text models" section: it builds, and its tables hold what the functions compute."""
from __future__ import annotations

import pytest
import torch

from seethrough.report.registry import SECTIONS, Context, Figure, Table


@pytest.mark.slow
def test_text_section_builds_and_its_tables_are_the_computed_numbers():
    import seethrough.report.sections  # noqa: F401 - registers the sections
    import seethrough as see
    from seethrough.text import bias as B

    assert SECTIONS["text"].title == "Text models"
    blocks = SECTIONS["text"].build(Context(quick=True))
    figures = [b for b in blocks if isinstance(b, Figure)]
    tables = {b.title: b for b in blocks if isinstance(b, Table)}
    assert len(figures) == 6 and all(f.caption and "seconds" in f.provenance for f in figures)
    probe = tables["Probe accuracy per layer"]
    assert [r[0] for r in probe.rows] == list(see.text.TASKS) and all(len(r) == 9 for r in probe.rows)
    curves = tables["Deletion and insertion over words"]
    assert [r[0] for r in curves.rows][:2] == ["rollout", "flow"]
    assert all(0 <= float(v) <= 1 for r in curves.rows for v in r[1:])
    model, _ = see.zoo.load("minilm-l6")
    tok = see.zoo.tokenizer("minilm-l6")
    v = lambda words: B.word_vectors(model, tok, list(words)).double()  # noqa: E731
    r = B.weat(v(B.WEAT_SCIENCE), v(B.WEAT_ARTS), v(B.WEAT_MALE), v(B.WEAT_FEMALE))
    weat = tables["WEAT before and after hard debiasing (neutralise)"].rows[1]
    assert weat[1:3] == [f"{r.effect_size:+.2f}", f"{r.p_value:.3f}"]
    heads = tables["Head importance (Michel et al. 2019)"].rows
    grads = [float(h[1]) for h in heads]
    assert grads == sorted(grads, reverse=True) and len(heads) == 6
    assert torch.tensor(grads).min() >= 0
