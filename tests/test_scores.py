"""The ``score`` option: logit, probability or log-probability of each sample's own class, on every
attribution method; each method's default (LIME and RISE: the probability, as their papers) in the
registry and in the docs; a callable target refuses ``score`` in one clear line."""
from __future__ import annotations

import copy
import pathlib
import re

import pytest
import torch
from torch import nn

import seethrough as see
from seethrough.targets import SCORES, method_score, target_scores

from .test_batch_invariance import FAST, _gap_head

X_TEST, Y_TEST = see.zoo.digits("test")
DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"
PROBABILITY_BY_DEFAULT = {"lime", "rise"}  # Ribeiro et al. / the lime package; Petsiuk et al.


def test_probability_is_each_samples_softmax_at_its_own_class():
    out = torch.randn(5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 3
    t = torch.tensor([0, 6, 3, 3, 1])  # different classes in one batch
    rows = torch.arange(5)
    torch.testing.assert_close(target_scores(out, t, score="probability"), out.softmax(1)[rows, t], rtol=1e-15, atol=0)
    torch.testing.assert_close(target_scores(out, t, score="log-probability"), out.log_softmax(1)[rows, t],
                               rtol=1e-15, atol=0)
    assert torch.equal(target_scores(out, t, score="logit"), out[rows, t])
    assert torch.equal(target_scores(out, t), out[rows, t])  # the default reading is the logit
    # By hand: exp(z_t) / Σ exp(z), one row at a time.
    for i in range(5):
        assert abs(target_scores(out, t, score="probability")[i].item()
                   - (out[i, t[i]].exp() / out[i].exp().sum()).item()) < 1e-14


def test_bad_scores_and_callable_targets_are_one_clear_error():
    out = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="score must be one of 'logit', 'probability', 'log-probability'"):
        target_scores(out, 0, score="softmax")
    with pytest.raises(ValueError, match="applies to class targets; a callable target returns its own scores"):
        target_scores(out, lambda o: o[:, 0], score="probability")
    assert method_score(None, lambda o: o[:, 0], "probability") is None  # no score given: the callable's own


def _probability_of(cls: int):
    return lambda out: out.softmax(1)[:, cls]


@pytest.fixture(scope="module")
def lenet():
    model, _ = see.zoo.load("lenet-digits")
    return model


# Methods whose score is differentiated or read on every forward they run: score="probability" in
# a batch with different classes equals, sample by sample, a callable target returning that
# sample's softmax (a callable is exact for one image alone: every row it sees is that image's).
LINEAR_IN_SCORE = {"lrp"}  # LRP starts from the score's value, not its gradient: tested below
ONLY_LOGIT = {"cam"}  # decomposes the logit by construction


@pytest.mark.parametrize("method", [m for m in see.METHODS if m not in LINEAR_IN_SCORE | ONLY_LOGIT])
def test_probability_in_a_mixed_batch_equals_a_per_sample_softmax_target(lenet, method):
    x, t = X_TEST[[0, 1, 2]].double(), Y_TEST[[0, 1, 2]]
    model = copy.deepcopy(lenet).double()
    opts = FAST.get(method, {})
    prob = see.attribute(model, x, method, target=t, score="probability", **opts)
    logit = see.attribute(model, x, method, target=t, score="logit", **opts)
    for i in range(3):
        ref = see.attribute(model, x[i:i + 1], method, target=_probability_of(int(t[i])), **opts)
        torch.testing.assert_close(prob[i:i + 1], ref, rtol=0, atol=1e-9 * float(ref.abs().max().clamp_min(1e-30)),
                                   msg=lambda m: f"{method}, sample {i}: {m}")
    assert (prob - logit).abs().max() > 1e-6 * logit.abs().max()  # the option changes the result
    log_p = see.attribute(model, x, method, target=t, score="log-probability", **opts)
    assert torch.isfinite(log_p).all()


