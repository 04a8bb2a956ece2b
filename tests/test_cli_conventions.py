"""One convention for every sub-command (issue 19 item 2), checked by walking the registered commands
(a new command gets the checks), plus behaviour on lenet-digits and on tiny user models written to
``tmp_path`` (1-channel 28×28, 3×32×32)."""
from __future__ import annotations

import inspect
import textwrap
from pathlib import Path

import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

import seethrough as see
from seethrough.cli import app
from seethrough.commands.options import flatten_layers

runner = CliRunner()

#: commands with a --model that never feed a user's model an image (weights only, or the zoo's text models)
NO_INPUT = {"layers", "filters", "explain-text", "attention"}
#: commands with nothing random in them (every other command must take --seed)
DETERMINISTIC = {"predict", "models", "images", "layers", "filters", "stats", "topk", "attention", "influence", "explore"}
SHAPE = ("--input-size", "--channels", "--mean", "--std", "--labels", "--device")


def _commands():
    group = typer.main.get_command(app)
    for info in app.registered_commands:
        name = info.name or info.callback.__name__.replace("_", "-")
        yield name, inspect.signature(info.callback), group.commands[name]


def _opts(cmd) -> set[str]:
    return {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}


def test_the_walk_sees_every_command():
    names = [n for n, _, _ in _commands()]
    assert len(names) >= 22 and {"explain", "tcav", "influence", "distill", "report", "embed"} <= set(names)


def test_every_model_command_has_the_model_and_shape_options():
    with_model = 0
    for name, sig, cmd in _commands():
        if "model" not in sig.parameters:
            continue
        with_model += 1
        opts = _opts(cmd)
        assert {"-m", "--model"} <= opts, name
        if name in NO_INPUT:
            assert not set(SHAPE) & opts, name
        else:
            assert set(SHAPE) <= opts, (name, set(SHAPE) - opts)
            if name not in ("explore",):  # explore's --model is loaded the same way; it has the file options too
                assert {"--arch", "--unsafe-pickle", "--sha256"} <= opts, name
    assert with_model >= 20


def test_every_layer_option_is_the_shared_repeatable_parser():
    seen = 0
    for name, sig, cmd in _commands():
        param = sig.parameters.get("layer") or sig.parameters.get("layers")
        click_param = next((p for p in cmd.params if "--layer" in p.opts or "--layers" in p.opts), None)
        if click_param is None:
            continue
        seen += 1
        assert click_param.opts == ["--layer", "-l"] or set(click_param.opts) == {"--layer", "-l"}, (name, click_param.opts)
        assert click_param.multiple, name  # a repeated -l never replaces the previous one
        assert getattr(param.default, "seethrough_layers", None) in ("one", "many"), name
        assert param.default.callback is flatten_layers, name
    assert seen >= 12


def test_out_is_a_folder_everywhere_and_old_spellings_are_gone():
    for name, sig, cmd in _commands():
        opts = _opts(cmd)
        if "--out" in opts:
            assert "-o" in opts and getattr(sig.parameters["out"].default, "seethrough_folder", False), name
        assert not {"--k", "--n", "--layers"} & opts, name  # renamed to --top / --samples / --layer
        if name != "filters":  # filters' --in-channels was --channels, which now means the model's input channels
            assert "--in-channels" not in opts, name
        assert "--quiet" in opts, name


def test_seed_wherever_anything_is_random():
    for name, sig, cmd in _commands():
        if name not in DETERMINISTIC:
            assert "--seed" in _opts(cmd), name


def test_version():
    from seethrough._version import __version__

    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"seethrough {__version__}"


def _one_line(res, *fragments):
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), res.output
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def _layers_in_table(out: str) -> list[str]:
    return [ln.split("│")[1].strip() for ln in out.splitlines() if ln.startswith("│")]


def test_repeated_and_comma_layers_keep_every_value(tmp_path):
    base = ["embed", "-m", "lenet-digits", "--samples", "60", "--method", "pca", "-o", str(tmp_path)]
    a = runner.invoke(app, [*base, "-l", "relu1", "-l", "relu3,fc3"])
    b = runner.invoke(app, [*base, "--layers", "relu1,relu3", "-l", "fc3"])  # --layers: embed's old spelling
    assert a.exit_code == 0 and b.exit_code == 0, (a.output, b.output)
    assert _layers_in_table(a.output) == _layers_in_table(b.output) == ["relu1", "relu3", "fc3"]
    assert "warning: --layers is deprecated, use --layer" in b.output and "warning" not in a.output


