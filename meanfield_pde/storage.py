"""HDF5 result files: the one module that knows their layout.

A solve writes one HDF5 file. Its layout (``FORMAT_VERSION = 1``) is::

    /                          root group
      attrs:
        format_version   int    layout version (1); readers refuse newer versions
        package_version  str    meanfield-pde version that wrote the file
        problem          str    problem name, e.g. "gaussians"
        config           str    resolved config as JSON text
                                (json.dumps(config, sort_keys=True, allow_nan=False))
        config_sha256    str    SHA-256 of that text
        complete         bool   False until the run ends normally (ResultWriter.finish)
        created_utc      str    creation time, ISO 8601 in UTC
        n_snapshots      int    number of finished snapshots K; written after each
                                snapshot's data, so readers trust it (rows >= K of a
                                dataset are debris of an interrupted write and are ignored)
        rows_sha256      str    "K h_K h_(K-1)": the hash chain of the snapshot rows,
                                h_0 = SHA-256(""), h_(k+1) = SHA-256(h_k || row k), with
                                h_k as its 64 hex characters and row k the float64
                                little-endian bytes of t[k] and of every field's row k in
                                sorted name order;
                                written with the rows, flushed before n_snapshots
        grid_sha256      str    SHA-256 over the grid arrays (name, dtype, shape, bytes
                                in sorted name order)
        json_attrs       str    JSON list naming the extra attributes below that hold
                                JSON text (dicts and lists); bookkeeping only
        <extra>          scalar or str, e.g. seed, wall_seconds, compile_seconds, n_steps;
                                dicts and lists are stored as JSON text
      t                  (K,)          float64  output times, strictly increasing
      <scalar field>     (K,)          float64  e.g. risk, mass
      <array field>      (K, *shape)   float64  e.g. density (K, n) or (K, n_a, n_s, n_r)
      grid/              group of fixed arrays, e.g. grid/r_edges (n+1,), grid/r_centers (n,)
      checkpoint/        the state to resume from (see below)
        current   (1,)   int64   slot of the last complete checkpoint (0 or 1; -1: none)
        slot0/, slot1/   two checkpoint slots, written alternately
          meta    (CHECKPOINT_META_BYTES,) uint8  JSON text of the scalars (t, step counts,
                                  dt, position in the output plan, RNG state, config hash,
                                  n_snapshots at that moment, slot, arrays_sha256 = the SHA-256
                                  of each array of the slot, ...), zero padded
          <array> e.g. state (n,) or (n_a, n_s, n_r) for PDE runs, theta (N, D) for SGD

A checkpoint is written into the slot ``current`` does not point to; after a flush the pointer
is flipped (one 8-byte chunk write). Slot datasets keep their shapes, so a rewrite overwrites the
same bytes and changes no HDF5 metadata: a crash or ``kill -9`` at any moment leaves the slot the
pointer names intact. Every checkpoint dataset carries the Fletcher-32 filter; a reader that finds
the current slot damaged falls back to the other one. Each slot's meta also records the SHA-256
of its arrays, which makes a slot prove itself complete: the reader then takes the newest valid
slot whatever the pointer says (see :func:`load_checkpoint`).

``t`` and every field dataset are resizable along axis 0 (``maxshape=(None, ...)``),
chunked one snapshot per chunk, filled with NaN where nothing was written, and carry the
Fletcher-32 checksum filter (as do the non-empty grid arrays), so a corrupted chunk is
reported on read instead of returning wrong numbers. The file uses the HDF5 1.8 format
(``libver="v108"``, readable by HDF5 >= 1.8): its superblock and object headers are
checksummed too, and unlike the HDF5 >= 1.10 format it stays readable after a writer is
killed while the file is open.

Integrity beyond HDF5's own checksums. Two structures of the 1.8 format carry none: the
v1 B-trees that index the chunks of a dataset (a damaged entry can point a row at other
bytes, e.g. zeros, which pass Fletcher-32) and the global heap of variable-length strings
(a damaged size field there makes libhdf5 loop forever). Hence every string attribute is a
fixed-length UTF-8 byte string, kept with all other attributes in the root's checksummed
object header (the root never switches to dense attribute storage), and the content of the
rows, the grid and each checkpoint slot is covered by the SHA-256 digests above, which
:func:`load` and :func:`load_checkpoint` verify. Files without the digests (written before
they existed) are read without that check.

Writing follows the Dedalus pattern: every operation of :class:`ResultWriter` opens the
file, writes, flushes and closes it. A crash or ``kill -9`` of the solver therefore leaves
every finished snapshot readable, and other processes can read the file between writes.

Reading (:func:`load`) loads everything into memory (files are small) and closes the
file; every problem (missing, not HDF5, not ours, too new, truncated, corrupt) becomes a
:class:`~meanfield_pde.errors.DataError` with a one-line message.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TypeVar

import h5py
import numpy as np

from meanfield_pde.errors import DataError, DiskFull, OutputExists

__all__ = ["FORMAT_VERSION", "Checkpoint", "Result", "ResultWriter", "load", "load_checkpoint",
           "package_version"]

FORMAT_VERSION: int = 1
"""Version of the HDF5 layout written by this module; :func:`load` refuses newer ones."""

TIME_DATASET = "t"
GRID_GROUP = "grid"
CHECKPOINT_GROUP = "checkpoint"
CHECKPOINT_META_BYTES = 16384  # fixed size of a slot's JSON metadata
JSON_ATTRS = "json_attrs"
RESERVED_ATTRS = frozenset(
    {
        "format_version",
        "package_version",
        "problem",
        "config",
        "config_sha256",
        "complete",
        "created_utc",
        "n_snapshots",
        "rows_sha256",
        "grid_sha256",
        JSON_ATTRS,
    }
)
RESERVED_NAMES = frozenset({TIME_DATASET, GRID_GROUP, CHECKPOINT_GROUP})

# HDF5 1.8 file format: checksummed superblock, object headers and link storage, so
# corrupted metadata is detected instead of being parsed, and (unlike the 1.10 format) no
# "file is already open for write" flag that makes a file unreadable after a writer crash.
_LIBVER = (h5py.h5f.LIBVER_V18, h5py.h5f.LIBVER_V18)
# Keep every root attribute in the (checksummed) object header: HDF5 moves them to "dense"
# storage (a fractal heap) beyond 8 by default.
_MAX_COMPACT_ATTRIBUTES = 4096
_LOCK_TIMEOUT_SECONDS = 10.0  # how long to wait for another process holding the file
_CORRUPT_FIX = "the file is truncated or corrupt (re-run the solve)"
_T = TypeVar("_T")


def package_version() -> str:
    """Return the installed meanfield-pde version, or ``"0.1.0+unknown"`` if not installed."""
    try:
        return version("meanfield-pde")
    except PackageNotFoundError:
        return "0.1.0+unknown"


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def _one_line(exc: BaseException | str) -> str:
    """Return the text of ``exc`` with all whitespace (newlines included) collapsed."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


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


