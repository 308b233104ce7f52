"""Sweeps on a real Dask cluster of separate local processes (scheduler + two workers started
with the ``dask`` command-line programs, loopback only): the tasks run on those workers, and a
worker killed mid-sweep costs nothing but time; a point with an invalid value is reported while
the others complete (the CLI on that cluster); a cluster without workers is given up on."""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest
import xarray as xr
from sweep_helpers import DEADLINE, QUICK, DaskProcesses, quick_config, slow_config, wait_for

from meanfield_pde import load, solve, sweep
from meanfield_pde.cli import main
from meanfield_pde.errors import ConfigError


def test_sweep_runs_on_the_scheduler_given(dask_processes, tmp_path):
    workers = dask_processes.wait_workers(2)  # address -> pid of the processes we started
    ds = sweep(quick_config(), {"model.delta": [0.6, 0.7, 0.8]}, out_dir=tmp_path / "sw",
               scheduler=dask_processes.address)
    assert (ds["status"].values == "ok").all()
    for address, pid in zip(ds["worker"].values, ds["pid"].values, strict=True):
        assert workers[str(address)] == int(pid)


def test_invalid_point_is_reported_and_the_others_complete(dask_processes, tmp_path, capsys):
    out = tmp_path / "sw"
    argv = ["sweep", "gaussians", "--vary", "model.d=20,-3", *(w for s in QUICK
                                                              for w in ("--set", s)),
            "--scheduler", dask_processes.address, "-q", "-o", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "ran 1, failed 1, skipped 0" in text
    assert "failed at d=-3: model.d = -3 is out of range" in text
    with xr.open_dataset(out / "sweep.nc", engine="h5netcdf") as table:
        assert list(table["status"].values) == ["ok", "failed"]
        assert "model.d = -3 is out of range" in str(table["message"].values[1])
        assert np.isfinite(table["risk_final"].values[0])
        assert np.isnan(table["risk_final"].values[1])
    assert sorted(p.name for p in out.glob("*.h5")) == ["d=20.h5"]


def test_a_cluster_without_workers_gives_up_keeping_the_table(tmp_path, monkeypatch):
    monkeypatch.setattr("meanfield_pde.sweeps.run.WORKER_CHECK_SECONDS", 0.1)
    lonely = DaskProcesses(tmp_path / "dask")
    try:
        (tmp_path / "dask").mkdir()
        lonely.start_scheduler()
        with pytest.raises(ConfigError, match="no Dask worker was connected to tcp://"):
            sweep(quick_config(), {"model.d": [20, 40]}, out_dir=tmp_path / "sw",
                  scheduler=lonely.address, no_workers_timeout=1.0)
    finally:
        lonely.close()
    with xr.open_dataset(tmp_path / "sw" / "sweep.nc", engine="h5netcdf") as table:
        assert list(table["status"].values) == ["pending", "pending"]


def test_worker_killed_mid_sweep_the_sweep_completes_correctly(dask_processes, tmp_path):
    """Runs last in this module: it leaves the cluster with one worker."""
    workers = dask_processes.wait_workers(2)
    cfg, vary, out = slow_config(), {"model.delta": [0.6, 0.7, 0.8]}, tmp_path / "sw"
    result: dict = {}

    def run():
        result["ds"] = sweep(cfg, vary, out_dir=out, scheduler=dask_processes.address)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        wait_for(lambda: [p for p in out.glob("*.h5") if not p.with_suffix(".json").exists()],
                 "a point to start")
        busy = wait_for(lambda: [a for a, keys in dask_processes.client.processing().items()
                                 if keys and a in workers], "a worker running a point")
        os.kill(workers[busy[0]], signal.SIGKILL)
    finally:
        thread.join(DEADLINE)
    assert not thread.is_alive(), "the sweep did not end"
    ds = result["ds"]
    assert (ds["status"].values == "ok").all(), ds["message"].values
    for delta in vary["model.delta"]:
        ref = tmp_path / f"ref-{delta}.h5"
        solve(cfg.replace({"model.delta": delta}), ref)
        risk = load(ref)["risk"]
        np.testing.assert_allclose(ds["risk"].sel(delta=delta).values, risk, rtol=0,
                                   atol=1e-12 * np.max(np.abs(risk)))
