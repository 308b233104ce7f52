"""Figures of solved results: paper sizes, chosen times, density / CDF / log-density views.

:func:`plot` finds the problem of ``result.problem`` in the problem registry and calls the
plotter the problem declares: ``plot_run`` for time-dependent runs, ``plot_equilibrium`` for Gibbs
fixed points of ``meanfield-pde gibbs`` (one state, no time axis).  It returns the Matplotlib
:class:`~matplotlib.figure.Figure` and saves it only when given a path (the format follows the
extension, :data:`FORMATS`).  ``overlay=`` (a particle SGD result) draws instead the SGD
histograms over the PDE marginals at chosen times (:mod:`meanfield_pde.plot_overlay`).
:func:`plot_result` is the saving wrapper kept for callers that want the written path.

Single panels for notebooks take ``ax=``: :func:`plot_energy` (risk or free energy against t),
:func:`plot_profiles` (a marginal at chosen times), :func:`plot_heatmap` (a marginal over time).

Conventions every figure follows:

* sizes: ``size="single"`` is 3.5 in wide (one journal column), ``"double"`` 7.2 in; fonts are
  8 pt or larger at that size (:data:`STYLE`);
* views (:data:`VIEWS`) of a marginal density ρ(x): ``density`` (ρ, linear colour scale up to its
  maximum: no clipping), ``cdf`` (the fraction of mass at or below x: a mass concentrating at
  r → 0 is a jump at the left, whatever the grid), ``logdensity`` (ρ on a log scale spanning
  :data:`LOG_VIEW_DECADES` decades below the maximum);
* panels that compare several times share their colour limits; every colour bar is labelled;
* t = 0 is always on the time axis: linear, or symmetric-log (linear below the first positive
  output) when the outputs are log-spaced over more than :data:`LOG_TIME_DECADES` decades;
* a noisy run (finite ``noise.beta``) has β and λ in its title and a free-energy panel.

matplotlib is imported only inside the functions, so the numerics never import it, and figures
are drawn on an Agg canvas without pyplot (the caller's backend is untouched).
"""

from __future__ import annotations

