"""TCAV: the planted concept is found and its absence too, calibration on random concepts, order and batch
invariance, caching, procedural sets, hygiene and bad input."""
import warnings

import pytest
import torch

import seethrough as see
from seethrough.concepts import directional_grads
from seethrough.testing import untouched


@pytest.fixture(scope="module")
def data():
    xtr, _ = see.zoo.digits("train")
    x, y = see.zoo.digits("test")
    return see.concepts.stamp(xtr[:100], seed=1), x[y == 7], xtr[200:]


@pytest.fixture(scope="module")
def plain():
    return see.zoo.load("lenet-digits")[0]


def test_planted_concept_is_significant_and_absent_from_the_plain_twin(data, plain):
    concept, sevens, pool = data
    planted, _ = see.zoo.load("lenet-digits", planted="stripes:7")
    with untouched(planted):
        r = see.concepts.tcav(planted, concept, sevens, "pool2", 7, random_sets=8, random_x=pool, concept="stripes")
    assert r["pool2"].significant and r["pool2"].score > 0.9
    r0 = see.concepts.tcav(plain, concept, sevens, "pool2", 7, random_sets=8, random_x=pool, concept="stripes")
    assert not r0["pool2"].significant


def test_random_concepts_are_significant_at_about_the_nominal_rate(plain):
    x, _ = see.zoo.digits("train")
    xt, yt = see.zoo.digits("test")
    hits = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for trial in range(12):
            concept = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(100 + trial))[:30]]
            r = see.concepts.tcav(plain, concept, xt[yt == 3], "relu4", 3, random_sets=5, random_x=x, seed=trial)
            hits += r["relu4"].significant
    assert hits <= 3  # alpha = 0.05: P(>= 4 of 12) is 0.2 % for a calibrated test


def test_scores_do_not_depend_on_the_order_of_the_concept_set(data, plain):
    concept, sevens, pool = data
    a = see.concepts.tcav(plain, concept, sevens, "relu3", 7, random_sets=3, random_x=pool)
    b = see.concepts.tcav(plain, concept.flip(0), sevens, "relu3", 7, random_sets=3, random_x=pool)
    assert torch.equal(a["relu3"].concept_scores, b["relu3"].concept_scores)
    assert a["relu3"].pvalue == b["relu3"].pvalue


def test_batched_directional_derivatives_equal_a_per_example_loop(data, plain):
    _, sevens, _ = data
    with untouched(plain):
        g = directional_grads(plain, sevens[:12], "relu3", 7)
    ref = torch.cat([directional_grads(plain, sevens[i:i + 1], "relu3", 7) for i in range(12)])
    assert torch.allclose(g, ref, atol=1e-6)


def test_cache_is_written_only_when_asked_and_reused(tmp_path, data, plain):
    concept, sevens, pool = data
    a = see.concepts.tcav(plain, concept[:20], sevens, "relu4", 7, random_sets=2, random_x=pool, cache=tmp_path)
    files = list(tmp_path.iterdir())
    assert len(files) == 1
    b = see.concepts.tcav(plain, concept[:20], sevens, "relu4", 7, random_sets=2, random_x=pool, cache=tmp_path)
    assert torch.equal(a["relu4"].concept_scores, b["relu4"].concept_scores) and list(tmp_path.iterdir()) == files
    frame = a.to_frame()
    assert frame.layer.tolist() == ["relu4"] and frame.score.iloc[0] == a["relu4"].score


def test_cav_separates_the_stamped_patch_and_warns_at_chance(data, plain):
    concept, _, pool = data
    with untouched(plain):
        c = see.concepts.cav(plain, concept[:60], pool[:60], "relu2")
    assert c.accuracy > 0.9 and torch.isclose(c.vector.norm(), torch.tensor(1.0, dtype=c.vector.dtype))
    with pytest.warns(UserWarning, match="not linearly present"):
        see.concepts.cav(plain, pool[:40], pool[40:80], "relu4")


def test_procedural_sets_are_seeded_and_distinct():
    a = see.concepts.procedural("stripes", 5, 16, seed=3)
    assert torch.equal(a, see.concepts.procedural("stripes", 5, 16, seed=3))
    assert not torch.equal(a, see.concepts.procedural("stripes", 5, 16, seed=4))
    assert not torch.equal(a, see.concepts.procedural("checker", 5, 16, seed=3))
    red = see.concepts.procedural("red", 3, 8)
    assert (red[:, 0] > red[:, 1]).all() and a.min() >= 0 and a.max() <= 1
    assert see.concepts.crops("chelsea", [(0, 0, 50, 50), (10, 10, 90, 90)], size=24).shape == (2, 3, 24, 24)


def test_bad_input(data, plain):
    concept, sevens, pool = data
    with untouched(plain, allow_raise=ValueError):
        see.concepts.tcav(plain, concept, sevens, "relu2", 7, random_sets=1, random_x=pool)
    with pytest.raises(ValueError, match="random_sets must be an int >= 2"):
        see.concepts.tcav(plain, concept, sevens, "relu2", 7, random_sets=1)
    with pytest.raises(ValueError, match="unknown layer"):
        see.concepts.tcav(plain, concept, sevens, "relu9", 7, random_sets=2, random_x=pool)
    with pytest.raises(ValueError, match="unknown concept"):
        see.concepts.procedural("zebra", 3, 8)
    with pytest.raises(ValueError, match="planted must look like"):
        see.zoo.load("lenet-digits", planted="stripes")
