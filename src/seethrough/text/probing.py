"""Probing what sentence embeddings encode, layer by layer (Conneau et al. 2018), with control tasks (Hewitt & Liang 2019).

Sentences come from one seeded generator: ``Det (Adj) Subject Verb Det (Adj) Object (PPs) .`` with
every property known by construction. Six tasks:

========================  ==============================================  =======================
task                      label                                            control type
========================  ==============================================  =======================
``length``                number of words, in 3 bins (≤ 8, 9–12, ≥ 13)     the word count
``word-content``          which of 10 object nouns the sentence holds      the object noun
``bigram-shift``          were two adjacent words swapped?                 the subject noun form
``tense``                 present or past main verb                        the verb form
``subject-number``        singular or plural subject                       the subject noun form
``object-number``         singular or plural object                        the object noun form
========================  ==============================================  =======================

A *control task* gives every type (last column) a random label drawn from the task's own label
distribution, so a probe can only solve it by memorising types; *selectivity* = task accuracy −
control accuracy. Each layer's features are the mean over real tokens of its hidden states
(embeddings + every layer), from ONE batched forward per sentence set with
``output_hidden_states=True``; the probe is scikit-learn's ``LogisticRegression`` on standardised
features, fitted on 80 % and scored on the held-out 20 %.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from ..boundary import Boundary
from ..deprecation import renamed
from ..progress import bar
from ..results import ResultProtocol, call_options
from .model import run_backbone
from .tokens import encode

TASKS = ("length", "word-content", "bigram-shift", "tense", "subject-number", "object-number")

_SUBJECTS = [("dog", "dogs"), ("teacher", "teachers"), ("farmer", "farmers"), ("child", "children"), ("artist", "artists"),
             ("doctor", "doctors"), ("student", "students"), ("pilot", "pilots"), ("baker", "bakers"), ("cat", "cats"),
             ("neighbor", "neighbors"), ("soldier", "soldiers")]
_VERBS = [("see", "sees", "saw"), ("like", "likes", "liked"), ("carry", "carries", "carried"), ("find", "finds", "found"),
          ("paint", "paints", "painted"), ("watch", "watches", "watched"), ("visit", "visits", "visited"),
          ("follow", "follows", "followed"), ("help", "helps", "helped"), ("push", "pushes", "pushed"),
          ("want", "wants", "wanted"), ("take", "takes", "took")]
_OBJECTS = [("ball", "balls"), ("book", "books"), ("box", "boxes"), ("car", "cars"), ("letter", "letters"),
            ("picture", "pictures"), ("tree", "trees"), ("bottle", "bottles"), ("chair", "chairs"), ("key", "keys")]
_DET = {False: ["the", "a", "this", "that"], True: ["the", "some", "these", "those"]}
_ADJ = ["old", "young", "small", "big", "happy", "quiet", "red", "green", "tall", "busy", "strange", "friendly"]
_PPS = ["in the park", "near the river", "after lunch", "at the station", "before dawn", "without a word",
        "on a sunny afternoon", "with great care", "for a long time", "behind the old house"]
LENGTH_BINS = (8, 12)  # ≤ 8 words, 9–12, ≥ 13


@dataclass(frozen=True)
class Sentence:
    """One generated sentence and everything known about it by construction."""

    words: tuple[str, ...]
    subject: str
    verb: str
    object: str
    object_lemma: int
    plural_subject: bool
    plural_object: bool
    past: bool

    @property
    def text(self) -> str:
        return " ".join(self.words) + "."


def generate(n: int, seed: int = 0) -> list[Sentence]:
    """``n`` random sentences of the probing grammar (seeded: the same seed gives the same sentences).

    >>> [s.text for s in generate(2, seed=0)]
    ['those happy big artists visited those quiet small pictures.', 'the busy friendly farmer sees that small key after lunch.']
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive number of sentences, got {n!r}")
    rng = random.Random(f"probing-{seed}")
    out = []
    for _ in range(n):
        ps, po, past = rng.random() < 0.5, rng.random() < 0.5, rng.random() < 0.5
        subj = rng.choice(_SUBJECTS)[ps]
        verb = rng.choice(_VERBS)
        v = verb[2] if past else verb[0 if ps else 1]
        k = rng.randrange(len(_OBJECTS))
        obj = _OBJECTS[k][po]
        words = [rng.choice(_DET[ps]), *rng.sample(_ADJ, rng.randint(0, 2)), subj, v,
                 rng.choice(_DET[po]), *rng.sample(_ADJ, rng.randint(0, 2)), obj]
        for pp in rng.sample(_PPS, rng.randint(0, 3)):
            words.extend(pp.split())
        out.append(Sentence(tuple(words), subj, v, obj, k, ps, po, past))
    return out