import inspect
import math
import os
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from meanfield_pde.errors import ConfigError, DataError, OutputExists
from meanfield_pde.io import Result
from meanfield_pde.plot_views import (  # re-exported: the problems' plotters import them here
    LOG_TIME_DECADES,
    LOG_VIEW_DECADES,
    N_PROFILES,
    VIEWS,
    _cmap,
    _colorbar,
    coord_label,
    default_view,
    is_noisy,
    marginal,
    mass_range,
    profile_indices,
    require,
    select_times,
    symlog_time,
    time_axis,
    time_edges,
    use_log_time,
    view_label,
    view_norm,
    view_values,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

__all__ = [
    "FORMATS", "LOG_TIME_DECADES", "LOG_VIEW_DECADES", "N_PROFILES", "SIZES", "VIEWS",
    "PlotOptions", "default_view", "equilibrium_caption", "figure_title", "heatmap_over_time",
    "is_noisy", "log_scale_if_wide", "marginal", "mass_range", "new_figure", "panel_grid", "plot",
    "plot_energy", "plot_heatmap", "plot_profiles", "plot_result", "profile_indices", "require",
    "save_figure", "select_times", "set_time_axis", "symlog_time", "time_axis", "time_edges",
    "use_log_time", "view_label", "view_norm", "view_values",
]

DPI = 200  # of PNG output: 1440 px across a double-column figure
CLIP_QUANTILE = 0.99  # kept for callers of heatmap_over_time's older contract (unused here)

FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
"""Output file extension -> matplotlib format."""
SIZES = {"single": 3.5, "double": 7.2}
"""Figure width in inches: one journal column, or the full page width."""
FONT_PT = 8.0
STYLE = {"font.size": FONT_PT, "axes.titlesize": FONT_PT, "axes.labelsize": FONT_PT,
         "xtick.labelsize": FONT_PT, "ytick.labelsize": FONT_PT, "legend.fontsize": FONT_PT,
         "figure.titlesize": FONT_PT + 1, "lines.linewidth": 1.2, "axes.linewidth": 0.6,
         "legend.frameon": False, "svg.fonttype": "none", "pdf.fonttype": 42}
"""Matplotlib rc settings of every figure (fonts >= 8 pt at print size)."""


@dataclass(frozen=True)
class PlotOptions:
    """What a plotter is asked to draw.

    Attributes:
        times: Snapshot times to show (the nearest outputs); None: first, last and log-spaced
            ones in between.
        view: One of :data:`VIEWS`; None: the problem's default.
        size: A key of :data:`SIZES`.
    """

    times: tuple[float, ...] | None = None
    view: str | None = None
    size: str = "double"

    def __post_init__(self) -> None:
        """Check view, size and times (ConfigError naming the accepted values)."""
        if self.view is not None and self.view not in VIEWS:
            raise ConfigError(f"view {self.view!r} is not one of {', '.join(VIEWS)}")
        if self.size not in SIZES:
            raise ConfigError(f"size {self.size!r} is not one of {', '.join(SIZES)}")
        if self.times is not None and (not self.times or not all(map(math.isfinite, self.times))):
            raise ConfigError("times must be a non-empty list of finite numbers, e.g. 0,1,5")

    def view_or(self, default: str) -> str:
        """The view asked for, else ``default``."""
        return self.view or default

    @property
    def width(self) -> float:
        """Figure width in inches."""
        return SIZES[self.size]


# --------------------------------------------------------------------------------------
# panels (each takes ax=; the Figure is returned)
# --------------------------------------------------------------------------------------


def _styled(fn: Callable) -> Callable:
    """Run a panel function inside the figure style (fonts of :data:`STYLE`)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        """``fn`` in the style, tick labels fixed to it."""
        with _style():
            fig = fn(*args, **kwargs)
            _finish_fonts(fig)
        return fig

    return wrapper


def _axes(ax: Axes | None, size: str = "single", height: float = 2.4) -> tuple[Figure, Axes]:
    """``ax`` and its figure, or a new one-panel figure of the given size."""
    if ax is not None:
        return ax.figure, ax
    fig = new_figure(size, height)
    return fig, fig.add_subplot()


@_styled
def plot_heatmap(result: Result, coord: str = "r", view: str = "density",
                 ax: Axes | None = None, norm: Normalize | None = None) -> Figure:
    """The marginal of ``coord`` over time (all outputs, t = 0 included) in ``view``, with a
    labelled colour bar; ``norm`` sets shared colour limits (default: this panel's own)."""
    fig, ax = _axes(ax)
    t = np.asarray(result.t, dtype=float)
    edges, values = marginal(result, coord)
    shown = view_values(values, edges, view)
    time_axis(ax, t)
    mesh = ax.pcolormesh(time_edges(t, ax=ax), edges, shown.T, shading="flat", cmap=_cmap(view),
                         norm=norm or view_norm([shown], view), rasterized=True)
    _colorbar(fig, mesh, ax, view, view_label(view, coord))
    ax.set_ylim(*mass_range(edges, values))
    ax.set_ylabel(coord_label(result, coord))
    return fig


@_styled
def plot_profiles(result: Result, coord: str = "r", times: Sequence[float] | None = None,
                  view: str = "density", ax: Axes | None = None, n: int = N_PROFILES) -> Figure:
    """The marginal of ``coord`` at the outputs nearest ``times`` (default ~``n`` spread in
    time), one curve per time coloured from dark (early) to light (late); the legend sits above
    the panel (in place of a title)."""
    from matplotlib import colormaps

    fig, ax = _axes(ax)
    t = np.asarray(result.t, dtype=float)
    edges, values = marginal(result, coord)
    indices = select_times(t, times, n)
    shown = view_values(values, edges, view)
    for j, k in enumerate(indices):
        colour = colormaps["viridis"](0.85 * j / max(len(indices) - 1, 1))
        label = f"t = {t[k]:.3g}"
        if view == "cdf":
            ax.plot(edges, np.concatenate([[0.0], shown[k]]), color=colour, label=label)
        else:
            ax.stairs(shown[k], edges, color=colour, label=label)
    if view == "logdensity":
        top = float(np.nanmax(shown[indices])) if np.isfinite(shown[indices]).any() else 1.0
        ax.set_yscale("log")
        ax.set_ylim(top * 10.0 ** -LOG_VIEW_DECADES, top * 2.0)
    ax.set_xlim(*mass_range(edges, values[indices]))
    ax.set_xlabel(coord_label(result, coord))
    ax.set_ylabel(view_label(view, coord))
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0),  # above: curves fill the panel
              ncols=len(indices) if len(indices) <= 4 else 3, handlelength=1.2,
              columnspacing=1.0, borderaxespad=0.2)
    return fig


