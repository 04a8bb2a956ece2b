"""Network dissection (Bau, Zhou, Khosla, Oliva & Torralba, CVPR 2017) on a probe data set with exact masks.

Each unit ``k`` of a convolutional layer gets a threshold ``T_k`` with ``P(a_k > T_k) = 0.005`` over
every position of every probe image (pass 1, exact: :class:`~.iou.Tail`); its maps, upsampled
bilinearly to the label resolution and thresholded at ``T_k``, are compared with every concept's
mask (pass 2: :class:`~.iou.IoU`), and the IoU is summed over the data set,
``IoU_k,c = Σ|M_k ∩ L_c| / Σ|M_k ∪ L_c|``. A unit is labelled with its best concept when that
IoU reaches ``iou_threshold`` (the paper's 0.04). Both passes run on the scan engine (local or
Dask); concepts come from :mod:`~.concepts` (colours, patterns, textures), no download.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from . import iou as _iou  # noqa: F401 - registers the "tail" and "iou" accumulators
from ..results import ResultProtocol
from .concepts import Probe


@dataclass
class Dissection(ResultProtocol):
    """``iou[layer]``: ``(U, K)`` float64 IoU of each unit with each of ``concepts``
    (``categories[c]`` their category); ``thresholds[layer]``: ``(U,)`` the per-unit ``T_k``.
    A unit is labelled when its best IoU reaches ``iou_threshold``."""

    layers: list[str]
    concepts: tuple[str, ...]
    categories: tuple[str, ...]
    thresholds: dict[str, torch.Tensor]
    iou: dict[str, torch.Tensor]
    iou_threshold: float = 0.04
    quantile: float = 0.005
    settings: dict[str, Any] = field(default_factory=dict)
    scan: Any = None  # pass 1's ScanResult over the probe (with any extra accumulators asked for)
    seed: int | None = None  # dissection draws nothing at random

    @property
    def options(self) -> dict[str, Any]:
        """The result protocol's name for ``settings`` (the same dict)."""
        return self.settings

    def best(self, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(concept index (U,), IoU (U,))`` of each unit's best concept (the first on ties)."""
        iou = self._layer(layer)
        value, index = iou.max(1)
        return index, value

    def label(self, layer: str, unit: int) -> str | None:
        """The unit's concept, or None when no concept reaches ``iou_threshold``."""
        index, value = self.best(layer)
        if not 0 <= unit < len(index):
            raise ValueError(f"unit {unit} is out of range: layer {layer!r} has {len(index)} units (0..{len(index) - 1})")
        return self.concepts[int(index[unit])] if float(value[unit]) >= self.iou_threshold else None

    def labelled(self, layer: str) -> torch.Tensor:
        """``(U,)`` bool: units whose best IoU reaches ``iou_threshold``."""
        return self.best(layer)[1] >= self.iou_threshold

    def _layer(self, layer: str) -> torch.Tensor:
        if layer not in self.iou:
            raise ValueError(f"layer {layer!r} was not dissected; dissected: {', '.join(self.layers)}")
        return self.iou[layer]

    def to_frame(self):
        """One row per unit: layer, unit, best concept, its category, IoU, labelled."""
        import pandas as pd

        rows = []
        for layer in self.layers:
            index, value = self.best(layer)
            for u, (c, v) in enumerate(zip(index.tolist(), value.tolist())):
                rows.append({"layer": layer, "unit": u, "concept": self.concepts[c], "category": self.categories[c],
                             "iou": v, "threshold": float(self.thresholds[layer][u]), "labelled": v >= self.iou_threshold})
        return pd.DataFrame(rows)

    def summary(self) -> str:
        """One line: labelled units per layer (the table is :meth:`label_counts`)."""
        return "network dissection: " + "; ".join(
            f"{layer} {int(self.labelled(layer).sum())} of {len(self.iou[layer])} units labelled" for layer in self.layers)

    def label_counts(self):
        """The paper's summary: per layer and category, the labelled units and the unique concepts among them
        (``summary()`` before issue 19)."""
        import pandas as pd

        rows = []
        for layer in self.layers:
            index, value = self.best(layer)
            ok = value >= self.iou_threshold
            for cat in dict.fromkeys(self.categories):
                hit = [int(c) for c, o in zip(index, ok) if o and self.categories[int(c)] == cat]
                rows.append({"layer": layer, "category": cat, "units": len(hit), "unique": len(set(hit)),
                             "of": len(index)})
        return pd.DataFrame(rows)


def _check(model: nn.Module, layers: Sequence[str] | str, quantile: float, iou_threshold: float) -> list[str]:
    from ..layers import resolve_layer

    layers = [layers] if isinstance(layers, str) else list(layers)
    if not layers:
        raise ValueError("give at least one convolutional layer to dissect")
    for layer in layers:
        resolve_layer(model, layer)
    if isinstance(quantile, bool) or not isinstance(quantile, (int, float)) or not 0 < quantile < 1:
        raise ValueError(f"quantile must be a fraction in (0, 1) (the paper: 0.005), got {quantile!r}")
    if isinstance(iou_threshold, bool) or not isinstance(iou_threshold, (int, float)) or not 0 <= iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in [0, 1] (the paper: 0.04), got {iou_threshold!r}")
    return layers


def dissect(
    model: nn.Module | str,
    layers: Sequence[str] | str,
    probe: Probe | None = None,
    *,
    quantile: float = 0.005,
    iou_threshold: float = 0.04,
    resolution: int | None = None,
    accumulators: Sequence[str] = (),
    engine: str = "local",
    address: Any = None,
    batch_size: int | str = "auto",
    progress: bool = True,
) -> Dissection:
    """Dissect the units of ``layers`` on ``probe`` (default: ``Probe()``, 600 images of 64 px).

    ``model``: an ``nn.Module``, or a zoo name / ``module:factory`` (then Dask workers load it themselves).

    ``resolution``: the side of the label grid where maps and masks meet (default: the probe's
    size); ``accumulators``: more accumulators for pass 1 (e.g. ``("topk",)``: the result's ``scan``
    then feeds :func:`~.atlas.write_atlas` with the probe's top images); ``engine``/``address``: the
    scan engine (``"local"`` or ``"dask"``).

    >>> import seethrough as see
    >>> from seethrough.testing import untouched
    >>> from seethrough.scan.dissect import dissect
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> d = dissect(model, "conv1", Probe(n=40, size=32, channels=1), progress=False)
    >>> d.iou["conv1"].shape, d.thresholds["conv1"].shape
    (torch.Size([6, 32]), torch.Size([6]))
    """
    from .engine import _resolve_model, scan

    module = _resolve_model(model)[0]
    layers = _check(module, layers, quantile, iou_threshold)
    # Dask workers load a zoo name / factory themselves; locally the module built once is reused.
    model = model if engine == "dask" and not isinstance(model, nn.Module) else module
    probe = Probe() if probe is None else probe
    if not isinstance(probe, Probe):
        raise TypeError(f"probe must be a seethrough.scan.concepts.Probe, got {type(probe).__name__}")
    common = dict(batch_size=batch_size, engine=engine, address=address, progress=progress)
    extra = [a for a in ([accumulators] if isinstance(accumulators, str) else accumulators) if a != "tail"]
    first = scan(model, probe, layers, accumulators=("tail", *extra),
                 options={"tail": {"q": float(quantile), "n_examples": len(probe)}}, **common)
    thresholds, iou = {}, {}
    for layer in layers:
        thresholds[layer] = first[layer, "tail"].threshold()
        # The thresholds differ per layer, so each layer's IoU pass is its own scan.
        second = scan(model, probe, [layer], accumulators=("iou",),
                      options={"iou": {"thresholds": thresholds[layer].tolist(), "concepts": probe.spec,
                                       "resolution": resolution}}, **common)
        iou[layer] = torch.from_numpy(second[layer, "iou"].iou())
    return Dissection(layers, probe.concepts, probe.concept_categories,
                      {k: torch.from_numpy(v) for k, v in thresholds.items()}, iou, float(iou_threshold), float(quantile),
                      {"probe": probe.spec["options"], "resolution": resolution or probe.size}, first)
