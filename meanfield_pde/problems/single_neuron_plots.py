"""The figures of the problem "single-neuron": the marginals of a, s, r over time, the risk (and
free energy of a noisy run), and the (s, r) law at chosen times; the marginals of a Gibbs state.

Declared by the problem class (``plot_run``, ``plot_equilibrium``) and called by
:func:`meanfield_pde.plotting.plot` with its :class:`~meanfield_pde.plotting.PlotOptions`;
matplotlib is imported only inside the functions (the Figure comes from the caller).

The default view is the CDF: the marginals of a Lagrangian run are histograms of weighted
particles deposited on the output grid, striped at the grid scale; their CDFs are not.  The
(s, r) panels share one colour scale (one colour bar for all of them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError
from ..plotting import (
    SIZES,
    PlotOptions,
    equilibrium_caption,
    is_noisy,
    panel_grid,
    plot_energy,
    plot_heatmap,
    plot_profiles,
    require,
    select_times,
    view_label,
    view_norm,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure

    from ..io import Result

LABELS = {"a": "a", "s": "s = ⟨w, w*⟩", "r": "r = |P⊥w|"}  # axis labels (plotting.coord_label)
FIGSIZE = (7.2, 6.6)  # inches, of a run's figure at double-column width
EQUILIBRIUM_FIGSIZE = (7.2, 4.6)  # of a Gibbs fixed point's
DEFAULT_VIEW = "cdf"
ROW = 2.0  # inches per row of panels
N_SR = 4  # (s, r) panels by default


def _grid(sub: Figure | SubFigure, n: int, ncols: int) -> list[Axes]:
    """``n`` axes in rows of ``ncols`` on a (sub)figure."""
    nrows = -(-n // ncols)
    axes = sub.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.remove()
    return list(axes[:n])


def plot_run(result: Result, fig: Figure, options: PlotOptions | None = None) -> None:
    """Marginals of a, s, r over time; the risk (+ free energy); the (s, r) law at the chosen
    times with one shared colour scale."""
    options = options or PlotOptions()
    view = options.view_or(DEFAULT_VIEW)
    require(result, ("risk", "marginal_a", "marginal_s", "marginal_r", "density"),
            ("a_edges", "s_edges", "r_edges"))
    t = np.asarray(result.t, dtype=float)
    indices = select_times(t, options.times, N_SR)
    energies = ["risk"] + (["free_energy"] if is_noisy(result)
                           and "free_energy" in result.fields else [])
    single = options.size == "single"
    rows_sr = -(-len(indices) // 2) if single else 1
    heights = [3.0 if single else 1.0, len(energies) if single else 1.0, rows_sr]
    fig.set_size_inches(SIZES[options.size], ROW * sum(heights))
    top, middle, bottom = fig.subfigures(3, 1, height_ratios=heights)
    for ax, name in zip(_grid(top, 3, 1 if single else 3), "asr", strict=True):
        plot_heatmap(result, name, view, ax=ax)
    panels = _grid(middle, len(energies) + (0 if single else 1),
                   1 if single else len(energies) + 1)
    for ax, name in zip(panels, energies, strict=False):
        plot_energy(result, name, ax=ax)
    if not single:
        plot_profiles(result, "r", [float(t[k]) for k in indices], view, ax=panels[-1])
    ncols = 2 if single else len(indices)
    _sr_panels(bottom, _grid(bottom, len(indices), ncols), result, indices, view)


def _sr_panels(sub: Figure | SubFigure, axes: list[Axes], result: Result, indices: list[int],
               view: str, equilibrium: bool = False) -> None:
    """The (s, r) law at each snapshot of ``indices`` on ``axes`` (rows of panels): the weighted
    particles of a Lagrangian run (colour = a) or the (s, r) marginal density, with one colour
    scale and one bar (on ``sub``) for all."""
    t = result.t
    s_edges = np.asarray(result.grid["s_edges"], dtype=float)
    r_edges = np.asarray(result.grid["r_edges"], dtype=float)
    if "particles" in result.fields and "particle_weights" in result.grid:
        z = np.asarray(result["particles"], dtype=float)[indices]
        w = np.asarray(result.grid["particle_weights"], dtype=float)
        order = np.argsort(w)
        size = 20.0 * w[order] / max(float(w.max()), 1e-300)
        lo, hi = float(z[..., 0].min()), float(z[..., 0].max())
        for ax, zk in zip(axes, z, strict=True):
            art = ax.scatter(zk[order, 1], zk[order, 2], s=size, c=zk[order, 0], cmap="viridis",
                             vmin=lo, vmax=hi if hi > lo else lo + 1, linewidths=0,
                             rasterized=True)
        label, what = "a (particle colour)", "particles"
        heavy = w >= 1e-3 * w.max()  # the box holds the particles that carry the mass
        box = [(float(z[:, heavy, c].min()), float(z[:, heavy, c].max())) for c in (1, 2)]
    else:
        a_edges = np.asarray(result.grid["a_edges"], dtype=float)
        rho = np.asarray(result["density"], dtype=float)[indices]
        if rho.shape[1:] != (a_edges.size - 1, s_edges.size - 1, r_edges.size - 1):
            raise DataError(f"{result.path}: density has shape {rho.shape[1:]}, not that of the "
                            "grid; re-run the solve")
        sr = np.einsum("a,kasr->ksr", np.diff(a_edges), rho)  # the a-marginal integrated out
        sr_view = "logdensity" if view == "logdensity" else "density"
        norm = view_norm([sr], sr_view)
        for ax, sk in zip(axes, sr, strict=True):
            art = ax.pcolormesh(s_edges, r_edges, sk.T, shading="flat", norm=norm,
                                cmap="viridis", rasterized=True)
        label, what = view_label(sr_view, "(s, r)"), "(s, r) law"
        box = None
    sub.colorbar(art, ax=axes, label=label, shrink=0.9)
    lefts = min(ax.get_subplotspec().colspan.start for ax in axes)
    for ax, k in zip(axes, indices, strict=True):
        if box is not None:  # particles: zoom on them
            (s_lo, s_hi), (r_lo, r_hi) = box
            pad_s, pad_r = 0.1 * (s_hi - s_lo) + 1e-3, 0.1 * (r_hi - r_lo) + 1e-3
            ax.set_xlim(s_lo - pad_s, s_hi + pad_s)
            ax.set_ylim(max(0.0, r_lo - pad_r), r_hi + pad_r)
        ax.set_xlabel(LABELS["s"])
        ax.set_ylabel(LABELS["r"] if ax.get_subplotspec().colspan.start == lefts else "")
        ax.set_title(what if equilibrium else f"{what}, t = {t[k]:.3g}")


def plot_equilibrium(result: Result, fig: Figure, options: PlotOptions | None = None) -> None:
    """The marginals of a, s and r of the Gibbs fixed point (in the view asked; default
    density) and its (s, r) marginal."""
    options = options or PlotOptions()
    view = options.view_or("density")
    require(result, ("marginal_a", "marginal_s", "marginal_r", "density"),
            ("a_edges", "s_edges", "r_edges"))
    axes = panel_grid(fig, 4, options.size, row_height=ROW)
    for ax, name in zip(axes[:3], "asr", strict=True):
        plot_profiles(result, name, [float(result.t[-1])], view, ax=ax)
        ax.get_legend().remove()
        ax.grid(True, which="major", alpha=0.3)
    _sr_panels(fig, axes[3:], result, [result.t.size - 1], view, equilibrium=True)
    caption = equilibrium_caption(result)
    if caption:
        axes[0].set_title(caption)
