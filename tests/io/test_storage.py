"""Tests of the HDF5 result files (the meanfield_pde.io package)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import ROOT, python_env, run_python

from meanfield_pde.errors import CorruptFile, DataError, OutputExists
from meanfield_pde.io import FORMAT_VERSION, Result, ResultWriter, load

N = 8
CONFIG = {"model": {"sigma": 0.5, "n_hidden": 1000}, "grid": {"n": N}, "times": [0.0, 1.0]}


def grid(n: int = N) -> dict[str, np.ndarray]:
    """Grid arrays of the 'gaussians' problem on [0, 1]."""
    edges = np.linspace(0.0, 1.0, n + 1)
    return {"r_edges": edges, "r_centers": 0.5 * (edges[1:] + edges[:-1])}


def fields(n: int = N) -> dict[str, tuple[int, ...]]:
    """Field shapes of the 'gaussians' problem."""
    return {"risk": (), "mass": (), "density": (n,)}


def snapshot(k: int, n: int = N) -> dict[str, float | np.ndarray]:
    """Deterministic snapshot number ``k``."""
    return {"risk": 1.0 / (k + 1), "mass": 1.0, "density": np.arange(n) + 10.0 * k}


def make_writer(path: Path, n: int = N, **kwargs) -> ResultWriter:
    """A 'gaussians' writer with the test config."""
    return ResultWriter(
        path, problem="gaussians", config=CONFIG, grid=grid(n), fields=fields(n), **kwargs
    )


def write(path: Path, k: int, n: int = N) -> ResultWriter:
    """Write a file with ``k`` snapshots at t = 0, 0.5, 1, ... (not finished)."""
    w = make_writer(path, n)
    for i in range(k):
        w.append(0.5 * i, snapshot(i, n))
    return w


def assert_one_line(exc: pytest.ExceptionInfo, path: Path | None = None) -> None:
    """The DataError message is one line and names the file."""
    msg = str(exc.value)
    assert "\n" not in msg and msg.strip() == msg and msg
    if path is not None:
        assert str(path) in msg


# --------------------------------------------------------------------------------------
# writing and reading back
# --------------------------------------------------------------------------------------


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    attrs = {"seed": np.int64(7), "label": "baseline", "flag": True, "info": {"cpu": "x", "n": 2}}
    w = make_writer(path, attrs=attrs)
    for k in range(3):
        w.append(0.5 * k, snapshot(k))
    w.set_attrs(n_steps=300)
    w.finish(wall_seconds=1.25, compile_seconds=0.5)

    r = load(path)
    assert isinstance(r, Result)
    assert r.path == path and r.problem == "gaussians" and r.complete is True
    assert r.config == CONFIG
    np.testing.assert_array_equal(r.t, [0.0, 0.5, 1.0])
    assert set(r.fields) == {"risk", "mass", "density"}
    np.testing.assert_array_equal(r.fields["risk"], [1.0, 0.5, 1.0 / 3.0])
    np.testing.assert_array_equal(r["mass"], np.ones(3))
    assert r["density"].shape == (3, N) and r["density"].dtype == np.float64
    np.testing.assert_array_equal(r["density"][2], snapshot(2)["density"])
    for name, arr in grid().items():
        np.testing.assert_array_equal(r.grid[name], arr)
        np.testing.assert_array_equal(r[f"grid/{name}"], arr)
    np.testing.assert_array_equal(r["t"], r.t)
    with pytest.raises(KeyError):
        r["nope"]

    a = r.attrs
    assert a["format_version"] == FORMAT_VERSION and a["n_snapshots"] == 3
    assert a["problem"] == "gaussians" and a["complete"] is True and a["config"] == CONFIG
    assert isinstance(a["package_version"], str) and a["package_version"]
    assert datetime.fromisoformat(a["created_utc"]).tzinfo is not None
    assert a["seed"] == 7 and type(a["seed"]) is int
    assert a["label"] == "baseline" and a["flag"] is True
    assert a["info"] == {"cpu": "x", "n": 2}
    assert a["n_steps"] == 300 and a["wall_seconds"] == 1.25 and a["compile_seconds"] == 0.5
    assert "json_attrs" not in a
    with h5py.File(path, "r") as f:  # the config is stored as sorted JSON text
        assert f.attrs["config"].decode() == json.dumps(CONFIG, sort_keys=True,
                                                        allow_nan=False)


def test_layout(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    write(path, 2)
    with h5py.File(path, "r") as f:
        for name, shape in {"t": (2,), "risk": (2,), "density": (2, N)}.items():
            ds = f[name]
            assert ds.shape == shape and ds.dtype == np.float64
            assert ds.maxshape == (None, *shape[1:]) and ds.chunks == (1, *shape[1:])
        assert f["grid/r_edges"].shape == (N + 1,) and "checkpoint" not in f


def test_n_snapshots_grows(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    w = make_writer(path)
    assert w.path == path and w.n_snapshots == 0
    r = load(path)
    assert r.t.shape == (0,) and r["density"].shape == (0, N) and r.complete is False
    for k in range(3):
        w.append(float(k), snapshot(k))
        assert w.n_snapshots == k + 1
        r = load(path)  # readable between writes
        assert r.t.shape == (k + 1,) and r["density"].shape == (k + 1, N)
        assert r.complete is False
    w.finish()
    assert load(path).complete is True


def test_index_of_time(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    write(path, 3)
    r = load(path)
    assert r.index_of_time(0.0) == 0
    assert r.index_of_time(0.5) == 1
    assert r.index_of_time(1.0 * (1 + 1e-14)) == 2
    with pytest.raises(DataError, match=r"0\.75.*\[0\.0, 0\.5, 1\.0\]") as exc:
        r.index_of_time(0.75)
    assert_one_line(exc, path)


def test_existing_file_needs_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    write(path, 2)
    with pytest.raises(OutputExists, match="overwrite=True") as exc:  # the API's words
        make_writer(path)
    assert_one_line(exc, path)
    assert load(path).t.shape == (2,)  # untouched
    make_writer(path, overwrite=True)
    assert load(path).t.shape == (0,)


def test_creates_missing_parent_directory(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "run.h5"
    write(path, 1)
    assert load(path).t.shape == (1,)


def test_unwritable_location(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    path = blocker / "run.h5"
    with pytest.raises(DataError, match="cannot write") as exc:
        make_writer(path)
    assert_one_line(exc, path)


def test_append_checks_keys_shapes_and_times(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    w = write(path, 1)
    good = snapshot(1)
    with pytest.raises(ValueError, match="missing"):
        w.append(1.0, {k: v for k, v in good.items() if k != "mass"})
    with pytest.raises(ValueError, match="unexpected"):
        w.append(1.0, {**good, "extra": 1.0})
    with pytest.raises(ValueError, match="shape"):
        w.append(1.0, {**good, "density": np.zeros(N + 1)})
    with pytest.raises(ValueError, match="larger"):
        w.append(0.0, good)
    assert w.n_snapshots == 1 and load(path).t.shape == (1,)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), np.float64("-inf")])
def test_nonfinite_config_is_refused(tmp_path: Path, bad: float) -> None:
    path = tmp_path / "run.h5"
    config = {"model": {"sigma": bad}}
    with pytest.raises(ValueError, match=r"config\['model'\]\['sigma'\]"):
        ResultWriter(path, problem="gaussians", config=config, grid=grid(), fields=fields())
    assert not path.exists()


def test_bad_attrs_and_fields_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    with pytest.raises(ValueError, match="reserved"):
        make_writer(path, attrs={"n_snapshots": 3})
    with pytest.raises(TypeError):
        make_writer(path, attrs={"when": object()})
    with pytest.raises(ValueError, match="reserved"):
        ResultWriter(path, problem="p", config={}, grid={}, fields={"t": ()})
    assert not path.exists()


# --------------------------------------------------------------------------------------
# crashes
# --------------------------------------------------------------------------------------

WRITE_3 = """
    import os, signal
    import numpy as np
    from meanfield_pde.io import ResultWriter
    w = ResultWriter({path!r}, problem="gaussians", config={{"model": {{"sigma": 0.5}}}},
                     grid={{"r_edges": np.linspace(0, 1, 5)}},
                     fields={{"risk": (), "density": (4,)}})
    for k in range(3):
        w.append(0.5 * k, {{"risk": 1.0 / (k + 1), "density": np.full(4, float(k))}})
