"""The figures of the problem "single-neuron": the marginals of a, s, r over time, the risk and
(s, r) marginals of a run; the marginals of a Gibbs fixed point.

Declared by the problem class (``plot_run``, ``plot_equilibrium``, ``figsize``,
``equilibrium_figsize``) and called by :func:`meanfield_pde.plotting.plot_result`; matplotlib is
imported only inside the functions (the Figure comes from the caller).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError
from ..plotting import (
    equilibrium_caption,
    heatmap_over_time,
    log_scale_if_wide,
    profile_indices,
    require,
    set_time_axis,
    use_log_time,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..io import Result

FIGSIZE = (18.0, 9.0)  # inches, of a run's figure
EQUILIBRIUM_FIGSIZE = (19.0, 4.8)  # of a Gibbs fixed point's


def plot_run(result: Result, fig: Figure) -> None:
    """Marginals of a, s, r over time (heatmaps), risk against t, and the (s, r) marginal at
    four times."""
    require(result, ("risk", "marginal_a", "marginal_s", "marginal_r", "density"),
             ("a_edges", "s_edges", "r_edges"))
    t = np.asarray(result.t, dtype=float)
    log = use_log_time(t)
    shown = t > 0 if log else np.ones(t.size, dtype=bool)
    upper, lower = fig.subfigures(2, 1, height_ratios=[1.0, 1.0])
    axes = upper.subplots(1, 4)
    for ax, name in zip(axes[:3], "asr", strict=False):
        edges = np.asarray(result.grid[f"{name}_edges"], dtype=float)
        values = np.asarray(result[f"marginal_{name}"], dtype=float)
        if values.shape != (t.size, edges.size - 1):
            raise DataError(f"{result.path}: marginal_{name} has shape {values.shape}, expected "
                            f"{(t.size, edges.size - 1)}; re-run the solve")
        heatmap_over_time(upper, ax, t, shown, log, edges, values, name)
    risk = np.asarray(result["risk"], dtype=float)
    ax = axes[3]
    ax.plot(t[shown], risk[shown], color="C0")
    set_time_axis(ax, log, not shown.all())
    positive = risk[shown][np.isfinite(risk[shown])]
    if positive.size and positive.min() > 0 and positive.max() / positive.min() > 100:
        ax.set_yscale("log")
    ax.set_ylabel("risk")
    ax.set_title("risk")
    ax.grid(True, which="both", alpha=0.3)

    indices = profile_indices(t, 4)
    particles = "particles" in result.fields and "particle_weights" in result.grid
    for ax, k in zip(lower.subplots(1, len(indices)), indices, strict=True):
        if particles:
            _sr_particles(lower, ax, result, k, f"(s, r) of the particles at t = {t[k]:.3g}")
        else:
            _sr_marginal(lower, ax, result, k, f"(s, r) marginal at t = {t[k]:.3g}")


def _sr_particles(fig: Figure, ax: Axes, result: Result, k: int, title: str) -> None:
    """The weighted particles of a characteristic run at snapshot k: (s, r) positions, area
    proportional to the weight, colour = a (the deposited (s, r) histogram of a tensor Gauss
    rule is striped: the particles are the solution)."""
    z = np.asarray(result["particles"][k], dtype=float)
    w = np.asarray(result.grid["particle_weights"], dtype=float)
    order = np.argsort(w)
    size = 40.0 * w[order] / max(float(w.max()), 1e-300)
    pts = ax.scatter(z[order, 1], z[order, 2], s=size, c=z[order, 0], cmap="viridis",
                     linewidths=0, rasterized=True)
    fig.colorbar(pts, ax=ax, label="a")
    ax.set_xlim(float(result.grid["s_edges"][0]), float(result.grid["s_edges"][-1]))
    ax.set_ylim(float(result.grid["r_edges"][0]), float(result.grid["r_edges"][-1]))
    ax.set_xlabel("s = <w, w*>")
    ax.set_ylabel("r = |P w|")
    ax.set_title(title)


def _sr_marginal(fig: Figure, ax: Axes, result: Result, k: int, title: str) -> None:
    """The (s, r) marginal of snapshot k (the density summed over a) as a heatmap."""
    a_edges = np.asarray(result.grid["a_edges"], dtype=float)
    sr = np.asarray(result["density"][k], dtype=float).sum(axis=0) * (a_edges[1] - a_edges[0])
    mesh = ax.pcolormesh(np.asarray(result.grid["s_edges"], dtype=float),
                         np.asarray(result.grid["r_edges"], dtype=float), sr.T, shading="flat",
                         cmap="viridis", rasterized=True)
    fig.colorbar(mesh, ax=ax)
    ax.set_xlabel("s = <w, w*>")
    ax.set_ylabel("r = |P w|")
    ax.set_title(title)


def plot_equilibrium(result: Result, fig: Figure) -> None:
    """The marginals of a, s and r of the Gibbs fixed point and its (s, r) marginal."""
    require(result, ("marginal_a", "marginal_s", "marginal_r", "density"),
             ("a_edges", "s_edges", "r_edges"))
    axes = fig.subplots(1, 4, width_ratios=[1.0, 1.0, 1.0, 1.25])
    for ax, name in zip(axes[:3], "asr", strict=True):
        edges = np.asarray(result.grid[f"{name}_edges"], dtype=float)
        values = np.asarray(result[f"marginal_{name}"], dtype=float)[-1]
        if values.shape != (edges.size - 1,):
            raise DataError(f"{result.path}: marginal_{name} has shape {values.shape}, "
                            f"expected {(edges.size - 1,)}; re-run the solve")
        ax.stairs(values, edges, color="C0")
        log_scale_if_wide(ax, values)
        ax.set_xlabel({"a": "a", "s": "s = <w, w*>", "r": "r = |P w|"}[name])
        ax.set_ylabel(f"marginal density of {name}")
        ax.set_title(f"marginal of {name}")
        ax.grid(True, which="both", alpha=0.3)
    caption = equilibrium_caption(result)
    _sr_marginal(fig, axes[3], result, -1, "(s, r) marginal" + (f"\n{caption}" if caption else ""))
