"""``python -m benchmarks [--quick|--full] [--only NAME ...]``: run, save JSON, render RESULTS.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import common, noise, radial, sgd, single_neuron

SUITES = {"radial": radial, "single_neuron": single_neuron, "noise": noise, "sgd": sgd}
RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"


def render_all() -> str:
    parts = ["# Benchmark results", "",
             "Regenerate with `python -m benchmarks` (`--quick` for the short version). "
             "Every number below comes from the JSON files in `benchmarks/results/`.", ""]
    machine_done = False
    for name, mod in SUITES.items():
        data = common.load(name)
        if data is None:
            continue
        if not machine_done:
            m = data["machine"]
            parts += [f"Machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, "
                      f"numpy {m['numpy']}, numba {m['numba']}; meanfield-pde {m['meanfield_pde']}"
                      f" (git {m['git']}); measured {m['date_utc']} UTC.", ""]
            machine_done = True
        parts.append(mod.render(data))
    return "\n".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="smaller grids (a few minutes)")
    g.add_argument("--full", action="store_true", help="all grids (default)")
    ap.add_argument("--only", nargs="*", choices=sorted(SUITES), help="run only these suites")
    ap.add_argument("--render", action="store_true", help="only re-render RESULTS.md")
    args = ap.parse_args()
    if not args.render:
        for name in args.only or SUITES:
            print(f"running {name} ...", flush=True)
            path = common.save(name, SUITES[name].run(quick=args.quick))
            print(f"  wrote {path}")
    RESULTS_MD.write_text(render_all())
    print(f"wrote {RESULTS_MD}")


if __name__ == "__main__":
    main()
