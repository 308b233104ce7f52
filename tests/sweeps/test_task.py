"""One point's task in this process (no Dask): resume of an interrupted file, a failure kept in
the record and not repeated, ``retry_failed``, point files of another config refused, and
the gibbs and sgd commands with their table."""

from __future__ import annotations

import numpy as np
import pytest
from stopping import StopAfter
from sweep_helpers import quick_config

from meanfield_pde import load, solve, sweep
from meanfield_pde.errors import ConfigError
from meanfield_pde.runner.trackers import Interrupted
from meanfield_pde.sweeps.files import PointState, point_state, read_record
from meanfield_pde.sweeps.points import make_points
from meanfield_pde.sweeps.table import build_table, point_paths
from meanfield_pde.sweeps.task import run_point


def test_an_interrupted_point_is_resumed_to_the_uninterrupted_result(tmp_path):
    cfg = quick_config("checkpoint.every=0.1")
    path = tmp_path / "d=40.h5"
    with pytest.raises(Interrupted):
        solve(cfg, path, stop=StopAfter(4))
    assert point_state(path, cfg, "solve") is PointState.RESUMABLE
    rec = run_point("solve", cfg.to_dict(), str(path), "r1")
    assert (rec["status"], rec["ran"], rec["resumed"]) == ("ok", True, True)
    assert point_state(path, cfg, "solve") is PointState.FINISHED
    solve(cfg, tmp_path / "ref.h5")
    ref = load(tmp_path / "ref.h5")
    np.testing.assert_array_equal(load(path).t, ref.t)
    np.testing.assert_allclose(load(path)["risk"], ref["risk"], rtol=0,
                               atol=1e-12 * np.max(np.abs(ref["risk"])))
    again = run_point("solve", cfg.to_dict(), str(path), "r2")  # finished: left as it is
    assert (again["ran"], again["run_id"]) == (False, "r1")


def test_a_failure_is_recorded_kept_and_retried_on_request(tmp_path):
    cfg = quick_config("solver.max_steps=3")
    path = tmp_path / "p.h5"
    rec = run_point("solve", cfg.to_dict(), str(path), "r1")
    assert rec["status"] == "failed" and "solver.max_steps = 3 reached" in rec["message"]
    assert "\n" not in rec["message"]
    assert read_record(path)["status"] == "failed"
    assert point_state(path, cfg, "solve") is PointState.FAILED
    kept = run_point("solve", cfg.to_dict(), str(path), "r2")
    assert (kept["ran"], kept["run_id"], kept["status"]) == (False, "r1", "failed")
    retried = run_point("solve", cfg.to_dict(), str(path), "r3", retry_failed=True)
    assert (retried["ran"], retried["run_id"], retried["status"]) == (True, "r3", "failed")


def test_point_files_of_another_config_are_refused_before_any_work(tmp_path):
    cfg = quick_config()
    out = tmp_path / "sw"
    out.mkdir()
    solve(cfg.replace({"model.d": 20, "time.t_end": 0.5}), out / "d=20.h5")
    with pytest.raises(ConfigError, match="another base config or command"):
        sweep(cfg, {"model.d": [20, 40]}, out_dir=out)
    assert point_state(out / "d=20.h5", cfg.replace({"model.d": 20}), "gibbs") is \
        PointState.FOREIGN
    assert not (out / "d=40.h5").exists() and not (out / "sweep.nc").exists()


@pytest.mark.parametrize("command, vary, extra", [
    ("gibbs", {"noise.beta": [10.0, 20.0]}, "free_energy_final"),
    ("sgd", {"sgd.seed": [0, 1]}, None),
])
def test_gibbs_and_sgd_points_and_their_table(tmp_path, command, vary, extra):
    cfg = quick_config("noise.beta=10", "noise.lam=0.1", "grid.n=200", "sgd.n_neurons=20",
                       "sgd.eps=1e-3")
    pts = make_points(cfg, vary)
    for p, path in zip(pts, point_paths(pts, list(vary), tmp_path), strict=True):
        assert run_point(command, p.config.to_dict(), str(path), "r")["status"] == "ok"
        assert point_state(path, p.config, command) is PointState.FINISHED
        assert point_state(path, p.config, "solve") is PointState.FOREIGN
    ds = build_table(cfg, vary, pts, tmp_path, command)
    assert (ds["status"].values == "ok").all() and np.isfinite(ds["risk_final"].values).all()
    assert ds["risk"].sizes["t"] == (1 if command == "gibbs" else 11)
    if extra is not None:
        assert np.isfinite(ds[extra].values).all()
