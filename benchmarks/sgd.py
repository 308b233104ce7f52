"""Particle SGD (issue 5): throughput, and the cost of reproducing the PDE risk curve with SGD.

* samples per second of one-pass SGD, d = 40, N = 800 (noiseless; noisy with batch 1 and 10);
* MMN18 Fig. 1 setting, ε = 1e-4: for N = 200, 800, 3200 and three seeds, the sup over t of
  |mean-over-seeds R_SGD − R_PDE| (with and without t = 0, where the gap is the finite-N sampling of
  the initial law), the SGD wall time (all seeds, population risk at 41 times included) against the
  PDE's own solve time, and whether the curve is reproduced to 1e-2.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np

from meanfield_pde import default_config, load
from meanfield_pde.particles import run_sgd
from meanfield_pde.solver import solve


def throughput() -> list[dict]:
    rows = []
    noisy = ["noise.beta=100", "noise.lam=0.01"]
    for label, over in (("noiseless, batch 1", []),
                        ("noisy (β = 100, λ = 0.01), batch 1", noisy),
                        ("noisy (β = 100, λ = 0.01), batch 10", [*noisy, "sgd.batch=10"])):
        cfg = default_config("gaussians").with_overrides(over + ["time.t_end=2"])
        run_sgd(cfg, n_neurons=8, times=np.array([0.0, 0.01]))  # compile
        t0 = time.perf_counter()
        res = run_sgd(cfg, times=np.array([0.0, 2.0]))
        wall = time.perf_counter() - t0 - res.risk_seconds
        rows.append({"case": label, "samples": res.n_samples, "seconds": wall,
                     "samples_per_second": res.n_samples / wall})
    return rows


def reproduce(widths=(200, 800, 3200), seeds=(0, 1, 2)) -> dict:
    cfg = default_config("gaussians")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        s = solve(cfg, f"{tmp}/pde.h5")
        pde_seconds = time.perf_counter() - t0
        pde = load(s.path)
    times = pde.t[::5]
    rows = []
    for n in widths:
        risks, wall = [], 0.0
        for seed in seeds:
            res = run_sgd(cfg, n_neurons=n, seed=seed, times=times)
            risks.append(res.risk)
            wall += res.wall_seconds
        gap = np.abs(np.mean(risks, axis=0) - np.interp(res.t, pde.t, pde["risk"]))
        rows.append({"n": n, "seeds": len(seeds), "sup_gap": float(gap.max()),
                     "sup_gap_after_0": float(gap[1:].max()), "sgd_seconds": wall,
                     "reproduced_1e-2": bool(gap[1:].max() < 1e-2)})
    return {"pde_seconds": pde_seconds, "pde_solve_seconds": s.wall_seconds, "rows": rows}


def run(quick: bool = False) -> dict:
    widths = (200, 800) if quick else (200, 800, 3200)
    return {"throughput": throughput(), "reproduce": reproduce(widths)}


def render(data: dict) -> str:
    lines = ["## Particle SGD against the PDE", "",
             "Throughput of one-pass SGD (d = 40, N = 800; the noisy case is bound by drawing "
             "the normals):", "", "| case | samples/s |", "|---|---|"]
    for r in data["throughput"]:
        lines.append(f"| {r['case']} | {r['samples_per_second']:.3g} |")
    rep = data["reproduce"]
    lines += ["", "MMN18 Fig. 1 setting, ε = 1e-4, risk curve averaged over seeds against the PDE "
              f"(PDE: {rep['pde_seconds']:.1f} s including compile/load and setup, "
              f"{rep['pde_solve_seconds']:.1f} s solve):", "",
              "| N | seeds | sup_t gap | sup_(t>0) gap | within 1e-2 (t > 0) | "
              "SGD time (all seeds) | SGD time / PDE time |", "|---|---|---|---|---|---|---|"]
    for r in rep["rows"]:
        lines.append(f"| {r['n']} | {r['seeds']} | {r['sup_gap']:.4f} | "
                     f"{r['sup_gap_after_0']:.4f} | {r['reproduced_1e-2']} | "
                     f"{r['sgd_seconds']:.1f} s | "
                     f"{r['sgd_seconds'] / rep['pde_seconds']:.0f}× |")
    lines.append("")
    return "\n".join(lines)
