"""Frosst & Hinton's direction at the defaults: on lenet-digits the soft tree trained on the network's soft
targets beats the same tree trained on the true labels on held-out digits; the report states both numbers."""
import pytest
import torch

import seethrough as see
from seethrough.distill import DEPTHS, soft_vs_hard
from seethrough.distill.core import SOFT_EPOCHS, SOFT_TEMPERATURE
from seethrough.testing import torch_threads, untouched


@pytest.mark.slow
def test_at_the_defaults_soft_targets_beat_hard_labels_on_lenet_digits():
    model, _ = see.zoo.load("lenet-digits")
    x, y = see.zoo.digits("all")
    # SGD over 100 epochs amplifies the last bits of a float32 sum: one thread, so CI reads the same trees.
    with torch_threads(1), untouched(model):
        soft, hard = soft_vs_hard(model, (x, y))
    assert soft.depth == DEPTHS["soft-tree"] == 6 and soft.options["temperature"] == SOFT_TEMPERATURE == 2.0
    assert soft.options["epochs"] == SOFT_EPOCHS == 100 and hard.options["fit_to"] == "labels"
    # docs/concepts.md states these two numbers (seed 0): 94.9 % against 92.9 %.
    assert soft.accuracy > hard.accuracy, (soft.accuracy, hard.accuracy)
    # to ±0.5 points (two held-out digits): the zoo model is trained on the machine that runs the tests
    assert 100 * soft.accuracy == pytest.approx(94.9, abs=0.5) and 100 * hard.accuracy == pytest.approx(92.9, abs=0.5), \
        (soft.accuracy, hard.accuracy)
    # The old defaults (depth 4, T = 1, 40 epochs) lost the comparison: docs/concepts.md quotes 93.3 % against 94.7 %.
    with torch_threads(1):
        old_soft, old_hard = soft_vs_hard(model, (x, y), depth=4, temperature=1.0, epochs=40)
    assert old_soft.accuracy < old_hard.accuracy
    assert 100 * old_soft.accuracy == pytest.approx(93.3, abs=0.5) and 100 * old_hard.accuracy == pytest.approx(94.7, abs=0.5), \
        (old_soft.accuracy, old_hard.accuracy)
    # The same split: the held-out digits are the same for both (the tree predicts them, accuracy is over them).
    assert soft.options["held_out"] == hard.options["held_out"] and soft.options["seed"] == hard.options["seed"]


def test_soft_vs_hard_trains_the_same_tree_two_ways_and_refuses_data_without_labels():
    mlp, _ = see.zoo.load("mlp-2d")
    x, y = see.zoo.toy_2d(200)
    soft, hard = soft_vs_hard(mlp, (x, y), depth=2, epochs=3)
    assert (soft.options["fit_to"], hard.options["fit_to"]) == ("model", "labels")
    same_labels = soft_vs_hard(mlp, (x, y), depth=2, epochs=3)[1]
    assert torch.equal(same_labels.estimator.inner.weight, hard.estimator.inner.weight)  # seeded: a fixed result
    with pytest.raises(ValueError, match="needs data=\\(inputs, true labels\\)"):
        soft_vs_hard(mlp, x)
    with pytest.raises(ValueError, match="temperature must be a number > 0"):
        see.distill(mlp, (x, y), method="soft-tree", temperature=0)
    with pytest.raises(ValueError, match="epochs must be an int >= 1"):
        see.distill(mlp, (x, y), method="soft-tree", epochs=0)
