"""One error path: every bad request is a 4xx with a one-line message, never a 500.

A battery of malformed requests (huge, negative and non-integer numbers, unknown layers,
methods, views and inputs, bad ε and channels, malformed bodies, wrong content types, wrong
methods) is sent to the explorer with server errors turned into responses, so a 500 would be
seen here rather than raised.
"""
from __future__ import annotations

import time

import pytest

from seethrough.web.app import create_app

from .conftest import local

HUGE = "99999999999999999999"
GET = [
    *(f"/api/attribution?input=digit-1&method=saliency&target={t}"
      for t in (HUGE, "-" + HUGE, "-1", "10", "1.5", "abc", "1e3", "0x10", "\u0663", "2147483648")),
    *(f"/api/unit?input=digit-1&layer=conv2&channel={c}" for c in (HUGE, "-1", "16", "abc", "")),
    *(f"/api/predictions?input=digit-1&k={k}" for k in ("0", "-3", HUGE, "abc")),
    *(f"/api/activations?input=digit-1&layer=conv1&show=random&seed={s}" for s in ("-1", HUGE, "abc")),
    *(f"/api/projection?input=digit-1&layer=fc2&n={n}" for n in (HUGE, "-5", "abc", "3")),
    *(f"/api/adversarial?input=digit-1&method=pgd&eps={e}" for e in ("abc", "nan", "inf", "-inf", "-1", "300", "1e999", "")),
    "/api/adversarial?input=digit-1&method=pgd&eps=2&client=tab&seq=x",
    "/api/adversarial?input=digit-1&method=pgd&eps=2&client=tab&seq=-1",
    f"/api/adversarial?input=digit-1&method=pgd&eps=2&client={'x' * 5000}&seq=1",
    "/api/adversarial?input=digit-1&method=ascent&eps=2", "/api/adversarial?input=digit-1&method=nope&eps=2",
    "/api/flip?input=digit-1&method=nope",
    "/api/activations?input=digit-1&layer=conv9", "/api/activations?input=digit-1",
    f"/api/activations?input=digit-1&layer={'c' * 1000}", "/api/activations?input=digit-1&layer=conv1&show=most",
    "/api/unit?input=digit-1&layer=nope&channel=0", "/api/projection?input=digit-1&layer=nope",
    "/api/projection?input=digit-1&layer=fc2&method=mds",
    "/api/attribution?input=digit-1&method=magic", "/api/attribution?input=digit-1",
    "/api/predictions?input=nope", "/api/predictions?input=../../etc/passwd", "/api/predictions",
    "/api/secrets", "/api/jobs/nope", "/api/data/abc.png", "/api/data/-1.png", f"/api/data/{HUGE}.png",
    "/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2f..%2fpyproject.toml", "/static/nope.js", "/nope",
]
POST = [
    ("/api/jobs/nope", {}),
    (f"/api/jobs/attribution?input=digit-1&method=saliency&target={HUGE}", {}),
    ("/api/jobs/unit?input=digit-1&layer=conv2", {}),
    ("/api/jobs/attribution", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
    ("/api/upload", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
    ("/api/upload", {"content": b"hello", "headers": {"content-type": "text/plain"}}),
    ("/api/upload", {"content": b"", "headers": {"content-type": "image/png"}}),
    ("/api/upload", {"content": b"xx", "headers": {"content-type": "multipart/form-data"}}),
    ("/api/upload", {"content": b"xx", "headers": {"content-type": "multipart/form-data; boundary=zz"}}),
    ("/api/upload", {"data": {"notfile": "x"}}),
    ("/api/upload", {"content": b"x", "headers": {"content-length": "abc"}}),
    ("/api/upload", {"content": b"x", "headers": {"content-length": str(2**40)}}),
    ("/api/info", {}),
]
OTHER = [("PUT", "/api/info"), ("DELETE", "/api/jobs/nope"), ("PATCH", "/api/upload"), ("DELETE", "/api/info")]


@pytest.fixture(scope="module")
def client(lenet_session):
    return local(create_app(lenet_session), raise_server_exceptions=False)


def _one_line_4xx(r) -> str:
    assert 400 <= r.status_code < 500, (r.request.method, str(r.request.url)[:120], r.status_code, r.text[:300])
    if r.headers.get("content-type", "").startswith("application/json"):
        message = r.json()["detail"]
        assert isinstance(message, str), r.text
    else:
        message = r.text
    assert message.strip() and "\n" not in message and "Traceback" not in message, message
    return message


@pytest.mark.parametrize("url", GET)
def test_bad_get_is_a_4xx_with_a_message(client, url):
    _one_line_4xx(client.get(url))


@pytest.mark.parametrize("url, kwargs", POST, ids=[f"{u[:50]} {sorted(k)}" for u, k in POST])
def test_bad_post_is_a_4xx_with_a_message(client, url, kwargs):
    _one_line_4xx(client.post(url, **kwargs))


@pytest.mark.parametrize("method, url", OTHER)
def test_wrong_method_is_a_4xx_with_a_message(client, method, url):
    _one_line_4xx(client.request(method, url))


def test_numbers_are_refused_saying_what_would_be_right(client):
    r = client.get("/api/attribution", params={"input": "digit-1", "method": "saliency", "target": HUGE})
    assert r.status_code == 400 and "target must be a whole number from" in r.json()["detail"]
    r = client.get("/api/attribution", params={"input": "digit-1", "method": "saliency", "target": 10})
    assert r.status_code == 400 and "out of range" in r.json()["detail"]  # the library's own check
    r = client.get("/api/adversarial", params={"input": "digit-1", "eps": "inf"})
    assert r.status_code == 400 and "eps must be a finite number" in r.json()["detail"]


def test_a_job_the_library_refuses_reports_a_4xx_status(client):
    """Input only the library can judge (an unknown layer) makes the job end in an error whose
    status is a 400 with the library's message, as the GET of the same view answers."""
    job = client.post("/api/jobs/unit", params={"input": "digit-1", "layer": "conv9", "channel": 0}).json()
    deadline = time.monotonic() + 60
    while job["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.02)
        job = client.get(f"/api/jobs/{job['id']}").json()
    get = client.get("/api/unit", params={"input": "digit-1", "layer": "conv9", "channel": 0})
    assert job["state"] == "error" and job["status"] == get.status_code == 400
    assert job["error"] == get.json()["detail"] and "conv9" in job["error"]
