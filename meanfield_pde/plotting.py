"""Figures of solved results (PNG, PDF or SVG via matplotlib's non-interactive canvases).

:func:`plot_result` finds the problem of ``result.problem`` in the problem registry and calls
the plotter the problem declares: ``plot_run`` for time-dependent runs, ``plot_equilibrium`` for
Gibbs fixed points of ``meanfield-pde gibbs`` (one state, drawn as densities and marginals, with
no time axis), each on a figure of the problem's ``figsize`` / ``equilibrium_figsize``.  A plotter
draws one problem's fields into an empty matplotlib ``Figure``, with the helpers of this module
(:func:`require`, :func:`heatmap_over_time`, ...).  The file format follows the extension of the
output path (:data:`FORMATS`).
matplotlib is imported only inside the functions, so the numerics never import it, and
the figures are drawn on an Agg canvas without pyplot (the caller's backend is untouched).
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from meanfield_pde.errors import ConfigError, DataError
from meanfield_pde.io import Result

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["FORMATS", "equilibrium_caption", "heatmap_over_time", "log_scale_if_wide",
           "plot_result", "profile_indices", "require", "set_time_axis", "time_edges",
           "use_log_time"]

DPI = 120
CLIP_QUANTILE = 0.99  # colour scale of density heatmaps saturates above this quantile
N_PROFILES = 5  # density profiles drawn: first, last and log-spaced ones in between
LOG_TIME_DECADES = 2.0  # time axes are logarithmic when positive times span more decades

FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
"""Output file extension -> matplotlib format."""


# --------------------------------------------------------------------------------------
# helpers shared by the problems' plotters
# --------------------------------------------------------------------------------------


def require(result: Result, fields: tuple[str, ...], grid: tuple[str, ...]) -> None:
    """Raise DataError if ``result`` lacks one of the fields or grid arrays a plot needs."""
    missing = [f for f in fields if f not in result.fields]
    missing += [f"grid/{g}" for g in grid if g not in result.grid]
    if missing:
        raise DataError(
            f"{result.path} lacks {', '.join(missing)} needed to plot problem "
            f"{result.problem!r}; re-run the solve with this version of meanfield-pde"
        )
    if result.t.size == 0:
        raise DataError(
            f"{result.path} holds no snapshots (the run stopped before the first output); "
            "re-run the solve"
        )


def use_log_time(t: np.ndarray) -> bool:
    """True if the positive output times span more than LOG_TIME_DECADES decades."""
    tp = t[t > 0]
    return tp.size >= 2 and np.log10(tp[-1] / tp[0]) > LOG_TIME_DECADES


def time_edges(t: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges around (possibly non-uniform) output times, spanning exactly [t0, tK].

    Inner edges are the (geometric, if ``log``) midpoints of neighbouring times.
    """
    if t.size == 1:  # one snapshot: a cell of unit width (log needs >= 2 times)
        return np.array([t[0] - 0.5, t[0] + 0.5])
    mids = np.sqrt(t[1:] * t[:-1]) if log else 0.5 * (t[1:] + t[:-1])
    return np.concatenate([[t[0]], mids, [t[-1]]])


def profile_indices(t: np.ndarray, n: int = N_PROFILES) -> list[int]:
    """Indices of ~``n`` snapshots: first, last and log-spaced (in time) ones in between."""
    k = t.size
    if k <= n:
        return list(range(k))
    positive = np.flatnonzero(t > 0)
    if positive.size >= 2 and t[-1] > t[positive[0]]:
        targets = np.geomspace(t[positive[0]], t[-1], n)[1:-1]
        logt = np.log(t[positive])
        inner = [int(positive[np.argmin(np.abs(logt - np.log(x)))]) for x in targets]
    else:
        inner = [int(round(x)) for x in np.linspace(0, k - 1, n)[1:-1]]
    return sorted({0, *inner, k - 1})


def _format_value(value: Any) -> str:
    """Short text for a config value in a title."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _title(result: Result) -> str:
    """Problem name plus the model's config items (wrapped), and an incomplete-run note."""
    title = f"{result.problem}"
    model = result.config.get("model")
    if isinstance(model, dict) and model:
        items = ", ".join(
            f"{k}={_format_value(v)}" for k, v in model.items() if v not in ({}, [], "")
        )
        title += f": {items}"
    elif model is not None:
        title += f": model={_format_value(model)}"
    noise = result.config.get("noise")
    if result.attrs.get("solution") == "gibbs_fixed_point" and isinstance(noise, dict):
        title += "  —  Gibbs fixed point: " + ", ".join(
            f"{k}={_format_value(v)}" for k, v in noise.items())
    elif not result.complete:
        title += f"  [incomplete run: {result.t.size} snapshots]"
    return textwrap.fill(title, width=160)


