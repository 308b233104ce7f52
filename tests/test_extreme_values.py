"""Extreme config values end in a result that means what was asked, or a one-line ConfigError
stating the accepted range (issue 18, items 11 and 12):

* SGD with ``sgd.batch = 1e6`` ran silently to t = 100 (one step of B ε = 100 past t_end = 20);
  ``sgd.eps = 1e-300`` silently ran zero steps (the step count overflowed int64). The run's
  budget (last step within 1% of t_end, work <= MAX_WORK) is checked before any step and before
  the result file is created.
* ``time.t_end = 5e-324`` stored 2 snapshots of the 201 asked for: output times that floating
  point cannot tell apart are refused at validation.
* ``noise.beta = 1e300`` with λ > 0 raised numpy's LinAlgError from the Gibbs Newton step (in
  ``gibbs`` and in the wall pilot of ``solve``).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from helpers import config, one_line_cli_error

from meanfield_pde.config import MIN_OUTPUT_SPACING, default_config
from meanfield_pde.errors import ConfigError
from meanfield_pde.particles import ParticleSGD
from meanfield_pde.particles.sgd import MAX_OVERSHOOT, MAX_WORK
from meanfield_pde.schedule import output_times

PROBLEMS = ("gaussians", "single_neuron")


def _budget(cfg) -> np.ndarray:
    """The output steps of ``cfg``'s SGD run (where the budget is checked)."""
    return ParticleSGD(cfg).output_steps(output_times(cfg), cfg["time.t_end"])


# -------------------------------------------------------------------------------- 11a: SGD
def test_a_step_past_t_end_is_refused(tmp_path, capsys):
    path = tmp_path / "sgd.h5"
    msg = one_line_cli_error(["sgd", "gaussians", "-o", path, "--set", "sgd.batch=1000000"],
                             capsys, "sgd.batch * sgd.eps")
    assert "t = 100" in msg and f"<= {MAX_OVERSHOOT * 20:g}" in msg, msg
    assert not path.exists()  # refused before the file is created
    for over in (["sgd.eps=1e-4", "time.t_end=1e-15"], ["sgd.batch=1500", "sgd.eps=0.1"]):
        with pytest.raises(ConfigError, match=r"sgd\.batch \* sgd\.eps"):
            _budget(config("gaussians", *over))


@pytest.mark.parametrize("problem", PROBLEMS)
def test_steps_within_the_limit_or_a_whole_fraction_of_t_end_pass(problem):
    t_end = 20.0
    at_limit = config(problem, f"time.t_end={t_end}", f"sgd.eps={MAX_OVERSHOOT * t_end}")
    assert _budget(at_limit)[-1] == round(1 / MAX_OVERSHOOT)  # 100 steps, exactly to t_end
    whole = config(problem, f"time.t_end={t_end}", "sgd.batch=1000", "sgd.eps=0.005")
    assert _budget(whole)[-1] == 4  # B eps = 5 = t_end / 4: lands on t_end


@pytest.mark.parametrize("eps", ["1e-300", "5e-324", "1e-9"])
def test_a_run_beyond_the_work_budget_is_refused(eps):
    with pytest.raises(ConfigError) as err:
        _budget(config("gaussians", f"sgd.eps={eps}"))
    msg = str(err.value)
    assert "sgd.eps" in msg and f"at most {MAX_WORK:.0e}" in msg and "\n" not in msg, msg


def test_the_readme_runs_fit_the_budget():
    """The largest SGD runs the README reports (validate: N = 3200, eps = 2.5e-5 to t = 20;
    the CLI example N = 200) and the defaults fit."""
    for over in (["sgd.n_neurons=3200", "sgd.eps=2.5e-5"], ["sgd.n_neurons=200"], []):
        cfg = config("gaussians", *over)
        steps = _budget(cfg)
        assert steps[-1] * cfg["sgd.eps"] == pytest.approx(cfg["time.t_end"])
    _budget(default_config("single_neuron"))


# -------------------------------------------------------------------------------- 11b: time
def _shown_bound(msg: str) -> float:
    return float(re.search(r"accepted: time\.t_end >= ([^;]+);", msg).group(1))


@pytest.mark.parametrize("problem", PROBLEMS)
def test_output_times_floating_point_cannot_tell_apart_are_refused(problem):
    cfg = default_config(problem)
    n = cfg["time.n_outputs"]
    for t_end in (5e-324, 1e-310, (n - 1) * MIN_OUTPUT_SPACING * (1 - 1e-12)):
        with pytest.raises(ConfigError) as err:
            cfg.replace({"time.t_end": t_end})
        msg = str(err.value)
        assert "time.t_end" in msg and "time.n_outputs" in msg and "\n" not in msg, msg
    bound = _shown_bound(msg)
    times = output_times(cfg.replace({"time.t_end": bound}))  # the range the message states
    assert times.size == n and np.all(np.diff(times) > 0)
    with pytest.raises(ConfigError, match="accepted: time.t_end >= 2.23e-308; raise time"):
        cfg.replace({"time.t_end": 5e-324, "time.n_outputs": 2})  # a subnormal end time
    with pytest.raises(ConfigError, match="log-spaced"):
        cfg.replace({"time.outputs": "log", "time.t_first": 1.0,
                     "time.t_end": math.nextafter(1.0, 2.0)})


def test_sgd_and_solve_refuse_a_subnormal_t_end(tmp_path, capsys):
    for command in ("sgd", "solve"):
        one_line_cli_error([command, "single_neuron", "-o", tmp_path / f"{command}.h5",
                            "--set", "time.t_end=5e-324"], capsys, "time.t_end")


# -------------------------------------------------------------------------------- 12a: beta
def test_a_huge_beta_gives_no_linalg_error_in_the_gibbs_newton_step():
    from helpers import make_problem

    for beta in ("1e100", "1e300"):  # the pilot of solve's automatic wall runs this too
        res = make_problem("gaussians", f"noise.beta={beta}", "noise.lam=0.01").gibbs()
        assert np.all(np.isfinite(res.density)) and res.floor > 1.0


@pytest.mark.parametrize("beta", ["1e100", "1e300"])
def test_gibbs_refuses_a_beta_it_cannot_resolve(tmp_path, capsys, beta):
    msg = one_line_cli_error(["gibbs", "gaussians", "-o", tmp_path / "g.h5", "--set",
                              f"noise.beta={beta}", "--set", "noise.lam=0.01"], capsys,
                             "noise.beta")
    beta_max = float(re.search(r"noise\.beta <= (\S+)", msg).group(1))
    assert 1e9 < beta_max < 1e12, msg  # measured: converges at 1e10, not at 1e11


def test_solve_with_a_huge_beta_runs(tmp_path):
    from meanfield_pde import solve

    cfg = config("gaussians", "noise.beta=1e300", "noise.lam=0.01", "time.t_end=0.5",
                 "time.n_outputs=6")
    summary = solve(cfg)
    risk = summary.result["risk"]
    assert np.all(np.isfinite(risk)) and risk[-1] < risk[0]