"""


@pytest.mark.parametrize(
    ("ending", "returncode"),
    [("os._exit(1)", 1), ("os.kill(os.getpid(), signal.SIGKILL)", -signal.SIGKILL)],
)
def test_crash_between_snapshots_keeps_finished_ones(
    tmp_path: Path, ending: str, returncode: int
) -> None:
    path = tmp_path / "run.h5"
    proc = run_python(WRITE_3.format(path=str(path)) + f"    {ending}\n")
    assert proc.returncode == returncode, proc.stderr
    r = load(path)
    assert r.complete is False
    np.testing.assert_array_equal(r.t, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(r["density"][:, 0], [0.0, 1.0, 2.0])


def test_kill_during_append_hides_half_written_snapshot(tmp_path: Path) -> None:
    """SIGKILL after resizing and writing the 4th snapshot but before n_snapshots is updated."""
    path = tmp_path / "run.h5"
    tail = f"""
    import h5py
    f = h5py.File({str(path)!r}, "r+")
    for name in ("t", "risk", "density"):
        f[name].resize(4, axis=0)
        f[name][3] = 99.0
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = run_python(WRITE_3.format(path=str(path)) + tail)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    r = load(path)
    np.testing.assert_array_equal(r.t, [0.0, 0.5, 1.0])
    assert r["density"].shape == (3, 4) and r["risk"].shape == (3,)


