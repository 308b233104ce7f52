"""Property-based fuzzing (hypothesis) of config values, CLI arguments and damaged result files.

The acceptance criterion: never a traceback; the CLI exits with 0 or 2, and on 2 stderr ends with
exactly one line ``meanfield-pde: error: ...``; a bad config value raises ConfigError whose message
is one line naming the key; truncated, bit-flipped and overwritten HDF5 result files give one-line
errors in ``info``, ``plot`` and ``resume``, and no flip changes what load() reads.

Every search is derandomized and database-less, so a run is reproducible. A case found to fail
is fixed in the package and kept as a fixed example (test_cli_fixed_bugs); while it is not fixed
it is excluded from the strategies with a ``# BUG:`` comment (no xfail), so that the rest of the
search keeps running. No exclusion is left.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import shutil
import string
import sys
import tomllib
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tomli_w
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from stopping import StopAfter

from meanfield_pde.cli import _printable, build_parser, main
from meanfield_pde.config import (
    SCHEMAS,
    Bool,
    Choice,
    Config,
    Float,
    FloatList,
    FloatOr,
    Int,
    Outputs,
    Params,
    Text,
    build_config,
    default_config,
    load_config,
    parse_value,
)
from meanfield_pde.errors import ConfigError, DataError
from meanfield_pde.runcontrol import Interrupted
from meanfield_pde.solver import solve
from meanfield_pde.storage import load, load_checkpoint

PREFIX = "meanfield-pde: error: "

# On a failure, hypothesis' pytest plugin imports hypothesis.extra._patching (to suggest a patch),
# which imports libcst when it is installed; libcst's DeprecationWarning (from mypy_extensions)
# then becomes an INTERNALERROR under filterwarnings = error and hides the failing example.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    try:
        import hypothesis.extra._patching  # noqa: F401
    except ImportError:  # libcst not installed: nothing to pre-import
        pass


def fuzz_settings(n: int, **kw) -> settings:
    """Deterministic (derandomized, no example database), no deadline: n examples."""
    return settings(max_examples=n, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much], **kw)


# --------------------------------------------------------------------------------------------
# values
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _no_int_digit_limit():
    """Lift Python's int-string limit while the test itself writes an integer of more than 4300
    digits (str() raises ValueError); the package reads with the limit."""
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        yield
    finally:
        sys.set_int_max_str_digits(old)


class _Huge(int):
    """An integer of more than 4300 digits, with a short repr: hypothesis prints drawn values,
    and Python refuses to print such an integer. str() gives the digits (under
    _no_int_digit_limit), as TOML writers need."""

    def __repr__(self) -> str:
        with _no_int_digit_limit():
            text = int.__repr__(self)
        return f"{text[:8]}...<{len(text.lstrip('-'))} digits>"

    def __str__(self) -> str:
        return int.__repr__(self)


# Integers of every size: beyond the float range (|n| >= 2**1024: "is too large" for a float key)
# and beyond Python's int-string limit (more than 4300 digits: tomllib cannot read them, in
# parse_value and load_config alike: a one-line ConfigError).
HUGE = [2**1024, -(2**1024), 10**400, 10**4300 - 1, _Huge(10**4300), _Huge(-(10**4300)),
        _Huge(10**5000 + 7)]
INTS = st.one_of(
    st.integers(-5, 5),
    st.integers(-(10**6), 10**6),
    st.integers(-(2**1100), 2**1100),
    st.sampled_from([2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**30,
                     -(10**30), 10**300, -(10**300), 4096, 4097, 100_000, 100_001, 10_000_000,
                     *HUGE]),
)
FLOATS = st.one_of(
    st.floats(),  # nan, +-inf, -0.0, subnormals included
    st.floats(-10.0, 10.0),
    st.sampled_from([0.0, -0.0, 1e308, -1e308, 1.7976931348623157e308, 5e-324, -5e-324,
                     2.2250738585072014e-308, math.inf, -math.inf, math.nan, 0.5, 1.0, 2.0,
                     1e-3, 1e-12, 0.4, 0.8, 1.5]),
)
# "One line": no vertical whitespace (what moves a terminal to a new line, or splits the message
# for grep / wc -l); str.splitlines would also count \x1c-\x1e, \x85, \u2028 and \u2029.
LINE_BREAKS = "\n\r\x0b\x0c"
# Names and paths may hold line breaks: the library quotes a user's name in its messages as
# given, and the CLI escapes control characters (cli._printable), so what the user sees stays one
# line (see _assert_one_line).
NAMES = st.one_of(
    st.sampled_from(["a", "s1", "s2", "t1", "t2", "", " ", "x y", "ü", "値", "1", "-", "inf",
                     "a\nb", "a\rb", "\x0b", "\x85", "\u2028"]),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=8),
)
FRAGMENTS = st.sampled_from([
    "", " ", "[1,2", "[1, 2]", "[]", "{a=1}", "{}", "{a = {b = 1}}", "[[1]]", "[1, 'a']", "{", "}",
    "[", "]", '"', "'", '"""', "'''", "=", "a=b", "[model]", "[[x]]", "# c", "1 # c", "\\u0000",
    "inf", "+inf", "-inf", "nan", "-nan", "Infinity", "INF", "auto", "last", "uniform", "log",
    "true", "True", "TRUE", "false", "yes", "1_000", "1__0", "0x10", "0o7", "0b1", "+1", "-0",
    "-0.0", "1.", ".5", "1e400", "-1e400", "1e-400", "0.1e-320", "1979-05-27",
    "1979-05-27T07:32:00Z", "07:32:00", "--", "\n", "1\n[model]\ndelta = 2", "\t1", "1\t",
    "ramp", "tanh", "relu", "chi", "from_file", "semi-implicit", "point", "é", "😀", "\x00",
    "a\x00b",
])
# Deeply nested TOML (tomllib recurses: RecursionError), as a value after --set KEY= or in a
# TOML file, is a one-line ConfigError.
DEEP = st.sampled_from(["[" * 1000, "[" * 1000 + "]" * 1000, "{a=" * 1000,
                        "{a=" * 1000 + "1" + "}" * 1000, "[" * 100 + "1" + "]" * 100])
TEXTS = st.one_of(FRAGMENTS, st.text(max_size=12), st.text(string.printable, max_size=40), DEEP)
SCALARS = st.one_of(INTS, FLOATS, st.booleans(), TEXTS, st.dates(), st.times())
ANY = st.recursive(
    SCALARS,
    lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(NAMES, kids, max_size=3)),
    max_leaves=8,
)


