"""The figure of ``validate`` (``validation.png``): how close SGD at width N is to the PDE.

Top row, from the report's per-run data (every width and every seed):

* the risk R(t) of the PDE and of SGD at each width (line: mean over seeds; band: min–max over
  seeds, drawn with two or more seeds);
* the gap |R_SGD(t) − R_PDE(t)| against t on a log scale, one line per width (mean over seeds,
  min–max band), the PDE risk interpolated linearly at the SGD output times as in the report;
* sup_t |R_SGD − R_PDE| against N on log-log axes (mean over seeds with min–max bars) and the
  fitted C N^(−p) with the report's ``gap_decay_exponent`` p ± its standard error (three or more
  widths), next to the reference slope N^(−1/2).

Below, one row per particle coordinate: the largest width's particles (first seed) over the
PDE's marginal at three times, both on the same bins (each panel its own, over the range of
its mass and particles) with the PDE's mass per bin taken from its CDF
(:mod:`meanfield_pde.plot_overlay`), so a mass concentrating at r → 0 is not drawn as a
grid-dependent spike.  Double-column width (7.2 in) with the package's print fonts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .plot_overlay import _bins, _panel
from .plotting import STYLE, coord_label, new_figure, save_figure, time_axis

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from .io import Result

TOP_HEIGHT = 2.5  # inches of the risk / gap row
ROW_HEIGHT = 2.0  # inches per histogram row


def _by_width(report: dict, runs: list[dict]) -> dict[int, dict]:
    """Per width: the SGD output times (of the first seed), the risk of every seed on them
    (rows) and the sup gaps of every seed (from the report's ``runs``)."""
    out = {}
    for n in report["widths"]:
        rs = [r for r in runs if r["n"] == n]
        t = np.asarray(rs[0]["t"], dtype=float)
        risk = np.array([np.interp(t, r["t"], r["risk"]) for r in rs])
        sups = np.array([r["sup_risk_gap"] for r in report["runs"] if r["n"] == n])
        out[n] = {"t": t, "risk": risk, "sup": sups}
    return out


def _band(ax: Axes, t: np.ndarray, rows: np.ndarray, colour: str, label: str,
          positive: bool = False) -> None:
    """Mean of ``rows`` over seeds as a line, their min–max as a band (two or more rows);
    ``positive``: only values > 0 (for a log axis)."""
    mean, lo, hi = rows.mean(axis=0), rows.min(axis=0), rows.max(axis=0)
    keep = mean > 0 if positive else np.ones(t.size, dtype=bool)
    ax.plot(t[keep], mean[keep], color=colour, label=label)
    if rows.shape[0] > 1:
        ok = keep & (lo > 0) if positive else keep
        ax.fill_between(t[ok], lo[ok], hi[ok], color=colour, alpha=0.2, linewidth=0)


def _risk_panels(ax_risk: Axes, ax_gap: Axes, pde: Result, data: dict[int, dict]) -> None:
    """R(t) of the PDE and of every width; |R_SGD − R_PDE|(t) per width on a log scale."""
    t_pde = np.asarray(pde.t, dtype=float)
    r_pde = np.asarray(pde["risk"], dtype=float)
    ax_risk.plot(t_pde, r_pde, color="k", lw=1.8, label="PDE")
    for i, (n, d) in enumerate(data.items()):
        _band(ax_risk, d["t"], d["risk"], f"C{i}", f"N = {n}")
        gap = np.abs(d["risk"] - np.interp(d["t"], t_pde, r_pde)[None, :])
        _band(ax_gap, d["t"], gap, f"C{i}", f"N = {n}", positive=True)
    for ax in (ax_risk, ax_gap):
        time_axis(ax, t_pde)
        ax.grid(True, which="major", alpha=0.3)
    positive = r_pde[np.isfinite(r_pde) & (r_pde > 0)]
    if positive.size and positive.max() / positive.min() > 100:  # as plotting.plot_energy
        ax_risk.set_yscale("log")
    ax_risk.set_ylabel("risk R(t)")
    ax_risk.set_title("risk")
    ax_risk.legend(loc="upper right")
    ax_gap.set_yscale("log")
    ax_gap.set_ylabel("|R_SGD(t) − R_PDE(t)|")
    ax_gap.set_title("risk gap over time")


def _decay_panel(ax: Axes, report: dict, data: dict[int, dict]) -> None:
    """sup_t gap against N (log-log; mean over seeds, min–max bars), the fitted C N^(−p) (red,
    p ± stderr in the title) and the N^(−1/2) reference through the smallest width's mean."""
    ns = np.array(list(data), dtype=float)
    mean = np.array([d["sup"].mean() for d in data.values()])
    lo = mean - np.array([d["sup"].min() for d in data.values()])
    hi = np.array([d["sup"].max() for d in data.values()]) - mean
    ax.errorbar(ns, mean, yerr=[lo, hi], fmt="o", color="k", ms=4, capsize=2)
    grid = np.geomspace(ns.min(), ns.max(), 50)
    p, se = report.get("gap_decay_exponent"), report.get("gap_decay_exponent_stderr")
    if p is not None and np.all(mean > 0):
        c = np.exp(np.mean(np.log(mean) + p * np.log(ns)))  # the least-squares intercept
        ax.plot(grid, c * grid ** -p, "C3-")
    if mean[0] > 0:
        ref = mean[0] * (grid / ns[0]) ** -0.5
        ax.plot(grid, ref, "k:", lw=1)
        mid = grid.size // 2
        ax.annotate(r"$\propto N^{-1/2}$", (grid[mid], ref[mid]), xytext=(2, 3),
                    textcoords="offset points", ha="left", va="bottom")
    _log_log(ax, ns)
    ax.set_xlabel("width N")
    ax.set_ylabel("sup_t |R_SGD − R_PDE|")
    ax.set_title(rf"sup gap $\propto N^{{-p}}$: p = {p:.2f}±{se:.2f}" if p is not None
                 else "sup gap against N (a fit needs ≥ 3 widths)")
    ax.grid(True, which="major", alpha=0.3)


def _log_log(ax: Axes, ns: np.ndarray) -> None:
    """Log-log axes with the widths as the x ticks, plain numbers, no minor tick labels (which
    collide at print size)."""
    from matplotlib.ticker import FixedLocator, LogLocator, NullFormatter, ScalarFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(FixedLocator(ns))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(ns.min() / 1.3, ns.max() * 1.3)


def _histogram_row(axes, pde: Result, run: dict, row: int, coord: str, field: str,
                   picks: list[int]) -> None:
    """The particles' coordinate ``coord`` over the PDE marginal ``field`` at outputs ``picks``."""
    coords = np.asarray(run["coords"])
    t_run = np.asarray(run["t"], dtype=float)
    edges = np.asarray(pde.grid[f"{coord}_edges"], dtype=float)
    dens = np.asarray(pde[field], dtype=float)
    near = [int(np.argmin(np.abs(t_run - pde.t[k]))) for k in picks]
    values = [coords[j] if coords.ndim == 2 else coords[j][:, row] for j in near]
    for col, (k, x) in enumerate(zip(picks, values, strict=True)):
        ax = axes[col]  # bins of this panel's own range: an early, narrow law gets fine bins
        _panel(ax, edges, dens[k], x, _bins(edges, dens[[k]], x), "density", f"SGD N = {x.size}")
        ax.set_title(f"{coord}, t = {pde.t[k]:.3g}")
        ax.set_xlabel(coord_label(pde, coord))
        if col == 0:
            ax.set_ylabel(f"density, per unit {coord}")


def draw(report: dict, pde: Result, idx: np.ndarray, runs: list[dict],
         marginal_fields: dict[str, str], out: Path) -> Path:
    """Write the figure (module docstring) of ``report`` to ``out``; ``runs`` are the SGD runs
    with ``t``, ``risk``, ``coords`` (as :func:`meanfield_pde.validation.validate` reads them),
    ``idx`` the PDE outputs compared, ``marginal_fields`` coordinate -> PDE marginal field."""
    from matplotlib import rc_context

    names = list(marginal_fields)
    data = _by_width(report, runs)
    with rc_context(STYLE):
        fig = new_figure("double", TOP_HEIGHT + ROW_HEIGHT * len(names))
        grid = fig.add_gridspec(1 + len(names), 3, height_ratios=[TOP_HEIGHT]
                                + [ROW_HEIGHT] * len(names))
        top = [fig.add_subplot(grid[0, c]) for c in range(3)]
        _risk_panels(top[0], top[1], pde, data)
        _decay_panel(top[2], report, data)
        seed = report["seeds"][0]
        largest = max(report["widths"])
        run = next(r for r in runs if r["n"] == largest and r["seed"] == seed)
        picks = [int(idx[len(idx) // 4]), int(idx[len(idx) // 2]), int(idx[-1])]
        for row, x in enumerate(names):
            axes = [fig.add_subplot(grid[1 + row, c]) for c in range(3)]
            _histogram_row(axes, pde, run, row, x, marginal_fields[x], picks)
            if row == 0:  # one legend for all histograms, below them: none covers a bar
                fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center",
                           ncol=2)
        seeds = report["seeds"]
        fig.suptitle(f"{report['problem']}: PDE against particle SGD (eps = {report['eps']:g}, "
                     f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''} per width; "
                     f"histograms: N = {largest}, seed {seed})\n"
                     "lines: mean over seeds; bands and bars: min–max over seeds")
    return save_figure(fig, out)
