"""What the conformance suite (tests/test_conformance_*.py) runs every registered entry on, and how it calls it.

Entries are read from :mod:`seethrough.catalog` at collection time, so a newly registered attribution method,
attack, metric, objective, projection, influence solver or sanity test is checked with no edit here: an entry
is called through its family's public call path with the data its function's *parameter names* ask for
(``model``, ``x``, ``target``, ``attribution``, ``method``, ``random_label_model``, ``train``/``test``,
``features``), its required options filled by type (:func:`required_values`), and the cheap setting of its
expensive options from :data:`FAST`.

Models and inputs are reused, not copied: the image case is lenet-digits on three test digits (and the
global-average-pooling head of ``tests/test_batch_invariance`` for ``cam``), rows and the background are those
of ``tests/test_perturbation_kinds``, token ids come from ``tests/transformer_fixtures``.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

import seethrough as see
from seethrough import catalog
from seethrough.testing import untouched  # noqa: F401 (the tests use cf.untouched)

from tests import test_perturbation_kinds as rows_kind
from tests.test_batch_invariance import _gap_head
from tests.test_cam_tokens import TokenGap
from tests.transformer_fixtures import tiny_encoder, token_batch

# The families whose entries run on data (report sections and explorer views are checked by their own tests).
FAMILIES = ("attribution", "attack", "metric", "objective", "projection", "influence", "sanity")

# The cheap setting of each expensive option, per entry ("family:name"); the option names are the specs'
# (a test checks every one is still an option of its entry, so a rename shows up here, not as a silent no-op).
FAST: dict[str, dict[str, Any]] = {
    "attribution:smoothgrad": {"n_samples": 3}, "attribution:smoothgrad-sq": {"n_samples": 3},
    "attribution:vargrad": {"n_samples": 3}, "attribution:integrated-gradients": {"steps": 4},
    "attribution:occlusion": {"batch_size": 16}, "attribution:rise": {"n_samples": 24},
    "attribution:lime": {"n_samples": 24, "n_segments": 6},
    "attribution:kernel-shap": {"n_samples": 24, "n_segments": 6},
    "attack:ascent": {"steps": 2}, "attack:bim": {"steps": 2}, "attack:pgd": {"steps": 2},
    "metric:deletion": {"steps": 4}, "metric:insertion": {"steps": 4}, "metric:pixel-flipping": {"steps": 4},
    "metric:region-perturbation": {"steps": 4, "patch": 4}, "metric:road": {"fractions": (0.25, 0.5)},
    "metric:infidelity": {"n_samples": 4}, "metric:max-sensitivity": {"n_samples": 2},
    "projection:tsne": {"perplexity": 5.0, "pca": 8}, "projection:umap": {"n_neighbors": 5, "pca": 8},
    # the Hessian of the last bias over 24 digits is near-singular: damping makes it invertible
    "influence:exact": {"damping": 0.01}, "influence:cg": {"damping": 0.01, "cg_tol": 1e-8},
    "influence:lissa": {"damping": 0.01, "lissa_depth": 5, "lissa_scale": 10.0}, "influence:ekfac": {"damping": 0.01},
    "sanity:model-randomization": {"metrics": ("spearman",)}, "sanity:data-randomization": {"metrics": ("spearman",)},
}

# Entries whose first call takes over ~10 s whatever the options: their cases run under @pytest.mark.slow.
SLOW: dict[str, str] = {"projection:umap": "numba compiles UMAP on its first call (about a minute on 2 busy cores)"}

# Per-sample random streams are the contract, but some results are defined over the whole batch.
NOT_PER_SAMPLE: dict[str, str] = {
    "projection:tsne": "a t-SNE layout places every point relative to all the others: there is no per-sample result",
    "projection:pca": "the principal axes are fitted to the whole set: one point alone has no axes",
    "projection:umap": "a UMAP layout is a neighbour graph over the whole set: there is no per-sample result",
    "objective:diversity": "diversity scores how different the images of the batch are from each other",
}

# CAM on token ids has no default layer: the tiny encoder's last block (TokenGap's per-token ReLU for cam).
TOKEN_CAM_LAYER = "blocks.1"

PICK = [0, 1, 2]  # three test digits of different classes (N = 3 for "N at once = N calls")


@dataclass
class Case:
    """A model and N samples, with everything an entry may ask for by parameter name; ``take(i)`` is sample i
    alone (every per-sample field sliced, the rest shared)."""

    kind: str
    model: nn.Module
    x: torch.Tensor
    how: dict = field(default_factory=dict)  # boundary fields for attribute(): kind, background, extra, ...
    y: torch.Tensor | None = None
    attribution: torch.Tensor | None = None
    train: tuple | None = None
    feats: torch.Tensor | None = None  # what a projection lays out (default: features of ``train``)
    other: nn.Module | None = None  # a second model (data randomization's random-label model)
    options: dict = field(default_factory=dict)  # options this model needs (CAM's layer on token ids)

    def take(self, i: int) -> "Case":
        def cut(v):
            if torch.is_tensor(v) and v.dim() and v.shape[0] == len(self.x):
                return v[i:i + 1]
            if isinstance(v, dict):
                return {k: cut(w) for k, w in v.items()}
            return v

        how = {k: (cut(v) if k == "extra" else v) for k, v in self.how.items()}
        return dataclasses.replace(self, x=self.x[i:i + 1], how=how, y=cut(self.y), attribution=cut(self.attribution),
                                   feats=cut(self.feats))

    def double(self) -> "Case":
        """The float64 copy: model, floating inputs, background and attribution in float64."""
        def d(v):
            return v.double() if torch.is_tensor(v) and v.is_floating_point() else v

        how = {k: d(v) for k, v in self.how.items()}
        return dataclasses.replace(self, model=copy.deepcopy(self.model).double(), x=d(self.x), how=how,
                                   attribution=d(self.attribution),
                                   train=None if self.train is None else tuple(d(t) for t in self.train),
                                   other=None if self.other is None else copy.deepcopy(self.other).double())


_LENET: dict[str, nn.Module] = {}


def lenet() -> nn.Module:
    if "m" not in _LENET:
        _LENET["m"] = see.zoo.load("lenet-digits")[0]
    return _LENET["m"]


def image_case(name: str = "") -> Case:
    """lenet-digits on three test digits (cam: LeNet's convolutions under a GAP head)."""
    x, y = see.zoo.digits("test")
    model = _gap_head(lenet()) if name == "cam" else lenet()
    sal = see.attribute(lenet(), x[PICK], "saliency", target=y[PICK]).detach()
    other = copy.deepcopy(lenet())
    with torch.no_grad():
        other.fc3.weight.mul_(-1.0)  # a different model of the same architecture
    return Case("image", model, x[PICK], y=y[PICK], attribution=sal, train=(x[20:44], y[20:44]), other=other)


def conv1d() -> nn.Module:
    """A 1-D signal model (N, 1, 20) → 2 scores: the 'tensor' kind."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(1, 4, 5), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 16, 2)).eval()


def kind_case(kind: str, name: str = "") -> Case:
    """A small model of ``kind`` with three samples (built once; no check may change it: all run untouched)."""
    return _kind_case(kind, name == "cam")


def double_case(kind: str, name: str = "") -> Case:
    """The float64 copy of :func:`kind_case` (built once)."""
    return _double_case(kind, name == "cam")


@functools.lru_cache(maxsize=None)
def _double_case(kind: str, cam: bool) -> Case:
    return _kind_case(kind, cam).double()


@functools.lru_cache(maxsize=None)
def _kind_case(kind: str, cam: bool) -> Case:
    if kind == "image":
        return image_case("cam" if cam else "")
    if kind == "tokens" and cam:  # CAM's structure on tokens: per-token features, mean over tokens, one Linear
        ids = torch.randint(1, 20, (3, 5), generator=torch.Generator().manual_seed(0))
        return Case("tokens", TokenGap().eval(), ids, how={"kind": "tokens"}, options={"layer": "act"})
    if kind == "tabular":
        net = rows_kind.mlp().float()
        how = {"kind": "tabular", "background": rows_kind.BG.float()}
        return Case("tabular", net, rows_kind.X[:3].float(), how=how)
    if kind == "tokens":
        ids, mask = token_batch(3)
        return Case("tokens", tiny_encoder().eval(), ids, how={"kind": "tokens", "extra": {"attention_mask": mask},
                                                              "pad_id": 0}, options={"layer": TOKEN_CAM_LAYER})
    if kind == "tensor":
        return Case("tensor", conv1d(), torch.randn(3, 1, 20, generator=torch.Generator().manual_seed(0)))
    raise ValueError(kind)


def required_values(spec, case: Case) -> dict[str, Any]:
    """A value for each *required* option, by its type: a class or channel index 1, the last convolution's
    ReLU for a layer, a vector of ones as long as that layer has channels."""
    out: dict[str, Any] = {}
    if any(o.required and o.type not in ("int", "str") and o.name != "layer" for o in spec.options):
        with see.hooks(case.model, capture="relu2") as rec, torch.no_grad():
            case.model(case.x)
        channels = rec["relu2"].shape[1]
    for o in spec.options:
        if not o.required:
            continue
        if o.name == "layer" or o.type == "str":
            out[o.name] = "relu2"
        elif o.type == "int":
            out[o.name] = 1
        else:
            out[o.name] = [1.0] * channels
    return out


def fast(family: str, name: str) -> dict[str, Any]:
    return dict(FAST.get(f"{family}:{name}", {}))


def entry_ids(family: str) -> list[str]:
    return [f"{family}:{n}" for n in catalog.entries(family)]


def every_entry() -> list[str]:
    return [e for f in FAMILIES for e in entry_ids(f)]


_SPECS: dict = {}


def spec_of(entry: str):
    """The entry's spec (read once per entry: deriving a family's options takes a tenth of a second)."""
    if entry not in _SPECS:
        family, name = entry.split(":", 1)
        _SPECS[entry] = catalog.get(family, name)
    return _SPECS[entry]


# ----------------------------------------------------------------------------------------------- calls
def takes_progress(entry: str) -> bool:
    """Whether the entry's call path has a ``progress`` parameter (an attribution method: its own function,
    or the one a thin registry wrapper forwards to)."""
    fn = spec_of(entry).fn
    fns = [public_fn(entry), fn, getattr(fn, "__seethrough_impl__", None)]
    return any(f is not None and "progress" in inspect.signature(f).parameters for f in fns)


def public_fn(entry: str):
    family, _ = entry.split(":", 1)
    spec = spec_of(entry)
    return {"attribution": see.attribute, "attack": see.attack, "objective": see.visualize}.get(family, spec.fn)


def call(entry: str, case: Case, **options: Any) -> Any:
    """Run ``entry`` on ``case`` through its family's public call path; ``options`` on top of FAST."""
    family, name = entry.split(":", 1)
    spec = spec_of(entry)
    opts = {**required_values(spec, case), **fast(family, name), **options}
    if family == "attribution":
        if spec.extra.get("family") == "cam":
            opts = {**case.options, **opts}
        return see.attribute(case.model, case.x, name, **case.how, **opts)
    if family == "attack":
        return see.attack(case.model, case.x, name, **opts)
    if family == "objective":
        return see.visualize(case.model, spec.fn(**opts), n_samples=len(case.x), size=case.x.shape[-1],
                             channels=case.x.shape[1], steps=2)
    params = inspect.signature(spec.fn).parameters
    pool = {"model": case.model, "x": case.x, "target": case.y, "attribution": case.attribution, "method": "saliency",
            "random_label_model": case.other, "train": case.train, "test": (case.x, case.y),
            "features": features(case) if "features" in params else None}
    if family in ("projection", "influence"):
        pool["method"] = name  # one function serves every entry of these families
    if family == "influence":
        pool["params"] = [last_linear(case.model) + ".bias"]  # ten parameters: a Hessian in a blink
        if name == "tracin" and opts.get("checkpoints") is None:  # its one required input (the default is None)
            opts["checkpoints"] = [(case.model, 0.1)]
    kwargs = {k: v for k, v in pool.items() if k in params}
    return spec.fn(**kwargs, **opts)


