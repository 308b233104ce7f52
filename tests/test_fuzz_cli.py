"""Property-based fuzzing (hypothesis) of the command line: argument lists drawn from a grammar
of the real commands (with config values near valid ones, so that the solvers run on tiny grids)
plus junk, against an arena of valid, corrupt and missing files.

The acceptance criterion: never a traceback; main() exits with 0 or 2, and on 2 stderr ends with
exactly one line ``meanfield-pde: error: ...``. Inputs the search once had to leave out are kept
as fixed examples (test_cli_fixed_bugs). Shared strategies and checks: fuzzing.py.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fuzzing import (
    ANY,
    KEYS,
    TEXTS,
    assert_cli_error,
    fuzz_settings,
    near_valid,
    run_cli,
    toml_str,
    toml_text,
)
from helpers import quiet_main
from hypothesis import event, example, given
from hypothesis import strategies as st

from meanfield_pde.cli import build_parser, main
from meanfield_pde.config import default_config, parse_value
from meanfield_pde.errors import ConfigError
from meanfield_pde.io import load

A = "<<ARENA>>/"  # stands for the arena directory in drawn arguments
RUNNING = ("solve", "sgd", "gibbs", "validate")  # commands that run a solver from a config


def _subcommands() -> tuple[str, ...]:
    """The subcommands of the real parser (a new one is fuzzed like ``info``, with FILE)."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return tuple(sub.choices)


COMMANDS = _subcommands()
PROBLEM_OF = {"gaussians": "gaussians", "single-neuron": "single-neuron",
              "single_neuron": "single-neuron", A + "valid_g.toml": "gaussians",
              A + "valid_sn.toml": "single-neuron"}
CONFIG_TARGETS = [*PROBLEM_OF, "Gaussians", "gaussian", "single", "", "-", "missing.toml",
                  A + "corrupt.toml", A + "badutf8.toml", A + "empty.toml", A + "noproblem.toml",
                  A + "missing.toml", A + "dir", A + "dir.toml", A + "other.txt",
                  A + "result_g.h5", A + "afile/x.toml", A + "deep.toml", A + "huge.toml",
                  A + "overflow.toml"]
FILE_TARGETS = [A + "result_g.h5", A + "result_sgd.h5", A + "result_sn.h5", A + "trunc.h5",
                A + "empty.h5", A + "garbage.h5", A + "valid_g.toml", A + "dir", A + "missing.h5",
                A + "afile/x.h5", "", "-"]
OUTPUTS = [A + "out/new.h5", A + "out/deep/er/new.h5", A + "existing.h5", A + "dir",
           A + "afile/x.h5", A + "afile", "", A + "out/" + "x" * 300 + ".h5", A + "out/new.png"]
PNG_OUTPUTS = [A + "out/x.png", A + "out/sub/x.png", A + "dir", A + "afile/x.png",
               A + "existing.png", A + "out/x.pdf", A + "out/" + "y" * 300 + ".png", ""]
# validate's output directories that already hold a pde.h5 from elsewhere: made with another
# config (the arena's results; the drawn grid sizes differ from theirs) or damaged, so validate
# must solve again
STALE_PDE = {"g": "result_g.h5", "sn": "result_sn.h5", "sgd": "result_sgd.h5",
             "trunc": "trunc.h5", "garbage": "garbage.h5"}
# init.file: an SGD result holds no radial density (a one-line DataError)
INIT_FILES = [A + "result_g.h5", A + "result_sgd.h5", A + "result_sn.h5", A + "trunc.h5",
              A + "garbage.h5", A + "dir", A + "missing.h5", A + "valid_g.toml", ""]
JUNK_FLAGS = ["--frobnicate", "-x", "--", "-", "--set", "-o", "--output", "--widths", "--seeds",
              "--workers", "--steady=1", "--force=yes", "-qq", "--se", "--forc", "--st", "--keys",
              "--markdown", "--quiet", "-h", "--help", "--version", "--set=", "--set=model.delta",
              "-o=", "--widths=4"]
REAL_FLAGS = {"solve": ["--force", "-q", "--quiet", "--steady"], "sgd": ["--force", "-q"],
              "gibbs": ["--force"], "validate": [], "config": ["--keys", "--markdown"]}
