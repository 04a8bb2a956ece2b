"""The explorer's HTTP layer without a browser: every view's JSON equals the library call it
wraps, uploads are refused or accepted over HTTP, jobs report and cancel, ε requests coalesce."""
from __future__ import annotations

import base64
import io
import json
import threading
import time

import pytest
import torch
from PIL import Image

import seethrough as see
from seethrough.testing import untouched
from seethrough.web.app import create_app

from .conftest import local
from .test_uploads import _encode, _zero_grey_png


@pytest.fixture
def app(lenet_session):
    return create_app(lenet_session)


@pytest.fixture
def client(app):
    return local(app)


def _png(data_url: str) -> Image.Image:
    assert data_url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))


def test_info_menus_come_from_the_registries(client, lenet_session):
    info = client.get("/api/info").json()
    assert [m["name"] for m in info["methods"]] == list(see.METHODS)
    assert {a["name"] for a in info["attacks"]} | set(info["attacks_without_eps"]) == set(see.ATTACKS)
    names = [layer["name"] for layer in info["layers"]]
    assert names == see.layer_names(lenet_session.model)  # lenet: every module outputs a tensor
    assert info["data"] == len(lenet_session.data[0]) and info["shape"] == [1, 32, 32]


def test_a_new_registry_entry_shows_up_with_no_web_change(client):
    @see.attribution.register("test-only-zeros", family="gradient", paper="nobody, 2026")
    def zeros(model, x, target, **options):
        return torch.zeros_like(x)

    try:
        methods = [m["name"] for m in client.get("/api/info").json()["methods"]]
        assert methods[-1] == "test-only-zeros"
        r = client.get("/api/attribution", params={"input": "digit-3", "method": "test-only-zeros"})
        assert r.status_code == 200 and r.json()["method"] == "test-only-zeros"
    finally:
        del see.METHODS["test-only-zeros"]


def test_predictions_equal_the_library_call(client, lenet_session):
    r = client.get("/api/predictions", params={"input": "digit-7"}).json()
    expected = see.predict(lenet_session.model, lenet_session.input("digit-7"), k=5, labels=lenet_session.labels)[0]
    assert [(p["index"], p["probability"]) for p in r["top"]] == [(p.index, p.probability) for p in expected]
    assert r["top"][0]["label"] == "7"


def test_activation_grid_states_its_subset_and_matches_pick_channels(client, lenet_session):
    act = see.activations(lenet_session.model, lenet_session.input("digit-2"), "conv2")["conv2"][0]
    full = client.get("/api/activations", params={"input": "digit-2", "layer": "conv2"}).json()
    assert full["rule"] == "all 16 channels" and full["shown"] == list(range(16)) and len(full["tiles"]) == 16
    strongest = client.get("/api/activations", params={"input": "digit-2", "layer": "conv2", "show": "energy"}).json()
    assert strongest["shown"] == see.inspect.pick_channels(act, 16).tolist()
    assert strongest["rule"].startswith("the 16 of 16 channels with the most energy")
    # one scale for the layer (not each tile stretched to white): a tile's brightest pixel follows
    # its channel's largest activation, and only the layer's peak channel reaches 255
    peaks = [float(act[c].max()) for c in strongest["shown"]]
    brightest = [_png(t).getextrema()[1] for t in strongest["tiles"]]
    by_peak = [b for _, b in sorted(zip(peaks, brightest))]
    assert by_peak == sorted(by_peak) and by_peak[-1] == 255 and by_peak[0] < 255


def test_wide_layers_show_a_stated_subset(effnet_session):
    client = local(create_app(effnet_session))
    act = see.activations(effnet_session.model, effnet_session.input("chelsea"), "head")["head"][0]
    auto = client.get("/api/activations", params={"input": "chelsea", "layer": "head"}).json()
    assert auto["channels"] == 1280 and len(auto["tiles"]) == 256
    assert auto["shown"] == see.inspect.pick_channels(act, 256).tolist()
    drawn = client.get("/api/activations", params={"input": "chelsea", "layer": "head", "show": "random", "seed": 4}).json()
    assert drawn["shown"] == see.inspect.pick_channels(act, 256, how="random", seed=4).tolist()
    assert drawn["rule"] == "256 of 1280 channels drawn at random (seed 4)"


