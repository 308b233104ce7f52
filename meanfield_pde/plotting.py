"""Figures of solved results (PNG, PDF or SVG via matplotlib's non-interactive canvases).

:func:`plot_result` dispatches on ``result.problem`` through the :data:`PLOTTERS` registry
(time-dependent runs) or :data:`EQUILIBRIUM_PLOTTERS` (Gibbs fixed points of
``meanfield-pde gibbs``: one state, drawn as densities and marginals, with no time axis); each
plotter draws one problem's fields into a matplotlib ``Figure``.  The file format follows the
extension of the output path (:data:`FORMATS`).
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

from meanfield_pde.errors import DataError
from meanfield_pde.io import Result

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["EQUILIBRIUM_PLOTTERS", "FORMATS", "PLOTTERS", "plot_result"]

DPI = 120
CLIP_QUANTILE = 0.99  # colour scale of density heatmaps saturates above this quantile
N_PROFILES = 5  # density profiles drawn: first, last and log-spaced ones in between
LOG_TIME_DECADES = 2.0  # time axes are logarithmic when positive times span more decades


# --------------------------------------------------------------------------------------
# helpers shared by plotters
# --------------------------------------------------------------------------------------


def _require(result: Result, fields: tuple[str, ...], grid: tuple[str, ...]) -> None:
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


def _use_log_time(t: np.ndarray) -> bool:
    """True if the positive output times span more than LOG_TIME_DECADES decades."""
    tp = t[t > 0]
    return tp.size >= 2 and np.log10(tp[-1] / tp[0]) > LOG_TIME_DECADES


def _time_edges(t: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges around (possibly non-uniform) output times, spanning exactly [t0, tK].

    Inner edges are the (geometric, if ``log``) midpoints of neighbouring times.
    """
    if t.size == 1:  # one snapshot: a cell of unit width (log needs >= 2 times)
        return np.array([t[0] - 0.5, t[0] + 0.5])
    mids = np.sqrt(t[1:] * t[:-1]) if log else 0.5 * (t[1:] + t[:-1])
    return np.concatenate([[t[0]], mids, [t[-1]]])


def _profile_indices(t: np.ndarray, n: int = N_PROFILES) -> list[int]:
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


def _set_time_axis(ax: Axes, log: bool, hidden_zero: bool = False) -> None:
    """Label a time axis (log-scaled if ``log``; note a t <= 0 snapshot it cannot show)."""
    if log:
        ax.set_xscale("log")
    label = "t (log scale; t = 0 not shown)" if log and hidden_zero else "t (log scale)"
    ax.set_xlabel(label if log else "t")


# --------------------------------------------------------------------------------------
# plotters
# --------------------------------------------------------------------------------------


