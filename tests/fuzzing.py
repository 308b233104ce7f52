"""Shared pieces of the property-based fuzz tests (test_fuzz_*.py): hypothesis settings, value
strategies (integers and floats of every size, TOML fragments, nested values, values near what a
config key accepts), TOML rendering, and the "one line, never a traceback" checks of messages and
of the command line.

Every search is derandomized and database-less, so a run is reproducible. A case found to fail
is fixed in the package and kept as a fixed example (test_fuzz_cli.test_cli_fixed_bugs); while it
is not fixed it is excluded from the strategies with a ``# BUG:`` comment (no xfail), so that the
rest of the search keeps running. No exclusion is left.
"""

from __future__ import annotations

import contextlib
import math
import string
import sys

import tomli_w
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from meanfield_pde.cli import _printable, main
from meanfield_pde.config import (
    SCHEMAS,
    Bool,
    Choice,
    Float,
    FloatList,
    FloatOr,
    Int,
    Outputs,
    Params,
    Text,
)

PREFIX = "meanfield-pde: error: "

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
def no_int_digit_limit():
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
    no_int_digit_limit), as TOML writers need."""

    def __repr__(self) -> str:
        with no_int_digit_limit():
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
# line (see assert_one_line).
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


def toml_str(s: str) -> str:
    return tomli_w.dumps({"v": s})[len("v = "):-1]


def toml_text(value) -> str:
    """``value`` as an inline TOML value (what a user types after ``--set KEY=``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        with no_int_digit_limit():
            return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_str(k)} = {toml_text(v)}" for k, v in value.items()) + "}"
    return value.isoformat()  # date / time



KEYS = [(problem, section, key, spec)
        for problem, schema in SCHEMAS.items()
        for section, specs in schema.items()
        for key, spec in specs.items()]


def one_line(msg: str) -> bool:
    """Non-blank and without a line break."""
    return bool(msg.strip()) and not any(c in msg for c in LINE_BREAKS)


def assert_one_line(msg: str, user=()) -> None:
    """One line as the CLI prints it (control characters escaped), and one line apart from the
    texts in ``user`` (names and paths the user gave, which the message may quote as given)."""
    assert one_line(_printable(msg)), repr(msg)
    rest = msg
    for text in sorted((t for t in user if t), key=len, reverse=True):
        rest = rest.replace(text, "<user>")
    assert one_line(rest), repr(msg)


def assert_cli_error(err: str) -> None:
    """stderr ends with exactly one line ``meanfield-pde: error: ...`` (warnings may precede)."""
    assert err.endswith("\n") and err.count(PREFIX) == 1, err
    tail = err[err.index(PREFIX):-1]
    assert one_line(tail[len(PREFIX):]), err
    assert err[: -len(tail) - 1].endswith(("\n", "\r")) or len(err) == len(tail) + 1, err


def run_cli(argv: list[str], capsys) -> int:
    """main(argv): exit 0 or 2, and on 2 one error line (assert_cli_error); --help and
    --version exit through SystemExit with 0."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own exit for --help / --version
        capsys.readouterr()
        assert exc.code in (0, None), argv
        return 0
    _, err = capsys.readouterr()
    assert code in (0, 2), (argv, code, err)
    if code == 2:
        assert_cli_error(err)
    else:
        assert PREFIX not in err, err
    return code
