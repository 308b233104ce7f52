"""Checkpoints, resume, signals and kill -9 (every kind of run: radial, 3-D, noisy, SGD).

The contract: a run stopped anywhere — by a signal, by ``kill -9`` — leaves a file whose finished
snapshots and last complete checkpoint are readable, and ``resume`` then produces snapshots equal
to an uninterrupted run's (≤ 1e-13 for the PDE — measured: bit for bit — and bit for bit for
SGD), with no duplicate snapshot at the resume time.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import NEURON_BOX, NEURON_SMALL
from stopping import StopAfter

from meanfield_pde.cli import main
from meanfield_pde.config import default_config
from meanfield_pde.errors import DataError, SolverError
from meanfield_pde.io import load, load_checkpoint
from meanfield_pde.runner import loop
from meanfield_pde.runner.pde import solve
from meanfield_pde.runner.resume import resume
from meanfield_pde.runner.sgd import solve_sgd
from meanfield_pde.runner.trackers import Interrupted, config_hash

PDE_TOL = 1e-13


def max_difference(a: Path, b: Path) -> float:
    """Largest difference between two result files over every snapshot field (same times)."""
    ra, rb = load(a), load(b)
    assert ra.n_snapshots == rb.n_snapshots
    np.testing.assert_array_equal(ra.t, rb.t)  # same output times from the same config: exact
    assert set(ra.fields) == set(rb.fields)
    return max(float(np.max(np.abs(ra[k] - rb[k]))) for k in ra.fields)


# small fixed box (no pilot run), serial kernels (tests may share the cores), a coarser kernel
NEURON = NEURON_SMALL
CASES = {
    # the Lagrangian cells are graded for the pilot's horizon: pinned, so that a run extended
    # past its t_end and a run solved to the later t_end have the same cells
    "radial": ("gaussians", ["grid.n=300", "grid.r_max=6", "time.t_end=1",
                             "time.n_outputs=11", "lagrangian.pilot_t_end=1"], solve),
    "radial-fv": ("gaussians", ["grid.n=300", "grid.r_max=6", "time.t_end=1",
                                "time.n_outputs=11", "solver.method='fv'"], solve),
    "radial-noisy": ("gaussians", ["grid.n=300", "grid.r_max=9", "time.t_end=1",
                                   "time.n_outputs=11", "noise.beta=20", "noise.lam=0.1"], solve),
    "radial-noisy-explicit": ("gaussians", ["grid.n=200", "grid.r_max=9", "time.t_end=0.2",
                                            "time.n_outputs=5", "noise.beta=20", "noise.lam=0.1",
                                            "solver.noisy_scheme='explicit'"], solve),
    "neuron": ("single-neuron", [*NEURON, *NEURON_BOX, "solver.method='fv'"], solve),
    # implicit steps give the noisy run exponential (numerical) tails: a looser wall tolerance
    "neuron-noisy": ("single-neuron", [*NEURON, "grid.a_min=-1", "grid.a_max=3", "grid.s_min=-1.5",
                                       "grid.s_max=2", "grid.r_max=2", "grid.wall_tol=1e-3",
                                       "noise.beta=200", "noise.lam=0.01"], solve),
    "sgd-radial": ("gaussians", ["sgd.n_neurons=40", "sgd.eps=1e-3", "time.t_end=1",
                                 "time.n_outputs=11"], solve_sgd),
    "sgd-neuron-noisy": ("single-neuron", ["sgd.n_neurons=30", "sgd.eps=1e-3", "sgd.batch=3",
                                           "time.t_end=1", "time.n_outputs=11", "noise.beta=100",
                                           "noise.lam=0.01"], solve_sgd),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_interrupt_and_resume_equals_uninterrupted_run(case, tmp_path, monkeypatch):
    """Stopped after 2, 5 and 9 polls (mid-interval: compiled calls of 7 steps) and resumed —
    twice in a row for the last — the file equals the uninterrupted run's."""
    monkeypatch.setattr(loop, "CHUNK_STEPS", 7)
    problem, over, run = CASES[case]
    cfg = default_config(problem).with_overrides(over)
    ref = tmp_path / "ref.h5"
    run(cfg, ref)
    tol = PDE_TOL if run is solve else 0.0
    for n in (2, 5, 9):
        cut = tmp_path / f"cut{n}.h5"
        with pytest.raises(Interrupted, match=r"meanfield_pde\.resume\(") as info:
            run(cfg, cut, stop=StopAfter(n))
        assert info.value.exit_code == 143
        assert not load(cut).complete
        if n == 9:  # interrupted again while resuming
            with pytest.raises(Interrupted):
                resume(cut, stop=StopAfter(2, signal.SIGINT))
        resume(cut)
        assert load(cut).complete
        assert max_difference(ref, cut) <= tol  # includes: same times, no duplicate snapshot


