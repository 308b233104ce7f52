"""validate on Dask: its SGD runs are tasks writing their own checkpointed result files, on a
running cluster given by address; an interrupted validate resumes without recomputing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from meanfield_pde import load
from meanfield_pde.config import default_config
from meanfield_pde.io import load_checkpoint
from meanfield_pde.validation import _compare, validate

SMALL = ["time.t_end=0.5", "time.n_outputs=11", "grid.n=200", "sgd.eps=1e-3"]
# a run long enough (1.5-4 s) to be caught between checkpoints, beside a short one
LONG = ["validate", "gaussians", "--widths", "50", "2000", "--seeds", "0", "--workers", "1",
        "--set", "time.t_end=12", "--set", "time.n_outputs=7", "--set", "grid.n=200",
        "--set", "sgd.eps=1e-3", "--set", "checkpoint.every=1"]
DEADLINE = 120.0  # seconds a condition may take on a busy machine before the test fails


def _in_memory_runs(cfg, widths, seeds, times) -> list[dict]:
    """The SGD runs as validate made them before its runs had files: in memory, at ``times``."""
    from meanfield_pde.particles import run_sgd

    out = []
    for n in widths:
        for s in seeds:
            res = run_sgd(cfg.with_overrides([f"sgd.n_neurons={n}", f"sgd.seed={s}"]),
                          times=np.asarray(times))
            out.append({"n": n, "seed": s, "t": res.t.tolist(), "risk": res.risk.tolist(),
                        "coords": res.coords, "wall_seconds": res.wall_seconds})
    return out


def _assert_same_numbers(a, b, path: str = "") -> None:
    """Equal reports up to round-off (rtol 1e-9: the same operations on the same data, the
    population risk's sums in another process' BLAS at most), wall times aside."""
    if isinstance(a, dict):
        keys = set(a) - {"wall_seconds", "sgd_seconds", "pde_file", "sgd_files"}
        assert keys == set(b) - {"wall_seconds", "sgd_seconds", "pde_file", "sgd_files"}, path
        for k in keys:
            _assert_same_numbers(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple | np.ndarray):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same_numbers(x, y, f"{path}[{i}]")
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=1e-9, abs=1e-300), path
    else:
        assert a == b, path


def _reference_report(cfg, rep: dict, pde_path: Path) -> dict:
    """The report of the runs made in memory (the implementation before files), through the
    same comparison."""
    pde = load(pde_path)
    idx = np.searchsorted(pde.t, rep["times"])
    runs = _in_memory_runs(cfg, rep["widths"], rep["seeds"], rep["times"])
    return _compare(cfg, pde, idx, runs, rep["widths"], rep["seeds"])


def test_validate_on_a_running_cluster(tmp_path):
    """validate(..., scheduler=address) runs every SGD task on that cluster's workers, writes
    one complete SGD result per run, and reports the numbers of the in-memory runs."""
    from distributed import LocalCluster

    from meanfield_pde.cluster import SINGLE_THREAD_ENV

    cfg = default_config("gaussians").with_overrides(SMALL)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0", env=dict(SINGLE_THREAD_ENV)) as cluster:
        workers = set(cluster.scheduler_info["workers"])
        rep = validate(cfg, [20, 40], [0, 1], tmp_path, scheduler=cluster.scheduler_address)
    files = rep["sgd_files"]
    assert [(f["n"], f["seed"]) for f in files] == [(20, 0), (20, 1), (40, 0), (40, 1)]
    assert {f["status"] for f in files} == {"ran"} and {f["worker"] for f in files} <= workers
    for f in files:
        res = load(f["path"])
        assert res.complete and res.attrs["kind"] == "sgd" and res.config["sgd"]["seed"] == \
            f["seed"] and res["r"].shape == (11, f["n"])
    _assert_same_numbers(_reference_report(cfg, rep, tmp_path / "pde.h5"), rep)
    assert json.loads((tmp_path / "validation.json").read_text())["sgd_files"] == files


def _cli(args: list[str], **kw) -> subprocess.Popen:
    """``meanfield-pde ARGS`` in its own process group (this package, this environment)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.Popen([sys.executable, "-m", "meanfield_pde", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kw)


def _wait_for(condition, proc: subprocess.Popen, what: str) -> None:
    """Poll ``condition()`` until true; fail if ``proc`` ends first or after DEADLINE."""
    end = time.monotonic() + DEADLINE
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"validate ended (exit {proc.returncode}) before {what}: "
                        f"{proc.communicate()[1]}")
        if time.monotonic() > end:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"no {what} within {DEADLINE:g} s")
        time.sleep(0.02)


def _mid_run(path: Path, after: float):
    """A condition: ``path`` holds a checkpoint after t = ``after`` of an unfinished run."""
    def check() -> bool:
        try:
            meta = load_checkpoint(path).meta
        except Exception:  # not created yet, or being written
            return False
        return meta["t"] > after and not meta["complete"]
    return check


def _complete(path: Path):
    def check() -> bool:
        try:
            return load(path).complete
        except Exception:
            return False
    return check


