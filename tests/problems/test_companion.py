"""The a-posteriori error estimate ``risk_error`` (runner/companion.py), on the toy transport
problem with a closed-form energy: first-order upwind, so a companion on half the cells and
error_order = 1 give the Richardson estimate |E_n − E_{n/2}|."""

from __future__ import annotations

import numpy as np
import pytest
import toy_problem

import meanfield_pde
from meanfield_pde.cli import main
from meanfield_pde.io import load
from meanfield_pde.problems import registry
from meanfield_pde.runner.companion import (
    PairedProblem,
    curve_error,
    curve_estimate,
    richardson_factor,
    with_companion,
)
from meanfield_pde.runner.trackers import Interrupted

NAME = "toy-companion"


class ToyWithCompanion(toy_problem.ToyTransport):
    """The toy transport with a companion on half the cells (first order: p = 1)."""

    name = NAME
    aliases = ()
    error_order = 1.0

    def companion_config(self):
        return self.config.replace({"grid.n": self.config["grid.n"] // 2})


@pytest.fixture
def toy():
    registry.register(ToyWithCompanion)
    try:
        yield ToyWithCompanion
    finally:
        registry.unregister(NAME)


class StopAfter:
    """A stop flag that is set after ``n`` polls (an interruption at a chosen moment)."""

    def __init__(self, n: int):
        self.n, self.signum = n, 2

    def is_set(self) -> bool:
        self.n -= 1
        return self.n < 0


def _cfg(n: int = 200, t_end: float = 1.0):
    return meanfield_pde.default_config(NAME).replace({"grid.n": n, "time.t_end": t_end,
                                                       "time.n_outputs": 6})


def test_richardson_factor():
    assert richardson_factor(1.0) == 1.0
    assert richardson_factor(2.0) == pytest.approx(1.0 / 3.0, rel=1e-15)
    assert richardson_factor(4.0, 4.0 / 3.0) == pytest.approx(81.0 / 175.0, rel=1e-14)


@pytest.mark.parametrize("n", [100, 400])
def test_estimate_is_honest_against_the_closed_form(toy, tmp_path, n):
    """risk_error bounds the error of the curve so far: max_{j<=k} |E_j − E_exact(t_j)| <= 3 ×
    risk_error_k <= 100 × max_{j<=k} |E_j − E_exact(t_j)| + 1e-10 at every output k."""
    cfg = _cfg(n)
    summary = meanfield_pde.solve(cfg, tmp_path / "r.h5")
    res = load(tmp_path / "r.h5")
    assert "risk_error" in res.fields and summary.risk_error_final == res["risk_error"][-1]
    exact = np.array([toy_problem.exact_energy(cfg, t) for t in res.t])
    pointwise = np.abs(res["risk"] - exact)
    actual = curve_error(res["risk"], exact)
    est = res["risk_error"]
    assert np.all(np.diff(est) >= 0.0)  # an error bar for the curve up to t_k
    # the file's estimate is the formula applied to the two stored curves
    np.testing.assert_allclose(est, curve_estimate(res["risk"], res["risk_companion"], 1.0),
                               rtol=1e-15, atol=0)
    assert np.all(actual <= 3.0 * est), (actual, est)
    assert np.all(est <= 100.0 * actual + 1e-10), (actual, est)
    # the companion's own risk is stored and is the coarser (less accurate) one
    assert np.all(np.abs(res["risk_companion"][1:] - exact[1:]) >= pointwise[1:])


def test_paired_run_resumes_bit_for_bit(toy, tmp_path, capsys):
    cfg = _cfg(120)
    ref, cut = tmp_path / "ref.h5", tmp_path / "cut.h5"
    meanfield_pde.solve(cfg, ref)
    with pytest.raises(Interrupted):
        meanfield_pde.solve(cfg, cut, stop=StopAfter(3))
    assert main(["resume", str(cut), "-q"]) == 0
    a, b = load(ref), load(cut)
    for name in ("risk", "risk_error", "risk_companion", "density"):
        np.testing.assert_array_equal(a[name], b[name])
    capsys.readouterr()
    assert main(["info", str(ref)]) == 0
    out = capsys.readouterr().out
    assert "±" in out and "a-posteriori" in out


def test_summary_line_shows_the_estimate(toy, tmp_path, capsys):
    assert main(["solve", NAME, "-o", str(tmp_path / "s.h5"), "--set", "grid.n=64"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("risk "))
    assert "±" in line


def test_no_companion_no_estimate(tmp_path):
    """A problem that names no companion runs alone and writes no risk_error."""
    registry.register(toy_problem.ToyTransport)
    try:
        p = registry.get(toy_problem.NAME)(meanfield_pde.default_config(toy_problem.NAME))
        assert with_companion(p) is p
    finally:
        registry.unregister(toy_problem.NAME)


def test_paired_state_is_both_states(toy):
    p = with_companion(registry.get(NAME)(_cfg(40)))
    assert isinstance(p, PairedProblem)
    state = p.initial_state()
    assert state.size == 40 + 20
    main_part, comp = p.split(state)
    assert main_part.size == 40 and comp.size == 20
