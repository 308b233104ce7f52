"""Issue 18, items 13 and 14: no kernel cache is no failure, and messages say what is wrong.

Item 13: with no writable cache directory at all the kernels are compiled in memory, with one
warning naming the cause and the fix.  Item 14: ``-o`` naming a directory (or a file where a
directory is wanted), an unreadable result file, a dangling symlink (input and output), a full
standard output, a diverging SGD run and ``-q`` on every command that runs: each is one line on
stderr, exit code 2, naming the real cause.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
from helpers import config, one_line_cli_error, python_env

import meanfield_pde
from meanfield_pde import solve
from meanfield_pde.cli import build_parser, main
from meanfield_pde.errors import SolverError
from meanfield_pde.io import load

PACKAGE = Path(meanfield_pde.__file__).resolve().parent
TINY = ("time.t_end=0.5", "time.n_outputs=6", "lagrangian.mass_cells=10")

# the CLI in a fresh interpreter whose system temp directory cannot be written either
NO_TEMP = """
import sys, tempfile
tempfile.tempdir = sys.argv[1]
from meanfield_pde.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture(scope="module")
def result_file(tmp_path_factory) -> Path:
    """A small finished solve of gaussians."""
    path = tmp_path_factory.mktemp("res") / "r.h5"
    solve(config("gaussians", *TINY), path)
    return path


# ----------------------------------------------------------------------------- item 13


