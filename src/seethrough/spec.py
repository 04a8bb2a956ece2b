"""One small spec type for every registered entry: its name, function, family, paper, input kinds,
options and result type (issue 19).

Options are *derived*, never listed twice: from the function's signature (type hints, defaults,
``Literal[...]`` choices) and its docstring (the sentence after ````name````), so a renamed or new
option reaches the CLI, the explorer and the report with no other change. A family can declare
more per option (``choices``, ``range``, ``help``) with ``declared=``; declared values win.

>>> def blur(model, x, target=None, *, sigma: float = 1.0, mode: Literal["fast", "exact"] = "fast"):
...     '''``sigma``: the blur's width in pixels. ``mode``: how it is computed.'''
>>> s = Spec("blur", "attribution", blur, options=options_from(blur, skip=("model", "x", "target")))
>>> [(o.name, o.type, o.default, o.choices) for o in s.options]
[('sigma', 'float', 1.0, None), ('mode', 'str', 'fast', ('fast', 'exact'))]
>>> s.option("sigma").help
"the blur's width in pixels."
>>> s.parse_cli(["--sigma", "2.5", "--mode=exact"])
{'sigma': 2.5, 'mode': 'exact'}
>>> s.parse_cli(["--sigmaa", "2"])
Traceback (most recent call last):
ValueError: blur takes no option --sigmaa; it takes --sigma, --mode
"""
from __future__ import annotations

import inspect
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence  # noqa: F401 (Literal: the doctest)

# What a user never sets through a method's options: the data and the bookkeeping every entry shares.
SHARED = ("model", "x", "target", "inputs", "progress", "self", "s", "session", "ctx")


@dataclass(frozen=True)
class Option:
    """One option of an entry: ``type`` is a short name (``int``, ``float``, ``bool``, ``str``,
    ``int-or-pair``, ``any``...), ``range`` an inclusive ``(low, high)`` with ``None`` for open."""

    name: str
    type: str = "any"
    default: Any = None
    help: str = ""
    choices: tuple | None = None
    range: tuple | None = None
    required: bool = False

    @property
    def flag(self) -> str:
        """The command-line spelling: ``n_samples`` → ``--n-samples``."""
        return "--" + self.name.replace("_", "-")

    def describe(self) -> str:
        """One line for ``--help``: flag, type, default, choices/range and help.

        >>> Option("steps", "int", 50, "quadrature points", range=(1, None)).describe()
        '--steps INT (default 50, ≥ 1): quadrature points'
        """
        bits = [] if self.required else [f"default {self.default!r}" if isinstance(self.default, str)
                                           else f"default {self.default}"]
        if self.choices:
            bits.append("one of " + ", ".join(map(str, self.choices)))
        if self.range:
            lo, hi = self.range
            bits.append(f"≥ {lo}" if hi is None else f"≤ {hi}" if lo is None else f"{lo}–{hi}")
        kind = "" if self.type == "bool" else " " + self.type.replace("optional-", "").upper().replace("-", "_")
        return f"{self.flag}{kind} ({', '.join(bits)})" + (f": {self.help}" if self.help else "")

    def coerce(self, value: Any, owner: str = "") -> Any:
        """A value from the command line (a string) or a JSON form field made into the option's type,
        checked against its choices and range; a bad one is a ValueError naming the option.

        >>> Option("steps", "int", 50, range=(1, None)).coerce("128")
        128
        >>> Option("steps", "int", 50, range=(1, None)).coerce("0", "integrated-gradients")
        Traceback (most recent call last):
        ValueError: integrated-gradients --steps must be ≥ 1, got 0
        """
        where = f"{owner} {self.flag}" if owner else self.flag
        v = _convert(self, value, where)
        if self.choices and v not in self.choices:
            raise ValueError(f"{where} must be one of {', '.join(map(str, self.choices))}, got {value!r}")
        if self.range and isinstance(v, (int, float)) and not isinstance(v, bool):
            lo, hi = self.range
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                rng = f"≥ {lo}" if hi is None else f"≤ {hi}" if lo is None else f"from {lo} to {hi}"
                raise ValueError(f"{where} must be {rng}, got {v}")
        return v


def _convert(opt: Option, value: Any, where: str) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        if opt.type == "bool":
            low = text.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if opt.type == "int":
            return int(text)
        if opt.type == "float":
            return float(text)
        if opt.type in ("int-or-pair", "float-or-pair"):
            cast = int if opt.type == "int-or-pair" else float
            parts = [cast(p) for p in text.replace("x", ",").split(",") if p.strip()]
            if len(parts) not in (1, 2):
                raise ValueError
            return parts[0] if len(parts) == 1 else tuple(parts)
    except ValueError:
        raise ValueError(f"{where} takes {_TYPE_WORDS.get(opt.type, opt.type)}, got {value!r}") from None
    if opt.type in ("any", "number-or-str", "optional-float", "optional-int"):
        if text.lower() == "none":
            return None
        for cast in (int, float):
            try:
                return cast(text)
            except ValueError:
                pass
    return text