def test_unit_view_returns_the_topk_of_the_library(client, lenet_session):
    r = client.get("/api/unit", params={"input": "digit-3", "layer": "conv2", "channel": 5}).json()
    top = see.topk(lenet_session.model, lenet_session.data[0], "conv2", unit=5, k=9, progress=False)
    assert [e["index"] for e in r["examples"]] == top.indices[0].tolist()
    assert r["filter"] and r["maximize"] and r["map"]


def test_attribution_and_badge_equal_the_library_call(client, lenet_session):
    x = lenet_session.input("digit-4")
    r = client.get("/api/attribution", params={"input": "digit-4", "method": "saliency"}).json()
    _, badge = see.attribute(lenet_session.model, x, "saliency", 4, trust=True)
    assert r["target"] == 4 and r["label"] == "4"
    assert r["badge"]["deletion"] == pytest.approx(float(badge.deletion[0]))
    assert r["badge"]["verdict"] == badge.verdict[0]
    assert r["badge"]["deletion_lerf"] == pytest.approx(float(badge.deletion_lerf[0]))  # what deletion is judged against
    assert r["badge"]["reference"] == badge.reference[0]
    assert _png(r["overlay"]).size == (32, 32)


def test_projection_shows_the_stated_sample_and_the_inputs_neighbours(client, lenet_session):
    r = client.get("/api/projection", params={"input": "digit-1", "layer": "fc2", "method": "pca", "n": 120}).json()
    assert r["n"] == 120 and len(r["points"]) == 120 and len({p["index"] for p in r["points"]}) == 120
    assert all(0 <= p["x"] <= 1 and 0 <= p["y"] <= 1 for p in r["points"])
    # the neighbours of a clean "1" in the penultimate layer are mostly ones
    assert sum(n["label"] == "1" for n in r["neighbors"]) >= 3


def test_adversarial_step_equals_the_library_attack(client, lenet_session):
    r = client.get("/api/adversarial", params={"input": "digit-3", "method": "pgd", "eps": 32}).json()
    ref = see.attack(lenet_session.model, lenet_session.input("digit-3"), "pgd", eps=32.0, steps=10, progress=False)
    assert r["index"] == int(ref.pred[0]) and r["flipped"] == bool(ref.success[0])
    assert r["linf"] == pytest.approx(float(ref.linf[0]))


def test_flip_marks_the_smallest_eps_that_changes_the_label(client):
    flip = client.get("/api/flip", params={"input": "digit-3", "method": "fgsm"}).json()
    steps = [client.get("/api/adversarial", params={"input": "digit-3", "method": "fgsm", "eps": e}).json() for e in flip["grid"]]
    flipped = [s["eps"] for s in steps if s["flipped"]]
    assert flip["flip"] == (flipped[0] if flipped else None)
    assert all(s["label"] == flip["clean"] for s in steps if s["eps"] < (flip["flip"] or 1e9))