def near_valid(spec) -> st.SearchStrategy:
    """Values close to what ``spec`` accepts (boundaries, keywords), to reach success paths."""
    if isinstance(spec, Float):
        pts = [x for x in (spec.lo, spec.hi) if x is not None]
        edge = [y for x in pts for y in (x, math.nextafter(x, math.inf),
                                         math.nextafter(x, -math.inf), x + 1.0, x - 1.0, x * 0.5)]
        lo = spec.lo if spec.lo is not None else -100.0
        hi = spec.hi if spec.hi is not None else lo + 100.0
        inner = st.floats(lo, hi)
        out = st.one_of(inner, st.sampled_from(edge or [0.0]), st.just(spec.default),
                        st.sampled_from(HUGE))
        if spec.allow_inf:
            out = st.one_of(out, st.sampled_from(["inf", "Infinity", " +INF ", math.inf]))
        return out
    if isinstance(spec, Int):
        lo = spec.lo if spec.lo is not None else -100
        hi = spec.hi if spec.hi is not None else lo + 10**6
        edge = [lo - 1, lo, lo + 1, hi - 1, hi, hi + 1]
        out = st.one_of(st.integers(lo, hi), st.sampled_from(edge), st.just(spec.default),
                        st.integers(lo, min(hi, lo + 100)).map(float), st.sampled_from(HUGE))
        if spec.allow_inf:
            out = st.one_of(out, st.sampled_from(["inf", "INF", math.inf, -math.inf]))
        return out
    if isinstance(spec, Choice):
        opts = list(spec.options)
        return st.one_of(st.sampled_from(opts),
                         st.sampled_from(opts).map(str.upper),
                         st.sampled_from(opts).map(lambda o: o + " "))
    if isinstance(spec, FloatOr):
        return st.one_of(st.sampled_from(list(spec.keywords)), near_valid(spec.number))
    if isinstance(spec, FloatList):
        return st.lists(st.one_of(near_valid(spec.item), FLOATS), max_size=4)
    if isinstance(spec, Outputs):
        return st.one_of(st.sampled_from(["uniform", "log"]),
                         st.lists(st.floats(0.0, 30.0), max_size=4),
                         st.lists(FLOATS, max_size=3))
    if isinstance(spec, Params):
        return st.dictionaries(NAMES, st.one_of(FLOATS, INTS, TEXTS), max_size=3)
    if isinstance(spec, Bool):
        return st.booleans()
    if isinstance(spec, Text):
        return TEXTS
    return ANY  # a spec class added later


def values_for(spec) -> st.SearchStrategy:
    return st.one_of(near_valid(spec), ANY)


def _dumps(doc: dict) -> str:
    """tomli_w.dumps, for integers of any size too."""
    with _no_int_digit_limit():
        return tomli_w.dumps(doc)


def _unreadable(value) -> bool:
    """Whether ``value``, written as TOML, holds an integer that tomllib cannot read back."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) >= 10**4300
    if isinstance(value, dict):
        return any(_unreadable(v) for v in value.values())
    if isinstance(value, list):
        return any(_unreadable(v) for v in value)
    return False


def _assert_unreadable(msg: str, *, texts: list[str] = (), path: Path | None = None) -> None:
    """The one-line error for TOML that tomllib cannot read (an integer of more than 4300 digits,
    nesting too deep): it quotes the start of one of the --set values ``texts`` (not the key:
    parse_value does not know it), or names the file ``path``."""
    _assert_one_line(msg, [str(path)] if path else [])
    if path is None:
        assert any(msg.startswith(f"--set value {t[:40]!r}") for t in texts), msg
        assert "cannot be read" in msg, msg
    else:
        assert msg.startswith(f"{path} is not valid TOML"), msg


def _toml_str(s: str) -> str:
    return tomli_w.dumps({"v": s})[len("v = "):-1]


def toml_text(value) -> str:
    """``value`` as an inline TOML value (what a user types after ``--set KEY=``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        with _no_int_digit_limit():
            return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_str(k)} = {toml_text(v)}" for k, v in value.items()) + "}"
    return value.isoformat()  # date / time


def set_text(spec) -> st.SearchStrategy:
    """The text after ``--set KEY=``: a TOML rendering of a value, or raw text."""
    return st.one_of(values_for(spec).map(toml_text), TEXTS)


KEYS = [(problem, section, key, spec)
        for problem, schema in SCHEMAS.items()
        for section, specs in schema.items()
        for key, spec in specs.items()]


def _names_key(msg: str, key: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(key)}(?![\w])", msg) is not None


def _one_line(msg: str) -> bool:
    return bool(msg.strip()) and not any(c in msg for c in LINE_BREAKS)


def _texts(value) -> list[str]:
    """Every string in a (nested) value: table keys and string items."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in (*_texts(k), *_texts(v))]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return []


def _assert_one_line(msg: str, user=()) -> None:
    """One line as the CLI prints it (control characters escaped), and one line apart from the
    texts in ``user`` (names and paths the user gave, which the message may quote as given)."""
    assert _one_line(_printable(msg)), repr(msg)
    rest = msg
    for text in sorted((t for t in user if t), key=len, reverse=True):
        rest = rest.replace(text, "<user>")
    assert _one_line(rest), repr(msg)


def _accepted_alone(problem: str, key: str, value) -> bool:
    section, _, name = key.partition(".")
    try:
        SCHEMAS[problem][section][name].coerce(value, key)
    except ConfigError:
        return False
    return True


def _check_build(problem: str, pairs: list[tuple[str, object]], build, scratch: Path):
    """Run ``build``: a Config with the given values (which round-trips), or a one-line
    ConfigError naming one of the keys (or, when every value is acceptable alone, a key of the
    same section: a cross-key check such as time.outputs <= time.t_end)."""
    try:
        cfg = build()
    except ConfigError as exc:
        msg = str(exc)
        _assert_one_line(msg, [t for _, v in pairs for t in _texts(v)])
        if not any(_names_key(msg, k) for k, _ in pairs):
            assert all(_accepted_alone(problem, k, v) for k, v in pairs), msg
            sections = {k.partition(".")[0] for k, _ in pairs}
            assert any(re.search(rf"(?<![\w.]){s}\.\w", msg) for s in sections), msg
        return None
    assert isinstance(cfg, Config) and cfg.problem == problem
    final = dict(pairs)  # the last value of a key wins
    for key, value in final.items():
        section, _, name = key.partition(".")
        assert cfg[key] == SCHEMAS[problem][section][name].coerce(value, key), key
    _assert_roundtrip(cfg, scratch)
    return cfg


def _assert_roundtrip(cfg: Config, scratch: Path) -> None:
    path = scratch / "roundtrip.toml"
    path.write_text(cfg.to_toml(), encoding="utf-8")
    assert load_config(path) == cfg
    assert build_config(cfg.problem, json.loads(json.dumps(cfg.to_dict()))) == cfg


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz-config")


# --------------------------------------------------------------------------------------------
# 1. config values
# --------------------------------------------------------------------------------------------
@fuzz_settings(400)
@given(data=st.data())
@example(data=None)  # the defaults themselves
def test_one_key_via_set(data, scratch):
    """--set KEY=TEXT for every key of both schemas: a Config or a one-line error naming KEY."""
    if data is None:
        for problem in SCHEMAS:
            _assert_roundtrip(default_config(problem), scratch)
        return
    problem, section, name, spec = data.draw(st.sampled_from(KEYS), label="key")
    key = f"{section}.{name}"
    drawn = None
    if data.draw(st.booleans(), label="raw text"):
        text = data.draw(TEXTS, label="text")
    else:
        drawn = data.draw(values_for(spec), label="value")
        text = toml_text(drawn)
    try:
        value = parse_value(text)
    except ConfigError as exc:  # TOML that tomllib cannot read
        assert drawn is None or _unreadable(drawn), text[:80]
        _assert_unreadable(str(exc), texts=[text])
        for build in (lambda: default_config(problem).with_overrides([f"{key}={text}"]),
                      lambda: build_config(problem, {}, [f" {key} ={text}"])):
            with pytest.raises(ConfigError) as err:
                build()
            _assert_unreadable(str(err.value), texts=[text])
        return
    if drawn is not None:
        assert _same(value, drawn)  # the test's own TOML rendering
    _check_build(problem, [(key, value)],
                 lambda: default_config(problem).with_overrides([f"{key}={text}"]), scratch)
    _check_build(problem, [(key, value)],
                 lambda: build_config(problem, {}, [f" {key} ={text}"]), scratch)


def _same(a, b) -> bool:
    """Equality that treats nan as equal to nan (and tells 1 from 1.0 and True)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


