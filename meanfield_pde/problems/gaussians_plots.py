"""The figures of the problem "gaussians": the density of r over time, the risk and density
profiles of a run; the density of a Gibbs fixed point.

Declared by the problem class (``plot_run``, ``plot_equilibrium``, ``figsize``,
``equilibrium_figsize``) and called by :func:`meanfield_pde.plotting.plot_result`; matplotlib is
imported only inside the functions (the Figure comes from the caller).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError
from ..plotting import (
    CLIP_QUANTILE,
    equilibrium_caption,
    profile_indices,
    require,
    set_time_axis,
    time_edges,
    use_log_time,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..io import Result

FIGSIZE = (17.0, 5.0)  # inches, of a run's figure
EQUILIBRIUM_FIGSIZE = (13.0, 5.0)  # of a Gibbs fixed point's


def plot_run(result: Result, fig: Figure) -> None:
    """Density of r over time (heatmap), risk against t, and density profiles at ~5 times."""
    from matplotlib import colormaps

    require(result, ("risk", "density"), ("r_edges", "r_centers"))
    t = np.asarray(result.t, dtype=float)
    density = np.asarray(result["density"], dtype=float)
    r_edges = np.asarray(result.grid["r_edges"], dtype=float)
    n = r_edges.size - 1
    if density.shape != (t.size, n) or result.grid["r_centers"].shape != (n,):
        raise DataError(
            f"{result.path} has density of shape {density.shape}, r_edges of {r_edges.shape} "
            f"and r_centers of {result.grid['r_centers'].shape}, which do not match; "
            "re-run the solve"
        )
    log = use_log_time(t)
    shown = t > 0 if log else np.ones(t.size, dtype=bool)  # t = 0 has no place on a log axis
    ax_map, ax_risk, ax_prof = fig.subplots(1, 3, width_ratios=[1.25, 1.0, 1.0])

    # (1) heatmap of the density of r over time, with the actual (non-uniform) times
    finite = density[shown][np.isfinite(density[shown])]
    vmax = float(np.quantile(finite, CLIP_QUANTILE)) if finite.size else 1.0
    top = float(finite.max()) if finite.size else 1.0
    if vmax <= 0:
        vmax = top if top > 0 else 1.0
    mesh = ax_map.pcolormesh(
        time_edges(t[shown], log),
        r_edges,
        density[shown].T,
        shading="flat",
        cmap="viridis",
        vmin=0.0,
        vmax=vmax,
        rasterized=True,
    )
    clipped = top > vmax
    fig.colorbar(mesh, ax=ax_map, extend="max" if clipped else "neither", label="density of r")
    set_time_axis(ax_map, log, not shown.all())
    ax_map.set_ylabel("r")
    ax_map.set_title(
        f"density of r (colours clipped at {CLIP_QUANTILE:.0%} quantile)"
        if clipped
        else "density of r"
    )

    # (2) risk against t
    risk = np.asarray(result["risk"], dtype=float)
    ax_risk.plot(t[shown], risk[shown], marker="." if shown.sum() <= 60 else None, color="C0")
    set_time_axis(ax_risk, log, not shown.all())
    positive = risk[shown][np.isfinite(risk[shown])]
    if positive.size and positive.min() > 0 and positive.max() / positive.min() > 100:
        ax_risk.set_yscale("log")
    ax_risk.set_ylabel("risk")
    title = "risk"
    if "mass" in result.fields and result["mass"].size:
        mass = np.asarray(result["mass"], dtype=float)
        title += f"  (max |mass - mass(t0)| = {np.nanmax(np.abs(mass - mass[0])):.2g})"
    ax_risk.set_title(title)
    ax_risk.grid(True, which="both", alpha=0.3)

    # (3) density profiles at ~5 times as step curves
    indices = profile_indices(t)
    cmap = colormaps["viridis"]
    for j, k in enumerate(indices):
        colour = cmap(0.9 * j / max(len(indices) - 1, 1))  # 0.9: skip the pale yellow end
        ax_prof.stairs(density[k], r_edges, color=colour, label=f"t = {t[k]:.3g}")
    ax_prof.set_xlabel("r")
    ax_prof.set_ylabel("density of r")
    ax_prof.set_title("density of r at selected times")
    ax_prof.legend(fontsize="small")


def plot_equilibrium(result: Result, fig: Figure) -> None:
    """The Gibbs density of r on a linear and on a logarithmic scale (its tails)."""
    require(result, ("density",), ("r_edges",))
    r_edges = np.asarray(result.grid["r_edges"], dtype=float)
    rho = np.asarray(result["density"], dtype=float)[-1]
    if rho.shape != (r_edges.size - 1,):
        raise DataError(f"{result.path}: density has shape {rho.shape}, expected "
                        f"{(r_edges.size - 1,)}; re-run the solve")
    ax_lin, ax_log = fig.subplots(1, 2)
    for ax, log in ((ax_lin, False), (ax_log, True)):
        ax.stairs(rho, r_edges, color="C0")
        ax.set_xlabel("r")
        ax.set_ylabel("density of r")
        ax.grid(True, which="both", alpha=0.3)
        if log:
            positive = rho[rho > 0]
            if positive.size:
                ax.set_yscale("log")
                ax.set_ylim(max(positive.min(), positive.max() * 1e-16), positive.max() * 2)
    ax_lin.set_title("Gibbs fixed point: density of r" + (
        f"  ({equilibrium_caption(result)})" if equilibrium_caption(result) else ""))
    ax_log.set_title("density of r (log scale: the tails)")
