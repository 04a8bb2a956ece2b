"""One command, one table: TCAV, influence functions against the peers (time, agreement, leave-one-out).

    python benchmarks/bench_concepts.py           # the full table (minutes on 2 cores)
    python benchmarks/bench_concepts.py --quick   # small sizes, to check that everything runs

TCAV: seethrough vs Captum ``TCAV`` with the same R random sets on lenet-digits (Captum leaves the
t-test to its tutorial; it is added here with scipy). Influence on logreg-digits for a
misclassified test digit: seethrough exact / cg / lissa / ekfac / tracin vs Captum's
``NaiveInfluenceFunction`` and ``TracInCP``, and Kronfluence's EK-FAC when installed
(``pip install --no-deps kronfluence``: it declares torchvision); top-10 agreement with seethrough's exact scores, and for every
method the Pearson correlation of its scores with leave-one-out retraining over the k top points.
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings

import torch

import seethrough as see
from seethrough.zoo.logreg import retrainer

warnings.filterwarnings("ignore")


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def topk_overlap(a: torch.Tensor, b: torch.Tensor, k: int = 10) -> float:
    return len(set(a.abs().topk(k).indices.tolist()) & set(b.abs().topk(k).indices.tolist())) / k


def loo_pearson(scores: torch.Tensor, actual: dict, k: int) -> float:
    idx = scores.abs().topk(k).indices.tolist()
    p = torch.tensor([float(scores[i]) for i in idx], dtype=torch.float64)
    a = torch.tensor([actual[i] for i in idx], dtype=torch.float64)
    p, a = p - p.mean(), a - a.mean()
    return float(p @ a / (p.norm() * a.norm()))


def bench_tcav(quick: bool) -> list[list]:
    from scipy.stats import ttest_ind

    model, _ = see.zoo.load("lenet-digits", planted="stripes:7")
    x, _ = see.zoo.digits("train")
    xt, yt = see.zoo.digits("test")
    n, r = (40, 3) if quick else (100, 10)
    concept = see.concepts.stamp(x[:n], seed=1)
    sevens = xt[yt == 7]
    ours, t_ours = timed(lambda: see.concepts.tcav(model, concept, sevens, "pool2", 7, random_sets=r, random_x=x[200:]))
    rows = [["TCAV", "seethrough", f"{t_ours:.1f}", f"{ours['pool2'].score:.2f}", f"p={ours['pool2'].pvalue:.2g}", ""]]
    try:
        from captum.concept import TCAV, Concept

        rand = see.concepts.random_sets(x[200:], r + 1, n, seed=0)

        def concept_of(i, name, data):
            return Concept(i, name, torch.utils.data.DataLoader(data, batch_size=len(data)))

        def run():
            with tempfile.TemporaryDirectory() as tmp:
                c = concept_of(0, "stripes", concept)
                rs = [concept_of(i + 1, f"random{i}", s) for i, s in enumerate(rand)]
                tc = TCAV(model, ["pool2"], save_path=tmp)
                cs = tc.interpret(sevens, [[c, rs[i]] for i in range(r)], target=7)
                rr = tc.interpret(sevens, [[rs[i + 1], rs[i]] for i in range(r)], target=7)
                a = [v["pool2"]["sign_count"][0].item() for v in cs.values()]
                b = [v["pool2"]["sign_count"][0].item() for v in rr.values()]
                return a, b

        (a, b), t = timed(run)
        rows.append(["TCAV", "captum TCAV (+ scipy t-test)", f"{t:.1f}", f"{sum(a) / len(a):.2f}",
                     f"p={min(1.0, ttest_ind(a, b).pvalue):.2g}", f"{t / t_ours:.1f}× ours"])
    except Exception as e:  # a peer failing is a row, not a crash
        rows.append(["TCAV", "captum TCAV", "-", "-", "-", f"failed: {type(e).__name__}: {str(e)[:60]}"])
    return rows


def kronfluence_scores(model, train, test, damping: float) -> torch.Tensor:
    """Kronfluence's EK-FAC pairwise scores of every training point for the one test point
    (its up-weighting convention: positive = training on the point lowers the test loss)."""
    import copy
    import logging

    from kronfluence.analyzer import Analyzer, prepare_model
    from kronfluence.arguments import FactorArguments, ScoreArguments
    from kronfluence.task import Task

    class Classification(Task):
        def compute_train_loss(self, batch, model, sample=False):
            xb, yb = batch
            logits = model(xb)
            if sample:
                with torch.no_grad():
                    yb = torch.multinomial(logits.softmax(1), 1).flatten()
            return torch.nn.functional.cross_entropy(logits, yb, reduction="sum")

        def compute_measurement(self, batch, model):
            xb, yb = batch
            return torch.nn.functional.cross_entropy(model(xb), yb, reduction="sum")

    net = prepare_model(copy.deepcopy(model).float(), Classification())
    with tempfile.TemporaryDirectory() as tmp:
        an = Analyzer("bench", net, Classification(), cpu=True, disable_tqdm=True, output_dir=tmp,
                      log_level=logging.ERROR)
        an.fit_all_factors("f", torch.utils.data.TensorDataset(*train), per_device_batch_size=256,
                           factor_args=FactorArguments(strategy="ekfac"))
        an.compute_pairwise_scores("s", "f", torch.utils.data.TensorDataset(*test),
                                   torch.utils.data.TensorDataset(*train), per_device_query_batch_size=1,
                                   per_device_train_batch_size=256,
                                   score_args=ScoreArguments(damping_factor=damping))
        return an.load_pairwise_scores("s")["all_modules"][0]


def bench_influence(quick: bool) -> list[list]:
    model, _ = see.zoo.load("logreg-digits")
    x, y = see.zoo.digits("train")
    xt, yt = see.zoo.digits("test")
    with torch.no_grad():
        t = int((model(xt).argmax(1) != yt).nonzero()[0])
    test = (xt[t:t + 1], yt[t:t + 1])
    lam = see.zoo.LOGREG_L2
    k = 5 if quick else 20
    runs = {}
    for method in (["exact", "ekfac"] if quick else ["exact", "cg", "lissa", "ekfac"]):
        runs[method] = timed(lambda m=method: see.influence(model, (x, y), test, method=m,
                                                            damping=lam, progress=False).scores[0])
    runs["tracin (1 checkpoint)"] = timed(lambda: see.influence(model, (x, y), test, method="tracin",
                                                                checkpoints=[(model, 1.0)], progress=False).scores[0])
    exact = runs["exact"][0]
    # Leave-one-out for the union of every method's top-k points, retrained to optimality.
    retrain = retrainer(x, y)
    every = torch.arange(len(x))

    def loss_of(m):
        with torch.no_grad():
            return float(torch.nn.functional.cross_entropy(m(test[0]).double(), test[1]))

    peer = {}
    try:
        from captum.influence import NaiveInfluenceFunction, TracInCP

        ds = torch.utils.data.TensorDataset(x, y)
        with tempfile.TemporaryDirectory() as tmp:
            path = f"{tmp}/ck.pt"
            torch.save(model.state_dict(), path)

            def naive():
                f = NaiveInfluenceFunction(model, ds, path, loss_fn=torch.nn.CrossEntropyLoss(reduction="none"),
                                           batch_size=256, hessian_reg=lam, projection_dim=None)
                return f.influence(test)[0]

            def tracin():
                f = TracInCP(model, ds, [path], loss_fn=torch.nn.CrossEntropyLoss(reduction="none"), batch_size=256)
                return f.influence(test)[0]

            for name, fn in (("captum NaiveInfluenceFunction", naive), ("captum TracInCP", tracin)):
                try:
                    peer[name] = timed(fn)
                except Exception as e:
                    peer[name] = (None, f"failed: {type(e).__name__}: {str(e)[:60]}")
    except ImportError as e:
        peer["captum"] = (None, f"not installed: {e}")
    try:
        peer["kronfluence EK-FAC"] = timed(lambda: kronfluence_scores(model, (x, y), test, lam))
    except ImportError:
        peer["kronfluence EK-FAC"] = (None, "not installed (pip install --no-deps kronfluence)")
    except Exception as e:  # a peer failing is a row, not a crash
        peer["kronfluence EK-FAC"] = (None, f"failed: {type(e).__name__}: {str(e)[:60]}")
    points = set()
    for s, _ in list(runs.values()) + [v for v in peer.values() if v[0] is not None]:
        points |= set(s.double().abs().topk(k).indices.tolist())
    base = loss_of(retrain(every))
    actual = {i: loss_of(retrain(every[every != i])) - base for i in sorted(points)}
    rows = []
    t_exact = runs["exact"][1]
    for name, (s, sec) in runs.items():
        rows.append(["influence", f"seethrough {name}", f"{sec:.1f}", f"top-10 ∩ exact {topk_overlap(s, exact):.0%}",
                     f"LOO r={loo_pearson(s, actual, k):.3f}", f"{sec / t_exact:.1f}× exact"])
    for name, (s, sec) in peer.items():
        if s is None:
            rows.append(["influence", name, "-", "-", "-", sec])
            continue
        s = s.double().flatten()
        sign = 1.0 if float(s @ exact) >= 0 else -1.0  # peers use the up-weighting sign convention
        rows.append(["influence", name, f"{sec:.1f}", f"top-10 ∩ exact {topk_overlap(s, exact):.0%}",
                     f"LOO r={loo_pearson(sign * s, actual, k):.3f}", f"{sec / t_exact:.1f}× exact"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    rows = bench_tcav(args.quick) + bench_influence(args.quick)
    head = ["task", "method", "seconds", "result", "agreement", "note"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")


if __name__ == "__main__":
    main()