@fuzz_settings(150)
@given(data=st.data())
def test_several_keys_via_set_and_toml_file(data, scratch):
    """Several keys at once, as --set overrides and as a TOML file (tomli_w): the same result."""
    problem = data.draw(st.sampled_from(list(SCHEMAS)), label="problem")
    keys = [k for k in KEYS if k[0] == problem]
    picked = data.draw(st.lists(st.sampled_from(keys), min_size=1, max_size=5), label="keys")
    pairs, overrides, doc = [], [], {"problem": problem}
    for _, section, name, spec in picked:
        value = data.draw(values_for(spec), label=f"{section}.{name}")
        pairs.append((f"{section}.{name}", value))
        overrides.append(f"{section}.{name}={toml_text(value)}")
        doc.setdefault(section, {})[name] = value
    path = scratch / "several.toml"
    path.write_text(_dumps(doc), encoding="utf-8")
    if any(_unreadable(v) for _, v in pairs):  # every --set value is read; the file holds
        with pytest.raises(ConfigError) as err:  # the last value of each key
            build_config(problem, {}, overrides)
        _assert_unreadable(str(err.value), texts=[o.partition("=")[2] for o in overrides])
        if _unreadable(doc):
            with pytest.raises(ConfigError) as err:
                load_config(path)
            _assert_unreadable(str(err.value), path=path)
        else:
            final = [(f"{s}.{k}", v) for s, t in doc.items() if s != "problem"
                     for k, v in t.items()]
            _check_build(problem, final, lambda: load_config(path), scratch)
        return
    via_set = _check_build(problem, pairs,
                           lambda: build_config(problem, {}, overrides), scratch)
    via_file = _check_build(problem, pairs, lambda: load_config(path), scratch)
    assert (via_set is None) == (via_file is None)
    if via_set is not None:
        assert via_set == via_file


@fuzz_settings(200)
@given(data=st.data())
def test_raw_toml_value_in_file(data, scratch):
    """KEY = <raw text> in a TOML file: invalid TOML is a one-line error naming the file."""
    problem, section, name, spec = data.draw(st.sampled_from(KEYS), label="key")
    raw = data.draw(st.one_of(set_text(spec), TEXTS), label="raw")
    # a raw text with a line break can define other keys; those are fuzzed elsewhere
    raw = raw.replace("\n", " ").replace("\r", " ")
    text = f'problem = "{problem}"\n[{section}]\n{name} = {raw}\n'
    path = scratch / "raw.toml"
    path.write_text(text, encoding="utf-8")
    try:
        value = tomllib.loads(text)[section][name]
    except (tomllib.TOMLDecodeError, ValueError, RecursionError):  # the last two: unreadable
        with pytest.raises(ConfigError) as err:
            load_config(path)
        _assert_unreadable(str(err.value), path=path)
        return
    _check_build(problem, [(f"{section}.{name}", value)], lambda: load_config(path), scratch)


def _misspell(data, name: str) -> str:
    i = data.draw(st.integers(0, max(len(name) - 1, 0)), label="at")
    how = data.draw(st.sampled_from(["drop", "double", "swap", "upper", "insert", "dash"]))
    if how == "drop":
        return name[:i] + name[i + 1:]
    if how == "double":
        return name[:i] + name[i] + name[i:]
    if how == "swap" and i + 1 < len(name):
        return name[:i] + name[i + 1] + name[i] + name[i + 2:]
    if how == "upper":
        return name[:i] + name[i:].upper()
    if how == "dash":
        return name.replace("_", "-") if "_" in name else name + "-"
    return name[:i] + data.draw(st.sampled_from("xq_é"), label="ch") + name[i:]


