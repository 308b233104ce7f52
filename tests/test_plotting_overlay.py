"""`plot PDE.h5 --overlay SGD.h5`: SGD histograms over the PDE marginals at chosen times
(meanfield_pde.plot_overlay)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import one_line_cli_error, quiet_main
from matplotlib.patches import StepPatch
from plotting_results import LINEAR_TIMES, gaussians_run, gaussians_sgd, neuron_run

from meanfield_pde.errors import DataError
from meanfield_pde.plotting import plot


def _steps(ax) -> dict[str, StepPatch]:
    return {p.get_label(): p for p in ax.patches if isinstance(p, StepPatch)}


def test_gaussians_overlay_reads_both_files(tmp_path: Path) -> None:
    pde = gaussians_run(tmp_path / "pde.h5")
    sgd = gaussians_sgd(tmp_path / "sgd.h5", LINEAR_TIMES, n=400)
    fig = plot(pde, overlay=sgd, times=[0.0, 1.0, 2.0])
    axes = fig.get_axes()
    assert len(axes) == 3 and [ax.get_title() for ax in axes] == ["r, t = 0", "r, t = 1",
                                                                   "r, t = 2"]
    for ax in axes:
        steps = _steps(ax)
        assert set(steps) == {"SGD", "PDE"}
        # both are densities on the same bins: SGD's mass is 1 (the bins cover the samples),
        # the PDE's 1 up to the tails (< 1e-4 on each side) that the bins leave out
        for label, tol in (("SGD", 1e-12), ("PDE", 2e-4)):
            values, edges = steps[label].get_data()[:2]
            assert np.sum(values * np.diff(edges)) == pytest.approx(1.0, abs=tol)
    assert "N = 400" in fig.get_suptitle()


def test_different_time_grids_are_named_in_the_legend(tmp_path: Path) -> None:
    pde = gaussians_run(tmp_path / "pde.h5")
    sgd = gaussians_sgd(tmp_path / "sgd.h5", LINEAR_TIMES[::2] + 0.01)  # every 0.4, shifted
    fig = plot(pde, overlay=sgd, times=[0.2])
    labels = set(_steps(fig.get_axes()[0]))
    assert "PDE" in labels and any(lab.startswith("SGD at t = ") for lab in labels)


@pytest.mark.parametrize("size, shape", [("double", (3, 2)), ("single", (2, 3))])
def test_single_neuron_overlay_draws_a_s_r(tmp_path: Path, size: str, shape) -> None:
    pde = neuron_run(tmp_path / "pde.h5")
    sgd = neuron_run(tmp_path / "sgd.h5", sgd=True)
    fig = plot(pde, overlay=sgd, times=[0.0, 2.0], size=size)
    axes = fig.get_axes()
    assert len(axes) == shape[0] * shape[1]
    assert {ax.get_xlabel()[0] for ax in axes} == {"a", "s", "r"}  # e.g. "s = ⟨w, w*⟩"


def test_overlay_refuses_wrong_files(tmp_path: Path, capsys) -> None:
    pde = gaussians_run(tmp_path / "pde.h5")
    with pytest.raises(DataError, match="not a particle SGD"):
        plot(pde, overlay=pde)
    other = neuron_run(tmp_path / "n.h5", sgd=True)
    with pytest.raises(DataError, match="same problem"):
        plot(pde, overlay=other)
    one_line_cli_error(["plot", tmp_path / "pde.h5", "-o", tmp_path / "x.png", "--overlay",
                        tmp_path / "n.h5"], capsys, "same problem")


def test_cli_overlay(tmp_path: Path) -> None:
    gaussians_run(tmp_path / "pde.h5")
    gaussians_sgd(tmp_path / "sgd.h5", LINEAR_TIMES)
    out = tmp_path / "mmn18.png"
    assert quiet_main(["plot", str(tmp_path / "pde.h5"), "--overlay", str(tmp_path / "sgd.h5"),
                       "-o", str(out), "--times", "0,1,2"]) == 0
    assert out.stat().st_size > 10_000