def _interrupt(args: list[str], signum: int, long_: Path, after: float) -> tuple[int, str]:
    """Run ``meanfield-pde ARGS`` until the long run has a checkpoint after ``after`` (the short
    run finished), then send ``signum`` to its whole process group (as Ctrl-C does)."""
    short = long_.with_name("n50-seed0.h5")
    proc = _cli(args)
    try:
        _wait_for(lambda: _complete(short)() and _mid_run(long_, after)(), proc,
                  f"a finished short run and a checkpoint of the long one after t = {after:g}")
        os.killpg(proc.pid, signum)
        _, stderr = proc.communicate(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    return proc.returncode, stderr


def test_interrupted_validate_resumes_without_recomputing(tmp_path):
    """SIGINT while the long run is between checkpoints: exit 130 and one line saying to rerun;
    the rerun, killed (SIGKILL, client and workers) later in the long run, and the next rerun
    reuse the finished run's file untouched, resume the long one from its checkpoint, and
    report what uninterrupted runs give."""
    out = tmp_path / "v"
    args = [*LONG, "-o", str(out)]
    short, long_ = out / "sgd" / "n50-seed0.h5", out / "sgd" / "n2000-seed0.h5"
    code, stderr = _interrupt(args, signal.SIGINT, long_, 0.0)
    last = stderr.strip().splitlines()[-1]
    assert code == 130, stderr
    assert "interrupted by SIGINT: 1 of 2 SGD runs finished" in last
    assert last.endswith("rerun the same command to continue")
    assert not (out / "validation.json").exists() and not load(long_).complete
    stamp = short.stat().st_mtime_ns
    t_cut = load_checkpoint(long_).meta["t"]
    _interrupt(args, signal.SIGKILL, long_, t_cut)  # the rerun went on from t_cut
    assert short.stat().st_mtime_ns == stamp
    rerun = _cli(args)
    stdout, stderr = rerun.communicate(timeout=DEADLINE)
    assert rerun.returncode == 0, stderr
    assert "1 resumed, 1 reused" in stdout
    assert short.stat().st_mtime_ns == stamp  # never rewritten
    rep = json.loads((out / "validation.json").read_text())
    assert [f["status"] for f in rep["sgd_files"]] == ["reused", "resumed"]
    cfg = default_config("gaussians").with_overrides(
        [a for a in LONG[LONG.index("--set"):] if a != "--set"])
    _assert_same_numbers(_reference_report(cfg, rep, out / "pde.h5"), rep)


def test_sgd_file_of_another_config_is_refused_unless_force(tmp_path, in_process_pool, capsys):
    """SGD files of other settings (an earlier validate there) are refused before any work, as
    an existing report is, in one line naming --force and -o; --force recomputes them."""
    from meanfield_pde.cli import main

    args = ["validate", "gaussians", "--widths", "8", "16", "--seeds", "0", "-o", str(tmp_path),
            *[w for s in ("time.t_end=0.2", "time.n_outputs=3", "grid.n=100") for w in
              ("--set", s)]]
    assert main([*args, "--set", "sgd.eps=1e-3"]) == 0
    for name in ("validation.json", "validation.png"):
        (tmp_path / name).unlink()
    files = sorted(tmp_path.rglob("*.h5"))
    stamps = [f.stat().st_mtime_ns for f in files]
    capsys.readouterr()
    assert main([*args, "--set", "sgd.eps=2e-3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "n8-seed0.h5" in err and "--force" in err and "-o" in err
    assert [f.stat().st_mtime_ns for f in files] == stamps  # nothing ran, not even the PDE
    assert main([*args, "--set", "sgd.eps=2e-3", "--force"]) == 0
    rep = json.loads((tmp_path / "validation.json").read_text())
    assert [f["status"] for f in rep["sgd_files"]] == ["ran", "ran"]
    assert all(load(f["path"]).config["sgd"]["eps"] == 2e-3 for f in rep["sgd_files"])


def test_interrupted_pde_solve_is_continued(tmp_path, in_process_pool, monkeypatch):
    """A stop during the PDE solve raises ValidateInterrupted (exit code 128 + signal) with
    pde.h5 checkpointed; the rerun continues pde.h5 (no new solve) to the PDE result an
    uninterrupted solve gives, and finishes the comparison."""
    import signal as sig

    from stopping import StopAfter

    from meanfield_pde.runner import pde as pde_runner
    from meanfield_pde.validation_runs import ValidateInterrupted

    cfg = default_config("gaussians").with_overrides(
        ["time.t_end=0.5", "time.n_outputs=6", "grid.n=100", "sgd.eps=1e-3"])
    direct = tmp_path / "direct.h5"
    pde_runner.solve(cfg, direct)
    out = tmp_path / "v"
    with pytest.raises(ValidateInterrupted, match="interrupted by SIGTERM: 0 of 1") as info:
        validate(cfg, [8], [0], out, stop=StopAfter(4, sig.SIGTERM))
    assert info.value.exit_code == 143
    assert not load(out / "pde.h5").complete and not (out / "sgd" / "n8-seed0.h5").exists()

    def no_solve(*args, **kwargs):
        raise AssertionError("pde.h5 was solved again instead of continued")

    monkeypatch.setattr(pde_runner, "solve", no_solve)
    rep = validate(cfg, [8], [0], out)
    assert np.array_equal(load(out / "pde.h5")["risk"], load(direct)["risk"])
    assert np.array_equal(load(out / "pde.h5")["density"], load(direct)["density"])
    assert rep["sgd_files"][0]["status"] == "ran"
