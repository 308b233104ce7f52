"""Particle SGD (issue 5): throughput, and the cost of reproducing the PDE risk curve with SGD.

* samples per second of one-pass SGD, d = 40, N = 800 (noiseless; noisy with batch 1 and 10);
* MMN18 Fig. 1 setting, ε = 2.5e-5, stratified initial radii: for N = 200, 800, 3200 (quick: 200,
  800, one seed), the sup over t of |mean-over-seeds R_SGD − R_PDE| (with and without t = 0), the
  SGD wall time (population risk at 41 times included) against the PDE's own time, and the time each
  needs for a risk curve accurate to 1e-2 and 1e-3;
* the population risk inside a default ``sgd gaussians`` run (N = 800, d = 40, 201 outputs): its
  share of the run, the time per evaluation against the previous evaluation
  (``PopulationRisk.reference``, evaluated at the same outputs of the same run) and the largest
  difference of the two risk curves.
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from meanfield_pde import default_config, load
from meanfield_pde.particles import ParticleSGD, run_sgd
from meanfield_pde.runner.pde import solve


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


def risk_cost() -> dict:
    """One default ``sgd gaussians`` run.  At each output, after the run's own evaluation, the
    same θ is evaluated again by the current and by the previous (reference) evaluation, each
    timed in wall and CPU seconds (CPU: the whole process, so both threads of the previous
    parallel kernel count).  The run's share of risk evaluation is measured without these extra
    evaluations: risk_seconds / (wall − callback seconds), and in CPU time; the previous code's
    share is what the same run would have been with the reference evaluation instead."""
    cfg = default_config("gaussians")
    run_sgd(cfg, n_neurons=8, times=np.array([0.0, 0.01]))  # compile (cached kernels)
    sgd = ParticleSGD(cfg)
    evaluator = sgd.risk
    evaluator.reference(sgd.initial_state().theta)  # compile the reference kernel
    ref_risk, cur_risk = [], []
    acc = {"ref_wall": 0.0, "ref_cpu": 0.0, "cur_wall": 0.0, "cur_cpu": 0.0}

    def timed(f, theta, key):
        w0, c0 = time.perf_counter(), time.process_time()
        val = f(theta)
        acc[key + "_cpu"] += time.process_time() - c0
        acc[key + "_wall"] += time.perf_counter() - w0
        return val

    def on_output(k, st, risk, coords):
        cur_risk.append(timed(evaluator, st.theta, "cur"))
        ref_risk.append(timed(evaluator.reference, st.theta, "ref"))

    load0 = os.getloadavg()[0]
    w0, c0 = time.perf_counter(), time.process_time()
    res = run_sgd(cfg, on_output=on_output)
    cpu_all, wall_all = time.process_time() - c0, time.perf_counter() - w0
    load1 = os.getloadavg()[0]
    k = res.t.size
    extra_wall = acc["ref_wall"] + acc["cur_wall"]
    wall = res.wall_seconds - extra_wall  # the run as the package does it
    steps = wall - res.risk_seconds
    cpu = cpu_all - acc["ref_cpu"] - acc["cur_cpu"]  # its risk evaluations cost ~ cur_cpu
    step_cpu = cpu - acc["cur_cpu"]
    return {"n": res.n_neurons, "d": int(cfg["model.d"]), "outputs": int(k),
            "steps": int(res.steps[-1]), "wall_seconds": wall, "step_seconds": steps,
            "risk_seconds": res.risk_seconds, "risk_fraction": res.risk_seconds / wall,
            "risk_ms_per_eval": 1e3 * res.risk_seconds / k,
            "reference_seconds": acc["ref_wall"],
            "reference_ms_per_eval": 1e3 * acc["ref_wall"] / k,
            "reference_wall_seconds": steps + acc["ref_wall"],
            "reference_fraction": acc["ref_wall"] / (steps + acc["ref_wall"]),
            "cpu_seconds": cpu, "step_cpu_seconds": step_cpu, "risk_cpu_seconds": acc["cur_cpu"],
            "risk_cpu_fraction": acc["cur_cpu"] / cpu,
            "reference_cpu_seconds": acc["ref_cpu"],
            "reference_cpu_fraction": acc["ref_cpu"] / (step_cpu + acc["ref_cpu"]),
            "harness_wall_seconds": wall_all,
            "max_abs_diff": float(np.max(np.abs(res.risk - np.asarray(ref_risk)))),
            "max_abs_diff_repeat": float(np.max(np.abs(res.risk - np.asarray(cur_risk)))),
            "load_average": [load0, load1]}


EPS = 2.5e-5  # small enough that the O(ε) lead of SGD is below the N = 3200 gap


#: why the SGD cost of an accuracy no measured width reaches is not extrapolated in N
NOT_EXTRAPOLATED = (
    "not extrapolated: the SGD error has a finite-N part (≈ 4/N) and a step-size part linear in "
    "ε (≈ 5e-3 at t ≈ 5 for ε = 2.5e-5, as an independent SGD of the full network found), so "
    "growing N alone does not reach 1e-3; a cost model in both N and ε is not measured yet")


def sgd_reached(sg: dict) -> bool:
    """Whether a measured width reached the tolerance (files written before extrapolation was
    dropped mark an extrapolated one as not measured)."""
    return sg.get("reached", True) and not sg.get("extrapolated", False)


def _pde_time(cfg, n: int, tmp: str) -> float:
    """Wall time of a full solve (load, setup, solve, 201 snapshot writes) on n cells."""
    t0 = time.perf_counter()
    solve(cfg.with_overrides([f"grid.n={n}"]), f"{tmp}/pde{n}.h5")
    return time.perf_counter() - t0


def reproduce(widths=(200, 800, 3200), seeds=(0, 1, 2)) -> dict:
    """SGD (ε = 2.5e-5, stratified initial radii) against the PDE, in this one run: the sup gap of
    the seed-averaged risk curve per N, its wall time, the fitted gap ≈ C N^-p, and the time each
    method needs for a risk curve accurate to 1e-2 and 1e-3 (SGD: where a measured width reaches
    it, never extrapolated: :data:`NOT_EXTRAPOLATED`; PDE: the grid whose risk error is below
    the tolerance, n = 1000 for 1e-2 and n = 4000 for 1e-3, see the radial suite)."""
    cfg = default_config("gaussians").with_overrides(
        [f"sgd.eps={EPS}", "sgd.init_sampling='stratified'"])
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        s = solve(cfg, f"{tmp}/pde.h5")
        pde_seconds = time.perf_counter() - t0
        pde = load(s.path)
        pde_time = {"1e-2": _pde_time(cfg, 1000, tmp), "1e-3": _pde_time(cfg, 4000, tmp)}
    times = pde.t[::5]
    rows = []
    for n in widths:
        risks, wall, per_seed = [], 0.0, []
        for seed in seeds:
            res = run_sgd(cfg, n_neurons=n, seed=seed, times=times)
            risks.append(res.risk)
            wall += res.wall_seconds
            per_seed.append(float(np.max(np.abs(res.risk - np.interp(res.t, pde.t,
                                                                     pde["risk"])))))
        gap = np.abs(np.mean(risks, axis=0) - np.interp(res.t, pde.t, pde["risk"]))
        rows.append({"n": n, "seeds": len(seeds), "sup_gap": float(gap.max()),
                     "sup_gap_after_0": float(gap[1:].max()), "sgd_seconds": wall,
                     "sup_gap_per_seed": per_seed,
                     "reproduced_1e-2": bool(gap.max() < 1e-2)})
    ns = np.array([r["n"] for r in rows], dtype=float)
    gaps = np.array([r["sup_gap"] for r in rows])
    p, _ = np.polyfit(np.log(ns), np.log(gaps), 1)
    sgd_time = {}
    for tol in (1e-2, 1e-3):  # measured only: see NOT_EXTRAPOLATED
        hit = [r for r in rows if r["sup_gap"] < tol]
        sgd_time[f"{tol:.0e}"] = ({"n": hit[0]["n"], "seconds": hit[0]["sgd_seconds"],
                                   "extrapolated": False} if hit else {"reached": False})
    return {"eps": EPS, "pde_seconds": pde_seconds, "pde_solve_seconds": s.wall_seconds,
            "pde_time_to": pde_time, "sgd_time_to": sgd_time, "gap_exponent": float(-p),
            "rows": rows}


def run(quick: bool = False) -> dict:
    if quick:
        return {"throughput": throughput(), "risk_cost": risk_cost(),
                "reproduce": reproduce((100, 200), (0, 1))}
    return {"throughput": throughput(), "risk_cost": risk_cost(),
            "reproduce": reproduce((200, 800, 3200), (0, 1))}


def render_risk_cost(rc: dict) -> list[str]:
    """The population-risk section (Markdown lines)."""
    return ["", f"Population risk in a default `sgd gaussians` run (N = {rc['n']}, d = {rc['d']}, "
            f"{rc['steps']} steps, {rc['outputs']} outputs; both evaluations at the same outputs "
            f"of one run, load average {rc['load_average'][0]:.1f} → "
            f"{rc['load_average'][1]:.1f} on this machine"
            + (f", measured {rc['machine']['date_utc']} ({rc['machine']['git']})"
               if "machine" in rc else "") + "):", "",
            "| risk evaluation | run | SGD steps | risk | risk share | per evaluation | "
            "risk share of CPU time |", "|---|---|---|---|---|---|---|",
            f"| current (serial, per-pair series length) | {rc['wall_seconds']:.1f} s | "
            f"{rc['step_seconds']:.1f} s | {rc['risk_seconds']:.1f} s | "
            f"{rc['risk_fraction']:.0%} | {rc['risk_ms_per_eval']:.1f} ms | "
            f"{rc['risk_cpu_fraction']:.0%} |",
            f"| previous (`PopulationRisk.reference`) | {rc['reference_wall_seconds']:.1f} s | "
            f"{rc['step_seconds']:.1f} s | {rc['reference_seconds']:.1f} s | "
            f"{rc['reference_fraction']:.0%} | {rc['reference_ms_per_eval']:.1f} ms | "
            f"{rc['reference_cpu_fraction']:.0%} (2 threads) |", "",
            f"Largest |R_current − R_previous| over the {rc['outputs']} outputs: "
            f"{rc['max_abs_diff']:.1e} (the same θ evaluated twice by the current code: "
            f"{rc['max_abs_diff_repeat']:.0e}).  The load average is that of the whole machine; "
            "wall-clock shares move with it, the CPU-time shares much less."]


def render(data: dict) -> str:
    lines = ["## Particle SGD against the PDE", "",
             "Throughput of one-pass SGD (d = 40, N = 800; the noisy case is bound by drawing "
             "the normals):", "", "| case | samples/s |", "|---|---|"]
    for r in data["throughput"]:
        lines.append(f"| {r['case']} | {r['samples_per_second']:.3g} |")
    if "risk_cost" in data:
        lines += render_risk_cost(data["risk_cost"])
    rep = data["reproduce"]
    eps = rep.get("eps", 1e-4)
    lines += ["", f"MMN18 Fig. 1 setting, ε = {eps:g}, stratified initial radii, risk curve "
              f"averaged over seeds against the PDE (PDE: {rep['pde_seconds']:.1f} s including "
              f"compile/load and setup, {rep['pde_solve_seconds']:.1f} s solve), all measured in "
              "one run:", "",
              "| N | seeds | sup_t gap | sup_(t>0) gap | within 1e-2 | "
              "SGD time (all seeds) | SGD time / PDE time |", "|---|---|---|---|---|---|---|"]
    for r in rep["rows"]:
        lines.append(f"| {r['n']} | {r['seeds']} | {r['sup_gap']:.4f} | "
                     f"{r['sup_gap_after_0']:.4f} | {r['reproduced_1e-2']} | "
                     f"{r['sgd_seconds']:.1f} s | "
                     f"{r['sgd_seconds'] / rep['pde_seconds']:.0f}× |")
    if "sgd_time_to" in rep:
        lines += ["", "Time to a risk curve within a tolerance (SGD: the first width above that "
                  f"reaches it, {NOT_EXTRAPOLATED}; PDE: n = 1000 for 1e-2, 4000 for 1e-3):",
                  "", "| tolerance | SGD: N | SGD time | PDE time | ratio |",
                  "|---|---|---|---|---|"]
        widest = max(r["n"] for r in rep["rows"])
        for tol in ("1e-02", "1e-03"):
            sg = rep["sgd_time_to"][tol]
            pt = rep["pde_time_to"][tol.replace("e-0", "e-")]
            if sgd_reached(sg):
                lines.append(f"| {tol} | {sg['n']:.0f} | {sg['seconds']:.0f} s | {pt:.1f} s | "
                             f"{sg['seconds'] / pt:.0f}× |")
            else:
                lines.append(f"| {tol} | not reached at N ≤ {widest} | – | {pt:.1f} s | – |")
    lines.append("")
    return "\n".join(lines)
