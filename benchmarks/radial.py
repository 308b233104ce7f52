"""Radial solver (issue 2): default-run timing, grid convergence of the risk, cost per step.

* default run: wall time of ``solve`` on the built-in defaults, and the compile time measured
  separately, cold (empty Numba cache, fresh process) and warm (cache on disk);
* convergence: R(t) at t = 5, 10, 20 for n = 250 ... 4000 on one domain (the automatic wall of
  the default run), differences to the finest grid, observed order and a Richardson estimate;
* cost: seconds per step and cell-steps per second against n.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks.common import fv_config
from meanfield_pde.problems.gaussians import GaussiansProblem

TIMES = (5.0, 10.0, 20.0)


def _fresh_process_timing(cache_dir: str) -> dict:
    code = (
        "import json, tempfile, time, pathlib\n"
        "t0 = time.perf_counter()\n"
        "from meanfield_pde import default_config, solve\n"
        "t1 = time.perf_counter()\n"
        "d = tempfile.mkdtemp()\n"
        "s = solve(default_config('gaussians'), pathlib.Path(d) / 'r.h5')\n"
        "print(json.dumps({'import_seconds': t1 - t0, 'compile_seconds': s.compile_seconds,"
        " 'setup_seconds': s.setup_seconds, 'wall_seconds': s.wall_seconds,"
        " 'total_seconds': time.perf_counter() - t0,"
        " 'n_steps': s.n_steps, 'risk_final': s.risk_final}))\n"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def default_run() -> dict:
    with tempfile.TemporaryDirectory() as cache:
        cold = _fresh_process_timing(cache)
        warm = _fresh_process_timing(cache)
    return {"cold": cold, "warm": warm}


def _risks(n: int, r_max: float) -> tuple[list[float], int, float]:
    cfg = fv_config("gaussians").with_overrides([f"grid.n={n}", f"grid.r_max={r_max}"])
    p = GaussiansProblem(cfg)
    stepper, rho = p.make_stepper(), p.initial_state()
    stepper.advance(rho.copy(), 0.0, 0.0, 0)
    t, out, steps = 0.0, [], 0
    t0 = time.perf_counter()
    for t_stop in TIMES:
        rep = stepper.advance(rho, t, t_stop, 10**9)
        t, steps = rep.t, steps + rep.steps
        out.append(p.risk(rho))
    return out, steps, time.perf_counter() - t0


def convergence(ns: tuple[int, ...]) -> dict:
    r_max = GaussiansProblem(fv_config("gaussians")).r_max
    rows = []
    for n in ns:
        risks, steps, wall = _risks(n, r_max)
        rows.append({"n": n, "h": r_max / n, "risk": risks, "steps": steps, "wall_seconds": wall,
                     "seconds_per_step": wall / steps,
                     "cell_steps_per_second": n * steps / wall})
    finest = np.array(rows[-1]["risk"])
    for row in rows:
        row["diff_to_finest"] = list(np.abs(np.array(row["risk"]) - finest))
    # observed order from the last three grids with ratio 2, and a Richardson estimate of the limit
    triple = [row for row in rows if row["n"] in (ns[-1] // 4, ns[-1] // 2, ns[-1])]
    r = np.array([row["risk"] for row in triple])
    d1, d2 = r[1] - r[0], r[2] - r[1]
    order = np.log2(np.abs(d1 / d2))
    limit = r[2] + d2 / (2.0**order - 1.0)
    for row in rows:
        row["error_vs_richardson"] = list(np.abs(np.array(row["risk"]) - limit))
    return {"r_max": r_max, "times": list(TIMES), "rows": rows, "observed_order": list(order),
            "richardson_limit": list(limit)}


def run(quick: bool = False) -> dict:
    n0 = fv_config("gaussians")["grid.n"]
    ns = (250, 500, 1000, 2000, 4000) if quick else (250, 500, 1000, 2000, 4000, 8000)
    ns = tuple(sorted(set(ns) | {n0}))
    return {"default_run": default_run(), "convergence": convergence(ns),
            "default_n": fv_config("gaussians")["grid.n"]}


def render(data: dict) -> str:
    d, c = data["default_run"], data["convergence"]
    lines = [
        "## Radial solver (MMN18 Fig. 1 setting: Δ = 0.8, d = 40, κ = 0.8, ramp, t ∈ [0, 20])",
        "",
        f"Default grid: n = {data['default_n']} cells on [0, {c['r_max']:.4g}] (automatic wall).",
        "",
        "| default run | import | compile/load | setup (kernel, wall) | solve (t = 0 … 20) | "
        "steps | final risk |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in ("cold", "warm"):
        x = d[key]
        label = "cold (empty Numba cache)" if key == "cold" else "warm (cached kernels)"
        lines.append(f"| {label} | {x['import_seconds']:.2f} s | {x['compile_seconds']:.2f} s | "
                     f"{x['setup_seconds']:.2f} s | "
                     f"{x['wall_seconds']:.2f} s | {x['n_steps']} | {x['risk_final']:.8f} |")
    lines += [
        "",
        "Risk at t = 5, 10, 20 against the number of cells (same domain). `Δ finest` is the "
        "difference to the finest grid; `err` is the difference to the Richardson limit of the "
        "grids n_max/4, n_max/2, n_max (observed orders "
        + ", ".join(f"{o:.2f}" for o in c["observed_order"]) + ").",
        "",
        "| n | h | R(5) | R(10) | R(20) | Δ finest (5, 10, 20) | err (5, 10, 20) | steps | "
        "s/step | cell-steps/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in c["rows"]:
        rk = " | ".join(f"{x:.7f}" for x in row["risk"])
        df = ", ".join(f"{x:.1e}" for x in row["diff_to_finest"])
        er = ", ".join(f"{x:.1e}" for x in row["error_vs_richardson"])
        lines.append(f"| {row['n']} | {row['h']:.4f} | {rk} | {df} | {er} | {row['steps']} | "
                     f"{row['seconds_per_step'] * 1e6:.0f} µs | "
                     f"{row['cell_steps_per_second']:.2e} |")
    lines.append("")
    return "\n".join(lines)
