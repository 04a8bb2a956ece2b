"""DNS rebinding and cross-site requests, refused with real requests to a real server.

A rebinding page reaches 127.0.0.1 under its own name (``Host: evil.example:PORT``); a page on
another site sends requests it cannot read (``Origin: http://evil.example``, or no Origin but
``Sec-Fetch-Site: cross-site`` for an ``<img>``). Each must be a 403 that reveals nothing and
changes nothing: no upload stored, no job started, no computation run.
"""
from __future__ import annotations

import io
import re
import socket

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from seethrough.web.app import create_app
from seethrough.web.server import start


def _png(shade: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (12, 12), shade).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def served(lenet_session):
    app = create_app(lenet_session)
    running = start(app)
    base = running.url.rstrip("/")
    with httpx.Client(base_url=base, timeout=60) as client:
        yield client, app, base.rsplit(":", 1)[1]
    running.stop()


def _token_from_page(client: httpx.Client) -> str:
    """The token as the page's own script reads it: from the meta tag of the served page."""
    page = client.get("/").text
    return re.search(r'<meta name="seethrough-token" content="([^"]+)">', page).group(1)


def test_the_page_carries_the_servers_token(served):
    client, app, _ = served
    assert _token_from_page(client) == app.state.token
    assert client.get("/").headers["x-frame-options"] == "DENY"


def test_a_rebinding_host_is_refused_and_reads_nothing(served):
    client, app, port = served
    token = _token_from_page(client)
    upload = client.post("/api/upload", files={"file": ("a.png", _png(), "image/png")}, headers={"X-Seethrough-Token": token})
    assert upload.status_code == 200
    secret = upload.json()["id"]
    for url in ("/", "/api/info", f"/api/predictions?input={secret}", "/api/stats", "/static/app.js", "/api/data/0.png"):
        for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}", f"localhost.:{port}"):
            r = client.get(url, headers={"Host": host})
            assert r.status_code == 403, (url, host)
            assert "not this explorer's address" in r.json()["detail"]
            assert secret not in r.text and token not in r.text
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}", "localhost:9000"):
        r = client.get("/api/info", headers={"Host": host})  # 9000: an SSH tunnel's local port
        assert r.status_code == 200 and secret in r.json()["inputs"], host


def test_a_cross_origin_upload_is_refused_and_not_stored(served, lenet_session):
    client, app, port = served
    before = lenet_session.input_names()
    token = _token_from_page(client)
    attempts = [{"Origin": "http://evil.example"}, {"Origin": "http://evil.example", "X-Seethrough-Token": token},
                {"Origin": "null"}, {"Origin": f"http://localhost:{int(port) + 1}"},  # another local site
                {}, {"X-Seethrough-Token": "guessed"}, {"Sec-Fetch-Site": "cross-site", "X-Seethrough-Token": token},
                {"Sec-Fetch-Site": "same-site", "X-Seethrough-Token": token}]
    for headers in attempts:
        r = client.post("/api/upload", files={"file": ("b.png", _png(201), "image/png")}, headers=headers)
        assert r.status_code == 403, headers
        assert r.json()["detail"].count("\n") == 0
    assert lenet_session.input_names() == before
    own = client.post("/api/upload", files={"file": ("b.png", _png(201), "image/png")},
                      headers={"Origin": client.base_url.scheme + "://" + client.base_url.netloc.decode(),
                               "Sec-Fetch-Site": "same-origin", "X-Seethrough-Token": token})
    assert own.status_code == 200 and own.json()["id"] not in before


def test_a_cross_origin_request_never_starts_a_computation(served):
    client, app, _ = served
    token = _token_from_page(client)
    flip = {"input": "digit-3", "method": "pgd"}
    refused = [client.post("/api/jobs/flip", params=flip, headers={"Origin": "http://evil.example"}),
               client.post("/api/jobs/flip", params=flip),  # a plain form POST: no token
               client.post("/api/jobs/flip", params=flip, headers={"Origin": "http://evil.example", "X-Seethrough-Token": token}),
               client.get("/api/flip", params=flip, headers={"Origin": "http://evil.example"}),  # a CORS fetch
               client.get("/api/flip", params=flip, headers={"Sec-Fetch-Site": "cross-site"}),  # an <img> or no-cors fetch
               client.get("/api/attribution", params={"input": "digit-3", "method": "kernel-shap"},
                          headers={"Sec-Fetch-Site": "cross-site"})]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert app.state.jobs.stats() == {"pending": 0, "finished": 0, "tickets": 0}
    assert "adversarial" not in app.state.cache.stats()["computations"]
    assert "attribution" not in app.state.cache.stats()["computations"]


def test_cancel_needs_the_token_too(served):
    client, app, _ = served
    token = _token_from_page(client)
    job = client.post("/api/jobs/predictions", params={"input": "digit-2"}, headers={"X-Seethrough-Token": token}).json()
    assert client.delete(f"/api/jobs/{job['id']}").status_code == 403
    assert client.delete(f"/api/jobs/{job['id']}", headers={"X-Seethrough-Token": token[:-1]}).status_code == 403
    assert not app.state.jobs.get(job["id"]).withdrawn
    assert client.delete(f"/api/jobs/{job['id']}", headers={"X-Seethrough-Token": token}).status_code == 200


def test_a_request_without_a_host_header_is_refused(served):
    client, _, port = served
    with socket.create_connection(("127.0.0.1", int(port)), timeout=30) as s:
        s.sendall(b"GET /api/info HTTP/1.0\r\n\r\n")
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 403") and b"no Host header" in reply


def test_the_chosen_host_and_wildcard_binds(lenet_session):
    named = create_app(lenet_session, host="workstation.lan")
    assert TestClient(named, base_url="http://workstation.lan:8765").get("/api/info").status_code == 200
    assert TestClient(named, base_url="http://evil.example:8765").get("/api/info").status_code == 403
    assert TestClient(named, base_url="http://192.168.1.5:8765").get("/api/info").status_code == 403
    wildcard = create_app(lenet_session, host="0.0.0.0")  # reachable from the network, as the user asked
    assert TestClient(wildcard, base_url="http://192.168.1.5:8765").get("/api/info").status_code == 200
    assert TestClient(wildcard, base_url="http://[fe80::1]:8765").get("/api/info").status_code == 200
    assert TestClient(wildcard, base_url="http://evil.example:8765").get("/api/info").status_code == 403
