"""Typed, validated configuration: TOML files, built-in defaults and dotted ``--set`` overrides.

A configuration is a two-level table ``[section] key = value`` plus the top-level key
``problem``.  Every key has a *spec* that coerces and checks its value; an unknown section or key,
a wrong type or an out-of-range value raises :class:`~meanfield_pde.errors.ConfigError` with one
line naming the key and what is accepted.  The resolved configuration (every key filled in) is what
a result file records, as JSON; infinities are written as the string ``"inf"`` so that the JSON is
standard.

This module holds the spec types, :class:`Config` and the TOML side; the schema of each problem
(every section, key and default) is declared by the problem (``Problem.schema``, e.g.
:mod:`meanfield_pde.problems.gaussians_schema`) and found through the problem registry.  The
sections every problem shares with the runner (``TIME``, ``SCHEDULE``, ``CHECKPOINT``, ...) are
defined here for the problems to include.

Names follow MATH.md: ``model.delta`` (Δ), ``model.d``, ``init.kappa`` (κ), ``schedule`` (ξ(t)), ...
"""

from __future__ import annotations

import copy
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from .config_checks import MIN_OUTPUT_SPACING, check_common  # noqa: F401 (importable here)
from .errors import ConfigError, OptionError

INF_NAMES = ("inf", "infinity", "+inf")


# --------------------------------------------------------------------------------------------
# value specs
# --------------------------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**60:
        digits = int(math.log10(abs(value))) + 1  # str() refuses more than 4300 digits
        digits -= 10 ** (digits - 1) > abs(value)  # log10 rounded up to a power of ten
        return f"an integer of {digits} digits"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True)
class Spec:
    """How one configuration key is checked. ``coerce`` returns the canonical value or raises."""

    default: Any
    doc: str = ""

    def coerce(self, value: Any, key: str) -> Any:  # pragma: no cover - abstract
        """The canonical value of ``value`` for ``key``; raises the ConfigError of :meth:`fail`."""
        raise NotImplementedError

    def describe(self) -> str:  # the accepted values, for error messages and the README
        """The accepted values in words, for error messages and the README key tables."""
        return ""

    def fail(self, key: str, value: Any, why: str = "") -> ConfigError:
        """The one-line ConfigError ``key = value <why>; accepted: <describe()>``."""
        what = why or "is not accepted"
        return ConfigError(f"{key} = {_fmt(value)} {what}; accepted: {self.describe()}")


def _as_float(spec: Spec, value: Any, key: str, allow_inf: bool = False) -> float:
    if isinstance(value, bool):
        raise spec.fail(key, value, "is a boolean")
    if isinstance(value, str) and allow_inf and value.strip().lower() in INF_NAMES:
        return math.inf
    if not isinstance(value, int | float):
        raise spec.fail(key, value, "is not a number")
    try:
        x = float(value)
    except OverflowError:
        raise spec.fail(key, value, "is too large") from None
    if math.isnan(x) or (math.isinf(x) and not (allow_inf and x > 0)):
        raise spec.fail(key, value, "is not finite")
    return x


@dataclass(frozen=True)
class Float(Spec):
    """A real number in an interval; ``lo``/``hi`` exclusive unless ``*_closed``."""

    lo: float | None = None
    hi: float | None = None
    lo_closed: bool = False
    hi_closed: bool = False
    allow_inf: bool = False

    def describe(self) -> str:
        parts = []
        if self.lo is not None:
            parts.append(f"{self.lo:g} {'<=' if self.lo_closed else '<'} x")
        if self.hi is not None:
            parts.append(f"x {'<=' if self.hi_closed else '<'} {self.hi:g}")
        rng = " and ".join(parts) if parts else "any finite number"
        return rng + (" (or inf)" if self.allow_inf else "")

    def coerce(self, value: Any, key: str) -> float:
        x = _as_float(self, value, key, self.allow_inf)
        if math.isinf(x):
            return x
        if self.lo is not None and (x < self.lo or (x == self.lo and not self.lo_closed)):
            raise self.fail(key, value, "is out of range")
        if self.hi is not None and (x > self.hi or (x == self.hi and not self.hi_closed)):
            raise self.fail(key, value, "is out of range")
        return x