@_styled
def plot_energy(result: Result, name: str = "risk", ax: Axes | None = None,
                band: bool = True) -> Figure:
    """``name`` (``risk`` or ``free_energy``) against t; with ``band`` the a-posteriori bound
    ``risk_error`` as a shaded band when it is visible at the plot's scale (> 0.2 % of the
    curve's range)."""
    fig, ax = _axes(ax)
    require(result, (name,), ())
    t = np.asarray(result.t, dtype=float)
    y = np.asarray(result[name], dtype=float)
    label = {"risk": "risk R", "free_energy": "free energy F"}.get(name, name)
    ax.plot(t, y, color="C0" if name == "risk" else "C3", marker="." if t.size <= 30 else None,
            label=label)
    time_axis(ax, t)
    finite = y[np.isfinite(y)]
    if finite.size and finite.min() > 0 and finite.max() / finite.min() > 100:
        ax.set_yscale("log")
    if band and name == "risk" and "risk_error" in result.fields:
        err = np.abs(np.asarray(result["risk_error"], dtype=float))
        span = float(np.ptp(finite)) if finite.size > 1 else float(np.abs(finite).max(initial=1))
        if np.isfinite(err).all() and err.max() > 2e-3 * max(span, 1e-300):
            ax.fill_between(t, y - err, y + err, color="C0", alpha=0.25, linewidth=0,
                            label="± error bound")
            ax.legend(loc="best")
    ax.set_ylabel(label)
    ax.grid(True, which="major", alpha=0.3)
    return fig


# --------------------------------------------------------------------------------------
# helpers kept for plotters written against the first contract (tests/problems/toy_problem)
# --------------------------------------------------------------------------------------


def set_time_axis(ax: Axes, log: bool, hidden_zero: bool = False) -> None:
    """Label a time axis (log-scaled if ``log``; note a t <= 0 snapshot it cannot show)."""
    if log:
        ax.set_xscale("log")
    label = "t (log scale; t = 0 not shown)" if log and hidden_zero else "t (log scale)"
    ax.set_xlabel(label if log else "t")


def heatmap_over_time(fig: Figure, ax: Axes, t: np.ndarray, shown: np.ndarray, log: bool,
                      edges: np.ndarray, values: np.ndarray, label: str) -> None:
    """pcolormesh of values (K, n) against all output times (``shown`` and ``log`` are ignored:
    t = 0 is kept on a linear or symmetric-log axis), colours up to the maximum, labelled bar."""
    del shown, log
    time_axis(ax, t)
    mesh = ax.pcolormesh(time_edges(t, ax=ax), edges, values.T, shading="flat", cmap="viridis",
                         norm=view_norm([values], "density"), rasterized=True)
    fig.colorbar(mesh, ax=ax, label=view_label("density", label))
    ax.set_ylabel(label)


def equilibrium_caption(result: Result) -> str:
    """Risk and free energy of a fixed point, for a panel title."""
    parts = []
    for name in ("risk", "free_energy"):
        if name in result.fields and result[name].size:
            parts.append(f"{name.replace('_', ' ')} {float(np.ravel(result[name])[-1]):.6g}")
    return ", ".join(parts)


def log_scale_if_wide(ax: Axes, values: np.ndarray) -> None:
    """Log y scale when the positive values span more than three decades."""
    positive = values[np.isfinite(values) & (values > 0)]
    if positive.size and positive.max() / positive.min() > 1e3:
        ax.set_yscale("log")
        ax.set_ylim(max(positive.min(), positive.max() * 1e-12), positive.max() * 2)