# Words typed by a user: no NUL (an OS argument cannot hold one) and no lone surrogates (the
# captured stderr of pytest is strict UTF-8, unlike the real one); line breaks and other control
# characters are in (the CLI escapes them in its messages).
WORDS = st.one_of(
    st.sampled_from(["", " ", "-", "--", "solve ", "SOLVE", "h5", "x.toml", "x.h5", "../", "~",
                     "é", "😀", "a\tb", "a\nb", "x\n.h5", "\r", "a\x1bb", "\x85", "\u2028"]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
            max_size=10),
)


def _excluded(cmd: str, key: str, text: str) -> bool:
    """Dimensions an SGD example must not draw, for time alone: SGD draws N x d normals per
    step, so model.d is kept <= 10**6 there (seconds at most). Larger d are refused when they
    do not fit in memory and d >= 10**18 + 1 (beyond which d = inf to double precision) always:
    see test_cli_fixed_bugs."""
    if key != "model.d" or cmd not in ("sgd", "validate"):
        return False
    try:
        value = parse_value(text)
    except ConfigError:
        return False
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return isinstance(value, int) and not isinstance(value, bool) and 10**6 < value <= 10**18


def _set_group(draw, problem: str | None, cmd: str = "") -> list[str]:
    keys = [k for k in KEYS if problem is None or k[0] == problem]
    kind = draw(st.integers(0, 9))
    if kind == 4:  # a junk key
        item = f"{draw(WORDS)}={draw(TEXTS)}"
    elif kind == 5:  # a junk name in a real section
        _, section, _, _ = draw(st.sampled_from(keys))
        item = f"{section}.{draw(WORDS)}={draw(TEXTS)}"
    else:
        _, section, name, spec = draw(st.sampled_from(keys))
        if (section, name) == ("init", "file"):
            text = toml_str(draw(st.sampled_from(INIT_FILES)))
        else:  # mostly values close to valid ones, so that the solvers run
            text = _pick(draw, (6, near_valid(spec).map(toml_text)), (2, ANY.map(toml_text)),
                         (2, TEXTS))
            if _excluded(cmd, f"{section}.{name}", text):
                text = toml_text(spec.default)
        item = f"{section}.{name}={text}"
    return ["--set=" + item] if _chance(draw, 6) else ["--set", item]


def _pins(problem: str, cmd: str, draw=None) -> list[str]:
    """Cheap settings appended after the fuzzed --set items (a later --set wins); drawn sizes
    with ``draw``, else fixed ones."""

    def size(lo: int, hi: int, fixed: int) -> int:
        return fixed if draw is None else draw(st.integers(lo, hi))

    pins = {"time.t_end": "0.01", "time.n_outputs": size(2, 5, 3),
            "time.steady_t_max": "0.05", "solver.max_steps": size(20, 200, 200),
            "sgd.n_neurons": size(1, 16, 8), "sgd.eps": "1e-3", "sgd.batch": size(1, 4, 1)}
    if problem == "gaussians":
        pins |= {"grid.n": size(8, 200, 64), "grid.r_max": size(4, 6, 6),
                 "kernel.max_terms": size(1, 64, 32)}
    else:
        # explicit walls: with "auto" walls a pilot run sizes the box (tens of seconds)
        pins |= {"grid.n_a": size(4, 12, 12), "grid.n_s": size(8, 12, 8),
                 "grid.n_r": size(8, 12, 8), "grid.a_min": -4, "grid.a_max": 4,
                 "grid.s_min": -2, "grid.s_max": 2, "grid.r_max": 3,
                 "kernel.max_terms": size(1, 16, 8), "kernel.max_nodes": size(2, 32, 16)}
    out = []
    for key, value in pins.items():
        out += ["--set", f"{key}={value}"]
    return out


def _chance(draw, n: int) -> bool:
    """True with probability about 1/n (an interior value: hypothesis favours the ends)."""
    return draw(st.integers(0, n - 1)) == n // 2


def _pick(draw, *weighted: tuple[int, st.SearchStrategy]):
    """A draw from one of the strategies, chosen with the given weights."""
    k = draw(st.integers(0, sum(w for w, _ in weighted) - 1))
    for w, strategy in weighted:
        if k < w:
            return draw(strategy)
        k -= w
    raise AssertionError