def _int_text(n: int) -> str:
    """``n`` as written in messages: powers of ten from 10^7 on as 10^k."""
    k = len(str(abs(n))) - 1
    return f"{'-' if n < 0 else ''}10^{k}" if k >= 7 and abs(n) == 10**k else str(n)


@dataclass(frozen=True)
class Int(Spec):
    """An integer in [lo, hi]; with ``allow_inf`` also ``inf`` (e.g. the dimension d = inf)."""

    lo: int | None = None
    hi: int | None = None
    allow_inf: bool = False

    def describe(self) -> str:
        lo = "" if self.lo is None else f"{_int_text(self.lo)} <= "
        hi = "" if self.hi is None else f" <= {_int_text(self.hi)}"
        return f"an integer {lo}n{hi}" + (' or "inf"' if self.allow_inf else "")

    def coerce(self, value: Any, key: str) -> int | float:
        if isinstance(value, str) and self.allow_inf and value.strip().lower() in INF_NAMES:
            return math.inf
        if isinstance(value, float) and self.allow_inf and value == math.inf:
            return math.inf
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, value, "is not an integer")
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            raise self.fail(key, value, "is out of range")
        return int(value)


@dataclass(frozen=True)
class Bool(Spec):
    """true or false."""

    def describe(self) -> str:
        return "true or false"

    def coerce(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, value, "is not a boolean")
        return value


