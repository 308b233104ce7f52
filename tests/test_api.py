"""The public API: every exported name resolves to the real object (signature, docstring), and
the hints the API-worded errors give name functions that exist."""

from __future__ import annotations

import inspect
import re

import meanfield_pde
from meanfield_pde.errors import DiskFull
from meanfield_pde.runner.trackers import Interrupted


def test_every_exported_name_resolves():
    for name in meanfield_pde.__all__:
        obj = getattr(meanfield_pde, name)
        assert obj is not None, name
        if callable(obj) and not isinstance(obj, type):
            assert obj.__doc__, name
    assert set(meanfield_pde.__all__) <= set(dir(meanfield_pde))


def test_lazy_names_are_the_defining_modules_objects():
    from meanfield_pde.io import load
    from meanfield_pde.runner.resume import resume
    from meanfield_pde.validation import validate

    assert meanfield_pde.load is load and meanfield_pde.resume is resume
    assert meanfield_pde.validate is validate
    assert "t_end" in inspect.signature(meanfield_pde.resume).parameters


def test_api_hints_name_existing_functions(tmp_path):
    path = tmp_path / "run.h5"
    for exc in (Interrupted(path, 1.0, 15), DiskFull(path, "no space", resumable=True)):
        named = re.findall(r"meanfield_pde\.(\w+)\(", str(exc))
        assert named, str(exc)
        for name in named:
            assert callable(getattr(meanfield_pde, name)), name


def test_run_options_are_worded_for_the_api_and_for_the_cli(tmp_path, capsys):
    """A refused run argument names the Python argument through the API and the flag through
    the CLI (errors.OptionError), refused before anything is written."""
    from meanfield_pde.cli import main
    from meanfield_pde.errors import OptionError

    out = tmp_path / "r.h5"
    try:
        meanfield_pde.solve(meanfield_pde.default_config("gaussians"), out, steady=True)
    except OptionError as exc:
        assert str(exc).startswith("steady needs noise") and "--" not in str(exc)
    else:
        raise AssertionError("a noiseless steady run was accepted")
    assert main(["solve", "gaussians", "--steady", "-o", str(out)]) == 2
    assert capsys.readouterr().err.count("--steady") == 2
    assert not out.exists()


def test_wall_fix_is_worded_for_the_api_and_for_the_cli():
    """errors.WallReached: the library suggests cfg.replace({...}), the CLI --set KEY=VALUE,
    with the same numbers; a lower wall is to be lowered, an upper one raised."""
    from meanfield_pde.cli import _cli_words
    from meanfield_pde.errors import WallReached

    upper = WallReached("r_max", 2.5, 0.01, 3.0, 4, 1e-6, 5.0)
    assert str(upper).endswith('raise it, e.g. cfg.replace({"grid.r_max": 5})')
    assert _cli_words(upper).endswith("raise it, e.g. --set grid.r_max=5")
    lower = WallReached("a_min", -1.0, 0.01, 3.0, 4, 1e-6, -3.0)
    assert _cli_words(lower).endswith("lower it, e.g. --set grid.a_min=-3")
    assert str(upper).split("; ")[0] == _cli_words(upper).split("; ")[0]
