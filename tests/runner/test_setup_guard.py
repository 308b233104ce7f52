"""Setup phases (the pilot runs that size the automatic walls or grade the mass cells) honour
SIGINT/SIGTERM and have a step budget (issue 18: the single-neuron pilot spun forever)."""

import signal

import pytest
from helpers import NEURON_SMALL, config

from meanfield_pde.errors import SolverError
from meanfield_pde.problems import build_problem
from meanfield_pde.runner import trackers
from meanfield_pde.runner.trackers import SetupInterrupted, StopFlag, watching


class SetAfter(StopFlag):
    """A stop flag that becomes set (as by SIGTERM) after ``n`` looks."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def __bool__(self) -> bool:
        self.n -= 1
        if self.n < 0:
            self.signum = signal.SIGTERM
        return self.signum is not None


CASES = {
    "single-neuron fv": ("single-neuron", "solver.method=fv", *NEURON_SMALL, "time.t_end=1e6"),
    "single-neuron characteristics": ("single-neuron", "time.t_end=1e6"),
    "gaussians fv": ("gaussians", "solver.method=fv", "time.t_end=1e6"),
    "gaussians mass cells": ("gaussians", "time.t_end=1e6"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_signal_stops_the_pilot(case):
    problem, *sets = CASES[case]
    with pytest.raises(SetupInterrupted) as err, watching(SetAfter(3)):
        build_problem(config(problem, *sets))
    assert "nothing was written" in str(err.value) and err.value.exit_code == 143


def test_the_pilot_has_a_step_budget(monkeypatch):
    monkeypatch.setattr(trackers, "PILOT_MAX_STEPS", 50)
    with pytest.raises(SolverError) as err:
        build_problem(config("single-neuron", "solver.method=fv", *NEURON_SMALL,
                             "time.t_end=1e6"))
    assert "more than 50 steps" in str(err.value) and "grid.a_min" in str(err.value)


def test_the_cli_exits_with_the_signal_code_and_one_line(monkeypatch, capsys):
    from meanfield_pde import cli

    def interrupted(*_args, **_kwargs):
        raise SetupInterrupted("the pilot run that sizes the automatic wall", signal.SIGINT)

    monkeypatch.setattr("meanfield_pde.runner.pde.solve", interrupted)
    assert cli.main(["solve", "gaussians", "-q"]) == 130
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "during the pilot run" in err and "resume" not in err
