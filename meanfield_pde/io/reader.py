"""Reading result files: :func:`load` reads everything into memory, checks it (format version,
checksums, digests, chunk index) and closes the file; :class:`Result` holds it.  ``load(path,
lazy=True)`` reads the header, times and grid only; each later access to a field or a snapshot
opens the file, reads what was asked for and closes it (never holding the file open in between:
a reader never blocks a solve that appends to the file).  Every problem becomes a one-line
:class:`~meanfield_pde.errors.DataError`; truncated or corrupt files a
:class:`~meanfield_pde.errors.CorruptFile`.

Analysis helpers of :class:`Result` live in :mod:`.derived` (``at``, ``marginal``,
``moments``) and :mod:`.xarray_export` (``to_xarray``)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from ..errors import CorruptFile, DataError
from . import derived
from .attrs import decode_attr, decode_root_attrs, package_version, sha256_text
from .hdf5 import read_file
from .integrity import check_digests, first_missing_row
from .layout import (
    FORMAT_VERSION,
    GRID_GROUP,
    RESERVED_ATTRS,
    RESERVED_NAMES,
    TIME_DATASET,
    one_line,
)

if TYPE_CHECKING:  # xarray is imported when used
    import xarray

__all__ = ["LazyFields", "Result", "load", "read_attrs"]


def _format_times(times: np.ndarray, limit: int = 20) -> str:
    """List output times compactly (shortest round-trip repr), eliding the middle if long."""
    values = [repr(float(x)) for x in times]
    if len(values) > limit:
        values = [*values[:10], "...", *values[-5:]]
    return "[" + ", ".join(values) + "]"


class LazyFields(Mapping[str, np.ndarray]):
    """The snapshot fields of a result file read on demand (``load(path, lazy=True)``).

    ``fields[name]`` reads the K rows of one field (then keeps them); :meth:`rows` reads one
    snapshot of several fields.  Each read opens the file, checks it is the file that was
    loaded (same ``created_utc`` and ``config_sha256``) and still holds the K rows, reads and
    closes it.  Rows are checked by HDF5's Fletcher-32 checksums and for finiteness; the SHA-256
    chain over all rows (``rows_sha256``) is not verified (that would read every row).
    """

    def __init__(self, path: Path, k: int, shapes: dict[str, tuple[int, ...]],
                 stamp: tuple[Any, Any]):
        self.path, self.k, self.shapes, self._stamp = path, k, shapes, stamp
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.shapes:
            raise KeyError(name)
        if name not in self._cache:
            self._cache[name] = self._read([name], None)[name]
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.shapes)

    def __len__(self) -> int:
        return len(self.shapes)

    def rows(self, names: list[str], row: int) -> dict[str, np.ndarray]:
        """Row ``row`` (0 <= row < K) of each field in ``names`` (one open of the file)."""
        out = {n: np.array(self._cache[n][row]) for n in names if n in self._cache}
        missing = [n for n in names if n not in out]
        if missing:
            out.update({n: v[0] for n, v in self._read(missing, (row, row + 1)).items()})
        return {n: out[n] for n in names}

    def block(self, name: str, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` (0 <= start <= stop <= K) of field ``name`` (one open)."""
        if name in self._cache:
            return self._cache[name][start:stop]
        return self._read([name], (start, stop))[name]

    def _read_open(self, f: h5py.File, names: list[str],
                   rows: tuple[int, int] | None) -> dict[str, np.ndarray]:
        p = self.path
        stamp = (decode_attr(f.attrs.get("created_utc")),
                 decode_attr(f.attrs.get("config_sha256")))
        if stamp != self._stamp:
            raise DataError(f"{p} was replaced since it was loaded (another run wrote "
                            "it); load it again")
        now = decode_attr(f.attrs.get("n_snapshots"))
        if not isinstance(now, int) or now < self.k:
            raise DataError(f"{p} now holds {now} snapshots, fewer than the {self.k} "
                            "it held when loaded (a resume dropped rows); load it again")
        return {n: _rows(p, f, n, self.k, rows) for n in names}

    def _read(self, names: list[str], rows: tuple[int, int] | None) -> dict[str, np.ndarray]:
        """All K rows (``rows`` None) or rows ``start:stop`` of the fields ``names``."""
        p = self.path
        try:
            return read_file(p, lambda f: self._read_open(f, names, rows))
        except DataError:
            raise
        except (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError) as exc:
            raise _read_error(p, exc) from exc


