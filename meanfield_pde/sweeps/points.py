"""The points of a sweep: the Cartesian product of the varied values.

``--vary KEY=V1,V2,…`` lists values (each read as a TOML value, like ``--set``: ``0.6``, ``40``,
``inf``, ``"fv"``, ``[1, 2]``); ``--vary KEY=start:stop:num`` gives ``num`` evenly spaced values
from ``start`` to ``stop`` (both included; integers for an integer key).  Each value is checked
with the spec of its key in the problem's schema up front: an unknown key, a malformed item or a
key varied twice refuses the whole sweep (one-line :class:`~meanfield_pde.errors.ConfigError`);
a *value* that the schema refuses (a negative dimension, ...) makes only its points invalid —
they are recorded as failed with the schema's one-line message and the other points run.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import Config, Int, Spec, parse_value
from ..errors import ConfigError
from ..io.layout import one_line

__all__ = ["Point", "dim_names", "key_spec", "make_points", "parse_vary", "parse_vary_args"]

#: at most this many points in one sweep (a typo like 0:1:100000 is refused, not queued)
MAX_POINTS = 100_000


@dataclass(frozen=True)
class Point:
    """One point of the sweep: its position in the grid of varied values, the values (key ->
    value, in the order the keys were varied), and its resolved config (None if invalid, then
    ``error`` says why)."""

    index: tuple[int, ...]
    values: dict[str, Any]
    config: Config | None
    error: str = ""


def _split_items(text: str) -> list[str]:
    """``text`` split at the commas outside brackets and quotes."""
    items, depth, quote, cur = [], 0, "", []
    for c in text:
        if quote:
            quote = "" if c == quote else quote
        elif c in "\"'":
            quote = c
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
        elif c == "," and depth == 0:
            items.append("".join(cur))
            cur = []
            continue
        cur.append(c)
    items.append("".join(cur))
    return [s.strip() for s in items]


def _range(key: str, text: str, integer: bool) -> list[Any]:
    """``start:stop:num`` -> ``num`` evenly spaced values (integers for an integer key)."""
    parts = [parse_value(p) for p in text.split(":")]
    start, stop, num = parts
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in parts) or \
            not isinstance(num, int) or not 1 <= num <= MAX_POINTS or \
            not all(math.isfinite(x) for x in (start, stop)):
        raise ConfigError(f"--vary {key}={text}: write start:stop:num with finite numbers and "
                          f"1 <= num <= {MAX_POINTS}, e.g. --vary {key}=0.5:0.9:5")
    values = np.linspace(float(start), float(stop), num) if num > 1 else np.array([start], float)
    if not integer:
        return [float(v) for v in values]
    if not np.allclose(values, np.round(values), rtol=0.0, atol=1e-9):
        raise ConfigError(f"--vary {key}={text}: {key} is an integer but the range gives "
                          f"{', '.join(f'{v:g}' for v in values[:4])}...; choose start, stop and "
                          "num that give integers, or list the values: KEY=V1,V2,...")
    return [int(round(v)) for v in values]


def key_spec(cfg: Config, key: str) -> Spec:
    """The spec of the dotted ``key`` in the schema of ``cfg``'s problem.

    Raises:
        ConfigError: no such key (the message lists the known ones of its section).
    """
    from ..problems import registry

    schema = registry.get(cfg.problem).schema
    section, _, name = key.partition(".")
    if section not in schema or name not in schema[section]:
        known = ", ".join(f"{section}.{k}" for k in schema.get(section, {})) or \
            ", ".join(f"[{s}]" for s in schema)
        raise ConfigError(f"cannot vary {key}: no such key for {cfg.problem}; known: {known} (see "
                          f"'meanfield-pde config {cfg.problem} --keys')")
    return schema[section][name]


def parse_vary(item: str, cfg: Config) -> tuple[str, list[Any]]:
    """``"model.d=20,40"`` or ``"model.delta=0.5:0.9:5"`` -> (key, values), the key checked
    against ``cfg``'s schema.

    Raises:
        ConfigError: malformed item, unknown key, no value, or a range that does not fit.
    """
    key, sep, text = item.partition("=")
    key = key.strip()
    section, _, name = key.partition(".")
    if not sep or not text.strip() or not section or not name:
        raise ConfigError(f"--vary {item!r} is malformed; write --vary SECTION.KEY=V1,V2,... or "
                          "--vary SECTION.KEY=start:stop:num, e.g. --vary model.delta=0.6,0.8")
    spec = key_spec(cfg, key)
    text = text.strip()
    if text.count(":") == 2 and "[" not in text and '"' not in text:
        return key, _range(key, text, isinstance(spec, Int))
    values = [parse_value(v) for v in _split_items(text)]
    if any(v == "" for v in values):
        raise ConfigError(f"--vary {item!r} has an empty value; separate values by single "
                          "commas, e.g. --vary model.d=20,40")
    return key, values


def parse_vary_args(items: Sequence[str], cfg: Config) -> dict[str, list[Any]]:
    """Every ``--vary`` item parsed (:func:`parse_vary`); a key varied twice is refused."""
    vary: dict[str, list[Any]] = {}
    for item in items:
        key, values = parse_vary(item, cfg)
        if key in vary:
            raise ConfigError(f"--vary {key} is given twice; list all its values in one --vary "
                              f"{key}=V1,V2,...")
        vary[key] = values
    return vary


def _canonical(cfg: Config, key: str, value: Any) -> Any:
    """``value`` as the schema stores it (``40.0`` -> 40 for an integer key), or as given
    when the schema refuses it (the point is then invalid)."""
    try:
        return key_spec(cfg, key).coerce(value, key)
    except ConfigError:
        return value


def make_points(cfg: Config, vary: Mapping[str, Sequence[Any]]) -> list[Point]:
    """The Cartesian product of ``vary`` (key -> values) applied to ``cfg``, the last key
    varying fastest; each point's config resolved (an invalid one recorded with its error).

    Raises:
        ConfigError: no key varied, a key without values or with repeated values, an unknown
            key, or more than :data:`MAX_POINTS` points.
    """
    if not vary:
        raise ConfigError("a sweep needs at least one --vary KEY=V1,V2,... (e.g. --vary "
                          "model.delta=0.6,0.8)")
    keys = list(vary)
    for key in keys:
        key_spec(cfg, key)  # the key exists
    columns = []
    for key in keys:
        vals = [_canonical(cfg, key, v) for v in vary[key]]
        if not vals:
            raise ConfigError(f"--vary {key} has no values; give at least one")
        if len({repr(v) for v in vals}) != len(vals):
            raise ConfigError(f"--vary {key} repeats a value ({vals}); give each value once")
        columns.append(vals)
    n = math.prod(len(c) for c in columns)
    if n > MAX_POINTS:
        raise ConfigError(f"the sweep has {n} points, more than {MAX_POINTS}; vary fewer values")
    points = []
    for index in itertools.product(*(range(len(c)) for c in columns)):
        values = {k: columns[i][j] for i, (k, j) in enumerate(zip(keys, index, strict=True))}
        try:
            points.append(Point(index, values, cfg.replace(values)))
        except ConfigError as exc:
            points.append(Point(index, values, None, one_line(exc)))
    return points


def dim_names(keys: Sequence[str]) -> dict[str, str]:
    """Dataset dimension of each varied key: its name in its section (``model.delta`` ->
    ``delta``) when no other varied key has that name, else the dotted key with ``_``."""
    short = [k.rpartition(".")[2] for k in keys]
    return {k: s if short.count(s) == 1 else k.replace(".", "_")
            for k, s in zip(keys, short, strict=True)}