def test_lrp_starts_from_the_chosen_score_and_conserves_it():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 8, bias=False), nn.ReLU(), nn.Linear(8, 4, bias=False)).double()
    x = torch.rand(3, 3, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 2, 3])
    out = net(x).detach()
    for score, value in (("logit", out), ("probability", out.softmax(1)), ("log-probability", out.log_softmax(1))):
        a = see.attribute(net, x, "lrp", target=t, composite="epsilon", stabilizer=0.0, score=score)
        torch.testing.assert_close(a.sum((1, 2, 3)), value[torch.arange(3), t], rtol=1e-10, atol=1e-12, msg=score)


def test_cam_reads_the_logit_only(lenet):
    model, x = _gap_head(lenet), X_TEST[:2]
    see.attribute(model, x, "cam", target=Y_TEST[:2], score="logit")
    with pytest.raises(ValueError, match="cam decomposes the logit.*use 'gradcam'"):
        see.attribute(model, x, "cam", target=Y_TEST[:2], score="probability")


@pytest.mark.parametrize("method", list(see.METHODS))
def test_defaults_are_the_registered_ones_and_a_callable_refuses_score(lenet, method):
    model = _gap_head(lenet) if method == "cam" else lenet
    x, t = X_TEST[:2], Y_TEST[:2]
    opts = {**FAST[method], "batch_size": 7} if method in FAST else {}  # fixed batches: bit-identical reruns
    default = see.METHODS[method].score
    assert default == ("probability" if method in PROBABILITY_BY_DEFAULT else "logit")
    torch.testing.assert_close(see.attribute(model, x, method, target=t, **opts),
                               see.attribute(model, x, method, target=t, score=default, **opts), rtol=0, atol=0)
    refusal = ((TypeError, "give a class target, not a callable") if method == "cam"  # cam refuses any callable
               else (ValueError, f"score={'probability'!r} applies to class targets"))
    with pytest.raises(refusal[0], match=refusal[1]):
        see.attribute(model, x, method, target=lambda out: out[:, 0], score="probability", **opts)
    with pytest.raises(ValueError, match="score must be one of"):
        see.attribute(model, x, method, target=t, score="softmax", **opts)


def _table_scores(text: str) -> dict[str, str]:
    """``{method: default score}`` from the markdown methods tables (first column `name`, a `score` column)."""
    found = {}
    for table in re.findall(r"(\|[^\n]*\|\n\|[-| ]+\|\n(?:\|[^\n]*\|\n)+)", text):
        header = [c.strip() for c in table.splitlines()[0].strip("|").split("|")]
        if "score" not in header:
            continue
        col = header.index("score")
        for line in table.splitlines()[2:]:
            cells = [c.strip() for c in line.strip("|").split("|")]
            found[cells[0].strip("`")] = cells[col].strip("`")
    return found


def test_docs_state_every_methods_default_score():
    stated = _table_scores((DOCS / "attribution.md").read_text()) | _table_scores((DOCS / "perturbation.md").read_text())
    assert stated == {name: m.score for name, m in see.METHODS.items()}
    assert set(stated.values()) <= set(SCORES)


def test_lime_and_rise_score_the_probability_by_default(lenet):
    x, t = X_TEST[:2], Y_TEST[:2]
    e = see.lime(lenet, x, target=t, n_samples=60, segments="grid", n_segments=9)
    assert e.score == "probability"
    # LIME's intercept plus its weights approximate the class probability: it lives in [0, 1]
    assert (e.intercept > -0.5).all() and (e.intercept < 1.5).all()
    as_logit = see.lime(lenet, x, target=t, n_samples=60, segments="grid", n_segments=9, score="logit")
    assert as_logit.score == "logit" and not torch.allclose(e.weights, as_logit.weights)
    rise = see.attribute(lenet, x, "rise", target=t, n_samples=64)
    # RISE's map is Σ score·mask / (n·p): with probabilities every value is in [0, 1 / p]
    assert rise.min() >= 0 and rise.max() <= 2
