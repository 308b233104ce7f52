"""Times, views and checks behind the figures (:mod:`meanfield_pde.plotting` re-exports them):
which snapshots to show, the time axis (t = 0 always on it), the density / CDF / log-density views
of a marginal with shared colour limits and their labels, the part of a grid holding the mass.

matplotlib is imported only inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from meanfield_pde.errors import ConfigError, DataError, OptionError
from meanfield_pde.io import Result

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.colors import Normalize

N_PROFILES = 5  # density profiles drawn by default: first, last and log-spaced ones in between
LOG_TIME_DECADES = 2.0  # log-spaced outputs over more decades get a symmetric-log time axis
LOG_VIEW_DECADES = 4.0  # the logdensity view shows this many decades below the maximum
VIEWS = ("density", "cdf", "logdensity")
"""How a marginal density is shown: the density itself, its CDF, or the density on a log scale."""


# --------------------------------------------------------------------------------------
# checks, times and views
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


def symlog_time(t: np.ndarray) -> bool:
    """True for log-spaced outputs: a wide span (:func:`use_log_time`) and output intervals
    that grow by more than a factor 10 (uniform outputs keep a linear axis)."""
    dt = np.diff(t[t > 0])
    return use_log_time(t) and dt.size >= 2 and dt.min() > 0 and dt.max() / dt.min() > 10


def time_axis(ax: Axes, t: np.ndarray) -> None:
    """Scale and label the x axis of ``ax`` for output times ``t`` (t = 0 always shown)."""
    if symlog_time(t):
        first = float(t[t > 0][0])
        from matplotlib.ticker import FixedLocator

        ax.set_xscale("symlog", linthresh=first, linscale=1.0)
        lo, hi = math.ceil(math.log10(first)), math.floor(math.log10(float(t[-1])))
        step = 1 if hi - lo <= 3 else 2  # > 3 decades: label every other one
        ax.xaxis.set_major_locator(FixedLocator([0.0] + [10.0**k for k in range(hi, lo - 1,
                                                                                 -step)]))
        ax.set_xlabel(f"t (log scale above {first:.2g})")
    else:
        ax.set_xlabel("t")
    if t.size > 1:
        ax.set_xlim(float(t[0]), float(t[-1]))


def time_edges(t: np.ndarray, log: bool = False, ax: Axes | None = None) -> np.ndarray:
    """Cell edges around (possibly non-uniform) output times, spanning exactly [t0, tK].

    Inner edges are the midpoints of neighbouring times in the coordinate of ``ax``'s x scale
    when given, else geometric midpoints if ``log``, else arithmetic ones.
    """
    if t.size == 1:  # one snapshot: a cell of unit width
        return np.array([t[0] - 0.5, t[0] + 0.5])
    if ax is not None:
        tr = ax.xaxis.get_transform()
        u = np.asarray(tr.transform(np.asarray(t, dtype=float)), dtype=float).ravel()
        mids = np.asarray(tr.inverted().transform(0.5 * (u[1:] + u[:-1])), dtype=float).ravel()
    else:
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


def select_times(t: np.ndarray, times: Sequence[float] | None, n: int = N_PROFILES) -> list[int]:
    """Snapshot indices of the outputs nearest to ``times`` (in the order asked, duplicates
    dropped), or :func:`profile_indices` when None.  A time outside [t0, tK] by more than one
    output interval is a ConfigError naming the range."""
    if times is None:
        return profile_indices(t, n)
    slack = float(np.max(np.diff(t))) if t.size > 1 else 0.0
    out: list[int] = []
    for x in times:
        if x < t[0] - slack or x > t[-1] + slack:
            raise OptionError("times", f"time {x:g} is outside the outputs t = {t[0]:g} .. "
                              f"{t[-1]:g}; choose {{opt}} within them")
        k = int(np.argmin(np.abs(t - x)))
        if k not in out:
            out.append(k)
    return out


def view_values(values: np.ndarray, edges: np.ndarray, view: str) -> np.ndarray:
    """A density (..., n) on cells ``edges`` in ``view``: itself, or (cdf) the fraction of mass
    at or below each cell's right edge."""
    if view != "cdf":
        return values
    mass = np.cumsum(np.nan_to_num(values) * np.diff(edges), axis=-1)
    total = mass[..., -1:]
    return np.divide(mass, total, out=np.zeros_like(mass), where=total > 0)


def view_norm(arrays: Sequence[np.ndarray], view: str) -> Normalize:
    """Colour limits shared by every array in ``arrays`` (already in ``view``)."""
    from matplotlib.colors import LogNorm, Normalize

    if view == "cdf":
        return Normalize(0.0, 1.0)
    tops = [float(np.nanmax(a)) for a in arrays if np.isfinite(a).any()]
    top = max(tops) if tops and max(tops) > 0 else 1.0
    if view == "logdensity":
        return LogNorm(top * 10.0 ** -LOG_VIEW_DECADES, top)
    return Normalize(0.0, top)


