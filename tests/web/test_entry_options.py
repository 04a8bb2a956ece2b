"""The explorer draws each method's and attack's controls from its registry spec and passes the
chosen options through, checked (issue 19, item 3)."""
from __future__ import annotations

import json

import pytest

import seethrough as see
from seethrough import render
from seethrough.catalog import get
from seethrough.web.app import create_app
from seethrough.web.views import data_url

from .conftest import local


@pytest.fixture
def client(lenet_session):
    return local(create_app(lenet_session))


def test_info_carries_every_methods_options_from_its_spec(client):
    info = client.get("/api/info").json()
    by_name = {m["name"]: m for m in info["methods"]}
    ig = {o["name"]: o for o in by_name["integrated-gradients"]["options"]}
    assert ig["steps"]["default"] == get("attribution", "integrated-gradients").option("steps").default == 50
    assert ig["steps"]["type"] == "int" and "layer" not in ig  # the layer has no control of its own here
    pgd = {o["name"] for o in next(a for a in info["attacks"] if a["name"] == "pgd")["options"]}
    assert "steps" in pgd and "eps" not in pgd  # ε is the slider


def test_chosen_options_reach_the_method(client, lenet_session):
    x = lenet_session.input("digit-3")
    r = client.get("/api/attribution", params={"input": "digit-3", "method": "integrated-gradients", "target": 3,
                                                "options": json.dumps({"steps": "4"})})
    assert r.status_code == 200, r.text
    assert r.json()["options"] == {"steps": 4}
    expected = see.attribute(lenet_session.model, x, "integrated-gradients", 3, steps=4)
    default = see.attribute(lenet_session.model, x, "integrated-gradients", 3)
    assert r.json()["overlay"] == data_url(render.overlay(x, expected))
    assert data_url(render.overlay(x, expected)) != data_url(render.overlay(x, default))  # the option mattered


@pytest.mark.parametrize("options, says", [
    ({"bogus": 1}, "takes no option --bogus"),
    ({"steps": "many"}, "--steps takes a whole number"),
    ("[1, 2]", "options must be a JSON object"),
    ("{not json", "options must be a JSON object"),
])
def test_a_bad_option_is_a_400_naming_it(client, options, says):
    raw = options if isinstance(options, str) else json.dumps(options)
    r = client.get("/api/attribution", params={"input": "digit-3", "method": "integrated-gradients", "options": raw})
    assert r.status_code == 400 and says in r.json()["detail"], r.text


def test_attack_options_reach_the_attack_and_eps_stays_the_sliders(client, lenet_session):
    r = client.get("/api/adversarial", params={"input": "digit-3", "method": "pgd", "eps": 8,
                                                "options": json.dumps({"steps": 2, "seed": 1})})
    assert r.status_code == 200, r.text
    x = lenet_session.input("digit-3")
    direct = see.attack(lenet_session.model, x, "pgd", eps=8.0, steps=2, seed=1, progress=False)
    assert r.json()["linf"] == pytest.approx(float(direct.linf[0]))
    bad = client.get("/api/adversarial", params={"input": "digit-3", "method": "pgd", "eps": 8,
                                                  "options": json.dumps({"eps": 2})})
    assert bad.status_code == 400 and "slider" in bad.json()["detail"]