@pytest.mark.parametrize("url, status, words", [
    ("/api/predictions?input=nope", 404, "unknown input"),
    ("/api/activations?input=digit-1&layer=conv9", 400, "unknown layer"),
    ("/api/attribution?input=digit-1&method=magic", 400, "unknown attribution method"),
    ("/api/attribution?input=digit-1&method=saliency&target=10", 400, "out of range"),
    ("/api/unit?input=digit-1&layer=conv2&channel=99", 400, "out of range"),
    ("/api/adversarial?input=digit-1&method=ascent&eps=2", 400, "no ε budget"),
    ("/api/adversarial?input=digit-1&eps=abc", 400, "eps must be a finite number"),
    ("/api/projection?input=digit-1&layer=fc2&method=mds", 400, "unknown projection"),
    ("/api/activations?input=digit-1", 400, "needs the parameter 'layer'"),
    ("/api/projection?input=digit-1&layer=fc2&n=-5", 400, "sample size must be at least 7"),
    ("/api/adversarial?input=digit-1&method=pgd&eps=nan", 400, "eps must be a finite number"),
    ("/api/adversarial?input=digit-1&method=pgd&eps=300", 400, "must lie in [0, 255]"),
    ("/api/secrets", 404, "no view"),
])
def test_bad_requests_say_what_was_wrong(client, url, status, words):
    r = client.get(url)
    assert r.status_code == status and words in r.json()["detail"]


