"""Top-k examples: equal to a brute-force sort; receptive fields equal to the analytic ones."""
import pytest
import torch
from torch import nn

import seethrough as see
from seethrough.inspect import crops, project, receptive_field, topk, topk_examples
from seethrough.testing import untouched
from tests.inspect_fixtures import digits, lenet  # noqa: F401 - fixtures


def _brute(model, x, layer, k):
    act = see.activations(model, x, layer)[layer]
    score, pos = act.flatten(2).max(2) if act.dim() == 4 else (act, None)
    order = torch.sort(score.T, dim=1, descending=True, stable=True).indices[:, :k]  # ties: smaller index first
    return order, score.T.gather(1, order), None if pos is None else pos.T.gather(1, order)


@pytest.mark.parametrize("layer", ["relu2", "fc1", "relu3"])
def test_topk_equals_brute_force_sort(lenet, digits, layer):
    # relu2/relu3 have many exact zeros: the tie-breaking must match too.
    res = topk(lenet, digits, layer, k=9, batch_size=13, boxes=False, progress=False)
    idx, vals, pos = _brute(lenet, digits, layer, 9)
    assert torch.equal(res.indices, idx)
    torch.testing.assert_close(res.values, vals, rtol=1e-5, atol=1e-5)  # batches of 13 vs one: BLAS order
    if pos is not None:
        w = see.activations(lenet, digits[:1], layer)[layer].shape[-1]
        assert torch.equal(res.positions[..., 0] * w + res.positions[..., 1], pos)


def test_one_unit_and_an_iterable_of_batches_agree(lenet, digits):
    full = topk(lenet, digits, "relu2", k=5, boxes=False, progress=False)
    one = topk(lenet, (digits[i:i + 40] for i in range(0, len(digits), 40)), "relu2", unit=7, k=5, boxes=False, progress=False)
    assert torch.equal(one.indices[0], full.indices[7]) and torch.equal(one.values[0], full.values[7])
    assert one.units.tolist() == [7]


@pytest.mark.parametrize("layer, k, s", [("conv1", 5, 1), ("relu1", 5, 1), ("conv2", 14, 2), ("pool2", 16, 4)])
def test_receptive_field_equals_the_analytic_box(lenet, layer, k, s):
    h = see.activations(lenet, torch.zeros(1, 1, 32, 32), layer)[layer].shape[-1]
    pos = torch.cartesian_prod(torch.arange(h), torch.arange(h))
    boxes = receptive_field(lenet, torch.zeros(1, 1, 32, 32), layer, pos)
    expect = torch.cat([pos * s, pos * s + k], 1)
    assert torch.equal(boxes, expect)


def test_receptive_field_with_padding_and_stride_clips_at_the_border():
    net = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(2, 1, 3, padding=1))
    boxes = receptive_field(net, torch.zeros(1, 1, 16, 16), "3", torch.tensor([[0, 0], [2, 1]]))
    # analytic: out 3 at r → pool rows r-1..r+1 → conv rows 2r-2..2r+3 → input rows 4r-5..4r+7 (clipped to 0..15)
    assert boxes.tolist() == [[0, 0, 8, 8], [3, 0, 16, 12]]


def test_topk_boxes_and_crops(lenet, digits):
    res = topk(lenet, digits, "conv2", k=3, progress=False)
    assert torch.equal(res.boxes[..., :2], res.positions * 2) and torch.equal(res.boxes[..., 2:], res.positions * 2 + 14)
    c, p = topk_examples(lenet, digits, res, projection="gradient")
    i, (t, l, b, r) = res.indices[4, 1].item(), res.boxes[4, 1].tolist()
    assert torch.equal(c[4, 1], digits[i, :, t:b, l:r])
    # The whole gradient of that unit lies inside its box.
    g = project(lenet, digits[i:i + 1], "conv2", 4, res.positions[4, 1:2], method="gradient")
    outside = g.clone()
    outside[..., t:b, l:r] = 0
    assert g.abs().sum() > 0 and outside.abs().sum() == 0
    assert torch.equal(p[4, 1], g[0, :, t:b, l:r])


def test_gradient_projection_of_conv1_is_its_kernel(lenet, digits):
    pos = torch.tensor([[3, 7]])
    g = project(lenet, digits[:1], "conv1", 2, pos, method="gradient")
    ref = torch.zeros(1, 1, 32, 32)
    ref[0, 0, 3:8, 7:12] = lenet.conv1.weight[2, 0].detach()
    assert torch.allclose(g, ref, atol=0, rtol=0)


def test_deconvnet_projection_uses_the_registered_rule(lenet, digits):
    d = project(lenet, digits[:2], "relu2", torch.tensor([1, 5]), torch.tensor([[2, 2], [4, 1]]), method="auto")
    # deconvnet through relu1 passes positive parts whatever the input: it differs from the gradient here
    g = project(lenet, digits[:2], "relu2", torch.tensor([1, 5]), torch.tensor([[2, 2], [4, 1]]), method="gradient")
    assert "deconvnet" in see.METHODS and not torch.equal(d, g)
    # ... but both live inside the same receptive field box (rows 4..18, cols 4..18 for position (2, 2)).
    assert d[0, :, :4].abs().sum() == 0 and d[0, :, 18:].abs().sum() == 0


def test_crops_pad_border_boxes_to_a_common_size():
    x = torch.arange(64.0).view(1, 1, 8, 8).expand(2, 1, 8, 8)
    c = crops(x, torch.tensor([[0, 0, 2, 3], [4, 4, 7, 7]]))
    assert c.shape == (2, 1, 3, 3)
    assert torch.equal(c[0, 0, 1:], x[0, 0, :2, :3]) and c[0, 0, 0].abs().sum() == 0
    assert torch.equal(c[1, 0], x[1, 0, 4:7, 4:7])


def test_hygiene(lenet, digits):
    with untouched(lenet):
        res = topk(lenet, digits[:50], "relu2", k=3, progress=False)
        topk_examples(lenet, digits[:50], res)
    with untouched(lenet, allow_raise=ValueError):
        topk(lenet, digits[:50], "relu2", unit=99, k=3, progress=False)


def test_bad_input(lenet, digits):
    with pytest.raises(ValueError, match="larger than the dataset"):
        topk(lenet, digits[:5], "relu2", k=9, progress=False)
    with pytest.raises(ValueError, match="larger than the dataset"):
        topk(lenet, iter([digits[:5]]), "relu2", k=9, progress=False)
    with pytest.raises(ValueError, match="empty"):
        topk(lenet, digits[:0], "relu2", progress=False)
    with pytest.raises(ValueError, match="no spatial"):
        receptive_field(lenet, digits[:1], "fc1", torch.tensor([[0, 0]]))
    with pytest.raises(ValueError, match="k must be"):
        topk(lenet, digits, "relu2", k=0, progress=False)
    with pytest.raises(ValueError, match="unknown layer"):
        topk(lenet, digits, "relu9", progress=False)