# --------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------


def _format_value(value: Any) -> str:
    """Short text for a config value in a title."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def figure_title(result: Result, width: float) -> str:
    """Problem, model items, the noise (β, λ) of a noisy run or Gibbs state, an incomplete-run
    note; wrapped to the figure width."""
    model = result.config.get("model")
    items = ""
    if isinstance(model, dict):
        items = ", ".join(f"{k}={_format_value(v)}" for k, v in model.items()
                          if v not in ({}, [], ""))
    title = f"{result.problem}: {items}" if items else f"{result.problem}"
    noise = result.config.get("noise") or {}
    gibbs = result.attrs.get("solution") == "gibbs_fixed_point"
    if gibbs or is_noisy(result):
        nb = "\u00a0"  # no line break inside "β = 100"
        noise_text = (f"β{nb}={nb}{_format_value(float(noise.get('beta', 'nan')))}, "
                      f"λ{nb}={nb}{_format_value(float(noise.get('lam', 0.0)))}")
        title += ("  —  Gibbs equilibrium, " if gibbs else "  —  noisy, ") + noise_text
    elif not result.complete:
        title += f"  [incomplete run: {result.t.size} snapshots]"
    return textwrap.fill(title, width=int(width * 13))


def new_figure(size: str = "double", height: float = 3.0) -> Figure:
    """An empty constrained-layout Figure of the width of ``size`` on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with _style():
        fig = Figure(figsize=(SIZES[size], height), layout="constrained")
    FigureCanvasAgg(fig)  # savefig picks the PDF / SVG backend from ``format``
    return fig


