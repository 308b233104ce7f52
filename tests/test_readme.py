"""Every command in README.md's code blocks runs, and what the README says about the schema holds.

The commands are parsed from the README's ```bash and ```python blocks (a command added to the
README is tested without editing this file), in the README's order, in one directory, so that
`info`, `plot` and `resume` read files written by earlier commands. Sizes are made small by
appending overrides (`--set grid.n=200`, ...; later `--set`s win); `pip install` and
`python -m pytest` (the first block: CI runs those) are left out. The commands run in this process
(`meanfield_pde.cli.main`): a fresh interpreter costs seconds of imports and kernel loading.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import tomllib
from pathlib import Path

import pytest
from helpers import NEURON_BOX, NEURON_SMALL, ROOT
from stopping import StopAfter

import meanfield_pde
from meanfield_pde import load
from meanfield_pde.cli import main
from meanfield_pde.config import SCHEMAS, default_config, load_config
from meanfield_pde.runner.pde import solve
from meanfield_pde.runner.trackers import Interrupted

README = ROOT / "README.md"

# appended to every command that takes --set: small grids, few outputs, few neurons
SMALL = {
    "gaussians": ["grid.n=200", "time.n_outputs=6", "sgd.n_neurons=20", "sgd.eps=1e-3"],
    "single-neuron": [*NEURON_SMALL, *NEURON_BOX, "sgd.n_neurons=20", "sgd.eps=1e-3"],
}
SMALL_VALIDATE = ["--widths", "10", "20", "--seeds", "0", "--workers", "1"]
WITH_SET = {"solve", "gibbs", "sgd", "validate", "sweep"}
SMALL_SWEEP = ["--set", "time.t_end=1", "--set", "lagrangian.mass_cells=20"]  # 16 short points

# README commands that fail today because of a known defect fixed elsewhere: {substring: reason}
KNOWN_FAILURES: dict[str, str] = {}


# --------------------------------------------------------------------------------- parsing
def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced code block, in order."""
    return [(m.group(1), m.group(2))
            for m in re.finditer(r"^```(\w*)[ \t]*\n(.*?)^```[ \t]*$", text, re.M | re.S)]


def readme_commands(text: str) -> list[tuple[str, str]]:
    """("shell", command) for every command of a bash block and ("python", code) for every python
    block; `pip ...` and `python -m pytest` are left out."""
    out: list[tuple[str, str]] = []
    for lang, body in code_blocks(text):
        if lang == "python":
            out.append(("python", body))
        elif lang in ("bash", "sh", "shell", "console"):
            for line in body.splitlines():
                for part in line.split("&&"):
                    words = shlex.split(part, comments=True)
                    if not words or words[0] == "pip" or words[:3] == ["python", "-m", "pytest"]:
                        continue
                    out.append(("shell", shlex.join(words)))
    return out


COMMANDS = readme_commands(README.read_text())


def test_the_readme_has_commands_of_every_kind():
    """The parser finds the README's commands (an empty list would test nothing)."""
    subs = {shlex.split(c)[1] for kind, c in COMMANDS if kind == "shell"
            and shlex.split(c)[0] == "meanfield-pde"}
    assert {"solve", "gibbs", "sgd", "validate", "resume", "info", "plot", "config"} <= subs
    assert any(kind == "python" for kind, _ in COMMANDS)


# --------------------------------------------------------------------------------- running
@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """One directory for all commands (they use each other's files), with data/configs/."""
    d = tmp_path_factory.mktemp("readme")
    (d / "data" / "configs").mkdir(parents=True)
    for f in (ROOT / "data" / "configs").glob("*.toml"):
        (d / "data" / "configs" / f.name).write_text(f.read_text())
    return d


def _problem(target: str, cwd: Path) -> str:
    if target.endswith(".toml"):
        return tomllib.loads((cwd / target).read_text())["problem"]
    return target


def _interrupted_run(path: Path) -> None:
    """A README command names a result file no earlier command wrote (`resume
    runs/gaussians-<UTC>.h5`): make it an interrupted small run, as after Ctrl-C."""
    problem = "single-neuron" if "single-neuron" in path.name else "gaussians"
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = default_config(problem).with_overrides(SMALL[problem])
    with pytest.raises(Interrupted):
        solve(cfg, path, stop=StopAfter(3))
    assert not load(path).complete


def _run_shell(command: str, cwd: Path) -> tuple[int, str, list[str], set[Path], str | None]:
    """Run one README shell command in ``cwd``: exit code, stdout, the arguments given to
    ``main`` (small sizes appended), the files before, and the file stdout was redirected to."""
    words = shlex.split(command)
    redirect = None
    if ">" in words:
        i = words.index(">")
        words, redirect = words[:i], words[i + 1]
    if words[:3] == ["python", "-m", "benchmarks"]:
        pytest.skip("python -m benchmarks takes minutes (tests/test_benchmarks.py runs a tiny "
                    "suite through the same entry point)")
    if words[:3] == ["python", "-m", "meanfield_pde"]:
        words = ["meanfield-pde", *words[3:]]
    assert words[0] == "meanfield-pde", f"not a meanfield-pde command: {command}"
    args = words[1:]
    if args[0] in WITH_SET:
        for item in SMALL[_problem(args[1], cwd)]:
            args += ["--set", item]
        if args[0] == "validate":
            args += SMALL_VALIDATE
        if args[0] == "sweep":
            args += SMALL_SWEEP
    if args[0] in ("resume", "info", "plot") and not (cwd / args[1]).exists():
        _interrupted_run(cwd / args[1])
    before = set(cwd.rglob("*"))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(args)
    if redirect is not None:
        (cwd / redirect).write_text(out.getvalue())
    return code, out.getvalue(), args, before, redirect


