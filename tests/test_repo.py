"""The repository itself: README in sync with the code, ruff clean."""

import shutil
import subprocess

import pytest
from helpers import ROOT

from meanfield_pde.config import PROBLEMS, keys_markdown


@pytest.mark.parametrize("problem", PROBLEMS)
def test_readme_lists_every_config_key(problem):
    """The README's key table is `meanfield-pde config NAME --keys --markdown` verbatim."""
    text = (ROOT / "README.md").read_text()
    assert keys_markdown(problem) in text


def test_readme_first_screen_has_the_two_commands():
    head = "\n".join((ROOT / "README.md").read_text().splitlines()[:25])
    assert "pip install . && meanfield-pde solve gaussians" in head
    assert 'pip install -e ".[test]" && python -m pytest' in head

@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_ci_runs_the_readmes_first_block_in_order():
    """.ci/run executes the lines its awk/grep pipeline extracts: exactly the two commands."""
    ci = (ROOT / ".ci" / "run").read_text()
    start = ci.index("block=$(")
    pipeline = ci[start + len("block=$("):ci.index("\n", ci.index("grep -v", start))].rstrip(")")
    out = subprocess.run(["bash", "-c", pipeline], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == ["pip install . && meanfield-pde solve gaussians",
                   'pip install -e ".[test]" && python -m pytest']
    assert 'eval "$line"' in ci


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff not installed")
def test_ruff_clean():
    proc = subprocess.run(["ruff", "check", str(ROOT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_the_kernel_layer_imports_nothing_above_it():
    """meanfield_pde/fv/ (the numerics) imports only numpy, numba, scipy, the standard library
    and its own modules: no configuration, problem, runner or I/O module."""
    import ast
    import sys

    allowed = {"numpy", "numba", "scipy", "__future__"} | set(sys.stdlib_module_names)
    for path in sorted((ROOT / "meanfield_pde" / "fv").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.level <= 1, f"{path.name}:{node.lineno} imports from above fv/"
                if node.level == 0:
                    assert node.module.split(".")[0] in allowed, (path.name, node.module)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] in allowed, (path.name, alias.name)
