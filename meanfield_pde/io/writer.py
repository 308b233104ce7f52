"""Writing result files: :class:`ResultWriter`.

Writing follows the Dedalus pattern: every operation opens the file, writes, flushes and closes
it. A crash or ``kill -9`` of the solver therefore leaves every finished snapshot readable, and
other processes can read the file between writes. Every write is first checked against the
disk guard (:mod:`.space`). Layout: :mod:`.layout`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from filelock import FileLock, Timeout

from ..errors import CorruptFile, DataError, MeanFieldError, OutputExists, SolverError
from ..provenance import run_environment
from .attrs import encode_attrs, package_version, sha256_text, str_attr, to_json
from .checkpoint import write_slot
from .hdf5 import (
    check_new_output,
    create_file,
    open_file,
    vanished_error,
    write_error,
    write_rows,
    writer_lock_path,
)
from .integrity import CHAIN_START, chain, chain_step, digest_arrays, rows_attr
from .layout import (
    CHECKPOINT_META_BYTES,
    CONFIG_BEFORE_EXTENSION,
    FORMAT_VERSION,
    GRID_GROUP,
    JSON_ATTRS,
    RESERVED_NAMES,
    TIME_DATASET,
    check_name,
)
from .space import check_space

__all__ = ["ResultWriter"]

#: seconds a new writer waits for the lock of its file before it is refused
WRITER_LOCK_WAIT = 0.5


def _check_grid(grid: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Validate the grid arrays (numeric); floats become float64, ints int64."""
    if not isinstance(grid, Mapping):
        raise TypeError(f"grid must be a dict of arrays, got {type(grid).__name__}")
    out: dict[str, np.ndarray] = {}
    for name, value in grid.items():
        check_name(name, "grid array")
        arr = np.asarray(value)
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float64)
        elif arr.dtype.kind in "iu":
            arr = arr.astype(np.int64)
        elif arr.dtype.kind != "b":
            raise TypeError(f"grid array {name!r} has non-numeric dtype {arr.dtype}")
        out[name] = arr
    return out


