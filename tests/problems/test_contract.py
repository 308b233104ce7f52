"""The contract every registered problem keeps with the package, on tiny sizes: solve, resume
after an interruption, info, plot, sgd and validate — through the public API and the command line.

The same tests run for a problem defined only here (:mod:`toy_problem`: 1-D transport with a
closed-form potential and a known solution), registered by a fixture: the seam between the
package and its problems holds if it passes with no change to the package.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import toy_problem
from helpers import NEURON_BOX, NEURON_SMALL
from stopping import StopAfter

import meanfield_pde
from meanfield_pde import load
from meanfield_pde.cli import main
from meanfield_pde.config import default_config
from meanfield_pde.errors import ConfigError
from meanfield_pde.problems import registry
from meanfield_pde.runner.trackers import Interrupted

BUILTIN = registry.names()
TOY = toy_problem.NAME

# tiny runs: small grids with fixed walls (no pilot run), short times, few neurons
TINY = {
    "gaussians": ["grid.n=300", "grid.r_max=6", "sgd.n_neurons=40"],
    "single-neuron": [*NEURON_SMALL, *NEURON_BOX, "sgd.n_neurons=30"],
    TOY: ["grid.n=100"],
}
TIME = ["time.t_end=1", "time.n_outputs=6"]
SGD = ["sgd.eps=1e-3"]


@pytest.fixture
def toy():
    """The toy problem, registered for one test and removed after it."""
    registry.register(toy_problem.ToyTransport)
    try:
        yield toy_problem.ToyTransport
    finally:
        registry.unregister(TOY)
    assert TOY not in registry.names()


@pytest.fixture(params=[*BUILTIN, TOY])
def problem(request) -> str:
    """Every built-in problem and the toy one (registered while the test runs)."""
    if request.param == TOY:
        request.getfixturevalue("toy")
    assert request.param in TINY, f"add tiny settings of {request.param!r} to TINY"
    return request.param


def tiny(problem: str, *extra: str):
    return default_config(problem).with_overrides([*TINY[problem], *TIME, *extra])


def _set_args(problem: str, *extra: str) -> list[str]:
    return [a for item in (*TINY[problem], *TIME, *extra) for a in ("--set", item)]


def test_every_registered_problem_declares_itself():
    for name in BUILTIN:
        cls = registry.get(name)
        assert cls.name == name and cls.schema and cls.plot_run is not None
        assert all(registry.get(a) is cls for a in cls.aliases)
        assert default_config(name).problem == name


def test_registry_refuses_unknown_names_and_taken_ones(toy):
    with pytest.raises(ConfigError, match="unknown problem 'heat'.*" + TOY):
        registry.get("heat")
    assert registry.get("toy") is toy and default_config("toy").problem == TOY
    registry.register(toy)  # again: nothing happens

    class Impostor(toy):
        pass

    with pytest.raises(ValueError, match="taken"):
        registry.register(Impostor)


def test_solve_resume_info_plot(problem, tmp_path, capsys):
    """Interrupted after 3 polls and resumed, the file equals an uninterrupted run's; info
    and plot read it."""
    cfg = tiny(problem)
    ref, cut = tmp_path / "ref.h5", tmp_path / "cut.h5"
    summary = meanfield_pde.solve(cfg, ref)
    res = load(ref)
    assert res.complete and res.problem == problem and res.n_snapshots == 6
    assert abs(summary.mass_drift) < 1e-12 and summary.risk_final <= summary.risk_initial
    with pytest.raises(Interrupted, match=r"meanfield_pde\.resume\("):
        meanfield_pde.solve(cfg, cut, stop=StopAfter(3))
    assert not load(cut).complete
    assert main(["resume", str(cut), "-q"]) == 0
    again = load(cut)
    assert again.complete
    np.testing.assert_array_equal(again.t, res.t)
    for name in res.fields:
        assert np.max(np.abs(again[name] - res[name])) <= 1e-13, name
    capsys.readouterr()
    assert main(["info", str(ref)]) == 0
    out = capsys.readouterr().out
    assert f"problem   {problem}" in out and "risk" in out and f'problem = "{problem}"' in out
    png = tmp_path / "fig.png"
    assert main(["plot", str(ref), "-o", str(png)]) == 0
    assert png.stat().st_size > 10_000


def test_cli_solve_config_and_help(problem, tmp_path, capsys):
    """The command line finds the problem by name and by alias and lists it in its help."""
    cls = registry.get(problem)
    out = tmp_path / "cli.h5"
    assert main(["solve", problem, "-q", "-o", str(out), *_set_args(problem)]) == 0
    assert load(out).complete
    for name in (problem, *cls.aliases):
        assert main(["config", name, "--keys"]) == 0
        assert "time.t_end" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["solve", "--help"])
    assert problem in capsys.readouterr().out


def _refused_without_particles(argv: list[str], capsys) -> None:
    """A problem with no particle model (the toy: no network behind it) refuses SGD and
    validation in one line, exit 2, before any work."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "declares no particle model" in err and "\n" not in err


