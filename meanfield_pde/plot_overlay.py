"""Particle SGD over the PDE: histograms of the neurons' reduced coordinates drawn over the PDE
marginals at chosen times (the layout of Mei, Montanari & Nguyen 2018, Fig. 1).

Called by :func:`meanfield_pde.plotting.plot` with ``overlay=``.  The problem's declaration says
what SGD records (``particle_coords``, ``particle_field``: (K, N) for one coordinate, (K, N, C)
for several) and which PDE field holds each marginal (``marginal_fields``).  Both are put on the
same bins: the PDE's mass per bin comes from its CDF, so neither is drawn as a grid-dependent
spike.  Each panel uses the SGD snapshot nearest the PDE output; a legend says when they differ.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .errors import DataError
from .plotting import (
    PlotOptions,
    coord_label,
    figure_title,
    marginal,
    mass_range,
    select_times,
    view_label,
    view_values,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .io import Result

N_TIMES = 4  # panels per coordinate by default
ROW = 1.9  # inches per row


def _particles(result: Result, sgd: Result) -> tuple[tuple[str, ...], np.ndarray]:
    """(coordinates, samples (K, N, C)) of the SGD file, checked against the PDE's problem."""
    from .problems import registry

    if sgd.attrs.get("kind") != "sgd":
        raise DataError(f"{sgd.path} is not a particle SGD result; the overlay is the result "
                        "of an SGD run of the same problem")
    if sgd.problem != result.problem:
        raise DataError(f"{sgd.path} is SGD of problem {sgd.problem!r} but {result.path} is of "
                        f"{result.problem!r}; overlay files of the same problem")
    problem = registry.get(result.problem)
    if problem.particle_field not in sgd.fields or sgd.t.size == 0:
        raise DataError(f"{sgd.path} lacks the field {problem.particle_field!r} or holds no "
                        "snapshots; re-run the SGD")
    z = np.asarray(sgd[problem.particle_field], dtype=float)
    if z.ndim == 2:
        z = z[..., None]
    return tuple(problem.particle_coords), z


def _bins(edges: np.ndarray, values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Histogram bins over the PDE's mass and the SGD samples ``x`` (N, any shape): ~2 N^(1/3)
    of them (Rice rule), at least 10."""
    lo, hi = mass_range(edges, values)
    lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
    return np.linspace(lo, hi, max(10, int(2 * x.shape[-1] ** (1 / 3))) + 1)


def draw_overlay(result: Result, sgd: Result, fig: Figure, options: PlotOptions) -> None:
    """Rows of panels (one row per coordinate at double width, one per time at single width):
    the PDE marginal and the SGD histogram at each chosen time, both on the same bins."""
    coords, z = _particles(result, sgd)
    t, ts = np.asarray(result.t, dtype=float), np.asarray(sgd.t, dtype=float)
    if options.times is None:  # spread over the times both runs cover
        common = t[t <= ts[-1] + (float(np.max(np.diff(ts))) if ts.size > 1 else 0.0)]
        indices = select_times(common if common.size else t, None, N_TIMES)
    else:
        indices = select_times(t, options.times, N_TIMES)
    view = options.view_or("density")
    single = options.size == "single"
    nrows, ncols = (len(indices), len(coords)) if single else (len(coords), len(indices))
    fig.set_size_inches(options.width, ROW * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for c, coord in enumerate(coords):
        edges, values = marginal(result, coord)
        near = [int(np.argmin(np.abs(ts - t[k]))) for k in indices]
        bins = _bins(edges, values[indices], z[near, :, c])
        for j, k in enumerate(indices):
            ax = axes[j, c] if single else axes[c, j]
            ks = int(np.argmin(np.abs(ts - t[k])))
            same = abs(ts[ks] - t[k]) <= 1e-9 * max(1.0, abs(t[k]))
            _panel(ax, edges, values[k], z[ks, :, c], bins, view,
                   "SGD" if same else f"SGD at t = {ts[ks]:.3g}")
            ax.set_title(f"{coord}, t = {t[k]:.3g}")
            ax.set_xlabel(coord_label(result, coord))
            mixed = single and len(coords) > 1  # a row holds several coordinates
            ax.set_ylabel("" if ax not in axes[:, 0] else view_label(view, "x" if mixed else coord))
    axes[0, 0].legend(loc="best")
    n = z.shape[1]
    fig.suptitle(figure_title(result, options.width) + f"\nPDE against SGD with N = {n}")


def _panel(ax, edges: np.ndarray, rho: np.ndarray, x: np.ndarray, bins: np.ndarray,
           view: str, sgd_label: str) -> None:
    """One panel: the PDE mass per bin (line) and the SGD histogram (bars), in ``view``."""
    cdf = np.concatenate([[0.0], view_values(rho[None, :], edges, "cdf")[0]])
    pde_cdf = np.interp(bins, edges, cdf)
    counts, _ = np.histogram(x, bins=bins)
    sgd_cdf = np.concatenate([[0.0], np.cumsum(counts)]) / max(x.size, 1)
    if view == "cdf":
        ax.stairs(sgd_cdf[1:], bins, baseline=None, color="C1", label=sgd_label)
        ax.plot(bins, pde_cdf, color="C0", label="PDE")
        return
    width = np.diff(bins)
    ax.stairs(np.diff(sgd_cdf) / width, bins, fill=True, color="C1", alpha=0.45,
              label=sgd_label)
    ax.stairs(np.diff(pde_cdf) / width, bins, color="C0", label="PDE")
    if view == "logdensity":
        ax.set_yscale("log")
