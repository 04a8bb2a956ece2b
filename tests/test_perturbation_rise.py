"""RISE: equal to the definition computed mask by mask, finds the one region a model looks at,
seeded and batch invariant; its masks have the paper's statistics."""
import torch
from torch import nn

import seethrough as see
from seethrough.attribution.rise import RiseMasks


class LooksAt(nn.Module):
    """Score 0 = mean of x over one square region; score 1 = mean over the whole image."""

    def __init__(self, top, left, size):
        super().__init__()
        self.box = (top, left, size)

    def forward(self, x):
        t, l, s = self.box
        return torch.stack([x[:, :, t:t + s, l:l + s].mean((1, 2, 3)) ** 2, x.mean((1, 2, 3))], 1)


def test_rise_equals_its_definition_mask_by_mask():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Linear(36, 3)).double()
    x = torch.rand(2, 3, 20, 18, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    n, p = 60, 0.4
    masks = RiseMasks(n, (20, 18), cells=5, p=p, seed=3)
    ref = {s: torch.zeros(2, 1, 20, 18, dtype=torch.float64) for s in ("probability", "logit")}
    with torch.no_grad():
        for i in range(n):
            m = masks(torch.tensor([i]))[0].double()  # (1, H, W)
            out = net(x * m)
            # The default score is the softmax probability (the paper's and its reference code's).
            ref["probability"] += out.softmax(1)[:, [2, 0]].diagonal().view(2, 1, 1, 1) * m  # targets 2 and 0
            ref["logit"] += out[:, [2, 0]].diagonal().view(2, 1, 1, 1) * m
    ref = {s: r / (n * p) for s, r in ref.items()}
    ours = see.attribute(net, x, "rise", target=[2, 0], n_samples=n, cells=5, p=p, seed=3, batch_size=7)
    torch.testing.assert_close(ours, ref["probability"], rtol=1e-10, atol=1e-12)
    auto = see.attribute(net, x, "rise", target=[2, 0], n_samples=n, cells=5, p=p, seed=3)
    torch.testing.assert_close(auto, ref["probability"], rtol=1e-10, atol=1e-12)
    logit = see.attribute(net, x, "rise", target=[2, 0], n_samples=n, cells=5, p=p, seed=3, score="logit")
    torch.testing.assert_close(logit, ref["logit"], rtol=1e-10, atol=1e-12)
    other = see.attribute(net, x, "rise", target=[2, 0], n_samples=n, cells=5, p=p, seed=4)
    assert not torch.allclose(other, ref["probability"])


def test_rise_masks_are_smooth_random_and_keep_a_fraction_p():
    masks = RiseMasks(400, (32, 32), cells=4, p=0.3, seed=0)(torch.arange(400))
    assert masks.min() >= 0 and masks.max() <= 1
    assert abs(masks.mean().item() - 0.3) < 0.03
    # Smooth: neighbouring pixels differ by at most one cell's ramp (1 / cell size = 1/8).
    assert (masks[..., 1:] - masks[..., :-1]).abs().max() <= 1 / 8 + 1e-6
    # Random shifts: the masks are not all aligned on the same grid.
    assert masks.var(0).std() < 0.05


def test_rise_puts_the_mass_on_the_region_the_model_looks_at():
    model = LooksAt(4, 20, 8)
    x = torch.ones(1, 3, 32, 32)
    # score="logit": the model's raw output 0 depends on the region only (its softmax would mix in output 1)
    sal = see.attribute(model, x, "rise", target=0, n_samples=500, cells=6, score="logit")[0, 0]
    inside = torch.zeros(32, 32, dtype=torch.bool)
    inside[4:12, 20:28] = True
    far = torch.ones(32, 32, dtype=torch.bool)
    far[:18, 12:] = False  # everything at least one cell away from the box
    assert inside.view(-1)[sal.argmax()]
    # Far away RISE sees only the constant p·E[f]; the region stands well above that level.
    lift = sal[inside].mean() - sal[far].mean()
    assert lift > 0.25 * sal[far].mean() and lift > 5 * sal[far].std()
    # The score depends on the region only: against a model over the whole image, RISE is flat.
    flat = see.attribute(model, x, "rise", target=1, n_samples=500, cells=6, score="logit")[0, 0]
    assert flat.std() / flat.mean() < 0.1 < sal.std() / sal.mean()