def test_append_waits_for_reader_in_other_process(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    w = write(path, 1)
    code = f"""
        import sys, time, h5py
        with h5py.File({str(path)!r}, "r"):
            print("open", flush=True)
            time.sleep(0.5)
    """
    env = python_env()
    with subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, stdout=subprocess.PIPE, text=True
    ) as reader:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "open"
        w.append(1.0, snapshot(1))  # the file is locked by the reader: must wait, not fail
        assert reader.wait(timeout=30) == 0
    assert load(path).t.shape == (2,)


# --------------------------------------------------------------------------------------
# unreadable files
# --------------------------------------------------------------------------------------


def _missing(path: Path) -> None:
    pass


def _text(path: Path) -> None:
    path.write_text("risk,mass\n0.5,1.0\n")


def _foreign_hdf5(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(10.0)
        f.attrs["creator"] = "someone else"


def _truncated(path: Path) -> None:
    write(path, 6, n=200)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flipped(path: Path) -> None:
    # 6 x 16 kB snapshots: the middle of the file is chunk data (checked by Fletcher-32);
    # with tiny snapshots it would be the unused tail of a chunk-index node.
    write(path, 6, n=2000)
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    middle = len(data) // 2
    for i in range(middle - 32, middle + 32):
        data[i] ^= int(rng.integers(1, 256))
    path.write_bytes(bytes(data))


def _newer_format(path: Path) -> None:
    write(path, 2)
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = FORMAT_VERSION + 1


def _bad_config(path: Path) -> None:
    write(path, 2)
    with h5py.File(path, "r+") as f:
        f.attrs["config"] = "{not json"
        del f.attrs["config_sha256"]  # as in files of older versions


def _edited_config(path: Path) -> None:
    write(path, 2)
    with h5py.File(path, "r+") as f:  # valid JSON, but not what was written
        f.attrs["config"] = f.attrs["config"].decode().replace("0", "1")


def _short_datasets(path: Path) -> None:
    write(path, 2)
    with h5py.File(path, "r+") as f:
        f.attrs["n_snapshots"] = 5


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (_missing, "does not exist"),
        (_text, "not an HDF5 file"),
        (_foreign_hdf5, "not written by meanfield-pde"),
        (_truncated, "truncated or corrupt"),
        (_flipped, "truncated or corrupt"),
        (_newer_format, "upgrade meanfield-pde"),
        (_bad_config, "not valid JSON"),
        (_edited_config, "does not match its checksum"),
        (_short_datasets, "n_snapshots is 5"),
    ],
)
def test_unreadable_file_gives_one_line_data_error(tmp_path: Path, damage, match: str) -> None:
    path = tmp_path / "run.h5"
    damage(path)
    with pytest.raises(DataError, match=match) as exc:
        load(path)
    assert_one_line(exc, path)
    # truncated or corrupt files, and only those, are a CorruptFile
    assert isinstance(exc.value, CorruptFile) == (CorruptFile.FIX in str(exc.value))
    assert isinstance(exc.value, CorruptFile) == (damage in CORRUPT)


CORRUPT = {_truncated, _flipped, _bad_config, _edited_config, _short_datasets}


def test_directory_is_not_a_result(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="directory") as exc:
        load(tmp_path)
    assert_one_line(exc, tmp_path)


