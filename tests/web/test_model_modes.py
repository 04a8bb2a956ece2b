"""``see.explore(model)`` gives the model back as found: every module's training flag, also
when it was in train mode or mixed, also when serving ends with an error or Ctrl-C."""
from __future__ import annotations

import httpx
import pytest
import torch
from torch import nn

import seethrough as see
import seethrough.web.server as server_module
from seethrough.testing import untouched


def _mixed_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5), nn.Flatten(),
                          nn.Linear(4 * 6 * 6, 3)).train()
    model[1].eval()  # a user freezing BatchNorm while fine-tuning: a mixed state
    return model


def _explore(model, **kwargs):
    x = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    return see.explore(model, lambda image: x[:1], images={"a": x[:1], "b": x[1:2]}, data=(x, torch.arange(12) % 3),
                       open_browser=False, **kwargs)


def test_background_explorer_restores_every_training_flag():
    model = _mixed_model()
    found = [m.training for m in model.modules()]
    assert found == [True, True, False, True, True, True, True]
    with untouched(model):  # flags, parameters, buffers (BatchNorm's statistics), grads, hooks
        server = _explore(model, background=True)
        try:
            assert not any(m.training for m in model.modules())  # served in eval mode
            r = httpx.get(server.url + "api/predictions", params={"input": "a"}, timeout=60)
            assert r.status_code == 200 and len(r.json()["top"]) == 3
        finally:
            server.stop()
    assert [m.training for m in model.modules()] == found


@pytest.mark.parametrize("stop", [KeyboardInterrupt, OSError])
def test_foreground_explorer_restores_the_flags_after_ctrl_c_or_an_error(monkeypatch, stop):
    model = _mixed_model()
    found = [m.training for m in model.modules()]
    seen = []

    def serve(app, host, port, open_browser):  # the blocking server, ended by Ctrl-C or a failure
        seen.append([m.training for m in model.modules()])
        raise stop("stopped")

    monkeypatch.setattr(server_module, "serve", serve)
    with pytest.raises(stop):
        _explore(model)
    assert seen == [[False] * len(found)] and [m.training for m in model.modules()] == found


def test_an_eval_model_stays_in_eval(monkeypatch):
    model = _mixed_model().eval()
    monkeypatch.setattr(server_module, "serve", lambda *a, **k: None)
    _explore(model)
    assert not any(m.training for m in model.modules())
