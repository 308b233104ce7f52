"""The phase diagram of a sweep directory with one varied key (curves) and with three (heatmap
over the first two at the first value of the third), from points run in this process."""

from __future__ import annotations

import pytest
from sweep_helpers import quick_config

from meanfield_pde.errors import DataError
from meanfield_pde.sweeps.plot import plot_sweep
from meanfield_pde.sweeps.points import make_points
from meanfield_pde.sweeps.table import build_table, point_paths, write_table
from meanfield_pde.sweeps.task import run_point


def _sweep_dir(path, vary):
    path.mkdir(parents=True)
    cfg = quick_config()
    pts = make_points(cfg, vary)
    for p, file in zip(pts, point_paths(pts, list(vary), path), strict=True):
        if p.config is not None:
            run_point("solve", p.config.to_dict(), str(file), "r")
    write_table(build_table(cfg, vary, pts, path, "solve"), path)
    return path


@pytest.mark.parametrize("vary", [
    {"model.delta": [0.6, 0.8]},
    {"model.delta": [0.6, 0.8], "model.d": [20, -3], "schedule.xi0": [1.0]},
])
def test_phase_diagram_is_written(tmp_path, vary):
    d = _sweep_dir(tmp_path / "sw", vary)
    out = plot_sweep(d, tmp_path / "fig.png")
    assert out.stat().st_size > 5000


def test_nothing_to_plot_is_one_line(tmp_path):
    d = _sweep_dir(tmp_path / "sw", {"model.d": [-3, -4]})
    with pytest.raises(DataError, match="no point of the sweep .* has finished"):
        plot_sweep(d, tmp_path / "fig.png")
    with pytest.raises(DataError, match="cannot tell the figure format"):
        plot_sweep(d, tmp_path / "fig.jpg")
