"""The phase diagram of a sweep (``meanfield-pde plot DIR``), drawn from ``DIR/sweep.nc``.

Panels: the final risk over the first two varied keys as a heatmap (each cell labelled with its
value; failed and pending points shown as such), the same numbers as curves over the first key,
one line per value of the second (one key: a single curve), and risk(t) of every point.  With
more than two keys the first two panels show the first value of the others (named in the
title).  Drawn on an Agg canvas without pyplot; the format follows the extension.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError
from ..plot_views import time_axis
from ..plotting import DPI, FORMATS, SIZES, STYLE, log_scale_if_wide
from .table import read_table

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_sweep"]

MAX_LABELLED_CELLS = 64  # heatmap cells labelled with their value up to this many
MAX_LEGEND = 12  # risk(t) curves named in a legend up to this many


def _label(ds: xr.Dataset, dim: str) -> str:
    """The axis label of a varied key: its dotted name."""
    return str(ds[dim].attrs.get("key", dim))


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float | np.floating) else str(v)


def _heatmap(fig: Figure, ax: Axes, grid: xr.Dataset, ydim: str, xdim: str) -> None:
    """Final risk over (ydim, xdim) as equal cells; failed / pending cells marked."""
    from matplotlib.colors import LogNorm

    z = grid["risk_final"].transpose(ydim, xdim).values
    status = grid["status"].transpose(ydim, xdim).values
    finite = z[np.isfinite(z)]
    norm = (LogNorm(finite.min(), finite.max()) if finite.size and finite.min() > 0
            and finite.max() / finite.min() > 30 else None)
    mesh = ax.pcolormesh(np.ma.masked_invalid(z), cmap="viridis", norm=norm,
                         edgecolors="white", linewidth=0.5)
    ax.set_facecolor("0.85")  # failed / pending cells
    cb = fig.colorbar(mesh, ax=ax)
    cb.set_label("final risk R(t_end)")
    ny, nx = z.shape
    ax.set_xticks(np.arange(nx) + 0.5, [_fmt(v) for v in grid[xdim].values])
    ax.set_yticks(np.arange(ny) + 0.5, [_fmt(v) for v in grid[ydim].values])
    ax.set_xlabel(_label(grid, xdim))
    ax.set_ylabel(_label(grid, ydim))
    if nx * ny <= MAX_LABELLED_CELLS:
        mid = np.nanmedian(finite) if finite.size else 0.0
        for i, j in np.ndindex(z.shape):
            text = _fmt(z[i, j]) if status[i, j] == "ok" else str(status[i, j])
            dark = status[i, j] == "ok" and z[i, j] < mid
            ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")
    ax.set_title("final risk")


def _curves(ax: Axes, grid: xr.Dataset, xdim: str, ldim: str | None) -> None:
    """Final risk against ``xdim``, one line per value of ``ldim``."""
    xv = grid[xdim].values
    numeric = xv.dtype.kind in "if" and np.all(np.isfinite(xv))
    x = xv if numeric else np.arange(xv.size)
    lines = grid[ldim].values if ldim is not None else [None]
    for v in lines:
        sel = grid if v is None else grid.sel({ldim: v})
        y = sel["risk_final"].transpose(xdim).values
        if not np.isfinite(y).any():
            continue
        ax.plot(x, y, "o-", ms=4,
                label=None if v is None else f"{_label(grid, ldim)} = {_fmt(v)}")
    if not numeric:
        ax.set_xticks(x, [_fmt(v) for v in xv])
    ax.set_xlabel(_label(grid, xdim))
    ax.set_ylabel("final risk R(t_end)")
    log_scale_if_wide(ax, grid["risk_final"].values)
    if ldim is not None:
        ax.legend(fontsize=8)
    ax.set_title("final risk (failed points left out)")
    ax.grid(alpha=0.3)


def _risk_over_time(ax: Axes, ds: xr.Dataset) -> None:
    """risk(t) of every point, coloured by the value of the first key; a legend naming every
    point when there are few, else the first key's values."""
    from matplotlib import colormaps
    from matplotlib.lines import Line2D

    dims = list(ds["status"].dims)
    t = ds["t"].values
    risk = ds["risk"].transpose(*dims, "t").values.reshape(-1, t.size)
    index = list(np.ndindex(ds["status"].shape))
    first = ds[dims[0]].values
    colour = [colormaps["viridis"](i / max(first.size - 1, 1)) for i in range(first.size)]
    drawn = 0
    for idx, curve in zip(index, risk, strict=True):
        ok = np.isfinite(curve)
        if not ok.any():
            continue
        name = ", ".join(f"{d}={_fmt(ds[d].values[i])}" for d, i in zip(dims, idx, strict=True))
        ax.plot(t[ok], curve[ok], color=colour[idx[0]], lw=1.2, label=name)
        drawn += 1
    time_axis(ax, t)  # t = 0 shown (symlog above the first output for log-spaced outputs)
    ax.set_ylabel("risk R(t)")
    log_scale_if_wide(ax, risk)
    if 0 < drawn <= MAX_LEGEND:
        ax.legend(fontsize=7, ncols=1 if drawn <= 4 else 3 if drawn > 8 else 2)
    elif drawn:
        ax.legend([Line2D([], [], color=c) for c in colour],
                  [f"{_label(ds, dims[0])} = {_fmt(v)}" for v in first], fontsize=7)
    ax.set_title(f"risk(t) of every point ({drawn})")
    ax.grid(alpha=0.3)


