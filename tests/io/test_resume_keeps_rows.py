"""Resume never removes what was durably written (issue 18, items 1 and 4).

* A run stopped by a full disk holds S snapshots; its last checkpoint may be far behind them
  (k < S).  Resuming from it recomputes rows k+1..S: they are not dropped first, so a resume that
  fails again (disk full again, a signal) still leaves the S snapshots, and a resume that ends
  gives the uninterrupted run.
* ``resume --t-end T`` stores the extended config before the extension's first checkpoint: a run
  killed in between resumes (to T) from the checkpoint of the config before the extension.
"""

from __future__ import annotations

import shutil

import pytest
from stopping import StopAfter
from test_checkpoint import CASES, PDE_TOL, max_difference

from meanfield_pde.cli import main
from meanfield_pde.config import default_config
from meanfield_pde.errors import DiskFull
from meanfield_pde.io import ResultWriter, load, load_checkpoint
from meanfield_pde.runner.pde import solve
from meanfield_pde.runner.resume import resume
from meanfield_pde.runner.trackers import Interrupted


class _Disk:
    """The disk guard of the writer, filling up: it refuses the next snapshot once ``rows``
    snapshots have been written since the disk was last :meth:`reset` (``full``: refuses
    every write)."""

    def __init__(self, monkeypatch, rows: int):
        from meanfield_pde.io import writer

        self.rows, self.seen, self.full, self._check = rows, 0, False, writer.check_space
        monkeypatch.setattr(writer, "check_space", self)

    def __call__(self, path, need, what, *, resumable=True):
        if what == "the next snapshot":
            self.seen += 1
        if self.full or self.seen > self.rows:
            self.full = True
            raise DiskFull(path, f"no space left where {path} is written", resumable)
        self._check(path, need, what, resumable=resumable)


@pytest.mark.parametrize("case", ["radial", "sgd-radial"])
def test_a_failed_resume_keeps_the_snapshots_of_a_run_stopped_by_a_full_disk(
        case, tmp_path, monkeypatch, capsys):
    from meanfield_pde.runner import pde

    monkeypatch.setattr(pde, "SNAPSHOT_FLUSH_SECONDS", 0.0)  # every snapshot at once: the
    # rows on disk when the disk fills do not depend on the machine's speed
    problem, over, run = CASES[case]
    # checkpoints only at the start: everything after it is rows a resume must recompute
    over = [*over, "checkpoint.every=1e9", "checkpoint.wall_seconds=1e9"]
    cfg = default_config(problem).with_overrides(over)
    run(cfg, tmp_path / "ref.h5")
    ref_n = load(tmp_path / "ref.h5").n_snapshots
    path = tmp_path / "run.h5"
    disk = _Disk(monkeypatch, rows=6)
    cmd = "solve" if run is solve else "sgd"
    assert main([cmd, problem, *(a for o in over for a in ("--set", o)), "-o", str(path),
                 "-q"]) == 2
    assert "disk full" in capsys.readouterr().err
    written = load(path)
    k = int(load_checkpoint(path).meta["n_snapshots"])
    assert k < written.n_snapshots < ref_n, (k, written.n_snapshots, ref_n)

    def kept() -> None:
        again = load(path)
        n = written.n_snapshots
        assert again.n_snapshots >= n and (again.t[:n] == written.t).all()
        for name in written.fields:
            assert (again[name][:n] == written[name]).all(), name

    assert main(["resume", str(path), "-q"]) == 2  # still no space: refused
    assert "disk full" in capsys.readouterr().err
    kept()
    disk.full, disk.rows = False, 10**9  # space freed
    with pytest.raises(Interrupted):  # a signal at the first poll, long before row S
        resume(path, stop=StopAfter(1))
    kept()
    assert main(["resume", str(path), "-q"]) == 0
    assert max_difference(path, tmp_path / "ref.h5") <= (PDE_TOL if run is solve else 0.0)


@pytest.mark.parametrize("case", ["radial", "sgd-radial"])
@pytest.mark.parametrize("t_end", [2.0, 1.37])
def test_killed_between_the_extended_config_and_its_first_checkpoint(case, t_end, tmp_path,
                                                                     monkeypatch):
    """The process dies right after ``resume --t-end`` stored the extended config (simulated:
    the write raises SystemExit, as nothing after it runs): ``resume`` (no --t-end) continues
    the extension to t_end, and so does ``resume --t-end`` again; both equal an uninterrupted
    extension."""
    problem, over, run = CASES[case]
    cfg = default_config(problem).with_overrides(over)
    run(cfg, tmp_path / "done.h5")
    for name in ("ref", "a", "b"):
        shutil.copy(tmp_path / "done.h5", tmp_path / f"{name}.h5")
    resume(tmp_path / "ref.h5", t_end=t_end)

    original = ResultWriter.update_config

    def update_then_die(self, config, previous):
        original(self, config, previous)
        raise SystemExit(137)

    monkeypatch.setattr(ResultWriter, "update_config", update_then_die)
    for name in ("a", "b"):
        with pytest.raises(SystemExit):
            resume(tmp_path / f"{name}.h5", t_end=t_end)
        assert load(tmp_path / f"{name}.h5").config["time"]["t_end"] == t_end
    monkeypatch.setattr(ResultWriter, "update_config", original)
    resume(tmp_path / "a.h5")
    resume(tmp_path / "b.h5", t_end=t_end)
    tol = PDE_TOL if run is solve else 0.0
    for name in ("a", "b"):
        assert load(tmp_path / f"{name}.h5").complete
        assert max_difference(tmp_path / f"{name}.h5", tmp_path / "ref.h5") <= tol


EXTEND_TO = 11.97  # not a multiple of the output spacing 0.1 of SUBPROCESS_RUNS["solve"]


