"""Every seeded metric draws from its own torch.Generator: the caller's global random stream is left where
it was, a fixed seed gives a fixed result whatever the global state, and the seed is actually used."""
import pytest
import torch

import seethrough as see
from seethrough.testing import untouched

M = see.metrics


@pytest.fixture(scope="module")
def lenet():
    model, _ = see.zoo.load("lenet-digits")
    x, y = see.zoo.digits("test")
    x, y = x[:4], y[:4]  # four distinct classes: a 2×2 mosaic needs them
    return model, x, y, see.attribute(model, x, "grad-x-input", target=y)


# A fixed batch size everywhere: "auto" measures on the first call, and a forward or gradient at another
# batch size differs in the last bits (about 1e-8 relative) — round-off, not a random stream.
CALLS = {
    "deletion": lambda m, x, y, a, s: M.deletion(m, x, a, y, steps=8, seed=s, batch_size=8, progress=False),
    "insertion": lambda m, x, y, a, s: M.insertion(m, x, a, y, steps=8, seed=s, batch_size=8, progress=False),
    "pixel_flipping": lambda m, x, y, a, s: M.pixel_flipping(m, x, a, y, steps=8, seed=s, batch_size=8, progress=False),
    "region_perturbation": lambda m, x, y, a, s: M.region_perturbation(m, x, a, y, patch=4, steps=8, seed=s,
                                                                        batch_size=8, progress=False),
    "road": lambda m, x, y, a, s: M.road(m, x, a, y, fractions=(0.2, 0.6), seed=s, batch_size=8, progress=False),
    "infidelity-square": lambda m, x, y, a, s: M.infidelity(m, x, a, y, n_samples=8, seed=s, batch_size=8, progress=False),
    "infidelity-gaussian": lambda m, x, y, a, s: M.infidelity(m, x, a, y, perturbation="gaussian", n_samples=8, seed=s,
                                                           batch_size=8, progress=False),
    "max_sensitivity": lambda m, x, y, a, s: M.max_sensitivity(m, x, "saliency", y, n_samples=4, seed=s,
                                                               batch_size=8, progress=False),
    "mosaic": lambda m, x, y, a, s: M.mosaic(x, torch.arange(len(x)), grid=2, n_samples=2, seed=s),
    "trust_badge": lambda m, x, y, a, s: see.sanity.trust_badge(m, x, "grad-x-input", y, a, seed=s),
}


def _numbers(result) -> list[torch.Tensor]:
    if isinstance(result, see.sanity.TrustBadge):
        return [result.randomized_top, result.deletion_random, result.insertion_random]
    if hasattr(result, "random_score"):
        return [result.curve, result.random, result.score, result.random_score]
    if hasattr(result, "values"):
        return [result.values]
    return [result.images, result.masks]


@pytest.mark.parametrize("name", list(CALLS))
def test_the_global_random_state_is_untouched_and_a_seed_fixes_the_result(lenet, name):
    model, x, y, a = lenet
    call = CALLS[name]
    torch.manual_seed(1234)
    before = torch.random.get_rng_state()
    with untouched(model):
        first = _numbers(call(model, x, y, a, 5))
    assert torch.equal(torch.random.get_rng_state(), before), f"{name} advanced torch's global random state"
    torch.manual_seed(999)  # another global state: the seeded result must not depend on it
    again = _numbers(call(model, x, y, a, 5))
    for u, v in zip(first, again):
        if name == "trust_badge":  # runs its curves at batch_size="auto": round-off only (see above)
            torch.testing.assert_close(u, v, rtol=1e-6, atol=1e-9, equal_nan=True)
        else:
            assert torch.equal(u.double().nan_to_num(-7.0), v.double().nan_to_num(-7.0)), name
    other = _numbers(call(model, x, y, a, 6))
    assert any(not torch.equal(u, v) for u, v in zip(first, other)), f"{name} ignores its seed"
