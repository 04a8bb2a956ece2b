"""The chosen entry's own options on the command line, from its registry spec (issue 19):
``seethrough explain chelsea --method integrated-gradients --steps 128 --baseline blur``.

A family command is declared with ``cls=spec_command("attribution")`` and takes
``ctx: typer.Context``; before click parses the command line, the flags the command does not declare
are taken out (with their values) into ``ctx.meta["entry_args"]`` — so ``--steps 128`` is never read as
the IMAGE argument, wherever it stands — and :func:`entry_options` turns them into ``{entry: options}``.
``--help`` ends with every entry's options, read from :mod:`seethrough.catalog` when the help is
printed, so an entry registered a moment ago is listed.
"""
from __future__ import annotations

from typing import Any, Sequence

from typer.core import TyperCommand

from ..spec import Option, split_flags

ENTRY_ARGS = "entry_args"  # the ctx.meta key holding the chosen entries' flags and values

_TITLES = {"attribution": "Method options", "attack": "Attack options", "projection": "Projection options",
           "influence": "Influence solver options", "metric": "Metric options"}


def entries_help(family: str) -> str:
    """The help block listing each entry of ``family`` with its options (paragraphs for rich's help).

    >>> "--steps INT (default 50" in entries_help("attribution")
    True
    """
    from ..catalog import entries

    blocks = [f"{_TITLES.get(family, family.title() + ' options')} (give them after the command, e.g. "
              f"--steps 128; each applies to the chosen entries that take it):"]
    for spec in entries(family).values():
        lines = [f"{spec.name}" + (f" ({spec.paper})" if spec.paper else "")]
        lines += [f"  {o.describe()}" for o in spec.options if not o.required] or ["  no options"]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks).replace("[", "(").replace("]", ")")  # rich reads square brackets as markup


def _bool_flags(family: str) -> set[str]:
    from ..catalog import entries

    return {o.flag for s in entries(family).values() for o in s.options if o.type == "bool"}


def split_entry_args(args: Sequence[str], own: set[str], bools: set[str]) -> tuple[list[str], list[str]]:
    """``(the command's own arguments, the entries' flags with their values)``: a ``--flag`` the command
    does not declare goes to the entries with the value after it (unless it is a bool flag, or written
    ``--flag=value``); everything after ``--`` stays the command's.

    >>> split_entry_args(["--steps", "8", "chelsea", "--method", "ig", "--abs"], {"--method"}, {"--abs"})
    (['chelsea', '--method', 'ig'], ['--steps', '8', '--abs'])
    """
    mine, theirs, i, args = [], [], 0, list(args)
    while i < len(args):
        a = args[i]
        if a == "--":
            mine.extend(args[i:])
            break
        flag = a.partition("=")[0]
        if a.startswith("--") and flag not in own:
            theirs.append(a)
            boolean = flag in bools or (flag.startswith("--no-") and "--" + flag[5:] in bools)
            if "=" not in a and not boolean and i + 1 < len(args) and not args[i + 1].startswith("--"):
                i += 1
                theirs.append(args[i])
        else:
            mine.append(a)
        i += 1
    return mine, theirs


def spec_command(family: str, *listed: str) -> type:
    """A click command class taking ``family``'s entry options (see the module docstring), whose
    ``--help`` epilog lists the entries and options of ``family`` (and of the ``listed`` families the
    command also chooses from, such as faithfulness's metrics) as registered now."""

    class SpecCommand(TyperCommand):
        @property
        def epilog(self) -> str:  # read at help time: the registry as it is then
            return "\n\n".join(entries_help(f) for f in (family, *listed))

        @epilog.setter
        def epilog(self, value: Any) -> None:  # click sets it in __init__; the registry's text replaces it
            pass

        def parse_args(self, ctx, args):
            own = {d for p in self.get_params(ctx) for d in (*p.opts, *p.secondary_opts)}
            mine, theirs = split_entry_args(args, own, _bool_flags(family))
            ctx.meta[ENTRY_ARGS] = theirs
            return super().parse_args(ctx, mine)

    SpecCommand.__name__ = f"{family.title()}Command"
    return SpecCommand


def chosen(ctx, family: str, names: Sequence[str]) -> dict[str, dict]:
    """The options of each chosen entry from a :func:`spec_command`'s command line."""
    return entry_options(family, names, ctx.meta.get(ENTRY_ARGS, []), ctx.info_name or "")


def entry_options(family: str, names: Sequence[str], args: Sequence[str], command: str = "") -> dict[str, dict]:
    """``{name: options}`` for each chosen entry from the extra command-line ``args``.

    Each option goes to the chosen entries that take it; one that none of them takes is a
    ValueError naming it and what they take; a value is checked and converted by the spec.

    >>> entry_options("attribution", ["integrated-gradients", "saliency"], ["--steps", "8", "--no-abs"])
    {'integrated-gradients': {'steps': 8}, 'saliency': {'abs': False}}
    >>> entry_options("attribution", ["saliency"], ["--steps", "8"], "explain")
    Traceback (most recent call last):
    ValueError: explain: --steps is not an option of explain nor of saliency; they take --abs, --score, --layer, --unit, --reduce (seethrough explain --help lists each method's)
    """
    from ..catalog import get

    specs = {n: get(family, n) for n in names}
    flags: dict[str, Option] = {}
    for spec in specs.values():
        for o in spec.options:
            flags.setdefault(o.flag, o)
    args = _renamed(list(args), specs, flags)
    raw = split_flags(args, flags, command)
    out: dict[str, dict] = {n: {} for n in names}
    for flag, value in raw.items():
        takers = [n for n, s in specs.items() if any(o.flag == flag for o in s.options)]
        if not takers:
            known = ", ".join(flags) or "no options"
            where = f"{command}: " if command else ""
            helpers = f" (seethrough {command} --help lists each {'method' if family == 'attribution' else family}'s)" \
                if command else ""
            raise ValueError(f"{where}{flag} is not an option of {command + ' nor of ' if command else ''}"
                             f"{', '.join(names)}; they take {known}{helpers}")
        for n in takers:
            out[n][specs[n].option(flags[flag].name).name] = value
    return {n: specs[n].check(o) for n, o in out.items()}


def _renamed(args: list[str], specs: dict, flags: dict[str, Option]) -> list[str]:
    """Old option spellings (``--lr``, ``--epsilon``...) mapped to the new, one warning each (one release)."""
    import warnings

    old = {}
    for spec in specs.values():
        for o, n in spec.extra.get("renamed", {}).items():
            old["--" + o.replace("_", "-")] = "--" + n.replace("_", "-")
    out = []
    for a in args:
        flag, eq, value = a.partition("=")
        if flag in old and flag not in flags:
            warnings.warn(f"{flag} is renamed {old[flag]}; the old spelling is removed in the next release", FutureWarning)
            a = old[flag] + eq + value
        out.append(a)
    return out