def test_two_layers_to_a_one_layer_command_are_refused(tmp_path):
    _one_line(runner.invoke(app, ["topk", "-m", "lenet-digits", "-l", "conv1", "-l", "conv2", "-o", str(tmp_path)]),
              "topk takes one --layer, got 2 (conv1, conv2)")
    _one_line(runner.invoke(app, ["filters", "-m", "lenet-digits", "-l", "conv1,conv2", "-o", str(tmp_path)]),
              "filters takes one --layer")
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_old_spelling_works_with_one_warning_line(tmp_path):
    base = ["activations", "chelsea", "-m", "lenet-digits", "-l", "conv2", "--how", "first"]
    new = runner.invoke(app, [*base, "--top", "3", "-o", str(tmp_path / "new")])
    old = runner.invoke(app, [*base, "--n", "3", "-o", str(tmp_path / "old")])
    more = runner.invoke(app, [*base, "--top", "6", "-o", str(tmp_path / "more")])
    assert new.exit_code == old.exit_code == more.exit_code == 0, old.output
    assert [ln for ln in old.output.splitlines() if ln.startswith("warning:")] == \
        ["warning: --n is deprecated, use --top (the old spelling goes in the next release)"]
    assert "warning" not in new.output
    png = lambda d: (tmp_path / d / "activations.png").read_bytes()  # noqa: E731
    assert png("old") == png("new") != png("more")  # --n 3 is --top 3, and --top is not ignored


def test_bundled_image_names_where_a_path_is(tmp_path):
    path = tmp_path / "cat.png"
    see.zoo.image("chelsea").save(path)
    by_name = runner.invoke(app, ["predict", "chelsea", "-m", "lenet-digits", "--top", "3"])
    by_path = runner.invoke(app, ["predict", str(path), "-m", "lenet-digits", "--top", "3"])
    assert by_name.exit_code == 0, by_name.output
    table = lambda out: [ln for ln in out.splitlines() if "%" in ln]  # noqa: E731 - the probability rows
    assert table(by_name.output) == table(by_path.output) and len(table(by_name.output)) == 3
    _one_line(runner.invoke(app, ["predict", "chelsae", "-m", "lenet-digits"]), "'chelsae'", "chelsea", "seethrough images")


