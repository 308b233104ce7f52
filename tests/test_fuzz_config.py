"""Property-based fuzzing (hypothesis) of config values: every key of every schema through
``--set`` and TOML files, several keys at once, raw TOML text, unknown and misspelt names, the
``problem`` key, malformed ``--set`` items.

A bad config value raises ConfigError whose message is one line naming the key (or, for a
cross-key check, a key of its section); a good one gives a Config that round-trips through TOML
and JSON. Shared strategies and checks: fuzzing.py.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from pathlib import Path

import pytest
import tomli_w
from fuzzing import (
    ANY,
    KEYS,
    NAMES,
    TEXTS,
    assert_one_line,
    fuzz_settings,
    no_int_digit_limit,
    toml_text,
    values_for,
)
from hypothesis import example, given
from hypothesis import strategies as st

from meanfield_pde.config import (
    SCHEMAS,
    Config,
    build_config,
    default_config,
    load_config,
    parse_value,
)
from meanfield_pde.errors import ConfigError


def _dumps(doc: dict) -> str:
    """tomli_w.dumps, for integers of any size too."""
    with no_int_digit_limit():
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
    nesting too deep): it quotes the start of one of the ``overrides`` values ``texts`` (not the
    key: parse_value does not know it), or names the file ``path``."""
    assert_one_line(msg, [str(path)] if path else [])
    if path is None:
        assert any(msg.startswith(f"overrides value {t[:40]!r}") for t in texts), msg
        assert "cannot be read" in msg, msg
    else:
        assert msg.startswith(f"{path} is not valid TOML"), msg


def set_text(spec) -> st.SearchStrategy:
    """The text after ``--set KEY=``: a TOML rendering of a value, or raw text."""
    return st.one_of(values_for(spec).map(toml_text), TEXTS)


def _names_key(msg: str, key: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(key)}(?![\w])", msg) is not None


def _texts(value) -> list[str]:
    """Every string in a (nested) value: table keys and string items."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in (*_texts(k), *_texts(v))]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return []


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
        assert_one_line(msg, [t for _, v in pairs for t in _texts(v)])
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
    assert_one_line(msg, user)
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
        assert_one_line(str(err.value), user)
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
    assert_one_line(str(err.value), _texts(problem))
    if doc == "value" and _unreadable(problem):
        _assert_unreadable(str(err.value), path=path)
    else:
        assert "problem" in str(err.value).replace(str(path), "")


@fuzz_settings(100)
@given(item=st.one_of(TEXTS, st.text(max_size=30)))
def test_malformed_set_items(item, scratch):
    """Any --set item: a Config that round-trips or a one-line ConfigError, never another
    exception."""
    key = item.partition("=")[0].strip()
    try:
        cfg = default_config("gaussians").with_overrides([item])
    except ConfigError as exc:
        assert_one_line(str(exc), [key, *key.split(".")])
        return
    _assert_roundtrip(cfg, scratch)
