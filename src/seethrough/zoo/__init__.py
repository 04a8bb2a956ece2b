"""Bundled models, photos, labels and preprocessing; everything works offline.

>>> import seethrough as see
>>> model, prep = see.zoo.load("efficientnet-lite0")
>>> x = prep(see.zoo.image("chelsea"))
>>> see.zoo.labels("efficientnet-lite0")[model(x).argmax().item()]
'Egyptian cat'
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Callable

from torch import nn

from .images import image, images, read_image, to_rgb
from .normalize import IMAGENET_MEAN, IMAGENET_STD, Normalize, with_normalization
from .preprocess import Preprocess, points, to_image
from .logreg import LOGREG_L2
from .samples import imagenet_samples
from .tabular import Standardize, breast_cancer, mlp_breast_cancer
from .tabular import rows as _tabular_rows

__all__ = [
    "load", "models", "labels", "tokenizer", "similarity", "image", "images", "read_image", "to_rgb", "digits", "toy_2d", "LOGREG_L2", "imagenet_samples",
    "breast_cancer", "Standardize",
    "to_image", "with_normalization", "Normalize", "Preprocess", "IMAGENET_MEAN", "IMAGENET_STD",
]


@dataclass(frozen=True)
class _Entry:
    build: Callable[[], nn.Module]
    preprocess: Callable
    labels: Callable[[], list[str]]
    description: str


def _efficientnet() -> nn.Module:
    from .efficientnet import efficientnet_lite0

    return efficientnet_lite0(pretrained=True)


def _lenet() -> nn.Module:
    from .lenet import lenet_digits

    return lenet_digits()


def _logreg() -> nn.Module:
    from .logreg import logreg_digits

    return logreg_digits()


def _minilm() -> nn.Module:
    from .text import sentence_encoder

    return sentence_encoder()


def _minilm_topics() -> nn.Module:
    from .text import topic_classifier

    return topic_classifier()


def _tokenize() -> Callable:
    from .text import Tokenize

    return Tokenize()


def _mlp() -> nn.Module:
    from .toy2d import mlp_2d, train_mlp_2d

    return train_mlp_2d(mlp_2d(seed=0)).eval()


@lru_cache(maxsize=1)
def _imagenet_labels() -> tuple[str, ...]:
    text = resources.files("seethrough.zoo").joinpath("data/imagenet_classes.txt").read_text(encoding="utf-8")
    return tuple(line for line in text.splitlines() if line)


_ZOO: dict[str, _Entry] = {
    "efficientnet-lite0": _Entry(
        _efficientnet,
        Preprocess(resize=256, crop=224, min_side=32),
        lambda: list(_imagenet_labels()),
        "EfficientNet-Lite0, ImageNet weights (1000 classes), input 3×224×224",
    ),
    "lenet-digits": _Entry(
        _lenet,
        Preprocess(resize=32, crop=32, grayscale=True, center_crop=False, min_side=8, invert_light_background=True),
        lambda: [str(i) for i in range(10)],
        "LeNet-style CNN trained on scikit-learn's digits (10 classes), input 1×32×32",
    ),
    "logreg-digits": _Entry(
        _logreg,
        Preprocess(resize=32, crop=32, grayscale=True, center_crop=False, min_side=8, invert_light_background=True),
        lambda: [str(i) for i in range(10)],
        "Multinomial logistic regression with L2 (LOGREG_L2) on the digits pooled to 8×8, trained to optimality",
    ),
    "mlp-2d": _Entry(
        _mlp,
        points,
        lambda: ["class 0", "class 1"],
        "Linear(2, 20) → ReLU → Linear(20, 2) trained on the 2-D toy spirals",
    ),
    "mlp-breast-cancer": _Entry(
        mlp_breast_cancer,
        _tabular_rows,
        lambda: ["malignant", "benign"],
        "Standardize → 30-32-16-2 ReLU MLP on scikit-learn's breast_cancer rows (raw feature units, 2 classes)",
    ),
    # text models (the [text] extra); their preprocessing tokenises sentences (docs/text.md)
    "minilm-l6": _Entry(
        _minilm,
        _tokenize,
        lambda: [],
        "all-MiniLM-L6-v2 sentence encoder (6 layers × 12 heads), input token ids + attention mask, output 384-d unit vectors",
    ),
    "minilm-l6-topics": _Entry(
        _minilm_topics,
        _tokenize,
        lambda: ["sports", "food", "weather", "technology"],
        "MiniLM-L6 + a linear topic head trained on the generated topic sentences (4 classes)",
    ),
}
_LAZY_PREPROCESS = {"minilm-l6", "minilm-l6-topics"}  # the tokenizer is built on first use, not at import


def models() -> dict[str, str]:
    """Zoo model names with a one-line description.

    >>> sorted(models())
    ['efficientnet-lite0', 'lenet-digits', 'logreg-digits', 'minilm-l6', 'minilm-l6-topics', 'mlp-2d', 'mlp-breast-cancer']
    """
    return {k: v.description for k, v in _ZOO.items()}


def _entry(name: str) -> _Entry:
    if name not in _ZOO:
        close = difflib.get_close_matches(str(name), list(_ZOO), n=3, cutoff=0.4)
        raise ValueError(
            f"unknown zoo model {name!r}; available: {', '.join(_ZOO)}" + (f" (did you mean {close[0]!r}?)" if close else "")
        )
    return _ZOO[name]


def load(name: str, *, labels: str = "true", planted: str | None = None) -> tuple[nn.Module, Callable]:
    """Load a bundled model in eval mode, with its preprocessing callable.

    ``labels="permuted"`` gives the twin trained on permuted labels (sanity checks);
    ``planted="stripes:7"`` the twin trained with a concept planted in one class (TCAV).

    >>> model, prep = load("lenet-digits")
    >>> prep(image("coffee")).shape
    torch.Size([1, 1, 32, 32])
    """
    entry = _entry(name)
    if labels not in ("true", "permuted"):
        raise ValueError(f"labels must be 'true' or 'permuted', got {labels!r}")
    if labels == "permuted" and planted is not None:
        raise ValueError("choose one twin: labels='permuted' or planted=..., not both")
    if labels == "permuted":
        from .twins import permuted_twin

        model = permuted_twin(name)
    elif planted is not None:
        from .planted import planted_twin

        model = planted_twin(name, planted)
    else:
        model = entry.build()
    model.eval()
    return model, _preprocess(name, entry)


def _preprocess(name: str, entry: _Entry) -> Callable:
    return entry.preprocess() if name in _LAZY_PREPROCESS else entry.preprocess


def preprocess(name: str) -> Callable:
    """The preprocessing callable of a zoo model, without loading the weights.

    >>> preprocess("efficientnet-lite0")(image("chelsea")).shape
    torch.Size([1, 3, 224, 224])
    """
    return _preprocess(name, _entry(name))


def tokenizer(name: str = "minilm-l6"):
    """The Hugging Face tokenizer of a zoo text model.

    >>> tokenizer("minilm-l6").tokenize("playing cards")
    ['playing', 'cards']
    """
    if name not in _LAZY_PREPROCESS:
        raise ValueError(f"{name!r} is not a text model; the text models are: {', '.join(sorted(_LAZY_PREPROCESS))}")
    from .text import tokenizer as _tokenizer

    return _tokenizer()


def similarity(reference: str):
    """The minilm-l6 similarity model: ``model(ids, mask) -> (N, 1)``, each sentence's cosine to ``reference``.

    >>> sim = similarity("A man is playing a guitar.")
    >>> t = preprocess("minilm-l6")(["Someone plays the guitar.", "The stock market fell."])
    >>> s = sim(t.ids, t.mask)[:, 0]
    >>> bool(s[0] > 0.6 > s[1])
    True
    """
    from .text import check_text, similarity as _similarity

    return _similarity(check_text(reference, name="reference")[0])


def labels(name: str) -> list[str]:
    """Class names of a zoo model (ImageNet's 1000 for efficientnet-lite0).

    >>> labels("efficientnet-lite0")[285]
    'Egyptian cat'
    """
    return _entry(name).labels()


def digits(split: str = "train"):
    """scikit-learn's digits at 32×32: ``(images (N, 1, 32, 32) in [0, 1], labels int64)``.

    >>> x, y = digits("test")
    >>> x.shape[1:], y.dtype
    (torch.Size([1, 32, 32]), torch.int64)
    """
    from .lenet import digits as _digits

    return _digits(split)


def toy_2d(n: int = 400, seed: int = 0, noise: float = 0.1):
    """The seeded 2-D two-class toy data of the hyperplane demo: ``(X (n, 2), y (n,))``.

    >>> X, y = toy_2d(100)
    >>> tuple(X.shape), sorted(y.unique().tolist())
    ((100, 2), [0, 1])
    """
    from .toy2d import toy_2d as _toy

    return _toy(n=n, seed=seed, noise=noise)
