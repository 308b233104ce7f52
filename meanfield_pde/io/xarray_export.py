"""Result files as xarray Datasets and netCDF files (``Result.to_xarray()``, ``meanfield-pde
export FILE.h5 --netcdf OUT.nc``).

The Dataset holds every field and grid array of the file under its own name (grid arrays without
the ``grid/`` prefix), on named dimensions: ``t``; the coordinates ``r`` (radial problem) or
``a``, ``s``, ``r`` (single-neuron) with the cell centres as index coordinate, the cell edges
as ``<x>_edges`` on dimension ``<x>_edge`` and, CF style, a ``<x>_bounds`` (x, nv) variable
named by the coordinate's ``bounds`` attribute; Lagrangian runs add ``cell``, ``cell_edge``,
``node``, ``particle`` and ``coord`` (the names a, s, r), SGD runs ``neuron``.  Dimension names,
``units`` and ``long_name`` come from the one table :data:`~.layout.VARIABLES`; every variable
also names its HDF5 dataset in ``hdf5_dataset``.  Dataset attributes: the resolved config as
TOML text (``config``), the problem, the provenance (``versions`` as JSON and one
``version_<library>`` each, ``git_revision``, ``git_dirty``), the seed and every other run
attribute (booleans as 0/1, dicts and lists as JSON text), ``Conventions = "CF-1.8"``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from ..errors import DataError
from .derived import coordinates
from .hdf5 import check_new_output
from .layout import (
    COORDINATES,
    DENSITY_DIMS,
    GRID_GROUP,
    SGD_FIELDS,
    TIME_DATASET,
    VARIABLES,
    Variable,
    one_line,
)
from .reader import LazyFields, load

__all__ = ["export_netcdf", "to_xarray"]

NETCDF_ENGINE = "h5netcdf"
_BOUNDS_DIM = "nv"  # CF: the vertex dimension of a bounds variable
_BLOCK_BYTES = 64 * 2**20  # rows per Dask block of a lazy result's field: about this many bytes
VERIFY_BYTES = 2**30
"""Result files up to this size are exported after reading them whole and checking them
against their SHA-256 digests; larger ones are streamed (lazy load, one block of rows at a
time, checked by HDF5's Fletcher-32 checksums and for finiteness)."""


class _Rows:
    """Field ``name`` of a lazy result as an array-like for ``dask.array.from_array``: indexing
    reads just the rows asked for (:meth:`LazyFields.block`)."""

    def __init__(self, fields: LazyFields, name: str):
        self.fields, self.name = fields, name
        self.shape = (fields.k, *fields.shapes[name])
        self.dtype = np.dtype(np.float64)
        self.ndim = len(self.shape)

    def __getitem__(self, key: tuple) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        start, stop, step = key[0].indices(self.shape[0]) if key else (0, self.shape[0], 1)
        block = self.fields.block(self.name, start, max(start, stop))
        return block[(slice(None, None, step), *key[1:])]


def _field_array(res: Any, name: str) -> Any:
    """Field ``name`` of ``res``: a numpy array, or for a lazy result a Dask array whose blocks
    of rows are read when computed (so a Dataset of a large file is built without reading it)."""
    fields = res.fields
    if not isinstance(fields, LazyFields) or fields.k == 0:
        return np.asarray(fields[name])
    import dask.array as da

    rows = _Rows(fields, name)
    row_bytes = 8 * int(np.prod(rows.shape[1:], dtype=np.int64))
    per_block = int(min(fields.k, max(1, _BLOCK_BYTES // max(row_bytes, 1))))
    return da.from_array(rows, chunks=(per_block, *rows.shape[1:]), name=False, asarray=True,
                         lock=False, meta=np.empty((0,) * rows.ndim))


def _variable(res: Any, key: str) -> Variable | None:
    """The table entry of dataset ``key`` (a field name or ``grid/<name>``), if any."""
    if res.attrs.get("kind") == "sgd" and key in SGD_FIELDS:
        return SGD_FIELDS[key]
    return VARIABLES.get(key)


def _dims(res: Any, key: str, shape: tuple[int, ...], coords: tuple[str, ...]) -> tuple:
    """Dimension names of dataset ``key`` of per-entry ``shape`` (without t): from the table,
    else (or if the table's rank does not fit) ``<name>_dim<i>``."""
    var = _variable(res, key)
    if var is not None:
        dims: list[str] = []
        for d in var.dims:
            dims += list(coords) if d == DENSITY_DIMS else [d]
        if len(dims) == len(shape):
            return tuple(dims)
    base = key.rsplit("/", 1)[-1]
    return tuple(f"{base}_dim{i}" for i in range(len(shape)))


def _attrs(res: Any, key: str) -> dict[str, str]:
    """The attributes of the variable of dataset ``key``: units, long name, HDF5 path."""
    var = _variable(res, key)
    out = {"units": var.units, "long_name": var.long_name} if var is not None else \
        {"long_name": key}
    out["hdf5_dataset"] = "/" + key
    return out


def _attr_value(value: Any) -> Any:
    """A root attribute as a netCDF attribute value (None: leave it out)."""
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, int | float | str | np.number):
        return value
    return None


def _dataset_attrs(res: Any) -> dict[str, Any]:
    """The Dataset's attributes: layout attributes, provenance, config as TOML, run attributes."""
    out: dict[str, Any] = {"Conventions": "CF-1.8",
                           "title": f"result of meanfield-pde, problem {res.problem}",
                           "source_file": str(res.path)}
    for name, value in res.attrs.items():
        if name in ("config", "rows_sha256", "grid_sha256"):  # digests of HDF5 bytes
            continue
        converted = _attr_value(value)
        if converted is not None:
            out[name] = converted
    out["complete"] = int(res.complete)
    for lib, ver in (res.attrs.get("versions") or {}).items():
        out[f"version_{lib.replace('-', '_')}"] = str(ver)
    out["config"] = tomli_w.dumps(res.config)
    out["config_format"] = "TOML"
    return out


def _coordinate_vars(res: Any, coords: tuple[str, ...]) -> tuple[dict, dict]:
    """(coordinates, data variables) of the grid's coordinates: centres, edges, CF bounds."""
    cvars: dict[str, Any] = {TIME_DATASET: ((TIME_DATASET,), res.t, _attrs(res, TIME_DATASET))}
    dvars: dict[str, Any] = {}
    for x in coords:
        edges = np.asarray(res.grid[f"{x}_edges"])
        cvars[x] = ((x,), np.asarray(res.grid[f"{x}_centers"]),
                    {**_attrs(res, f"{GRID_GROUP}/{x}_centers"), "bounds": f"{x}_bounds"})
        cvars[f"{x}_edges"] = ((f"{x}_edge",), edges, _attrs(res, f"{GRID_GROUP}/{x}_edges"))
        dvars[f"{x}_bounds"] = ((x, _BOUNDS_DIM), np.stack([edges[:-1], edges[1:]], axis=1),
                                {"long_name": f"cell bounds of {x}"})
    return cvars, dvars


def to_xarray(res: Any):
    """``res`` (a :class:`~meanfield_pde.io.reader.Result`) as an ``xarray.Dataset``: every
    field on (t, ...), every grid array, CF coordinates with bounds, and the attributes the
    module docstring lists.  The fields of a lazy result (``load(path, lazy=True)``) become Dask
    arrays, read block by block when computed or written."""
    import xarray as xr

    coords = coordinates(res)
    cvars, dvars = _coordinate_vars(res, coords)
    done = {f"{x}_{kind}" for x in coords for kind in ("edges", "centers")}
    uses_coord = False
    for name, arr in res.grid.items():
        if name in done:
            continue
        key = f"{GRID_GROUP}/{name}"
        arr = np.asarray(arr)
        dims = _dims(res, key, arr.shape, coords)
        uses_coord |= "coord" in dims
        dvars[name] = (dims, arr, _attrs(res, key))
    for name in res.fields:
        arr = _field_array(res, name)
        dims = (TIME_DATASET, *_dims(res, name, arr.shape[1:], coords))
        uses_coord |= "coord" in dims
        target = name if name not in cvars and name not in coords else f"{name}_field"
        dvars[target] = (dims, arr, _attrs(res, name))
    if uses_coord:
        n = next(v[1].shape[v[0].index("coord")] for v in dvars.values() if "coord" in v[0])
        names = COORDINATES if n == len(COORDINATES) else tuple(f"c{i}" for i in range(n))
        cvars["coord"] = (("coord",), np.array(names),
                          {"long_name": "coordinate of a point: output weight a, alignment s, "
                                        "radius r"})
    return xr.Dataset(dvars, coords=cvars, attrs=_dataset_attrs(res))


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``b`` names the file ``a`` (same path after resolving links, or same inode)."""
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def export_netcdf(path: str | os.PathLike, netcdf: str | os.PathLike,
                  overwrite: bool = False) -> Path:
    """Write the result file ``path`` as the netCDF-4 file ``netcdf`` (engine h5netcdf, the
    Dataset of :func:`to_xarray`), atomically: into a temporary file beside it, then renamed.
    Files larger than :data:`VERIFY_BYTES` are streamed (see there).

    Raises:
        DataError: ``netcdf`` is the input file, a directory, or cannot be written;
            :class:`~meanfield_pde.errors.OutputExists` if it exists and ``overwrite`` is false;
            the read errors of :func:`~meanfield_pde.io.reader.load`.
    """
    src, out = Path(path), Path(netcdf)
    if _same_file(src, out):
        raise DataError(f"the netCDF output {out} is the input file; choose another path")
    check_new_output(out, overwrite)
    ds = to_xarray(load(src, lazy=src.is_file() and src.stat().st_size > VERIFY_BYTES))
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        ds.to_netcdf(tmp, engine=NETCDF_ENGINE)
        os.replace(tmp, out)
    except (OSError, ValueError, TypeError, RuntimeError) as exc:
        raise DataError(f"cannot write {out}: {one_line(exc)}; check that the location is "
                        "writable and the disk is not full") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return out