def _to_json(obj: Any, what: str) -> str:
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


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _str_attr(text: str) -> np.bytes_:
    """A string attribute as fixed-length UTF-8 bytes (HDF5 keeps variable-length strings in
    the unchecksummed global heap); the empty string is one NUL byte, read back as ""."""
    return np.bytes_(text.encode("utf-8") or b"\0")


def _digest_arrays(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over named arrays: name, dtype, shape and C-order bytes, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        h.update(json.dumps([name, arr.dtype.str, list(arr.shape)]).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


_CHAIN_START = hashlib.sha256(b"").hexdigest()


def _chain_step(prev: str, row: list[np.ndarray]) -> str:
    """h_(k+1) = SHA-256(h_k || row k): ``row`` holds t[k] then each field's row k (sorted
    names), as float64 little-endian bytes."""
    h = hashlib.sha256(prev.encode("ascii"))
    for arr in row:
        h.update(np.ascontiguousarray(arr, dtype="<f8").tobytes())
    return h.hexdigest()


def _chain(columns: list[np.ndarray], k: int) -> list[str]:
    """[h_0, ..., h_k] for the first ``k`` rows of ``columns`` (t first, then the fields in
    sorted name order)."""
    out = [_CHAIN_START]
    for i in range(k):
        out.append(_chain_step(out[-1], [c[i] for c in columns]))
    return out


def _rows_attr(k: int, chain: list[str]) -> np.bytes_:
    """The rows_sha256 attribute "K h_K h_(K-1)" from ``chain`` = [..., h_(K-1), h_K] (for
    K = 0, h_(-1) is written as h_0)."""
    return _str_attr(f"{k} {chain[-1]} {chain[-2] if len(chain) > 1 else chain[-1]}")


def _parse_rows_attr(value: Any) -> tuple[int, str, str]:
    """(K, h_K, h_(K-1)) from a rows_sha256 attribute; ValueError if malformed."""
    parts = value.split(" ") if isinstance(value, str) else []
    if len(parts) != 3 or not parts[0].isdigit():
        raise ValueError(f"malformed rows_sha256 {value!r}")
    return int(parts[0]), parts[1], parts[2]


def _check_name(name: Any, what: str) -> str:
    """Validate a dataset/attribute name (non-empty str without '/')."""
    if not isinstance(name, str) or not name or "/" in name or name == ".":
        raise ValueError(f"invalid {what} name {name!r}: use a non-empty string without '/'")
    return name


def _encode_attr(name: str, value: Any) -> tuple[Any, bool]:
    """Return ``(value to store, stored_as_json)`` for one extra root attribute."""
    if isinstance(value, Mapping | list | tuple):
        return _str_attr(_to_json(value, f"attribute {name!r}")), True
    if isinstance(value, bool | np.bool_):
        return np.bool_(value), False
    if isinstance(value, int | np.integer):
        if not -(2**63) <= int(value) < 2**63:
            raise ValueError(f"attribute {name!r} = {value} does not fit in int64")
        return np.int64(value), False
    if isinstance(value, float | np.floating):
        return np.float64(value), False
    if isinstance(value, str | np.str_):
        return _str_attr(str(value)), False
    raise TypeError(
        f"attribute {name!r} has type {type(value).__name__}; "
        "use a bool, int, float, str, dict or list"
    )


def _encode_attrs(attrs: Mapping[str, Any] | None) -> dict[str, tuple[Any, bool]]:
    """Validate and encode caller attributes, refusing the reserved names."""
    encoded: dict[str, tuple[Any, bool]] = {}
    for name, value in (attrs or {}).items():
        _check_name(name, "attribute")
        if name in RESERVED_ATTRS:
            raise ValueError(
                f"attribute {name!r} is reserved by the result file layout; use another name"
            )
        encoded[name] = _encode_attr(name, value)
    return encoded


def _decode_attr(value: Any) -> Any:
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
        return [_decode_attr(v) for v in value.tolist()]
    return value


def _retry_locked(fn: Callable[[], _T], path: Path) -> _T:
    """Call ``fn``; while another process holds the HDF5 file lock, retry for a while."""
    deadline = time.monotonic() + _LOCK_TIMEOUT_SECONDS
    delay = 0.005
    while True:
        try:
            return fn()
        except BlockingIOError as exc:  # HDF5 file lock held by another process
            if time.monotonic() > deadline:
                raise DataError(
                    f"{path} stayed locked by another process for {_LOCK_TIMEOUT_SECONDS:g} s "
                    f"({_one_line(exc)}); close the other program or retry later"
                ) from exc
            time.sleep(delay)
            delay = min(2 * delay, 0.2)


def _create_file(path: Path, overwrite: bool) -> h5py.File:
    """Create ``path`` in the HDF5 1.8 format with every root attribute kept compact."""
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(*_LIBVER)
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_attr_phase_change(_MAX_COMPACT_ATTRIBUTES, 0)
    flags = h5py.h5f.ACC_TRUNC if overwrite else h5py.h5f.ACC_EXCL
    return h5py.File(h5py.h5f.create(os.fsencode(path), flags, fapl=fapl, fcpl=fcpl))


@contextmanager
def _open(path: Path, mode: str) -> Iterator[h5py.File]:
    """Open ``path`` with h5py, waiting for file locks held by other processes."""
    f = _retry_locked(lambda: h5py.File(path, mode), path)
    try:
        yield f
    finally:
        f.close()


# Every write first checks that the file system keeps this much free beyond what the write adds:
# libhdf5 does not survive a failed write (the file is left with a superblock pointing past its
# end, and releasing the objects of the failed file crashes the process: h5py/h5py#914, closed
# as a bug of the external library; reproduced with h5py 3.16 / HDF5 2.0), so "disk full" must
# be caught before HDF5 sees it.
DISK_RESERVE_BYTES = 4 * 2**20
_METADATA_BYTES = 64 * 2**10  # generous bound on the metadata one write adds


def _free_bytes(path: Path) -> float:
    """Bytes available to this user on the file system holding ``path`` (its directory)."""
    st = os.statvfs(path if path.is_dir() else path.parent)
    return float(st.f_bavail) * float(st.f_frsize)


def _check_space(path: Path, need: float, what: str, *, resumable: bool = True) -> None:
    """Refuse (one-line DataError, nothing written) a write of about ``need`` bytes that would
    leave less than DISK_RESERVE_BYTES free; the message names ``resume`` if ``resumable``."""
    try:
        free = _free_bytes(path)
    except OSError:
        return  # unknown (e.g. a file system without statvfs): let the write try
    need = float(need) + _METADATA_BYTES
    if free - need < DISK_RESERVE_BYTES:
        raise DiskFull(path, f"{free / 2**20:.3g} MiB free where {path} is written, {what} "
                       f"needs {need / 2**20:.3g} MiB and {DISK_RESERVE_BYTES / 2**20:.3g} MiB "
                       "are kept in reserve", resumable)


def _write_row(f: h5py.File, name: str, k: int, arr: np.ndarray) -> None:
    """Resize the (K, *shape) dataset ``name`` to k + 1 rows and write row k (h5py's low-level
    API: the same HDF5 calls as ``ds.resize(k + 1, axis=0); ds[k] = arr`` in half the time)."""
    arr = np.asarray(arr, dtype=np.float64, order="C")  # (ascontiguousarray makes 0-d 1-d)
    shape = arr.shape
    dsid = h5py.h5d.open(f.id, name.encode("utf-8"))
    dsid.set_extent((k + 1, *shape))
    if arr.size == 0:
        return
    fspace = dsid.get_space()
    fspace.select_hyperslab((k, *([0] * len(shape))), (1, *shape))
    dsid.write(h5py.h5s.create_simple((1, *shape)), fspace, arr.reshape(1, *shape))


def _write_error(path: Path, exc: BaseException) -> DataError:
    """One-line DataError for a failed write (unwritable location, disk full, ...)."""
    return DataError(
        f"cannot write {path}: {_one_line(exc)}; check that the location is writable "
        "and the disk is not full"
    )


# --------------------------------------------------------------------------------------
# writer
# --------------------------------------------------------------------------------------


class ResultWriter:
    """Create a result file and append snapshots to it, one open/write/close per call.

    The constructor writes all metadata, the ``grid`` arrays and empty, resizable
    datasets ``t`` and one per field, then closes the file. :meth:`append` adds one
    snapshot; :meth:`finish` marks the run complete.

    Args:
        path: Output file; missing parent directories are created.
        problem: Problem name, e.g. ``"gaussians"``.
        config: Resolved config (JSON-serialisable, finite numbers only).
        grid: Fixed numeric arrays stored under ``grid/``.
        fields: Snapshot field name -> per-snapshot shape (``()`` for scalars).
        attrs: Extra root attributes (bool/int/float/str; dicts and lists become JSON text).
        overwrite: Replace an existing file instead of raising DataError.

    Raises:
        DataError: ``path`` exists and ``overwrite`` is false, or it cannot be written.
        ValueError, TypeError: Invalid arguments (programming errors), including a
            non-finite number in ``config``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        problem: str,
        config: dict,
        grid: dict[str, np.ndarray],
        fields: dict[str, tuple[int, ...]],
        attrs: dict | None = None,
        overwrite: bool = False,
    ) -> None:
        self._path = Path(path)
        # --- validate everything before touching the file system --------------------
        if not isinstance(problem, str) or not problem:
            raise ValueError(f"problem must be a non-empty string, got {problem!r}")
        if not isinstance(config, Mapping):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        config_json = _to_json(config, "config")
        grid_arrays = self._check_grid(grid)
        self._fields = self._check_fields(fields)
        extra = _encode_attrs(attrs)
        self._n = 0
        self._last_t = -math.inf
        self._chain = [_CHAIN_START]  # h_(K-1), h_K of the rows written (see rows_sha256)

        # --- create the file ---------------------------------------------------------
        p = self._path
        if p.is_dir():
            raise DataError(f"output {p} is a directory; choose a file path")
        if p.exists() and not overwrite:
            raise OutputExists(p)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _write_error(p, exc) from exc
        _check_space(p, sum(a.nbytes for a in grid_arrays.values()) + len(config_json),
                     "the new file", resumable=False)
        try:
            f = _retry_locked(lambda: _create_file(p, overwrite), p)
        except FileExistsError as exc:  # created by someone else since the check above
            raise OutputExists(p) from exc
        except OSError as exc:
            raise _write_error(p, exc) from exc
        try:
            with f:
                f.attrs["format_version"] = np.int64(FORMAT_VERSION)
                f.attrs["package_version"] = _str_attr(package_version())
                f.attrs["problem"] = _str_attr(problem)
                f.attrs["config"] = _str_attr(config_json)
                f.attrs["config_sha256"] = _str_attr(_sha256(config_json))
                f.attrs["complete"] = np.bool_(False)
                f.attrs["created_utc"] = _str_attr(
                    datetime.now(UTC).isoformat(timespec="seconds"))
                for name, (value, _) in extra.items():
                    f.attrs[name] = value
                f.attrs[JSON_ATTRS] = _str_attr(
                    json.dumps(sorted(n for n, (_, j) in extra.items() if j)))
                f.attrs["grid_sha256"] = _str_attr(_digest_arrays(grid_arrays))
                f.attrs["rows_sha256"] = _rows_attr(0, self._chain)
                g = f.create_group(GRID_GROUP)
                for name, arr in grid_arrays.items():
                    checksum = arr.ndim > 0 and arr.size > 0
                    g.create_dataset(name, data=arr, fletcher32=checksum)
                for name, shape in {TIME_DATASET: (), **self._fields}.items():
                    f.create_dataset(
                        name,
                        shape=(0, *shape),
                        maxshape=(None, *shape),
                        chunks=(1, *shape),
                        dtype=np.float64,
                        fillvalue=np.nan,  # rows lost to a damaged index read as NaN, not 0
                        fletcher32=True,
                    )
                f.attrs["n_snapshots"] = np.int64(0)  # last: the file is now consistent
        except (OSError, RuntimeError) as exc:
            try:
                p.unlink()
            except OSError:
                pass
            raise _write_error(p, exc) from exc

    @staticmethod
    def _check_grid(grid: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Validate the grid arrays (numeric); floats become float64, ints int64."""
        if not isinstance(grid, Mapping):
            raise TypeError(f"grid must be a dict of arrays, got {type(grid).__name__}")
        out: dict[str, np.ndarray] = {}
        for name, value in grid.items():
            _check_name(name, "grid array")
            arr = np.asarray(value)
            if arr.dtype.kind == "f":
                arr = arr.astype(np.float64)
            elif arr.dtype.kind in "iu":
                arr = arr.astype(np.int64)
            elif arr.dtype.kind != "b":
                raise TypeError(f"grid array {name!r} has non-numeric dtype {arr.dtype}")
            out[name] = arr
        return out

    @staticmethod
    def _check_fields(fields: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
        """Validate field names and per-snapshot shapes (positive ints, () for scalars)."""
        if not isinstance(fields, Mapping) or not fields:
            raise ValueError("fields must be a non-empty dict of name -> per-snapshot shape")
        out: dict[str, tuple[int, ...]] = {}
        for name, shape in fields.items():
            _check_name(name, "field")
            if name in RESERVED_NAMES:
                raise ValueError(f"field name {name!r} is reserved by the result file layout")
            try:
                dims = tuple(int(d) for d in shape)
            except TypeError as exc:
                raise TypeError(f"shape of field {name!r} must be a tuple of ints") from exc
            if any(d <= 0 for d in dims):
                raise ValueError(f"shape {dims} of field {name!r} must have positive sizes")
            out[name] = dims
        return out

    @property
    def path(self) -> Path:
        """The result file."""
        return self._path

    @property
    def n_snapshots(self) -> int:
        """Number of snapshots written so far."""
        return self._n

    def append(self, t: float, values: dict[str, float | np.ndarray]) -> None:
        """Append the snapshot at time ``t``: open, resize, write, set n_snapshots, close.

        Args:
            t: Output time; finite and larger than the previous one.
            values: Exactly the declared fields, each with its declared shape.

        Raises:
            ValueError: Wrong keys, shapes or times (programming errors).
            DataError: The file vanished, was changed by someone else, or cannot be written.
        """
        t = float(t)
        if not math.isfinite(t) or t <= self._last_t:
            raise ValueError(
                f"snapshot time {t!r} must be finite and larger than the previous {self._last_t!r}"
            )
        if set(values) != set(self._fields):
            missing = sorted(set(self._fields) - set(values))
            extra = sorted(set(values) - set(self._fields))
            raise ValueError(f"snapshot fields mismatch: missing {missing}, unexpected {extra}")
        arrays: dict[str, np.ndarray] = {}
        for name, shape in self._fields.items():
            arr = np.asarray(values[name])
            if arr.dtype.kind not in "biuf":
                raise ValueError(f"field {name!r} has non-real dtype {arr.dtype}")
            if arr.shape != shape:
                raise ValueError(f"field {name!r} has shape {arr.shape}, expected {shape}")
            arrays[name] = arr.astype(np.float64)  # a copy: safe to change in place
            arrays[name] += 0.0  # -0.0 (a sign artefact) -> +0.0

        p = self._path
        k = self._n
        _check_space(p, 8 + sum(a.nbytes + 4 for a in arrays.values()), "the next snapshot")
        try:
            with _open(p, "r+") as f:
                stored = int(f.attrs["n_snapshots"])
                if stored != k:
                    raise DataError(
                        f"output {p} has n_snapshots={stored} but this writer wrote {k}; "
                        "another process changed it, write each run to its own file"
                    )
                # Resizing to exactly k+1 also drops debris of an earlier interrupted append.
                row = {TIME_DATASET: np.float64(t), **arrays}
                for name, arr in row.items():
                    _write_row(f, name, k, arr)
                # The digest may reach the disk before or after the rows (a reader of
                # n_snapshots = k checks h_k, which it also holds), never after n_snapshots.
                chain = [self._chain[-1], _chain_step(self._chain[-1], self._row_order(row))]
                f.attrs["rows_sha256"] = _rows_attr(k + 1, chain)
                f.flush()
                f.attrs["n_snapshots"] = np.int64(k + 1)  # last: readers trust it
                f.flush()
        except FileNotFoundError as exc:
            raise DataError(
                f"output {p} disappeared during the run; do not move or delete it while solving"
            ) from exc
        except (OSError, RuntimeError, KeyError) as exc:
            raise _write_error(p, exc) from exc
        self._n = k + 1
        self._last_t = t
        self._chain = chain

    def _row_order(self, row: Mapping[str, Any]) -> list[np.ndarray]:
        """The arrays of one row in hash-chain order: t, then the fields by sorted name."""
        return [np.asarray(row[TIME_DATASET]), *(np.asarray(row[n]) for n in sorted(self._fields))]

    @classmethod
    def reopen(cls, path: str | os.PathLike, n_snapshots: int) -> ResultWriter:
        """A writer that continues the file ``path`` after its first ``n_snapshots`` snapshots
        (rows beyond them, written after the checkpoint being resumed, are dropped) and marks it
        incomplete until :meth:`finish`."""
        self = cls.__new__(cls)
        p = self._path = Path(path)
        _check_space(p, 0, "reopening the file")
        try:
            with _open(p, "r+") as f:
                self._fields = {name: tuple(f[name].shape[1:]) for name in f
                                if name not in RESERVED_NAMES and isinstance(f[name], h5py.Dataset)}
                t = f[TIME_DATASET]
                if not 0 <= n_snapshots <= t.shape[0]:
                    raise DataError(f"{p} has {t.shape[0]} snapshots, fewer than the checkpoint's "
                                    f"{n_snapshots}; {_CORRUPT_FIX}")
                self._last_t = float(t[n_snapshots - 1]) if n_snapshots else -math.inf
                columns = [np.asarray(f[name][:n_snapshots])
                           for name in (TIME_DATASET, *sorted(self._fields))]
                self._chain = _chain(columns, n_snapshots)[-2:]
                f.attrs["rows_sha256"] = _rows_attr(n_snapshots, self._chain)
                f.flush()  # before n_snapshots: see the reader's check of rows_sha256
                f.attrs["n_snapshots"] = np.int64(n_snapshots)
                f.attrs["complete"] = np.bool_(False)
        except DataError:
            raise
        except (OSError, RuntimeError, KeyError, ValueError) as exc:
            raise _write_error(p, exc) from exc
        self._n = n_snapshots
        return self

    def update_config(self, config: dict) -> None:
        """Replace the stored resolved config (``resume --t-end`` extends ``time.t_end``)."""
        text = _to_json(config, "config")
        _check_space(self._path, 2 * len(text), "the config")
        try:
            with _open(self._path, "r+") as f:
                f.attrs["config"] = _str_attr(text)
                f.attrs["config_sha256"] = _str_attr(_sha256(text))
        except (OSError, RuntimeError) as exc:
            raise _write_error(self._path, exc) from exc

    def write_checkpoint(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> int:
        """Write a checkpoint (arrays + JSON ``meta``) atomically; returns the slot used.

        The arrays and the metadata go into the slot the pointer ``checkpoint/current`` does not
        name; the file is flushed, then the pointer is flipped and flushed again, so an
        interruption at any moment leaves the previous checkpoint in force.  ``meta`` gets
        ``n_snapshots`` (the snapshots finished so far) and a sequence number added.
        """
        p = self._path
        _check_space(p, CHECKPOINT_META_BYTES + sum(np.asarray(a).nbytes for a in arrays.values()),
                     "a checkpoint")
        try:
            with _open(p, "r+") as f:
                stored = int(f.attrs["n_snapshots"])
                if stored != self._n:
                    raise DataError(
                        f"output {p} has n_snapshots={stored} but this writer wrote {self._n}; "
                        "another process changed it, write each run to its own file"
                    )
                g = f.require_group(CHECKPOINT_GROUP)
                if "current" not in g:
                    g.create_dataset("current", data=np.array([-1], dtype=np.int64),
                                     chunks=(1,), fletcher32=True)
                current = int(g["current"][0])
                slot = 0 if current != 0 else 1
                seq = 0  # one more than any slot's (the newest valid slot is the one read)
                for name in ("slot0", "slot1"):
                    try:
                        seq = max(seq, int(_slot_meta(g[name])["seq"]) + 1)
                    except (KeyError, ValueError, OSError, TypeError, UnicodeDecodeError):
                        pass
                stored_arrays = {}
                for name, value in arrays.items():
                    arr = np.ascontiguousarray(value)
                    if arr.dtype.kind == "f":
                        arr = arr.astype(np.float64, copy=False)
                    stored_arrays[name] = arr
                text = _to_json({**meta, "n_snapshots": self._n, "seq": seq, "slot": slot,
                                 "arrays_sha256": _digest_arrays(stored_arrays)},
                                "checkpoint meta")
                raw = text.encode("utf-8")
                if len(raw) > CHECKPOINT_META_BYTES:
                    raise ValueError(f"checkpoint metadata is {len(raw)} bytes, more than "
                                     f"{CHECKPOINT_META_BYTES}")
                buf = np.zeros(CHECKPOINT_META_BYTES, dtype=np.uint8)
                buf[: len(raw)] = np.frombuffer(raw, dtype=np.uint8)
                sg = g.require_group(f"slot{slot}")
                for name, arr in {**stored_arrays, "meta": buf}.items():
                    ds = sg.get(name)
                    if ds is not None and ds.shape == arr.shape and ds.dtype == arr.dtype:
                        ds[...] = arr  # same bytes, no metadata change
                    else:
                        if ds is not None:
                            del sg[name]
                        sg.create_dataset(name, data=arr, fletcher32=arr.size > 0,
                                          chunks=arr.shape if arr.size > 0 else None)
                for name in [n for n in sg if n not in arrays and n != "meta"]:
                    del sg[name]
                f.flush()
                g["current"][0] = slot  # the flip: from here on this slot is in force
                f.flush()
        except DataError:
            raise
        except FileNotFoundError as exc:
            raise DataError(
                f"output {p} disappeared during the run; do not move or delete it while solving"
            ) from exc
        except (OSError, RuntimeError, KeyError) as exc:
            raise _write_error(p, exc) from exc
        return slot

    def set_attrs(self, **attrs: Any) -> None:
        """Set extra root attributes (open, write, close); reserved names are refused."""
        self._write_attrs(_encode_attrs(attrs), complete=None)

    def finish(self, **attrs: Any) -> None:
        """Set extra root attributes and mark the run complete (``complete = True``)."""
        self._write_attrs(_encode_attrs(attrs), complete=True)

    def _write_attrs(self, encoded: dict[str, tuple[Any, bool]], complete: bool | None) -> None:
        """Write encoded attributes and, if given, the ``complete`` flag, in one open."""
        p = self._path
        _check_space(p, sum(np.asarray(v).nbytes for v, _ in encoded.values()), "the attributes")
        try:
            with _open(p, "r+") as f:
                as_json = set(json.loads(f.attrs.get(JSON_ATTRS, "[]")))
                for name, (value, is_json) in encoded.items():
                    f.attrs[name] = value
                    if is_json:
                        as_json.add(name)
                    else:
                        as_json.discard(name)
                f.attrs[JSON_ATTRS] = _str_attr(json.dumps(sorted(as_json)))
                if complete is not None:
                    f.attrs["complete"] = np.bool_(complete)
        except FileNotFoundError as exc:
            raise DataError(
                f"output {p} disappeared during the run; do not move or delete it while solving"
            ) from exc
        except (OSError, RuntimeError, ValueError) as exc:
            raise _write_error(p, exc) from exc


# --------------------------------------------------------------------------------------
# reader
# --------------------------------------------------------------------------------------


def _format_times(times: np.ndarray, limit: int = 20) -> str:
    """List output times compactly (shortest round-trip repr), eliding the middle if long."""
    values = [repr(float(x)) for x in times]
    if len(values) > limit:
        values = [*values[:10], "...", *values[-5:]]
    return "[" + ", ".join(values) + "]"


@dataclass
class Result:
    """Everything in one result file, loaded into memory (see :func:`load`).

    Attributes:
        path: The file read.
        problem: Problem name.
        config: Resolved config.
        attrs: All root attributes (JSON-decoded where they were dicts or lists), without
            the ``json_attrs`` bookkeeping attribute.
        complete: Whether the run ended normally.
        t: Output times, shape (K,).
        grid: Fixed grid arrays.
        fields: Snapshot fields, each truncated to K = ``n_snapshots`` rows.
    """

    path: Path
    problem: str
    config: dict
    attrs: dict
    complete: bool
    t: np.ndarray
    grid: dict[str, np.ndarray] = field(default_factory=dict)
    fields: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_snapshots(self) -> int:
        """Number of snapshots K."""
        return int(self.t.shape[0])

    def __getitem__(self, name: str) -> np.ndarray:
        """Return field ``name``, the times for ``"t"``, or grid array ``"grid/<name>"``."""
        if name == TIME_DATASET:
            return self.t
        if name.startswith(GRID_GROUP + "/"):
            key = name[len(GRID_GROUP) + 1 :]
            if key in self.grid:
                return self.grid[key]
        elif name in self.fields:
            return self.fields[name]
        available = [*sorted(self.fields), *(f"{GRID_GROUP}/{g}" for g in sorted(self.grid))]
        raise KeyError(f"{name!r} is not in {self.path}; available: {', '.join(available)}")

    def index_of_time(self, t: float, rtol: float = 1e-12) -> int:
        """Return the snapshot index whose time equals ``t`` up to relative tolerance ``rtol``.

        Raises:
            DataError: No output time matches; the message lists the available times.
        """
        t = float(t)
        diff = np.abs(self.t - t)
        hits = np.flatnonzero(diff <= rtol * np.maximum(abs(t), np.abs(self.t)))
        if hits.size:
            return int(hits[np.argmin(diff[hits])])
        raise DataError(
            f"time {t!r} is not an output time of {self.path}; available times "
            f"({self.t.size}): {_format_times(self.t)}; pass one of them"
        )


@dataclass
class Checkpoint:
    """The last complete checkpoint of a result file (see :func:`load_checkpoint`)."""

    path: Path
    slot: int
    meta: dict
    arrays: dict[str, np.ndarray]
    fallback: bool = False  # the pointed-to slot was damaged; this is the other, older one


def _slot_meta(g: h5py.Group) -> dict:
    raw = np.asarray(g["meta"][()], dtype=np.uint8).tobytes().rstrip(b"\0")
    meta = json.loads(raw.decode("utf-8"))
    if not isinstance(meta, dict):
        raise ValueError("checkpoint metadata is not a JSON object")
    return meta


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read the last complete checkpoint.

    A slot whose meta records ``arrays_sha256`` proves itself complete (its arrays are written
    before its meta, under Fletcher-32 and that digest): of such slots the newest (highest
    ``seq``) is used, so a damaged pointer or a kill between a slot's flush and the pointer's
    flip costs nothing. Slots of files written before the digests existed are chosen by the
    pointer, the other slot serving if the named one is damaged. ``fallback`` is set when the
    slot used is not the one the pointer names.

    Raises:
        DataError: (one line) the file has no checkpoint, or no readable one.
    """
    p = Path(path)
    load(p)  # the snapshots must be readable too; raises the one-line errors of load()
    try:
        with _open(p, "r") as f:
            if CHECKPOINT_GROUP not in f or "current" not in f[CHECKPOINT_GROUP]:
                raise DataError(f"{p} has no checkpoint (it was written before checkpoints "
                                "existed, or killed before the first one); run the solve again")
            g = f[CHECKPOINT_GROUP]
            try:
                current = int(g["current"][0])
            except (OSError, ValueError, IndexError) as exc:
                current, pointer_error = -2, _one_line(exc)
            else:
                pointer_error = ""
            valid: dict[int, tuple[dict, dict[str, np.ndarray]]] = {}
            errors = []
            for slot in (0, 1):
                if f"slot{slot}" not in g:
                    continue
                try:
                    sg = g[f"slot{slot}"]
                    meta = _slot_meta(sg)
                    arrays = {n: np.asarray(sg[n][()]) for n in sg if n != "meta"}
                    digest = meta.get("arrays_sha256")
                    if digest is not None and digest != _digest_arrays(arrays):
                        raise ValueError("its arrays do not match their SHA-256 digest")
                    if not isinstance(meta.get("seq"), int) or meta["seq"] < 0:
                        raise ValueError("no sequence number")
                    if meta.get("slot", slot) != slot:  # a damaged index led to the other slot
                        raise ValueError(f"it holds the checkpoint of slot {meta['slot']}")
                    valid[slot] = (meta, arrays)
                except (OSError, KeyError, ValueError, TypeError, UnicodeDecodeError) as exc:
                    errors.append(f"slot {slot}: {_one_line(exc)}")
            proven = [s for s, (m, _) in valid.items() if "arrays_sha256" in m]
            if proven:
                slot = max(proven, key=lambda s: valid[s][0]["seq"])
            elif current in valid:
                slot = current
            elif current in (0, 1) and 1 - current in valid:
                slot = 1 - current
            elif current == -1 and not errors:
                raise DataError(f"{p} has no complete checkpoint yet (the run was stopped "
                                "before its first one); run the solve again")
            else:
                if pointer_error:
                    errors.insert(0, f"pointer: {pointer_error}")
                raise DataError(f"no readable checkpoint in {p} "
                                f"({'; '.join(errors) or 'no slot'}); {_CORRUPT_FIX}")
            meta, arrays = valid[slot]
            return Checkpoint(p, slot, meta, arrays, fallback=slot != current)
    except DataError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise DataError(f"cannot read the checkpoint of {p}: {_one_line(exc)}; "
                        f"{_CORRUPT_FIX}") from exc


def _first_missing_row(ds: h5py.Dataset, k: int, file_size: int) -> int | None:
    """Return the first of rows ``0..k-1`` without a stored chunk inside the file, or None.

    A damaged chunk index makes HDF5 return the fill value (NaN) instead of failing; this
    one pass over the index turns the detectable cases into an error. Only datasets
    chunked one row per chunk (as written by :class:`ResultWriter`) are checked.
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


def load(path: str | os.PathLike) -> Result:
    """Read a result file written by :class:`ResultWriter` into memory and close it.

    Raises:
        DataError: (one line) the file is missing, not HDF5, not written by meanfield-pde,
            of a newer format, truncated or corrupt.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"result file {p} does not exist; check the path or run the solve first")
    if p.is_dir():
        raise DataError(f"{p} is a directory, not a result file; pass the .h5 file of a solve")
    try:
        with _open(p, "r") as f:
            return _read(p, f)
    except DataError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError) as exc:
        reason = _one_line(exc)
        if "file signature not found" in reason:
            raise DataError(
                f"{p} is not an HDF5 file ({reason}); pass a result file written by meanfield-pde"
            ) from exc
        raise DataError(f"cannot read {p}: {reason}; {_CORRUPT_FIX}") from exc


def _check_digests(p: Path, f: h5py.File, raw: dict, k: int, t: np.ndarray,
                   fields: dict[str, np.ndarray], grid: dict[str, np.ndarray]) -> None:
    """Compare the rows and the grid with their stored SHA-256 digests (if the file has them).

    rows_sha256 = "K h_K h_(K-1)" may trail n_snapshots = N after a crash: K = N + 1 (killed
    between the two attributes of an append: h_(K-1) covers the N rows) or K < N (killed while
    a resume was dropping rows: h_K covers the first K).
    """
    digest = raw.get("grid_sha256")
    if digest is not None and digest != _digest_arrays(grid):
        raise DataError(f"cannot read {p}: the grid arrays do not match their SHA-256 digest; "
                        f"{_CORRUPT_FIX}")
    if "rows_sha256" not in raw:
        return
    try:
        k_hash, last, prev = _parse_rows_attr(raw["rows_sha256"])
    except ValueError as exc:
        raise DataError(f"cannot read {p}: {exc}; {_CORRUPT_FIX}") from exc
    if k_hash <= k:
        n, want = k_hash, last
    elif k_hash == k + 1:
        n, want = k, prev
    else:
        raise DataError(f"cannot read {p}: rows_sha256 covers {k_hash} rows but n_snapshots is "
                        f"{k}; {_CORRUPT_FIX}")
    columns = [t, *(fields[name] for name in sorted(fields))]
    if _chain(columns, n)[-1] != want:
        raise DataError(f"cannot read {p}: the stored snapshots do not match their SHA-256 "
                        f"digest (damaged data or chunk index); {_CORRUPT_FIX}")


def _read(p: Path, f: h5py.File) -> Result:
    """Read and check the open file ``f`` (helper of :func:`load`)."""
    raw = {name: _decode_attr(f.attrs[name]) for name in f.attrs}
    if "format_version" not in raw:
        raise DataError(
            f"{p} was not written by meanfield-pde (no format_version attribute); "
            "pass a result file written by meanfield-pde"
        )
    fmt = raw["format_version"]
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt < 1:
        raise DataError(f"cannot read {p}: invalid format_version {fmt!r}; {_CORRUPT_FIX}")
    if fmt > FORMAT_VERSION:
        raise DataError(
            f"{p} has format_version {fmt}, newer than the {FORMAT_VERSION} that meanfield-pde "
            f"{package_version()} reads; upgrade meanfield-pde"
        )
    for name in ("problem", "config", "complete", "n_snapshots"):
        if name not in raw:
            raise DataError(f"cannot read {p}: missing root attribute {name!r}; {_CORRUPT_FIX}")

    digest = raw.get("config_sha256")
    if digest is not None and (not isinstance(raw["config"], str)
                               or _sha256(raw["config"]) != digest):
        raise DataError(f"cannot read {p}: the stored config does not match its checksum; "
                        f"{_CORRUPT_FIX}")
    try:
        config = json.loads(raw["config"])
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"cannot read {p}: the config attribute is not valid JSON ({_one_line(exc)}); "
            f"{_CORRUPT_FIX}"
        ) from exc
    if not isinstance(config, dict):
        raise DataError(
            f"cannot read {p}: the config attribute is not a JSON object; {_CORRUPT_FIX}"
        )

    json_names = json.loads(raw.pop(JSON_ATTRS, "[]"))
    attrs: dict[str, Any] = {}
    for name, value in raw.items():
        attrs[name] = json.loads(value) if name in json_names else value
    attrs["config"] = config

    k = raw["n_snapshots"]
    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        raise DataError(f"cannot read {p}: invalid n_snapshots {k!r}; {_CORRUPT_FIX}")
    problem = raw["problem"]
    if not isinstance(problem, str):
        raise DataError(f"cannot read {p}: invalid problem attribute {problem!r}; {_CORRUPT_FIX}")

    def member(parent: h5py.Group, name: str, kind: type) -> Any:
        # Index explicitly: Group.get()/items() turn an unreadable object into None.
        if name not in parent:
            raise DataError(f"cannot read {p}: {name!r} is missing; {_CORRUPT_FIX}")
        obj = parent[name]
        if not isinstance(obj, kind):
            raise DataError(f"cannot read {p}: {name!r} is not a {kind.__name__}; {_CORRUPT_FIX}")
        return obj

    def rows(name: str) -> np.ndarray:
        ds = member(f, name, h5py.Dataset)
        if ds.ndim < 1 or ds.shape[0] < k:
            raise DataError(
                f"cannot read {p}: dataset {name!r} has {ds.shape[0] if ds.ndim else 0} rows "
                f"but n_snapshots is {k}; {_CORRUPT_FIX}"
            )
        missing = _first_missing_row(ds, k, file_size)
        if missing is not None:
            raise DataError(
                f"cannot read {p}: row {missing} of dataset {name!r} is not stored "
                f"(its chunk index is damaged); {_CORRUPT_FIX}"
            )
        data = np.asarray(ds[:k])
        if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
            bad = int(np.argwhere(~np.isfinite(data.reshape(k, -1)))[0][0])
            raise DataError(
                f"cannot read {p}: row {bad} of dataset {name!r} is not finite (its chunk index "
                f"is damaged: the solvers never store NaN or inf); {_CORRUPT_FIX}"
            )
        return data

    file_size = p.stat().st_size
    t = rows(TIME_DATASET)
    if not (np.all(np.isfinite(t)) and np.all(np.diff(t) > 0)):
        raise DataError(
            f"cannot read {p}: the output times 't' are not finite and strictly increasing; "
            f"{_CORRUPT_FIX}"
        )
    fields: dict[str, np.ndarray] = {}
    for name in f:
        if name in RESERVED_NAMES:
            continue
        if isinstance(f[name], h5py.Dataset):
            fields[name] = rows(name)
    g = member(f, GRID_GROUP, h5py.Group)
    grid = {name: np.asarray(member(g, name, h5py.Dataset)[()]) for name in g}
    _check_digests(p, f, raw, k, t, fields, grid)

    return Result(
        path=p,
        problem=problem,
        config=config,
        attrs=attrs,
        complete=bool(raw["complete"]),
        t=t,
        grid=grid,
        fields=fields,
    )
