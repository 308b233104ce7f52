"""Tests of the result figures (meanfield_pde.plotting)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from meanfield_pde.errors import DataError
from meanfield_pde.plotting import PLOTTERS, plot_result
from meanfield_pde.storage import Result, ResultWriter, load

ROOT = Path(__file__).resolve().parents[1]
N = 120
WIDTH, HEIGHT = 17 * 120, 5 * 120  # figure size (inches) x dpi


def gaussians_result(path: Path, times: np.ndarray, problem: str = "gaussians") -> Result:
    """A synthetic 'gaussians' result: a Gaussian in r that moves right and narrows."""
    edges = np.linspace(0.0, 4.0, N + 1)
    centers = 0.5 * (edges[1:] + edges[:-1])
    w = ResultWriter(
        path,
        problem=problem,
        config={"model": {"d": 10, "sigma": 0.5, "activation": "relu"}, "grid": {"n": N}},
        grid={"r_edges": edges, "r_centers": centers},
        fields={"risk": (), "mass": (), "density": (N,)},
    )
    t_end = times[-1]
    for t in times:
        s = t / t_end if t_end > 0 else 0.0
        mean, width = 1.0 + 2.0 * s, 0.5 * (1.0 - s) + 0.02  # concentrates at the end
        rho = np.exp(-0.5 * ((centers - mean) / width) ** 2)
        rho /= rho.sum() * (edges[1] - edges[0])
        w.append(t, {"risk": 0.5 * np.exp(-5.0 * s) + 1e-4, "mass": 1.0, "density": rho})
    w.finish(wall_seconds=0.1)
    return load(path)


LOG_TIMES = np.concatenate([[0.0], np.geomspace(1e-3, 1e2, 40)])  # non-uniform, 5 decades
LINEAR_TIMES = np.linspace(0.0, 3.0, 31)


@pytest.mark.parametrize(
    "times",
    [LOG_TIMES, LINEAR_TIMES, np.array([0.0])],
    ids=["log-times", "linear-times", "one-snapshot"],
)
def test_plot_gaussians(tmp_path: Path, times: np.ndarray) -> None:
    result = gaussians_result(tmp_path / "run.h5", times)
    out = plot_result(result, tmp_path / "figs" / "run.png")  # parent is created
    assert out == tmp_path / "figs" / "run.png" and out.is_file()
    assert out.stat().st_size > 10_000

    import matplotlib.image

    image = matplotlib.image.imread(out)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert image.shape[:2] == (HEIGHT, WIDTH)
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_unknown_problem(tmp_path: Path) -> None:
    result = gaussians_result(tmp_path / "run.h5", LINEAR_TIMES, problem="heat-equation")
    with pytest.raises(DataError, match="heat-equation.*gaussians") as exc:
        plot_result(result, tmp_path / "run.png")
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "run.png").exists()


def test_single_neuron_needs_its_fields(tmp_path: Path) -> None:
    assert "single-neuron" in PLOTTERS
    result = gaussians_result(tmp_path / "run.h5", LINEAR_TIMES, problem="single-neuron")
    with pytest.raises(DataError, match="marginal_a") as exc:
        plot_result(result, tmp_path / "run.png")
    assert "\n" not in str(exc.value)


def test_missing_field(tmp_path: Path) -> None:
    result = gaussians_result(tmp_path / "run.h5", LINEAR_TIMES)
    del result.fields["density"]
    with pytest.raises(DataError, match="density") as exc:
        plot_result(result, tmp_path / "run.png")
    assert "\n" not in str(exc.value)


def test_numerics_do_not_import_matplotlib() -> None:
    code = "import sys, meanfield_pde.storage, meanfield_pde.plotting\n"
    code += "assert 'matplotlib' not in sys.modules, 'matplotlib imported'\n"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