@dataclass
class Result:
    """Everything in one result file (see :func:`load`): in memory, or read on demand when
    loaded with ``lazy=True`` (then :attr:`fields` is a :class:`LazyFields`).

    Attributes:
        path: The file read.
        problem: Problem name.
        config: Resolved config.
        attrs: All root attributes (JSON-decoded where they were dicts or lists), without
            the ``json_attrs`` bookkeeping attribute.
        complete: Whether the run ended normally.
        t: Output times, shape (K,).
        grid: Fixed grid arrays.
        fields: Snapshot fields, each truncated to K = ``n_snapshots`` rows (a mapping name ->
            (K, *shape) array).
    """

    path: Path
    problem: str
    config: dict
    attrs: dict
    complete: bool
    t: np.ndarray
    grid: dict[str, np.ndarray] = field(default_factory=dict)
    fields: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def lazy(self) -> bool:
        """Whether the fields are read from the file on demand (``load(path, lazy=True)``)."""
        return isinstance(self.fields, LazyFields)

    @property
    def n_snapshots(self) -> int:
        """Number of snapshots K."""
        return int(self.t.shape[0])

    @property
    def format_version(self) -> int | None:
        """Layout version of the file (``format_version`` attribute)."""
        return self.attrs.get("format_version")

    @property
    def package_version(self) -> str | None:
        """meanfield-pde version that wrote the file (``package_version`` attribute)."""
        return self.attrs.get("package_version")

    @property
    def run_attrs(self) -> dict[str, Any]:
        """The attributes that describe the run (seed, wall_seconds, n_steps, kind, ...): every
        root attribute except those of the layout itself, decoded."""
        return {k: v for k, v in self.attrs.items() if k not in RESERVED_ATTRS}

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

    def snapshot(self, k: int) -> dict[str, np.ndarray]:
        """Every field at output ``k`` (0 <= k < K; negative counts from the end), as arrays of
        the per-snapshot shape (0-d for scalar fields).  A lazy result reads only that row.

        Raises:
            DataError: ``k`` is out of range.
        """
        n = self.n_snapshots
        if not -n <= int(k) < n:
            raise DataError(f"snapshot {k} is out of range: {self.path} has {n} snapshots; "
                            f"pass 0 <= k < {n}")
        k = int(k) % n
        if isinstance(self.fields, LazyFields):
            return self.fields.rows(list(self.fields), k)
        return {name: np.array(arr[k]) for name, arr in self.fields.items()}  # copies

    def at(self, t: float) -> dict[str, np.ndarray]:
        """Every field at time ``t``, linear in t between the two bracketing outputs (exactly
        the stored snapshot at an output time); see :func:`.derived.interpolate`.

        Raises:
            DataError: ``t`` is outside [t_0, t_(K-1)] (or not a number).
        """
        return derived.interpolate(self, t)

    def marginal(self, name: str) -> xarray.DataArray:
        """The marginal density of coordinate ``name`` (``"r"``; ``"a"``, ``"s"`` or ``"r"``
        for single-neuron) at every output: an ``xarray.DataArray`` of dims (t, name) on the
        cell centres, integrating to the mass (see :func:`.derived.marginal`)."""
        return derived.marginal(self, name)

    def moments(self) -> xarray.Dataset:
        """Mass, means and variances of the coordinates at every output, from the stored
        fields: an ``xarray.Dataset`` of dim t (see :func:`.derived.moments`)."""
        return derived.moments(self)

    def to_xarray(self) -> xarray.Dataset:
        """The whole result as an ``xarray.Dataset`` with CF attributes (see
        :func:`.xarray_export.to_xarray`)."""
        from .xarray_export import to_xarray

        return to_xarray(self)


