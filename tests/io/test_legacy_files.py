"""Result files written before the I/O package existed (tests/data/legacy, written by
meanfield_pde/storage.py at commit 0853f80; see the README there) still load with the same
numbers, and still resume.

``expected.json`` records what the old reader returned for each file: the times, the attributes,
the SHA-256 of every field, grid and checkpoint array, the checkpoint's slot and metadata.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT

from meanfield_pde.config import default_config
from meanfield_pde.errors import DataError
from meanfield_pde.io import load, load_checkpoint, read_attrs
from meanfield_pde.runner.pde import solve
from meanfield_pde.runner.resume import resume
from meanfield_pde.runner.sgd import solve_sgd

LEGACY = ROOT / "tests" / "data" / "legacy"
EXPECTED = json.loads((LEGACY / "expected.json").read_text())
# the sgd command line of make.sh, as config overrides
SGD = ["model.d=8", "sgd.n_neurons=20", "time.t_end=0.02", "time.n_outputs=2"]


def digest(arr: np.ndarray) -> list:
    arr = np.ascontiguousarray(arr)
    return [list(arr.shape), arr.dtype.str, hashlib.sha256(arr.tobytes()).hexdigest()]


def test_the_fixtures_are_there() -> None:
    assert sorted(EXPECTED) == sorted(p.name for p in LEGACY.glob("*.h5"))
    assert sum(p.stat().st_size for p in LEGACY.iterdir()) < 300_000


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_legacy_file_loads_with_the_same_numbers(name: str) -> None:
    want = EXPECTED[name]
    res = load(LEGACY / name)
    assert res.problem == want["problem"] and res.complete == want["complete"]
    assert res.t.tolist() == want["t"]  # exact
    assert {k: digest(v) for k, v in res.fields.items()} == want["fields"]
    assert {k: digest(v) for k, v in res.grid.items()} == want["grid"]
    attrs = {k: v for k, v in res.attrs.items() if k != "config"}
    assert attrs == want["attrs"]
    assert res.format_version == 1 and res.package_version == want["attrs"]["package_version"]
    assert "seed" in res.run_attrs and "n_snapshots" not in res.run_attrs
    raw = read_attrs(LEGACY / name)
    assert json.loads(raw.pop("config")) == res.config
    assert raw == attrs

    if "error" in want["checkpoint"]:
        with pytest.raises(DataError, match="no checkpoint"):
            load_checkpoint(LEGACY / name)
        return
    ck = load_checkpoint(LEGACY / name)
    assert (ck.slot, ck.fallback) == (want["checkpoint"]["slot"], want["checkpoint"]["fallback"])
    assert ck.meta == want["checkpoint"]["meta"]
    assert {k: digest(v) for k, v in ck.arrays.items()} == want["checkpoint"]["arrays"]


def test_interrupted_legacy_run_resumes_past_its_end(tmp_path: Path) -> None:
    """The run stopped at t = 0.2 resumes in place to t_end = 1 (past its stored 0.5, same
    spacing); its old rows stay, and the whole file equals a fresh solve to t = 1 on its grid."""
    path = tmp_path / "run.h5"
    shutil.copyfile(LEGACY / "gaussians-interrupted.h5", path)
    old = load(path)
    resume(path, t_end=1.0)
    res = load(path)
    assert res.complete and res.config["time"]["t_end"] == 1.0
    np.testing.assert_allclose(res.t, np.linspace(0.0, 1.0, 11), rtol=0, atol=1e-15)
    k = old.n_snapshots
    for name, rows in old.fields.items():
        np.testing.assert_array_equal(res[name][:k], rows)
    cfg = default_config("gaussians").with_overrides(  # the resumed run keeps its auto wall
        ["grid.n=100", f"grid.r_max={old.attrs['r_max']!r}", "time.t_end=1", "time.n_outputs=11",
         "solver.method='fv'"])  # files from before the choice were finite volumes
    fresh = load(solve(cfg, tmp_path / "fresh.h5").path)
    np.testing.assert_array_equal(res.t, fresh.t)
    assert "risk_error" not in res.fields  # a legacy run resumes without a companion
    for name in res.fields:
        scale = np.max(np.abs(fresh[name]))
        assert np.max(np.abs(res[name] - fresh[name])) <= 1e-12 * scale, name
    assert len(load_checkpoint(path).meta) > 0


def test_finished_legacy_sgd_run_extends_bit_for_bit(tmp_path: Path) -> None:
    """The complete SGD file continues to t_end = 0.04 (one more output at the same spacing),
    equal bit for bit to a fresh SGD run to 0.04 (the generator state is restored)."""
    path = tmp_path / "sgd.h5"
    shutil.copyfile(LEGACY / "sgd-gaussians.h5", path)
    resume(path, t_end=0.04)
    res = load(path)
    assert res.complete and res.n_snapshots == 3
    cfg = default_config("gaussians").with_overrides(
        [*SGD[:-2], "time.t_end=0.04", "time.n_outputs=3"])
    fresh = load(solve_sgd(cfg, tmp_path / "fresh.h5").path)
    np.testing.assert_array_equal(res.t, fresh.t)
    for name in fresh.fields:
        np.testing.assert_array_equal(res[name], fresh[name])
