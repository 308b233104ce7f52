"""The collated table of a sweep, ``DIR/sweep.nc``: an xarray Dataset built from the files.

One dimension per varied key (named as :func:`~.points.dim_names` says; the coordinate's
``key`` attribute holds the dotted key) and, for the curves, ``t``: the union of the points'
output times (the common output times when every point has the same).  Variables:

* ``risk_final``, ``risk_error_final`` (a-posteriori estimate, where the solver gives one),
  ``free_energy_final`` (noisy runs and Gibbs states) — NaN for points without a result, the
  last two only when some point has them;
* ``risk`` (and ``free_energy``) over ``(*keys, t)``: the curve of every point (NaN where a point
  has no snapshot at that time);
* ``mass_drift`` (max relative |mass − mass₀|), ``wall_seconds`` (of the run, all sessions);
* ``status`` ("ok", "failed" or "pending": not run yet), ``message`` (the one-line error),
  ``file`` (the point's result file, relative to DIR), ``worker``, ``pid``, ``run_id``.

Attributes: ``problem``, ``command``, ``base_config`` (JSON of the resolved base config),
``varied_keys`` (JSON list of the dotted keys), ``package_version``, ``created_utc``.
The table is rebuilt from the point files at the end of every run (and on a rerun), and written
with ``engine="h5netcdf"`` to a temporary file that then replaces ``sweep.nc`` (``os.replace``):
a reader never sees half a table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import Config
from ..errors import DataError
from ..io import load, package_version
from .files import PointState, point_state, read_record
from .points import Point, dim_names

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["TABLE_NAME", "build_table", "point_paths", "point_row", "read_table", "write_table"]

TABLE_NAME = "sweep.nc"
_FLOATS = ("risk_final", "risk_error_final", "free_energy_final", "mass_drift", "wall_seconds")
_STRINGS = ("status", "message", "file", "worker", "run_id")


def point_paths(points: Sequence[Point], keys: list[str], out_dir: Path) -> list[Path]:
    """The result file of every point."""
    from .files import point_name

    return [out_dir / f"{point_name(p, keys)}.h5" for p in points]


def _coordinate(values: list[Any]) -> np.ndarray:
    """The varied values as a coordinate: numbers as numbers, anything else as text."""
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        arr = np.asarray(values)
        return arr if arr.dtype.kind in "if" else arr.astype(float)
    return np.array([v if isinstance(v, str) else json.dumps(v) for v in values], dtype=object)


def point_row(point: Point, path: Path, command: str) -> dict[str, Any]:
    """What the table holds of one point, from its files (read once the point has ended)."""
    row: dict[str, Any] = {"status": "pending", "message": "", "file": path.name, "worker": "",
                           "run_id": "", "pid": -1}
    if point.config is None:
        return {**row, "status": "failed", "message": point.error, "file": ""}
    state = point_state(path, point.config, command)
    rec = read_record(path) or {}
    if state is PointState.FAILED:
        row.update(status="failed", message=str(rec.get("message", "")))
    elif state is PointState.FINISHED:
        try:
            res = load(path)
        except DataError as exc:
            return {**row, "status": "failed", "message": str(exc)}
        row.update(status="ok", t=res.t, curves={k: res.fields[k] for k in
                                                 ("risk", "free_energy") if k in res.fields})
        row["risk_final"] = float(res.fields["risk"][-1])
        if "risk_error" in res.fields:
            row["risk_error_final"] = float(res.fields["risk_error"][-1])
        if "free_energy" in res.fields:
            row["free_energy_final"] = float(res.fields["free_energy"][-1])
        if "mass" in res.fields:
            m = res.fields["mass"]
            row["mass_drift"] = float(np.max(np.abs(m - m[0])) / m[0])
        wall = res.attrs.get("wall_seconds")
        row["wall_seconds"] = float(wall) if isinstance(wall, int | float) else np.nan
    if state in (PointState.FINISHED, PointState.FAILED):
        row.update(worker=str(rec.get("worker", "")), run_id=str(rec.get("run_id", "")),
                   pid=int(rec.get("pid", -1)))
    return row


def _time_axis(rows: list[dict]) -> np.ndarray:
    """The union of the points' output times (times equal to 12 digits merged)."""
    times = [r["t"] for r in rows if "t" in r]
    if not times:
        return np.zeros(0)
    t = np.unique(np.concatenate(times))
    keep = np.concatenate([[True], np.diff(t) > 1e-12 * np.maximum(1.0, np.abs(t[1:]))])
    return t[keep]