def view_label(view: str, name: str) -> str:
    """Colour-bar / y-axis label of a marginal of coordinate(s) ``name`` in ``view`` (a density
    of x is per unit x: its unit is the inverse of x's)."""
    if view == "cdf":
        return f"fraction of mass ≤ {name}"
    unit = "·".join(name.strip("()").replace(" ", "").split(","))
    return f"density, per unit {unit}"


def mass_range(edges: np.ndarray, values: np.ndarray, tail: float = 1e-4) -> tuple[float, float]:
    """The part of the cells ``edges`` holding the mass at every time: from where the CDF first
    exceeds ``tail`` to where it reaches 1 - ``tail`` (at any time), padded by 5 %; the whole
    grid if that is empty."""
    cdf = view_values(values, edges, "cdf")
    cdf = cdf[np.isfinite(cdf).all(axis=-1) & (cdf[..., -1] > 0)]
    if cdf.size == 0:
        return float(edges[0]), float(edges[-1])
    lo_i = int(np.argmax((cdf > tail).any(axis=0)))
    below = np.flatnonzero((cdf < 1.0 - tail).any(axis=0))
    hi_i = int(below.max()) if below.size else cdf.shape[-1] - 1
    # cell i spans edges[i:i + 2] and cdf[i] is the mass up to edges[i + 1]: mass beyond a
    # cell with cdf < 1 - tail lies in the next one
    lo, hi = float(edges[lo_i]), float(edges[min(hi_i + 2, edges.size - 1)])
    pad = 0.05 * (hi - lo)
    lo = float(edges[0]) if lo - edges[0] < 0.25 * (hi - lo) else lo - pad  # keep r = 0 in view
    return lo, min(float(edges[-1]), hi + pad)


def _cmap(view: str):
    """viridis; under-range and empty (log of 0) cells drawn in its darkest colour."""
    from matplotlib import colormaps

    base = colormaps["viridis"]
    return base.with_extremes(under=base(0.0), bad=base(0.0)) if view == "logdensity" else base


def _colorbar(fig: Any, mappable: Any, ax: Any, view: str, label: str) -> None:
    """A labelled colour bar; ``extend='min'`` when the log view cuts off low values."""
    fig.colorbar(mappable, ax=ax, label=label, extend="min" if view == "logdensity" else "neither")


def marginal(result: Result, coord: str) -> tuple[np.ndarray, np.ndarray]:
    """(edges, density (K, n)) of the problem's marginal of ``coord`` (checked shapes)."""
    from meanfield_pde.problems import registry

    field = registry.get(result.problem).marginal_fields.get(coord)
    if field is None:
        raise DataError(f"problem {result.problem!r} has no marginal of {coord!r}")
    require(result, (field,), (f"{coord}_edges",))
    edges = np.asarray(result.grid[f"{coord}_edges"], dtype=float)
    values = np.asarray(result[field], dtype=float).reshape(result.t.size, -1)
    if values.shape[1] != edges.size - 1:
        raise DataError(f"{result.path}: {field} has {values.shape[1]} cells but "
                        f"{coord}_edges {edges.size - 1}; re-run the solve")
    return edges, values


def _plot_module_attr(result: Result, name: str, default: Any) -> Any:
    """Attribute ``name`` of the module defining the problem's ``plot_run``, else ``default``."""
    import sys

    from meanfield_pde.problems import registry

    try:
        plotter = registry.get(result.problem).plot_run
    except ConfigError:
        return default
    module = sys.modules.get(getattr(plotter, "__module__", ""), None)
    return getattr(module, name, default)


def default_view(result: Result) -> str:
    """The view a problem's figures use by default: ``DEFAULT_VIEW`` of the module of its
    ``plot_run``, else ``density``."""
    return str(_plot_module_attr(result, "DEFAULT_VIEW", "density"))


def coord_label(result: Result, coord: str) -> str:
    """Axis label of a coordinate: ``LABELS[coord]`` of the module of the problem's
    ``plot_run`` (e.g. "r = |w|"), else the coordinate's name."""
    return str(_plot_module_attr(result, "LABELS", {}).get(coord, coord))


def is_noisy(result: Result) -> bool:
    """True if the result's ``noise.beta`` is finite (entropy in the free energy)."""
    beta = (result.config.get("noise") or {}).get("beta", "inf")
    try:
        return math.isfinite(float(beta))
    except (TypeError, ValueError):
        return False
