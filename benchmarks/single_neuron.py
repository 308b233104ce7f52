"""Single-neuron solver (issue 3): cost per step against cells, default run, grid agreement.

* cost: seconds per SSP-RK3 step for n³ cells (n = 32 … 128) on the default problem's box,
  serial and parallel (2 threads), the log-log slope, and cells per second;
* default run: wall time of ``solve`` on the defaults (compile/load and setup reported apart);
* accuracy: max over the outputs of |R_default − R_finer| for a 1.5× and a 2.25× finer grid.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import fv_config
from meanfield_pde import load, solve
from meanfield_pde.fv.threads import FixedThreads
from meanfield_pde.problems.single_neuron import WALLS, SingleNeuronProblem


def _box() -> list[str]:
    p = SingleNeuronProblem(fv_config("single-neuron"))
    return [f"grid.{k}={float(v)!r}" for k, v in zip(WALLS, p.box, strict=True)]


def cost(ns: tuple[int, ...], box: list[str]) -> dict:
    rows = []
    for n in ns:
        cfg = fv_config("single-neuron").with_overrides(
            box + [f"grid.n_a={n}", f"grid.n_s={n}", f"grid.n_r={n}"])
        p = SingleNeuronProblem(cfg)
        row = {"n": n, "cells": n**3, "Q": int(p.kernel.feats.shape[0])}
        for parallel in (False, True):
            st = SingleNeuronProblem.make_stepper(p)
            st.threads = FixedThreads(parallel)
            rho = p.initial_state()
            st.advance(rho, 0.0, 1e9, 2)  # warm up, reach the dynamics
            best = np.inf
            for _ in range(3):
                t0 = time.perf_counter()
                rep = st.advance(rho, 0.0, 1e9, 5)
                best = min(best, (time.perf_counter() - t0) / rep.steps)
            row["parallel" if parallel else "serial"] = best
        rows.append(row)
    cells = np.array([r["cells"] for r in rows], dtype=float)
    out = {"rows": rows}
    for key in ("serial", "parallel"):
        sec = np.array([r[key] for r in rows])
        out[f"slope_{key}"] = float(np.polyfit(np.log(cells), np.log(sec), 1)[0])
    return out


def accuracy(tmp: str, grids: tuple[tuple[int, int, int], ...] = (
        (24, 48, 48), (36, 72, 72), (54, 108, 108))) -> dict:
    res, walls = [], []
    for g in grids:
        cfg = fv_config("single-neuron").with_overrides(
            [f"grid.n_a={g[0]}", f"grid.n_s={g[1]}", f"grid.n_r={g[2]}"])
        s = solve(cfg, f"{tmp}/sn_{g[0]}.h5", overwrite=True)
        res.append(load(s.path)["risk"])
        walls.append({"grid": list(g), "wall_seconds": s.wall_seconds,
                      "setup_seconds": s.setup_seconds, "compile_seconds": s.compile_seconds,
                      "n_steps": s.n_steps, "risk_final": s.risk_final})
    out = {"runs": walls, "max_diff_to_1.5x": float(np.max(np.abs(res[0] - res[1])))}
    if len(res) > 2:
        out["max_diff_to_2.25x"] = float(np.max(np.abs(res[0] - res[2])))
        out["max_diff_1.5x_to_2.25x"] = float(np.max(np.abs(res[1] - res[2])))
    return out


def run(quick: bool = False) -> dict:
    import tempfile

    box = _box()
    ns = (32, 48, 64) if quick else (32, 48, 64, 96, 128)
    grids = ((24, 48, 48), (36, 72, 72)) if quick else ((24, 48, 48), (36, 72, 72),
                                                        (54, 108, 108))
    with tempfile.TemporaryDirectory() as tmp:
        return {"cost": cost(ns, box), "accuracy": accuracy(tmp, grids), "box": box}


def render(data: dict) -> str:
    c, a = data["cost"], data["accuracy"]
    lines = ["## Single-neuron solver (σ = f_* = tanh, d = 30, κ = 0.5, a = 1, t ∈ [0, 8])", "",
             "Default run (n_a × n_s × n_r = 24 × 48 × 48, automatic box "
             + ", ".join(b.replace("grid.", "") for b in data["box"]) + "):", "",
             "| grid | compile/load | setup (pilot, kernel) | solve | steps | R(8) |",
             "|---|---|---|---|---|---|"]
    for r in a["runs"]:
        g = "×".join(str(x) for x in r["grid"])
        lines.append(f"| {g} | {r['compile_seconds']:.2f} s | {r['setup_seconds']:.2f} s | "
                     f"{r['wall_seconds']:.2f} s | {r['n_steps']} | {r['risk_final']:.6f} |")
    finer = (f", 2.25× finer {a['max_diff_to_2.25x']:.1e} (1.5× vs 2.25×: "
             f"{a['max_diff_1.5x_to_2.25x']:.1e})" if "max_diff_to_2.25x" in a else "")
    lines += ["", f"Max over the 81 outputs of |R(default) − R(finer)|: 1.5× finer "
              f"{a['max_diff_to_1.5x']:.1e}{finer}.", "",
              f"Cost per SSP-RK3 step (3 right-hand sides) against cells; log-log slope serial "
              f"{c['slope_serial']:.2f}, parallel {c['slope_parallel']:.2f}.", "",
              "| n³ | cells | Q (features) | serial s/step | parallel s/step | speed-up | "
              "cells·steps/s (parallel) |", "|---|---|---|---|---|---|---|"]
    for r in c["rows"]:
        lines.append(f"| {r['n']}³ | {r['cells']:.2e} | {r['Q']} | {r['serial'] * 1e3:.1f} ms | "
                     f"{r['parallel'] * 1e3:.1f} ms | {r['serial'] / r['parallel']:.2f} | "
                     f"{r['cells'] / r['parallel']:.2e} |")
    lines.append("")
    return "\n".join(lines)
