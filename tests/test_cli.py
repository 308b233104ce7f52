"""The command line: the default run, info, plot, example configs, and one-line errors (exit 2)."""

import os
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest
from helpers import ROOT, one_line_cli_error, run_module
from roundoff import energy_roundoff

from meanfield_pde import load
from meanfield_pde.cli import main
from meanfield_pde.config import build_config
from meanfield_pde.problems import problem_class

EXAMPLES = sorted((ROOT / "data" / "configs").glob("*.toml"))


def test_default_solve_info_and_plot(tmp_path):
    """`meanfield-pde solve gaussians` without -o writes runs/gaussians-<UTC>.h5 and says so."""
    proc = run_module("solve", "gaussians", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    files = list((tmp_path / "runs").glob("gaussians-*.h5"))
    assert len(files) == 1 and str(files[0].relative_to(tmp_path)) in proc.stdout
    res = load(files[0])
    assert res.complete and res.config["model"]["d"] == 40
    for t in (0, 0.5, 1, 2, 5, 10, 20):
        res.index_of_time(t)
    assert res.attrs["package_version"] and res.attrs["format_version"] == 1
    info = run_module("info", files[0])
    assert info.returncode == 0 and "risk" in info.stdout and "[model]" in info.stdout
    png = tmp_path / "fig.png"
    pl = run_module("plot", files[0], "-o", png)
    assert pl.returncode == 0 and png.stat().st_size > 10_000
    # `meanfield-pde info FILE | head -1`: a reader that leaves ends the command quietly (128 +
    # SIGPIPE, as for other Unix tools), not with a traceback (a closed pipe: deterministic)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        piped = subprocess.run([sys.executable, "-m", "meanfield_pde", "info", str(files[0])],
                               stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=600)
    finally:
        os.close(write_end)
    assert piped.returncode == 128 + signal.SIGPIPE and piped.stderr == ""


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_configs_run(path, tmp_path, capsys):
    out = tmp_path / "ex.h5"
    assert main(["solve", str(path), "-o", str(out), "-q"]) == 0
    res = load(out)
    assert res.complete
    assert np.max(np.abs(res["mass"] - 1.0)) < 1e-12
    field = "free_energy" if "free_energy" in res.fields else "risk"
    energy = res[field]
    # the dissipated energy: non-increasing up to the round-off of its two evaluations
    cls = problem_class(res.problem)
    p = cls(cls.with_walls(build_config(res.problem, res.config), res.attrs))
    bound = np.array([energy_roundoff(p, rho, field) for rho in res["density"]])
    assert np.all(np.diff(energy) <= bound[1:] + bound[:-1])
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["solve", "gaussians", "--set", "model.delta=1.5"], "model.delta = 1.5 is out of range"),
        (["solve", "gaussians", "--set", "model.d=1"], "model.d = 1 is out of range"),
        (["solve", "gaussians", "--set", "init.kappa=0"], "init.kappa = 0 is out of range"),
        (["solve", "gaussians", "--set", "grid.n=4"], "grid.n = 4 is out of range"),
        (["solve", "gaussians", "--set", "model.delta=inf"], "model.delta = inf is not finite"),
        (["solve", "gaussians", "--set", "time.t_end=nan"], "is not finite"),
        (["solve", "gaussians", "--set", "model.activation=swish"], "known"),
        (["solve", "gaussians", "--set", "model.activation_params.s9=1"], "s9"),
        (["solve", "gaussians", "--set", "grid.colour=1"], "unknown key grid.colour"),
        (["solve", "nonsense"], "neither a problem"),
        (["solve", "missing.toml"], "does not exist"),
        (["info", "missing.h5"], "missing.h5"),
        (["plot", "missing.h5", "-o", "x.png"], "missing.h5"),
        (["solve"], "arguments are required"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, fragment, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one_line_cli_error(args, capsys, fragment)
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_bad_files(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("problem = 'gaussians'\n[model\n")
    one_line_cli_error(["solve", bad], capsys, "is not valid TOML")
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    one_line_cli_error(["info", text], capsys, "notes.h5")
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = 1
    one_line_cli_error(["info", foreign], capsys, "foreign.h5")


def test_existing_output_is_never_overwritten_silently(tmp_path, capsys):
    out = tmp_path / "keep.h5"
    args = ["solve", "gaussians", "-o", str(out), "-q", "--set", "time.t_end=0.5",
            "--set", "grid.n=100"]
    assert main(args) == 0
    before = out.read_bytes()
    one_line_cli_error(args, capsys, "--force")
    assert out.read_bytes() == before
    assert main([*args, "--force", "--set", "time.t_end=1"]) == 0
    assert load(out).t[-1] == 1.0


def test_unwritable_output(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_line_cli_error(["solve", "gaussians", "-q", "-o", blocker / "sub" / "r.h5"], capsys,
                       "sub")


def test_config_command_and_version(capsys):
    assert main(["config", "gaussians", "--set", "model.d=inf"]) == 0
    out = capsys.readouterr().out
    assert 'd = "inf"' in out and 'problem = "gaussians"' in out
    assert main(["config", "gaussians", "--keys"]) == 0
    assert "model.delta" in capsys.readouterr().out
    assert main(["config", "single_neuron"]) == 0  # an alias the problem declares
    assert 'problem = "single-neuron"' in capsys.readouterr().out
    proc = run_module("--version")
    assert proc.returncode == 0 and "meanfield-pde" in proc.stdout


@pytest.mark.parametrize("problem", ["gaussians", "single-neuron"])
def test_steady_without_noise_is_refused_up_front(tmp_path, capsys, problem):
    """--steady on a noiseless run used to be accepted and then stop at the wall."""
    out = tmp_path / "r.h5"
    assert main(["solve", problem, "--steady", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "noise.beta" in err and "--steady" in err
    assert not out.exists()  # refused before anything was written
