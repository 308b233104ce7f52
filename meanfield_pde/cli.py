"""Command-line interface: argument parsing only; every command calls a library function.

    meanfield-pde solve PROBLEM|CONFIG.toml [--set KEY=VALUE ...] [-o FILE.h5] [--force] [-q]
                        [--steady]
    meanfield-pde sgd PROBLEM|CONFIG.toml [--set ...] [-o FILE.h5] [--force]
    meanfield-pde resume FILE.h5 [--t-end T]
    meanfield-pde validate PROBLEM|CONFIG.toml [--widths N ...] [--seeds S ...]
                        [--scheduler ADDRESS | --workers P] [-o DIR] [--force] [-q]
    meanfield-pde gibbs PROBLEM|CONFIG.toml [--set ...] [-o FILE.h5] [--force] [-q]
    meanfield-pde info FILE.h5
    meanfield-pde export FILE.h5 --netcdf OUT.nc [--force]
    meanfield-pde plot FILE.h5 -o FIG.png|FIG.pdf|FIG.svg [--times T1,T2,...]
                        [--view density|cdf|logdensity] [--size single|double] [--overlay SGD.h5]
    meanfield-pde plot DIR -o FIG.png      (the phase diagram of a sweep)
    meanfield-pde animate FILE.h5 -o MOVIE.gif|MOVIE.mp4 [--fps N] [--max-frames N] [--force]
    meanfield-pde sweep PROBLEM|CONFIG.toml --vary KEY=V1,V2,... [--vary KEY=start:stop:num]
                        [--set ...] [--command solve|gibbs|sgd]
                        [--scheduler ADDRESS | --workers N] -o DIR [--force] [--retry-failed]
    meanfield-pde config PROBLEM|CONFIG.toml [--set ...] [--keys [--markdown]]

PROBLEM is the name (or an alias) of a registered problem (:mod:`meanfield_pde.problems`), e.g.
gaussians or single-neuron; ``meanfield-pde --help`` lists them.

User errors print one line ``meanfield-pde: error: ...`` on stderr and exit with code 2 (so does a
standard output that cannot be written, e.g. redirected to a full disk); the package's warnings
print one line ``meanfield-pde: warning: ...``.
SIGINT / SIGTERM during solve, sgd or resume write a checkpoint, print the resume command and
exit with 130 / 143.
"""

from __future__ import annotations

import argparse
import errno
import functools
import os
import signal
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .config import Config, default_config, keys_markdown, load_config, schema_rows
from .errors import ConfigError, DiskFull, MeanFieldError, OptionError, OutputExists, WallReached
from .problems import registry
from .runner.trackers import Interrupted, SetupInterrupted, trap_signals

PROG = "meanfield-pde"
#: run-function arguments (errors.OptionError) -> the flag that sets them
OPTION_FLAGS = {"t_end": "--t-end", "steady": "--steady", "overrides": "--set",
                "workers": "--workers", "scheduler": "--scheduler", "times": "--times",
                "overlay": "--overlay", "max_frames": "--max-frames"}


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise ConfigError(f"{message} (see '{PROG} {self.prog.split()[-1]} --help')"
                          if " " in self.prog else f"{message} (see '{PROG} --help')")


def resolve_config(target: str, overrides: Sequence[str]) -> Config:
    """A registered problem's name or alias (its defaults) or a TOML file, plus ``--set``
    overrides."""
    name = registry.canonical(target)
    if name is not None:
        return default_config(name).with_overrides(overrides)
    path = Path(target)
    if path.suffix.lower() == ".toml" or path.exists():
        return load_config(path, overrides)
    raise ConfigError(
        f"{target!r} is neither a problem ({', '.join(registry.names())}) nor a .toml config file"
    )


def _refuse_existing_output(args: argparse.Namespace) -> None:
    """Fail before any work if -o names an existing file and --force is absent, or a directory
    (the writer checks again when it creates the file)."""
    from .io import check_new_output

    if args.output is not None:
        check_new_output(args.output, overwrite=args.force)


def _output(args: argparse.Namespace, name: str) -> Path:
    """-o, or ``runs/<name>-<UTC time>.h5`` (the API without a path runs in memory)."""
    from .runner.plan import default_output_path

    return Path(args.output) if args.output is not None else default_output_path(name)


