"""The figure options of `plot` and the Figure-returning API (meanfield_pde.plotting): views,
chosen times, shared colour limits, labelled colour bars, t = 0 on the time axis, noisy titles and
free-energy panels, Gibbs equilibria, paper sizes with fonts >= 8 pt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import one_line_cli_error, quiet_main
from matplotlib.collections import PathCollection, PolyCollection, QuadMesh
from matplotlib.figure import Figure
from matplotlib.text import Text
from plotting_results import LINEAR_TIMES, LOG_TIMES, gaussians_run, neuron_run

from meanfield_pde.errors import ConfigError
from meanfield_pde.io import ResultWriter, load
from meanfield_pde.plotting import (
    FONT_PT,
    LOG_VIEW_DECADES,
    SIZES,
    new_figure,
    plot,
    plot_energy,
    plot_profiles,
)


def _panels(fig: Figure) -> list:
    """The axes of a figure that are not colour bars."""
    return [ax for ax in fig.get_axes() if not hasattr(ax, "_colorbar")]


def _colorbars(fig: Figure) -> list:
    return [ax for ax in fig.get_axes() if hasattr(ax, "_colorbar")]


def _meshes(ax) -> list[QuadMesh]:
    return [c for c in ax.collections if isinstance(c, QuadMesh)]


def test_plot_returns_a_figure_and_saves_only_when_asked(tmp_path: Path) -> None:
    result = gaussians_run(tmp_path / "run.h5")
    fig = plot(result)
    assert isinstance(fig, Figure)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".lock") == ["run.h5"]
    plot(result, tmp_path / "fig.svg")
    assert (tmp_path / "fig.svg").read_bytes()[:5] == b"<?xml"


@pytest.mark.parametrize("view", ["density", "cdf", "logdensity"])
def test_views_colour_limits_and_labels(tmp_path: Path, view: str) -> None:
    """Three panels and one labelled colour bar; the colours span the data (no clipping), [0, 1]
    for the CDF, LOG_VIEW_DECADES decades below the maximum for the log view."""
    result = gaussians_run(tmp_path / "run.h5")
    fig = plot(result, view=view)
    panels, bars = _panels(fig), _colorbars(fig)
    assert len(panels) == 3 and len(bars) == 1
    assert bars[0].get_ylabel()
    (mesh,) = _meshes(panels[0])
    top = float(np.max(result["density"]))
    expected = {"density": (0.0, top), "cdf": (0.0, 1.0),
                "logdensity": (top * 10 ** -LOG_VIEW_DECADES, top)}[view]
    assert mesh.norm.vmin == pytest.approx(expected[0]) and mesh.norm.vmax == pytest.approx(
        expected[1])
    assert panels[1].get_ylabel() == "risk R"
    assert all(ax.get_xlabel() for ax in panels)


@pytest.mark.parametrize("times, scale", [(LINEAR_TIMES, "linear"), (LOG_TIMES, "symlog")])
def test_t0_is_on_the_time_axis(tmp_path: Path, times: np.ndarray, scale: str) -> None:
    result = gaussians_run(tmp_path / "run.h5", times)
    fig = plot(result)
    heat, risk = _panels(fig)[:2]
    for ax in (heat, risk):
        assert ax.get_xscale() == scale
        assert ax.get_xlim()[0] <= 0.0
    assert risk.get_lines()[0].get_xdata()[0] == 0.0
    t_cells = _meshes(heat)[0].get_coordinates()[0, :, 0]
    assert t_cells[0] == 0.0 and t_cells.size == times.size + 1


def test_chosen_times_take_the_nearest_outputs(tmp_path: Path) -> None:
    result = gaussians_run(tmp_path / "run.h5")  # outputs every 0.2
    fig = plot(result, times=[0.0, 0.93, 2.0])
    legend = _panels(fig)[2].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["t = 0", "t = 1", "t = 2"]
    with pytest.raises(ConfigError, match="outside the outputs"):
        plot(result, times=[7.0])


@pytest.mark.parametrize("size", ["single", "double"])
def test_paper_sizes_and_fonts(tmp_path: Path, size: str) -> None:
    result = gaussians_run(tmp_path / "run.h5", noisy=True)
    fig = plot(result, size=size)
    assert fig.get_figwidth() == pytest.approx(SIZES[size])
    fig.canvas.draw()  # tick labels exist once drawn
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_text() and t.get_visible()]
    assert sizes and min(sizes) >= FONT_PT
    if size == "single":  # one column of panels
        lefts = {round(ax.get_position().x0, 3) for ax in _panels(fig)}
        assert len(lefts) == 1


def test_noisy_run_has_beta_in_title_and_a_free_energy_panel(tmp_path: Path) -> None:
    result = gaussians_run(tmp_path / "run.h5", noisy=True)
    fig = plot(result)
    title = fig.get_suptitle().replace("\u00a0", " ")  # non-breaking spaces keep β = 50 whole
    assert "β = 50" in title and "λ = 0.02" in title
    ylabels = [ax.get_ylabel() for ax in _panels(fig)]
    assert "free energy F" in ylabels and "risk R" in ylabels
    quiet = plot(gaussians_run(tmp_path / "quiet.h5"))
    assert "β" not in quiet.get_suptitle()


@pytest.mark.parametrize("error, band", [(0.05, True), (1e-9, False)])
def test_risk_error_band_when_visible(tmp_path: Path, error: float, band: bool) -> None:
    fig = plot_energy(gaussians_run(tmp_path / "run.h5", risk_error=error))
    ax = fig.get_axes()[0]
    assert any(isinstance(c, PolyCollection) for c in ax.collections) == band


def test_panels_take_ax(tmp_path: Path) -> None:
    result = gaussians_run(tmp_path / "run.h5")
    fig = new_figure("single", 2.0)
    ax1, ax2 = fig.subplots(1, 2)
    assert plot_energy(result, ax=ax1) is fig and len(ax1.get_lines()) == 1
    assert plot_profiles(result, times=[1.0], view="cdf", ax=ax2) is fig
    (line,) = ax2.get_lines()
    assert line.get_ydata()[0] == 0.0 and line.get_ydata()[-1] == pytest.approx(1.0)


@pytest.mark.parametrize("particles", [False, True])
def test_single_neuron_sr_panels_share_one_colour_scale(tmp_path: Path, particles: bool) -> None:
    result = neuron_run(tmp_path / "n.h5", particles=particles)
    fig = plot(result, view="density")
    sr = [ax for ax in _panels(fig) if ax.get_title().startswith(("particles", "(s, r)"))]
    assert len(sr) == 4
    kind = PathCollection if particles else QuadMesh
    arts = [c for ax in sr for c in ax.collections if isinstance(c, kind)]
    assert len(arts) == 4 and len({a.get_clim() for a in arts}) == 1
    bar_labels = [ax.get_ylabel() for ax in _colorbars(fig)]
    assert len(bar_labels) == 4 and all(bar_labels)  # a, s, r heatmaps + one for (s, r)


def _gibbs(path: Path):
    edges = np.linspace(0.0, 4.0, 81)
    c = 0.5 * (edges[1:] + edges[:-1])
    rho = c**3 * np.exp(-4.0 * c * c)
    rho /= rho.sum() * (edges[1] - edges[0])
    w = ResultWriter(path, problem="gaussians", grid={"r_edges": edges, "r_centers": c},
                     fields={"risk": (), "free_energy": (), "density": rho.shape},
                     config={"model": {"d": 10}, "noise": {"beta": 10.0, "lam": 0.1}},
                     attrs={"solution": "gibbs_fixed_point"})
    w.append(0.0, {"risk": 0.3, "free_energy": -1.0, "density": rho})
    w.finish(wall_seconds=0.1)
    return load(path)


def test_gibbs_result_is_an_equilibrium(tmp_path: Path) -> None:
    fig = plot(_gibbs(tmp_path / "g.h5"))
    title = fig.get_suptitle().replace("\u00a0", " ")
    assert "Gibbs equilibrium" in title and "β = 10" in title
    panels = _panels(fig)
    assert len(panels) == 2 and panels[1].get_yscale() == "log"
    assert not any(ax.get_xlabel().startswith("t") for ax in panels)


def test_cli_plot_options(tmp_path: Path, capsys) -> None:
    run = gaussians_run(tmp_path / "run.h5").path
    out = tmp_path / "fig.pdf"
    assert quiet_main(["plot", str(run), "-o", str(out), "--times", "0,1", "--view",
                       "logdensity", "--size", "single"]) == 0
    assert out.read_bytes()[:4] == b"%PDF"
    one_line_cli_error(["plot", run, "-o", tmp_path / "x.png", "--times", "0,one"], capsys,
                       "--times")
    one_line_cli_error(["plot", run, "-o", tmp_path / "x.png", "--view", "heat"], capsys,
                       "--view")
    # a directory is a sweep's: without sweep.nc it says how to make one
    one_line_cli_error(["plot", tmp_path, "-o", tmp_path / "x.png"], capsys, "sweep.nc")
