"""Every registered attribution method, on every sample: N samples at once give the same maps as
N calls (per-sample random streams), a repeated sample gets the same map wherever it sits,
float64 in gives float64 out, and a fixed seed gives the same result twice."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import seethrough as see
from seethrough.testing import untouched

X_TEST, Y_TEST = see.zoo.digits("test")
PICK = [0, 1, 2, 0]  # three digits and the first one again, at the end of the batch

# Few passes: the property does not depend on how many; LIME and KernelSHAP keep the default SLIC
# superpixels (segmented per image) and sample (2^K > n_samples: the random path, not enumeration).
FAST = {
    "smoothgrad": {"n_samples": 5}, "smoothgrad-sq": {"n_samples": 5}, "vargrad": {"n_samples": 5},
    "integrated-gradients": {"steps": 8},
    "occlusion": {"window": 8, "stride": 4},
    "lime": {"n_samples": 60}, "kernel-shap": {"n_samples": 60}, "rise": {"n_samples": 64},
}
RANDOM = {"smoothgrad", "smoothgrad-sq", "vargrad", "lime", "kernel-shap", "rise"}


def _gap_head(lenet: nn.Module) -> nn.Module:
    """LeNet's convolutions under a global-average-pooling head: what ``cam`` needs (LeNet's own
    head is fully connected). Fixed weights, so every call sees the same model."""
    torch.manual_seed(0)
    head = nn.Linear(16, 10)
    return nn.Sequential(copy.deepcopy(lenet.conv1), nn.ReLU(), nn.MaxPool2d(2), copy.deepcopy(lenet.conv2), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), head).eval()


@pytest.fixture(scope="module")
def models():
    lenet, _ = see.zoo.load("lenet-digits")
    return {"lenet": lenet, "gap": _gap_head(lenet)}


def _model_for(method: str, models: dict) -> nn.Module:
    return models["gap" if method == "cam" else "lenet"]


@pytest.mark.parametrize("method", list(see.METHODS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_batch_equals_per_sample_calls_for_every_sample(models, method, dtype):
    model = copy.deepcopy(_model_for(method, models)).to(dtype)  # float64: a float64 copy of the model
    x, t = X_TEST[PICK].to(dtype), Y_TEST[PICK]
    assert len(set(t.tolist())) == 3  # different classes in one batch
    opts = FAST.get(method, {})
    with untouched(model):
        batch = see.attribute(model, x, method, target=t, **opts)
        singles = [see.attribute(model, x[i:i + 1], method, target=int(t[i]), **opts) for i in range(len(x))]
    assert batch.dtype == dtype and all(s.dtype == dtype for s in singles)
    # float64: only rounding of a different summation order is left; float32 allows its own rounding
    # (and LIME/KernelSHAP's linear solves amplify it a little).
    rtol = 1e-9 if dtype == torch.float64 else 2e-4
    for i, single in enumerate(singles):
        scale = float(single.abs().max().clamp_min(1e-30))
        torch.testing.assert_close(batch[i:i + 1], single, rtol=0, atol=rtol * scale,
                                   msg=lambda m: f"{method}, sample {i} of {len(x)}: {m}")
    scale = float(batch[0].abs().max().clamp_min(1e-30))
    torch.testing.assert_close(batch[3], batch[0], rtol=0, atol=rtol * scale,
                               msg=lambda m: f"{method}: the repeated digit got another map: {m}")


@pytest.mark.parametrize("method", sorted(RANDOM & set(see.METHODS)))
def test_fixed_seed_gives_the_same_result_twice_and_another_seed_another(models, method):
    model = _model_for(method, models)
    x, t = X_TEST[PICK], Y_TEST[PICK]
    opts = FAST.get(method, {})
    # With a fixed batch size the same passes run in the same batches: bit for bit the same.
    a = see.attribute(model, x, method, target=t, seed=3, batch_size=7, **opts)
    b = see.attribute(model, x, method, target=t, seed=3, batch_size=7, **opts)
    assert torch.equal(a, b)
    # batch_size="auto" probes sizes on the first call and reuses the choice later: other batches,
    # so float32 rounding may differ, nothing else.
    auto = see.attribute(model, x, method, target=t, seed=3, **opts)
    torch.testing.assert_close(auto, a, rtol=0, atol=2e-4 * float(a.abs().max()))
    c = see.attribute(model, x, method, target=t, seed=4, batch_size=7, **opts)
    assert (a - c).abs().max() > 1e-3 * a.abs().max()