def _cmd_solve(args: argparse.Namespace) -> int:
    from .runner.pde import solve

    cfg = resolve_config(args.target, args.set)
    _refuse_existing_output(args)
    with trap_signals() as stop:
        summary = solve(cfg, _output(args, cfg.problem), overwrite=args.force,
                        progress=not args.quiet, on_warning=lambda w: print(w, file=sys.stderr),
                        steady=args.steady, stop=stop)
    for line in summary.lines():
        print(line)
    return 0


def _cmd_gibbs(args: argparse.Namespace) -> int:
    from .runner.gibbs import solve_gibbs

    cfg = resolve_config(args.target, args.set)
    _refuse_existing_output(args)
    out = _output(args, cfg.problem + "-gibbs")
    for line in solve_gibbs(cfg, out, overwrite=args.force).lines():
        print(line)
    return 0


def _cmd_sgd(args: argparse.Namespace) -> int:
    from .runner.sgd import solve_sgd

    cfg = resolve_config(args.target, args.set)
    _refuse_existing_output(args)
    with trap_signals() as stop:
        summary = solve_sgd(cfg, _output(args, cfg.problem + "-sgd"), overwrite=args.force,
                            progress=not args.quiet, stop=stop)
    for line in summary.lines():
        print(line)
    return 0


def _cmd_resume(args: argparse.Namespace) -> int:
    from .runner.resume import resume

    with trap_signals() as stop:
        summary = resume(args.file, t_end=args.t_end, progress=not args.quiet, stop=stop)
    for line in summary.lines():
        print(line)
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from .validation import validate
    from .validation_runs import ValidateInterrupted

    cfg = resolve_config(args.target, args.set)
    if any(n < 1 for n in args.widths) or not args.seeds:
        raise ConfigError("--widths must be positive integers and --seeds non-empty")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers {args.workers} must be >= 1 (or left out: one per core)")
    out = Path(args.output) if args.output else Path("runs") / f"validate-{cfg.problem}"
    with trap_signals() as stop:
        try:
            rep = validate(cfg, args.widths, args.seeds, out, workers=args.workers,
                           scheduler=args.scheduler, overwrite=args.force,
                           progress=not args.quiet,
                           stop=stop)
        except ValidateInterrupted as exc:  # finished SGD files stay; the cluster is closed
            print(f"{PROG}: {_printable(exc)}; rerun the same command to continue",
                  file=sys.stderr)
            return exc.exit_code
    print(f"wrote {out / 'validation.json'} and {out / 'validation.png'}")
    status = [f["status"] for f in rep["sgd_files"]]
    print(f"  SGD runs in {out / 'sgd'}: " + ", ".join(
        f"{status.count(s)} {s}" for s in ("ran", "resumed", "reused") if s in status))
    spread = "mean ± std over seeds" if len(rep["seeds"]) > 1 else "one seed: no spread"
    print(f"  eps = {rep['eps']:g}, seeds {rep['seeds']}; sup_t |R_SGD - R_PDE|, the same against "
          f"R_PDE + D(t)/N (N i.i.d. neurons) ({spread}), and W1 at the last time:")

    def pm(mean: float, std: float | None) -> str:
        return f"{mean:.4f}" + (f" ± {std:.4f}" if std is not None else "")

    for row in rep["summary"]:
        w1 = ", ".join(f"W1({k}) {v[-1]:.3g}" for k, v in row["w1_mean"].items())
        print(f"  N = {row['n']:>6}: {pm(row['sup_risk_gap_mean'], row['sup_risk_gap_std'])}   "
              f"iid {pm(row['sup_risk_gap_iid_mean'], row['sup_risk_gap_iid_std'])}   {w1}   "
              f"({row['sgd_seconds']:.1f} s per run)")
    if rep["gap_decay_exponent"] is not None:
        print(f"  fitted gap ~ N^({-rep['gap_decay_exponent']:+.2f} ± "
              f"{rep['gap_decay_exponent_stderr']:.2f}) over {len(rep['widths'])} widths")
    else:
        print("  no decay exponent: a fit needs three or more widths")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from .io import load

    res = load(args.file)
    cfg_text = Config(res.problem, {k: v for k, v in res.config.items() if k != "problem"})
    print(f"file      {res.path}")
    print(f"problem   {res.problem}   format {res.format_version}   "
          f"package {res.package_version}   "
          f"{'complete' if res.complete else 'INCOMPLETE (run did not finish)'}")
    t = res.t
    if t.size:
        print(f"times     {t.size} snapshots, t = {t[0]:g} .. {t[-1]:g}")
    if "risk" in res.fields and t.size:
        risk = res.fields["risk"]
        err = (f" ± {res.fields['risk_error'][-1]:.1g} (a-posteriori estimate)"
               if "risk_error" in res.fields else "")
        print(f"risk      {risk[0]:.10g} at t = {t[0]:g} -> {risk[-1]:.10g}{err} at "
              f"t = {t[-1]:g}")
    if "free_energy" in res.fields and t.size:
        fe = res.fields["free_energy"]
        print(f"free energy {fe[0]:.12g} at t = {t[0]:g} -> {fe[-1]:.12g} at t = {t[-1]:g}")
    if "mass" in res.fields and t.size:
        mass = res.fields["mass"]
        print(f"mass      max relative drift {np.max(np.abs(mass - mass[0])) / mass[0]:.2e}")
    for key in ("method", "error_order", "kind", "seed", "generator", "n_neurons", "eps", "batch",
                "n_samples",
                "solution", "steady_reached", "steady_rate", "newton_iterations",
                "newton_residual", "wall_seconds", "compile_seconds", "setup_seconds", "n_steps",
                "r_max",
                "kernel_terms",
                "kernel_truncation_error"):
        if key in res.run_attrs:
            val = res.run_attrs[key]
            print(f"{key:<26}{val:.4g}" if isinstance(val, float) else f"{key:<26}{val}")
    if res.attrs.get("versions"):
        git = res.attrs.get("git_revision")
        dirty = " (uncommitted changes)" if res.attrs.get("git_dirty") else ""
        print("versions  " + ", ".join(f"{k} {v}" for k, v in res.attrs["versions"].items())
              + (f"; git {git}{dirty}" if git else ""))
    print("\n# resolved configuration")
    print(cfg_text.to_toml(), end="")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .errors import DataError
    from .io.xarray_export import export_netcdf

    try:
        out = export_netcdf(args.file, args.netcdf, overwrite=args.force)
    except OutputExists as exc:
        raise DataError(f"netCDF output {exc.path} exists; pass --force to overwrite it or "
                        "choose another path with --netcdf") from exc
    print(f"wrote {out}")
    return 0