# --- your own model ---------------------------------------------------------------------------------
MODULE = '''
import torch
from torch import nn


def gray28():  # a 1-channel 28x28 classifier whose first layer is a Linear
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 5))


def rgb32():  # a 3x32x32 CNN: its Linear fits 32 px only
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 15 * 15, 3))


def gray_conv():  # a 1-channel CNN of any input size
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3))
'''


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    (tmp_path / "mymod.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _reference(factory: str, size: int, gray: bool, image="chelsea") -> torch.Tensor:
    """float64 softmax of the same model on the same preprocessed image, computed here by hand."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("ref_mymod", Path("mymod.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    x = see.zoo.Preprocess(resize=round(size * 256 / 224), crop=size, grayscale=gray)(see.zoo.image(image))
    with torch.no_grad():
        return torch.softmax(getattr(mod, factory)().double()(x.double()), 1)[0]


def test_a_model_file_from_the_current_folder_and_by_path(user_dir):
    p = _reference("rgb32", 32, False)
    for spec in ("./mymod.py:rgb32", "mymod:rgb32", f"{user_dir}/mymod.py:rgb32"):
        res = runner.invoke(app, ["predict", "chelsea", "-m", spec, "--input-size", "32", "--top", "3"])
        assert res.exit_code == 0, (spec, res.output)
        for q in p.tolist():
            assert f"{q:.2%}" in res.output, (spec, res.output)


def test_shape_errors_say_which_option_to_pass(user_dir):
    _one_line(runner.invoke(app, ["predict", "chelsea", "-m", "./mymod.py:gray28"]),
              "fails on a (1, 3, 224, 224) float32 image", "pass --channels 1 --input-size 28")
    _one_line(runner.invoke(app, ["explain", "chelsea", "-m", "./mymod.py:gray_conv", "--method", "saliency"]),
              "takes 1 input channel(s): pass --channels 1")
    _one_line(runner.invoke(app, ["predict", "chelsea", "-m", "./mymod.py:rgb32"]), "--input-size N (now 224)")
    _one_line(runner.invoke(app, ["predict", "chelsea", "-m", "./nomod.py:rgb32"]), "no such Python file")
    _one_line(runner.invoke(app, ["predict", "chelsea", "-m", "lenet-digits", "--input-size", "28"]),
              "lenet-digits is a zoo model", "--input-size")


def test_gray_28_model_with_shape_options_labels_and_normalisation(user_dir):
    p = _reference("gray28", 28, True)
    res = runner.invoke(app, ["predict", "chelsea", "-m", "./mymod.py:gray28", "--channels", "1", "--input-size", "28",
                              "--top", "5"])
    assert res.exit_code == 0, res.output
    for q in p.tolist():
        assert f"{q:.2%}" in res.output
    (user_dir / "labels.txt").write_text("ant\nbee\ncat\ndog\neel\n")
    res = runner.invoke(app, ["predict", "chelsea", "-m", "./mymod.py:gray28", "--channels", "1", "--input-size", "28",
                              "--labels", "labels.txt", "--top", "5"])
    assert res.exit_code == 0 and "eel" in res.output, res.output
    (user_dir / "short.txt").write_text("ant\nbee\n")
    _one_line(runner.invoke(app, ["predict", "chelsea", "-m", "./mymod.py:gray28", "--channels", "1", "--input-size",
                                  "28", "--labels", "short.txt"]), "has 2 names but", "outputs 5 class scores")
    # --mean/--std: the model sees (x - mean) / std, its images stay in [0, 1]
    x = see.zoo.Preprocess(resize=32, crop=28, grayscale=True)(see.zoo.image("chelsea")).double()
    import importlib.util

    spec = importlib.util.spec_from_file_location("ref_mymod2", Path("mymod.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with torch.no_grad():
        q = torch.softmax(mod.gray28().double()((x - 0.5) / 0.25), 1)[0]
    res = runner.invoke(app, ["predict", "chelsea", "-m", "./mymod.py:gray28", "--channels", "1", "--input-size", "28",
                              "--mean", "0.5", "--std", "0.25", "--top", "5"])
    assert res.exit_code == 0, res.output
    for v in q.tolist():
        assert f"{v:.2%}" in res.output
    _one_line(runner.invoke(app, ["predict", "chelsea", "-m", "./mymod.py:gray28", "--channels", "1", "--input-size",
                                  "28", "--mean", "0.5"]), "--mean and --std go together")


def test_shape_options_a_run_never_used_are_named(tmp_path):
    res = runner.invoke(app, ["tcav", "--input-size", "28", "-o", str(tmp_path)])
    _one_line(res, "tcav on lenet-digits uses the bundled digits: drop --input-size")



def test_the_conventions_wrapper_adds_applies_and_removes_the_options(capsys):
    from seethrough.commands.options import SHAPE, conventions, shape_options

    seen = {}

    def cmd(model: str = "lenet-digits", load: bool = False):
        seen["shape"] = shape_options() if load else dict(SHAPE.get())
        return "ran"

    wrapped = conventions(cmd)
    assert list(inspect.signature(wrapped).parameters)[:2] == ["model", "load"]
    assert {"quiet", "input_size", "channels", "mean", "std", "labels", "device"} <= set(inspect.signature(wrapped).parameters)
    assert wrapped(model="m", load=True, input_size=28, channels=None) == "ran"
    assert seen["shape"] == {"input_size": 28} and SHAPE.get() == {}  # set for the one call only
    assert capsys.readouterr().err == ""
    wrapped(model="m", load=False, input_size=28, mean="0.5")  # given, but no model of the user's was loaded
    assert capsys.readouterr().err == "warning: --input-size, --mean not used: they describe a model given with " \
        "--model, and this run loaded none\n"


def test_device_is_checked(user_dir):
    _one_line(runner.invoke(app, ["predict", "chelsea", "-m", "lenet-digits", "--device", "toaster"]), "is not a device")
    if not torch.cuda.is_available():
        _one_line(runner.invoke(app, ["predict", "chelsea", "-m", "lenet-digits", "--device", "cuda"]),
                  "no cuda device is available", "--device cpu")
    res = runner.invoke(app, ["predict", "chelsea", "-m", "lenet-digits", "--device", "cpu"])
    assert res.exit_code == 0, res.output


def test_commands_run_a_user_model_of_its_own_shape(user_dir):
    args = ["-m", "./mymod.py:gray_conv", "--channels", "1", "--input-size", "28"]
    res = runner.invoke(app, ["explain", "chelsea", *args, "--method", "saliency", "-o", "ex"])
    assert res.exit_code == 0 and Image.open(user_dir / "ex" / "saliency.png").size[0] > 0, res.output
    res = runner.invoke(app, ["activations", "chelsea", *args, "-l", "1", "-o", "act"])
    assert res.exit_code == 0 and (user_dir / "act" / "activations.png").exists(), res.output
    res = runner.invoke(app, ["embed", *args, "--data", "photos", "--samples", "2", "--method", "pca", "-l", "1",
                              "-l", "4", "-o", "emb"])
    assert res.exit_code == 0 and (user_dir / "emb" / "embed.png").exists(), res.output
    table = [ln for ln in res.output.splitlines() if ln.startswith("│")]
    assert [ln.split("│")[1].strip() for ln in table] == ["1", "4"]  # both layers, neither dropped


def _folder(root: Path, classes: dict[str, list[str]]) -> Path:
    for sub, photos in classes.items():
        (root / sub).mkdir(parents=True, exist_ok=True)
        for i, name in enumerate(photos):
            see.zoo.image(name).resize((40, 40)).save(root / sub / f"{name}-{i}.png")
    return root


def test_report_for_a_user_model(user_dir):
    res = runner.invoke(app, ["report", "-m", "./mymod.py:rgb32", "--input-size", "32", "--quick", "-o", "rep",
                              "-s", "model-card", "-s", "user-model", "-s", "user-attribution", "-s", "user-trust"])
    assert res.exit_code == 0, res.output
    page = (user_dir / "rep" / "index.html").read_text()
    from seethrough.catalog import entries

    image_methods = [m for m, s in entries("attribution").items() if "image" in s.kinds]
    assert f"of {len(image_methods)} registered image methods" in page  # every method, from the registry
    for name in [*entries("attack"), *entries("metric")]:  # every attack and metric ran on the user's model
        assert f"<td>{name}</td>" in page, name
    assert "Skipped for ./mymod.py:rgb32: this section is built on the bundled models" in page
    assert "section model-card skipped" in res.output
    p = _reference("rgb32", 32, False, "chelsea")
    top = int(p.argmax())
    assert f"({top}) {float(p[top]):.1%}" in page  # the top prediction of chelsea, from the float64 reference
    _one_line(runner.invoke(app, ["report", "-s", "user-model", "-o", "rep2"]), "give --model")


SMALL = ["-m", "./mymod.py:gray_conv", "--channels", "1", "--input-size", "28"]


def test_tcav_on_a_user_model(user_dir):
    data = _folder(user_dir / "cls", {".": ["chelsea", "coffee", "astronaut", "rocket"]})
    res = runner.invoke(app, ["tcav", *SMALL, "-l", "1", "--data", str(data), "--target", "0", "--random-sets", "2",
                              "--samples", "6", "-o", "tc"])
    assert res.exit_code == 0 and (user_dir / "tc" / "tcav.png").exists(), res.output
    assert any(ln.startswith("1: TCAV score") for ln in res.output.splitlines()), res.output
    _one_line(runner.invoke(app, ["tcav", *SMALL, "-l", "1"]), "tcav on your own model needs --data")
    _one_line(runner.invoke(app, ["tcav", "--data", str(data)]), "uses the bundled digits", "--data")


def _train(user_dir):
    train = _folder(user_dir / "train", {"0": ["chelsea", "coffee"], "2": ["astronaut", "rocket"]})
    from seethrough.loading import load_model

    loaded = load_model("./mymod.py:gray_conv", input_size=28, channels=1)
    from seethrough.commands.base import image_folder

    x, y, _, _ = image_folder(train, loaded.preprocess, "--train")
    return train, loaded, x, y


def test_influence_on_a_user_model(user_dir):
    train, loaded, x, y = _train(user_dir)
    res = runner.invoke(app, ["influence", *SMALL, "--train", str(train), "--test", "motorcycle", "--method", "exact",
                              "--damping", "3", "--top", "2", "-o", "inf"])
    assert res.exit_code == 0 and (user_dir / "inf" / "influence.png").exists(), res.output
    xt = loaded.preprocess(see.zoo.image("motorcycle"))
    c = see.predict(loaded.model, xt, k=1)[0][0].index
    r = see.influence(loaded.model, (x, y), (xt, torch.tensor([c])), method="exact", damping=3.0, progress=False)
    idx, vals = r.top(2, "helpful")
    assert f"helpful: #{idx[0].item()} ('{y[idx[0]].item()}') {vals[0].item():+.3g}" in res.output
    _one_line(runner.invoke(app, ["influence", *SMALL]), "influence on your own model needs --train")


def test_distill_on_a_user_model(user_dir):
    train, loaded, x, y = _train(user_dir)
    res = runner.invoke(app, ["distill", *SMALL, "--data", str(train), "--depth", "2", "-o", "dis"])
    assert res.exit_code == 0 and (user_dir / "dis" / "tree.png").exists(), res.output
    s = see.distill(loaded.model, (x, y), depth=2, seed=0)
    assert f"tree of depth {s.depth}: fidelity {s.fidelity:.1%}, accuracy {s.accuracy:.1%}" in res.output
    _one_line(runner.invoke(app, ["distill", *SMALL]), "distill on your own model needs --data")
