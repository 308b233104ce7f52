"""A snapshot holding NaN or ±inf is never written: the run stops with a one-line SolverError and
the file keeps, readable, every snapshot before it (issue 18: a non-finite risk was appended and
the file then reported corrupt)."""

import math

import numpy as np
import pytest
from helpers import config

from meanfield_pde import load, solve
from meanfield_pde.errors import SolverError
from meanfield_pde.problems.gaussians import GaussiansProblem


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_non_finite_snapshot_stops_the_run_and_keeps_the_file(tmp_path, monkeypatch, bad):
    original = GaussiansProblem.snapshot
    calls = {"n": 0}

    def snapshot(self, state):
        snap = original(self, state)
        calls["n"] += 1
        if calls["n"] > 3:  # the main run's 2nd snapshot on (the companion's come in between)
            snap = {**snap, "risk": bad}
        return snap

    monkeypatch.setattr(GaussiansProblem, "snapshot", snapshot)
    cfg = config("gaussians", "time.t_end=0.5", "time.n_outputs=6", "lagrangian.mass_cells=10")
    with pytest.raises(SolverError) as err:
        solve(cfg, tmp_path / "r.h5")
    assert "non-finite risk" in str(err.value) and "\n" not in str(err.value)
    res = load(tmp_path / "r.h5")  # readable, digests intact
    assert 1 <= res.t.size < 6 and np.all(np.isfinite(res["risk"]))
    assert not res.complete
