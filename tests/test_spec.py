"""The spec type (seethrough.spec) and the catalog (seethrough.catalog): options derived from the
functions, checked and converted the same way for the CLI, the explorer and the API (issue 19, item 1)."""
from __future__ import annotations

import inspect
from typing import Literal

import pytest

import seethrough as see
from seethrough import catalog
from seethrough.commands.entry_options import entries_help, entry_options
from seethrough.spec import Option, Spec, docstring_help, options_from


def _method(model, x, target=None, *, steps: int = 8, rate: float = 0.5, flag: bool = False,
            mode: Literal["a", "b"] = "a", window: int | tuple[int, int] = 4, name: str | None = None,
            progress: bool = True, **rest):
    """A test method. ``steps``: how many. ``rate`` (a fraction): the rate. ``window``: its side."""


def test_options_follow_the_signature_in_order_with_types_defaults_and_help():
    opts = options_from(_method)
    assert [o.name for o in opts] == ["steps", "rate", "flag", "mode", "window", "name"]  # model, x, target, progress, **rest: not options
    by = {o.name: o for o in opts}
    assert (by["steps"].type, by["steps"].default, by["steps"].help) == ("int", 8, "how many.")
    assert (by["rate"].type, by["rate"].help) == ("float", "the rate.")
    assert by["mode"].choices == ("a", "b") and by["flag"].type == "bool" and by["window"].type == "int-or-pair"
    assert by["name"].type == "str" and by["name"].default is None


def test_declared_fields_override_and_add():
    opts = options_from(_method, declared={"steps": {"range": (1, None)}, "extra": {"default": 3}})
    by = {o.name: o for o in opts}
    assert by["steps"].range == (1, None) and by["extra"].type == "int" and by["extra"].default == 3


@pytest.mark.parametrize("opt, raw, want", [
    (Option("n", "int"), "12", 12), (Option("r", "float"), "0.25", 0.25), (Option("b", "bool"), "false", False),
    (Option("b", "bool"), "yes", True), (Option("w", "int-or-pair"), "32", 32), (Option("w", "int-or-pair"), "32,16", (32, 16)),
    (Option("a", "any"), "blur", "blur"), (Option("a", "any"), "0.5", 0.5), (Option("a", "any"), "none", None),
    (Option("s", "str"), "x", "x"),
])
def test_coerce_converts_command_line_strings(opt, raw, want):
    assert opt.coerce(raw) == want


@pytest.mark.parametrize("opt, raw, says", [
    (Option("steps", "int"), "many", "--steps takes a whole number, got 'many'"),
    (Option("flag", "bool"), "maybe", "--flag takes true or false"),
    (Option("mode", "str", choices=("a", "b")), "c", "--mode must be one of a, b, got 'c'"),
    (Option("steps", "int", range=(1, 10)), "11", "--steps must be from 1 to 10, got 11"),
    (Option("w", "int-or-pair"), "1,2,3", "--w takes a whole number or two"),
])
def test_coerce_refuses_bad_values_naming_the_option(opt, raw, says):
    with pytest.raises(ValueError, match=says):
        opt.coerce(raw)


def test_check_and_parse_cli_name_the_unknown_option_and_the_known_ones():
    spec = Spec("m", "attribution", _method, options=options_from(_method))
    with pytest.raises(ValueError, match=r"m takes no option --stpes; it takes --steps, --rate"):
        spec.check({"stpes": 1})
    assert spec.parse_cli(["--steps", "3", "--flag", "--window=8,8"]) == {"steps": 3, "flag": True, "window": (8, 8)}
    assert spec.parse_cli(["--no-flag"]) == {"flag": False}
    with pytest.raises(ValueError, match="given twice"):
        spec.parse_cli(["--steps", "3", "--steps", "4"])


def test_docstring_help_reads_the_sentence_after_the_name():
    assert docstring_help("``a``: first. ``b`` (x, y): second one.", "b") == "second one."
    assert docstring_help("nothing here", "a") == ""


@pytest.mark.parametrize("family", catalog.FAMILIES)
def test_every_family_has_entries_and_every_default_passes_its_own_check(family):
    found = catalog.entries(family)
    assert found, family
    for spec in found.values():
        assert spec.family == family and spec.name
        for o in spec.options:
            if not o.required and o.default is not None and isinstance(o.default, (int, float, str)):
                assert o.coerce(o.default) == o.default, (spec.name, o.name)


def test_attribution_specs_cover_every_registered_method_and_their_options_exist():
    specs = catalog.entries("attribution")
    assert list(specs) == list(see.attribution.METHODS)
    ig = specs["integrated-gradients"]
    sig = inspect.signature(see.attribution.gradient.integrated_gradients).parameters
    assert all(o.name in sig or o.name == "conductance" for o in ig.options)  # read from the function it forwards to
    assert "kind" not in [o.name for o in specs["smoothgrad"].options]  # set by the entry itself (fixed)


def test_an_unknown_family_or_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown family 'methods'; families: attribution"):
        catalog.entries("methods")
    with pytest.raises(ValueError, match="unknown attack 'pdg'; available: "):
        catalog.get("attack", "pdg")


def test_entry_options_go_to_the_methods_that_take_them():
    got = entry_options("attribution", ["integrated-gradients", "smoothgrad"], ["--steps", "4", "--n-samples", "3"])
    assert got == {"integrated-gradients": {"steps": 4}, "smoothgrad": {"n_samples": 3}}
    with pytest.raises(ValueError, match="--window is not an option of saliency, gradcam"):
        entry_options("attribution", ["saliency", "gradcam"], ["--window", "8"])
    with pytest.raises(ValueError, match="unexpected argument 'stray'"):
        entry_options("attribution", ["saliency"], ["stray"])
    with pytest.raises(ValueError, match="--steps needs a value"):
        entry_options("attribution", ["integrated-gradients"], ["--steps"])


def test_help_lists_each_entry_with_its_options_read_at_help_time():
    text = entries_help("attribution")
    for name in see.attribution.METHODS:
        assert f"\n\n{name}" in text
    assert "[" not in text  # rich would read square brackets as markup and drop them
