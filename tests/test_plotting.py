"""Tests of the result figures (meanfield_pde.plotting)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import run_python

from meanfield_pde.errors import DataError
from meanfield_pde.io import Result, ResultWriter, load
from meanfield_pde.plotting import DPI, SIZES, plot_result
from meanfield_pde.problems import registry

N = 120
WIDTH = round(SIZES["double"] * DPI)  # default figure width (inches) x dpi


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
    assert image.shape[1] == WIDTH and 0.2 * WIDTH < image.shape[0] < 2 * WIDTH
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_unknown_problem(tmp_path: Path) -> None:
    result = gaussians_result(tmp_path / "run.h5", LINEAR_TIMES, problem="heat-equation")
    with pytest.raises(DataError, match="heat-equation.*gaussians") as exc:
        plot_result(result, tmp_path / "run.png")
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "run.png").exists()


def test_single_neuron_needs_its_fields(tmp_path: Path) -> None:
    assert registry.get("single-neuron").plot_run is not None
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
    code = "import sys, meanfield_pde.io, meanfield_pde.plotting\n"
    code += "assert 'matplotlib' not in sys.modules, 'matplotlib imported'\n"
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr


def _gibbs_result(path: Path, problem: str) -> Result:
    """A synthetic Gibbs fixed point (one snapshot, attribute solution = gibbs_fixed_point)."""
    fields: dict = {"risk": (), "free_energy": ()}
    if problem == "gaussians":
        edges = np.linspace(0.0, 4.0, N + 1)
        c = 0.5 * (edges[1:] + edges[:-1])
        grid = {"r_edges": edges, "r_centers": c}
        rho = c**3 * np.exp(-4.0 * c * c)
        rho /= rho.sum() * (edges[1] - edges[0])
        values = {"density": rho}
    else:
        shape = (6, 10, 12)
        grid = {f"{x}_edges": np.linspace(lo, hi, n + 1)
                for x, lo, hi, n in zip("asr", (-1.0, -1.0, 0.0), (1.0, 1.0, 1.0), shape,
                                        strict=True)}
        ca, cs, cr = (0.5 * (grid[f"{x}_edges"][1:] + grid[f"{x}_edges"][:-1]) for x in "asr")
        rho = np.exp(-4 * ca[:, None, None] ** 2 - 9 * cs[None, :, None] ** 2
                     - 20 * (cr[None, None, :] - 0.4) ** 2)
        h = [grid[f"{x}_edges"][1] - grid[f"{x}_edges"][0] for x in "asr"]
        rho /= rho.sum() * h[0] * h[1] * h[2]
        values = {"density": rho, "marginal_a": rho.sum(axis=(1, 2)) * h[1] * h[2],
                  "marginal_s": rho.sum(axis=(0, 2)) * h[0] * h[2],
                  "marginal_r": rho.sum(axis=(0, 1)) * h[0] * h[1]}
    fields.update({k: v.shape for k, v in values.items()})
    w = ResultWriter(path, problem=problem, grid=grid, fields=fields,
                     config={"model": {"d": 10}, "noise": {"beta": 10.0, "lam": 0.1}},
                     attrs={"solution": "gibbs_fixed_point"})
    w.append(0.0, {"risk": 0.3, "free_energy": -1.0, **values})
    w.finish(wall_seconds=0.1)
    return load(path)


@pytest.mark.parametrize("problem", ["gaussians", "single-neuron"])
def test_gibbs_fixed_point_is_drawn_as_an_equilibrium(tmp_path: Path, problem: str) -> None:
    """A gibbs result (one state) is drawn without a time axis (single-neuron used to raise
    TypeError: 'Axes' object is not iterable)."""
    result = _gibbs_result(tmp_path / "g.h5", problem)
    out = plot_result(result, tmp_path / "g.png")
    import matplotlib.image

    image = matplotlib.image.imread(out)
    assert image[..., :3].std() > 0.05
    assert image.shape[1] == WIDTH and 0.2 * WIDTH < image.shape[0] < 2 * WIDTH


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".pdf", b"%PDF"),
                                           (".svg", b"<?xml"), (".PDF", b"%PDF")])
def test_format_follows_the_extension(tmp_path: Path, suffix: str, magic: bytes) -> None:
    result = gaussians_result(tmp_path / "run.h5", LINEAR_TIMES)
    out = plot_result(result, tmp_path / f"fig{suffix}")
    assert out.read_bytes()[: len(magic)] == magic


@pytest.mark.parametrize("name", ["fig.jpg", "fig", "fig.png.txt"])
def test_unknown_extension_is_refused(tmp_path: Path, name: str) -> None:
    result = gaussians_result(tmp_path / "run.h5", LINEAR_TIMES)
    with pytest.raises(DataError, match=r"\.png, \.pdf, \.svg") as exc:
        plot_result(result, tmp_path / name)
    assert "\n" not in str(exc.value) and not (tmp_path / name).exists()