def load(path: str | os.PathLike, lazy: bool = False) -> Result:
    """Read a result file written by :class:`~meanfield_pde.io.writer.ResultWriter` into memory
    and close it; with ``lazy=True`` read only the header, times and grid, and read the fields
    when they are accessed (:class:`LazyFields`: for files too large for memory, and for
    following a running solve without blocking it).

    Raises:
        DataError: (one line) the file is missing, not HDF5, not written by meanfield-pde or of
            a newer format; :class:`~meanfield_pde.errors.CorruptFile` if truncated or corrupt.
    """
    p = _existing(path)
    try:
        return read_file(p, lambda f: _read(p, f, lazy))
    except DataError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError) as exc:
        raise _read_error(p, exc) from exc


def read_attrs(path: str | os.PathLike) -> dict[str, Any]:
    """The root attributes of the result file ``path``, decoded as in :attr:`Result.attrs`
    (``config`` as JSON text), without reading or checking its datasets."""
    p = _existing(path)
    try:
        return read_file(p, lambda f: decode_root_attrs(
            {name: decode_attr(f.attrs[name]) for name in f.attrs}))
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError) as exc:
        raise _read_error(p, exc) from exc


def _existing(path: str | os.PathLike) -> Path:
    """``path`` as a Path, or a DataError if it is missing, a dangling symlink, a directory or
    behind a directory this user may not search."""
    p = Path(path)
    try:
        exists, link = p.exists(), p.is_symlink()
    except PermissionError as exc:  # a parent directory without search (x) permission
        raise DataError(f"cannot reach result file {p}: permission denied ({one_line(exc)}); "
                        "give your user access to its directory or pass a copy") from exc
    if not exists and link:
        raise DataError(f"result file {p} is a dangling symlink to {os.readlink(p)} (nothing "
                        "is there); point the link at a result file or pass the file itself")
    if not exists:
        raise DataError(f"result file {p} does not exist; check the path or run the solve first")
    if p.is_dir():
        raise DataError(f"{p} is a directory, not a result file; pass the .h5 file of a solve")
    return p


def _read_error(p: Path, exc: BaseException) -> DataError:
    """The one-line error of a failed read: no permission, not HDF5 at all, or
    truncated/corrupt."""
    import errno

    reason = one_line(exc)
    if isinstance(exc, PermissionError) or getattr(exc, "errno", None) in (errno.EACCES,
                                                                             errno.EPERM):
        return DataError(f"cannot read {p}: permission denied; give your user read "
                         f"permission (chmod u+r {p}, as its owner) or read a copy")
    if "file signature not found" in reason:
        return DataError(
            f"{p} is not an HDF5 file ({reason}); pass a result file written by meanfield-pde"
        )
    return CorruptFile(p, f"cannot read {p}: {reason}")


def _check_header(p: Path, raw: dict[str, Any]) -> None:
    """Check the layout attributes: ours, not newer, nothing missing, the config's checksum."""
    if "format_version" not in raw:
        raise DataError(
            f"{p} was not written by meanfield-pde (no format_version attribute); "
            "pass a result file written by meanfield-pde"
        )
    fmt = raw["format_version"]
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt < 1:
        raise CorruptFile(p, f"cannot read {p}: invalid format_version {fmt!r}")
    if fmt > FORMAT_VERSION:
        raise DataError(
            f"{p} has format_version {fmt}, newer than the {FORMAT_VERSION} that meanfield-pde "
            f"{package_version()} reads; upgrade meanfield-pde"
        )
    for name in ("problem", "config", "complete", "n_snapshots"):
        if name not in raw:
            raise CorruptFile(p, f"cannot read {p}: missing root attribute {name!r}")
    digest = raw.get("config_sha256")
    if digest is not None and (not isinstance(raw["config"], str)
                               or sha256_text(raw["config"]) != digest):
        raise CorruptFile(p, f"cannot read {p}: the stored config does not match its checksum")


