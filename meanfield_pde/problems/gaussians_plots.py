"""The figures of the problem "gaussians": the law of r = |w| over time, the risk (and the free
energy of a noisy run) and the law of r at chosen times; the law of r of a Gibbs fixed point.

Declared by the problem class (``plot_run``, ``plot_equilibrium``) and called by
:func:`meanfield_pde.plotting.plot` with its :class:`~meanfield_pde.plotting.PlotOptions`;
matplotlib is imported only inside the functions (the Figure comes from the caller).

The default view is the CDF: in the noiseless flow part of the mass concentrates near r = 0, a
spike whose height only measures the grid spacing; the CDF shows it as the mass it is (a jump at
the left), and the other profiles keep their scale.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..plotting import (
    PlotOptions,
    equilibrium_caption,
    is_noisy,
    panel_grid,
    plot_energy,
    plot_heatmap,
    plot_profiles,
    require,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..io import Result

FIGSIZE = (7.2, 2.4)  # inches, of a run's figure at double-column width (rows add height)
EQUILIBRIUM_FIGSIZE = (7.2, 2.4)  # of a Gibbs fixed point's
DEFAULT_VIEW = "cdf"
LABELS = {"r": "r = |w|"}  # axis labels of the coordinates (plotting.coord_label)
VIEW_TITLES = {"density": "density of r", "cdf": "CDF of r", "logdensity": "log density of r"}


def plot_run(result: Result, fig: Figure, options: PlotOptions | None = None) -> None:
    """The law of r over time (heatmap), the risk (with its error band when visible), the free
    energy of a noisy run, and the law of r at the chosen times."""
    options = options or PlotOptions()
    view = options.view_or(DEFAULT_VIEW)
    require(result, ("risk", "density"), ("r_edges",))
    noisy = is_noisy(result) and "free_energy" in result.fields
    n = 4 if noisy else 3
    axes = panel_grid(fig, n, options.size, width_ratios=[1.3, 1.0, 1.0])
    ax_map, ax_risk, ax_prof = axes[0], axes[1], axes[-1]
    plot_heatmap(result, "r", view, ax=ax_map)
    ax_map.set_title(VIEW_TITLES[view] + " over time")
    plot_energy(result, "risk", ax=ax_risk)
    ax_risk.set_title("risk")
    if noisy:
        plot_energy(result, "free_energy", ax=axes[2])
        axes[2].set_title("free energy (decreases)")
    plot_profiles(result, "r", options.times, view, ax=ax_prof)


def plot_equilibrium(result: Result, fig: Figure, options: PlotOptions | None = None) -> None:
    """The Gibbs law of r in the chosen view (default: density) and on a log scale (tails)."""
    options = options or PlotOptions()
    view = options.view_or("density")
    require(result, ("density",), ("r_edges",))
    views = [view, "logdensity"] if view != "logdensity" else ["density", "logdensity"]
    axes = panel_grid(fig, 2, options.size)
    for ax, v in zip(axes, views, strict=True):
        plot_profiles(result, "r", [float(result.t[-1])], v, ax=ax)
        ax.get_legend().remove()
        ax.grid(True, which="major", alpha=0.3)
        ax.set_title(VIEW_TITLES[v])
    caption = equilibrium_caption(result)
    if caption:
        axes[0].set_title(f"{VIEW_TITLES[views[0]]}\n{caption}")