def _length_bin(n_words: int) -> int:
    return sum(n_words > b for b in LENGTH_BINS)


def bigram_shift(sentences: Sequence[Sentence], seed: int = 0) -> tuple[list[str], list[int]]:
    """The bigram-shift set: every other sentence (chosen at random) with two random adjacent words swapped.

    >>> texts, labels = bigram_shift(generate(4, seed=1), seed=0)
    >>> labels, texts[0]
    ([0, 1, 1, 0], 'the farmer follows this bottle.')
    """
    rng = random.Random(f"bigram-{seed}")
    flags = [i % 2 == 0 for i in range(len(sentences))]
    rng.shuffle(flags)
    texts = []
    for s, flip in zip(sentences, flags):
        words = list(s.words)
        if flip:
            i = rng.randrange(len(words) - 1)
            while words[i] == words[i + 1]:  # a swap of equal words changes nothing
                i = rng.randrange(len(words) - 1)
            words[i], words[i + 1] = words[i + 1], words[i]
        texts.append(" ".join(words) + ".")
    return texts, [int(f) for f in flags]


def task_labels(sentences: Sequence[Sentence], task: str) -> tuple[list[int], list[str]]:
    """``(labels, control types)`` of one task other than bigram shift, for the sentences.

    >>> task_labels(generate(3, seed=0), "tense")[0]
    [1, 0, 0]
    """
    if task == "length":
        return [_length_bin(len(s.words)) for s in sentences], [str(len(s.words)) for s in sentences]
    if task == "word-content":
        return [s.object_lemma for s in sentences], [_OBJECTS[s.object_lemma][0] for s in sentences]
    if task == "tense":
        return [int(s.past) for s in sentences], [s.verb for s in sentences]
    if task == "subject-number":
        return [int(s.plural_subject) for s in sentences], [s.subject for s in sentences]
    if task == "object-number":
        return [int(s.plural_object) for s in sentences], [s.object for s in sentences]
    raise ValueError(f"unknown probing task {task!r}; choose from {', '.join(TASKS)}")


def control_labels(labels: Sequence[int], types: Sequence[str], seed: int = 0) -> list[int]:
    """Hewitt & Liang's control task: one random label per type, drawn from the empirical label distribution.

    >>> control_labels([0, 1, 1, 0], ["a", "b", "a", "c"], seed=0)[0] == control_labels([0, 1, 1, 0], ["a", "b", "a", "c"], seed=0)[2]
    True
    """
    rng = random.Random(f"control-{seed}")
    pool = list(labels)
    assigned: dict[str, int] = {}
    for t in sorted(set(types)):
        assigned[t] = rng.choice(pool)
    return [assigned[t] for t in types]


def sentence_features(model: nn.Module | Boundary, tokenizer: Any, texts: Sequence[str], *,
                      batch_size: int = 128) -> torch.Tensor:
    """``(layers + 1, N, D)``: each layer's hidden states (embeddings first) mean-pooled over the real tokens.

    One batched forward with ``output_hidden_states=True`` per ``batch_size`` sentences, not one per sentence.

    >>> from seethrough.text.model import _tiny_bert
    >>> from seethrough.text.tokens import _toy_tokenizer
    >>> sentence_features(_tiny_bert(vocab_size=20), _toy_tokenizer(), ["the cat sat", "a dog ran"]).shape
    torch.Size([3, 2, 16])
    """
    from ..zoo.text import mean_pool

    out = []
    for i in range(0, len(texts), batch_size):
        t = encode(tokenizer, list(texts[i:i + batch_size]))
        hs = run_backbone(model, t.ids, t.mask, output_hidden_states=True).hidden_states
        out.append(torch.stack([mean_pool(h, t.mask) for h in hs]))
    return torch.cat(out, 1)


