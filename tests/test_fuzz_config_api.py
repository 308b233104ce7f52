"""Property-based fuzzing (hypothesis) of configurations built in the Python API: ``Config(problem,
values)`` constructed by hand, ``build_config(problem, data)``, ``cfg.replace({...})``,
``cfg.with_overrides({...})``, ``cfg[key]`` and ``cfg.section(name)``, from random dicts (unknown
sections and keys, wrong types, NaN/inf, huge and tiny numbers for every key of every problem's
schema, tables where values belong and values where tables belong, wrong argument types).

Each call gives a checked Config or raises ConfigError with a one-line message — never a raw
ValueError, KeyError, TypeError or AttributeError (issue 18 item 12: a hand-built Config was
accepted unchecked and failed later with a traceback; ``build_config(p, None)``, ``replace("k=v")``,
``cfg["nope"]`` raised TypeError / AttributeError / KeyError). Shared strategies: fuzzing.py.
"""

from __future__ import annotations

import re

import pytest
from fuzzing import ANY, KEYS, NAMES, assert_one_line, fuzz_settings, values_for
from hypothesis import given
from hypothesis import strategies as st

from meanfield_pde.config import SCHEMAS, Config, build_config, default_config
from meanfield_pde.errors import ConfigError

PROBLEM_NAMES = [*SCHEMAS, "single_neuron"]  # an alias too


def _value(data, problem: str, section: str, key: str):
    """A value for ``section.key``: near what its spec accepts (edges, NaN/inf, huge and
    tiny numbers, keywords) or anything at all."""
    spec = SCHEMAS[problem].get(section, {}).get(key)
    return data.draw(values_for(spec) if spec is not None else ANY, label=f"{section}.{key}")


def _random_doc(data, problem: str) -> dict:
    """A nested dict: real and junk sections, real and junk keys, values of any type."""
    schema = SCHEMAS[problem]
    doc: dict = {}
    for _ in range(data.draw(st.integers(0, 6), label="n sections")):
        section = data.draw(st.one_of(st.sampled_from(list(schema)), NAMES), label="section")
        if data.draw(st.integers(0, 9), label="scalar section?") == 0:
            doc[section] = data.draw(ANY, label="scalar")
            continue
        keys = list(schema.get(section, {})) or ["x"]
        table = doc.setdefault(section, {}) if isinstance(doc.get(section), dict) else {}
        doc[section] = table
        for _ in range(data.draw(st.integers(0, 4), label="n keys")):
            key = data.draw(st.one_of(st.sampled_from(keys), NAMES), label="key")
            table[key] = _value(data, problem, section, key)
    return doc


def _texts(value) -> list[str]:
    """Every string inside ``value`` (names the message may quote as given)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in (*_texts(k), *_texts(v))]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _texts(v)]
    return []


def _check(build, user) -> Config | None:
    """``build()``: a Config that rebuilds to itself, or a one-line ConfigError."""
    try:
        cfg = build()
    except ConfigError as exc:
        assert_one_line(str(exc), _texts(user))
        return None
    assert isinstance(cfg, Config) and cfg.problem in SCHEMAS
    assert Config(cfg.problem, cfg.values) == cfg == build_config(cfg.problem, cfg.to_dict())
    return cfg


@fuzz_settings(500)
@given(data=st.data())
def test_hand_built_and_resolved_configs_from_random_dicts(data):
    """Config(problem, doc) and build_config(problem, doc) agree: the same Config or both a
    ConfigError."""
    problem = data.draw(st.sampled_from(PROBLEM_NAMES), label="problem")
    doc = _random_doc(data, problem if problem in SCHEMAS else "single-neuron")
    by_hand = _check(lambda: Config(problem, doc), doc)
    resolved = _check(lambda: build_config(problem, doc), doc)
    assert by_hand == resolved


@fuzz_settings(500)
@given(data=st.data())
def test_replace_and_overrides_with_random_keys_and_values(data):
    """cfg.replace / cfg.with_overrides with dotted keys, section tables and junk."""
    problem, section, key, _ = data.draw(st.sampled_from(KEYS), label="key")
    cfg = default_config(problem)
    updates = {}
    for _ in range(data.draw(st.integers(1, 4), label="n updates")):
        kind = data.draw(st.sampled_from(["dotted", "junk", "table", "any key"]), label="kind")
        if kind == "dotted":
            updates[f"{section}.{key}"] = _value(data, problem, section, key)
        elif kind == "junk":
            updates[data.draw(NAMES, label="junk")] = data.draw(ANY, label="junk value")
        elif kind == "table":
            updates[section] = {key: _value(data, problem, section, key)}
        else:
            updates[data.draw(st.one_of(st.integers(), st.none(), st.tuples(NAMES)),
                              label="odd key")] = 1
    _check(lambda: cfg.replace(updates), updates)
    _check(lambda: cfg.with_overrides(updates), updates)
    reset = data.draw(st.one_of(st.lists(st.one_of(st.sampled_from(list(cfg.values)), NAMES),
                                         max_size=3), ANY), label="reset")
    _check(lambda: cfg.replace({}, reset=reset), reset)


@fuzz_settings(300)
@given(problem=st.one_of(st.sampled_from(PROBLEM_NAMES), ANY), values=ANY, dotted=ANY)
def test_wrong_argument_types(problem, values, dotted):
    """Anything as the problem, the values, the updates, a key or a section name."""
    _check(lambda: Config(problem, values), [problem, values])
    _check(lambda: build_config(problem, values), [problem, values])
    cfg = default_config("gaussians")
    _check(lambda: cfg.replace(values), values)
    _check(lambda: cfg.with_overrides(values), values)
    for lookup in (cfg.__getitem__, cfg.section):
        try:
            lookup(dotted)
        except ConfigError as exc:
            assert isinstance(exc, KeyError)  # still a mapping's lookup error
            assert_one_line(str(exc), _texts(dotted))


@pytest.mark.parametrize("problem", list(SCHEMAS))
def test_a_hand_built_config_is_checked_and_completed(problem):
    """The examples of the issue: refused with the key named, or completed with defaults."""
    cases = [({"model": {"d": "x"}}, "model.d"), ({"nope": {}}, "unknown section [nope]"),
             ({"time": {"t_end": float("nan")}}, "time.t_end"), ({"time": 5}, "must be a table"),
             ({"time": {"t_ned": 1.0}}, "unknown key time.t_ned")]
    for values, words in cases:
        with pytest.raises(ConfigError, match=re.escape(words)):
            Config(problem, values)
    cfg = Config(problem, {"time": {"t_end": 3}})
    assert cfg == default_config(problem).replace({"time.t_end": 3.0})
    assert isinstance(cfg["time.t_end"], float)