def _check_fields(fields: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Validate field names and per-snapshot shapes (positive ints, () for scalars)."""
    if not isinstance(fields, Mapping) or not fields:
        raise ValueError("fields must be a non-empty dict of name -> per-snapshot shape")
    out: dict[str, tuple[int, ...]] = {}
    for name, shape in fields.items():
        check_name(name, "field")
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


_JSON_HEAD = ("versions",)  # layout attributes stored as JSON text


def _provenance() -> dict[str, Any]:
    """The encoded layout attributes ``versions``, ``git_revision``, ``git_dirty``."""
    env = run_environment()
    versions = {"meanfield-pde": package_version(), **env["versions"]}
    out: dict[str, Any] = {"versions": str_attr(to_json(versions, "versions"))}
    if "git_revision" in env:
        out["git_revision"] = str_attr(env["git_revision"])
    if "git_dirty" in env:
        out["git_dirty"] = np.bool_(env["git_dirty"])
    return out


def _write_layout(f: h5py.File, head: Mapping[str, Any], extra: Mapping[str, tuple[Any, bool]],
                  grid: Mapping[str, np.ndarray], fields: Mapping[str, tuple[int, ...]]) -> None:
    """Fill the new file ``f``: the layout attributes ``head`` (already encoded), the extra
    attributes, the grid and the empty resizable snapshot datasets; n_snapshots last."""
    for name, value in head.items():
        f.attrs[name] = value
    for name, (value, _) in extra.items():
        f.attrs[name] = value
    as_json = [n for n, (_, j) in extra.items() if j] + [n for n in _JSON_HEAD if n in head]
    f.attrs[JSON_ATTRS] = str_attr(json.dumps(sorted(as_json)))
    f.attrs["grid_sha256"] = str_attr(digest_arrays(grid))
    f.attrs["rows_sha256"] = rows_attr(0, [CHAIN_START])
    g = f.create_group(GRID_GROUP)
    for name, arr in grid.items():
        g.create_dataset(name, data=arr, fletcher32=arr.ndim > 0 and arr.size > 0)
    for name, shape in {TIME_DATASET: (), **fields}.items():
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


def writer_lock(path: Path) -> FileLock:
    """The lock that makes one writer per result file: ``FILE.lock`` beside it, held (by the
    ``filelock`` library: an OS lock the kernel drops when the process dies, so a killed run
    never leaves it stale) from the creation or reopening of the file to :meth:`ResultWriter.
    close`.  A second writer is refused within :data:`WRITER_LOCK_WAIT` seconds, before it
    touches the file (the wait only lets a reader's instant probe of the lock pass:
    :func:`~.hdf5.read_file`)."""
    lock = FileLock(str(writer_lock_path(path)), timeout=WRITER_LOCK_WAIT, thread_local=False,
                    is_singleton=False)
    try:
        lock.acquire()
    except Timeout as exc:
        raise DataError(f"{path} is being written by another run (it holds {path}.lock); wait "
                        "for that run to end, or write to another file") from exc
    except OSError as exc:
        raise write_error(path, exc) from exc
    return lock


class ResultWriter:
    """Create a result file and append snapshots to it, one open/write/close per call.

    The constructor writes all metadata, the ``grid`` arrays and empty, resizable
    datasets ``t`` and one per field, then closes the file. :meth:`append` adds one
    snapshot; :meth:`finish` marks the run complete.  From creation (or :meth:`reopen`) to
    :meth:`close` (which :meth:`finish` calls) the writer holds :func:`writer_lock`: one
    writer per file; readers never take it.

    Args:
        path: Output file; missing parent directories are created.
        problem: Problem name, e.g. ``"gaussians"``.
        config: Resolved config (JSON-serialisable, finite numbers only).
        grid: Fixed numeric arrays stored under ``grid/``.
        fields: Snapshot field name -> per-snapshot shape (``()`` for scalars).
        attrs: Extra root attributes (bool/int/float/str; dicts and lists become JSON text).
            The layout's own attributes include the provenance ``versions``, ``git_revision``
            and ``git_dirty`` (:func:`~meanfield_pde.provenance.run_environment`).
        overwrite: Replace an existing file instead of raising OutputExists.
        flush_seconds: Snapshots are written when the oldest one not yet on disk is this
            old, and before every checkpoint, attribute update and :meth:`close` (0: each
            at once).  A batch costs one open and one HDF5 write per field instead of one per
            snapshot; what a crash can lose is only what a resume recomputes anyway (the rows
            after the last checkpoint).

    Raises:
        OutputExists: ``path`` exists and ``overwrite`` is false.
        DataError: ``path`` is a directory or cannot be written; DiskFull if the disk guard
            refuses the write.
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
        flush_seconds: float = 0.0,
    ) -> None:
        self._path = Path(path)
        self._pending: list[tuple[float, dict[str, np.ndarray]]] = []
        self.flush_seconds, self._pending_since = float(flush_seconds), time.monotonic()
        # --- validate everything before touching the file system --------------------
        if not isinstance(problem, str) or not problem:
            raise ValueError(f"problem must be a non-empty string, got {problem!r}")
        if not isinstance(config, Mapping):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        config_json = to_json(config, "config")
        grid_arrays = _check_grid(grid)
        self._fields = _check_fields(fields)
        extra = encode_attrs(attrs)
        self._n = 0
        self._replay = np.zeros(0)  # times of rows on disk the run has yet to reach (reopen)
        self._last_t = -math.inf
        self._chain = [CHAIN_START]  # h_(K-1), h_K of the rows written (see rows_sha256)
        head = {
            "format_version": np.int64(FORMAT_VERSION),
            "package_version": str_attr(package_version()),
            "problem": str_attr(problem),
            "config": str_attr(config_json),
            "config_sha256": str_attr(sha256_text(config_json)),
            "complete": np.bool_(False),
            "created_utc": str_attr(datetime.now(UTC).isoformat(timespec="seconds")),
            **_provenance(),
        }
        # --- create the file ---------------------------------------------------------
        self._lock = None
        p = check_new_output(self._path, overwrite)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(p, exc) from exc
        self._lock = writer_lock(p)
        try:
            self._create(p, overwrite, head, extra, grid_arrays, config_json)
        except BaseException:
            self.close()
            raise

    def _create(self, p: Path, overwrite: bool, head: dict, extra: dict, grid_arrays: dict,
                config_json: str) -> None:
        """Create ``p`` with its layout (the lock is held)."""
        p = check_new_output(p, overwrite)  # again, under the lock
        check_space(p, sum(a.nbytes for a in grid_arrays.values()) + len(config_json),
                    "the new file", resumable=False)
        try:
            f = create_file(p, overwrite)
        except FileExistsError as exc:  # created by someone else since the check above
            raise OutputExists(p) from exc
        except OSError as exc:
            raise write_error(p, exc) from exc
        try:
            with f:
                _write_layout(f, head, extra, grid_arrays, self._fields)
        except (OSError, RuntimeError) as exc:
            try:
                p.unlink()
            except OSError:
                pass
            raise write_error(p, exc) from exc

    @property
    def path(self) -> Path:
        """The result file."""
        return self._path

    def close(self) -> None:
        """Write the pending snapshots (best effort: this also runs on error paths, where the
        first error is the one to report) and release the file to other writers
        (idempotent)."""
        try:
            if getattr(self, "_pending", None):
                self.flush()
        except (MeanFieldError, OSError):
            pass
        finally:
            lock, self._lock = getattr(self, "_lock", None), None
            if lock is not None:
                lock.release(force=True)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing left to report to
            pass

    @property
    def n_snapshots(self) -> int:
        """Number of snapshots the run has produced so far (on disk once :meth:`flush` has
        run; after :meth:`reopen`, rows already on disk ahead of the run are not counted until
        the run reproduces them)."""
        return self._n - len(self._replay) + len(self._pending)

    def _check_row(self, t: float, values: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Validate one snapshot; return its fields as float64 copies (-0.0 cleared)."""
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
            if not np.all(np.isfinite(arrays[name])):  # never on disk: the file stays readable
                raise SolverError(
                    f"the snapshot at t = {t:.6g} has a non-finite {name}; nothing of it was "
                    f"written ({self._n} snapshots before it are kept); check the activation "
                    "and init parameters (overflowing values), or refine the discretisation")
        return arrays

    def _check_count(self, f: h5py.File) -> None:
        """Refuse to write if another process changed the number of snapshots."""
        stored = int(f.attrs["n_snapshots"])
        if stored != self._n:
            raise DataError(
                f"output {self._path} has n_snapshots={stored} but this writer wrote {self._n}; "
                "another process changed it, write each run to its own file"
            )

    def append(self, t: float, values: dict[str, float | np.ndarray]) -> None:
        """Append the snapshot at time ``t``: open, resize, write, set n_snapshots, close.

        Args:
            t: Output time; finite and larger than the previous one.
            values: Exactly the declared fields, each with its declared shape.

        After :meth:`reopen`, a snapshot at the time of the next row already on disk is that
        row again (recomputed from the checkpoint) and is not written: rows durably written
        before an interruption are never removed by the run that resumes it.  A snapshot at
        another time (a resume with another output plan) drops the rows from there on.

        Raises:
            ValueError: Wrong keys, shapes or times (programming errors).
            SolverError: A field holds NaN or ±inf (nothing is written).
            DataError: The file vanished, was changed by someone else, or cannot be written.
        """
        t = float(t)
        arrays = self._check_row(t, values)
        if self._replay.size:
            if abs(t - self._replay[0]) <= 1e-12 * max(1.0, abs(self._replay[0])):
                self._replay, self._last_t = self._replay[1:], t  # on disk already: kept
                return
            self._truncate(self.n_snapshots)  # another output plan (resume --t-end)
        nbytes = 8 + sum(a.nbytes + 4 for a in arrays.values())
        # the reserve counts the snapshots not yet on disk too: a full disk stops the run at
        # the same snapshot whatever the batching
        check_space(self._path, nbytes * (len(self._pending) + 1), "the next snapshot")
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.append((t, arrays))
        self._last_t = t
        if time.monotonic() - self._pending_since >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write the pending snapshots: one open, one resize and write per field, then the
        digest and n_snapshots (last: readers trust it).

        Raises:
            DataError: The file vanished, was changed by someone else, or cannot be written.
        """
        if not self._pending:
            return
        p, k, m = self._path, self._n, len(self._pending)
        check_space(p, sum(8 + sum(a.nbytes + 4 for a in arrays.values())
                           for _, arrays in self._pending), "the pending snapshots")
        rows = [{TIME_DATASET: np.float64(t), **arrays} for t, arrays in self._pending]
        hashes = list(self._chain)
        for row in rows:
            hashes = [hashes[-1], chain_step(hashes[-1], self._row_order(row))]
        try:
            with open_file(p, "r+") as f:
                self._check_count(f)
                # Resizing to exactly k+m also drops debris of an earlier interrupted write.
                for name in rows[0]:
                    write_rows(f, name, k, np.stack([np.asarray(r[name]) for r in rows]))
                # rows_sha256 = "k+m h_(k+m) h_k": a reader of n_snapshots = k (the writer
                # killed between the two attributes) checks h_k, which it also holds.
                f.attrs["rows_sha256"] = rows_attr(k + m, [self._chain[-1], hashes[-1]])
                f.flush()
                f.attrs["n_snapshots"] = np.int64(k + m)  # last: readers trust it
                f.flush()
        except FileNotFoundError as exc:
            raise vanished_error(p) from exc
        except (OSError, RuntimeError, KeyError) as exc:
            raise write_error(p, exc) from exc
        self._n, self._chain, self._pending = k + m, hashes, []

    def _row_order(self, row: Mapping[str, Any]) -> list[np.ndarray]:
        """The arrays of one row in hash-chain order: t, then the fields by sorted name."""
        return [np.asarray(row[TIME_DATASET]), *(np.asarray(row[n]) for n in sorted(self._fields))]

    @classmethod
    def reopen(cls, path: str | os.PathLike, n_snapshots: int,
               flush_seconds: float = 0.0) -> ResultWriter:
        """A writer that continues the file ``path`` from its checkpoint after ``n_snapshots``
        snapshots and marks it incomplete until :meth:`finish`; ``flush_seconds`` as for a new
        writer.  The rows on disk after the checkpoint stay: the run reproduces them (see
        :meth:`append`), so an interruption of the resume loses none of them."""
        self = cls.__new__(cls)
        p = self._path = Path(path)
        self._pending, self._lock, self._replay = [], None, np.zeros(0)
        self.flush_seconds, self._pending_since = float(flush_seconds), time.monotonic()
        self._lock = writer_lock(p)
        try:
            self._reopen(n_snapshots)
        except BaseException:
            self.close()
            raise
        return self

    def _reopen(self, n_snapshots: int) -> None:
        """:meth:`reopen` under the lock: the rows up to the file's count stay; those after
        the checkpoint's ``n_snapshots`` are to be reproduced (:meth:`append`)."""
        p = self._path
        check_space(p, 0, "reopening the file")
        try:
            with open_file(p, "r+") as f:
                self._fields = {name: tuple(f[name].shape[1:]) for name in f
                                if name not in RESERVED_NAMES and isinstance(f[name], h5py.Dataset)}
                t = f[TIME_DATASET]
                stored = int(f.attrs["n_snapshots"])
                if not 0 <= n_snapshots <= stored <= t.shape[0]:
                    raise CorruptFile(p, f"{p} counts {stored} snapshots in {t.shape[0]} rows, "
                                      f"not at least the checkpoint's {n_snapshots}")
                times = np.asarray(t[:stored], dtype=np.float64)
                self._last_t = float(times[n_snapshots - 1]) if n_snapshots else -math.inf
                self._replay = times[n_snapshots:]
                self._chain = self._stored_chain(f, stored)
                f.attrs["rows_sha256"] = rows_attr(stored, self._chain)
                f.flush()
                f.attrs["complete"] = np.bool_(False)
        except DataError:
            raise
        except (OSError, RuntimeError, KeyError, ValueError) as exc:
            raise write_error(p, exc) from exc
        self._n = stored

    def _stored_chain(self, f: h5py.File, n: int) -> list[str]:
        """The last two hashes of the chain over the first ``n`` rows in ``f``."""
        columns = [np.asarray(f[name][:n]) for name in (TIME_DATASET, *sorted(self._fields))]
        return chain(columns, n)[-2:]

    def _truncate(self, n: int) -> None:
        """Drop the rows on disk from ``n`` on (none pending): the count, then the digest."""
        p = self._path
        try:
            with open_file(p, "r+") as f:
                self._check_count(f)
                self._chain = self._stored_chain(f, n)
                # first: a reader of the old count checks the first n rows against h_n
                f.attrs["rows_sha256"] = rows_attr(n, self._chain)
                f.flush()
                f.attrs["n_snapshots"] = np.int64(n)
                f.flush()
        except FileNotFoundError as exc:
            raise vanished_error(p) from exc
        except (OSError, RuntimeError, KeyError, ValueError) as exc:
            raise write_error(p, exc) from exc
        self._n, self._replay = n, np.zeros(0)

    def update_config(self, config: dict, previous: dict) -> None:
        """Replace the stored resolved config by ``config`` (a resume past ``time.t_end``
        extends it), keeping ``previous``, the config of the checkpoint in force, as
        :data:`~.layout.CONFIG_BEFORE_EXTENSION`: until the extension writes its first
        checkpoint, a resume finds that checkpoint's config there."""
        text, before = to_json(config, "config"), to_json(previous, "config")
        self.flush()
        check_space(self._path, 2 * (len(text) + len(before)), "the config")
        try:
            with open_file(self._path, "r+") as f:
                f.attrs[CONFIG_BEFORE_EXTENSION] = str_attr(before)  # first: see resume
                f.attrs["config"] = str_attr(text)
                f.attrs["config_sha256"] = str_attr(sha256_text(text))
        except (OSError, RuntimeError) as exc:
            raise write_error(self._path, exc) from exc

    def write_checkpoint(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> int:
        """Write a checkpoint (arrays + JSON ``meta``) atomically; returns the slot used.

        The arrays and the metadata go into the slot the pointer ``checkpoint/current`` does not
        name; the file is flushed, then the pointer is flipped and flushed again, so an
        interruption at any moment leaves the previous checkpoint in force.  ``meta`` gets
        ``n_snapshots`` (the snapshots finished so far) and a sequence number added (see
        :func:`~meanfield_pde.io.checkpoint.write_slot`).
        """
        self.flush()  # the checkpoint counts the snapshots on disk
        p = self._path
        check_space(p, CHECKPOINT_META_BYTES + sum(np.asarray(a).nbytes for a in arrays.values()),
                    "a checkpoint")
        try:
            with open_file(p, "r+") as f:
                self._check_count(f)
                return write_slot(f, arrays, meta, self.n_snapshots)
        except DataError:
            raise
        except FileNotFoundError as exc:
            raise vanished_error(p) from exc
        except (OSError, RuntimeError, KeyError, ValueError) as exc:  # h5py: ValueError for
            raise write_error(p, exc) from exc  # damaged metadata (e.g. a slot's symbol table)

    def set_attrs(self, **attrs: Any) -> None:
        """Set extra root attributes (open, write, close); reserved names are refused."""
        self._write_attrs(encode_attrs(attrs), complete=None)

    def finish(self, **attrs: Any) -> None:
        """Set extra root attributes, mark the run complete (``complete = True``) and
        :meth:`close`."""
        try:
            if self._replay.size:  # the run ended before rows on disk: they are not its own
                self._truncate(self.n_snapshots)
            self._write_attrs(encode_attrs(attrs), complete=True)
        finally:
            self.close()

    def _write_attrs(self, encoded: dict[str, tuple[Any, bool]], complete: bool | None) -> None:
        """Write encoded attributes and, if given, the ``complete`` flag, in one open (after
        the pending snapshots)."""
        self.flush()
        p = self._path
        check_space(p, sum(np.asarray(v).nbytes for v, _ in encoded.values()), "the attributes")
        try:
            with open_file(p, "r+") as f:
                as_json = set(json.loads(f.attrs.get(JSON_ATTRS, "[]")))
                for name, (value, is_json) in encoded.items():
                    f.attrs[name] = value
                    if is_json:
                        as_json.add(name)
                    else:
                        as_json.discard(name)
                f.attrs[JSON_ATTRS] = str_attr(json.dumps(sorted(as_json)))
                if complete is not None:
                    f.attrs["complete"] = np.bool_(complete)
        except FileNotFoundError as exc:
            raise vanished_error(p) from exc
        except (OSError, RuntimeError, ValueError) as exc:
            raise write_error(p, exc) from exc
