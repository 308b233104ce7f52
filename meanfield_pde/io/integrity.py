"""Integrity of the result files beyond HDF5's own checksums (see :mod:`.layout`).

* ``grid_sha256`` and each checkpoint slot's ``arrays_sha256``: :func:`digest_arrays`, the
  SHA-256 over named arrays (name, dtype, shape and C-order bytes, in sorted name order).
* ``rows_sha256`` = "K h_K h_P": the hash chain of the snapshot rows (h_P: the rows committed
  before the write that made K, P = K − 1 for single appends), h_0 = SHA-256(""),
  h_(k+1) = SHA-256(h_k || row k), h_k as its 64 hex characters and row k the float64
  little-endian bytes of t[k] and of every field's row k in sorted name order.
* :func:`first_missing_row`: a pass over a dataset's chunk index (its v1 B-tree carries no
  checksum) finding rows whose chunk is not stored inside the file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import CorruptFile
from .attrs import str_attr

__all__ = ["CHAIN_START", "chain", "chain_step", "check_digests", "digest_arrays",
           "first_missing_row", "parse_rows_attr", "rows_attr"]


def digest_arrays(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over named arrays: name, dtype, shape and C-order bytes, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        h.update(json.dumps([name, arr.dtype.str, list(arr.shape)]).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


CHAIN_START = hashlib.sha256(b"").hexdigest()
"""h_0 of the row hash chain."""


def chain_step(prev: str, row: list[np.ndarray]) -> str:
    """h_(k+1) = SHA-256(h_k || row k): ``row`` holds t[k] then each field's row k (sorted
    names), as float64 little-endian bytes."""
    h = hashlib.sha256(prev.encode("ascii"))
    for arr in row:
        h.update(np.ascontiguousarray(arr, dtype="<f8").tobytes())
    return h.hexdigest()


def chain(columns: list[np.ndarray], k: int) -> list[str]:
    """[h_0, ..., h_k] for the first ``k`` rows of ``columns`` (t first, then the fields in
    sorted name order)."""
    out = [CHAIN_START]
    for i in range(k):
        out.append(chain_step(out[-1], [c[i] for c in columns]))
    return out


def rows_attr(k: int, hashes: list[str]) -> np.bytes_:
    """The rows_sha256 attribute "K h_K h_P" from ``hashes`` = [..., h_P, h_K] (h_P the hash
    of the rows committed before; for K = 0 it is written as h_0)."""
    return str_attr(f"{k} {hashes[-1]} {hashes[-2] if len(hashes) > 1 else hashes[-1]}")


def parse_rows_attr(value: Any) -> tuple[int, str, str]:
    """(K, h_K, h_(K-1)) from a rows_sha256 attribute; ValueError if malformed."""
    parts = value.split(" ") if isinstance(value, str) else []
    if len(parts) != 3 or not parts[0].isdigit():
        raise ValueError(f"malformed rows_sha256 {value!r}")
    return int(parts[0]), parts[1], parts[2]


def check_digests(p: Path, raw: Mapping[str, Any], t: np.ndarray,
                  fields: dict[str, np.ndarray] | None, grid: dict[str, np.ndarray]) -> None:
    """Compare the rows (``t`` and ``fields``, K = len(t) rows each) and the grid with their
    stored SHA-256 digests in the root attributes ``raw``, if the file has them (``fields``
    None: the grid only, for a lazy read that never holds all rows).

    rows_sha256 = "K h_K h_P" (h_P: the hash of the rows committed before the write that made
    K, P = K − 1 for single rows) may differ from n_snapshots = N after a crash: K > N (killed
    between the two attributes of a write of K − N rows: h_P = h_N covers the N rows) or K < N
    (killed while a resume was dropping rows: h_K covers the first K).

    Raises:
        CorruptFile: a digest does not match or is malformed.
    """
    k = int(t.shape[0])
    digest = raw.get("grid_sha256")
    if digest is not None and digest != digest_arrays(grid):
        raise CorruptFile(p, f"cannot read {p}: the grid arrays do not match their SHA-256 "
                          "digest")
    if "rows_sha256" not in raw or fields is None:
        return
    try:
        k_hash, last, prev = parse_rows_attr(raw["rows_sha256"])
    except ValueError as exc:
        raise CorruptFile(p, f"cannot read {p}: {exc}") from exc
    if k_hash <= k:
        n, want = k_hash, last
    else:  # killed between the attributes of a write: h_prev covers the k committed rows
        n, want = k, prev
    columns = [t, *(fields[name] for name in sorted(fields))]
    if chain(columns, n)[-1] != want:
        raise CorruptFile(p, f"cannot read {p}: the stored snapshots do not match their SHA-256 "
                          "digest (damaged data or chunk index)")


def first_missing_row(ds: h5py.Dataset, k: int, file_size: int) -> int | None:
    """Return the first of rows ``0..k-1`` without a stored chunk inside the file, or None.

    A damaged chunk index makes HDF5 return the fill value (NaN) instead of failing; this
    one pass over the index turns the detectable cases into an error. Only datasets
    chunked one row per chunk (as written by the writer) are checked.
    """
    if k == 0 or ds.chunks is None or ds.chunks[0] != 1:
        return None
    seen = np.zeros(k, dtype=bool)

    def visit(info: Any) -> None:
        row = info.chunk_offset[0]
        inside = info.byte_offset is not None and info.byte_offset + info.size <= file_size
        if 0 <= row < k and inside:
            seen[row] = True

    if hasattr(ds.id, "chunk_iter"):  # HDF5 >= 1.12.3: one pass over the index
        ds.id.chunk_iter(visit)
    else:
        for i in range(ds.id.get_num_chunks()):
            visit(ds.id.get_chunk_info(i))
    missing = np.flatnonzero(~seen)
    return int(missing[0]) if missing.size else None