@st.composite
def cli_argv(draw) -> tuple[list[str], bool]:
    """An argument list from a grammar of the real commands, plus junk; and whether the cheap
    settings were appended (the command may run a solver)."""
    others = [c for c in COMMANDS if c not in RUNNING]
    cmd = _pick(draw, (10, st.sampled_from(RUNNING)), (6, st.sampled_from(others)),
                (1, st.sampled_from(["", "frobnicate", "solv", "Solve", "--set", "-h"])),
                (1, WORDS))
    groups: list[list[str]] = []
    problem = None
    if cmd in COMMANDS and cmd not in REAL_FLAGS:  # info, plot, resume: a result file
        if not _chance(draw, 10):
            groups.append([_pick(draw, (9, st.sampled_from([*FILE_TARGETS, A + "existing.h5"])),
                                 (1, WORDS))])
        if cmd == "plot" and not _chance(draw, 10):
            groups.append(["-o", _pick(draw, (9, st.sampled_from(PNG_OUTPUTS)), (1, WORDS))])
        if cmd == "resume":
            # --t-end stays small: the run goes on to it (the files hold tiny grids)
            if draw(st.booleans()):
                groups.append(["--t-end", draw(st.sampled_from(
                    ["0.02", "0.011", "0.01", "0.005", "0", "-1", "nan", "inf", "-inf", "1e-300",
                     "x", "", "1e400"]))])
            if draw(st.booleans()):
                groups.append(["-q"])
    elif cmd in REAL_FLAGS:
        if not _chance(draw, 10):
            target = _pick(draw, (7, st.sampled_from(list(PROBLEM_OF))),
                           (2, st.sampled_from(CONFIG_TARGETS)), (1, WORDS))
            groups.append([target])
            problem = PROBLEM_OF.get(target)
        for _ in range(draw(st.integers(0, 3))):
            groups.append(_set_group(draw, problem, cmd))
        if problem == "gaussians" and _chance(draw, 5):
            groups.append(["--set", "init.kind=from_file", "--set",
                           "init.file=" + toml_str(draw(st.sampled_from(INIT_FILES)))])
        if cmd in ("solve", "sgd", "gibbs") and draw(st.booleans()):
            groups.append(["-o", _pick(draw, (9, st.sampled_from(OUTPUTS)), (1, WORDS))])
        if cmd == "validate":
            ints = st.one_of(st.integers(-2, 16).map(str), st.sampled_from(["x", "1e3", "", "-"]))
            # widths are kept <= 16: each is an SGD run of that many neurons
            groups.append(["--widths", *_pick(draw, (1, st.lists(ints, max_size=3)),
                                              (4, st.sampled_from([["4"], ["2", "3"]])))])
            seeds = st.one_of(ints, st.sampled_from([str(2**63), str(2**64)]))
            groups.append(["--seeds", *_pick(draw, (1, st.lists(seeds, max_size=2)),
                                             (4, st.sampled_from([["0"], ["1", "2"]])))])
            if not _chance(draw, 5):  # left out: one per core (run in-process: in_process_pool)
                groups.append(["--workers", str(draw(st.integers(-2, 3)))])
            if draw(st.booleans()):
                groups.append(["-o", draw(st.sampled_from(
                    [A + "out/v", A + "afile", A + "existing.h5", A + "dir", A + "afile/v",
                     *(A + f"stale/{name}" for name in STALE_PDE)]))])
        for flag in draw(st.lists(st.sampled_from(REAL_FLAGS[cmd] or ["-h"]), max_size=3,
                                  unique=True)):
            if flag != "-h" or _chance(draw, 10):
                groups.append([flag])
    if _chance(draw, 4):
        for _ in range(draw(st.integers(1, 2))):
            groups.append([_pick(draw, (2, st.sampled_from(JUNK_FLAGS)), (1, WORDS))])
    if _chance(draw, 4):
        groups = draw(st.permutations(groups))
    argv = [cmd] + [a for g in groups for a in g]
    if _chance(draw, 30):
        argv.insert(0, draw(st.sampled_from(["--version", "-h", "--junk", "-"])))
    run = cmd in RUNNING and problem is not None
    if run:
        argv += _pins(problem, cmd, draw)
    return argv, run