def _parse_times(text: str | None) -> list[float] | None:
    """``--times 0,1,5`` -> [0.0, 1.0, 5.0]; a malformed list is a one-line ConfigError."""
    if text is None:
        return None
    try:
        times = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        times = []
    if not times or not all(np.isfinite(times)):
        raise ConfigError(f"--times {text!r} is not a comma-separated list of numbers, e.g. "
                          "--times 0,1,5")
    return times


def _cmd_plot(args: argparse.Namespace) -> int:
    from .io import load
    from .plotting import plot

    if Path(args.file).is_dir():  # a sweep directory: its phase diagram
        from .sweeps.plot import plot_sweep

        print(f"wrote {plot_sweep(args.file, args.output)}")
        return 0
    overlay = load(args.overlay) if args.overlay else None
    plot(load(args.file), args.output, times=_parse_times(args.times), view=args.view,
         size=args.size, overlay=overlay, overwrite=args.force)
    print(f"wrote {args.output}")
    return 0


def _cmd_animate(args: argparse.Namespace) -> int:
    from .animation import animate
    from .io import load

    out = animate(load(args.file), args.output, fps=args.fps, max_frames=args.max_frames,
                  view=args.view, size=args.size, force=args.force)
    print(f"wrote {out}")
    return 0


def _sweep_command(args: argparse.Namespace) -> str:
    """The command line that continues the sweep ``args`` describes."""
    import shlex

    words = [PROG, "sweep", args.target, *(w for v in args.vary for w in ("--vary", v)),
             *(w for v in args.set for w in ("--set", v)), "--command", args.command,
             *(("--scheduler", args.scheduler) if args.scheduler else ()),
             *(("--workers", str(args.workers)) if args.workers is not None else ()),
             "-o", args.output, *(("--retry-failed",) if args.retry_failed else ())]
    return shlex.join(words)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .sweeps import SweepInterrupted, parse_vary_args, sweep

    cfg = resolve_config(args.target, args.set)
    vary = parse_vary_args(args.vary, cfg)
    try:
        with trap_signals() as stop:
            ds = sweep(cfg, vary, args.command, args.output, scheduler=args.scheduler,
                       workers=args.workers, overwrite=args.force,
                       retry_failed=args.retry_failed, progress=not args.quiet, stop=stop)
    except SweepInterrupted as exc:
        print(f"{PROG}: interrupted by {exc.signal_name}: {exc.n_done} of {exc.n_points} points "
              f"finished, kept in {exc.out_dir}; continue by running the same command again: "
              f"{_printable(_sweep_command(args))}", file=sys.stderr)
        return exc.exit_code
    shape = " x ".join(f"{d} ({ds.sizes[d]})" for d in ds["status"].dims)
    print(f"wrote {Path(args.output) / 'sweep.nc'}: {ds['status'].size} points over {shape}")
    print(f"  ran {ds.attrs['n_ran']}, failed {ds.attrs['n_failed']}, skipped "
          f"{ds.attrs['n_skipped']} (finished or failed before)")
    dims, status = ds["status"].dims, ds["status"].values
    failed = [i for i in np.ndindex(status.shape) if status[i] == "failed"]
    for i in failed[:10]:
        point = ", ".join(f"{d}={ds[d].values[j]}" for d, j in zip(dims, i, strict=True))
        print(_printable(f"  failed at {point}: {ds['message'].values[i]}"))
    if len(failed) > 10:
        print(f"  ... and {len(failed) - 10} more failed points (status and message in sweep.nc)")
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    cfg = resolve_config(args.target, args.set)
    if args.keys and args.markdown:
        print(keys_markdown(cfg.problem), end="")
    elif args.keys:
        for key, default, accepted, doc in schema_rows(cfg.problem):
            print(f"{key:<26} {default:<12} {doc}  [{accepted}]")
    else:
        print(cfg.to_toml(), end="")
    return 0