@pytest.fixture(scope="module")
def finished_and_extended(tmp_path_factory):
    """The finished run of SUBPROCESS_RUNS["solve"] and its uninterrupted extension to
    EXTEND_TO, with the extension's duration."""
    import time

    from test_checkpoint import SUBPROCESS_RUNS

    d = tmp_path_factory.mktemp("extend")
    assert main([*SUBPROCESS_RUNS["solve"], "-o", str(d / "done.h5"), "-q"]) == 0
    shutil.copy(d / "done.h5", d / "extended.h5")
    t0 = time.perf_counter()
    assert main(["resume", str(d / "extended.h5"), "--t-end", str(EXTEND_TO), "-q"]) == 0
    return d / "done.h5", d / "extended.h5", time.perf_counter() - t0


@pytest.mark.slow  # ~45 s; the state it can leave is tested directly above
def test_kill_9_during_resume_t_end_leaves_a_resumable_file(finished_and_extended, tmp_path):
    """``kill -9`` at 8 random moments of ``resume FILE --t-end T``: the file always loads and
    keeps its snapshots; ``resume FILE`` (without --t-end, once the extension is stored)
    completes the extension, equal to the uninterrupted one."""
    import os
    import random
    import subprocess
    import sys
    import time

    done, extended, duration = finished_and_extended
    rng = random.Random(18)
    for trial in range(8):
        path = tmp_path / f"x{trial}.h5"
        shutil.copy(done, path)
        proc = subprocess.Popen(
            [sys.executable, "-m", "meanfield_pde", "resume", str(path), "--t-end",
             str(EXTEND_TO), "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        time.sleep(rng.uniform(0.0, 1.5 * duration))  # the process start included
        proc.kill()
        proc.communicate()
        res = load(path)  # always opens
        assert res.n_snapshots >= load(done).n_snapshots, trial
        if res.config["time"]["t_end"] != EXTEND_TO:  # killed before the extension began
            assert res.complete
            assert main(["resume", str(path), "--t-end", str(EXTEND_TO), "-q"]) == 0, trial
        elif not res.complete:
            assert main(["resume", str(path), "-q"]) == 0, trial
        assert max_difference(path, extended) <= PDE_TOL, trial


def _limited(limit: int):
    """preexec_fn of a child process: writes past ``limit`` bytes fail with EFBIG."""
    import resource
    import signal

    def pre() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return pre


def test_a_file_size_limit_stops_solve_and_resume_cleanly(tmp_path):
    """RLIMIT_FSIZE (``ulimit -f``, as a quota would) in a real process: a write past it fails
    with EFBIG inside libhdf5, which then left the file pointing past its end and crashed the
    process (SIGSEGV, every snapshot lost).  The guard stops the run before that with one line
    (exit 2); the snapshots load; a resume under the same limit is refused the same way and
    keeps them; with the limit raised, the resume gives the uninterrupted result."""
    import subprocess
    import sys

    from meanfield_pde.io.space import _METADATA_BYTES, DISK_RESERVE_BYTES

    problem, over, _ = CASES["radial"]
    sets = [a for o in over for a in ("--set", o)]
    ref = tmp_path / "ref.h5"
    assert main(["solve", problem, *sets, "-o", str(ref), "-q"]) == 0
    limit = DISK_RESERVE_BYTES + _METADATA_BYTES + int(0.6 * ref.stat().st_size)
    path = tmp_path / "run.h5"

    def limited(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "meanfield_pde", *argv], text=True,
                              capture_output=True, preexec_fn=_limited(limit), timeout=600)

    out = limited("solve", problem, *sets, "-o", str(path), "-q")
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and "file-size limit" in out.stderr, out.stderr
    assert f"meanfield-pde resume {path}" in out.stderr
    written = load(path)
    assert 1 <= written.n_snapshots < load(ref).n_snapshots
    out = limited("resume", str(path), "-q")
    assert out.returncode == 2 and "file-size limit" in out.stderr, out.stderr
    assert load(path).n_snapshots >= written.n_snapshots
    assert main(["resume", str(path), "-q"]) == 0
    assert max_difference(path, ref) <= PDE_TOL


@pytest.mark.slow  # ~25 s; a resume stopped before its rows is tested directly above
def test_kill_9_of_the_run_then_of_its_resume(tmp_path):
    """``kill -9`` at a random moment of a solve, then at a random moment of the ``resume`` that
    continues it: the file keeps every snapshot it held, and a last ``resume`` gives the
    uninterrupted run (5 trials)."""
    import os
    import random
    import subprocess
    import sys
    import time

    from test_checkpoint import SUBPROCESS_RUNS, _start, _wait_for_checkpoint

    ref = tmp_path / "ref.h5"
    t0 = time.perf_counter()
    assert main([*SUBPROCESS_RUNS["solve"], "-o", str(ref), "-q"]) == 0
    duration = time.perf_counter() - t0
    rng = random.Random(1818)
    for trial in range(5):
        path = tmp_path / f"k{trial}.h5"
        proc = _start("solve", path)
        _wait_for_checkpoint(proc, path)
        time.sleep(rng.uniform(0.0, 0.8 * duration))
        proc.kill()
        proc.communicate()
        before = load(path)
        if not before.complete:
            proc = subprocess.Popen([sys.executable, "-m", "meanfield_pde", "resume", str(path),
                                     "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1"})
            time.sleep(rng.uniform(0.0, 1.2 * duration))
            proc.kill()
            proc.communicate()
            after = load(path)
            assert after.n_snapshots >= before.n_snapshots, trial
            assert (after.t[:before.n_snapshots] == before.t).all(), trial
            if not after.complete:
                assert main(["resume", str(path), "-q"]) == 0, trial
        assert max_difference(path, ref) <= PDE_TOL, trial