def _check_counts(p: Path, raw: dict[str, Any]) -> None:
    """Check the n_snapshots and problem attributes."""
    k = raw["n_snapshots"]
    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        raise CorruptFile(p, f"cannot read {p}: invalid n_snapshots {k!r}")
    if not isinstance(raw["problem"], str):
        raise CorruptFile(p, f"cannot read {p}: invalid problem attribute {raw['problem']!r}")


def _parse_config(p: Path, text: Any) -> dict:
    """The resolved config from its JSON text."""
    try:
        config = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise CorruptFile(
            p, f"cannot read {p}: the config attribute is not valid JSON ({one_line(exc)})"
        ) from exc
    if not isinstance(config, dict):
        raise CorruptFile(p, f"cannot read {p}: the config attribute is not a JSON object")
    return config


def _member(p: Path, parent: h5py.Group, name: str, kind: type) -> Any:
    """``parent[name]``, which must exist and be a ``kind`` (CorruptFile otherwise)."""
    # Index explicitly: Group.get()/items() turn an unreadable object into None.
    if name not in parent:
        raise CorruptFile(p, f"cannot read {p}: {name!r} is missing")
    obj = parent[name]
    if not isinstance(obj, kind):
        raise CorruptFile(p, f"cannot read {p}: {name!r} is not a {kind.__name__}")
    return obj


def _rows(p: Path, f: h5py.File, name: str, k: int,
          rows: tuple[int, int] | None = None) -> np.ndarray:
    """The first ``k`` rows of dataset ``name`` (or rows ``start:stop`` of them): all stored,
    all finite."""
    ds = _member(p, f, name, h5py.Dataset)
    if ds.ndim < 1 or ds.shape[0] < k:
        raise CorruptFile(
            p, f"cannot read {p}: dataset {name!r} has {ds.shape[0] if ds.ndim else 0} rows "
            f"but n_snapshots is {k}"
        )
    if rows is None:
        missing = first_missing_row(ds, k, p.stat().st_size)
        if missing is not None:
            raise CorruptFile(
                p, f"cannot read {p}: row {missing} of dataset {name!r} is not stored "
                "(its chunk index is damaged)"
            )
    start, stop = rows if rows is not None else (0, k)
    data = np.asarray(ds[start:stop])
    if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
        bad = start + int(np.argwhere(~np.isfinite(data.reshape(data.shape[0], -1)))[0][0])
        raise CorruptFile(
            p, f"cannot read {p}: row {bad} of dataset {name!r} is not finite (its chunk index "
            "is damaged: the solvers never store NaN or inf)"
        )
    return data


def _read(p: Path, f: h5py.File, lazy: bool = False) -> Result:
    """Read and check the open file ``f`` (helper of :func:`load`)."""
    raw = {name: decode_attr(f.attrs[name]) for name in f.attrs}
    _check_header(p, raw)
    config = _parse_config(p, raw["config"])
    attrs = decode_root_attrs(raw)
    attrs["config"] = config
    _check_counts(p, raw)
    k = raw["n_snapshots"]
    t = _rows(p, f, TIME_DATASET, k)
    if not (np.all(np.isfinite(t)) and np.all(np.diff(t) > 0)):
        raise CorruptFile(p, f"cannot read {p}: the output times 't' are not finite and strictly "
                          "increasing")
    names = [name for name in f if name not in RESERVED_NAMES
             and isinstance(f[name], h5py.Dataset)]
    fields: Mapping[str, np.ndarray]
    if lazy:
        fields = LazyFields(p, k, {name: tuple(f[name].shape[1:]) for name in names},
                            (raw.get("created_utc"), raw.get("config_sha256")))
    else:
        fields = {name: _rows(p, f, name, k) for name in names}
    g = _member(p, f, GRID_GROUP, h5py.Group)
    grid = {name: np.asarray(_member(p, g, name, h5py.Dataset)[()]) for name in g}
    check_digests(p, raw, t, None if lazy else dict(fields), grid)
    return Result(path=p, problem=raw["problem"], config=config, attrs=attrs,
                  complete=bool(raw["complete"]), t=t, grid=grid, fields=fields)