def _printable(exc: object) -> str:
    """The message on one line: control characters (a newline in a file name, ...) escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(exc))


def _cli_words(exc: MeanFieldError) -> str:
    """The message of ``exc`` with the fix in command-line terms (the library's typed errors
    word it for the Python API: ``overwrite=True``, ``resume(path)``)."""
    if isinstance(exc, OutputExists):
        where = "another path" if exc.what == "output" else "another directory"
        return (f"{exc.what} {exc.path} exists; pass --force to overwrite it or choose {where} "
                "with -o")
    if isinstance(exc, DiskFull):
        cont = f", then continue with: meanfield-pde resume {exc.path}" if exc.resumable else ""
        return f"{exc.what}: {exc.detail}; {exc.fix}{cont}"
    if isinstance(exc, WallReached):
        return exc.words(f"--set grid.{exc.key}={exc.new:.3g}")
    if isinstance(exc, OptionError):
        return (exc.cli_template or exc.template).replace(
            "{opt}", OPTION_FLAGS.get(exc.option, exc.option))
    if isinstance(exc, SetupInterrupted):
        return str(exc)
    if isinstance(exc, Interrupted):
        return (f"interrupted by {exc.signal_name} at t = {exc.t:.6g}; checkpoint written, "
                f"continue with: meanfield-pde resume {exc.path}")
    return str(exc)


def _add_plot_parsers(sub: argparse._SubParsersAction) -> None:
    """The ``plot`` and ``animate`` subcommands."""
    pl = sub.add_parser("plot", help="plot a result file (a Gibbs fixed point as an equilibrium)"
                        " or the phase diagram of a sweep directory")
    pl.add_argument("file", metavar="FILE.h5|DIR")
    pl.add_argument("-o", "--output", required=True, metavar="FIG",
                    help="figure file; the format follows the extension: .png, .pdf or .svg")
    pl.add_argument("--force", action="store_true",
                    help="replace an existing -o file that is not a figure (never an input)")
    pl.add_argument("--times", metavar="T1,T2,...",
                    help="snapshot times to show (the nearest outputs; default: spread over "
                         "the run)")
    pl.add_argument("--view", choices=["density", "cdf", "logdensity"], default=None,
                    help="how marginal densities are shown (default: the problem's, cdf for "
                         "gaussians and single-neuron)")
    pl.add_argument("--size", choices=["single", "double"], default="double",
                    help="single-column (3.5 in) or double-column (7.2 in) width")
    pl.add_argument("--overlay", metavar="SGD.h5",
                    help="particle SGD result: its histograms over the PDE marginals")
    pl.set_defaults(func=_cmd_plot)

    an = sub.add_parser("animate", help="a movie of the marginals over time (.gif or .mp4)")
    an.add_argument("file", metavar="FILE.h5")
    an.add_argument("-o", "--output", required=True, metavar="MOVIE",
                    help=".gif (Pillow) or .mp4 (needs ffmpeg)")
    an.add_argument("--fps", type=float, default=10.0, help="frames per second (default 10)")
    an.add_argument("--max-frames", type=int, default=120, metavar="N",
                    help="frame budget: snapshots are subsampled evenly to at most N "
                         "(default 120)")
    an.add_argument("--view", choices=["density", "cdf", "logdensity"], default=None,
                    help="as for plot (default: the problem's)")
    an.add_argument("--size", choices=["single", "double"], default="double")
    an.add_argument("--force", action="store_true", help="overwrite an existing output file")
    an.set_defaults(func=_cmd_animate)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of every subcommand (each calls one library function)."""
    from . import __version__

    problems = ", ".join(registry.names())
    target_help = f"problem name ({problems}) or CONFIG.toml"
    p = _Parser(prog=PROG, description="Mean-field PDE solvers for wide two-layer networks.",
                epilog=f"problems: {problems}")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("solve", help="solve the PDE for a built-in problem or a TOML config")
    s.add_argument("target", help=target_help)
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set model.delta=0.5 (repeatable)")
    s.add_argument("-o", "--output", metavar="FILE.h5",
                   help="result file (default: runs/<problem>-<UTC time>.h5)")
    s.add_argument("--force", action="store_true", help="overwrite an existing output file")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.add_argument("--steady", action="store_true",
                   help="after time.t_end keep going until the free energy is stationary "
                        "(relative dF/dt < time.steady_tol)")
    s.set_defaults(func=_cmd_solve)

    sg = sub.add_parser("sgd", help="particle SGD of the d-dimensional network itself")
    sg.add_argument("target", help=target_help)
    sg.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="e.g. --set sgd.n_neurons=3200 --set sgd.seed=2")
    sg.add_argument("-o", "--output", metavar="FILE.h5",
                    help="result file (default: runs/<problem>-sgd-<UTC time>.h5)")
    sg.add_argument("--force", action="store_true", help="overwrite an existing output file")
    sg.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sg.set_defaults(func=_cmd_sgd)

    rs = sub.add_parser("resume", help="continue an interrupted (or extend a finished) run")
    rs.add_argument("file", metavar="FILE.h5")
    rs.add_argument("--t-end", type=float, default=None, metavar="T",
                    help="run on to time T (past the stored time.t_end)")
    rs.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    rs.set_defaults(func=_cmd_resume)

    va = sub.add_parser("validate", help="the PDE against particle SGD for several widths")
    va.add_argument("target", help=target_help)
    va.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    va.add_argument("--widths", type=int, nargs="+", default=[200, 800, 3200], metavar="N")
    va.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], metavar="SEED")
    where = va.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None,
                       help="local worker processes for the SGD runs (default: one per core)")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run the SGD runs on the Dask cluster of this scheduler "
                            "(tcp://HOST:PORT); its workers must reach the output directory")
    va.add_argument("-o", "--output", metavar="DIR",
                    help="output directory (default runs/validate-<problem>)")
    va.add_argument("--force", action="store_true",
                    help="overwrite validation.json / validation.png already in the directory "
                         "and recompute SGD files there of another config (a rerun without "
                         "--force resumes: finished SGD files are reused)")
    va.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    va.set_defaults(func=_cmd_validate)

    gb = sub.add_parser("gibbs", help="solve the self-consistent Gibbs state directly (noise)")
    gb.add_argument("target", help=target_help)
    gb.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    gb.add_argument("-o", "--output", metavar="FILE.h5",
                    help="result file (default: runs/<problem>-gibbs-<UTC time>.h5)")
    gb.add_argument("--force", action="store_true", help="overwrite an existing output file")
    gb.add_argument("-q", "--quiet", action="store_true",
                    help="no progress bar (gibbs draws none: accepted as by every command "
                         "that runs)")
    gb.set_defaults(func=_cmd_gibbs)

    i = sub.add_parser("info", help="show the configuration and summary of a result file")
    i.add_argument("file", metavar="FILE.h5")
    i.set_defaults(func=_cmd_info)

    ex = sub.add_parser("export", help="write a result file as netCDF-4 (xarray, CF attributes)")
    ex.add_argument("file", metavar="FILE.h5")
    ex.add_argument("--netcdf", required=True, metavar="OUT.nc",
                    help="netCDF-4 file to write (dims t and r or a, s, r; CF units)")
    ex.add_argument("--force", action="store_true", help="overwrite an existing output file")
    ex.set_defaults(func=_cmd_export)

    _add_plot_parsers(sub)

    sw = sub.add_parser("sweep", help="run a parameter sweep (one Dask task per point) and "
                        "collate DIR/sweep.nc")
    sw.add_argument("target", help=target_help)
    sw.add_argument("--vary", action="append", default=[], required=True,
                    metavar="KEY=V1,V2,...|KEY=start:stop:num",
                    help="a key and its values, e.g. --vary model.delta=0.6,0.8 or --vary "
                         "model.d=20:80:4 (repeatable: the sweep is the Cartesian product)")
    sw.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a value of the base config (repeatable)")
    sw.add_argument("--command", choices=("solve", "gibbs", "sgd"), default="solve",
                    help="what runs at each point (default solve)")
    where = sw.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", default=None,
                       help="a running Dask scheduler, tcp://HOST:PORT (its workers must see "
                            "DIR at the same path); default: a local cluster")
    where.add_argument("--workers", type=int, default=None, metavar="N",
                       help="worker processes of the local cluster (default: one per core)")
    sw.add_argument("-o", "--output", required=True, metavar="DIR",
                    help="sweep directory: one result file per point and sweep.nc; running the "
                         "same command again continues the sweep")
    sw.add_argument("--force", action="store_true",
                    help="recompute point files that hold runs of another config or command")
    sw.add_argument("--retry-failed", action="store_true",
                    help="run again the points whose earlier run failed")
    sw.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sw.set_defaults(func=_cmd_sweep)

    c = sub.add_parser("config", help="print the resolved configuration as TOML")
    c.add_argument("target", help=target_help)
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    c.add_argument("--keys", action="store_true", help="list every key with default and range")
    c.add_argument("--markdown", action="store_true", help="with --keys: as a Markdown table")
    c.set_defaults(func=_cmd_config)
    return p


