"""Gender bias in word embeddings: the gender direction, projections, WEAT, and hard debiasing (neutralise).

* :func:`word_vectors` — rows of the model's input embedding matrix for a word list. A word that is
  not ONE token of the vocabulary (it splits into word pieces, or is unknown) is refused in one line
  naming its pieces; ``pieces="mean"`` averages the pieces' rows instead (the rule, when asked for).
* :func:`gender_direction` — ``"difference"``: he − she, normalised; ``"pca"``: the first principal
  component of the definitional pairs, each pair centred on its mean (Bolukbasi et al. 2016);
  oriented so that the male word of the first pair projects positively.
* :func:`weat` — the Word Embedding Association Test (Caliskan et al. 2017): with
  ``s(w) = mean_a cos(w, a) − mean_b cos(w, b)``, the effect size
  ``(mean_X s − mean_Y s) / std_{X∪Y} s`` (sample std, ddof = 1) and the one-sided permutation
  p-value ``P[S(X_i, Y_i) ≥ S(X, Y)]`` over equal-size re-partitions of ``X ∪ Y`` (every partition
  when there are at most ``n_permutations``, else that many seeded random ones, p = (1 + k)/(1 + n)).
* :func:`neutralise` — hard debiasing's neutralise step: remove each vector's component along the
  direction, then re-normalise to unit length.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from ..boundary import Boundary
from ..results import ResultProtocol
from .model import module_of

DEFINITIONAL_PAIRS = (("he", "she"), ("his", "her"), ("man", "woman"), ("john", "mary"), ("himself", "herself"),
                      ("son", "daughter"), ("father", "mother"), ("guy", "gal"), ("boy", "girl"), ("male", "female"))
OCCUPATIONS = ("nurse", "receptionist", "librarian", "secretary", "dancer", "maid", "nanny", "teacher", "chef", "lawyer",
               "doctor", "scientist", "manager", "banker", "architect", "surgeon", "programmer", "engineer", "pilot",
               "mechanic", "carpenter", "captain", "boss", "warrior")
# Caliskan et al.'s WEAT 6: career vs family words, male vs female names
WEAT_CAREER = ("executive", "management", "professional", "corporation", "salary", "office", "business", "career")
WEAT_FAMILY = ("home", "parents", "children", "family", "cousins", "marriage", "wedding", "relatives")
WEAT_MALE_NAMES = ("john", "paul", "mike", "kevin", "steve", "greg", "jeff", "bill")
WEAT_FEMALE_NAMES = ("amy", "joan", "lisa", "sarah", "diana", "kate", "ann", "donna")
# Caliskan et al.'s WEAT 8: science vs arts words, male vs female attribute words
WEAT_SCIENCE = ("science", "technology", "physics", "chemistry", "einstein", "nasa", "experiment", "astronomy")
WEAT_ARTS = ("poetry", "art", "dance", "literature", "novel", "symphony", "drama", "sculpture")
WEAT_MALE = ("brother", "father", "uncle", "grandfather", "son", "he", "his", "him")
WEAT_FEMALE = ("sister", "mother", "aunt", "grandmother", "daughter", "she", "hers", "her")


def embedding_matrix(model: nn.Module | Boundary) -> torch.Tensor:
    """The input embedding matrix ``(vocabulary, D)`` of a text model (detached).

    >>> embedding_matrix(torch.nn.Embedding(7, 3)).shape
    torch.Size([7, 3])
    """
    m = module_of(model)
    get = getattr(m, "get_input_embeddings", None)
    emb = get() if callable(get) else None
    if not isinstance(emb, nn.Embedding):
        found = [sub for sub in m.modules() if isinstance(sub, nn.Embedding)]
        if not found:
            raise ValueError("the model has no input embedding (nn.Embedding): word vectors need a text model")
        emb = found[0]
    return emb.weight.detach()


def word_ids(tokenizer: Any, words: Sequence[str], *, pieces: str = "error", what: str = "word list") -> list[list[int]]:
    """The token ids of each word; a word of several pieces (or unknown) is one ``ValueError`` unless ``pieces="mean"``.

    >>> from seethrough.text.tokens import _toy_tokenizer
    >>> word_ids(_toy_tokenizer(), ["cat", "dog"])
    [[7], [8]]
    >>> word_ids(_toy_tokenizer(), ["cat", "playing"])
    Traceback (most recent call last):
    ...
    ValueError: 'playing' in the word list is not one token of the vocabulary (it splits into 'play', '##ing'); drop it, or average its pieces (pieces='mean', --pieces mean)
    """
    if pieces not in ("error", "mean"):
        raise ValueError(f"pieces must be 'error' (refuse a word of several pieces) or 'mean' (average them), got {pieces!r}")
    if isinstance(words, str) or not words:
        raise ValueError(f"the {what} must be a non-empty list of words, got {words!r}")
    out = []
    unk = getattr(tokenizer, "unk_token", None)
    for w in words:
        if not isinstance(w, str) or not w.strip():
            raise ValueError(f"the {what} holds an empty or non-text entry {w!r}")
        toks = tokenizer.tokenize(w)
        if not toks or (unk is not None and unk in toks):
            raise ValueError(f"{w!r} in the {what} is not in the vocabulary (it reads as {toks}); drop it from the list")
        if len(toks) > 1 and pieces == "error":
            raise ValueError(f"{w!r} in the {what} is not one token of the vocabulary (it splits into "
                             f"{', '.join(map(repr, toks))}); drop it, or average its pieces (pieces='mean', --pieces mean)")
        out.append(tokenizer.convert_tokens_to_ids(toks))
    return out


def word_vectors(model: nn.Module | Boundary, tokenizer: Any, words: Sequence[str], *, pieces: str = "error",
                 what: str = "word list") -> torch.Tensor:
    """``(len(words), D)``: the input-embedding rows of the words (the mean of the rows of a word's pieces
    with ``pieces="mean"``).

    >>> from seethrough.text.tokens import _toy_tokenizer
    >>> emb = torch.nn.Embedding(20, 2)
    >>> torch.equal(word_vectors(emb, _toy_tokenizer(), ["cat", "playing"], pieces="mean")[1], emb.weight[11:13].mean(0).detach())
    True
    """
    table = embedding_matrix(model)
    return torch.stack([table[ids].mean(0) for ids in word_ids(tokenizer, words, pieces=pieces, what=what)])


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def gender_direction(pairs: torch.Tensor, method: str = "pca") -> tuple[torch.Tensor, float]:
    """``(unit direction (D,), share of variance it explains)`` from ``pairs (P, 2, D)`` (male, female) vectors.

    ``"difference"`` uses the first pair alone (he − she; the share is then 1); ``"pca"`` the first
    principal component of the pair-centred vectors, signed so the first male word projects positively.

    >>> p = torch.tensor([[[1.0, 0.0], [-1.0, 0.0]], [[2.0, 0.1], [0.0, -0.1]]])
    >>> d, share = gender_direction(p)
    >>> [round(v, 3) for v in d.tolist()], round(share, 3)   # eigenvalues of MᵀM: 4.01 and 0.01
    ([0.999, 0.05], 0.998)
    """
    if pairs.dim() != 3 or pairs.shape[1] != 2 or pairs.shape[0] < 1:
        raise ValueError(f"pairs must be (P, 2, D) vectors of (male, female) words, got {tuple(pairs.shape)}")
    pairs = pairs.double()
    if method == "difference":
        return _unit(pairs[0, 0] - pairs[0, 1]), 1.0
    if method != "pca":
        raise ValueError(f"method must be 'pca' or 'difference', got {method!r}")
    centred = (pairs - pairs.mean(1, keepdim=True)).reshape(-1, pairs.shape[-1])
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    d = vh[0]
    if float((pairs[0, 0] - pairs[0, 1]) @ d) < 0:
        d = -d
    return d, float(s[0] ** 2 / (s ** 2).sum())


def projections(vectors: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """Cosine of each vector with the direction, ``(N,)``.

    >>> projections(torch.tensor([[1.0, 1.0], [0.0, 2.0]]), torch.tensor([1.0, 0.0])).tolist()
    [0.7071067690849304, 0.0]
    """
    return _unit(vectors) @ _unit(direction.to(vectors.dtype))


def neutralise(vectors: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """Hard debiasing's neutralise: ``v − (v·g) g`` for unit ``g``, re-normalised to unit length.

    >>> neutralise(torch.tensor([[3.0, 4.0]]), torch.tensor([1.0, 0.0])).tolist()
    [[0.0, 1.0]]
    """
    g = _unit(direction.to(vectors.dtype))
    return _unit(vectors - (vectors @ g).unsqueeze(-1) * g)


@dataclass
class WeatResult(ResultProtocol):
    """WEAT's effect size, its one-sided permutation p-value, the test statistic and how p was computed."""

    effect_size: float
    p_value: float
    statistic: float
    n_partitions: int
    exact: bool
    options: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None  # the permutations' seed (unused when exact)

    def summary(self) -> str:
        how = f"exact over {self.n_partitions} partitions" if self.exact else f"{self.n_partitions} random permutations"
        return f"WEAT effect size {self.effect_size:.3f}, one-sided p = {self.p_value:.4f} ({how})"


