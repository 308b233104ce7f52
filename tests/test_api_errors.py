"""Errors raised through the Python API never tell the user to pass a command-line flag or run a
command: the messages name the Python argument (``overwrite=True``, ``steady=True``,
``overrides``), and the CLI words its own hints (errors.OptionError with cli.OPTION_FLAGS or a
``cli_template``, OutputExists, DiskFull, WallReached, Interrupted)."""

from __future__ import annotations

import ast
import re

import pytest
from helpers import config, one_line_cli_error

import meanfield_pde
from meanfield_pde.errors import OptionError

PACKAGE = meanfield_pde.__path__[0]
CLI_WORDS = re.compile(r"(?<![\w-])--[a-z]|meanfield-pde [a-z]")
# the command line itself; modules other sessions own (issue 16: plotting, validation)
NOT_SCANNED = ("cli.py", "plotting.py", "problems/gaussians_plots.py",
               "problems/single_neuron_plots.py")


def _strings(node: ast.AST):
    """The string constants inside ``node`` (f-string parts included)."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            yield sub.value


def _error_messages(tree: ast.AST):
    """(line, text) of the string parts of every call of a class named ``*Error`` (or a typed
    error of errors.py), except a ``cli_template`` keyword (the CLI's own wording)."""
    typed = {"OutputExists", "DiskFull", "CorruptFile", "WallReached", "Interrupted",
             "StepFailed"}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", getattr(node.func, "attr", ""))
        if not (name.endswith("Error") or name in typed):
            continue
        parts = [*node.args, *(k.value for k in node.keywords if k.arg != "cli_template")]
        for part in parts:
            for text in _strings(part):
                yield node.lineno, text


def test_no_api_error_message_names_a_cli_flag():
    from pathlib import Path

    root = Path(PACKAGE)
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel in NOT_SCANNED or rel.startswith("sweeps/"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found += [f"{rel}:{line}: {text!r}" for line, text in _error_messages(tree)
                  if CLI_WORDS.search(text)]
    assert not found, "API errors worded for the command line:\n" + "\n".join(found)


def test_existing_output_names_overwrite(tmp_path, capsys):
    cfg = config("gaussians", "grid.n=100", "time.t_end=0.1", "time.n_outputs=2")
    out = tmp_path / "r.h5"
    out.write_bytes(b"keep")
    with pytest.raises(meanfield_pde.DataError) as err:
        meanfield_pde.solve(cfg, out)
    assert "overwrite=True" in str(err.value) and "--" not in str(err.value)
    one_line_cli_error(["solve", "gaussians", "-o", out, "--set", "time.t_end=0.1"], capsys,
                       "pass --force")
    assert out.read_bytes() == b"keep"


def test_no_gibbs_solver_names_steady(monkeypatch):
    """A problem without a Gibbs solver points to ``solve(cfg, steady=True)``; the CLI to
    ``--steady``."""
    from meanfield_pde.cli import _cli_words
    from meanfield_pde.problems.base import Problem

    problem = type("NoGibbs", (), {"name": "toy"})()
    with pytest.raises(OptionError) as err:
        Problem.gibbs(problem)
    assert str(err.value).endswith("with solve(cfg, steady=True) instead")
    assert _cli_words(err.value).endswith("with --steady instead")


def test_unreadable_override_value_names_overrides(capsys):
    deep = "[" * 2000 + "]" * 2000
    with pytest.raises(OptionError, match="^overrides value '"):
        meanfield_pde.default_config("gaussians").with_overrides([f"model.delta={deep}"])
    one_line_cli_error(["config", "gaussians", "--set", f"model.delta={deep}"], capsys,
                       "--set value '")