def plot_sweep(sweep_dir: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Draw the phase diagram of the sweep in ``sweep_dir`` (module docstring) into ``out``
    (``.png``, ``.pdf`` or ``.svg``); returns the path written.

    Raises:
        DataError: no readable ``sweep.nc``, no finished point, an unknown extension, or
            ``out`` not writable.
    """
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..io import check_new_output

    out = check_new_output(out, overwrite=True)  # a directory, a dangling link, below a file
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise DataError(f"cannot tell the figure format of {out} from its extension "
                        f"{out.suffix or '(none)'!r}; use one of {', '.join(FORMATS)}")
    ds = read_table(sweep_dir)
    if not (ds["status"] == "ok").any():
        raise DataError(f"no point of the sweep in {sweep_dir} has finished; run it (again) "
                        "before plotting")
    dims = list(ds["status"].dims)
    rest = {d: ds[d].values[0] for d in dims[2:]}
    grid = ds.isel({d: 0 for d in dims[2:]})
    two = len(dims) >= 2
    with rc_context(STYLE):  # the package's paper style: 7.2 in wide, 8 pt fonts
        fig = Figure(figsize=(SIZES["double"], 6.0 if two else 3.0), layout="constrained")
        FigureCanvasAgg(fig)
        gs = fig.add_gridspec(2 if two else 1, 2)
        if two:  # phase diagram on top, every point's risk(t) below across the page
            _heatmap(fig, fig.add_subplot(gs[0, 0]), grid, dims[0], dims[1])
            _curves(fig.add_subplot(gs[0, 1]), grid, dims[0], dims[1])
            _risk_over_time(fig.add_subplot(gs[1, :]), ds)
        else:
            _curves(fig.add_subplot(gs[0, 0]), grid, dims[0], None)
            _risk_over_time(fig.add_subplot(gs[0, 1]), ds)
        _finish(fig, ds, dims, rest)
    return _save(fig, out, fmt)


def _finish(fig: Figure, ds: xr.Dataset, dims: list[str], rest: dict) -> None:
    """The figure's title: what was swept, how many points finished, the fixed keys."""
    n_ok = int((ds["status"] == "ok").sum())
    keys = ", ".join(json.loads(ds.attrs.get("varied_keys", "[]")) or dims)
    fixed = ("; at " + ", ".join(f"{_label(ds, d)} = {_fmt(v)}" for d, v in rest.items())
             if rest else "")
    fig.suptitle(f"{ds.attrs.get('problem', '')}: {ds.attrs.get('command', 'solve')} swept "
                 f"over {keys} ({n_ok} of {ds['status'].size} points finished){fixed}")


def _save(fig: Figure, out: Path, fmt: str) -> Path:
    """Write ``fig`` to ``out`` in format ``fmt`` (DataError naming the path if it fails)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=DPI, format=fmt)
    except OSError as exc:
        raise DataError(f"cannot write {out}: {exc.strerror or exc}; check the path") from None
    return out
