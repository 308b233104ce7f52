"""The ``meanfield-pde sweep`` client stopped from outside: SIGKILL loses no finished point (the
rerun skips it and completes the table); SIGTERM keeps what is done and says how to go on.
Each run uses the default local cluster, whose worker processes end with the client."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import xarray as xr
from helpers import python_env
from sweep_helpers import DEADLINE, SLOW, wait_for


def _argv(out: Path) -> list[str]:
    return [sys.executable, "-m", "meanfield_pde", "sweep", "gaussians", "--vary",
            "model.delta=0.6,0.7,0.8", *(w for s in SLOW for w in ("--set", s)), "--workers",
            "2", "-q", "-o", str(out)]


def _finished_record(out: Path) -> Path | None:
    for rec in out.glob("*.json"):
        try:
            if json.loads(rec.read_text())["status"] == "ok":
                return rec
        except (OSError, ValueError, KeyError):
            continue
    return None


def _stop_after_first_point(out: Path, signum: int, tmp: Path) -> tuple[int, str, Path]:
    """Start the sweep, send ``signum`` once a point is finished; (exit code, stderr, the
    finished point's record).  The client's worker processes must end with it."""
    err = tmp / "stderr.txt"
    with open(err, "w") as stderr:
        proc = subprocess.Popen(_argv(out), env=python_env(), stdout=subprocess.DEVNULL,
                                stderr=stderr)
    children: list[psutil.Process] = []
    try:
        record = wait_for(lambda: _finished_record(out), "a finished point")
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signum)
        code = proc.wait(DEADLINE)
        wait_for(lambda: not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE
                                 for c in children), "the worker processes to end")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
    return code, err.read_text(), record


def test_client_killed_then_rerun_recomputes_nothing_finished(tmp_path):
    out = tmp_path / "sw"
    code, _, record = _stop_after_first_point(out, signal.SIGKILL, tmp_path)
    assert code == -signal.SIGKILL
    run_id = json.loads(record.read_text())["run_id"]
    h5 = record.with_suffix(".h5")
    mtime = h5.stat().st_mtime_ns

    rerun = subprocess.run(_argv(out), env=python_env(), capture_output=True, text=True,
                           timeout=DEADLINE)
    assert rerun.returncode == 0, rerun.stderr
    assert "failed 0" in rerun.stdout
    assert json.loads(record.read_text())["run_id"] == run_id
    assert h5.stat().st_mtime_ns == mtime
    with xr.open_dataset(out / "sweep.nc", engine="h5netcdf") as table:
        assert (table["status"].values == "ok").all()
        assert table.attrs["n_skipped"] >= 1
        assert run_id in table["run_id"].values


@pytest.mark.slow
def test_sigterm_keeps_finished_points_and_names_the_command_to_continue(tmp_path):
    out = tmp_path / "sw"
    code, err, record = _stop_after_first_point(out, signal.SIGTERM, tmp_path)
    assert code == 143
    line = err.strip().splitlines()[-1]
    assert line.startswith("meanfield-pde: interrupted by SIGTERM: "), err
    assert "continue by running the same command again: meanfield-pde sweep gaussians" in line
    with xr.open_dataset(out / "sweep.nc", engine="h5netcdf") as table:
        assert "ok" in set(table["status"].values)
        assert json.loads(record.read_text())["run_id"] in table["run_id"].values