def last_linear(model: nn.Module) -> str:
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1]


def features(case: Case) -> torch.Tensor:
    """The last Linear layer's outputs (lenet: its 10 logits) of 24 training digits: what a projection lays
    out (``case.feats`` if set)."""
    if case.feats is not None:
        return case.feats
    x = case.train[0] if case.train is not None else case.x
    layer = last_linear(case.model)
    with see.hooks(case.model, capture=layer) as rec, torch.no_grad():
        case.model(x.to(next(case.model.parameters()).dtype))
    return rec[layer].flatten(1).detach()


def objective_scores(entry: str, case: Case) -> torch.Tensor:
    """The objective's (N,) scores of ``case.x`` (one forward, its layers captured through seethrough.hooks)."""
    spec = spec_of(entry)
    obj = spec.fn(**required_values(spec, case))
    with see.hooks(case.model, capture=list(obj.layers)) as rec, torch.no_grad():
        out = case.model(case.x)
        acts = {n: rec[n] for n in obj.layers}
    return obj.score(acts, out)


# ----------------------------------------------------------------------------------------------- results
_SKIP_FIELDS = {"x", "options", "seed", "method", "metric", "mode", "order", "metrics", "layers", "top_layer"}


def leaves(result: Any, prefix: str = "") -> dict[str, Any]:
    """Every tensor (and list of per-sample values) in a result, by dotted path: what the checks compare."""
    if torch.is_tensor(result):
        return {prefix or "result": result}
    if dataclasses.is_dataclass(result):
        out = {}
        for f in dataclasses.fields(result):
            if f.name not in _SKIP_FIELDS:
                out.update(leaves(getattr(result, f.name), f"{prefix}{f.name}."))
        return out
    if isinstance(result, dict):
        out = {}
        for k, v in result.items():
            out.update(leaves(v, f"{prefix}{k}."))
        return out
    if isinstance(result, (list, tuple)) and result and all(torch.is_tensor(v) for v in result):
        return {f"{prefix}{i}": v for i, v in enumerate(result)}
    if isinstance(result, (list, tuple)) and result and all(isinstance(v, (str, int, float, bool)) for v in result):
        return {prefix.rstrip("."): list(result)}
    return {}