@fuzz_settings(200)
@given(data=st.data())
def test_unknown_and_misspelt_keys_and_sections(data, scratch):
    """Unknown keys, unknown sections, misspelt names, a value where a table is expected."""
    problem = data.draw(st.sampled_from(list(SCHEMAS)), label="problem")
    schema = SCHEMAS[problem]
    section = data.draw(st.sampled_from(list(schema)), label="section")
    kind = data.draw(st.sampled_from(["key", "misspelt key", "section", "misspelt section",
                                      "scalar section"]), label="kind")
    value = data.draw(ANY, label="value")
    name = data.draw(st.sampled_from(list(schema[section])), label="name")
    if kind == "key":
        section_name, key = section, data.draw(NAMES, label="junk key")
    elif kind == "misspelt key":
        section_name, key = section, _misspell(data, name)
    elif kind == "section":
        section_name, key = data.draw(NAMES, label="junk section"), name
    elif kind == "misspelt section":
        section_name, key = _misspell(data, section), name
    else:
        section_name, key = section, None
        if isinstance(value, dict):
            value = [value]
    if section_name == "problem":
        return  # a table named "problem" replaces the problem name: tested below
    if section_name in schema and (key is None or key in schema[section_name]) \
            and kind != "scalar section":
        return  # the "misspelling" is a real name
    doc = {"problem": problem, section_name: value if key is None else {key: value}}
    path = scratch / "unknown.toml"
    path.write_text(_dumps(doc), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    user = [section_name, key or "", *_texts(value)]
    _assert_one_line(msg, user)
    if _unreadable(value):
        _assert_unreadable(msg, path=path)
    elif key is None:
        assert f"{section_name} must be a table" in msg
    elif section_name not in schema:
        assert f"unknown section [{section_name}]" in msg
    else:
        assert f"unknown key {section_name}.{key}" in msg
    # the same through --set (names with "." or "=" cannot be written there)
    if key is not None and not set(section_name + key) & set(".=") \
            and section_name.strip() == section_name and key.strip() == key \
            and section_name and key:
        text = toml_text(value)
        with pytest.raises(ConfigError) as err:
            default_config(problem).with_overrides([f"{section_name}.{key}={text}"])
        _assert_one_line(str(err.value), user)
        if _unreadable(value):
            _assert_unreadable(str(err.value), texts=[text])
        else:
            assert "unknown" in str(err.value)


@fuzz_settings(100)
@given(problem=ANY, data=st.data())
def test_problem_key_of_a_file(problem, data, scratch):
    """A wrong, missing or mismatched ``problem`` is a one-line ConfigError."""
    path = scratch / "problem.toml"
    doc = data.draw(st.sampled_from(["value", "missing"]), label="doc")
    text = _dumps({"problem": problem} if doc == "value" else {"model": {}})
    path.write_text(text, encoding="utf-8")
    if isinstance(problem, str) and problem in SCHEMAS and doc == "value":
        assert load_config(path) == default_config(problem)
        other = next(p for p in SCHEMAS if p != problem)
        with pytest.raises(ConfigError) as err:
            build_config(other, {"problem": problem})
    else:
        with pytest.raises(ConfigError) as err:
            load_config(path)
    _assert_one_line(str(err.value), _texts(problem))
    if doc == "value" and _unreadable(problem):
        _assert_unreadable(str(err.value), path=path)
    else:
        assert "problem" in str(err.value).replace(str(path), "")


@fuzz_settings(100)
@given(item=st.one_of(TEXTS, st.text(max_size=30)))
def test_malformed_set_items(item):
    """Any --set item: a Config or a one-line ConfigError, never another exception."""
    key = item.partition("=")[0].strip()
    try:
        default_config("gaussians").with_overrides([item])
    except ConfigError as exc:
        _assert_one_line(str(exc), [key, *key.split(".")])


# --------------------------------------------------------------------------------------------
# 2. CLI arguments
# --------------------------------------------------------------------------------------------
A = "<<ARENA>>/"  # stands for the arena directory in drawn arguments
RUNNING = ("solve", "sgd", "gibbs", "validate")  # commands that run a solver from a config


def _subcommands() -> tuple[str, ...]:
    """The subcommands of the real parser (a new one is fuzzed like ``info``, with FILE)."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return tuple(sub.choices)


COMMANDS = _subcommands()
PROBLEM_OF = {"gaussians": "gaussians", "single-neuron": "single-neuron",
              "single_neuron": "single-neuron", A + "valid_g.toml": "gaussians",
              A + "valid_sn.toml": "single-neuron"}
CONFIG_TARGETS = [*PROBLEM_OF, "Gaussians", "gaussian", "single", "", "-", "missing.toml",
                  A + "corrupt.toml", A + "badutf8.toml", A + "empty.toml", A + "noproblem.toml",
                  A + "missing.toml", A + "dir", A + "dir.toml", A + "other.txt",
                  A + "result_g.h5", A + "afile/x.toml", A + "deep.toml", A + "huge.toml",
                  A + "overflow.toml"]
FILE_TARGETS = [A + "result_g.h5", A + "result_sgd.h5", A + "result_sn.h5", A + "trunc.h5",
                A + "empty.h5", A + "garbage.h5", A + "valid_g.toml", A + "dir", A + "missing.h5",
                A + "afile/x.h5", "", "-"]
OUTPUTS = [A + "out/new.h5", A + "out/deep/er/new.h5", A + "existing.h5", A + "dir",
           A + "afile/x.h5", A + "afile", "", A + "out/" + "x" * 300 + ".h5", A + "out/new.png"]
PNG_OUTPUTS = [A + "out/x.png", A + "out/sub/x.png", A + "dir", A + "afile/x.png",
               A + "existing.png", A + "out/x.pdf", A + "out/" + "y" * 300 + ".png", ""]
# validate's output directories that already hold a pde.h5 from elsewhere: made with another
# config (the arena's results; the drawn grid sizes differ from theirs) or damaged, so validate
# must solve again
STALE_PDE = {"g": "result_g.h5", "sn": "result_sn.h5", "sgd": "result_sgd.h5",
             "trunc": "trunc.h5", "garbage": "garbage.h5"}
# init.file: an SGD result holds no radial density (a one-line DataError)
INIT_FILES = [A + "result_g.h5", A + "result_sgd.h5", A + "result_sn.h5", A + "trunc.h5",
              A + "garbage.h5", A + "dir", A + "missing.h5", A + "valid_g.toml", ""]
JUNK_FLAGS = ["--frobnicate", "-x", "--", "-", "--set", "-o", "--output", "--widths", "--seeds",
              "--workers", "--steady=1", "--force=yes", "-qq", "--se", "--forc", "--st", "--keys",
              "--markdown", "--quiet", "-h", "--help", "--version", "--set=", "--set=model.delta",
              "-o=", "--widths=4"]
REAL_FLAGS = {"solve": ["--force", "-q", "--quiet", "--steady"], "sgd": ["--force", "-q"],
              "gibbs": ["--force"], "validate": [], "config": ["--keys", "--markdown"]}
# Words typed by a user: no NUL (an OS argument cannot hold one) and no lone surrogates (the
# captured stderr of pytest is strict UTF-8, unlike the real one); line breaks and other control
# characters are in (the CLI escapes them in its messages).
WORDS = st.one_of(
    st.sampled_from(["", " ", "-", "--", "solve ", "SOLVE", "h5", "x.toml", "x.h5", "../", "~",
                     "é", "😀", "a\tb", "a\nb", "x\n.h5", "\r", "a\x1bb", "\x85", "\u2028"]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
            max_size=10),
)


def _excluded(cmd: str, key: str, text: str) -> bool:
    """Dimensions an SGD example must not draw, for time alone: SGD draws N x d normals per
    step, so model.d is kept <= 10**6 there (seconds at most). Larger d are refused when they
    do not fit in memory and d >= 10**18 + 1 (beyond which d = inf to double precision) always:
    see test_cli_fixed_bugs."""
    if key != "model.d" or cmd not in ("sgd", "validate"):
        return False
    try:
        value = parse_value(text)
    except ConfigError:
        return False
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return isinstance(value, int) and not isinstance(value, bool) and 10**6 < value <= 10**18


def _set_group(draw, problem: str | None, cmd: str = "") -> list[str]:
    keys = [k for k in KEYS if problem is None or k[0] == problem]
    kind = draw(st.integers(0, 9))
    if kind == 4:  # a junk key
        item = f"{draw(WORDS)}={draw(TEXTS)}"
    elif kind == 5:  # a junk name in a real section
        _, section, _, _ = draw(st.sampled_from(keys))
        item = f"{section}.{draw(WORDS)}={draw(TEXTS)}"
    else:
        _, section, name, spec = draw(st.sampled_from(keys))
        if (section, name) == ("init", "file"):
            text = _toml_str(draw(st.sampled_from(INIT_FILES)))
        else:  # mostly values close to valid ones, so that the solvers run
            text = _pick(draw, (6, near_valid(spec).map(toml_text)), (2, ANY.map(toml_text)),
                         (2, TEXTS))
            if _excluded(cmd, f"{section}.{name}", text):
                text = toml_text(spec.default)
        item = f"{section}.{name}={text}"
    return ["--set=" + item] if _chance(draw, 6) else ["--set", item]


def _pins(problem: str, cmd: str, draw=None) -> list[str]:
    """Cheap settings appended after the fuzzed --set items (a later --set wins); drawn sizes
    with ``draw``, else fixed ones."""

    def size(lo: int, hi: int, fixed: int) -> int:
        return fixed if draw is None else draw(st.integers(lo, hi))

    pins = {"time.t_end": "0.01", "time.n_outputs": size(2, 5, 3),
            "time.steady_t_max": "0.05", "solver.max_steps": size(20, 200, 200),
            "sgd.n_neurons": size(1, 16, 8), "sgd.eps": "1e-3", "sgd.batch": size(1, 4, 1)}
    if problem == "gaussians":
        pins |= {"grid.n": size(8, 200, 64), "grid.r_max": size(4, 6, 6),
                 "kernel.max_terms": size(1, 64, 32)}
    else:
        # explicit walls: with "auto" walls a pilot run sizes the box (tens of seconds)
        pins |= {"grid.n_a": size(4, 12, 12), "grid.n_s": size(8, 12, 8),
                 "grid.n_r": size(8, 12, 8), "grid.a_min": -4, "grid.a_max": 4,
                 "grid.s_min": -2, "grid.s_max": 2, "grid.r_max": 3,
                 "kernel.max_terms": size(1, 16, 8), "kernel.max_nodes": size(2, 32, 16)}
    out = []
    for key, value in pins.items():
        out += ["--set", f"{key}={value}"]
    return out


def _chance(draw, n: int) -> bool:
    """True with probability about 1/n (an interior value: hypothesis favours the ends)."""
    return draw(st.integers(0, n - 1)) == n // 2


def _pick(draw, *weighted: tuple[int, st.SearchStrategy]):
    """A draw from one of the strategies, chosen with the given weights."""
    k = draw(st.integers(0, sum(w for w, _ in weighted) - 1))
    for w, strategy in weighted:
        if k < w:
            return draw(strategy)
        k -= w
    raise AssertionError


@st.composite
def cli_argv(draw) -> tuple[list[str], bool]:
    """An argument list from a grammar of the real commands, plus junk; and whether the cheap
    settings were appended (the command may run a solver)."""
    others = [c for c in COMMANDS if c not in RUNNING]
    cmd = _pick(draw, (10, st.sampled_from(RUNNING)), (6, st.sampled_from(others)),
                (1, st.sampled_from(["", "frobnicate", "solv", "Solve", "--set", "-h"])),
                (1, WORDS))
    groups: list[list[str]] = []
    problem = None
    if cmd in COMMANDS and cmd not in REAL_FLAGS:  # info, plot, resume: a result file
        if not _chance(draw, 10):
            groups.append([_pick(draw, (9, st.sampled_from([*FILE_TARGETS, A + "existing.h5"])),
                                 (1, WORDS))])
        if cmd == "plot" and not _chance(draw, 10):
            groups.append(["-o", _pick(draw, (9, st.sampled_from(PNG_OUTPUTS)), (1, WORDS))])
        if cmd == "resume":
            # --t-end stays small: the run goes on to it (the files hold tiny grids)
            if draw(st.booleans()):
                groups.append(["--t-end", draw(st.sampled_from(
                    ["0.02", "0.011", "0.01", "0.005", "0", "-1", "nan", "inf", "-inf", "1e-300",
                     "x", "", "1e400"]))])
            if draw(st.booleans()):
                groups.append(["-q"])
    elif cmd in REAL_FLAGS:
        if not _chance(draw, 10):
            target = _pick(draw, (7, st.sampled_from(list(PROBLEM_OF))),
                           (2, st.sampled_from(CONFIG_TARGETS)), (1, WORDS))
            groups.append([target])
            problem = PROBLEM_OF.get(target)
        for _ in range(draw(st.integers(0, 3))):
            groups.append(_set_group(draw, problem, cmd))
        if problem == "gaussians" and _chance(draw, 5):
            groups.append(["--set", "init.kind=from_file", "--set",
                           "init.file=" + _toml_str(draw(st.sampled_from(INIT_FILES)))])
        if cmd in ("solve", "sgd", "gibbs") and draw(st.booleans()):
            groups.append(["-o", _pick(draw, (9, st.sampled_from(OUTPUTS)), (1, WORDS))])
        if cmd == "validate":
            ints = st.one_of(st.integers(-2, 16).map(str), st.sampled_from(["x", "1e3", "", "-"]))
            # widths are kept <= 16: each is an SGD run of that many neurons
            groups.append(["--widths", *_pick(draw, (1, st.lists(ints, max_size=3)),
                                              (4, st.sampled_from([["4"], ["2", "3"]])))])
            seeds = st.one_of(ints, st.sampled_from([str(2**63), str(2**64)]))
            groups.append(["--seeds", *_pick(draw, (1, st.lists(seeds, max_size=2)),
                                             (4, st.sampled_from([["0"], ["1", "2"]])))])
            if not _chance(draw, 5):  # left out: one per core (run in-process, _InProcessPool)
                groups.append(["--workers", str(draw(st.integers(-2, 3)))])
            if draw(st.booleans()):
                groups.append(["-o", draw(st.sampled_from(
                    [A + "out/v", A + "afile", A + "existing.h5", A + "dir", A + "afile/v",
                     *(A + f"stale/{name}" for name in STALE_PDE)]))])
        for flag in draw(st.lists(st.sampled_from(REAL_FLAGS[cmd] or ["-h"]), max_size=3,
                                  unique=True)):
            if flag != "-h" or _chance(draw, 10):
                groups.append([flag])
    if _chance(draw, 4):
        for _ in range(draw(st.integers(1, 2))):
            groups.append([_pick(draw, (2, st.sampled_from(JUNK_FLAGS)), (1, WORDS))])
    if _chance(draw, 4):
        groups = draw(st.permutations(groups))
    argv = [cmd] + [a for g in groups for a in g]
    if _chance(draw, 30):
        argv.insert(0, draw(st.sampled_from(["--version", "-h", "--junk", "-"])))
    run = cmd in RUNNING and problem is not None
    if run:
        argv += _pins(problem, cmd, draw)
    return argv, run


class _InProcessPool(ProcessPoolExecutor):
    """validate's worker pool, but map() runs the jobs in this process: spawning interpreters
    costs seconds per example. The constructor (and so its checks of max_workers) is the real
    one; no process is started since nothing is submitted."""

    def map(self, fn, *iterables, timeout=None, chunksize=1):
        return map(fn, *iterables)


def _quiet_main(argv: list[str]) -> int:
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return main(argv)


@pytest.fixture(scope="module")
def arena(tmp_path_factory) -> Path:
    """Files the drawn arguments refer to: configs (valid, corrupt), results, directories."""
    root = tmp_path_factory.mktemp("fuzz-cli")
    (root / "cwd").mkdir()
    (root / "dir").mkdir()
    (root / "dir.toml").mkdir()
    (root / "afile").write_text("a file, not a directory\n")
    (root / "valid_g.toml").write_text(default_config("gaussians").to_toml(), encoding="utf-8")
    (root / "valid_sn.toml").write_text(default_config("single-neuron").to_toml(),
                                        encoding="utf-8")
    (root / "corrupt.toml").write_text('problem = "gaussians"\n[model\ndelta = \n')
    (root / "badutf8.toml").write_bytes(b'problem = "gaussians"\n\xff\xfe\x00[model]')
    (root / "empty.toml").write_text("")
    (root / "noproblem.toml").write_text("[model]\ndelta = 0.5\n")
    (root / "other.txt").write_text('problem = "gaussians"\n')
    (root / "deep.toml").write_text('problem = "gaussians"\n[model]\ndelta = ' + "[" * 1000 + "\n")
    (root / "huge.toml").write_text('problem = "gaussians"\n[model]\ndelta = ' + "7" * 5000 + "\n")
    (root / "overflow.toml").write_text('problem = "gaussians"\n[model]\ndelta = 1' + "0" * 400
                                        + "\n")
    tiny_g = ["--set", "time.t_end=0.01", "--set", "time.n_outputs=3", "--set", "grid.n=64",
              "--set", "grid.r_max=6", "--set", "kernel.max_terms=32", "--set",
              "solver.max_steps=500"]  # bounds `resume --t-end` too
    assert _quiet_main(["solve", "gaussians", *tiny_g, "-o", str(root / "result_g.h5"),
                        "-q"]) == 0
    assert _quiet_main(["sgd", "gaussians", *tiny_g, "--set", "sgd.n_neurons=8", "--set",
                        "sgd.eps=1e-3", "-o", str(root / "result_sgd.h5"), "-q"]) == 0
    assert _quiet_main(["solve", "single-neuron", "--set", "time.t_end=0.01", "--set",
                        "time.n_outputs=3", "--set", "grid.n_a=12", "--set", "grid.n_s=8",
                        "--set", "grid.n_r=8", "--set", "grid.a_min=-4", "--set", "grid.a_max=4",
                        "--set", "grid.s_min=-2", "--set", "grid.s_max=2", "--set",
                        "grid.r_max=3", "--set", "kernel.max_terms=8", "--set",
                        "kernel.max_nodes=16", "-o", str(root / "result_sn.h5"), "-q"]) == 0
    good = (root / "result_g.h5").read_bytes()
    (root / "trunc.h5").write_bytes(good[: len(good) // 2])
    (root / "empty.h5").write_bytes(b"")
    (root / "garbage.h5").write_bytes(np.random.default_rng(0).bytes(4096))
    (root / "pristine").mkdir()
    for path in root.glob("*.h5"):
        shutil.copyfile(path, root / "pristine" / path.name)
    return root


def _reset(arena: Path) -> None:
    """Undo what the previous example wrote, so that examples are independent (``resume``
    extends its file in place; chains of resumes are tested in test_checkpoint.py)."""
    for path in (arena / "pristine").iterdir():
        shutil.copyfile(path, arena / path.name)
    shutil.rmtree(arena / "out", ignore_errors=True)
    shutil.rmtree(arena / "cwd" / "runs", ignore_errors=True)
    shutil.copyfile(arena / "result_g.h5", arena / "existing.h5")
    (arena / "existing.png").write_bytes(b"an old figure")
    shutil.rmtree(arena / "stale", ignore_errors=True)
    for name, source in STALE_PDE.items():
        (arena / "stale" / name).mkdir(parents=True)
        shutil.copyfile(arena / source, arena / "stale" / name / "pde.h5")


def _assert_cli_error(err: str) -> None:
    """stderr ends with exactly one line ``meanfield-pde: error: ...`` (warnings may precede)."""
    assert err.endswith("\n") and err.count(PREFIX) == 1, err
    tail = err[err.index(PREFIX):-1]
    assert _one_line(tail[len(PREFIX):]), err
    assert err[: -len(tail) - 1].endswith(("\n", "\r")) or len(err) == len(tail) + 1, err


def _run_cli(argv: list[str], capsys) -> int:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own exit for --help / --version
        capsys.readouterr()
        assert exc.code in (0, None), argv
        return 0
    _, err = capsys.readouterr()
    assert code in (0, 2), (argv, code, err)
    if code == 2:
        _assert_cli_error(err)
    else:
        assert PREFIX not in err, err
    return code


CLI_STATS: dict[str, int] = {}


G, SN = "gaussians", "single-neuron"
NOISE = ["--set", "noise.beta=10", "--set", "noise.lam=1"]


@fuzz_settings(200)
@given(drawn=cli_argv())
# the success paths, whatever the search draws
@example(drawn=(["solve", G, "-o", A + "out/s.h5", *_pins(G, "solve")], True))
@example(drawn=(["solve", SN, "-q", *_pins(SN, "solve")], True))
@example(drawn=(["solve", G, "--steady", "-q", *NOISE, *_pins(G, "solve")], True))
@example(drawn=(["sgd", SN, "-o", A + "existing.h5", "--force", *_pins(SN, "sgd")], True))
@example(drawn=(["gibbs", G, *NOISE, *_pins(G, "gibbs")], True))
@example(drawn=(["validate", G, "--widths", "2", "3", "--seeds", "0", "1", "--workers", "2",
                 "-o", A + "out/v", *_pins(G, "validate")], True))
@example(drawn=(["config", G, "--keys", "--markdown"], False))
@example(drawn=(["info", A + "result_sgd.h5"], False))
@example(drawn=(["plot", A + "result_sn.h5", "-o", A + "out/x.png"], False))
def test_cli_fuzz(drawn, arena, capsys, monkeypatch):
    """main(argv) for drawn argument lists: exit 0 or 2 (one-line error), never an exception."""
    argv, run = drawn
    monkeypatch.chdir(arena / "cwd")  # default outputs (runs/...) go to the arena
    monkeypatch.setattr("meanfield_pde.validate.ProcessPoolExecutor", _InProcessPool)
    _reset(arena)
    argv = [a.replace(A, f"{arena}/") for a in argv]
    code = _run_cli(argv, capsys)
    cmd = next((a for a in argv if a in COMMANDS), "junk")
    label = f"{cmd}:{'run' if run else 'parse'}:{code}"
    CLI_STATS[label] = CLI_STATS.get(label, 0) + 1


VALIDATE = ["validate", G, "--widths", "3", "--seeds", "0", *_pins(G, "validate")]


@pytest.mark.parametrize(("argv", "code", "says"), [
    # integers beyond the float range and the int-string limit, deep nesting: --set and files
    (["config", G, "--set", "model.delta=1" + "0" * 400], 2, "is too large"),
    (["config", G, "--set", "model.delta=" + "7" * 5000], 2, "cannot be read"),
    (["config", G, "--set", "model.delta=" + "[" * 1000], 2, "cannot be read"),
    (["config", G, "--set", "model.activation_params=" + "{a=" * 1000], 2, "cannot be read"),
    (["config", A + "overflow.toml"], 2, "is too large"),
    (["config", A + "huge.toml"], 2, "is not valid TOML"),
    (["config", A + "deep.toml"], 2, "is not valid TOML"),
    # an SGD result as the initial density
    (["solve", G, "--set", "init.kind=from_file", "--set",
      "init.file=" + _toml_str(A + "result_sgd.h5"), *_pins(G, "solve")], 2,
     "holds no radial density"),
    # fewer SGD output times than PDE ones (several requested times on one SGD step)
    ([*VALIDATE, "--set", "time.n_outputs=50", "-o", A + "out/v"], 0, None),
    (["validate", G, "--workers", "-1", "-o", A + "out/v", *_pins(G, "validate")], 2,
     "--workers -1 must be >= 1"),
    # a pde.h5 of another grid, of SGD, truncated: solved again (checked below)
    ([*VALIDATE, "--set", "grid.n=32", "-o", A + "stale/g"], 0, None),
    ([*VALIDATE, "-o", A + "stale/sgd"], 0, None),
    ([*VALIDATE, "-o", A + "stale/trunc"], 0, None),
    # line breaks in names and paths: escaped
    (["config", G, "--set", "model.a\nb=1"], 2, "unknown key model.a\\nb;"),
    (["config", G, "--set", 'model.activation_params={"a\\nb" = "x"}'], 2,
     "model.activation_params.a\\nb = "),
    (["info", A + "a\nb.h5"], 2, "a\\nb.h5 does not exist"),
    # dimensions beyond double precision, SGD beyond the memory
    (["solve", G, "--set", "model.d=1" + "0" * 400], 2, "model.d = an integer of 401 digits"),
    (["sgd", G, "--set", "sgd.n_neurons=4", "--set", "model.d=10000000000"], 2,
     "needs about 1.34e+03 GiB"),
    (["sgd", G, "--set", "sgd.n_neurons=10000000", "--set", "model.d=4"], 2, "GiB of memory"),
    (["solve", G, "-o", A + "afile/\r.h5", *_pins(G, "solve")], 2, "afile/\\r.h5"),
])
def test_cli_fixed_bugs(argv, code, says, arena, capsys, monkeypatch):
    """Inputs the fuzz once had to leave out: the exit code and the gist of the message."""
    monkeypatch.chdir(arena / "cwd")
    monkeypatch.setattr("meanfield_pde.validate.ProcessPoolExecutor", _InProcessPool)
    _reset(arena)
    argv = [a.replace(A, f"{arena}/") for a in argv]
    assert main(argv) == code
    _, err = capsys.readouterr()
    if code == 2:
        _assert_cli_error(err)
        assert says in err, err
    if argv[0] == "validate" and code == 0:  # pde.h5 is a solve of the requested config
        out_dir = Path(argv[argv.index("-o") + 1])
        report = json.loads((out_dir / "validation.json").read_text())
        pde = load(out_dir / "pde.h5")
        assert pde.complete and pde.config == report["config"]


# --------------------------------------------------------------------------------------------
# 3. truncated and bit-flipped result files
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def result_file(tmp_path_factory) -> tuple[Path, bytes]:
    """A small real result file (gaussians, 201 snapshots of 64 cells) and its bytes."""
    where = tmp_path_factory.mktemp("fuzz-h5")
    path = where / "result.h5"
    assert _quiet_main(["solve", "gaussians", "--set", "time.t_end=0.05", "--set", "grid.n=64",
                        "--set", "grid.r_max=6", "-o", str(path), "-q"]) == 0
    return where, path.read_bytes()


@pytest.fixture(scope="module")
def interrupted_file(tmp_path_factory) -> tuple[Path, bytes]:
    """A run stopped by a signal half way (gaussians, 64 cells; a checkpoint every 0.001, so
    both slots hold one), which ``resume`` finishes, and its bytes."""
    where = tmp_path_factory.mktemp("fuzz-h5-interrupted")
    path = where / "interrupted.h5"
    cfg = default_config("gaussians").with_overrides(
        ["time.t_end=0.01", "time.n_outputs=21", "grid.n=64", "grid.r_max=6",
         "checkpoint.every=0.001"])
    with pytest.raises(Interrupted):
        solve(cfg, path, stop=StopAfter(20))
    res, ck = load(path), load_checkpoint(path)
    assert not res.complete and 5 < res.n_snapshots < 21 and ck.meta["seq"] >= 2, ck.meta
    return where, path.read_bytes()


# what resume is asked to do: finish the interrupted run, or extend the finished one by two
# output intervals (the last checkpoint of a finished run is at its end)
RESUME_ARGS = {"result_file": ["--t-end", "0.0505"], "interrupted_file": []}


@pytest.fixture(params=sorted(RESUME_ARGS))
def damage_target(request) -> tuple[Path, bytes, list[str]]:
    """Each file to damage: (directory, bytes, the arguments of resume)."""
    where, good = request.getfixturevalue(request.param)
    return where, good, RESUME_ARGS[request.param]


def _read_damaged(data: bytes, where: Path, resume_args: list[str], capsys) -> tuple[int, ...]:
    """Write ``data`` as a result file and run ``info``, ``plot`` and ``resume`` on it (the last
    writes to the file): exit codes, each 0 or 2 with a one-line error."""
    path = where / "damaged.h5"
    path.write_bytes(data)
    return tuple(_run_cli(argv, capsys) for argv in (
        ["info", str(path)], ["plot", str(path), "-o", str(where / "x.png")],
        ["resume", str(path), "-q", *resume_args]))


@fuzz_settings(20)
@given(data=st.data())
def test_truncated_result_file(data, damage_target, capsys):
    where, good, resume_args = damage_target
    cut = data.draw(st.one_of(st.integers(0, len(good) - 1),
                              st.integers(int(0.9 * len(good)), len(good) - 1)), label="cut")
    codes = _read_damaged(good[:cut], where, resume_args, capsys)
    if cut < 0.9 * len(good):
        assert codes == (2, 2, 2), cut


def _flip(good: bytes, offset: int, bit: int) -> bytes:
    damaged = bytearray(good)
    damaged[offset] ^= 1 << bit
    return bytes(damaged)


@fuzz_settings(20)
@given(data=st.data())
def test_bit_flipped_result_file(data, damage_target, capsys):
    where, good, resume_args = damage_target
    offset = data.draw(st.integers(0, len(good) - 1), label="offset")
    bit = data.draw(st.integers(0, 7), label="bit")
    _read_damaged(_flip(good, offset, bit), where, resume_args, capsys)


@fuzz_settings(8)
@given(data=st.data())
def test_garbage_in_result_file(data, damage_target, capsys):
    where, good, resume_args = damage_target
    junk = data.draw(st.binary(min_size=2, max_size=64), label="junk")
    offset = data.draw(st.integers(0, len(good) - len(junk)), label="offset")
    _read_damaged(good[:offset] + junk + good[offset + len(junk):], where, resume_args, capsys)


def _raw_data_ranges(path: Path) -> list[tuple[int, int, str]]:
    """(start, stop, dataset) of every stored chunk / contiguous block of raw data."""
    import h5py

    ranges = []

    def visit(name, obj):
        if not isinstance(obj, h5py.Dataset):
            return
        if obj.chunks is None:
            off = obj.id.get_offset()
            if off is not None:
                ranges.append((off, off + obj.id.get_storage_size(), name))
            return
        for i in range(obj.id.get_num_chunks()):
            info = obj.id.get_chunk_info(i)
            ranges.append((info.byte_offset, info.byte_offset + info.size, name))

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return ranges


def _targets(good: bytes, path: Path) -> list[tuple[int, int, str]]:
    """(start, stop, what) of the places where damage used to pass unnoticed: the text of each
    string attribute (kept in the global heap, without a checksum, until they became
    fixed-length) and the nodes of the v1 B-trees that index the chunks of a dataset ("TREE",
    node type 1: a 24-byte header, then keys and child addresses; keys of at most 32 bytes
    here), which the HDF5 1.8 format keeps without a checksum: the rows_sha256 and grid_sha256
    digests cover them."""
    import h5py

    with h5py.File(path, "r") as f:
        strings = {k: v for k, v in f.attrs.items() if isinstance(v, bytes)}
    ranges = []
    for name, text in strings.items():
        at = good.find(text)
        if at >= 0:
            ranges.append((at, at + len(text), f"attr {name}"))
    at = good.find(b"TREE")
    while at >= 0:
        if good[at + 4] == 1:  # a chunk index node
            entries = int.from_bytes(good[at + 6:at + 8], "little")
            ranges.append((at, at + 24 + entries * 40 + 32, "chunk index"))
        at = good.find(b"TREE", at + 4)
    return ranges


def _changes(a, b) -> list[str]:
    """What differs between two loaded results: "problem", "config", "complete", "attr <name>",
    "<name>: shape", "<name>: zero rows" (the rows that differ now read as zeros; for a grid
    array: its elements) or "<name>: values"."""
    out = [name for name, x, y in (("problem", a.problem, b.problem),
                                   ("config", a.config, b.config),
                                   ("complete", a.complete, b.complete)) if x != y]
    out += [f"attr {k}" for k in sorted({*a.attrs, *b.attrs} - {"config"})
            if a.attrs.get(k) != b.attrs.get(k)]
    pairs = [("t", a.t, b.t)]
    pairs += [(k, a.fields.get(k), b.fields.get(k)) for k in {*a.fields, *b.fields}]
    pairs += [(f"grid/{k}", a.grid.get(k), b.grid.get(k)) for k in {*a.grid, *b.grid}]
    for name, x, y in pairs:
        if x is None or y is None or np.shape(x) != np.shape(y):
            out.append(f"{name}: shape")
        elif not np.array_equal(x, y, equal_nan=True):
            x2, y2 = np.reshape(x, (len(x), -1)), np.reshape(y, (len(y), -1))
            differ = np.any((x2 != y2) & ~(np.isnan(x2) & np.isnan(y2)), axis=1)
            out.append(f"{name}: zero rows" if np.all(y2[differ] == 0) else f"{name}: values")
    return sorted(out)


def test_bit_flip_sweep(result_file):
    """Single-bit flips read with load(): 400 at random offsets, 100 in the text of the string
    attributes and 200 in the chunk indexes (where flips used to pass unnoticed: config text,
    other attribute texts, chunk addresses pointing at zeros, which pass Fletcher-32). Each
    flip is detected (a one-line DataError) or harmless (the same content: unused bytes)."""
    where, good = result_file
    src = where / "result.h5"
    unchecked = _targets(good, src)
    rng = np.random.default_rng(12345)

    def inside(tree: bool, n: int) -> list[int]:
        pool = np.concatenate([np.arange(lo, hi) for lo, hi, what in unchecked
                               if (what == "chunk index") == tree])
        return rng.choice(pool, n).tolist()

    offsets = [*rng.integers(0, len(good), 400).tolist(), *inside(False, 100),
               *inside(True, 200)]
    bits = rng.integers(0, 8, len(offsets)).tolist()
    _sweep(good, src, where / "flipped.h5", list(zip(offsets, bits, strict=True)))


def _sweep(good: bytes, src: Path, path: Path, flips: list[tuple[int, int]]) -> dict:
    """Flip each (offset, bit) of ``good`` (the bytes of ``src``) alone and read the copy
    ``path`` with load() and load_checkpoint(): each flip must be detected (one-line
    DataError), harmless (the same content) or, for the checkpoint alone, a fallback to the
    older slot (the pointer or the newer slot damaged). Returns the tally."""
    ranges = _raw_data_ranges(src)
    original, ck0 = load(src), load_checkpoint(src)
    tally = {"detected": 0, "harmless": 0, "checkpoint fallback": 0, "silent": 0}
    silent = []
    for offset, bit in flips:
        path.write_bytes(_flip(good, offset, bit))
        try:
            res = load(path)
            ck = load_checkpoint(path)
        except DataError as exc:
            _assert_one_line(str(exc))
            tally["detected"] += 1
            continue
        changes = _changes(original, res)
        same_ck = ck.meta == ck0.meta and ck.arrays.keys() == ck0.arrays.keys() and all(
            np.array_equal(ck.arrays[k], ck0.arrays[k]) for k in ck.arrays)
        if not changes and same_ck:
            tally["harmless"] += 1
        elif not changes and ck.fallback and ck.meta["seq"] < ck0.meta["seq"]:
            tally["checkpoint fallback"] += 1
        else:
            region = next((name for lo, hi, name in ranges if lo <= offset < hi), "metadata")
            tally["silent"] += 1
            silent.append((offset, bit, region, changes or ["checkpoint"]))
    n = sum(tally.values())
    print(f"\n{n} bit flips in a {len(good)}-byte result file: "
          + ", ".join(f"{k} {v} ({v / n:.1%})" for k, v in tally.items())
          + "".join(f"\n  silent: byte {o} bit {b} in {r}: {c}" for o, b, r, c in silent))
    assert not silent, silent
    return tally


@pytest.mark.slow
def test_exhaustive_metadata_bit_flips(tmp_path):
    """One bit of every byte that is not raw chunk data (superblock, object headers, B-trees,
    free space) of a 10-snapshot file: every flip is detected, harmless or a fallback to the
    older checkpoint; none changes what is read, none hangs. Measured: 42382 flips, 15.4 %
    detected, 83.7 % harmless, 0.9 % fallback, in 9.4 minutes (a flip that made slot 1 read slot
    0's arrays and meta, consistently, is why each slot's meta records its slot number)."""
    src = tmp_path / "result.h5"
    assert _quiet_main(["solve", "gaussians", "--set", "time.t_end=0.05", "--set",
                        "time.n_outputs=10", "--set", "grid.n=64", "--set", "grid.r_max=6",
                        "-o", str(src), "-q"]) == 0
    where, good = tmp_path, src.read_bytes()
    raw = np.zeros(len(good), dtype=bool)
    for lo, hi, _ in _raw_data_ranges(src):
        raw[lo:hi] = True
    offsets = np.flatnonzero(~raw).tolist()
    tally = _sweep(good, src, where / "flipped.h5", [(o, o % 8) for o in offsets])
    assert tally["detected"] > 0.05 * len(offsets)  # the damage was read, not skipped