def test_no_writable_cache_directory_compiles_in_memory_with_one_warning(tmp_path):
    """HOME, MEANFIELD_PDE_CACHE_DIR and the temp directory all below a regular file (which no
    user, root included, can create), and a read-only package (a regular file named
    ``__pycache__`` in each of its folders: Numba cannot create its in-tree cache there): a
    short solve succeeds (it failed with "cannot cache function ...: no locator available"),
    stderr holds exactly one line, a warning naming the cause and MEANFIELD_PDE_CACHE_DIR."""
    site = tmp_path / "site"
    shutil.copytree(PACKAGE, site / "meanfield_pde",
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    for folder in [p for p in (site / "meanfield_pde").rglob("*") if p.is_dir()]:
        (folder / "__pycache__").write_text("not a directory")
    (site / "meanfield_pde" / "__pycache__").write_text("not a directory")
    blocker = tmp_path / "file"
    blocker.write_text("a regular file: nothing can be created below it")
    env = {k: v for k, v in python_env().items()
           if k not in ("MEANFIELD_PDE_CACHE_DIR", "NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(HOME=str(blocker / "home"), MEANFIELD_PDE_CACHE_DIR=str(blocker / "cache"),
               PYTHONPATH=str(site), PYTHONDONTWRITEBYTECODE="1")
    out = tmp_path / "out.h5"
    proc = subprocess.run(
        [sys.executable, "-c", NO_TEMP, str(blocker / "tmp"), "solve", "gaussians", "-q",
         "--set", "time.t_end=0.5", "-o", str(out)],
        env=env, capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("meanfield-pde: warning: compiled kernels cannot be cached")
    assert "Not a directory" in lines[0] and "set MEANFIELD_PDE_CACHE_DIR to a writable" in lines[0]
    assert load(out).complete


# ----------------------------------------------------------------------------- item 14: -o


def test_output_directory_is_named_as_such_by_every_command(tmp_path, capsys, result_file):
    """``-o DIR`` for every command that writes a file: "is a directory", never an unknown
    figure format; ``validate -o FILE`` (it writes a directory): "is a file"."""
    d = tmp_path / "adir"
    d.mkdir()
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    for argv in (["solve", "gaussians", "-o", d], ["gibbs", "gaussians", "-o", d],
                 ["sgd", "gaussians", "-o", d], ["plot", result_file, "-o", d],
                 ["animate", result_file, "-o", d], ["plot", sweep_dir, "-o", d],
                 ["export", result_file, "--netcdf", d]):
        one_line_cli_error(argv, capsys, f"output {d} is a directory")
    f = tmp_path / "a-file"
    f.write_text("x")
    one_line_cli_error(["validate", "gaussians", "--widths", "10", "--seeds", "0", "-o", f],
                       capsys, f"{f} is a file; validate writes a directory")
    one_line_cli_error(["solve", "gaussians", "-o", f / "x.h5"], capsys,
                       f"cannot write {f / 'x.h5'}: {f} is a file, not a directory")


def test_every_command_with_o_is_covered_above():
    """The commands whose -o names a file are the ones tested above (sweep and validate take a
    directory): a new command with -o must be added there."""
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    with_o = {name for name, p in sub.choices.items()
              if any("-o" in a.option_strings for a in p._actions)}
    assert with_o == {"solve", "gibbs", "sgd", "plot", "animate", "validate", "sweep"}


# ----------------------------------------------------------------------------- unreadable


def _permission_denied(monkeypatch, path: Path) -> None:
    """h5py's open of ``path`` fails as it does for a file without read permission (as root,
    chmod 000 does not stop reads): PermissionError(13, HDF5's message), measured with h5py 3.16
    by a process that dropped to uid 65534."""
    real = h5py.File

    def fake(name, *args, **kwargs):
        if Path(os.fsdecode(name)) == path:
            raise PermissionError(errno.EACCES, (
                f"Unable to synchronously open file (unable to open file: name = '{path}', "
                "errno = 13, error message = 'Permission denied', flags = 0, o_flags = 0)"))
        return real(name, *args, **kwargs)

    monkeypatch.setattr(h5py, "File", fake)


def test_unreadable_file_is_permission_denied_not_corrupt(tmp_path, capsys, monkeypatch,
                                                          result_file):
    _permission_denied(monkeypatch, result_file)
    for argv in (["info", result_file], ["plot", result_file, "-o", tmp_path / "f.png"],
                 ["resume", result_file], ["export", result_file, "--netcdf", tmp_path / "x.nc"]):
        line = one_line_cli_error(argv, capsys, f"cannot read {result_file}: permission denied")
        assert f"chmod u+r {result_file}" in line and "corrupt" not in line


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root reads a chmod 000 file")
def test_unreadable_file_for_real(tmp_path, capsys, result_file):
    locked = tmp_path / "locked.h5"
    shutil.copy(result_file, locked)
    locked.chmod(0)
    try:
        one_line_cli_error(["info", locked], capsys, "permission denied")
    finally:
        locked.chmod(0o644)


# ----------------------------------------------------------------------------- dangling links


def test_dangling_symlink_is_named_as_input_and_as_output(tmp_path, capsys, result_file):
    link = tmp_path / "link.h5"
    target = tmp_path / "gone" / "r.h5"
    link.symlink_to(target)
    for argv in (["info", link], ["resume", link], ["plot", link, "-o", tmp_path / "f.png"]):
        one_line_cli_error(argv, capsys, f"result file {link} is a dangling symlink to {target}")
    for argv in (["solve", "gaussians", "-o", link], ["solve", "gaussians", "-o", link, "--force"],
                 ["sgd", "gaussians", "-o", link]):
        one_line_cli_error(argv, capsys, f"output {link} is a dangling symlink to {target}")
    png = tmp_path / "link.png"
    png.symlink_to(tmp_path / "nowhere.png")
    nc = tmp_path / "link.nc"
    nc.symlink_to(tmp_path / "nowhere.nc")
    for argv in (["plot", result_file, "-o", png], ["animate", result_file, "-o", png],
                 ["export", result_file, "--netcdf", nc]):
        one_line_cli_error(argv, capsys, "is a dangling symlink to")
    assert not (tmp_path / "nowhere.png").exists() and nc.is_symlink()


# ----------------------------------------------------------------------------- stdout full


class _FullStream:
    """A text stream whose writes fail as on a full disk."""

    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def flush(self) -> None:
        pass


def test_full_stdout_after_a_solve_is_one_line_and_the_file_is_intact(tmp_path, capsys,
                                                                     monkeypatch):
    out = tmp_path / "r.h5"
    cfg = ["--set", "time.t_end=0.5", "--set", "time.n_outputs=6",
           "--set", "lagrangian.mass_cells=10"]
    monkeypatch.setattr(sys, "stdout", _FullStream())
    code = main(["solve", "gaussians", *cfg, "-q", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("meanfield-pde: error: cannot write to standard output: No space left")
    res = load(out)
    assert res.complete and res.t.size == 6


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_info_into_dev_full(result_file):
    """The real thing, with the flush at exit: one line, exit 2, no traceback."""
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "meanfield_pde", "info", str(result_file)],
                              stdout=full, stderr=subprocess.PIPE, text=True, env=python_env(),
                              timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "cannot write to standard output" in proc.stderr


# ----------------------------------------------------------------------------- SGD divergence


def test_sgd_divergence_names_the_step_size_and_a_smaller_eps(tmp_path):
    """A relu network with steps far too large for |x|^2 ~ d: overflow is caught as divergence
    (not as a non-finite risk, nor as a Hermite argument error) with the key and a value."""
    out = tmp_path / "sgd.h5"
    cfg = config("single-neuron", "model.activation=relu", "sgd.eps=1.0", "time.t_end=200",
                 "sgd.n_neurons=50")
    with pytest.raises(SolverError) as info:
        meanfield_pde.solve_sgd(cfg, out)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("SGD diverged at t = ")
    assert "too large for the scale of the data and activation" in msg
    assert "lower sgd.eps, e.g. to 0.5 (half the current 1;" in msg
    assert load(out).t.size >= 1  # the snapshots before it are kept


# ----------------------------------------------------------------------------- -q everywhere


def test_quiet_is_accepted_by_every_command_that_runs():
    parser = build_parser()
    runs = {"solve": ["gaussians"], "gibbs": ["gaussians"], "sgd": ["gaussians"],
            "validate": ["gaussians"], "sweep": ["gaussians", "--vary", "model.d=10,20", "-o", "x"],
            "resume": ["r.h5"]}
    for cmd, rest in runs.items():
        for flag in ("-q", "--quiet"):
            assert parser.parse_args([cmd, *rest, flag]).quiet is True, cmd
        assert parser.parse_args([cmd, *rest]).quiet is False, cmd


def test_validate_quiet_draws_no_progress_bar(monkeypatch, tmp_path):
    """-q means what it means for solve: progress=False to the library call."""
    import meanfield_pde.validation as validation

    seen = {}

    def fake_validate(*args, **kwargs):
        seen.update(kwargs)
        raise SolverError("stop here")

    monkeypatch.setattr(validation, "validate", fake_validate)
    assert main(["validate", "gaussians", "-q", "-o", str(tmp_path / "v")]) == 2
    assert seen["progress"] is False


def test_unsearchable_directory_of_an_input_is_permission_denied(tmp_path, capsys, monkeypatch):
    """A result file in a directory without search permission (simulated: root passes): its
    stat fails with EACCES, named as such instead of a raw OSError."""
    import pathlib

    hidden = tmp_path / "private" / "r.h5"
    real = pathlib.Path.exists

    def exists(self, *args, **kwargs):
        if self == hidden:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "exists", exists)
    one_line_cli_error(["info", hidden], capsys,
                       f"cannot reach result file {hidden}: permission denied")


@pytest.mark.parametrize("code, says", [
    (errno.EACCES, "permission denied: choose a location your user may write"),
    (errno.EROFS, "the file system is read-only: choose a location on a writable one"),
])
def test_failed_create_names_the_cause(tmp_path, capsys, monkeypatch, code, says):
    """The writer cannot create its file: the error number decides the fix (it said "check that
    the location is writable and the disk is not full" whatever the cause)."""
    import meanfield_pde.io.writer as writer

    def refuse(path, overwrite):
        raise OSError(code, f"Unable to synchronously create file (unable to open file: name = "
                            f"'{path}', errno = {code}, error message = '{os.strerror(code)}')")

    monkeypatch.setattr(writer, "create_file", refuse)
    out = tmp_path / "r.h5"
    one_line_cli_error(["solve", "gaussians", "-q", "-o", out], capsys, says)
    assert not out.exists()