def _plot_gaussians(result: Result, fig: Figure) -> None:
    """Density of r over time (heatmap), risk against t, and density profiles at ~5 times."""
    from matplotlib import colormaps

    _require(result, ("risk", "density"), ("r_edges", "r_centers"))
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
    log = _use_log_time(t)
    shown = t > 0 if log else np.ones(t.size, dtype=bool)  # t = 0 has no place on a log axis
    ax_map, ax_risk, ax_prof = fig.subplots(1, 3, width_ratios=[1.25, 1.0, 1.0])

    # (1) heatmap of the density of r over time, with the actual (non-uniform) times
    finite = density[shown][np.isfinite(density[shown])]
    vmax = float(np.quantile(finite, CLIP_QUANTILE)) if finite.size else 1.0
    top = float(finite.max()) if finite.size else 1.0
    if vmax <= 0:
        vmax = top if top > 0 else 1.0
    mesh = ax_map.pcolormesh(
        _time_edges(t[shown], log),
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
    _set_time_axis(ax_map, log, not shown.all())
    ax_map.set_ylabel("r")
    ax_map.set_title(
        f"density of r (colours clipped at {CLIP_QUANTILE:.0%} quantile)"
        if clipped
        else "density of r"
    )

    # (2) risk against t
    risk = np.asarray(result["risk"], dtype=float)
    ax_risk.plot(t[shown], risk[shown], marker="." if shown.sum() <= 60 else None, color="C0")
    _set_time_axis(ax_risk, log, not shown.all())
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
    indices = _profile_indices(t)
    cmap = colormaps["viridis"]
    for j, k in enumerate(indices):
        colour = cmap(0.9 * j / max(len(indices) - 1, 1))  # 0.9: skip the pale yellow end
        ax_prof.stairs(density[k], r_edges, color=colour, label=f"t = {t[k]:.3g}")
    ax_prof.set_xlabel("r")
    ax_prof.set_ylabel("density of r")
    ax_prof.set_title("density of r at selected times")
    ax_prof.legend(fontsize="small")


def _heatmap_over_time(fig: Figure, ax: Axes, t: np.ndarray, shown: np.ndarray, log: bool,
                       edges: np.ndarray, values: np.ndarray, label: str) -> None:
    """pcolormesh of values (K, n) against the output times, colours clipped at a quantile."""
    finite = values[shown][np.isfinite(values[shown])]
    vmax = float(np.quantile(finite, CLIP_QUANTILE)) if finite.size else 1.0
    top = float(finite.max()) if finite.size else 1.0
    vmax = vmax if vmax > 0 else (top if top > 0 else 1.0)
    mesh = ax.pcolormesh(_time_edges(t[shown], log), edges, values[shown].T, shading="flat",
                         cmap="viridis", vmin=0.0, vmax=vmax, rasterized=True)
    fig.colorbar(mesh, ax=ax, extend="max" if top > vmax else "neither")
    _set_time_axis(ax, log, not shown.all())
    ax.set_ylabel(label)
    ax.set_title(f"marginal density of {label}")


def _plot_single_neuron(result: Result, fig: Figure) -> None:
    """Marginals of a, s, r over time (heatmaps), risk against t, and the (s, r) marginal at
    four times."""
    _require(result, ("risk", "marginal_a", "marginal_s", "marginal_r", "density"),
             ("a_edges", "s_edges", "r_edges"))
    t = np.asarray(result.t, dtype=float)
    log = _use_log_time(t)
    shown = t > 0 if log else np.ones(t.size, dtype=bool)
    upper, lower = fig.subfigures(2, 1, height_ratios=[1.0, 1.0])
    axes = upper.subplots(1, 4)
    for ax, name in zip(axes[:3], "asr", strict=False):
        edges = np.asarray(result.grid[f"{name}_edges"], dtype=float)
        values = np.asarray(result[f"marginal_{name}"], dtype=float)
        if values.shape != (t.size, edges.size - 1):
            raise DataError(f"{result.path}: marginal_{name} has shape {values.shape}, expected "
                            f"{(t.size, edges.size - 1)}; re-run the solve")
        _heatmap_over_time(upper, ax, t, shown, log, edges, values, name)
    risk = np.asarray(result["risk"], dtype=float)
    ax = axes[3]
    ax.plot(t[shown], risk[shown], color="C0")
    _set_time_axis(ax, log, not shown.all())
    positive = risk[shown][np.isfinite(risk[shown])]
    if positive.size and positive.min() > 0 and positive.max() / positive.min() > 100:
        ax.set_yscale("log")
    ax.set_ylabel("risk")
    ax.set_title("risk")
    ax.grid(True, which="both", alpha=0.3)

    indices = _profile_indices(t, 4)
    for ax, k in zip(lower.subplots(1, len(indices)), indices, strict=True):
        _sr_marginal(lower, ax, result, k, f"(s, r) marginal at t = {t[k]:.3g}")


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


FIGSIZE = {"gaussians": (17.0, 5.0), "single-neuron": (18.0, 9.0)}


def _equilibrium_caption(result: Result) -> str:
    """Risk and free energy of a fixed point, for a panel title."""
    parts = []
    for name in ("risk", "free_energy"):
        if name in result.fields and result[name].size:
            parts.append(f"{name.replace('_', ' ')} {float(np.ravel(result[name])[-1]):.6g}")
    return ", ".join(parts)


def _log_scale_if_wide(ax: Axes, values: np.ndarray) -> None:
    positive = values[np.isfinite(values) & (values > 0)]
    if positive.size and positive.max() / positive.min() > 1e3:
        ax.set_yscale("log")
        ax.set_ylim(max(positive.min(), positive.max() * 1e-12), positive.max() * 2)


def _plot_gaussians_equilibrium(result: Result, fig: Figure) -> None:
    """The Gibbs density of r on a linear and on a logarithmic scale (its tails)."""
    _require(result, ("density",), ("r_edges",))
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
        f"  ({_equilibrium_caption(result)})" if _equilibrium_caption(result) else ""))
    ax_log.set_title("density of r (log scale: the tails)")


def _plot_single_neuron_equilibrium(result: Result, fig: Figure) -> None:
    """The marginals of a, s and r of the Gibbs fixed point and its (s, r) marginal."""
    _require(result, ("marginal_a", "marginal_s", "marginal_r", "density"),
             ("a_edges", "s_edges", "r_edges"))
    axes = fig.subplots(1, 4, width_ratios=[1.0, 1.0, 1.0, 1.25])
    for ax, name in zip(axes[:3], "asr", strict=True):
        edges = np.asarray(result.grid[f"{name}_edges"], dtype=float)
        values = np.asarray(result[f"marginal_{name}"], dtype=float)[-1]
        if values.shape != (edges.size - 1,):
            raise DataError(f"{result.path}: marginal_{name} has shape {values.shape}, "
                            f"expected {(edges.size - 1,)}; re-run the solve")
        ax.stairs(values, edges, color="C0")
        _log_scale_if_wide(ax, values)
        ax.set_xlabel({"a": "a", "s": "s = <w, w*>", "r": "r = |P w|"}[name])
        ax.set_ylabel(f"marginal density of {name}")
        ax.set_title(f"marginal of {name}")
        ax.grid(True, which="both", alpha=0.3)
    caption = _equilibrium_caption(result)
    _sr_marginal(fig, axes[3], result, -1, "(s, r) marginal" + (f"\n{caption}" if caption else ""))


EQUILIBRIUM_PLOTTERS: dict[str, Callable[[Result, Figure], None]] = {
    "gaussians": _plot_gaussians_equilibrium,
    "single-neuron": _plot_single_neuron_equilibrium,
}
"""Problem name -> function drawing a Gibbs fixed point (one state, no time axis)."""
EQUILIBRIUM_FIGSIZE = {"gaussians": (13.0, 5.0), "single-neuron": (19.0, 4.8)}

FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
"""Output file extension -> matplotlib format."""


PLOTTERS: dict[str, Callable[[Result, Figure], None]] = {
    "gaussians": _plot_gaussians,
    "single-neuron": _plot_single_neuron,
}
"""Problem name -> function drawing a result of that problem into an empty Figure."""


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
    registry = EQUILIBRIUM_PLOTTERS if equilibrium else PLOTTERS
    plotter = registry.get(result.problem)
    if plotter is None:
        raise DataError(
            f"{result.path} is of problem {result.problem!r}, which cannot be plotted; "
            f"known problems: {', '.join(sorted(registry))}"
        )
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sizes = EQUILIBRIUM_FIGSIZE if equilibrium else FIGSIZE
    fig = Figure(figsize=sizes.get(result.problem, (17.0, 5.0)), layout="constrained")
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
