"""Influence functions: leave-one-out agreement, solver agreement, self-influence finds flipped labels,
TracIn's definition, EK-FAC against the exact Gauss–Newton inverse, hygiene and bad input."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import jacrev, vmap

import seethrough as see
from seethrough.influence import ekfac
from seethrough.influence.grads import cross_entropy, select
from seethrough.testing import untouched
from seethrough.zoo.logreg import fit_newton, logreg, retrainer

L2 = 0.01  # a stronger penalty than the zoo model's keeps the small problem well conditioned (fast solvers)


@pytest.fixture(scope="module")
def small():
    """logreg on 300 training digits, trained to optimality, and the test digits."""
    x, y = see.zoo.digits("train")
    x, y = x[:300], y[:300]
    xt, yt = see.zoo.digits("test")
    return fit_newton(logreg(), x, y, L2), (x, y), (xt, yt)


@pytest.fixture(scope="module")
def exact(small):
    model, train, (xt, yt) = small
    with torch.no_grad():
        wrong = (model(xt).argmax(1) != yt).nonzero().flatten()
    t = wrong[:2]
    return see.influence(model, train, (xt[t], yt[t]), damping=L2, progress=False)


def test_leave_one_out_matches_prediction_on_a_misclassified_point(small, exact):
    model, (x, y), _ = small
    assert exact.test_loss[0] > torch.log(torch.tensor(2.0))  # misclassified: a large loss to explain
    v = exact.validate(6, retrainer(x, y, L2, start=model))
    assert v.pearson > 0.99 and v.spearman > 0.9
    # Same sign and size: the score is the predicted change of the loss, in loss units.
    assert torch.allclose(v.predicted, v.actual, rtol=0.25, atol=1e-3)


def test_exact_cg_and_lissa_agree(small, exact):
    model, train, _ = small
    test = exact.test
    cg = see.influence(model, train, test, method="cg", damping=L2, progress=False)
    rel = (cg.scores - exact.scores).abs().max() / exact.scores.abs().max()
    assert rel < 1e-6


def test_lissa_at_defaults_agrees_with_exact(small):
    _, (x, y), (xt, yt) = small
    x, y = x[:60], y[:60]  # LiSSA runs ~1000 Hessian-vector products: a smaller set keeps the test short
    model = fit_newton(logreg(), x, y, L2)
    ref = see.influence(model, (x, y), (xt[:2], yt[:2]), damping=L2, progress=False)
    lissa = see.influence(model, (x, y), (xt[:2], yt[:2]), method="lissa", damping=L2, progress=False)
    rel = (lissa.scores - ref.scores).abs().max() / ref.scores.abs().max()
    assert rel < 1e-3


def test_top_is_ordered_and_signed(exact):
    idx, vals = exact.top(5, "helpful", test=1)
    assert (vals[:-1] >= vals[1:]).all() and vals[0] > 0 and vals[0] == exact.scores[1].max()
    idx, vals = exact.top(5, "harmful", test=1)
    assert vals[0] < 0 and vals[0] == exact.scores[1].min()
    frame = exact.to_frame()
    assert len(frame) == exact.scores.numel() and frame.score.iloc[7] == exact.scores[0, 7].item()


def test_self_influence_finds_flipped_labels(small):
    _, (x, y), _ = small
    gen = torch.Generator().manual_seed(0)
    flip = torch.randperm(len(y), generator=gen)[: len(y) // 10]
    noisy = y.clone()
    noisy[flip] = (y[flip] + 1 + torch.randint(0, 9, (len(flip),), generator=gen)) % 10
    model = fit_newton(logreg(), x, noisy, L2)
    r = see.influence(model, (x, noisy), (x[:1], noisy[:1]), damping=L2, progress=False)
    top = r.self_influence().topk(len(y) // 10).indices
    found = torch.isin(top, flip).float().mean().item()
    assert found > 0.5  # random inspection finds 10 %


def test_tracin_one_checkpoint_is_lr_times_gradient_dot():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    x, y, xt, yt = torch.randn(7, 4), torch.randint(0, 3, (7,)), torch.randn(2, 4), torch.randint(0, 3, (2,))
    state = {k: v + 0.1 for k, v in net.state_dict().items()}  # a checkpoint that is not the current weights
    with untouched(net):
        r = see.influence(net, (x, y), (xt, yt), method="tracin", checkpoints=[(state, 0.3)], progress=False)
    ck = copy.deepcopy(net).double()
    ck.load_state_dict({k: v.double() for k, v in state.items()})

    def g(xi, yi):
        ck.zero_grad()
        F.cross_entropy(ck(xi[None].double()), yi[None]).backward()
        return torch.cat([p.grad.reshape(-1) for p in ck.parameters()])

    ref = torch.tensor([[0.3 * float(g(xt[t], yt[t]) @ g(x[i], y[i])) for i in range(7)] for t in range(2)], dtype=torch.float64)
    assert torch.allclose(r.scores, ref, rtol=1e-10, atol=1e-12)
    assert torch.allclose(r.self_influence(), torch.stack([0.3 * g(x[i], y[i]).pow(2).sum() for i in range(7)]).double())


def test_ekfac_beats_kfac_and_diagonal_against_exact_gauss_newton():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 4)).double()
    x, y = torch.randn(300, 5, dtype=torch.float64), torch.randint(0, 4, (300,))
    layers = ekfac.layer_params(net, None)
    f = select(net, ekfac.flat_names(net, layers), cross_entropy, torch.float64)
    with untouched(net):
        blocks = ekfac.fit(f, layers, x, y)
    jac = vmap(jacrev(lambda t, xi: f.output(t, xi[None])[0]), in_dims=(None, 0))(f.theta, x)   # (n, C, P)
    p = f.output(f.theta, x).softmax(1)
    h_out = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    ggn = torch.einsum("ncp,ncd,ndq->pq", jac, h_out, jac) / len(x)
    # The diagonal is exact by construction: a check of the pseudo-gradients themselves.
    assert torch.allclose(ekfac.from_blocks(blocks, [b.diag for b in blocks]), ggn.diag(), rtol=1e-9)
    v = torch.randn(8, f.size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref = torch.linalg.solve(ggn + 1e-2 * torch.eye(f.size, dtype=torch.float64), v.T).T
    err = {k: ((ekfac.solve(blocks, v, 1e-2, k) - ref).norm() / ref.norm()).item() for k in ("ekfac", "kfac", "diagonal")}
    assert err["ekfac"] < err["kfac"] < err["diagonal"], err


def test_ekfac_runs_through_influence_on_conv_layers():
    model, _ = see.zoo.load("lenet-digits")
    x, y = see.zoo.digits("train")
    with untouched(model):
        r = see.influence(model, (x[:40], y[:40]), (x[:2], y[:2]), method="ekfac", damping=1e-3,
                          params=["conv2", "fc3"], progress=False)
    # A test point that is also a training point: its score is the self-influence, a positive quadratic form,
    # and the batched scores and the self-influence pass (separate code paths) agree on it.
    self_inf = r.self_influence()
    assert (r.scores[[0, 1], [0, 1]] > 0).all()
    assert torch.allclose(r.scores[[0, 1], [0, 1]], self_inf[:2], rtol=1e-8)


def test_hygiene_also_when_raising(small):
    model, train, test = small
    with untouched(model):
        see.influence(model, train, (test[0][:1], test[1][:1]), method="cg", damping=L2, progress=False)
    with untouched(model, allow_raise=ValueError):
        see.influence(model, train, test, method="exact", damping=-1.0)


def test_bad_input(small):
    model, train, test = small
    one = (test[0][:1], test[1][:1])
    with pytest.raises(ValueError, match="damping must be"):
        see.influence(model, train, one, damping=-0.1)
    with pytest.raises(ValueError, match="empty"):
        see.influence(model, (train[0][:0], train[1][:0]), one)
    with pytest.raises(ValueError, match="not positive definite.*damping="):
        see.influence(model, train, one, loss=lambda o, t: -F.cross_entropy(o, t, reduction="none"), damping=0.0)
    with pytest.raises(ValueError, match="not differentiable"):
        see.influence(model, train, one, loss=lambda o, t: (o.argmax(1) != t).float(), damping=L2)
    with pytest.raises(ValueError, match="small models"):
        see.influence(see.zoo.load("lenet-digits")[0], train, one, damping=L2)
    r = see.influence(model, train, one, damping=L2, progress=False)
    with pytest.raises(ValueError, match="test index 3 out of range"):
        r.top(3, test=3)
    drop = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(1024, 10)).train()
    with pytest.raises(ValueError, match="dropout is active"):
        see.influence(drop, train, one)


@pytest.mark.slow
def test_lenet_with_weight_decay_leave_one_out_agreement_is_clearly_positive():
    """lenet-digits' classifier head (fc2, fc3) refitted with weight decay on 400 digits, influence by EK-FAC, and
    warm-started deterministic retraining (full-batch L-BFGS) without each of the 10 top-|score| points."""
    lenet, _ = see.zoo.load("lenet-digits")
    x, y = see.zoo.digits("train")
    x, y = x[:400], y[:400]
    xt, yt = see.zoo.digits("test")
    wd = 0.01
    with torch.no_grad():
        feats = lenet.relu3(lenet.fc1(lenet.flatten(lenet.pool2(lenet.relu2(lenet.conv2(lenet.pool1(lenet.relu1(lenet.conv1(x))))))))).detach()

    def fit(start, keep):
        head = copy.deepcopy(start)
        params = [p for n, p in head.named_parameters() if n.startswith(("fc2", "fc3"))]
        opt = torch.optim.LBFGS(params, lr=1, max_iter=300, tolerance_grad=1e-9, tolerance_change=1e-12,
                                history_size=50, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            out = head.fc3(head.relu4(head.fc2(feats[keep])))
            loss = F.cross_entropy(out, y[keep]) + 0.5 * wd * sum((p * p).sum() for p in params)
            loss.backward()
            return loss

        opt.step(closure)
        return head.eval()

    every = torch.arange(len(x))
    model = fit(copy.deepcopy(lenet).double().float(), every)
    with torch.no_grad():
        t = int((model(xt).argmax(1) != yt).nonzero()[0])
    # The head's Hessian is indefinite (ReLU between fc2 and fc3; CG refuses it at this damping), so the
    # positive semi-definite Gauss–Newton curvature of EK-FAC is used, as Grosse et al. do for deep networks.
    r = see.influence(model, (x, y), (xt[t:t + 1], yt[t:t + 1]), method="ekfac", damping=wd, params=["fc2", "fc3"],
                      progress=False)
    v = r.validate(10, lambda keep: fit(model, keep))
    assert v.pearson > 0.5 and v.spearman > 0.3, (v.pearson, v.spearman)
