"""Occlusion with ``layer=`` (issue 18 item 3): the drop of the target score when one unit of a layer's
output (a conv channel, a hidden feature, a column) is replaced by a baseline (0 by default), for every
unit, ``(N, units)``. Agrees with Captum's ``LayerFeatureAblation`` to 1e-5 in float64 on lenet-digits
(whole channels: ``layer_mask`` = the channel index) and on mlp-breast-cancer (every neuron); batch
invariant on every sample; bad input is one line and the model is left as found."""
from __future__ import annotations

import copy

import pytest
import torch

import seethrough as see
from seethrough.testing import untouched
from tests.transformer_fixtures import lenet_like, tiny_encoder, token_batch

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _lenet():
    model, _ = see.zoo.load("lenet-digits")
    x, _ = see.zoo.digits("test")
    return copy.deepcopy(model).double(), x[:3].double()


def _mlp():
    model, _ = see.zoo.load("mlp-breast-cancer")
    x, _, _ = see.zoo.breast_cancer("test")
    return copy.deepcopy(model).double(), x[:5].double()


# (model maker, layer, Captum layer_mask: None = every neuron on its own)
CASES = {
    "lenet-digits conv2": (_lenet, "conv2", torch.arange(16).view(1, 16, 1, 1)),
    "lenet-digits relu3": (_lenet, "relu3", None),
    "mlp-breast-cancer fc1": (_mlp, "fc1", None),
    "mlp-breast-cancer relu2": (_mlp, "relu2", None),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("target", [1, "per-sample"])
def test_layer_occlusion_equals_captum_layer_feature_ablation(case, target):
    from captum.attr import LayerFeatureAblation

    make, layer, mask = CASES[case]
    model, x = make()
    t = torch.arange(x.shape[0]) % 2 if target == "per-sample" else target
    module = dict(model.named_modules())[layer]
    with untouched(model):
        ours = see.attribute(model, x, "occlusion", target=t, layer=layer, progress=False)
    theirs = LayerFeatureAblation(model, module).attribute(x, target=t, layer_mask=mask)
    act = see.activations(model, x, layer)[layer]
    assert ours.dtype == torch.float64 and ours.shape == act.shape[:2]
    # Captum repeats a channel's value at each of its positions; ours is one value per channel.
    expanded = ours.view(*ours.shape, *([1] * (act.dim() - 2))).expand_as(act)
    torch.testing.assert_close(expanded, theirs, rtol=0, atol=1e-5)
    assert ours.abs().max() > 1e-3  # not a map of zeros agreeing with zeros


def test_a_unit_feeding_a_linear_head_drops_by_weight_times_activation():
    # relu2 feeds fc3 directly: zeroing unit c drops logit t by exactly w_tc · a_c.
    model, x = _mlp()
    a = see.activations(model, x, "relu2")["relu2"]
    ours = see.attribute(model, x, "occlusion", target=0, layer="relu2", progress=False)
    torch.testing.assert_close(ours, model.fc3.weight[0].detach() * a, rtol=0, atol=1e-12)
    # A baseline equal to the activation itself hides nothing; a per-unit baseline tensor is read as one.
    assert see.attribute(model, x, "occlusion", target=0, layer="relu2", baseline=a, progress=False).abs().max() == 0
    b = torch.linspace(-1, 1, 16, dtype=torch.float64)
    shifted = see.attribute(model, x, "occlusion", target=0, layer="relu2", baseline=b, progress=False)
    torch.testing.assert_close(shifted, model.fc3.weight[0].detach() * (a - b), rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", ["lenet-digits conv2", "mlp-breast-cancer fc1"])
def test_batch_invariance_on_every_sample_and_dtypes(case):
    make, layer, _ = CASES[case]
    model, x = make()
    whole = see.attribute(model, x, "occlusion", target=1, layer=layer, progress=False)
    small = see.attribute(model, x, "occlusion", target=1, layer=layer, batch_size=3, progress=False)
    torch.testing.assert_close(small, whole, rtol=0, atol=1e-12)
    for i in range(x.shape[0]):
        one = see.attribute(model, x[i:i + 1], "occlusion", target=1, layer=layer, progress=False)
        torch.testing.assert_close(one, whole[i:i + 1], rtol=0, atol=1e-12)
    # The same call with the same batches gives the same bits ("auto" may pick other batches: last-bit noise).
    again = see.attribute(model, x, "occlusion", target=1, layer=layer, batch_size=3, progress=False)
    torch.testing.assert_close(again, small, rtol=0, atol=0)
    model32, x32 = model.float(), x.float()
    out32 = see.attribute(model32, x32, "occlusion", target=1, layer=layer, progress=False)
    assert whole.dtype == torch.float64 and out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), whole, rtol=0, atol=1e-3)