# --------------------------------------------------------------------------------------
# integrity beyond HDF5's checksums
# --------------------------------------------------------------------------------------
def _full_file(path: Path) -> ResultWriter:
    """A file that went through every kind of write: snapshots, extra string / JSON
    attributes, two checkpoints, a reopen and a config update."""
    w = write(path, 4)
    w.set_attrs(label="baseline", empty="", info={"cpu": "x"}, seed=3)
    for seq in range(2):
        w.write_checkpoint({"state": np.arange(N, dtype=float) + seq}, {"t": 1.5, "seq_": seq})
    w.close()  # one writer per file: the first lets go before the reopen
    w = ResultWriter.reopen(path, 3)
    w.update_config({**CONFIG, "times": [0.0, 2.0]}, CONFIG)
    w.append(1.25, snapshot(3))
    w.finish(wall_seconds=1.0, note="done")
    return w


def test_no_metadata_without_checksum_for_attributes(tmp_path: Path) -> None:
    """Every attribute is a fixed-length value in the root's object header (checksummed in
    the HDF5 1.8 format): no global heap ("GCOL": variable-length strings; a flipped size
    field there made libhdf5 loop forever) and no dense attribute storage ("FRHP")."""
    path = tmp_path / "run.h5"
    _full_file(path)
    data = path.read_bytes()
    assert b"GCOL" not in data and b"FRHP" not in data
    with h5py.File(path, "r") as f:
        for name in f.attrs:
            dtype = f.attrs.get_id(name).dtype
            info = h5py.check_string_dtype(dtype)
            assert info is None or info.length is not None, name
    r = load(path)
    assert r.attrs["empty"] == "" and r.attrs["note"] == "done" and r.attrs["info"] == {"cpu": "x"}
    assert r.config["times"] == [0.0, 2.0] and r.n_snapshots == 4


def _zero_chunk(path: Path, name: str, offset: tuple[int, ...]) -> None:
    """Replace one stored chunk by zeros that pass Fletcher-32 (the checksum of zeros is 0):
    what a damaged chunk index entry pointing at zero bytes of the file reads as."""
    with h5py.File(path, "r+") as f:
        ds = f[name]
        nbytes = int(np.prod(ds.chunks)) * ds.dtype.itemsize + 4
        ds.id.write_direct_chunk(offset, bytes(nbytes), filter_mask=0)


@pytest.mark.parametrize(("name", "offset", "match"), [
    ("density", (2, 0), "snapshots do not match their SHA-256"),
    ("risk", (0,), "snapshots do not match their SHA-256"),
    ("mass", (3,), "snapshots do not match their SHA-256"),
    ("t", (1,), "not finite and strictly increasing"),
    ("grid/r_centers", (0,), "grid arrays do not match their SHA-256"),
])
def test_rows_and_grid_read_as_zeros_are_detected(tmp_path: Path, name, offset, match) -> None:
    path = tmp_path / "run.h5"
    _full_file(path)
    load(path)
    _zero_chunk(path, name, offset)
    with pytest.raises(CorruptFile, match=match) as exc:
        load(path)
    assert_one_line(exc, path)


def test_checkpoint_arrays_read_as_zeros_fall_back(tmp_path: Path) -> None:
    """A slot whose state reads as zeros fails its digest: the other (older) slot is used;
    with both damaged, a one-line error."""
    from meanfield_pde.io import load_checkpoint

    path = tmp_path / "run.h5"
    w = write(path, 2)
    for seq in range(2):
        w.write_checkpoint({"state": np.arange(N, dtype=float) + 1 + seq}, {"t": 0.5})
    ck = load_checkpoint(path)
    assert ck.slot == 1 and not ck.fallback and ck.arrays["state"][0] == 2.0
    _zero_chunk(path, "checkpoint/slot1/state", (0,))
    ck = load_checkpoint(path)
    assert ck.slot == 0 and ck.fallback and ck.arrays["state"][0] == 1.0
    _zero_chunk(path, "checkpoint/slot0/state", (0,))
    with pytest.raises(CorruptFile, match="SHA-256") as exc:
        load_checkpoint(path)
    assert_one_line(exc, path)


def _set_attr(path: Path, name: str, value) -> None:
    with h5py.File(path, "r+") as f:
        f.attrs[name] = value