def probe_layers(features: torch.Tensor, labels: Sequence[int], *, seed: int = 0, test_size: float = 0.2,
                 C: float = 1.0) -> torch.Tensor:
    """Held-out accuracy ``(layers,)`` of a logistic-regression probe fitted on each layer's features.

    >>> f = torch.randn(2, 60, 4, generator=torch.Generator().manual_seed(0)); y = [i % 2 for i in range(60)]
    >>> f[1, :, 0] += 3 * torch.tensor(y)   # layer 1 encodes the label
    >>> acc = probe_layers(f, y); bool(acc[1] > 0.9 > acc[0])
    True
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(labels)
    idx = np.arange(len(y))
    counts = np.bincount(y)
    strat = y if counts[counts > 0].min() >= 2 else None
    tr, te = train_test_split(idx, test_size=test_size, random_state=seed, stratify=strat)
    accs = []
    for f in features.detach().double().cpu().numpy():
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
        clf.fit(f[tr], y[tr])
        accs.append(float((clf.predict(f[te]) == y[te]).mean()))
    return torch.tensor(accs, dtype=torch.float64)


@dataclass
class ProbeResult(ResultProtocol):
    """Per task, per layer (embeddings = 0): probe accuracy, control accuracy, and the majority-class rate."""

    accuracy: dict[str, torch.Tensor]
    control: dict[str, torch.Tensor]
    majority: dict[str, float]
    n: int
    options: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None

    def summary(self) -> str:
        best = {t: int(a.argmax()) for t, a in self.accuracy.items()}
        return f"probes on {self.n} sentences; best layer per task: " + ", ".join(
            f"{t} layer {k} ({float(self.accuracy[t][k]):.2f}, control {float(self.control[t][k]):.2f})" for t, k in best.items())

    def to_frame(self):
        """One row per task × layer (layer 0: the embeddings)."""
        import pandas as pd

        return pd.DataFrame([{"task": t, "layer": k, "accuracy": float(a[k]), "control": float(self.control[t][k]),
                              "selectivity": float(a[k] - self.control[t][k]), "majority": self.majority[t]}
                             for t, a in self.accuracy.items() for k in range(len(a))])

    @property
    def selectivity(self) -> dict[str, torch.Tensor]:
        return {t: self.accuracy[t] - self.control[t] for t in self.accuracy}


@renamed(n="n_samples")
def probe(model: nn.Module | Boundary, tokenizer: Any = None, *, n_samples: int = 300, seed: int = 0,
          tasks: Sequence[str] = TASKS, batch_size: int = 128, progress: bool = True) -> ProbeResult:
    """Probe every layer of ``model`` for the Conneau et al. tasks on ``n_samples`` generated sentences.

    Two sentence sets, two batched forwards: the generated sentences (length, word content, tense,
    numbers) and their bigram-shifted copies. ``tokenizer`` defaults to minilm-l6's. ``progress``: a bar
    over the tasks (:mod:`seethrough.progress`).

    >>> from seethrough.text.model import _tiny_bert
    >>> from seethrough.text.tokens import _toy_tokenizer
    >>> r = probe(_tiny_bert(vocab_size=20, max_position_embeddings=32), _toy_tokenizer(), n_samples=40, tasks=["tense"], progress=False)
    >>> r.accuracy["tense"].shape, r.majority["tense"] >= 0.5
    (torch.Size([3]), True)
    """
    opts = call_options(locals(), "model", "tokenizer")
    bad = [t for t in tasks if t not in TASKS]
    if bad or not tasks:
        raise ValueError(f"unknown probing task(s) {', '.join(map(repr, bad)) or '(none given)'}; choose from {', '.join(TASKS)}")
    if tokenizer is None:
        from ..zoo.text import tokenizer as _tokenizer

        tokenizer = _tokenizer()
    sentences = generate(n_samples, seed)
    acc, ctl, maj = {}, {}, {}
    plain = [t for t in tasks if t != "bigram-shift"]
    sets = []
    if plain:
        sets.append((plain, [s.text for s in sentences], None))
    if "bigram-shift" in tasks:
        texts, labels = bigram_shift(sentences, seed)
        sets.append((["bigram-shift"], texts, labels))
    tasks_bar = bar(total=len(tasks), desc="probing tasks", progress=progress)
    for names, texts, shift_labels in sets:
        feats = sentence_features(model, tokenizer, texts, batch_size=batch_size)
        for task in names:
            if task == "bigram-shift":
                labels, types = shift_labels, [s.subject for s in sentences]
            else:
                labels, types = task_labels(sentences, task)
            acc[task] = probe_layers(feats, labels, seed=seed)
            ctl[task] = probe_layers(feats, control_labels(labels, types, seed), seed=seed)
            maj[task] = max(labels.count(c) for c in set(labels)) / len(labels)
            tasks_bar.update(1)
    tasks_bar.close()
    return ProbeResult({t: acc[t] for t in tasks}, {t: ctl[t] for t in tasks}, {t: maj[t] for t in tasks}, n_samples, opts, seed)
