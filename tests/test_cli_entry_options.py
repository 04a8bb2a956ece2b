"""The chosen entry's own options on the command line, from its registry spec (issue 19, item 2)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import seethrough as see
from seethrough.cli import app
from seethrough.loading import load_model
from seethrough.zoo.images import image_file


def run(*args: str):
    return CliRunner().invoke(app, list(args), env={"SEETHROUGH_PROGRESS": "0"})


@pytest.fixture(scope="module")
def lenet_chelsea():
    loaded = load_model("lenet-digits")
    return loaded.model, loaded.preprocess(image_file("chelsea"))


@pytest.mark.parametrize("order", ["image first", "options first"])
def test_explain_passes_each_methods_options_wherever_they_stand(tmp_path, lenet_chelsea, order):
    model, x = lenet_chelsea
    opts = ["--method", "integrated-gradients,saliency", "--steps", "4", "--no-abs", "-t", "3"]
    args = ["chelsea", *opts] if order == "image first" else [*opts, "chelsea"]
    r = run("explain", "-m", "lenet-digits", *args, "-o", str(tmp_path))
    assert r.exit_code == 0, r.output
    maps = np.load(tmp_path / "maps.npz")
    ig = see.attribute(model, x, "integrated-gradients", 3, steps=4)
    sal = see.attribute(model, x, "saliency", 3, abs=False)
    np.testing.assert_allclose(maps["integrated-gradients"], ig.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(maps["saliency"], sal.numpy(), rtol=1e-5, atol=1e-7)
    assert (sal < 0).any()  # --no-abs reached saliency: a signed map
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["options"]["integrated-gradients"]["steps"] == 4 and scores["options"]["saliency"]["abs"] is False


@pytest.mark.parametrize("args, says", [
    (["--method", "saliency", "--steps", "4"], "--steps is not an option of explain nor of saliency; they take --abs"),
    (["--method", "integrated-gradients", "--steps", "many"], "integrated-gradients --steps takes a whole number, got 'many'"),
    (["--method", "integrated-gradients", "--steps", "4", "--steps", "5"], "--steps given twice"),
    (["--metod", "saliency"], "--metod is not an option of explain"),
])
def test_a_bad_method_option_is_one_line_and_exit_2(tmp_path, args, says):
    r = run("explain", "chelsea", "-m", "lenet-digits", *args, "-o", str(tmp_path))
    assert r.exit_code == 2 and says in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "maps.npz").exists()  # refused before any work


def test_method_all_skips_a_method_that_refuses_the_model_and_says_so(tmp_path):
    r = run("explain", "chelsea", "-m", "lenet-digits", "--method", "all", "-o", str(tmp_path))
    assert r.exit_code == 0, r.output
    assert "skipped cam: cam needs the layer to be followed by global average pooling" in r.output
    written = set(np.load(tmp_path / "maps.npz").files)
    assert written == set(see.attribution.METHODS) - {"cam"}
    assert json.loads((tmp_path / "scores.json").read_text())["skipped"].keys() == {"cam"}


@pytest.mark.filterwarnings("default:.*removed in the next release:FutureWarning")  # the old spelling, on purpose
def test_attack_takes_its_options_from_the_spec_and_the_old_lr(tmp_path, lenet_chelsea):
    model, x = lenet_chelsea
    r = run("attack", "chelsea", "-m", "lenet-digits", "--method", "pgd", "--eps", "8", "--steps", "3", "--norm", "linf",
            "--seed", "2", "-o", str(tmp_path))
    assert r.exit_code == 0, r.output
    direct = see.attack(model, x, "pgd", eps=8.0, steps=3, seed=2, progress=False)
    saved = np.load(tmp_path / "attack.npz")
    np.testing.assert_allclose(saved["x_adv"], direct.x_adv.numpy(), atol=1e-6)
    old = run("attack", "chelsea", "-m", "lenet-digits", "--method", "ascent", "--lr", "0.05", "--steps", "2",
              "-o", str(tmp_path / "old"))
    assert old.exit_code == 0 and "--lr is renamed --step-size" in old.output, old.output
    bad = run("attack", "chelsea", "-m", "lenet-digits", "--method", "fgsm", "--steps", "2", "-o", str(tmp_path / "bad"))
    assert bad.exit_code == 2 and "--steps is not an option of attack nor of fgsm; they take --eps, --norm" in bad.output


def test_faithfulness_runs_any_registered_metric(tmp_path):
    r = run("faithfulness", "chelsea", "-m", "lenet-digits", "--method", "saliency", "--metric",
            "deletion,infidelity", "--steps", "4", "-o", str(tmp_path))
    assert r.exit_code == 0, r.output
    assert "saliency: deletion AUC " in r.output and ", infidelity " in r.output
    bad = run("faithfulness", "chelsea", "-m", "lenet-digits", "--metric", "nope", "-o", str(tmp_path / "b"))
    assert bad.exit_code == 2 and "unknown metric(s) nope; available: deletion, insertion" in bad.output


def test_embed_and_influence_take_their_entries_options(tmp_path):
    r = run("embed", "-m", "lenet-digits", "--method", "pca", "--init", "random", "--samples", "60", "-o", str(tmp_path))
    assert r.exit_code == 2 and "--init is not an option of embed nor of pca" in r.output
    r = run("influence", "--method", "cg", "--cg-tol", "1e-6", "--top", "2", "-o", str(tmp_path / "i"))
    assert r.exit_code == 0, r.output
    saved = json.loads((tmp_path / "i" / "influence.json").read_text())
    assert saved["options"]["cg_tol"] == 1e-6


def test_help_lists_the_entries_and_options_of_the_family():
    for command, entry, flag in [("explain", "integrated-gradients", "--steps INT (default 50)"),
                                 ("attack", "pgd", "--random-start"), ("faithfulness", "max-sensitivity", "--radius"),
                                 ("embed", "tsne", "--init STR"), ("influence", "lissa", "--lissa-depth")]:
        text = CliRunner().invoke(app, [command, "--help"], terminal_width=200).output
        assert entry in text and flag in text, (command, entry, flag)