def panel_grid(fig: Figure, n: int, size: str, row_height: float = 2.3,
               width_ratios: Sequence[float] | None = None) -> list[Axes]:
    """``n`` axes on ``fig``: one column at single width, up to three per row at double width
    (``width_ratios`` when they fit in one row); the figure height follows the rows."""
    ncols = 1 if size == "single" else (n if n <= 3 else 2)
    nrows = -(-n // ncols)
    fig.set_size_inches(SIZES[size], row_height * nrows)
    ratios = width_ratios if width_ratios is not None and nrows == 1 else None
    axes = fig.subplots(nrows, ncols, squeeze=False, width_ratios=ratios).ravel()
    for ax in axes[n:]:
        ax.remove()
    return list(axes[:n])


def _style():
    """The rc context of every figure (:data:`STYLE`)."""
    import matplotlib

    return matplotlib.rc_context(STYLE)


def _finish_fonts(fig: Figure) -> None:
    """Tick labels are created when drawn: fix their size now (the caller's rc may differ)."""
    for ax in fig.get_axes():
        ax.tick_params(labelsize=FONT_PT)


def _plotter(result: Result, equilibrium: bool) -> Callable:
    """The plotter that the problem of ``result`` declares."""
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
    return getattr(problem, attr)


def _call_plotter(plotter: Callable, result: Result, fig: Figure, options: PlotOptions) -> None:
    """Call a plotter, with ``options`` when it takes a third argument (older plotters take
    (result, fig) and draw on the problem's ``figsize``)."""
    if len(inspect.signature(plotter).parameters) >= 3:
        plotter(result, fig, options)
        return
    from meanfield_pde.problems import registry

    fig.set_size_inches(registry.get(result.problem).figsize)
    plotter(result, fig)


def plot(result: Result, path: str | os.PathLike | None = None, *,
         times: Sequence[float] | None = None, view: str | None = None, size: str = "double",
         overlay: Result | None = None, overwrite: bool = False) -> Figure:
    """The figure of ``result``: its problem's run or equilibrium figure, or with ``overlay`` (a
    particle SGD result of the same problem) the SGD histograms over the PDE marginals.

    Args:
        result: A loaded PDE or Gibbs result (:func:`meanfield_pde.load`).
        path: Also save the figure there (.png, .pdf or .svg); None: only return it.
        times: Snapshot times to show (nearest outputs); None: spread over the run.
        view: ``density``, ``cdf`` or ``logdensity``; None: the problem's default.
        size: ``single`` (3.5 in wide) or ``double`` (7.2 in).
        overlay: A particle SGD result to compare with (MMN18 Fig. 1 layout).
        overwrite: Replace an existing ``path`` that is not a figure (a figure of the same
            format is always replaced; the input files never are).

    Returns:
        The Figure (on an Agg canvas; no pyplot state).

    Raises:
        ConfigError: An unknown view or size, or times outside the run.
        DataError: Unknown problem, missing fields, an SGD file given as ``result``, or a
            path that cannot be written.
    """
    options = PlotOptions(tuple(times) if times is not None else None, view, size)
    if path is not None:
        check_figure_output(Path(path), [result, overlay], overwrite)
    if result.attrs.get("kind") == "sgd":
        raise DataError(
            f"{result.path} holds particle SGD (reduced coordinates of every neuron), not a PDE "
            "solution; draw it over a PDE result with `meanfield-pde plot PDE.h5 --overlay "
            "SGD.h5`, or read it with meanfield_pde.load")
    fig = new_figure(size)
    with _style():
        if overlay is not None:
            from meanfield_pde.plot_overlay import draw_overlay

            draw_overlay(result, overlay, fig, options)
        else:
            equilibrium = result.attrs.get("solution") == "gibbs_fixed_point"
            _call_plotter(_plotter(result, equilibrium), result, fig, options)
            fig.suptitle(figure_title(result, fig.get_figwidth()))
        _finish_fonts(fig)
        if path is not None:
            save_figure(fig, path)
    return fig


def _format_of(out: Path) -> str:
    """The matplotlib format of ``out`` from its extension (DataError if unknown)."""
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise DataError(
            f"cannot tell the figure format of {out} from its extension "
            f"{out.suffix or '(none)'!r}; use one of {', '.join(FORMATS)}"
        )
    return fmt


#: the first bytes of a figure file of each format (what may be replaced without asking)
FIGURE_MAGIC = {"png": (b"\x89PNG",), "pdf": (b"%PDF",), "svg": (b"<?xml", b"<svg")}


def check_figure_output(out: Path, inputs: Sequence[Result | None], overwrite: bool) -> str:
    """The format of ``out``; refused (before any drawing) when it is one of the ``inputs``'
    files, a directory, or an existing file that is not a figure of that format unless
    ``overwrite`` (issue 18: ``plot FILE.h5 -o FILE.h5`` replaced the result file); a
    directory or a dangling symlink is named as such before the extension is looked at."""
    from .io import check_new_output

    check_new_output(out, overwrite=True)  # a directory, a dangling link, below a file
    fmt = _format_of(out)
    if not out.exists():
        return fmt
    for res in inputs:
        if res is not None and Path(res.path).exists() and os.path.samefile(out, res.path):
            raise DataError(f"{out} is an input file; choose another output path")
    try:
        with open(out, "rb") as fh:
            head = fh.read(16).lstrip()
    except OSError:
        head = b""
    if not overwrite and not head.startswith(FIGURE_MAGIC[fmt]):
        raise OutputExists(out)
    return fmt


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Save ``fig`` (format from the extension, PNG at :data:`DPI`); parents are created.

    Raises:
        DataError: An unknown extension or a path that cannot be written.
    """
    out = Path(path)
    fmt = _format_of(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=DPI, format=fmt)
    except OSError as exc:
        raise DataError(
            f"cannot write {out}: {' '.join(str(exc).split())}; check that the location is "
            "writable and the disk is not full"
        ) from exc
    return out


def plot_result(result: Result, out: str | os.PathLike, *,
                times: Sequence[float] | None = None, view: str | None = None,
                size: str = "double", overlay: Result | None = None,
                overwrite: bool = False) -> Path:
    """Draw ``result`` (:func:`plot`, same keyword options) and save it to ``out``.

    Returns:
        The path of the file written.
    """
    plot(result, out, times=times, view=view, size=size, overlay=overlay, overwrite=overwrite)
    return Path(out)
