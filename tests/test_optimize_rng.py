"""visualize, invert and dream take a seed: they draw only from local generators (torch's global
random state is left exactly as it was) and a seed fixes the output. A model that rejects the
input sizes dream feeds it gets a message naming only options dream takes."""
import inspect
import re

import pytest
import torch

import seethrough as see
from seethrough.testing import untouched


@pytest.fixture(scope="module")
def lenet():
    return see.zoo.load("lenet-digits")[0]


def _calls(lenet, seed):
    # a fixed batch size: "auto" may split the first call differently while it measures, which
    # changes float rounding (not the random draws)
    x = see.zoo.digits("test")[0][:2]
    kw = dict(seed=seed, batch_size=8)
    return {
        "visualize pixel": lambda: see.visualize(lenet, "logit:3", size=32, param="pixel", steps=3, **kw).x,
        "visualize fourier": lambda: see.visualize(lenet, ["logit:1", "channel:conv2:2"], size=32, steps=3, **kw).x,
        "visualize init": lambda: see.visualize(lenet, "logit:3", init=x[:1], steps=2, **kw).x,
        "invert": lambda: see.invert(lenet, x, ["relu1", "fc3"], steps=4, **kw)[1].x,
        "dream": lambda: see.dream(lenet, x, "relu2", steps=3, octaves=1, jitter=2, **kw).x,
    }


def test_global_random_state_is_untouched_and_a_seed_fixes_the_output(lenet):
    torch.manual_seed(1234)
    for name, call in _calls(lenet, seed=5).items():
        state = torch.random.get_rng_state()
        with untouched(lenet):
            first = call()
        assert torch.equal(torch.random.get_rng_state(), state), f"{name} advanced torch's global random state"
        torch.manual_seed(999)  # a different global state must not change a seeded result
        assert torch.equal(call(), first), name
    other = _calls(lenet, seed=6)
    assert not torch.equal(other["invert"](), _calls(lenet, seed=5)["invert"]())


def test_dream_on_a_fixed_size_model_names_only_options_dream_takes(lenet):
    x = see.zoo.digits("test")[0][:1]
    with untouched(lenet, allow_raise=ValueError), pytest.raises(ValueError) as info:
        see.dream(lenet, x, "relu2", steps=2, octaves=2)
    msg = str(info.value)
    named = set(re.findall(r"\b([a-z_]+)=", msg))
    assert named and named <= set(inspect.signature(see.dream).parameters), (named, msg)
    assert "octaves=1" in msg and "23×23" in msg
    # the advice works
    assert see.dream(lenet, x, "relu2", steps=2, octaves=1).x.shape == x.shape
    assert see.dream(lenet, x, "relu2", steps=2, octaves=2, octave_scale=1).x.shape == x.shape


def test_invert_on_a_wrong_size_names_only_options_invert_takes(lenet):
    x = torch.rand(1, 1, 24, 24, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="rejected an input") as info:
        see.invert(lenet, x, "fc3", steps=4)
    named = set(re.findall(r"\b([a-z_]+)=", str(info.value)))
    assert named <= set(inspect.signature(see.invert).parameters), (named, str(info.value))
