"""Network dissection on the procedural probe: exact quantiles, mergeable IoU counts, known detectors."""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from seethrough.hooks import hooks
from seethrough.scan.concepts import COLORS, Probe, checker, color_labels, dots, stripes
from seethrough.scan.dissect import dissect
from seethrough.scan.iou import IoU, Tail
from seethrough.testing import untouched


DOC = Path(__file__).resolve().parents[1] / "docs" / "scan.md"


class Units(nn.Module):
    """Channels 0 and 1 pass through; channel 2 is replaced by noise seeded from each image's own
    input: a unit that is random by construction, tied to no concept."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        noise = torch.stack([torch.rand(z.shape[2:], generator=torch.Generator().manual_seed(int(v.abs().sum() * 1e3) % 2**31))
                             for v in z])
        return torch.cat([z[:, :2], noise[:, None]], 1)


def detectors() -> nn.Module:
    """Unit 0 responds to red (r − 1.5 g − 0.5 b), unit 1 to vertical edges minus horizontal ones
    (vertical stripes), unit 2 is noise; layer "units" is at full resolution, "pooled" at 1/4."""
    feat, mix = nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 3, 1)
    with torch.no_grad():
        for p in (*feat.parameters(), *mix.parameters()):
            p.zero_()
        feat.weight[0, :, 1, 1] = torch.tensor([1.0, -1.5, -0.5])
        lum = torch.tensor([0.2126, 0.7152, 0.0722])
        for k, (dy, dx, s) in enumerate([(0, 1, 1), (0, 1, -1), (1, 0, 1), (1, 0, -1)]):  # ±d/dx, ±d/dy of luminance
            feat.weight[1 + k, :, 1, 1] = -s * lum
            feat.weight[1 + k, :, 1 + dy, 1 + dx] = s * lum
        feat.weight[5] = torch.randn(3, 3, 3, generator=torch.Generator().manual_seed(0))
        mix.weight[0, 0] = 1
        mix.weight[1, 1:3], mix.weight[1, 3:5] = 1, -1
        mix.weight[2, 5] = 1
    return nn.Sequential(OrderedDict(
        feat=feat, relu=nn.ReLU(), smooth=nn.AvgPool2d(5, 1, 2, count_include_pad=False), mix=mix, units=Units(),
        pooled=nn.AvgPool2d(4), head=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2)))).eval()


def _acts(model: nn.Module, probe: Probe, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.stack([probe[i][0] for i in range(len(probe))])
    with torch.no_grad(), hooks(model, capture=layer, detach=True) as rec:
        model(x)
    return rec[layer], x


def _feed(acc, acts: torch.Tensor, x: torch.Tensor, bounds: list[int]):
    for a, b in zip(bounds[:-1], bounds[1:]):
        acc.add(acts[a:b], torch.arange(a, b), inputs=x[a:b])
    return acc


def _random_splits(n: int, parts: int, seed: int) -> list[list[int]]:
    """``parts`` random contiguous pieces of 0..n, each cut again into random batches."""
    g = np.random.default_rng(seed)
    cuts = sorted(g.choice(np.arange(1, n), parts - 1, replace=False).tolist())
    pieces = list(zip([0] + cuts, cuts + [n]))
    return [sorted({a, b, *g.integers(a, b, 2).tolist()}) for a, b in pieces]


def _merge_in_random_order(accs: list, seed: int):
    g = np.random.default_rng(seed)
    accs = list(accs)
    while len(accs) > 1:  # a random merge tree: any two neighbours, either way round
        i = int(g.integers(len(accs) - 1))
        a, b = accs[i], accs[i + 1]
        accs[i:i + 2] = [a.merge(b) if g.random() < 0.5 else b.merge(a)]
    return accs[0]


@pytest.fixture(scope="module")
def probe() -> Probe:
    return Probe(n=48, size=32)


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return detectors()


def test_tail_threshold_is_numpy_quantile_for_any_split(model, probe):
    acts, x = _acts(model, probe, "pooled")
    values = acts.transpose(0, 1).reshape(acts.shape[1], -1).double().numpy()
    for q in (0.005, 0.05, 0.3):
        ref = np.quantile(values, 1 - q, axis=1)
        whole = _feed(Tail(q, len(probe)), acts, x, [0, len(probe)])
        np.testing.assert_array_equal(whole.threshold(), ref)
        for seed in range(3):
            parts = [_feed(Tail(q, len(probe)), acts, x, b) for b in _random_splits(len(probe), 4, seed)]
            merged = _merge_in_random_order(parts, seed)
            np.testing.assert_array_equal(merged.threshold(), ref)
            rebuilt = Tail.from_state({k: np.asarray(v) for k, v in merged.state().items()})
            np.testing.assert_array_equal(rebuilt.threshold(), ref)


def test_tail_refuses_more_data_than_it_was_sized_for(model, probe):
    acts, x = _acts(model, probe, "pooled")
    t = _feed(Tail(0.005, 10), acts, x, [0, len(probe)])
    with pytest.raises(ValueError, match="sized for 10 examples"):
        t.threshold()


def test_iou_counts_merge_exactly_for_random_splits(model, probe):
    acts, x = _acts(model, probe, "pooled")
    t = _feed(Tail(0.05, len(probe)), acts, x, [0, len(probe)]).threshold()
    whole = _feed(IoU(t, probe), acts, x, [0, len(probe)])
    assert whole.inter.sum() > 0 and whole.n == len(probe)
    for seed in range(4):
        parts = [_feed(IoU(t, probe.spec), acts, x, b) for b in _random_splits(len(probe), 5, seed)]
        merged = _merge_in_random_order(parts, seed + 10)
        for field in ("inter", "area", "label"):
            np.testing.assert_array_equal(getattr(merged, field), getattr(whole, field))
        assert merged.n == whole.n
    rebuilt = IoU.from_state({k: np.asarray(v) for k, v in whole.state().items()})
    np.testing.assert_array_equal(rebuilt.iou(), whole.iou())


def test_iou_equals_a_brute_force_count(model, probe):
    """Every count against a direct computation: upsample all maps, threshold, compare with each mask."""
    acts, x = _acts(model, probe, "pooled")
    t = _feed(Tail(0.05, len(probe)), acts, x, [0, len(probe)]).threshold()
    acc = _feed(IoU(t, probe), acts, x, [0, 17, len(probe)])
    up = nn.functional.interpolate(acts.double(), size=(32, 32), mode="bilinear", align_corners=False)
    m = up.float() > torch.from_numpy(t).view(1, -1, 1, 1)
    planes, annotated = probe.label_planes(torch.arange(len(probe)))
    cats = list(probe.categories)
    k = len(probe.concepts)
    inter, union = np.zeros((3, k)), np.zeros((3, k))
    for c in range(k):
        lab = (planes == c).any(1)  # (N, H, W)
        g = cats.index(probe.concept_categories[c])
        ann = annotated[:, g].view(-1, 1, 1, 1)
        inter[:, c] = (m & lab[:, None]).sum((0, 2, 3)).numpy()
        union[:, c] = ((m & ann) | lab[:, None]).sum((0, 2, 3)).numpy()
    np.testing.assert_array_equal(acc.inter, inter)
    np.testing.assert_allclose(acc.iou(), np.where(union > 0, inter / np.maximum(union, 1), 0), rtol=0, atol=1e-15)


def test_known_detectors_get_their_concepts_and_noise_gets_none(model):
    probe = Probe(n=200, size=64)
    with untouched(model):
        d = dissect(model, ["units", "pooled"], probe, batch_size=50, progress=False)
    red, stripe, noise = (d.label("units", u) for u in range(3))
    iou_red, iou_stripe, iou_noise = d.best("units")[1].tolist()
    assert red == "red" and iou_red >= 0.04
    assert stripe.startswith("stripes-v-") and iou_stripe >= 0.04
    assert noise is None and iou_noise < 0.02
    doc = " ".join(DOC.read_text(encoding="utf-8").split())  # docs/scan.md states these two numbers
    assert f"`red` at IoU {iou_red:.3f}, the edge unit `{stripe}` at IoU {iou_stripe:.3f}" in doc
    # after 4× average pooling and bilinear upsampling the stripe detector still wins; the noise still loses
    assert d.label("pooled", 1) == stripe and d.label("pooled", 2) is None
    frame = d.label_counts()
    units = frame[frame.layer == "units"].set_index("category")["units"].to_dict()
    assert units == {"color": 1, "pattern": 1, "texture": 0}


def test_dissection_is_deterministic_and_engine_independent_of_batching(model):
    probe = Probe(n=40, size=32, seed=3)
    a = dissect(model, ["pooled"], probe, batch_size=8, progress=False)
    b = dissect(model, ["pooled"], probe, batch_size=40, accumulators=("topk",), progress=False)
    assert torch.equal(a.iou["pooled"], b.iou["pooled"]) and torch.equal(a.thresholds["pooled"], b.thresholds["pooled"])
    # pass 1 can keep the probe's top images: a unit atlas of the probe, with each unit's concept
    from seethrough.scan.atlas import unit_records

    r = unit_records(b.scan, "pooled", [1], dissection=b, visualize=False)[0]
    assert r.concept == b.label("pooled", 1) and r.iou == float(b.best("pooled")[1][1]) and len(r.ids) == 9


def test_probe_is_deterministic_and_its_masks_are_exact():
    p = Probe(n=40, size=64, photos=0.0)
    planes, annotated = p.label_planes(torch.arange(40))
    assert torch.equal(planes, p.label_planes(torch.arange(40).flip(0))[0].flip(0))  # per-example, any order
    assert bool(annotated.all())
    names = p.concepts
    seen = 0
    for i in range(40):
        x = p[i][0]
        assert torch.equal(x, Probe(n=40, size=64, photos=0.0)._render(i)[0])  # drawn again, not from the cache
        for t, l, b, r, kind, _, _ in p._layout(i, p._generator(i)):  # the four rectangles drawn
            label = planes[i, 1, t:b, l:r]
            assert bool((label == (names.index(kind) if kind else -1)).all())
            if kind is None or not kind.startswith("stripes-") or "-d" in kind:
                continue
            patch = x[:, t:b, l:r]
            # per channel: spread down each column and along each row; the channel where fg and bg differ most
            down, along = patch.std(1).mean(1), patch.std(2).mean(1)
            flat, varying = (down, along) if "-v-" in kind else (along, down)  # vertical bands: constant down a column
            k = int(varying.argmax())
            assert flat[k] < 0.03 and varying[k] > 3 * flat[k]  # 0.02: the pixel noise
            seen += 1
    assert seen >= 4


def test_colour_labels_by_nearest_prototype():
    protos = torch.tensor(list(COLORS.values()), dtype=torch.float32).T.reshape(1, 3, 1, -1) / 255
    assert color_labels(protos).flatten().tolist() == list(range(len(COLORS)))
    gray = torch.full((1, 1, 1, 1), 0.5)
    assert list(COLORS)[int(color_labels(gray))] == "grey"
    assert color_labels(torch.rand(2, 3, 5, 7, dtype=torch.float64)).shape == (2, 5, 7)


def test_patterns_by_hand():
    assert stripes(4, 2, 90).tolist() == [[1.0] * 4, [0.0] * 4, [1.0] * 4, [0.0] * 4]  # horizontal bands
    assert checker(2, 1).tolist() == [[0.0, 1.0], [1.0, 0.0]]
    # one disc of radius 2.4 px centred at (4, 4): pixel centres at offsets ±0.5, ±1.5 in both axes (4.5 < 2.4²)
    assert dots(8, 8).sum().item() == 16.0


def test_bad_input_is_one_clear_line(model):
    with pytest.raises(ValueError, match="quantile must be a fraction"):
        dissect(model, "units", Probe(n=4, size=32), quantile=5)
    with pytest.raises(ValueError, match="convolutional layer"):
        IoU([0.0], Probe(n=4, size=32)).add(torch.zeros(2, 1), torch.arange(2))
    with pytest.raises(ValueError, match="probe size"):
        Probe(size=8)


@pytest.mark.slow  # a LocalCluster's workers import torch and seethrough: a minute and more on 2 busy cores
def test_dissection_on_dask_equals_the_local_run():
    import seethrough as see
    from seethrough.testing import torch_threads

    lenet, _ = see.zoo.load("lenet-digits")
    probe = Probe(n=48, size=32, channels=1)
    with torch_threads(1):  # the workers' arithmetic: one thread each
        local = dissect(lenet, ["conv1", "conv2"], probe, batch_size=16, progress=False)
    dask = dissect("lenet-digits", ["conv1", "conv2"], probe, batch_size=16, engine="dask", progress=False)
    for layer in ("conv1", "conv2"):
        assert torch.equal(dask.thresholds[layer], local.thresholds[layer])
        assert torch.equal(dask.iou[layer], local.iou[layer])