def test_rows_digest_allows_the_crash_windows_only(tmp_path: Path) -> None:
    """rows_sha256 = "K h_K h_P" is written between a write's rows and n_snapshots = N: a kill
    there leaves K > N with h_P = h_N (the previous commit's hash covers the rows); a kill
    inside a resume's reopen leaves K < N (h_K covers a prefix).  Anything else fails a digest."""
    path = tmp_path / "run.h5"
    write(path, 4)
    with h5py.File(path, "r") as f:
        k, last, prev = f.attrs["rows_sha256"].decode().split()
    assert k == "4"
    _set_attr(path, "n_snapshots", np.int64(3))  # killed before n_snapshots = 4
    assert load(path).n_snapshots == 3
    _set_attr(path, "n_snapshots", np.int64(2))  # K = N + 2 but h_P = h_3: not a crash window
    with pytest.raises(DataError, match="do not match their SHA-256"):
        load(path)
    write(tmp_path / "prefix.h5", 2)
    with h5py.File(tmp_path / "prefix.h5", "r") as f:
        prefix = f.attrs["rows_sha256"]
    _set_attr(path, "rows_sha256", prefix)  # K = 2 < N = 4: a prefix, verified
    _set_attr(path, "n_snapshots", np.int64(4))
    assert load(path).n_snapshots == 4
    _set_attr(path, "rows_sha256", np.bytes_(f"4 {prev} {prev}".encode()))  # wrong h_4
    with pytest.raises(DataError, match="do not match their SHA-256"):
        load(path)


def test_typed_errors_speak_the_apis_language(tmp_path: Path, monkeypatch, capsys) -> None:
    """The library's errors name the Python API's fix (overwrite=True, resume(path)); the CLI
    words the same errors with its flags (--force, -o, meanfield-pde resume FILE)."""
    from meanfield_pde.cli import _cli_words
    from meanfield_pde.errors import DiskFull
    from meanfield_pde.io import space as storage

    path = tmp_path / "run.h5"
    w = write(path, 1)
    monkeypatch.setattr(storage, "_free_bytes", lambda p: float(storage.DISK_RESERVE_BYTES))
    with pytest.raises(DiskFull) as full:
        w.append(1.0, snapshot(1, N))
    msg = str(full.value)
    assert "meanfield_pde.resume(" in msg and "meanfield-pde" not in msg
    assert f"continue with: meanfield-pde resume {path}" in _cli_words(full.value)
    assert load(path).n_snapshots == 1  # nothing written
    monkeypatch.undo()
    with pytest.raises(OutputExists) as exists:
        make_writer(path)
    assert "--force" not in str(exists.value) and "overwrite=True" in str(exists.value)
    assert "pass --force to overwrite it or choose another path with -o" in _cli_words(
        exists.value)


def test_check_new_output(tmp_path: Path) -> None:
    """One check of an output path, used by the writer and (before any work) by the CLI."""
    from meanfield_pde.io import check_new_output

    path = tmp_path / "new.h5"
    assert check_new_output(str(path), overwrite=False) == path
    write(path, 1)
    with pytest.raises(OutputExists, match="overwrite=True"):
        check_new_output(path, overwrite=False)
    assert check_new_output(path, overwrite=True) == path
    with pytest.raises(DataError, match="is a directory") as exc:
        check_new_output(tmp_path, overwrite=True)
    assert not isinstance(exc.value, OutputExists)


def test_run_attrs_leave_out_the_layout(tmp_path: Path) -> None:
    from meanfield_pde.io import read_attrs

    path = tmp_path / "run.h5"
    write(path, 2).finish(seed=3, info={"cpu": "x"})
    res = load(path)
    assert res.run_attrs == {"seed": 3, "info": {"cpu": "x"}}
    assert res.format_version == FORMAT_VERSION and res.package_version
    attrs = read_attrs(path)
    assert json.loads(attrs.pop("config")) == res.config
    assert attrs == {k: v for k, v in res.attrs.items() if k != "config"}


def _io_modules() -> dict[str, Path]:
    return {p.stem: p for p in (ROOT / "meanfield_pde" / "io").glob("*.py")}


def test_io_messages_name_no_cli_flags() -> None:
    """The I/O package words its errors for the Python API; the CLI words its own hints."""
    import ast
    import re

    for path in [*_io_modules().values(), ROOT / "meanfield_pde" / "errors.py"]:
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
                      and node.body and isinstance(node.body[0], ast.Expr)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and id(node) not in docstrings):
                assert not re.search(r"(^|\s)--?[a-z]|meanfield-pde \w", node.value), (
                    path.name, node.value)


def test_io_layers() -> None:
    """layout is the bottom of the package; the reader and the writer never import each other."""
    import ast

    def io_imports(path: Path) -> set[str]:
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                names.add(node.module or "")
        return names

    mods = _io_modules()
    assert io_imports(mods["layout"]) == set()
    assert not io_imports(mods["reader"]) & {"writer", "checkpoint"}
    assert "reader" not in io_imports(mods["writer"])
    for name, path in mods.items():
        assert name not in io_imports(path)
