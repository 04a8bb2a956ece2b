"""The conformance suite, option half (issue 19 item 4): for every registered entry of every data family,
read from :mod:`seethrough.catalog`,

* an unknown option is a ValueError/TypeError naming it, through the entry's public call path and through
  ``Spec.check``; a value outside an option's declared choices or range is an error naming the option;
* the spec is sane: a name, a paper where the family has papers, every default passes ``Option.coerce``,
  and the function accepts every option the spec lists (all set to their defaults at once: no "unknown
  option" error), so a spec never drifts from its function;
* the suite's own tables (FAST, NOT_PER_SAMPLE) name real entries and real options.
"""
from __future__ import annotations

import pytest

from tests import conformance_fixtures as cf
from tests.test_hygiene import _deterministic_batches  # noqa: F401 (autouse: no batch-size probing)

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::RuntimeWarning", "ignore::UserWarning")

ENTRIES = cf.every_entry()
# Families whose entries cite where they come from (objectives are Lucent-style building blocks, not papers).
WITH_PAPERS = ("attribution", "attack", "metric", "projection", "influence", "sanity")


@pytest.mark.parametrize("entry", ENTRIES)
def test_an_unknown_option_is_an_error_naming_it(entry):
    spec = cf.spec_of(entry)
    with pytest.raises(ValueError, match="--bogus"):
        spec.check({"bogus": 1})
    case = cf.kind_case(spec.kinds[0] if "image" not in spec.kinds else "image", spec.name)
    with cf.untouched(case.model, allow_raise=()):
        with pytest.raises((ValueError, TypeError), match="bogus") as e:
            cf.call(entry, case, bogus=1)
    assert "\n" not in str(e.value), f"{entry}: a multi-line error: {e.value}"


def _bad_values() -> list[tuple[str, str, object]]:
    """(entry, option, a value outside the option's choices or range) for every option that declares them."""
    out = []
    for entry in ENTRIES:
        for o in cf.spec_of(entry).options:
            if o.choices:
                out.append((entry, o.name, "not-" + "-".join(map(str, o.choices))))
            elif o.range:
                lo, hi = o.range
                out.append((entry, o.name, lo - 1 if lo is not None else hi + 1))
    return out


BAD = _bad_values()


def test_some_options_declare_choices_or_ranges():
    """The check below has cases to run (the attacks' budgets and steps declare a range)."""
    assert any(e.startswith("attack:") for e, _, _ in BAD)


@pytest.mark.parametrize("entry, option, value", BAD, ids=[f"{e}--{o}" for e, o, _ in BAD])
def test_a_value_outside_the_declared_choices_or_range_is_an_error_naming_the_option(entry, option, value):
    spec = cf.spec_of(entry)
    flag = spec.option(option).flag
    with pytest.raises(ValueError, match=flag):
        spec.check({option: value})
    case = cf.kind_case("image", spec.name)
    with cf.untouched(case.model):
        with pytest.raises((ValueError, TypeError), match=option) as e:
            cf.call(entry, case, **{option: value})
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("entry", [pytest.param(e, marks=[pytest.mark.slow] if e in cf.SLOW else []) for e in ENTRIES])
def test_the_spec_is_sane_and_matches_its_function(entry):
    spec = cf.spec_of(entry)
    family = entry.split(":", 1)[0]
    assert spec.name and spec.family == family and callable(spec.fn)
    if family in WITH_PAPERS:
        assert spec.paper.strip(), f"{entry} names no paper"
    assert spec.kinds and set(spec.kinds) <= {"image", "tabular", "tokens", "tensor"}, spec.kinds
    names = [o.name for o in spec.options]
    assert len(names) == len(set(names)), f"{entry} lists an option twice: {names}"
    for o in spec.options:
        if not o.required:
            assert o.coerce(o.default, spec.name) == o.default, f"{entry} --{o.name}: default {o.default!r}"
    # Every listed option, at its default, reaches the function without an "unknown option" error.
    case = cf.kind_case("image", spec.name)
    defaults = {o.name: o.default for o in spec.options if not o.required}
    with cf.untouched(case.model):
        cf.call(entry, case, **{**defaults, **cf.fast(family, spec.name)})


def test_fast_and_the_exemptions_name_real_entries_and_options():
    entries = set(ENTRIES)
    for entry, opts in cf.FAST.items():
        assert entry in entries, f"FAST names {entry}, which is not registered"
        names = {o.name for o in cf.spec_of(entry).options}
        extra = sorted(set(opts) - names)
        assert not extra, f"FAST[{entry!r}] sets {extra}, not options of it (re-read the spec): {sorted(names)}"
    for entry, why in cf.NOT_PER_SAMPLE.items():
        assert entry in entries and why.strip(), entry


def test_a_new_entry_is_enumerated_with_no_edit_to_the_suite():
    """Registering an attribution method makes it part of the suite's entry list (it is read, not listed)."""
    import seethrough as see
    from seethrough.attribution import METHODS

    @see.attribution.register("conformance-probe", family="gradient", paper="a test", kinds=("image",))
    def probe(model, x, target=None, *, scale: float = 1.0):
        """``scale``: multiplies the saliency map."""
        return scale * see.attribute(model, x, "saliency", target=target)

    try:
        assert "attribution:conformance-probe" in cf.every_entry()
        spec = cf.spec_of("attribution:conformance-probe")
        assert [o.name for o in spec.options] == ["scale"]
        assert spec.option("scale").help == "multiplies the saliency map."
        with pytest.raises(ValueError, match="--bogus"):
            spec.check({"bogus": 1})
    finally:
        METHODS.pop("conformance-probe", None)