def association(w: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``s(w, A, B) = mean_a cos(w, a) − mean_b cos(w, b)`` for each row of ``w``.

    >>> association(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])).tolist()
    [1.0, 0.0]
    """
    w, a, b = _unit(w.double()), _unit(a.double()), _unit(b.double())
    return (w @ a.T).mean(1) - (w @ b.T).mean(1)


def weat(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *, n_permutations: int = 20000,
         seed: int = 0) -> WeatResult:
    """The WEAT effect size and permutation p-value of targets ``x``, ``y`` against attributes ``a``, ``b``.

    >>> e = torch.eye(2)
    >>> r = weat(e[[0, 0]], e[[1, 1]], e[[0]], e[[1]])
    >>> round(r.effect_size, 4), round(r.p_value, 4), r.exact   # s = ±1: 2 / sqrt(4/3); 1 of 6 partitions
    (1.7321, 0.1667, True)
    """
    for name, v in (("X", x), ("Y", y), ("A", a), ("B", b)):
        if not isinstance(v, torch.Tensor) or v.dim() != 2 or len(v) == 0:
            raise ValueError(f"{name} must be (n, D) word vectors with at least one word")
    if len(x) + len(y) < 3:
        raise ValueError("WEAT needs at least 3 target words in X and Y together (a standard deviation over them)")
    s = association(torch.cat([x, y]), a, b)
    nx, total = len(x), len(x) + len(y)
    stat = float(s[:nx].sum() - s[nx:].sum())
    sd = float(s.std(unbiased=True))
    effect = float(s[:nx].mean() - s[nx:].mean()) / sd if sd > 0 else float("nan")
    whole = float(s.sum())
    count = math.comb(total, nx)
    tol = 1e-12 * max(1.0, abs(stat))
    if count <= n_permutations:  # every partition, vectorised
        idx = torch.tensor(list(itertools.combinations(range(total), nx)), dtype=torch.long)
        hits = int((2 * s[idx].sum(1) - whole >= stat - tol).sum())
        return WeatResult(effect, hits / count, stat, count, True, {"n_permutations": n_permutations}, seed)
    g = torch.Generator().manual_seed(seed)
    perms = torch.stack([torch.randperm(total, generator=g)[:nx] for _ in range(n_permutations)])
    sums = 2 * s[perms].sum(1) - whole
    hits = int((sums >= stat - tol).sum())
    return WeatResult(effect, (1 + hits) / (1 + n_permutations), stat, n_permutations, False,
                      {"n_permutations": n_permutations}, seed)



def contextual_vectors(model: nn.Module | Boundary, tokenizer: Any, words: Sequence[str],
                       template: str = "this is about the {}.") -> torch.Tensor:
    """``(layers + 1, len(words), D)``: each word's hidden state in ``template`` at every layer (embeddings
    first), the mean over its pieces; all sentences in one batched forward.

    The word's pieces are the tokens whose character offsets fall inside the slot ``{}``.

    >>> from seethrough.text.model import _tiny_bert
    >>> from seethrough.text.tokens import _toy_tokenizer
    >>> contextual_vectors(_tiny_bert(vocab_size=20), _toy_tokenizer(), ["cat", "dog"], "the {} sat").shape
    torch.Size([3, 2, 16])
    """
    from .model import run_backbone

    if not isinstance(template, str) or template.count("{}") != 1:
        raise ValueError(f"template must hold '{{}}' once, where the word goes, got {template!r}")
    word_ids(tokenizer, words, pieces="mean")  # an unknown word: one line before any forward
    start = template.index("{}")
    enc = tokenizer([template.format(w) for w in words], padding=True, return_offsets_mapping=True, return_tensors="pt")
    hs = torch.stack(tuple(run_backbone(model, enc["input_ids"], enc["attention_mask"],
                                        output_hidden_states=True).hidden_states))
    rows = []
    for i, w in enumerate(words):
        off = enc["offset_mapping"][i]
        inside = (off[:, 0] >= start) & (off[:, 1] <= start + len(w)) & (off[:, 1] > off[:, 0])
        rows.append(hs[:, i, inside.nonzero().flatten()].mean(1))
    return torch.stack(rows, 1)