def set_time_axis(ax: Axes, log: bool, hidden_zero: bool = False) -> None:
    """Label a time axis (log-scaled if ``log``; note a t <= 0 snapshot it cannot show)."""
    if log:
        ax.set_xscale("log")
    label = "t (log scale; t = 0 not shown)" if log and hidden_zero else "t (log scale)"
    ax.set_xlabel(label if log else "t")


def heatmap_over_time(fig: Figure, ax: Axes, t: np.ndarray, shown: np.ndarray, log: bool,
                       edges: np.ndarray, values: np.ndarray, label: str) -> None:
    """pcolormesh of values (K, n) against the output times, colours clipped at a quantile."""
    finite = values[shown][np.isfinite(values[shown])]
    vmax = float(np.quantile(finite, CLIP_QUANTILE)) if finite.size else 1.0
    top = float(finite.max()) if finite.size else 1.0
    vmax = vmax if vmax > 0 else (top if top > 0 else 1.0)
    mesh = ax.pcolormesh(time_edges(t[shown], log), edges, values[shown].T, shading="flat",
                         cmap="viridis", vmin=0.0, vmax=vmax, rasterized=True)
    fig.colorbar(mesh, ax=ax, extend="max" if top > vmax else "neither")
    set_time_axis(ax, log, not shown.all())
    ax.set_ylabel(label)
    ax.set_title(f"marginal density of {label}")


def equilibrium_caption(result: Result) -> str:
    """Risk and free energy of a fixed point, for a panel title."""
    parts = []
    for name in ("risk", "free_energy"):
        if name in result.fields and result[name].size:
            parts.append(f"{name.replace('_', ' ')} {float(np.ravel(result[name])[-1]):.6g}")
    return ", ".join(parts)


def log_scale_if_wide(ax: Axes, values: np.ndarray) -> None:
    positive = values[np.isfinite(values) & (values > 0)]
    if positive.size and positive.max() / positive.min() > 1e3:
        ax.set_yscale("log")
        ax.set_ylim(max(positive.min(), positive.max() * 1e-12), positive.max() * 2)


def _plotter(result: Result, equilibrium: bool) -> tuple[Callable, tuple[float, float]]:
    """(the plotter, the figure size) that the problem of ``result`` declares."""
    from meanfield_pde.problems import registry

    attr = "plot_equilibrium" if equilibrium else "plot_run"
    try:
        problem = registry.get(result.problem)
    except ConfigError:
        problem = None
    if getattr(problem, attr, None) is None:
        known = [n for n in registry.names() if getattr(registry.get(n), attr) is not None]
        what = "a Gibbs fixed point" if equilibrium else "a run"
        raise DataError(
            f"{result.path} is of problem {result.problem!r}, which cannot be plotted as {what}; "
            f"known problems: {', '.join(known)}"
        )
    return getattr(problem, attr), (problem.equilibrium_figsize if equilibrium
                                    else problem.figsize)


def plot_result(result: Result, out: str | os.PathLike) -> Path:
    """Draw ``result`` with the plotter of its problem and save it (dpi 120 for PNG).

    Args:
        result: A loaded result (:func:`meanfield_pde.io.load`).
        out: File to write, ``.png``, ``.pdf`` or ``.svg`` (the format follows the extension);
            missing parent directories are created.

    Returns:
        The path of the file written.

    Raises:
        DataError: Unknown or unsupported problem or extension, missing fields, or ``out`` not
            writable.
    """
    out = Path(out)
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise DataError(
            f"cannot tell the figure format of {out} from its extension "
            f"{out.suffix or '(none)'!r}; use one of {', '.join(FORMATS)}"
        )
    if result.attrs.get("kind") == "sgd":
        raise DataError(
            f"{result.path} holds particle SGD (reduced coordinates of every neuron), not a PDE "
            "solution; compare it with the PDE by `meanfield-pde validate`, or read it with "
            "meanfield_pde.load"
        )
    equilibrium = result.attrs.get("solution") == "gibbs_fixed_point"
    plotter, size = _plotter(result, equilibrium)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)  # savefig picks the PDF / SVG backend from ``format``
    plotter(result, fig)
    fig.suptitle(_title(result))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=DPI, format=fmt)
    except OSError as exc:
        raise DataError(
            f"cannot write {out}: {' '.join(str(exc).split())}; check that the location is "
            "writable and the disk is not full"
        ) from exc
    return out
