import pytest
import torch

from seethrough.targets import target_indices, target_scores

OUT = torch.tensor([[0.0, 1.0, 2.0], [5.0, 1.0, 0.0]])


def test_forms_of_target():
    assert target_indices(OUT, None).tolist() == [2, 0]
    assert target_indices(OUT, 1).tolist() == [1, 1]
    assert target_indices(OUT, [0, 2]).tolist() == [0, 2]
    assert target_indices(OUT, torch.tensor([1])).tolist() == [1, 1]
    assert target_scores(OUT, [0, 2]).tolist() == [0.0, 0.0]
    assert target_scores(OUT, lambda o: o[:, 0] - o[:, 1]).tolist() == [-1.0, 4.0]


@pytest.mark.parametrize("bad, err, msg", [
    (3, ValueError, "out of range: the model has 3 classes"),
    (-1, ValueError, "out of range"),
    ([0, 1, 2], ValueError, "3 targets for 2 samples"),
    (1.5, TypeError, "integers"),
    ("cat", TypeError, "target must be"),
    (lambda o: o, ValueError, "one score per sample"),
])
def test_bad_targets(bad, err, msg):
    with pytest.raises(err, match=msg):
        target_scores(OUT, bad)
