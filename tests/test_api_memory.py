"""Runs without a result file: ``solve(cfg)``, ``solve_sgd(cfg)``, ``solve_gibbs(cfg)`` keep the
result in memory (``summary.result``, the same interface as ``load``), write no file the user did
not ask for and leave no temporary file behind; with a path, the summary keeps its fields and
``summary.result`` reads the file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from helpers import config

import meanfield_pde
from meanfield_pde.errors import SolverError
from meanfield_pde.io import Result
from meanfield_pde.runner.summary import RunSummary

SMALL = ("grid.n=120", "time.t_end=0.5", "time.n_outputs=5")


@pytest.fixture
def quiet_dirs(tmp_path, monkeypatch):
    """The working directory and the temporary directory, both empty and watched."""
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    return work, tmp


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_solve_without_path_runs_in_memory(quiet_dirs, tmp_path):
    work, tmp = quiet_dirs
    cfg = config("gaussians", *SMALL)
    summary = meanfield_pde.solve(cfg)
    assert isinstance(summary, RunSummary) and summary.path is None
    res = summary.result
    assert isinstance(res, Result) and not res.lazy
    assert _files(work) == [] and _files(tmp) == []  # no runs/…h5, no temporary file left
    assert "in memory" in summary.lines()[0]
    # the same interface and values as a run written to a file and loaded
    ref = meanfield_pde.solve(cfg, tmp_path / "ref.h5")
    disk = meanfield_pde.load(ref.path)
    assert ref.result.t.tolist() == disk.t.tolist()
    np.testing.assert_array_equal(res.t, disk.t)
    assert set(res.fields) == set(disk.fields) and set(res.grid) == set(disk.grid)
    for name in disk.fields:
        np.testing.assert_array_equal(res[name], disk[name])
    assert res.config == disk.config and res.problem == "gaussians" and res.complete
    assert summary.risk_final == ref.risk_final == float(res["risk"][-1])
    mid = 0.5 * (res.t[1] + res.t[2])
    np.testing.assert_allclose(res.at(mid)["risk"], disk.at(mid)["risk"], rtol=0, atol=0)
    assert res.moments()["mass"].shape == res.t.shape
    with pytest.raises(KeyError, match="in memory"):
        res["nonexistent"]


def test_sgd_and_gibbs_without_path(quiet_dirs):
    work, tmp = quiet_dirs
    sgd = meanfield_pde.solve_sgd(config("gaussians", *SMALL, "sgd.n_neurons=16",
                                         "sgd.eps=1e-2"))
    assert sgd.path is None and sgd.result.attrs["kind"] == "sgd"
    assert sgd.result["risk"][-1] == sgd.risk_final
    noisy = config("gaussians", "grid.n=120", "noise.beta=50", "noise.lam=0.05")
    gibbs = meanfield_pde.solve_gibbs(noisy)
    assert gibbs.path is None and gibbs.result.attrs["solution"] == "gibbs_fixed_point"
    assert gibbs.result["risk"][0] == gibbs.risk
    assert meanfield_pde.sgd is meanfield_pde.solve_sgd
    assert meanfield_pde.gibbs is meanfield_pde.solve_gibbs
    assert _files(work) == [] and _files(tmp) == []


def test_refused_in_memory_run_leaves_nothing(quiet_dirs):
    """A run refused before it writes (steady without noise) leaves no temporary directory; one
    that fails after writing keeps the file its message names."""
    work, tmp = quiet_dirs
    with pytest.raises(meanfield_pde.ConfigError, match="^steady needs noise"):
        meanfield_pde.solve(config("gaussians", *SMALL), steady=True)
    assert _files(tmp) == []
    with pytest.raises(SolverError) as err:
        meanfield_pde.solve(config("gaussians", *SMALL, "solver.max_steps=2"))
    kept = [p for p in tmp.rglob("*.h5")]
    assert len(kept) == 1 and str(kept[0]) in str(err.value)
    assert meanfield_pde.load(kept[0]).n_snapshots >= 1
    assert _files(work) == []


def test_summary_result_reads_the_file(tmp_path):
    path = tmp_path / "r.h5"
    summary = meanfield_pde.solve(config("gaussians", *SMALL), path)
    assert summary.path == path and summary.lines()[0] == f"wrote {path}"
    res = summary.result
    assert res.path == path and res is summary.result  # read once
    assert os.path.exists(path) and res.n_snapshots == summary.n_snapshots
