"""``solver.method``: auto is Lagrangian without noise and finite volumes with noise; a Lagrangian
run with noise is refused in one line (the Lagrangian solvers carry no diffusion)."""

from __future__ import annotations

import pytest

from meanfield_pde import default_config
from meanfield_pde.cli import main
from meanfield_pde.errors import ConfigError
from meanfield_pde.problems.base import resolve_method

PROBLEMS = ("gaussians", "single-neuron")


@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize(("method", "beta", "want"), [
    ("auto", "inf", "lagrangian"), ("auto", "10", "fv"), ("fv", "inf", "fv"),
    ("fv", "10", "fv"), ("lagrangian", "inf", "lagrangian")])
def test_resolution(problem, method, beta, want):
    cfg = default_config(problem).with_overrides([f"solver.method={method}",
                                                  f"noise.beta={beta}", "noise.lam=0.1"])
    assert resolve_method(cfg) == want


@pytest.mark.parametrize("problem", PROBLEMS)
def test_lagrangian_with_noise_is_refused(problem, tmp_path, capsys):
    out = tmp_path / "x.h5"
    code = main(["solve", problem, "-q", "-o", str(out), "--set", "solver.method=lagrangian",
                 "--set", "noise.beta=10", "--set", "noise.lam=0.1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and not out.exists()
    assert "solver.method" in err and "noise.beta" in err and "\n" not in err
    with pytest.raises(ConfigError):
        resolve_method(default_config(problem).with_overrides(
            ["solver.method=lagrangian", "noise.beta=10", "noise.lam=0.1"]))


def test_unknown_method_is_refused(capsys):
    assert main(["config", "gaussians", "--set", "solver.method=spectral"]) == 2
    err = capsys.readouterr().err
    assert "solver.method" in err and "lagrangian" in err