def _option(args: list[str], *names: str) -> str | None:
    """The value of the last of ``names`` in ``args`` (argparse: the last one wins)."""
    value = None
    for i, a in enumerate(args[:-1]):
        if a in names:
            value = args[i + 1]
    return value


def _assert_outputs(args: list[str], cwd: Path, before: set[Path], stdout: str,
                    redirect: str | None) -> None:
    """The file a command is documented to write exists and is complete."""
    sub, out = args[0], _option(args, "-o", "--output")
    if sub in ("solve", "gibbs", "sgd"):
        if out is None:  # runs/<problem>-<UTC>.h5, named on stdout
            new = [p for p in set(cwd.rglob("*.h5")) - before if p.parent.name == "runs"]
            assert len(new) == 1 and str(new[0].relative_to(cwd)) in stdout
            path = new[0]
        else:
            path = cwd / out
        assert load(path).complete
    elif sub == "resume":
        assert load(cwd / args[1]).complete
    elif sub == "plot":
        assert (cwd / out).stat().st_size > 1000
    elif sub == "validate":
        folder = cwd / (out or "validation")
        assert (folder / "validation.json").stat().st_size > 0
        assert (folder / "validation.png").stat().st_size > 1000
    elif sub == "info":
        assert "risk" in stdout
    elif sub == "config" and redirect is not None:
        assert load_config(cwd / redirect).problem
    else:
        assert stdout


def _small_default_config(problem: str):
    return _REAL_DEFAULT_CONFIG(problem).with_overrides(SMALL[problem])


_REAL_DEFAULT_CONFIG = default_config


def _param(kind: str, command: str):
    text = command if kind == "shell" else command.strip().splitlines()[0]
    marks = [pytest.mark.xfail(strict=False, reason=reason)
             for key, reason in KNOWN_FAILURES.items() if key in command]
    return pytest.param(kind, command, id=text[:70], marks=marks)


@pytest.mark.parametrize(("kind", "command"), [_param(k, c) for k, c in COMMANDS])
def test_readme_command(kind, command, workdir, monkeypatch, capsys):
    """Each README command, in the README's order, exits 0 and writes what it says it writes."""
    monkeypatch.chdir(workdir)
    if kind == "python":
        # the API example on the small sizes: default_config as imported from the package
        monkeypatch.setattr(meanfield_pde, "default_config", _small_default_config)
        written = [w for w in re.findall(r'"([\w./-]+\.h5)"', command)]
        for name in written:  # the example must write them itself (not find an earlier file)
            (workdir / name).unlink(missing_ok=True)
        exec(compile(command, "README.md", "exec"), {})
        assert written and all(meanfield_pde.load(workdir / name).complete for name in written)
        return
    code, stdout, args, before, redirect = _run_shell(command, workdir)
    err = capsys.readouterr().err
    assert code == 0, f"{command}: exit {code}: {err}"
    _assert_outputs(args, workdir, before, stdout, redirect)


# --------------------------------------------------------------------------------- claims
@pytest.mark.parametrize("problem", sorted(SCHEMAS))
def test_readme_lists_every_config_section(problem):
    """The Configuration paragraph names every section of the schema."""
    text = README.read_text()
    para = text[text.index("## Configuration"):].split("\n\n")[1]
    for section in SCHEMAS[problem]:
        assert f"`[{section}]`" in para, section


SPELLED_OUT = [p for p in sorted((ROOT / "data" / "configs").glob("*.toml"))
               if "every key" in p.read_text()]


def test_some_example_says_every_key():
    assert {p.name for p in SPELLED_OUT} >= {"mmn18_fig1.toml", "single_neuron_default.toml"}


@pytest.mark.parametrize("path", SPELLED_OUT, ids=[p.stem for p in SPELLED_OUT])
def test_examples_that_spell_out_every_key_do(path):
    """An example config that says every key is spelled out names every key of the schema (and
    no other), and resolves to the built-in defaults it says it reproduces."""
    raw = tomllib.loads(path.read_text())
    problem = raw.pop("problem")
    schema = SCHEMAS[problem]
    assert set(raw) == set(schema)
    for section, keys in schema.items():
        assert set(raw[section]) == set(keys), section
    got = load_config(path).to_dict()
    want = default_config(problem).to_dict()
    # activation parameters may be written out (the ramp's defaults) instead of {}
    got["model"].pop("activation_params")
    want["model"].pop("activation_params")
    assert got == want