def _nearest(t: np.ndarray, times: np.ndarray) -> np.ndarray:
    """The index in the sorted ``t`` nearest to each of ``times``."""
    i = np.clip(np.searchsorted(t, times), 1, max(t.size - 1, 1)) if t.size > 1 else \
        np.zeros(times.size, dtype=int)
    if t.size > 1:
        i -= (np.abs(times - t[i - 1]) <= np.abs(times - t[i]))
    return i


def build_table(cfg: Config, vary: dict[str, list[Any]], points: Sequence[Point],
                out_dir: Path, command: str,
                known: Mapping[Path, dict[str, Any]] | None = None) -> xr.Dataset:
    """The table of the sweep (module docstring) from the files in ``out_dir``; ``known``:
    rows already read (:func:`point_row`) of points that ended in this call."""
    import xarray as xr

    keys = list(vary)
    dims = dim_names(keys)
    shape = tuple(len(vary[k]) for k in keys)
    known = known or {}
    rows = [known[path] if path in known else point_row(p, path, command)
            for p, path in zip(points, point_paths(points, keys, out_dir), strict=True)]
    t = _time_axis(rows)
    data: dict[str, np.ndarray] = {k: np.full(shape, np.nan) for k in _FLOATS}
    data.update({k: np.full(shape, "", dtype=object) for k in _STRINGS})
    data["pid"] = np.full(shape, -1, dtype=np.int64)
    curves = {k: np.full((*shape, t.size), np.nan) for k in ("risk", "free_energy")
              if any(k in r.get("curves", {}) for r in rows)}
    for p, r in zip(points, rows, strict=True):
        for k in (*_FLOATS, *_STRINGS, "pid"):
            if k in r:
                data[k][p.index] = r[k]
        for k, curve in r.get("curves", {}).items():
            if k in curves:
                curves[k][p.index][_nearest(t, r["t"])] = curve
    for k in ("risk_error_final", "free_energy_final"):  # only where the runs give them
        if np.all(np.isnan(data[k])) and not any(k in r for r in rows):
            del data[k]
    dim_list = [dims[k] for k in keys]
    ds = xr.Dataset(
        {k: (dim_list, v) for k, v in data.items()} | {k: ([*dim_list, "t"], v)
                                                       for k, v in curves.items()},
        coords={dims[k]: (dims[k], _coordinate(list(vary[k])), {"key": k}) for k in keys}
        | {"t": ("t", t)},
        attrs={"problem": cfg.problem, "command": command,
               "base_config": json.dumps(cfg.to_dict(), sort_keys=True),
               "varied_keys": json.dumps(keys), "package_version": package_version(),
               "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
    )
    return ds


def write_table(ds: xr.Dataset, out_dir: Path) -> Path:
    """Write ``ds`` to ``out_dir/sweep.nc`` atomically (h5netcdf; temporary file, then
    ``os.replace``)."""
    target = out_dir / TABLE_NAME
    tmp = out_dir / f".{TABLE_NAME}.{os.getpid()}.tmp"
    try:
        ds.to_netcdf(tmp, engine="h5netcdf")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def read_table(out_dir: str | Path) -> xr.Dataset:
    """``DIR/sweep.nc`` (or the file itself) as an xarray Dataset, loaded into memory.

    Raises:
        DataError: no table there, or it cannot be read.
    """
    import xarray as xr

    p = Path(out_dir)
    path = p / TABLE_NAME if p.is_dir() else p
    if not path.exists():
        raise DataError(f"{path} does not exist; run `meanfield-pde sweep ... -o {p}` first")
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            return ds.load()
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the sweep table {path} ({' '.join(str(exc).split())}); "
                        "rerun the sweep to rebuild it") from None
