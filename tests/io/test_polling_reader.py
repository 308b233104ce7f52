"""A reader polling a running solve never stops it (issue 18, item 6).

A second process loads the result file as fast as it can — a full :func:`load` with every
digest checked, then the last snapshot of a lazy load — while the solve writes it.  The solve
must end normally with the result of an undisturbed run, and every read after the file's
creation must give a consistent state: a count of snapshots that never decreases, times that
are the run's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

from meanfield_pde.config import default_config
from meanfield_pde.io import load
from meanfield_pde.runner.pde import solve

READER = r"""
import json, sys, pathlib
from meanfield_pde.io import load
from meanfield_pde.errors import DataError
path, stop = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
print("ready", flush=True)
counts, errors, first_ok = [], [], False
while not stop.exists():
    if not path.exists():
        continue
    try:
        res = load(path)
        lazy = load(path, lazy=True)
        if lazy.n_snapshots:
            lazy.snapshot(lazy.n_snapshots - 1)
        counts.append(res.n_snapshots)
        first_ok = True
    except DataError as exc:
        if first_ok:  # before the first success the file may be mid-creation
            errors.append(str(exc))
print(json.dumps({"counts": counts, "errors": errors[:5], "n_errors": len(errors)}))
"""


def test_a_reader_polling_a_running_solve_never_stops_it(tmp_path):
    cfg = default_config("gaussians").with_overrides(
        ["time.t_end=12", "time.n_outputs=241", "lagrangian.mass_cells=200"])
    path, stop = tmp_path / "run.h5", tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(path), str(stop)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert reader.stdout.readline().strip() == "ready"  # waits for the reader to start
        t0 = time.perf_counter()
        solve(cfg, path)  # raised "stayed locked by another process" before
        seconds = time.perf_counter() - t0
    finally:
        stop.touch()
        out, err = reader.communicate(timeout=300)
    report = json.loads(out.strip().splitlines()[-1])
    assert report["n_errors"] == 0, report["errors"]
    counts = report["counts"]
    assert len(counts) >= 3, (counts, seconds)  # the reader did read while the solve ran
    assert all(b >= a for a, b in zip(counts, counts[1:], strict=False)), counts
    ref = tmp_path / "ref.h5"
    solve(cfg, ref)
    a, b = load(path), load(ref)
    assert a.complete and a.n_snapshots == b.n_snapshots == 241
    np.testing.assert_array_equal(a.t, b.t)
    # the same run: the reader changed nothing.  Equal to round-off, not bit for bit: the
    # compiled calls last about CHUNK_SECONDS each, so on a loaded machine they end at other
    # steps, and the companion, brought to the main part's time after each, takes a differently
    # clipped last step (measured: 1.2e-14 on risk_companion)
    for name in b.fields:
        np.testing.assert_allclose(a[name], b[name], rtol=0, atol=1e-13, err_msg=name)


def test_a_read_is_repeated_while_the_file_changes_or_was_just_written(tmp_path, monkeypatch):
    """The sequence lock of :func:`read_file`: an error raised while the file changed, or by a
    file written less than READ_QUIET_SECONDS ago while its writer holds the lock (between two
    HDF5 writes of one update), is not reported: the read is repeated; a file changing during
    every read for the budget gives a one-line DataError; a stable file's own error comes at
    once when it is quiet or no writer holds its lock."""
    import time as clock

    import pytest

    from meanfield_pde.errors import DataError
    from meanfield_pde.io import hdf5

    cfg = default_config("gaussians").with_overrides(["time.t_end=0.5", "time.n_outputs=3"])
    solve(cfg, tmp_path / "r.h5")
    path = tmp_path / "r.h5"
    state = {"changes": 0, "recent": 0, "reads": 0}
    old = 0  # an mtime of 1970: quiet
    just_now = clock.time_ns() + 10**12  # recent for the whole test

    def stamp(p):
        if state["changes"] > 0:
            state["changes"] -= 1
            return (state["changes"], 0, old, 0)
        if state["recent"] > 0:
            state["recent"] -= 1
            return (0, 0, just_now, 0)  # written just now, then stable
        return (0, 0, old, 0)

    def read(f):
        state["reads"] += 1
        if state["changes"] or state["recent"]:
            raise OSError("torn read")
        return int(f.attrs["n_snapshots"])

    monkeypatch.setattr(hdf5, "_stamp", stamp)
    writer = {"active": True}
    monkeypatch.setattr(hdf5, "_writer_active", lambda p: writer["active"])
    state.update(changes=6)  # the file changes during the first 3 reads
    assert hdf5.read_file(path, read) == 3 and state["reads"] == 4
    state.update(recent=6, reads=0)  # just written, stable: 3 failed reads, then quiet
    assert hdf5.read_file(path, read) == 3 and state["reads"] == 4
    state.update(changes=10**9)
    with pytest.raises(DataError, match="changed while it was read") as info:
        hdf5.read_file(path, read, retry_seconds=0.05)
    assert "\n" not in str(info.value)
    state.update(changes=0, recent=0, reads=0)

    def broken(f):
        state["reads"] += 1
        raise OSError("boom")

    with pytest.raises(OSError, match="boom"):
        hdf5.read_file(path, broken)
    assert state["reads"] == 1
    writer["active"] = False  # just written, but nobody writes it now: at once
    state.update(recent=10**9, reads=0)
    with pytest.raises(OSError, match="boom"):
        hdf5.read_file(path, broken)
    assert state["reads"] == 1


def test_the_writer_probe_sees_a_running_writer_only(tmp_path):
    """:func:`_writer_active` is True while a ResultWriter holds the file, False after (the lock
    file stays), and a writer opened during a probe is not refused."""
    from meanfield_pde.io import ResultWriter, hdf5

    path = tmp_path / "w.h5"
    assert hdf5._writer_active(path) is False  # no lock file at all
    w = ResultWriter(path, problem="gaussians", config={"problem": "gaussians"}, grid={},
                     fields={"mass": ()})
    assert hdf5._writer_active(path) is True
    w.close()
    assert hdf5.writer_lock_path(path).exists() and hdf5._writer_active(path) is False
