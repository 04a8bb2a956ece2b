"""Layers as embeddings: collection, projection, separation scores, bad input, hygiene."""
import numpy as np
import pytest
import torch

import seethrough as see
from seethrough.embed import collect, knn_accuracy, max_perplexity, neighbor_purity, pca_reduce, project
from seethrough.testing import untouched


@pytest.fixture(scope="module")
def digits():
    x, y = see.zoo.digits("test")  # before load(): see the zoo rename note in the report
    model, _ = see.zoo.load("lenet-digits")
    return model, x, y


def _blobs(n_per=20, dims=20, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = 10 * torch.randn(classes, dims, generator=g)
    x = torch.cat([c + torch.randn(n_per, dims, generator=g) for c in centres])
    return x, torch.arange(classes).repeat_interleave(n_per)


# ---- collection ---------------------------------------------------------------------------

def test_collect_equals_a_manual_forward_and_is_batch_invariant(digits):
    model, x, _ = digits
    x = x[:37]
    with torch.no_grad():
        h, manual = x, {"input": x.flatten(1)}
        for name, child in model.named_children():
            h = child(h)
            manual[name] = h.flatten(1)
        manual["output"] = model(x)
    names = ["input", "conv1", "pool2", "relu3", "fc3", "output"]
    for bs in (5, 37, "auto"):
        got = collect(model, x, names, batch_size=bs, progress=False)
        assert list(got) == names
        for n in names:
            torch.testing.assert_close(got[n], manual[n], rtol=1e-4, atol=1e-5)  # batch size changes BLAS summation order


def test_collect_keeps_the_last_call_of_a_shared_module_and_survives_inplace_relu():
    torch.manual_seed(0)
    lin, act = torch.nn.Linear(3, 3), torch.nn.ReLU(inplace=True)

    class Twice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.act = lin, act

        def forward(self, x):
            return self.act(self.lin(self.act(self.lin(x))))

    net, x = Twice(), torch.randn(6, 3)
    with torch.no_grad():
        first = torch.relu(lin(x))
        second = lin(first)
    got = collect(net, x, ["lin", "act"], batch_size=4, progress=False)
    torch.testing.assert_close(got["lin"], second)
    torch.testing.assert_close(got["act"], torch.relu(second))


def test_default_layers_are_input_and_every_top_level_child(digits):
    model, x, _ = digits
    e = see.embed(model, x[:30], method="pca", progress=False)
    assert e.layers == ["input", *(n for n, _ in model.named_children())]


# ---- projection ---------------------------------------------------------------------------

def test_pca_matches_a_float64_svd_reference():
    x, _ = _blobs()
    got = project(x, "pca").double()
    c = x.double() - x.double().mean(0)
    u, s, _ = torch.linalg.svd(c, full_matrices=False)
    ref = u[:, :2] * s[:2]
    for j in range(2):  # a principal axis is defined up to its sign
        sign = torch.sign((got[:, j] * ref[:, j]).sum())
        torch.testing.assert_close(got[:, j], sign * ref[:, j], rtol=1e-4, atol=1e-4)


def test_pca_reduce_keeps_the_pairwise_geometry_of_a_low_rank_cloud():
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(40, 4, generator=g) @ torch.randn(4, 30, generator=g)).double()  # rank 4 in 30 dims
    r = pca_reduce(x, 4)
    assert r.shape == (40, 4)
    torch.testing.assert_close(torch.cdist(r, r), torch.cdist(x, x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", ["opentsne", "sklearn"])
def test_tsne_is_seeded_and_separates_well_separated_blobs(backend):
    x, y = _blobs()
    a = project(x, "tsne", seed=3, perplexity=10, backend=backend)
    assert torch.equal(a, project(x, "tsne", seed=3, perplexity=10, backend=backend))
    # with a PCA start the seed hardly matters (scikit-learn ignores it); with a random start it decides the layout
    r = project(x, "tsne", seed=3, perplexity=10, backend=backend, init="random")
    assert not torch.allclose(r, project(x, "tsne", seed=4, perplexity=10, backend=backend, init="random"))
    assert knn_accuracy(a, y, k=3) == 1.0
    assert a.dtype == x.dtype


def test_umap_is_seeded_and_separates_blobs():
    import umap  # noqa: F401  (a test dependency; the optional extra for users)
    x, y = _blobs(n_per=15)
    a = project(x, "umap", seed=0, n_neighbors=10)
    assert torch.equal(a, project(x, "umap", seed=0, n_neighbors=10))
    assert knn_accuracy(a, y, k=3) == 1.0


def test_coordinates_come_back_in_the_callers_dtype():
    x, _ = _blobs()
    assert project(x.double(), "pca").dtype == torch.float64


# ---- separation scores --------------------------------------------------------------------

def test_knn_accuracy_and_purity_match_a_brute_force_loop():
    from sklearn.neighbors import KNeighborsClassifier

    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 5, generator=g)
    y = torch.randint(0, 3, (60,), generator=g)
    x[y == 1] += 0.8  # partly separable: the accuracy is neither 0 nor 1
    for k in (1, 4, 7):
        hits, pure = 0, 0.0
        for i in range(60):
            rest = np.delete(np.arange(60), i)
            clf = KNeighborsClassifier(n_neighbors=k).fit(x[rest].numpy(), y[rest].numpy())
            hits += int(clf.predict(x[i:i + 1].numpy())[0] == y[i])
            d = np.linalg.norm(x[rest].double().numpy() - x[i].double().numpy(), axis=1)
            pure += np.mean(y[rest].numpy()[np.argsort(d)[:k]] == y[i].item())
        assert knn_accuracy(x, y, k) == pytest.approx(hits / 60)
        assert neighbor_purity(x, y, k) == pytest.approx(pure / 60)
        assert 0 < hits / 60 < 1


def test_scores_do_not_depend_on_the_block_size():
    from seethrough.embed import neighbor_scores

    x, y = _blobs(n_per=30, dims=4)
    x = x + 8 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    assert neighbor_scores(x, y, 5, 30, block=7) == neighbor_scores(x, y, 5, 30, block=1024)


def test_lenet_classes_disentangle_with_depth(digits):
    model, x, y = digits
    e = see.embed(model, (x, y), ["input", "pool2", "relu3", "fc3"], "pca", progress=False)
    purity = [e.separation[n].purity for n in e.layers]
    assert purity == sorted(purity) and purity[-1] - purity[0] > 0.05, purity
    assert e.separation["fc3"].knn > 0.95


def test_tsne_of_lenet_logits_keeps_the_classes_apart(digits):
    model, x, y = digits
    e = see.embed(model, (x, y), ["fc3"], "tsne", seed=0, progress=False)
    assert e.separation["fc3"].knn_2d > 0.95
    again = see.embed(model, (x, y), ["fc3"], "tsne", seed=0, progress=False)
    assert torch.equal(e["fc3"], again["fc3"])


# ---- bad input ----------------------------------------------------------------------------

def test_too_high_perplexity_is_clamped_with_a_warning():
    x, _ = _blobs(n_per=5)  # 15 samples support a perplexity of at most 14 / 3
    with pytest.warns(UserWarning, match="perplexity 30 is too high for 15 samples"):
        a = project(x, "tsne", perplexity=30)
    assert torch.equal(a, project(x, "tsne", perplexity=max_perplexity(15)))


def test_too_few_samples_and_bad_options_are_clear_errors():
    x, _ = _blobs(n_per=1)
    with pytest.raises(ValueError, match="at least 4 samples.*method='pca'"):
        project(x, "tsne")
    with pytest.raises(ValueError, match="unknown method 'tnse'"):
        project(x, "tnse")
    with pytest.raises(ValueError, match="perplexity must be a positive number"):
        project(_blobs()[0], "tsne", perplexity=-1)
    with pytest.raises(ValueError, match="pca must be None"):
        pca_reduce(_blobs()[0], 1)


def test_unknown_layer_names_the_closest(digits):
    model, x, _ = digits
    with untouched(model, allow_raise=ValueError):
        with pytest.raises(ValueError, match="unknown layer 'relu5'.*relu"):
            see.embed(model, x[:20], ["input", "relu5"], progress=False)
        raise ValueError("checked")


def test_constant_activations_name_the_layer():
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    with torch.no_grad():
        net[1].weight.zero_()
    with untouched(net, allow_raise=ValueError):
        with pytest.raises(ValueError, match="layer '1'.*constant over all 10 samples"):
            see.embed(net, torch.randn(10, 4), ["0", "1"], "pca", progress=False)
        raise ValueError("checked")


def test_bad_labels_and_data_are_clear_errors():
    net = torch.nn.Linear(4, 3)
    with pytest.raises(ValueError, match="labels must be a 1-D sequence of 10"):
        see.embed(net, (torch.randn(10, 4), torch.arange(9)), ["0"], "pca", progress=False)
    with pytest.raises(ValueError, match="labels given twice"):
        see.embed(net, (torch.randn(10, 4), torch.arange(10)), ["0"], "pca", labels=torch.arange(10), progress=False)
    with pytest.raises(TypeError, match="data must be a torch.Tensor"):
        see.embed(net, np.zeros((10, 4)), ["0"], "pca", progress=False)
    with pytest.raises(ValueError, match="NaN"):
        see.embed(net, torch.full((10, 4), float("nan")), ["0"], "pca", progress=False)


# ---- hygiene ------------------------------------------------------------------------------

def test_embed_leaves_a_train_mode_batchnorm_model_untouched():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(inplace=True),
                              torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 3)).train()
    net[0].weight.grad = torch.ones_like(net[0].weight)
    x = torch.rand(24, 1, 8, 8)
    with untouched(net):
        e = see.embed(net, x, ["2", "4"], "pca", batch_size=5, progress=False)
    with torch.no_grad():
        ref = net.eval()(x)  # embed runs in eval mode: batch statistics would make rows depend on the batch
    net.train()
    torch.testing.assert_close(e.features["4"], ref)


# ---- report -------------------------------------------------------------------------------

def test_report_section_quick():
    import seethrough.report.sections  # noqa: F401  (registers the sections)
    from seethrough.report.registry import SECTIONS, Context, Figure, Table

    blocks = SECTIONS["embed"].build(Context(quick=True))
    titles = [b.title for b in blocks if isinstance(b, Figure)]
    assert titles[0].startswith("lenet-digits layer by layer") and "Pitfalls: perplexity and seed" in titles
    assert any(t.startswith("Photo crops") for t in titles)
    pitfalls = next(b for b in blocks if isinstance(b, Figure) and b.title.startswith("Pitfalls"))
    assert "distances between clusters mean little" in pitfalls.caption
    assert [ax.get_title() for ax in pitfalls.image.axes][-1] == "perplexity 30, seed 1"
    table = next(b for b in blocks if isinstance(b, Table))
    assert [r[0] for r in table.rows] == ["input", "pool1", "pool2", "relu3", "relu4", "fc3"]
    purity = {r[0]: float(r[4].rstrip("%")) for r in table.rows}
    assert purity["fc3"] > purity["input"] + 10  # the classes pull apart with depth
