"""``python -m benchmarks [--quick|--full] [--only NAME ...] [--render] [--update-results | --out
DIR]``: run, save JSON, render RESULTS.md (and the figures in results/) from the JSON files.

A run writes to a scratch folder (``benchmarks/scratch/``, git-ignored; ``--out DIR`` for another):
``<folder>/results/*.json``, the figures next to them and ``<folder>/RESULTS.md``; the committed
``benchmarks/results/`` and ``benchmarks/RESULTS.md`` change only with ``--update-results``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from . import accuracy, common, frontier, noise, performance, radial, sgd, single_neuron, threads
from . import sweep as sweeps

SUITES = {"radial": radial, "single_neuron": single_neuron, "noise": noise, "sgd": sgd,
          "accuracy": accuracy, "performance": performance, "threads": threads,
          "frontier": frontier, "sweep": sweeps}
RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"  # the committed one


def _fmt_s(x: float) -> str:
    return f"{x:.2f} s" if x < 10 else f"{x:.0f} s"


def headline_rows(root: Path | None = None) -> list[tuple[str, str]]:
    """(quantity, value) pairs of the headline table, each from one JSON file in
    ``<root>/results/`` (default: the committed results); a quantity whose file or entry is
    missing is left out."""
    rad, sn, perf = (common.load(x, root) for x in ("radial", "single_neuron", "performance"))
    rows: list[tuple[str, str]] = []
    if rad:
        w = rad["default_run"]["warm"]
        n0 = rad["default_n"]
        rows.append((f"default radial run (n = {n0}, t ∈ [0, 20], kernels cached)",
                     f"{_fmt_s(w['wall_seconds'])} "
                     f"(+ {w['compile_seconds'] + w['setup_seconds']:.2f} s load and setup)"))
        conv = {r["n"]: r["risk"] for r in rad["convergence"]["rows"]}
        n_f = max(conv)
        if n0 in conv and n_f // 2 in conv and n_f > n0:
            # Richardson extrapolation of the two finest grids with the formal order 2
            lim = [f + (f - c) / 3.0 for c, f in zip(conv[n_f // 2], conv[n_f], strict=True)]
            err = [abs(r - x) for r, x in zip(conv[n0], lim, strict=True)]
            rows.append((f"risk error of the default grid at t = 5, 10, 20 (against the order-2 "
                         f"extrapolation of n = {n_f // 2}, {n_f})",
                         ", ".join(f"{e:.0e}" for e in err)))
    if perf:
        big = perf["lowrank"]["rows"][-1]
        rows.append((f"low-rank vs dense kernel, one evaluation of ψ at n = {big['n']}",
                     f"{big['speedup']:.0f}× faster (relative difference "
                     f"{big['max_rel_diff']:.0e})"))
        nb = perf["numba"]["rows"][0]
        rows.append((f"Numba vs numpy right-hand side ({nb['case']})",
                     f"{nb['ratio']:.1f}× faster"))
        for case in perf["mol"]["cases"]:
            m = case["matched"]
            if m is not None:
                val = (f"{case['time_ratio']:.1f}× the package's time for its risk error "
                       f"{case['package']['error']:.0e}")
                if m["min_density"] < 0.0:
                    val += (f", with negative densities (min {m['min_density']:.1g}) and TV "
                            f"{m['tv_max'] / case['package']['tv_max']:.2g}× the package's")
            else:
                ok = [r for r in case["mol"] if r["status"] == "ok"]
                worst = min((r["min_density"] for r in ok), default=float("nan"))
                val = (f"never reaches the package's risk error {case['package']['error']:.0e}"
                       + (f"; density down to {worst:.2g}" if ok else ""))
            rows.append((f"scipy method of lines (centred, RK45/BDF/LSODA) to t = "
                         f"{case['t_end']:g}", val))
        r = perf["cost"]["rows"][-1]
        rows.append((f"radial step at n = {r['n']}: traffic model / single-core read bandwidth",
                     f"{r['bandwidth_fraction']:.0%} ({r['cell_steps_per_second']:.1e} "
                     "cell-steps/s)"))
    if sn:
        r = sn["cost"]["rows"][-1]
        rows.append((f"3-D single-neuron solver, {r['n']}³ cells, 2 threads",
                     f"{r['cells'] / r['parallel']:.1e} cell-steps/s"))
    sg = common.load("sgd", root)
    if sg and "sgd_time_to" in sg["reproduce"]:
        rep = sg["reproduce"]
        widest = max(r["n"] for r in rep["rows"])
        for tol in ("1e-02", "1e-03"):
            t_sgd = rep["sgd_time_to"][tol]
            t_pde = rep["pde_time_to"][tol.replace("e-0", "e-")]
            what = (f"particle SGD vs PDE: time to the risk curve within {tol} "
                    f"(ε = {rep['eps']:g})")
            if sgd.sgd_reached(t_sgd):
                rows.append((what, f"SGD {_fmt_s(t_sgd['seconds'])} (N = {t_sgd['n']:.0f}), "
                                   f"PDE {_fmt_s(t_pde)}: {t_sgd['seconds'] / t_pde:.0f}×"))
            else:
                rows.append((what, f"SGD: not reached at N ≤ {widest} (not extrapolated: "
                                   f"see the sgd section), PDE {_fmt_s(t_pde)}"))
    return rows


def headline_markdown(root: Path | None = None) -> str:
    """The headline numbers as a Markdown table (pasted into README.md between
    ``<!-- headline -->`` and ``<!-- /headline -->``; tests/test_benchmarks.py checks it)."""
    lines = ["| benchmark | result |", "|---|---|"]
    lines += [f"| {q} | {v} |" for q, v in headline_rows(root)]
    return "\n".join(lines) + "\n"


def render_all(root: Path | None = None) -> str:
    """RESULTS.md from the JSON files in ``<root>/results/`` (default: the committed ones); the
    figures are drawn into the output folder (:func:`common.set_output_root`)."""
    parts = ["# Benchmark results", "",
             "Regenerate with `python -m benchmarks --update-results` (`--quick` for the short "
             "version; `--render` rebuilds this file and the figures from the JSON files alone; "
             "without `--update-results` everything goes to the git-ignored "
             "`benchmarks/scratch/`). Every number below comes from the JSON files in "
             "`results/` next to this file.", "",
             "## Headline numbers", "", headline_markdown(root)]
    loaded = {name: common.load(name, root) for name in SUITES}
    loaded = {name: data for name, data in loaded.items() if data is not None}
    if loaded:
        m = next(iter(loaded.values()))["machine"]
        parts += [f"Machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, "
                  f"numpy {m['numpy']}, numba {m['numba']}; meanfield-pde {m['meanfield_pde']}. "
                  "Measured (UTC, git): " + "; ".join(
                      f"{name} {d['machine']['date_utc']} ({d['machine']['git']})"
                      for name, d in loaded.items()) + ".", ""]
    for name, data in loaded.items():
        parts.append(SUITES[name].render(data))
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true",
                   help="smaller sizes (about 5 min on an idle 2-core machine)")
    g.add_argument("--full", action="store_true", help="all sizes (default)")
    ap.add_argument("--only", nargs="*", choices=sorted(SUITES), help="run only these suites")
    ap.add_argument("--render", action="store_true",
                    help="only re-render RESULTS.md and the figures from the JSON files")
    o = ap.add_mutually_exclusive_group()
    o.add_argument("--update-results", action="store_true",
                   help="write into the committed benchmarks/results/ and benchmarks/RESULTS.md")
    o.add_argument("--out", metavar="DIR", default=None,
                   help="output folder (default benchmarks/scratch/, git-ignored)")
    args = ap.parse_args(argv)
    if args.update_results:
        root = common.set_output_root(common.HERE)
        results_md, read_root = RESULTS_MD, None
    else:
        root = common.set_output_root(args.out or common.SCRATCH)
        results_md, read_root = root / "RESULTS.md", root
    if not args.render:
        t_all = time.perf_counter()
        for name in args.only or SUITES:
            print(f"running {name} ...", flush=True)
            t0 = time.perf_counter()
            path = common.save(name, SUITES[name].run(quick=args.quick))
            print(f"  wrote {path} ({time.perf_counter() - t0:.0f} s)", flush=True)
        print(f"all suites: {time.perf_counter() - t_all:.0f} s")
    results_md.parent.mkdir(parents=True, exist_ok=True)
    results_md.write_text(render_all(read_root))
    print(f"wrote {results_md}")
    if not args.update_results:
        print(f"results in {root} (the committed benchmarks/results/ are unchanged; "
              "--update-results writes there)")


if __name__ == "__main__":
    main()