@dataclass(frozen=True)
class Choice(Spec):
    """One of a fixed set of strings."""

    options: tuple[str, ...] = ()

    def describe(self) -> str:
        return "one of " + ", ".join(repr(o) for o in self.options)

    def coerce(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or value not in self.options:
            raise self.fail(key, value)
        return value


@dataclass(frozen=True)
class Text(Spec):
    """Free text (a path, a name checked elsewhere)."""

    def describe(self) -> str:
        return "a string"

    def coerce(self, value: Any, key: str) -> str:
        if not isinstance(value, str):
            raise self.fail(key, value, "is not a string")
        return value


@dataclass(frozen=True)
class FloatOr(Spec):
    """A number in an interval, or one of a few keywords (e.g. ``"auto"``, ``"last"``)."""

    keywords: tuple[str, ...] = ()
    number: Float = field(default_factory=Float)

    def describe(self) -> str:
        return " or ".join(repr(k) for k in self.keywords) + " or " + self.number.describe()

    def coerce(self, value: Any, key: str) -> float | str:
        if isinstance(value, str) and value in self.keywords:
            return value
        try:
            return self.number.coerce(value, key)
        except ConfigError:
            raise self.fail(key, value) from None


@dataclass(frozen=True)
class FloatList(Spec):
    """A list of numbers, each checked by ``item`` (ordering checked by the problem)."""

    item: Float = field(default_factory=Float)

    def describe(self) -> str:
        return "a list of numbers with " + self.item.describe()

    def coerce(self, value: Any, key: str) -> list[float]:
        if not isinstance(value, list | tuple):
            raise self.fail(key, value, "is not a list")
        return [self.item.coerce(v, f"{key}[{i}]") for i, v in enumerate(value)]


@dataclass(frozen=True)
class Outputs(Spec):
    """Output times: ``"uniform"`` or ``"log"`` (with ``time.n_outputs``) or an explicit list."""

    def describe(self) -> str:
        return '"uniform", "log" or a list of times 0 <= t <= time.t_end'

    def coerce(self, value: Any, key: str) -> str | list[float]:
        if isinstance(value, str):
            if value in ("uniform", "log"):
                return value
            raise self.fail(key, value)
        return FloatList(default=[], item=Float(0.0, lo=0.0, lo_closed=True)).coerce(value, key)


@dataclass(frozen=True)
class Params(Spec):
    """A table of named numbers whose names are checked by the object that uses them."""

    def describe(self) -> str:
        return "a table of name = number"

    def coerce(self, value: Any, key: str) -> dict[str, float]:
        if not isinstance(value, Mapping):
            raise self.fail(key, value, "is not a table")
        out = {}
        for name, v in value.items():
            out[str(name)] = _as_float(Float(0.0), v, f"{key}.{name}")
        return out


# --------------------------------------------------------------------------------------------
# schemas (each problem declares its whole schema: problems/*_schema.py, built with the sections
# every problem shares: config_sections.py)
# --------------------------------------------------------------------------------------------
Schema = dict[str, dict[str, Spec]]
"""section -> key -> Spec: every key of one problem's configuration and its default."""

def problem_schema(problem: str) -> Schema:
    """The schema the problem ``problem`` declares (looked up in the problem registry).

    Raises:
        ConfigError: unknown problem (the message names the known ones)."""
    from .problems import registry

    return registry.get(problem).schema


def problem_names() -> tuple[str, ...]:
    """The registered problem names."""
    from .problems import registry

    return registry.names()


#: names defined elsewhere, read through :func:`__getattr__`: the key tables
#: (:mod:`.config_docs`) and the sections every problem shares (:mod:`.config_sections`)
_MOVED = {"keys_markdown": "config_docs", "schema_rows": "config_docs",
          **dict.fromkeys(("TIME", "SCHEDULE", "NOISE", "SGD", "CHECKPOINT", "STEADY", "SOLVER",
                           "shared_sections"), "config_sections")}


def __getattr__(name: str) -> Any:
    """``SCHEMAS`` (problem -> schema) and ``PROBLEMS`` (the names), read from the registry when
    asked for (they were constants of this module before problems declared their schemas);
    the names of ``_MOVED`` from the modules they moved to."""
    if name == "SCHEMAS":
        return {p: problem_schema(p) for p in problem_names()}
    if name == "PROBLEMS":
        return problem_names()
    if name in _MOVED:  # moved out of this module (its size); still importable from here
        from importlib import import_module

        return getattr(import_module(f".{_MOVED[name]}", __package__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------------------------
# the resolved configuration
# --------------------------------------------------------------------------------------------
def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


class UnknownKey(ConfigError, KeyError):
    """``cfg[key]`` or ``cfg.section(name)`` of a key or section the configuration does not have
    (a KeyError too, as a mapping's lookup is)."""

    def __str__(self) -> str:  # the message itself, not KeyError's repr of it
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Config:
    """A resolved configuration: every key of the problem's schema, checked.

    Access values with ``cfg["model.delta"]`` or a whole section with ``cfg.section("model")``.
    """

    problem: str
    values: dict[str, dict[str, Any]]

    def __post_init__(self) -> None:
        """Check ``values`` as :func:`build_config` does (a Config built by hand too): every
        key coerced, missing keys set to their defaults, the problem's alias replaced by its
        name.

        Raises:
            ConfigError: an unknown problem, section or key, or a value the schema refuses."""
        name, values = _resolve(self.problem, self.values)
        object.__setattr__(self, "problem", name)
        object.__setattr__(self, "values", values)

    def __getitem__(self, dotted: str) -> Any:
        section, _, key = dotted.partition(".") if isinstance(dotted, str) else ("", "", "")
        try:
            return self.values[section][key]
        except KeyError:
            raise UnknownKey(f"{_fmt(dotted)} is not a key of the {self.problem} configuration; "
                             'write "section.key", e.g. cfg["time.t_end"]') from None

    def section(self, name: str) -> dict[str, Any]:
        """A copy of the section ``name`` as a dict key -> value."""
        if not isinstance(name, str) or name not in self.values:
            raise UnknownKey(f"{_fmt(name)} is not a section of the {self.problem} configuration; "
                             f"known sections: {', '.join(self.values)}")
        return dict(self.values[name])

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe nested dict (``inf`` written as ``"inf"``), with the ``problem`` key."""
        return {"problem": self.problem, **_json_safe(copy.deepcopy(self.values))}

    def to_toml(self) -> str:
        """The configuration as a TOML document (``load_config`` reads it back)."""
        return tomli_w.dumps(self.to_dict())

    def with_overrides(self, overrides: Mapping[str, Any] | Iterable[str] | str) -> Config:
        """A checked copy with ``overrides`` set: a dict ``{"section.key": value}`` of Python
        values (e.g. ``{"model.d": 20, "time.t_end": 2}``, as :meth:`replace`), or
        ``"section.key=value"`` strings (one, or an iterable; values read as TOML, as the CLI's
        ``--set``).

        Raises:
            ConfigError: a malformed entry (the message names it), an unknown section or key,
                or a value the schema refuses (the message names the key and what is accepted).
        """
        return build_config(self.problem, self.to_dict(), overrides)

    def replace(self, updates: Mapping[str, Any] | None = None, *,
                reset: Iterable[str] = ()) -> Config:
        """A checked copy: the sections named in ``reset`` back to their defaults, then every
        ``"section.key": value`` of ``updates`` set (values as they would be written in TOML;
        a ``"section": {...}`` entry sets several keys of a section).

        Raises:
            ConfigError: a malformed key, an unknown section or key, or a refused value.
        """
        return self._updated(updates or {}, reset, "updates")

    def _updated(self, updates: Mapping[str, Any], reset: Iterable[str], arg: str) -> Config:
        """:meth:`replace`; ``arg`` is the caller's argument, named by the errors."""
        data = self.to_dict()
        for section in _items(reset, "reset", 'section names, e.g. reset=["model"]'):
            if not isinstance(section, str) or section not in self.values:
                raise OptionError("reset", f"{{opt}} names {_fmt(section)}, not a section of "
                                  f"{self.problem}; known sections: {', '.join(self.values)}")
            data.pop(section, None)  # named twice: once is enough
        if not isinstance(updates, Mapping):
            raise OptionError(arg, f"{{opt}} = {_fmt(updates)} is not accepted; give a dict "
                              '{"section.key": value}, e.g. {"model.delta": 0.5}')
        _set_dotted(data, updates, arg)
        return build_config(self.problem, data)


def default_config(problem: str) -> Config:
    """The defaults the problem ``problem`` declares in its schema (for the built-in radial
    problem, the MMN18 Fig. 1 setting)."""
    return build_config(problem, {})


def _first_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def parse_value(text: str) -> Any:
    """Parse the right-hand side of ``--set key=value`` as a TOML value, else as a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()
    except (ValueError, RecursionError) as exc:  # e.g. > 4300 digits, nesting too deep
        raise OptionError("overrides", f"{{opt}} value {text[:40]!r}... cannot be read "
                          f"({_first_line(exc)}); give a plain number, string or short list"
                          ) from None


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"model.delta=0.5"`` -> (["model", "delta"], 0.5).

    Raises:
        ConfigError: (an :class:`~.errors.OptionError` of ``overrides``, the CLI's ``--set``)
            ``item`` is not a string ``SECTION.KEY=VALUE``, or its value cannot be read.
    """
    key, sep, text = item.partition("=") if isinstance(item, str) else (item, "", "")
    parts = key.strip().split(".") if isinstance(key, str) else []
    if not sep or len(parts) < 2 or not all(parts):
        raise OptionError(
            "overrides", f"{{opt}} entry {_fmt(item)} is malformed; write "
            '"SECTION.KEY=VALUE", e.g. "model.delta=0.5", or pass a dict {"model.delta": 0.5}',
            cli_template=f"--set {item!r} is malformed; write --set SECTION.KEY=VALUE, "
            "e.g. --set model.delta=0.5")
    return parts, parse_value(text)


def _set_dotted(data: dict[str, Any], updates: Mapping[str, Any], arg: str) -> None:
    """Set every ``"section.key": value`` (or ``"section": {...}``) of ``updates`` in ``data``;
    ``arg`` is the caller's argument, named by the errors."""
    for dotted, value in updates.items():
        parts = dotted.split(".") if isinstance(dotted, str) else []
        if not all(parts) or len(parts) < (1 if isinstance(value, Mapping) else 2):
            raise OptionError(arg, f"{{opt}} key {_fmt(dotted)} is malformed; write "
                              '"SECTION.KEY", e.g. {"model.delta": 0.5}')
        _merge(data, parts, copy.deepcopy(value), arg)


def _merge(data: dict[str, Any], path: list[str], value: Any, arg: str = "overrides") -> None:
    node = data
    for part in path[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise OptionError(arg, f"{{opt}} key {'.'.join(path)!r}: {part} is a value, not a "
                              "table", cli_template=f"--set {'.'.join(path)}: {part} is a value,"
                              " not a table")
        node = nxt
    node[path[-1]] = value


def build_config(problem: str, data: Mapping[str, Any],
                 overrides: Mapping[str, Any] | Iterable[str] | str = ()) -> Config:
    """Resolve ``data`` (a parsed TOML document) plus ``overrides`` (as for
    :meth:`Config.with_overrides`) against ``problem``'s schema (``problem`` may be an alias: the
    Config carries the problem's name)."""
    from .problems import registry

    cls = registry.get(problem)
    data = _copied(data, f"the configuration of {cls.name}")
    file_problem = data.pop("problem", problem)
    if file_problem != problem and (not isinstance(file_problem, str)
                                    or registry.canonical(file_problem) != cls.name):
        raise ConfigError(
            f"the configuration is for problem {file_problem!r}, not {problem!r}; "
            f"remove its 'problem' key or solve {file_problem!r}"
        )
    if isinstance(overrides, Mapping):
        _set_dotted(data, overrides, "overrides")
    else:
        for item in _items(overrides, "overrides", 'a dict {"section.key": value} or '
                           '"section.key=value" strings'):
            path, value = parse_override(item)
            _merge(data, path, value)
    return Config(cls.name, data)


def _copied(data: Any, what: str) -> dict[str, Any]:
    """A deep copy of the mapping ``data`` as a dict (ConfigError naming ``what`` if it is not
    a mapping or cannot be copied)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{what} must be a table (a dict of sections), got {_fmt(data)}")
    try:
        return copy.deepcopy(dict(data))
    except Exception as exc:  # e.g. a value that cannot be copied (a lock, a generator)
        raise ConfigError(f"{what} cannot be copied ({_first_line(exc)}); give plain numbers, "
                          "strings, lists and tables") from None


def _items(items: Any, arg: str, hint: str) -> list:
    """``items`` (one string, or an iterable of them) as a list; OptionError naming ``arg``
    and what to give (``hint``)."""
    if isinstance(items, str):
        return [items]
    try:
        return list(items)
    except TypeError:
        raise OptionError(arg, f"{{opt}} = {_fmt(items)} is not accepted; give {hint}") from None


def _resolve(problem: Any, data: Any) -> tuple[str, dict[str, dict[str, Any]]]:
    """(the problem's name, every key of its schema checked, defaults filled in) of ``data``
    (section -> key -> value); ConfigError for an unknown problem, section or key, or a value the
    schema or a cross-key check refuses."""
    from .problems import registry

    cls = registry.get(problem)
    schema = cls.schema
    data = _copied(data, f"the configuration of {cls.name}")
    for section, table in data.items():
        if section not in schema:
            raise ConfigError(
                f"unknown section [{section}]; known sections for {cls.name}: "
                f"{', '.join(schema)}"
            )
        if not isinstance(table, Mapping):
            raise ConfigError(f"{section} must be a table [{section}], got {_fmt(table)}")
        for key in table:
            if key not in schema[section]:
                raise ConfigError(
                    f"unknown key {section}.{key}; known keys of [{section}]: "
                    f"{', '.join(schema[section])}"
                )
    values: dict[str, dict[str, Any]] = {}
    for section, specs in schema.items():
        given = data.get(section, {})
        values[section] = {
            key: spec.coerce(given[key], f"{section}.{key}") if key in given
            else copy.deepcopy(spec.default)
            for key, spec in specs.items()
        }
    check_common(values)
    return cls.name, values


def load_config(path: str | Path, overrides: Mapping[str, Any] | Iterable[str] | str = ()
                ) -> Config:
    """Read a TOML file (which names its ``problem``) and resolve it with ``overrides`` (a dict
    ``{"section.key": value}`` or ``"section.key=value"`` strings, as for
    :meth:`Config.with_overrides`).

    Raises:
        ConfigError: the file is missing, unreadable or not TOML, names no known problem, or a
            key or value is refused (the message names it).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError, RecursionError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {_first_line(exc)}; fix the file") from None
    problem = data.get("problem")
    if problem is None:
        raise ConfigError(
            f"{path} has no 'problem' key; add e.g. problem = \"{problem_names()[0]}\" at the "
            f"top (known problems: {', '.join(problem_names())})"
        )
    if not isinstance(problem, str):
        raise ConfigError(f"{path}: problem must be a string, one of "
                          f"{', '.join(problem_names())}")
    problem_schema(problem)
    return build_config(problem, data, overrides)


def config_from_json(problem: str, data: Mapping[str, Any]) -> Config:
    """Rebuild a Config from the JSON stored in a result file."""
    return build_config(problem, data)