class _StdoutFailed(Exception):
    """Writing to standard output failed (other than a closed pipe): the OSError as cause."""


class _CheckedStdout:
    """``sys.stdout`` whose failed writes raise :class:`_StdoutFailed` (so a full disk behind
    ``> FILE`` is told apart from a failure to write a result file)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _StdoutFailed() from exc

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _StdoutFailed() from exc

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _show_warning(shown, message, category, filename, lineno, file=None, line=None) -> None:
    """The package's warnings (e.g. no writable kernel cache) as one line on stderr; others as
    ``shown`` (Python's ``showwarning``) shows them."""
    from .kernel_cache import KernelCacheWarning

    if issubclass(category, KernelCacheWarning):
        print(_printable(f"{PROG}: warning: {message}"), file=sys.stderr)
    else:
        shown(message, category, filename, lineno, file, line)


def _silence_stdout() -> None:
    """Point the stdout descriptor at /dev/null: the buffered rest is dropped at exit without a
    second error."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (a test's stream): nothing to do
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    stdout = sys.stdout
    sys.stdout = _CheckedStdout(stdout)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = functools.partial(_show_warning, warnings.showwarning)
            return _main(argv)
    finally:
        sys.stdout = stdout


def _main(argv: Sequence[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
        code = args.func(args)
        sys.stdout.flush()  # a full stdout fails here, not in the flush at exit
        return code
    except _StdoutFailed as exc:
        err = exc.__cause__
        print(_printable(f"{PROG}: error: cannot write to standard output: "
                         f"{getattr(err, 'strerror', None) or err}; redirect it to a place with "
                         "free space (a result file, if the command writes one, is complete)"),
              file=sys.stderr)
        _silence_stdout()
        return 2
    except Interrupted as exc:
        print(f"{PROG}: {_printable(_cli_words(exc))}", file=sys.stderr)
        return exc.exit_code
    except MeanFieldError as exc:
        print(f"{PROG}: error: {_printable(_cli_words(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `meanfield-pde info r.h5 | head -3`: the reader left
        _silence_stdout()  # (no flush error at exit)
        return 128 + signal.SIGPIPE
    except OSError as exc:  # disk full, permissions, ... while writing
        hint = "free some disk space" if exc.errno == errno.ENOSPC else "check the path"
        print(_printable(f"{PROG}: error: {exc.strerror or exc} ({exc.filename or ''}); {hint}"),
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