@pytest.fixture(scope="module")
def arena(tmp_path_factory) -> Path:
    """Files the drawn arguments refer to: configs (valid, corrupt), results, directories."""
    root = tmp_path_factory.mktemp("fuzz-cli")
    (root / "cwd").mkdir()
    (root / "dir").mkdir()
    (root / "dir.toml").mkdir()
    (root / "afile").write_text("a file, not a directory\n")
    (root / "valid_g.toml").write_text(default_config("gaussians").to_toml(), encoding="utf-8")
    (root / "valid_sn.toml").write_text(default_config("single-neuron").to_toml(),
                                        encoding="utf-8")
    (root / "corrupt.toml").write_text('problem = "gaussians"\n[model\ndelta = \n')
    (root / "badutf8.toml").write_bytes(b'problem = "gaussians"\n\xff\xfe\x00[model]')
    (root / "empty.toml").write_text("")
    (root / "noproblem.toml").write_text("[model]\ndelta = 0.5\n")
    (root / "other.txt").write_text('problem = "gaussians"\n')
    (root / "deep.toml").write_text('problem = "gaussians"\n[model]\ndelta = ' + "[" * 1000 + "\n")
    (root / "huge.toml").write_text('problem = "gaussians"\n[model]\ndelta = ' + "7" * 5000 + "\n")
    (root / "overflow.toml").write_text('problem = "gaussians"\n[model]\ndelta = 1' + "0" * 400
                                        + "\n")
    tiny_g = ["--set", "time.t_end=0.01", "--set", "time.n_outputs=3", "--set", "grid.n=64",
              "--set", "grid.r_max=6", "--set", "kernel.max_terms=32", "--set",
              "solver.max_steps=500"]  # bounds `resume --t-end` too
    assert quiet_main(["solve", "gaussians", *tiny_g, "-o", str(root / "result_g.h5"),
                        "-q"]) == 0
    assert quiet_main(["sgd", "gaussians", *tiny_g, "--set", "sgd.n_neurons=8", "--set",
                        "sgd.eps=1e-3", "-o", str(root / "result_sgd.h5"), "-q"]) == 0
    assert quiet_main(["solve", "single-neuron", "--set", "time.t_end=0.01", "--set",
                        "time.n_outputs=3", "--set", "grid.n_a=12", "--set", "grid.n_s=8",
                        "--set", "grid.n_r=8", "--set", "grid.a_min=-4", "--set", "grid.a_max=4",
                        "--set", "grid.s_min=-2", "--set", "grid.s_max=2", "--set",
                        "grid.r_max=3", "--set", "kernel.max_terms=8", "--set",
                        "kernel.max_nodes=16", "-o", str(root / "result_sn.h5"), "-q"]) == 0
    good = (root / "result_g.h5").read_bytes()
    (root / "trunc.h5").write_bytes(good[: len(good) // 2])
    (root / "empty.h5").write_bytes(b"")
    (root / "garbage.h5").write_bytes(np.random.default_rng(0).bytes(4096))
    (root / "pristine").mkdir()
    for path in root.glob("*.h5"):
        shutil.copyfile(path, root / "pristine" / path.name)
    return root


def _reset(arena: Path) -> None:
    """Undo what the previous example wrote, so that examples are independent (``resume``
    extends its file in place; chains of resumes are tested in test_checkpoint.py)."""
    for path in (arena / "pristine").iterdir():
        shutil.copyfile(path, arena / path.name)
    shutil.rmtree(arena / "out", ignore_errors=True)
    shutil.rmtree(arena / "cwd" / "runs", ignore_errors=True)
    shutil.copyfile(arena / "result_g.h5", arena / "existing.h5")
    (arena / "existing.png").write_bytes(b"an old figure")
    shutil.rmtree(arena / "stale", ignore_errors=True)
    for name, source in STALE_PDE.items():
        (arena / "stale" / name).mkdir(parents=True)
        shutil.copyfile(arena / source, arena / "stale" / name / "pde.h5")


G, SN = "gaussians", "single-neuron"
NOISE = ["--set", "noise.beta=10", "--set", "noise.lam=1"]
# the success paths, whatever the search draws: each must exit with 0
SUCCESS = [
    (["solve", G, "-o", A + "out/s.h5", *_pins(G, "solve")], True),
    (["solve", SN, "-q", *_pins(SN, "solve")], True),
    (["solve", G, "--steady", "-q", *NOISE, *_pins(G, "solve")], True),
    (["sgd", SN, "-o", A + "existing.h5", "--force", *_pins(SN, "sgd")], True),
    (["gibbs", G, *NOISE, *_pins(G, "gibbs")], True),
    (["validate", G, "--widths", "2", "3", "--seeds", "0", "1", "--workers", "2",
      "-o", A + "out/v", *_pins(G, "validate")], True),
    (["config", G, "--keys", "--markdown"], False),
    (["info", A + "result_sgd.h5"], False),
    (["plot", A + "result_sn.h5", "-o", A + "out/x.png"], False),
    (["resume", A + "result_g.h5", "--t-end", "0.02", "-q"], False),
]


def _success_examples(test):
    """One hypothesis @example per SUCCESS path."""
    for drawn in reversed(SUCCESS):
        test = example(drawn=drawn)(test)
    return test


@fuzz_settings(200)
@given(drawn=cli_argv())
@_success_examples
def test_cli_fuzz(drawn, arena, capsys, monkeypatch, in_process_pool):
    """main(argv) for drawn argument lists: exit 0 or 2 (one-line error), never an exception;
    0 for the SUCCESS paths. ``--hypothesis-show-statistics`` shows which command ran (or only
    parsed its arguments) with which exit code."""
    argv, run = drawn
    monkeypatch.chdir(arena / "cwd")  # default outputs (runs/...) go to the arena
    _reset(arena)
    argv = [a.replace(A, f"{arena}/") for a in argv]
    code = run_cli(argv, capsys)
    cmd = next((a for a in argv if a in COMMANDS), "junk")
    event(f"{cmd}:{'run' if run else 'parse'}:{code}")
    if drawn in SUCCESS:
        assert code == 0, argv


VALIDATE = ["validate", G, "--widths", "3", "--seeds", "0", *_pins(G, "validate")]


@pytest.mark.parametrize(("argv", "code", "says"), [
    # integers beyond the float range and the int-string limit, deep nesting: --set and files
    (["config", G, "--set", "model.delta=1" + "0" * 400], 2, "is too large"),
    (["config", G, "--set", "model.delta=" + "7" * 5000], 2, "cannot be read"),
    (["config", G, "--set", "model.delta=" + "[" * 1000], 2, "cannot be read"),
    (["config", G, "--set", "model.activation_params=" + "{a=" * 1000], 2, "cannot be read"),
    (["config", A + "overflow.toml"], 2, "is too large"),
    (["config", A + "huge.toml"], 2, "is not valid TOML"),
    (["config", A + "deep.toml"], 2, "is not valid TOML"),
    # an SGD result as the initial density
    (["solve", G, "--set", "init.kind=from_file", "--set",
      "init.file=" + toml_str(A + "result_sgd.h5"), *_pins(G, "solve")], 2,
     "holds no radial density"),
    # fewer SGD output times than PDE ones (several requested times on one SGD step)
    ([*VALIDATE, "--set", "time.n_outputs=50", "-o", A + "out/v"], 0, None),
    (["validate", G, "--workers", "-1", "-o", A + "out/v", *_pins(G, "validate")], 2,
     "--workers -1 must be >= 1"),
    # a pde.h5 of another grid, of SGD, truncated: solved again (checked below)
    ([*VALIDATE, "--set", "grid.n=32", "-o", A + "stale/g"], 0, None),
    ([*VALIDATE, "-o", A + "stale/sgd"], 0, None),
    ([*VALIDATE, "-o", A + "stale/trunc"], 0, None),
    # line breaks in names and paths: escaped
    (["config", G, "--set", "model.a\nb=1"], 2, "unknown key model.a\\nb;"),
    (["config", G, "--set", 'model.activation_params={"a\\nb" = "x"}'], 2,
     "model.activation_params.a\\nb = "),
    (["info", A + "a\nb.h5"], 2, "a\\nb.h5 does not exist"),
    # dimensions beyond double precision, SGD beyond the memory
    (["solve", G, "--set", "model.d=1" + "0" * 400], 2, "model.d = an integer of 401 digits"),
    (["sgd", G, "--set", "sgd.n_neurons=4", "--set", "model.d=10000000000"], 2,
     "needs about 1.34e+03 GiB"),
    (["sgd", G, "--set", "sgd.n_neurons=10000000", "--set", "model.d=4"], 2, "GiB of memory"),
    (["solve", G, "-o", A + "afile/\r.h5", *_pins(G, "solve")], 2, "afile/\\r.h5"),
])
def test_cli_fixed_bugs(argv, code, says, arena, capsys, monkeypatch, in_process_pool):
    """Inputs the fuzz once had to leave out: the exit code and the gist of the message."""
    monkeypatch.chdir(arena / "cwd")
    _reset(arena)
    argv = [a.replace(A, f"{arena}/") for a in argv]
    assert main(argv) == code
    _, err = capsys.readouterr()
    if code == 2:
        assert_cli_error(err)
        assert says in err, err
    if argv[0] == "validate" and code == 0:  # pde.h5 is a solve of the requested config
        out_dir = Path(argv[argv.index("-o") + 1])
        report = json.loads((out_dir / "validation.json").read_text())
        pde = load(out_dir / "pde.h5")
        assert pde.complete and pde.config == report["config"]
