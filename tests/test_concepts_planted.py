"""The planted twin learned the *pattern*: stripes turn non-7s into 7s and are significant under TCAV, the
control patches at the same place (solid square, dots, checker) do neither; the pitfall of random sets
without patches; captions generated from the numbers; a new recipe never reads an old cache file."""
import hashlib
import json

import pytest
import torch

import seethrough as see
from seethrough.testing import untouched
from seethrough.zoo import planted as planted_twin

KINDS = ("stripes", "white", "dots", "checker")
LAYERS = ["pool1", "pool2"]


@pytest.fixture(scope="module")
def world():
    x, _ = see.zoo.digits("train")
    xt, yt = see.zoo.digits("test")
    twin, _ = see.zoo.load("lenet-digits", planted="stripes:7")
    plain, _ = see.zoo.load("lenet-digits")
    pool = see.concepts.stamp_mixed(x[200:], planted_twin.controls("stripes"), seed=7)
    return x, xt, yt, twin, plain, pool


def run(model, x, sevens, pool, kind):
    return see.concepts.tcav(model, see.concepts.stamp(x[:100], kind, seed=1), sevens, LAYERS, 7, random_sets=10,
                             random_x=pool, concept=kind, n_tests=len(LAYERS) * len(KINDS))


def test_stripes_flip_non_sevens_and_the_controls_do_not(world):
    _, xt, yt, twin, plain, _ = world
    others = xt[yt != 7]
    with untouched(twin):
        flips = {k: see.concepts.flip_rate(twin, others, k, 7, seed=2) for k in KINDS}
    assert flips["stripes"] > 0.5, flips
    assert flips["white"] < flips["stripes"] / 10 and max(flips["dots"], flips["checker"]) < 0.15, flips
    assert see.concepts.flip_rate(plain, others, "stripes", 7, seed=2) < 0.05
    assert see.zoo.lenet.digit_accuracy(twin) > 0.95  # clean digits are still read by their shape


@pytest.mark.slow
def test_stripes_are_significant_on_the_twin_and_the_controls_are_not(world):
    x, xt, yt, twin, plain, pool = world
    sevens = xt[yt == 7]
    r = {k: run(twin, x, sevens, pool, k) for k in KINDS}
    assert r["stripes"]["pool1"].significant and r["stripes"]["pool1"].score > 0.9, r["stripes"].summary()
    for k in KINDS[1:]:
        assert not any(v.significant for v in r[k].layers.values()), r[k].summary()
    r0 = run(plain, x, sevens, pool, "stripes")
    assert not any(v.significant for v in r0.layers.values()), r0.summary()


def test_pitfall_against_digits_without_patches_a_solid_square_scores_like_the_planted_pattern(world):
    # Random sets without patches: every patch's CAV points along "something in the corner", which the
    # twin's 7 score rises along, so the solid square is significant too (the reason for the patched pool).
    x, xt, yt, twin, _, _ = world
    r = see.concepts.tcav(twin, see.concepts.stamp(x[:100], "white", seed=1), xt[yt == 7], "pool1", 7, random_sets=10,
                          random_x=x[200:], concept="white")
    assert r["pool1"].significant and r["pool1"].score > 0.9, r.summary()


def test_readings_are_generated_from_the_numbers():
    from seethrough.concepts import LayerTCAV, TCAVResult

    up = LayerTCAV("a", 0.9, torch.full((3,), .9), torch.tensor([.4, .5, .6]), torch.ones(3), 0.004, True)
    down = LayerTCAV("b", 0.1, torch.full((3,), .1), torch.tensor([.4, .5, .6]), torch.ones(3), 0.004, True)
    none = LayerTCAV("c", 0.6, torch.full((3,), .6), torch.tensor([.4, .5, .6]), torch.ones(3), 0.3, False)
    text = TCAVResult("k", 7, 0.05, {"a": up, "b": down, "c": none}).summary()
    assert text == ("a: 0.90 against random 0.50 (p=0.004), significant: above the random CAVs, the concept raises "
                    "the class score; b: 0.10 against random 0.50 (p=0.004), significant: below the random CAVs, the "
                    "concept lowers the class score; c: 0.60 against random 0.50 (p=0.3), not significant")


def test_n_tests_multiplies_the_p_values_and_is_checked(world):
    x, xt, yt, twin, _, pool = world
    args = (twin, see.concepts.stamp(x[:40], "stripes", seed=1), xt[yt == 7], "pool1", 7)
    one = see.concepts.tcav(*args, random_sets=3, random_x=pool)
    four = see.concepts.tcav(*args, random_sets=3, random_x=pool, n_tests=4)
    assert four["pool1"].pvalue == pytest.approx(min(1.0, 4 * one["pool1"].pvalue))
    with pytest.raises(ValueError, match="n_tests must be an int >= the 2 layer"):
        see.concepts.tcav(twin, args[1], args[2], ["pool1", "pool2"], 7, random_sets=3, random_x=pool, n_tests=1)


def test_the_recipe_names_the_controls_and_an_old_v1_file_is_never_read():
    from seethrough.zoo.lenet import _TRAIN_CONFIG

    r = planted_twin.recipe("stripes:7")
    assert r["version"] == "v2" and r["controls"] == ["white", "dots", "checker"] and r["share"] == 0.5
    v1_key = hashlib.sha256(json.dumps([_TRAIN_CONFIG, "stripes", 7, 1.0], sort_keys=True).encode()).hexdigest()[:12]
    path = planted_twin.cache_path("stripes:7")
    assert path.name.startswith("lenet-digits-planted-v2-") and v1_key not in path.name


def test_the_report_captions_state_this_runs_numbers():
    from seethrough.report.registry import SECTIONS, Context, Figure, Table

    blocks = SECTIONS["concepts"].build(Context(quick=True))
    figures = [b for b in blocks if isinstance(b, Figure)]
    table = next(b for b in blocks if isinstance(b, Table))
    x, _ = see.zoo.digits("train")
    xt, yt = see.zoo.digits("test")
    twin, _ = see.zoo.load("lenet-digits", planted="stripes:7")
    pool = see.concepts.stamp_mixed(x[200:], planted_twin.controls("stripes"), seed=7)
    r = see.concepts.tcav(twin, see.concepts.stamp(x[:40], "stripes", seed=1), xt[yt == 7], ["pool2"], 7,
                          random_sets=3, random_x=pool, concept="stripes", n_tests=4)
    assert r.summary() in figures[1].caption
    for text in [f.caption for f in figures] + [table.caption]:
        assert "expected" not in text and "This run:" in text
