"""Attribute and JSON encoding of the result files.

Every string attribute is stored as fixed-length UTF-8 bytes (see :mod:`.layout`: HDF5 keeps
variable-length strings in the unchecksummed global heap); dicts and lists become JSON text
(``json.dumps(obj, sort_keys=True, allow_nan=False)``) and are named in the ``json_attrs``
attribute; numbers become int64 / float64 / bool.  Decoding turns them back into plain Python
values.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

from .layout import JSON_ATTRS, RESERVED_ATTRS, check_name

__all__ = ["decode_attr", "decode_root_attrs", "encode_attrs", "package_version", "sha256_text",
           "str_attr", "to_json"]


def package_version() -> str:
    """Return the installed meanfield-pde version, or ``"0.1.0+unknown"`` if not installed."""
    try:
        return version("meanfield-pde")
    except PackageNotFoundError:
        return "0.1.0+unknown"


def _json_default(obj: Any) -> Any:
    """Convert numpy scalars and arrays for ``json.dumps``; reject anything else."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _find_nonfinite(obj: Any, where: str) -> str | None:
    """Return the location (e.g. ``config['model']['lr']``) of the first NaN/inf in ``obj``."""
    if isinstance(obj, float | np.floating) and not math.isfinite(float(obj)):
        return where
    if isinstance(obj, np.ndarray) and obj.dtype.kind in "fc" and not np.all(np.isfinite(obj)):
        return where
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            found = _find_nonfinite(value, f"{where}[{key!r}]")
            if found:
                return found
    if isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            found = _find_nonfinite(value, f"{where}[{i}]")
            if found:
                return found
    return None


def to_json(obj: Any, what: str) -> str:
    """Serialise ``obj`` as sorted JSON; ValueError for NaN/inf, TypeError for odd types."""
    try:
        return json.dumps(obj, sort_keys=True, allow_nan=False, default=_json_default)
    except ValueError as exc:
        where = _find_nonfinite(obj, what) or what
        raise ValueError(
            f"{where} is not finite (NaN or inf), which the JSON metadata cannot store; "
            "use a finite number"
        ) from exc
    except TypeError as exc:
        raise TypeError(f"{what} is not JSON serializable: {exc}") from exc


def sha256_text(text: str) -> str:
    """SHA-256 (hex) of the UTF-8 bytes of ``text`` (the ``config_sha256`` attribute)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def str_attr(text: str) -> np.bytes_:
    """A string attribute as fixed-length UTF-8 bytes (HDF5 keeps variable-length strings in
    the unchecksummed global heap); the empty string is one NUL byte, read back as ""."""
    return np.bytes_(text.encode("utf-8") or b"\0")


def _encode_attr(name: str, value: Any) -> tuple[Any, bool]:
    """Return ``(value to store, stored_as_json)`` for one extra root attribute."""
    if isinstance(value, Mapping | list | tuple):
        return str_attr(to_json(value, f"attribute {name!r}")), True
    if isinstance(value, bool | np.bool_):
        return np.bool_(value), False
    if isinstance(value, int | np.integer):
        if not -(2**63) <= int(value) < 2**63:
            raise ValueError(f"attribute {name!r} = {value} does not fit in int64")
        return np.int64(value), False
    if isinstance(value, float | np.floating):
        return np.float64(value), False
    if isinstance(value, str | np.str_):
        return str_attr(str(value)), False
    raise TypeError(
        f"attribute {name!r} has type {type(value).__name__}; "
        "use a bool, int, float, str, dict or list"
    )


def encode_attrs(attrs: Mapping[str, Any] | None) -> dict[str, tuple[Any, bool]]:
    """Validate and encode caller attributes, refusing the reserved names: name ->
    ``(value to store, stored_as_json)``."""
    encoded: dict[str, tuple[Any, bool]] = {}
    for name, value in (attrs or {}).items():
        check_name(name, "attribute")
        if name in RESERVED_ATTRS:
            raise ValueError(
                f"attribute {name!r} is reserved by the result file layout; use another name"
            )
        encoded[name] = _encode_attr(name, value)
    return encoded


def decode_attr(value: Any) -> Any:
    """Turn an attribute as read by h5py into a plain Python value where possible."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray) and value.dtype.kind in "OSU":
        return [decode_attr(v) for v in value.tolist()]
    return value


def decode_root_attrs(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The root attributes ``raw`` (already :func:`decode_attr`-ed) with those named in
    ``json_attrs`` JSON-decoded and ``json_attrs`` itself left out."""
    raw = dict(raw)
    json_names = json.loads(raw.pop(JSON_ATTRS, "[]"))
    return {name: json.loads(value) if name in json_names else value
            for name, value in raw.items()}