def test_sgd(problem, tmp_path, capsys):
    cls = registry.get(problem)
    out = tmp_path / "sgd.h5"
    if cls.particle_model is None:
        _refused_without_particles(["sgd", problem, "-q", "-o", str(out)], capsys)
        assert not out.exists()
        return
    assert main(["sgd", problem, "-q", "-o", str(out), *_set_args(problem, *SGD)]) == 0
    res = load(out)
    n = tiny(problem)["sgd.n_neurons"]
    coords = res[cls.particle_field]
    shape = (6, n) if len(cls.particle_coords) == 1 else (6, n, len(cls.particle_coords))
    assert res.complete and coords.shape == shape and np.all(np.isfinite(coords))
    assert res["risk"][-1] < res["risk"][0]


def test_validate(problem, tmp_path, in_process_pool, capsys):
    cls = registry.get(problem)
    out = tmp_path / "val"
    if cls.particle_model is None:
        _refused_without_particles(["validate", problem, "--widths", "16", "32", "-o", str(out)],
                                   capsys)
        assert not out.exists()
        return
    args = ["validate", problem, "--widths", "16", "32", "--seeds", "0", "--workers", "1",
            "-o", str(out), *_set_args(problem, *SGD)]
    assert main(args) == 0
    rep = json.loads((out / "validation.json").read_text())
    assert rep["problem"] == problem and [s["n"] for s in rep["summary"]] == [16, 32]
    assert set(rep["summary"][0]["w1_mean"]) == set(cls.particle_coords)
    assert (out / "validation.png").stat().st_size > 10_000


# ------------------------------------------------------------------- the toy problem's physics
def _l1_error(res, cfg) -> float:
    """L1 distance at the last output between the computed and the exact cell averages."""
    edges = res.grid["x_edges"]
    exact = toy_problem.exact_cells(cfg, edges, res.t[-1])
    return float((edges[1] - edges[0]) * np.abs(res["density"][-1] - exact).sum())


@pytest.mark.parametrize("schedule", [[], ["schedule.kind=piecewise", "schedule.times=[0.3]",
                                           "schedule.values=[2, 0.5]"]],
                         ids=["constant", "piecewise"])
def test_toy_converges_to_its_exact_solution_at_first_order(toy, schedule, tmp_path):
    """ρ(t, x) = e^{I} ρ_0(x e^{I}), computed by upwind fluxes and forward Euler: the scheme's
    leading error is the numerical diffusion (h/2) |u| (1 − ν) ρ_x (ν = |u| dt / h), so the L1
    error at t is at most (h/2) ∫_0^t ||∂_x(|u| ∂_x ρ)||_1 ds to first order (L1-contractive
    transport), and halves with h."""
    errors = []
    for n in (200, 400, 800):
        path = tmp_path / f"n{n}.h5"
        cfg = default_config(TOY).with_overrides([f"grid.n={n}", "time.t_end=0.5", *schedule])
        summary = meanfield_pde.solve(cfg, path)
        assert abs(summary.mass_drift) < 1e-13 and summary.min_density >= 0.0
        res = load(path)
        h = 2.0 * cfg["grid.x_max"] / n
        err, bound = _l1_error(res, cfg), toy_problem.diffusion_bound(cfg, h, res.t[-1])
        assert 0.7 * bound < err <= bound, (n, err, bound)  # 1 − ν >= 0.75 where the mass is
        errors.append(err)
        # the energy E = (m² + s²) e^{-2I} / 2 at every output, to first order as well
        exact = np.array([toy_problem.exact_energy(cfg, t) for t in res.t])
        assert np.max(np.abs(res["risk"] - exact)) < 0.25 * h  # measured: 0.11 h
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(np.abs(orders - 1.0) < 0.1), (errors, orders)


def test_toy_is_unknown_outside_its_fixture():
    assert TOY not in registry.names() and registry.canonical("toy") is None