def test_resume_refuses_complete_file_foreign_file_and_changed_config(tmp_path, capsys):
    cfg = default_config("gaussians").with_overrides(CASES["radial"][1])
    path = tmp_path / "a.h5"
    solve(cfg, path)
    assert main(["resume", str(path)]) == 2
    assert "is complete" in capsys.readouterr().err
    assert main(["resume", str(path), "--t-end", "0.5"]) == 2  # not after the checkpoint
    assert "--t-end" in capsys.readouterr().err

    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(3.0)
    assert main(["resume", str(foreign)]) == 2
    err = capsys.readouterr().err
    assert "not written by meanfield-pde" in err and err.count("\n") == 1

    with pytest.raises(Interrupted):
        solve(cfg, tmp_path / "b.h5", overwrite=True, stop=StopAfter(3))
    with h5py.File(tmp_path / "b.h5", "r+") as f:  # someone edits the config (and its hash)
        text = f.attrs["config"].decode().replace('"delta": 0.8', '"delta": 0.7')
        f.attrs["config"] = text
        f.attrs["config_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    assert main(["resume", str(tmp_path / "b.h5")]) == 2
    err = capsys.readouterr().err
    assert "does not match its checkpoint" in err and err.count("\n") == 1


def test_config_hash_ignores_only_resumable_keys():
    c = default_config("gaussians")
    h = config_hash(c.to_dict())
    assert config_hash(c.with_overrides(["time.t_end=50", "time.n_outputs=3",
                                         "checkpoint.every=1"]).to_dict()) == h
    for key in ("model.delta=0.5", "grid.n=100", "solver.cfl=0.3", "time.outputs='log'"):
        assert config_hash(c.with_overrides([key]).to_dict()) != h


@pytest.mark.parametrize("case", ["radial", "sgd-radial"])
def test_t_end_extends_a_finished_run(case, tmp_path):
    """solve to t = 1 then ``resume --t-end 2`` equals one run to t = 2 (fixed wall, uniform
    outputs keep their spacing: 11 → 21)."""
    problem, over, run = CASES[case]
    cfg = default_config(problem).with_overrides(over)
    run(cfg, tmp_path / "short.h5")
    resume(tmp_path / "short.h5", t_end=2.0)
    run(cfg.with_overrides(["time.t_end=2", "time.n_outputs=21"]), tmp_path / "long.h5")
    assert max_difference(tmp_path / "short.h5", tmp_path / "long.h5") <= (
        PDE_TOL if run is solve else 0.0)
    stored = load(tmp_path / "short.h5").config
    assert stored["time"]["t_end"] == 2.0 and stored["time"]["n_outputs"] == 21


@pytest.mark.parametrize("case", ["radial", "sgd-radial"])
@pytest.mark.parametrize("t_ends", [(1.03, 1.5, 2.2), (1.2, 1.6, 3.0), (1.05,)])
def test_chained_t_end_extensions(case, t_ends, tmp_path):
    """``resume --t-end`` several times, at ends that are not multiples of the output spacing
    h = 0.1 (a second extension used to fail with IndexError: the first stored n_outputs = 11
    for t_end = 1.03, spacing 0.103, not the outputs it wrote): the file holds the outputs k h
    and each t_end, and equals one run to the last t_end with those outputs listed. The stored
    config reproduces the times: its plan is what a later resume rebuilds."""
    from meanfield_pde.schedule import output_times

    problem, over, run = CASES[case]
    cfg = default_config(problem).with_overrides(over)
    run(cfg, tmp_path / "chain.h5")
    grid = 0.1 * np.arange(40)
    expected = list(grid[:11])
    for t_end in t_ends:
        resume(tmp_path / "chain.h5", t_end=t_end)
        expected += [x for x in grid if expected[-1] + 1e-9 < x < t_end - 1e-9] + [t_end]
    res = load(tmp_path / "chain.h5")
    np.testing.assert_allclose(res.t, expected, rtol=0, atol=1e-12)
    stored = default_config(problem).with_overrides(
        [f"time.{k}={v!r}" for k, v in res.config["time"].items()])
    np.testing.assert_allclose(output_times(stored), res.t, rtol=0, atol=1e-12)  # SGD: steps
    run(cfg.with_overrides([f"time.t_end={t_ends[-1]!r}", f"time.outputs={res.t.tolist()!r}"]),
        tmp_path / "one.h5")
    assert max_difference(tmp_path / "chain.h5", tmp_path / "one.h5") <= (
        PDE_TOL if run is solve else 0.0)


def test_checkpoint_slots_alternate_and_a_damaged_slot_falls_back(tmp_path):
    cfg = default_config("gaussians").with_overrides(
        CASES["radial"][1] + ["checkpoint.every=0.25"])
    path = tmp_path / "a.h5"
    with pytest.raises(Interrupted):
        solve(cfg, path, stop=StopAfter(8))
    ck = load_checkpoint(path)
    other = 1 - ck.slot
    seqs = {}
    with h5py.File(path, "r") as f:
        for s in (0, 1):
            meta = f[f"checkpoint/slot{s}/meta"][()].tobytes().rstrip(b"\0")
            seqs[s] = json.loads(meta)["seq"]
    assert seqs[ck.slot] == seqs[other] + 1  # the newer slot is the one in force
    with h5py.File(path, "r+") as f:  # wreck the current slot's state behind HDF5's back
        ds = f[f"checkpoint/slot{ck.slot}/state"]
        offset = ds.id.get_offset() if ds.chunks is None else ds.id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(offset + 100)
        fh.write(b"\xff\x00\xff\x00")
    back = load_checkpoint(path)
    assert back.fallback and back.slot == other and back.meta["seq"] == seqs[other]
    resume(path)  # from the older checkpoint: still the uninterrupted result
    solve(cfg, tmp_path / "ref.h5")
    assert max_difference(path, tmp_path / "ref.h5") <= PDE_TOL


def test_nonfinite_state_keeps_snapshots_and_last_checkpoint(tmp_path, monkeypatch):
    """A stepper that reports a NaN: one-line error with time, dt and the fix; the file keeps
    its snapshots and a finite checkpoint from which a (fixed) run could continue."""
    from meanfield_pde.problems.gaussians import RadialStepper

    real = RadialStepper.advance
    calls = {"n": 0}

    def poisoned(self, state, t, t_stop, max_steps):
        calls["n"] += 1
        if calls["n"] > 5:
            state[5] = np.nan
            rep = real(self, state, t, t_stop, max_steps)
            return rep
        return real(self, state, t, t_stop, max_steps)

    monkeypatch.setattr(RadialStepper, "advance", poisoned)
    monkeypatch.setattr(loop, "CHUNK_STEPS", 7)
    cfg = default_config("gaussians").with_overrides(CASES["radial-fv"][1])
    with pytest.raises(SolverError) as info:
        solve(cfg, tmp_path / "a.h5")
    msg = str(info.value)
    assert "non-finite" in msg and "dt =" in msg and "kept in" in msg and "\n" not in msg
    res = load(tmp_path / "a.h5")
    assert res.n_snapshots >= 1 and np.all(np.isfinite(res["density"]))
    assert np.all(np.isfinite(load_checkpoint(tmp_path / "a.h5").arrays["state"]))


def test_checkpoint_and_resume_errors_are_one_line(tmp_path, capsys):
    cfg = default_config("gaussians").with_overrides(CASES["radial"][1])
    path = tmp_path / "a.h5"
    with pytest.raises(Interrupted):
        solve(cfg, path, stop=StopAfter(3))
    newest = load_checkpoint(path)
    with h5py.File(path, "r+") as f:  # a garbage pointer: the slots prove themselves (digest)
        f["checkpoint/current"][0] = 7
    ck = load_checkpoint(path)
    assert ck.fallback and ck.slot == newest.slot and ck.meta == newest.meta
    with h5py.File(path, "r+") as f:  # killed after the group was made, before a slot
        f["checkpoint/current"][0] = -1
        del f["checkpoint/slot0"], f["checkpoint/slot1"]
    assert main(["resume", str(path)]) == 2
    err = capsys.readouterr().err
    assert "no complete checkpoint" in err and err.count("\n") == 1
    with h5py.File(path, "r+") as f:
        del f["checkpoint"]
    with pytest.raises(DataError, match="has no checkpoint"):
        resume(path)
    gibbs = tmp_path / "g.h5"
    assert main(["gibbs", "gaussians", "--set", "noise.beta=20", "--set", "noise.lam=0.1",
                 "--set", "grid.n=200", "--set", "grid.r_max=9", "-o", str(gibbs)]) == 0
    capsys.readouterr()
    assert main(["resume", str(gibbs)]) == 2
    assert "Gibbs" in capsys.readouterr().err


# ------------------------------------------------------------------ real processes and signals
SUBPROCESS_RUNS = {
    "solve": ["solve", "gaussians", "--set", "time.t_end=8", "--set", "time.n_outputs=81",
              "--set", "checkpoint.every=0.2", "--set", "checkpoint.wall_seconds=0"],
    "sgd": ["sgd", "gaussians", "--set", "time.t_end=4", "--set", "time.n_outputs=41",
            "--set", "sgd.n_neurons=200", "--set", "sgd.eps=1e-4",
            "--set", "checkpoint.every=0.1", "--set", "checkpoint.wall_seconds=0"],
}


def _start(kind: str, path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "meanfield_pde", *SUBPROCESS_RUNS[kind],
                             "-o", str(path), "-q"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_checkpoint(proc: subprocess.Popen, path: Path, timeout: float = 120.0) -> None:
    """Until the run has written its first checkpoint (polling without opening the file: the
    HDF5 superblock is written at creation, the checkpoint group right after)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"run ended early: {proc.communicate()}")
        if path.exists() and b"slot0" in path.read_bytes():
            return
        time.sleep(0.02)
    raise AssertionError("no checkpoint appeared")


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """The uninterrupted runs (same commands, in this process) and their durations."""
    out = {}
    for kind, argv in SUBPROCESS_RUNS.items():
        path = tmp_path_factory.mktemp("ref") / f"{kind}.h5"
        t0 = time.perf_counter()
        assert main([*argv, "-o", str(path), "-q"]) == 0
        out[kind] = (path, time.perf_counter() - t0)
    return out


# SGD's resume is also tested bit for bit by the signal tests (in process and real SIGTERM)
@pytest.mark.parametrize("kind", ["solve", pytest.param("sgd", marks=pytest.mark.slow)])
def test_kill_9_at_random_moments(kind, references, tmp_path):
    """``kill -9`` at 10 random moments of a run: the file always opens, ``resume`` completes,
    and the final file equals the uninterrupted run's (PDE ≤ 1e-13, SGD bit for bit)."""
    ref, duration = references[kind]
    rng = random.Random(1234 + len(kind))
    for trial in range(10):
        path = tmp_path / f"{kind}{trial}.h5"
        proc = _start(kind, path)
        _wait_for_checkpoint(proc, path)
        time.sleep(rng.uniform(0.0, duration))
        proc.kill()  # SIGKILL
        proc.communicate()  # reap it and close the pipes
        res = load(path)  # always opens
        assert res.n_snapshots >= 1
        if not res.complete:
            resume(path)
        assert max_difference(ref, path) <= (PDE_TOL if kind == "solve" else 0.0), trial


@pytest.mark.parametrize(("kind", "sig", "code"), [("solve", signal.SIGTERM, 143),
                                                   ("solve", signal.SIGINT, 130),
                                                   ("sgd", signal.SIGTERM, 143)])
def test_signal_writes_checkpoint_and_exits(kind, sig, code, references, tmp_path, capsys):
    ref, duration = references[kind]
    path = tmp_path / "run.h5"
    proc = _start(kind, path)
    _wait_for_checkpoint(proc, path)
    time.sleep(0.3 * duration)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0 or (proc.returncode == -sig and load(path).complete):
        # the run finished before the signal (or the signal came after the run had left its
        # signal trap, while the finished file was being closed): nothing to test, nothing lost
        pytest.skip("run ended before the signal")
    assert proc.returncode == code
    assert f"meanfield-pde resume {path}" in err and err.strip().count("\n") == 0
    assert main(["resume", str(path), "-q"]) == 0
    assert max_difference(ref, path) <= (PDE_TOL if kind == "solve" else 0.0)


def test_files_of_the_previous_layout_load_and_resume(tmp_path):
    """Files written before the digests existed (variable-length string attributes, no
    rows_sha256 / grid_sha256 / arrays_sha256 / output_spacing) still load and resume, and
    the resumed file carries the digests of its rows."""
    cfg = default_config("gaussians").with_overrides(CASES["radial"][1])
    with pytest.raises(Interrupted):
        solve(cfg, tmp_path / "old.h5", stop=StopAfter(3))
    with h5py.File(tmp_path / "old.h5", "r+") as f:
        for name in ("rows_sha256", "grid_sha256", "output_spacing"):
            del f.attrs[name]
        for name in list(f.attrs):
            value = f.attrs[name]
            if isinstance(value, bytes):
                del f.attrs[name]
                f.attrs[name] = value.decode()  # h5py writes str as variable-length
        for slot in ("slot0", "slot1"):
            if slot in f["checkpoint"]:
                meta = f["checkpoint"][slot]["meta"]
                text = json.loads(bytes(meta[()]).rstrip(b"\0"))
                text.pop("arrays_sha256")
                raw = json.dumps(text).encode()
                meta[...] = np.frombuffer(raw.ljust(meta.shape[0], b"\0"), dtype=np.uint8)
    with h5py.File(tmp_path / "old.h5", "r") as f:
        assert h5py.check_string_dtype(f.attrs.get_id("config").dtype).length is None
    assert load(tmp_path / "old.h5").n_snapshots >= 1
    resume(tmp_path / "old.h5")
    solve(cfg, tmp_path / "ref.h5")
    assert max_difference(tmp_path / "old.h5", tmp_path / "ref.h5") <= PDE_TOL
    with h5py.File(tmp_path / "old.h5", "r") as f:
        assert f.attrs["rows_sha256"].decode().startswith(f"{f.attrs['n_snapshots']} ")


@pytest.mark.parametrize("case", ["radial", "sgd-radial"])
def test_disk_full_stops_cleanly_and_resume_completes(case, tmp_path, monkeypatch, capsys):
    """A disk that fills during the run: the write that would leave less than the reserve is
    refused before HDF5 sees it (libhdf5 does not survive a failed write: the file is left
    pointing past its end and the process can crash), one line, exit 2; the snapshots written
    so far load; after space is freed, resume completes to the uninterrupted result."""
    from meanfield_pde.io import space as storage

    problem, over, run = CASES[case]
    cfg = default_config(problem).with_overrides(over)
    run(cfg, tmp_path / "ref.h5")
    size = (tmp_path / "ref.h5").stat().st_size
    path = tmp_path / "run.h5"
    capacity = {"bytes": storage.DISK_RESERVE_BYTES + storage._METADATA_BYTES + 0.6 * size}
    monkeypatch.setattr(storage, "_free_bytes", lambda p: capacity["bytes"] - (
        path.stat().st_size if path.exists() else 0))
    cmd = "solve" if run is solve else "sgd"
    argv = [cmd, problem, *(a for o in over for a in ("--set", o)), "-o", str(path), "-q"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "disk full" in err and f"resume {path}" in err, err
    res = load(path)
    assert not res.complete and 1 <= res.n_snapshots < load(tmp_path / "ref.h5").n_snapshots
    capacity["bytes"] = 1e12  # space freed
    assert main(["resume", str(path), "-q"]) == 0
    assert max_difference(path, tmp_path / "ref.h5") <= (PDE_TOL if run is solve else 0.0)