_TYPE_WORDS = {"bool": "true or false", "int": "a whole number", "float": "a number",
               "int-or-pair": "a whole number or two (H,W)", "float-or-pair": "a number or two (H,W)"}


@dataclass(frozen=True)
class Spec:
    """A registered entry of any family (attribution method, attack, objective, metric, projection,
    influence solver, sanity test, report section, explorer view)."""

    name: str
    family: str
    fn: Callable | None
    paper: str = ""
    kinds: tuple[str, ...] = ("image",)
    options: tuple[Option, ...] = ()
    result: str = ""
    description: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def option(self, name: str) -> Option:
        for o in self.options:
            if o.name == name:
                return o
        raise KeyError(f"{self.name} has no option {name!r}; it takes {', '.join(o.name for o in self.options) or 'none'}")

    def check(self, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` with every value coerced; an unknown name is a ValueError listing the known ones.

        >>> Spec("x", "attack", None, options=(Option("eps", "float", 2.0),)).check({"eps": "4"})
        {'eps': 4.0}
        """
        known = {o.name: o for o in self.options}
        unknown = [k for k in options if k not in known]
        if unknown:
            raise ValueError(f"{self.name} takes no option {', '.join(known.get(k, Option(k)).flag for k in unknown)}; "
                             f"it takes {', '.join(o.flag for o in self.options) or 'none'}")
        return {k: known[k].coerce(v, self.name) for k, v in options.items()}

    def parse_cli(self, args: Sequence[str]) -> dict[str, Any]:
        """``["--steps", "128", "--no-abs", "--window=32,32"]`` → the checked options dict."""
        flags = {o.flag: o for o in self.options}
        raw = split_flags(args, flags, self.name)
        return self.check({(flags[f].name if f in flags else f[2:].replace("-", "_")): v for f, v in raw.items()})

    def help(self) -> str:
        """The entry's block for ``--help`` and docs: name, paper, one line per option."""
        head = f"{self.name}" + (f" ({self.paper})" if self.paper else "")
        lines = [head] + [f"    {o.describe()}" for o in self.options]
        return "\n".join(lines)


def split_flags(args: Sequence[str], flags: dict[str, Option], where: str = "") -> dict[str, Any]:
    """``{flag: raw value}`` from ``--flag value`` / ``--flag=value`` / ``--bool`` / ``--no-bool``; a
    repeated flag is an error. An unknown flag is kept (with the value after it) for the caller to
    name in its own error, which knows what was expected.

    >>> split_flags(["--steps", "8", "--no-abs"], {"--steps": Option("steps", "int"), "--abs": Option("abs", "bool")})
    {'--steps': '8', '--abs': 'false'}
    """
    head = f"{where}: " if where else ""
    out: dict[str, Any] = {}
    i, args = 0, list(args)
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ValueError(f"{head}unexpected argument {arg!r}; options look like --name VALUE")
        flag, eq, value = arg.partition("=")
        if flag not in flags and flag.startswith("--no-") and getattr(flags.get("--" + flag[5:]), "type", "") == "bool":
            flag, eq, value = "--" + flag[5:], "=", "false"
        opt = flags.get(flag)
        if not eq:
            if opt is not None and opt.type == "bool" and (i + 1 == len(args) or args[i + 1].startswith("--")):
                value = "true"
            elif i + 1 < len(args) and not args[i + 1].startswith("--"):
                i += 1
                value = args[i]
            elif opt is None:
                value = "true"  # an unknown flag alone: reported by the caller, naming it
            else:
                raise ValueError(f"{head}{flag} needs a value")
        if flag in out:
            raise ValueError(f"{head}{flag} given twice: give it once")
        out[flag] = value
        i += 1
    return out


# ----------------------------------------------------------------------------- derivation
def _type_name(annotation: Any, default: Any) -> tuple[str, tuple | None]:
    """A short type name and the choices of a ``Literal`` from an annotation (a string under
    ``from __future__ import annotations``) or, failing that, from the default's type."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    if annotation is inspect.Parameter.empty:
        text = ""
    m = re.search(r"Literal\[(.*?)\]", text)
    if m:
        choices = tuple(eval(f"({m.group(1)},)", {}))  # literal strings/numbers only, from our own source
        return ("str" if all(isinstance(c, str) for c in choices) else "any"), choices
    parts = {p.strip() for p in text.replace("Optional[", "").replace("]", "").split("|")} - {"None", ""}
    if parts == {"bool"}:
        return "bool", None
    if parts == {"int"}:
        return "int", None
    if parts <= {"float", "int"} and parts:
        return "float", None
    if parts == {"str"}:
        return "str", None
    if parts and all(p.startswith(("int", "tuple[int")) for p in parts) and len(parts) > 1:
        return "int-or-pair", None
    if not parts:
        for t, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str")):
            if isinstance(default, t):
                return name, None
    return "any", None


def docstring_help(doc: str | None, name: str) -> str:
    """The sentence that documents ````name```` in a docstring (``name``: ..., or ``name`` (...) ...).

    >>> docstring_help("``steps`` quadrature points by ``rule``. ``rule``: the nodes.", "rule")
    'the nodes.'
    """
    if not doc:
        return ""
    text = " ".join(doc.split())
    m = re.search(rf"``{re.escape(name)}``\s*(?:\([^)]*\))?\s*[:—=-]\s*(.+?(?:\.(?=\s|$)|$))", text)
    if not m:
        m = re.search(rf"``{re.escape(name)}``\s+(.+?(?:\.(?=\s|$)|$))", text)
    if not m:
        return ""
    # one clause: stop where the docstring goes on to the next option (``other``) or after a semicolon
    found = re.split(r";\s|\s``(?=[a-z_]+``)", m.group(1))[0]
    return _plain(found)


def _plain(text: str, limit: int = 160) -> str:
    """Docstring markup made plain for a terminal or a form: roles and double backticks dropped,
    cut at ``limit`` characters on a word."""
    text = re.sub(r":\w+:`~?([^`]*)`", r"\1", text).replace("``", "").strip()
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0] + " …"
    return text


_DERIVED: dict[tuple, tuple[Option, ...]] = {}


def options_from(fn: Callable, *, skip: Sequence[str] = SHARED, declared: dict[str, dict] | None = None,
                 impl: Callable | None = None, fixed: Sequence[str] = ()) -> tuple[Option, ...]:
    """The options of ``fn`` (or of ``impl``, the function a thin registry wrapper forwards to):
    every parameter not in ``skip``/``fixed`` and not ``*args``/``**kwargs``, in signature order,
    plus ``declared`` ones (a wrapper taking ``**options``), declared fields overriding derived ones.

    Derived once per function and arguments (a signature does not change while the process runs), so
    the explorer's ``/api/info`` and every ``--help`` read the whole catalog in milliseconds.
    """
    key = (impl or fn, tuple(skip), tuple(fixed), repr(declared))
    if key not in _DERIVED:
        _DERIVED[key] = _derive(fn, skip, declared, impl, fixed)
    return _DERIVED[key]


def _derive(fn: Callable, skip: Sequence[str], declared: dict[str, dict] | None, impl: Callable | None,
            fixed: Sequence[str]) -> tuple[Option, ...]:
    target = impl or fn
    declared = dict(declared or {})
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        sig = None
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # unresolvable forward references: fall back on the raw annotation strings
        hints = {}
    doc = inspect.getdoc(target) or ""
    out: list[Option] = []
    for p in (sig.parameters.values() if sig else ()):
        if p.name in skip or p.name in fixed or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = None if p.default is p.empty else p.default
        ann = p.annotation if p.annotation is not p.empty else hints.get(p.name, p.empty)
        if not isinstance(ann, str) and ann is not p.empty:
            ann = str(ann).replace("typing.", "")
        tname, choices = _type_name(ann, default)
        fields = {"type": tname, "default": default, "help": docstring_help(doc, p.name), "choices": choices,
                  "required": p.default is p.empty}
        fields.update(declared.pop(p.name, {}))
        out.append(Option(p.name, **fields))
    for name, fields in declared.items():
        fields = dict(fields)
        if "type" not in fields:
            fields["type"] = _type_name(inspect.Parameter.empty, fields.get("default"))[0]
        fields.setdefault("help", docstring_help(doc, name))
        out.append(Option(name, **fields))
    return tuple(out)


def option_for(name: str, default: Any, **fields: Any) -> Option:
    """An option declared by its default alone (the attacks' ``defaults``), its type read from the value.

    >>> option_for("steps", 10).type, option_for("norm", "linf").type
    ('int', 'str')
    """
    return Option(name, fields.pop("type", None) or _type_name(inspect.Parameter.empty, default)[0], default, **fields)


def first_line(fn: Callable | None) -> str:
    """The first sentence of ``fn``'s docstring, for menus and tables."""
    doc = inspect.getdoc(fn) if fn is not None else ""
    return (doc or "").split("\n\n")[0].replace("\n", " ").strip()