def test_train_mode_model_is_left_as_found():
    model, x = _lenet()
    model.train()
    with untouched(model):
        see.attribute(model, x, "occlusion", target=2, layer="conv2", progress=False)
    assert model.training


def test_token_states_occlude_each_hidden_feature_at_every_token():
    model = tiny_encoder().double()
    ids, mask = token_batch(3)
    how = dict(kind="tokens", extra={"attention_mask": mask}, output="logits", pad_id=0)
    with untouched(model):
        ours = see.attribute(model, ids, "occlusion", target=1, layer="blocks.1", progress=False, **how)
    assert ours.shape == (3, 16) and ours.dtype == torch.float64
    # A hand-written loop: a forward hook zeroing feature d of the block's first output, sample by sample.
    block = model.blocks[1]
    with torch.no_grad():
        clean = model(ids, attention_mask=mask).logits[:, 1]
        ref = torch.empty(3, 16, dtype=torch.float64)
        for d in range(16):
            def zero(_m, _i, out, d=d):
                h = out[0].clone()
                h[..., d] = 0
                return (h, *out[1:])
            handle = block.register_forward_hook(zero)
            try:
                ref[:, d] = clean - model(ids, attention_mask=mask).logits[:, 1]
            finally:
                handle.remove()
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-10)
    # Each sample alone (its own attention mask row) gives its row of the batch.
    for i in range(3):
        one = see.attribute(model, ids[i:i + 1], "occlusion", target=1, layer="blocks.1", progress=False,
                            **{**how, "extra": {"attention_mask": mask[i:i + 1]}})
        torch.testing.assert_close(one, ours[i:i + 1], rtol=0, atol=1e-10)


BAD = {
    "an unknown layer": (dict(layer="conv9"), ValueError, r"^unknown layer 'conv9'; closest: conv2, conv1$"),
    "layer and unit": (dict(layer="conv2", unit=("fc1", 3)), ValueError, r"^give layer= .* or unit= .*, not both$"),
    "a window with layer": (dict(layer="conv2", window=4), ValueError,
                            r"^window= and stride= slide over the input; with layer= each unit"),
    "a named baseline": (dict(layer="conv2", baseline="blur"), ValueError,
                         r"^with layer= the baseline is a number \(default 0\) or a tensor that broadcasts to layer "
                         r"'conv2''s output \(2, 16, 10, 10\); got 'blur'$"),
    "a baseline of the wrong shape": (dict(layer="fc1", baseline=torch.zeros(7)), ValueError,
                                      r"^with layer= the baseline .* output \(2, 120\); got \(7,\)$"),
}


@pytest.mark.parametrize("what", list(BAD))
def test_bad_layer_is_one_line_and_the_model_untouched(what):
    how, error, line = BAD[what]
    model, _ = see.zoo.load("lenet-digits")
    x, _ = see.zoo.digits("test")
    with untouched(model):
        with pytest.raises(error, match=line) as e:
            see.attribute(model, x[:2], "occlusion", target=1, progress=False, **how)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("make", ["script", "trace"])
def test_torchscript_with_layer_is_refused(make):
    from seethrough.attribution.occlusion import occlusion

    eager = lenet_like()
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    scripted = torch.jit.script(eager) if make == "script" else torch.jit.trace(eager, x)
    line = r"needs hooks, but the model is a TorchScript module, which takes no hooks: "
    with untouched(scripted):
        with pytest.raises(TypeError, match=rf"^occlusion with layer=/unit= {line}"):
            see.attribute(scripted, x, "occlusion", target=0, layer="conv2")
        with pytest.raises(TypeError, match=rf"^occlusion with layer=/unit= {line}"):
            occlusion(scripted, x, 0, layer="conv2", progress=False)
    # Input occlusion still runs on the scripted model and equals the eager one.
    torch.testing.assert_close(see.attribute(scripted, x, "occlusion", target=0, window=4, progress=False),
                               see.attribute(eager, x, "occlusion", target=0, window=4, progress=False))