def test_uploads_over_http(client):
    ok = {fmt: _encode(Image.new("RGB", (40, 30), (200, 10, 10)), fmt) for fmt in ("PNG", "JPEG", "WEBP")}
    for fmt, data in ok.items():
        r = client.post("/api/upload", files={"file": (f"x.{fmt.lower()}", data, "image/png")})
        assert r.status_code == 200, (fmt, r.text)
        assert r.json()["id"] in r.json()["inputs"]
        assert client.get("/api/predictions", params={"input": r.json()["id"]}).status_code == 200
    raw = client.post("/api/upload", content=ok["PNG"], headers={"content-type": "application/octet-stream"})
    assert raw.status_code == 200
    gif = _encode(Image.new("RGB", (8, 8)), "GIF")
    for name, data in {"gif": gif, "svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>", "pdf": b"%PDF-1.4\n%%EOF",
                       "text": b"hello"}.items():
        r = client.post("/api/upload", files={"file": ("renamed.png", data, "image/png")})
        assert r.status_code == 415 and "not a PNG, JPEG or WebP" in r.json()["detail"], name
    bomb = client.post("/api/upload", files={"file": ("bomb.png", _zero_grey_png(20000, 20000), "image/png")})
    assert bomb.status_code == 413
    truncated = client.post("/api/upload", files={"file": ("cut.png", ok["PNG"][: len(ok["PNG"]) // 2], "image/png")})
    assert truncated.status_code == 400 and "truncated" in truncated.json()["detail"]


def test_oversized_upload_is_413_before_and_while_reading(lenet_session):
    small = local(create_app(lenet_session, max_upload=1000))
    big = _encode(Image.effect_noise((100, 100), 50).convert("RGB"), "PNG")
    assert 1000 < len(big) < 1000 + 64 * 1024  # over the file limit, within the multipart slack
    r = small.post("/api/upload", files={"file": ("big.png", big + bytes(80 * 1024), "image/png")})
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    declared = small.post("/api/upload", content=b"x", headers={"content-length": str(10 * 2**20)})
    assert declared.status_code == 413

    def lying_body():  # a chunked body with no Content-Length: counted while reading
        for _ in range(100):
            yield bytes(4096)

    streamed = small.post("/api/upload", content=lying_body())
    assert streamed.status_code == 413
    inside = small.post("/api/upload", files={"file": ("b.png", big, "image/png")})
    assert inside.status_code == 413 and f"{1000 / 2**20:.0f} MiB" in inside.json()["detail"]


def test_concurrent_cold_requests_compute_once(app, lenet_session):
    """Single-flight: 20 threads asking for one attribution at once cost one computation."""
    client = local(app)
    url = "/api/attribution?input=digit-8&method=integrated-gradients"
    barrier = threading.Barrier(20)
    bodies = []

    def ask():
        barrier.wait()
        bodies.append(client.get(url).content)

    threads = [threading.Thread(target=ask) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(bodies) == 20 and len(set(bodies)) == 1
    assert app.state.cache.stats()["computations"]["attribution"] == 1


def test_only_the_latest_eps_of_a_client_is_computed(app):
    """While the model is busy, five ε requests of one client queue up; only the newest runs."""
    client = local(app)
    cache = app.state.cache
    cache._model.acquire()  # the model is busy with something else
    results = {}

    def ask(seq, eps):
        results[seq] = client.get("/api/adversarial", params={"input": "digit-5", "method": "pgd", "eps": eps,
                                                              "client": "tab-1", "seq": seq})

    threads = [threading.Thread(target=ask, args=(i, e)) for i, e in enumerate((2, 4, 8, 16, 32), start=1)]
    for t in threads:
        t.start()
        time.sleep(0.05)  # arrival order (the property is about order, not time: nothing is timed)
    deadline = time.monotonic() + 10
    while cache.stats()["misses"] < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    cache._model.release()
    for t in threads:
        t.join()
    assert [results[s].status_code for s in range(1, 6)] == [204, 204, 204, 204, 200]
    assert results[5].json()["eps"] == 32
    assert cache.stats()["computations"]["adversarial"] == 1


def test_jobs_report_progress_and_land_in_the_cache(app):
    client = local(app)
    seen = []
    job = client.post("/api/jobs/projection", params={"input": "digit-0", "layer": "fc1", "method": "tsne", "n": 200}).json()
    while job["state"] in ("queued", "running"):
        seen.append((job["step"], job["done"], job["total"]))
        time.sleep(0.05)
        job = client.get(f"/api/jobs/{job['id']}").json()
    assert job["state"] == "done" and job["error"] is None
    assert job["step"] == "t-SNE" and job["done"] == job["total"] > 0
    again = client.post("/api/jobs/projection", params={"input": "digit-0", "layer": "fc1", "method": "tsne", "n": 200}).json()
    assert again["id"] != job["id"] and again["state"] == "done"  # a ticket of its own on the cached result
    before = app.state.cache.stats()["computations"]["projection"]
    assert client.get("/api/projection", params={"input": "digit-0", "layer": "fc1", "method": "tsne", "n": 200}).status_code == 200
    assert app.state.cache.stats()["computations"]["projection"] == before == 1


def test_a_cancelled_job_stops_and_leaves_the_model_as_found(app, lenet_session):
    """Cancelled while it waits for the busy model, the job stops at the library's first
    progress report: nothing is computed or cached, and the model is as found."""
    client = local(app)
    with untouched(lenet_session.model):
        app.state.cache._model.acquire()  # the model is busy with something else
        try:
            job = client.post("/api/jobs/unit", params={"input": "digit-6", "layer": "conv1", "channel": 1}).json()
            client.delete(f"/api/jobs/{job['id']}")
        finally:
            app.state.cache._model.release()
        job = app.state.jobs.wait(job["id"]).as_dict()
    assert job["state"] == "cancelled" and job["done"] == 0
    assert "unit" not in app.state.cache.stats()["computations"]
    assert client.get(f"/api/jobs/{job['id']}").json()["state"] == "cancelled"


def test_a_tour_of_every_view_leaves_the_model_as_found(client, lenet_session):
    with untouched(lenet_session.model):
        for url in ["/api/predictions?input=digit-9", "/api/activations?input=digit-9&layer=relu2",
                    "/api/unit?input=digit-9&layer=fc1&channel=0", "/api/attribution?input=digit-9&method=lrp",
                    "/api/projection?input=digit-9&layer=pool2&method=pca&n=50",
                    "/api/adversarial?input=digit-9&method=bim&eps=8", "/api/activations?input=digit-9&layer=nope"]:
            client.get(url)


def test_stats_count_hits_and_misses(client, app):
    client.get("/api/predictions?input=digit-1")
    client.get("/api/predictions?input=digit-1")
    s = client.get("/api/stats").json()
    assert s["misses"] == 1 and s["hits"] == 1 and s["computations"] == {"predictions": 1} and s["bytes"] > 0


def test_answers_are_json_without_nan(client):
    r = client.get("/api/attribution", params={"input": "digit-0", "method": "gradcam-negative"})
    json.loads(r.text, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
