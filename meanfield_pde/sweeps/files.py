"""The files of a sweep directory: one result file per point, its record, its lock.

``DIR/<name>.h5`` is the point's result file, in the format of a single run (its name derived
from the point: ``delta=0.6__d=20.h5`` for ``model.delta = 0.6, model.d = 20``); it is complete
on its own and carries the checkpoints a resume continues from, so the directory *is* the
sweep's state: a finished point is a complete file whose stored config (and kind of run) equals
the point's.  ``DIR/<name>.json`` records who ran the point and how it ended (status, one-line
error, worker, pid, run id), written atomically after the run; a failed point's record keeps a
rerun from repeating the failure.  ``DIR/.locks/<name>.lock`` is held by the task running the
point, so two tasks never write one file (e.g. a task of a killed client still running on a
cluster while the rerun starts).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import DataError
from ..io import load_checkpoint, read_attrs
from .points import Point, dim_names

__all__ = ["PointState", "file_kind", "point_name", "point_state", "read_record",
           "write_record"]

_SAFE = re.compile(r"[^A-Za-z0-9._+=-]")
MAX_NAME = 160  # characters of a point name before it is shortened (file systems allow 255)
COMMANDS = ("solve", "gibbs", "sgd")


class PointState(Enum):
    """What the files of a point say (:func:`point_state`)."""

    MISSING = "missing"  # no file (or debris of a run killed before its first checkpoint)
    FINISHED = "finished"  # complete, same config and command
    FAILED = "failed"  # its record says it failed, same config and command
    RESUMABLE = "resumable"  # incomplete with a checkpoint, same config and command
    FOREIGN = "foreign"  # a run of another config or command


def _value_text(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bool | int | str):
        return str(value).lower() if isinstance(value, bool) else str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def point_name(point: Point, keys: list[str]) -> str:
    """The file stem of ``point``: ``dim=value`` pairs joined by ``__`` (dims as in the table,
    :func:`~.points.dim_names`); characters other than letters, digits and ``._+=-`` become
    ``_``, and then (or when the name is long) a short digest of the point keeps names unique."""
    dims = dim_names(keys)
    raw = "__".join(f"{dims[k]}={_value_text(point.values[k])}" for k in keys)
    safe = _SAFE.sub("_", raw)
    if safe != raw or len(safe) > MAX_NAME:
        digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()[:10]
        safe = f"{safe[:MAX_NAME]}-{digest}"
    return safe


def file_kind(attrs: Mapping[str, Any]) -> str:
    """The command that wrote a result file: ``gibbs``, ``sgd`` or ``solve``."""
    if attrs.get("solution") == "gibbs_fixed_point":
        return "gibbs"
    return "sgd" if attrs.get("kind") == "sgd" else "solve"


def _config_of(attrs: Mapping[str, Any]) -> dict | None:
    text = attrs.get("config")
    try:
        return json.loads(text) if isinstance(text, str) else dict(text)
    except (TypeError, ValueError):
        return None


def record_path(path: Path) -> Path:
    """The record next to the result file ``path``."""
    return path.with_suffix(".json")


def lock_path(path: Path) -> Path:
    """The lock file of the point whose result file is ``path``."""
    return path.parent / ".locks" / (path.stem + ".lock")


def read_record(path: Path) -> dict | None:
    """The record of the point whose result file is ``path`` (None: none or unreadable)."""
    try:
        rec = json.loads(record_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def write_record(path: Path, record: Mapping[str, Any]) -> None:
    """Write the record of ``path`` atomically (a temporary file, then ``os.replace``)."""
    target = record_path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(dict(record), sort_keys=True, indent=1), encoding="utf-8")
    os.replace(tmp, target)


def _record_matches(rec: dict | None, cfg: Config, command: str) -> bool:
    return rec is not None and rec.get("command") == command and rec.get("config") == \
        cfg.to_dict()


def point_state(path: Path, cfg: Config, command: str) -> PointState:
    """What the files of the point with config ``cfg`` run by ``command`` say (see
    :class:`PointState`).  A result file that cannot be read, or was cut before its first
    checkpoint, counts as missing: it is debris of a killed run, computed again."""
    rec = read_record(path)
    if not path.exists():
        if rec is not None and rec.get("status") == "failed" and _record_matches(rec, cfg,
                                                                                 command):
            return PointState.FAILED  # e.g. refused before it wrote anything
        return PointState.MISSING
    try:
        attrs = read_attrs(path)
    except DataError:
        return PointState.MISSING
    if _config_of(attrs) != cfg.to_dict() or file_kind(attrs) != command:
        return PointState.FOREIGN
    if attrs.get("complete"):
        return PointState.FINISHED
    if rec is not None and rec.get("status") == "failed" and _record_matches(rec, cfg, command):
        return PointState.FAILED
    if command == "gibbs":
        return PointState.MISSING  # one snapshot written at the end: nothing to resume
    try:
        load_checkpoint(path)
    except DataError:
        return PointState.MISSING
    return PointState.RESUMABLE
