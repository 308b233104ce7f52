"""Parameter sweeps on Dask: 8 points on 2 local workers against the same 8 one after another,
and the overhead of a 1-point sweep against a plain ``solve``.

* *Sequential*: a fresh process with one thread in every pool (as a worker has) solves the 8
  points one after another (``solve``), timed as a whole from its first call: the kernels are
  loaded once, by the first point (``sequential_points_seconds`` leaves that load out).
* *Sweep*: ``sweep(cfg, {"model.delta": 8 values}, workers=2)`` in the same kind of process,
  timed end to end: local cluster start, the kernels loaded in each worker, the 8 tasks, the
  table.  The speed-up is sequential / sweep; the per-point risks must equal (<= 1e-12).
* *Overhead per task*: wall time of ``meanfield-pde sweep ... --vary model.delta=0.6
  --workers 1`` against ``meanfield-pde solve`` of the same (short) point, both as fresh
  processes (best of ``repeat``): what a single point costs more through the sweep (cluster
  start, task, record, table).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import call_in_subprocess

SINGLE = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
          "MKL_NUM_THREADS": "1"}
DELTAS = [0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8]
#: the point run alone and as a pair to measure the machine's two-process throughput
PAIR_DELTA = 0.65


def _overrides(quick: bool) -> list[str]:
    """The points: the gaussians defaults at a fine resolution (800 mass cells: 2 … 21 s per
    point on one core, the size of run a phase diagram is made of; the fixed costs of a sweep
    are a few seconds); quick: the default resolution to t = 5."""
    if quick:
        return ["time.t_end=5.0", "time.n_outputs=21"]
    return ["lagrangian.mass_cells=800", "time.n_outputs=21"]


#: the point of the overhead measurement (absolute costs: the default resolution suffices)
OVERHEAD_POINT = ["time.t_end=5.0", "time.n_outputs=21"]


def sequential(overrides: list[str]) -> dict:
    """The 8 points one after another in this fresh process."""
    from meanfield_pde import default_config, load, solve

    cfg = default_config("gaussians").with_overrides(overrides)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        risks, load_seconds = [], 0.0
        for i, delta in enumerate(DELTAS):
            s = solve(cfg.replace({"model.delta": delta}), f"{tmp}/{i}.h5")
            load_seconds = load_seconds or s.compile_seconds  # the first call loads the kernels
            risks.append(load(f"{tmp}/{i}.h5")["risk"])
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "points_seconds": seconds - load_seconds,
            "risks": np.array(risks).tolist()}


def swept(overrides: list[str], workers: int = 2) -> dict:
    """The 8 points as one sweep on a local cluster of ``workers`` processes, end to end."""
    from meanfield_pde import default_config, sweep

    cfg = default_config("gaussians").with_overrides(overrides)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        ds = sweep(cfg, {"model.delta": DELTAS}, out_dir=tmp, workers=workers)
        seconds = time.perf_counter() - t0
        return {"seconds": seconds, "risks": ds["risk"].values.tolist(),
                "point_seconds": ds["wall_seconds"].values.tolist(),
                "workers_used": sorted(set(ds["worker"].values.tolist())),
                "status": ds["status"].values.tolist()}


def one_point(overrides: list[str], delta: float) -> float:
    """Solver wall time of one point in this fresh process (after a short run that loads the
    kernels)."""
    from meanfield_pde import default_config, solve

    cfg = default_config("gaussians").with_overrides(overrides).replace({"model.delta": delta})
    with tempfile.TemporaryDirectory() as tmp:
        solve(cfg.replace({"time.t_end": 0.5}), f"{tmp}/warm.h5")
        return solve(cfg, f"{tmp}/p.h5").wall_seconds


def machine_pair(overrides: list[str], delta: float = PAIR_DELTA) -> dict:
    """What two cores give two independent processes here: one point alone, then the same
    point in two processes at once (a shared or virtual machine gives less than 2x)."""
    from concurrent.futures import ThreadPoolExecutor

    args = ("sweep", "one_point", {"overrides": overrides, "delta": delta}, SINGLE)
    alone = call_in_subprocess(*args)
    with ThreadPoolExecutor(2) as pool:
        pair = list(pool.map(lambda _: call_in_subprocess(*args), range(2)))
    return {"alone_seconds": alone, "pair_seconds": pair,
            "throughput": 2 * alone / max(pair)}


def _cli_seconds(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "meanfield_pde", *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   cwd=Path(__file__).resolve().parent.parent, env={**os.environ, **SINGLE})
    return time.perf_counter() - t0


def overhead(overrides: list[str], repeat: int) -> dict:
    """Best-of-``repeat`` wall time of a 1-point ``sweep`` and of a plain ``solve`` (CLI)."""
    sets = [w for o in overrides for w in ("--set", o)]
    solve_s, sweep_s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeat):  # interleaved: a change of the background load hits both
            solve_s.append(_cli_seconds(["solve", "gaussians", *sets, "--set",
                                         "model.delta=0.6", "-q", "-o", f"{tmp}/s{i}.h5"]))
            sweep_s.append(_cli_seconds(["sweep", "gaussians", *sets, "--vary",
                                         "model.delta=0.6", "--workers", "1", "-q", "-o",
                                         f"{tmp}/sw{i}"]))
    return {"solve_seconds": solve_s, "sweep_seconds": sweep_s,
            "overhead_seconds": min(sweep_s) - min(solve_s)}


def speed_probe(seconds: float = 2.0) -> float:
    """The machine's single-core speed now: iterations per second of a plain Python loop (no
    memory traffic, no library).  Taken before and after every phase, it shows how much the
    speed of a shared machine drifted while the phases were measured."""
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(10_000):
            pass
        n += 10_000
    return n / (time.perf_counter() - t0)


def run(quick: bool = False) -> dict:
    """Sequential and swept 8 points (each in a fresh single-threaded process), twice,
    interleaved (sequential, sweep, sequential, sweep: a change of the load hits both; once
    with ``quick``), then the 1-point overhead and the machine's two-process throughput.  The
    speed-up is the best sequential time over the best sweep time (each the one least
    disturbed by the machine's other tenants); every pair's ratio is kept as well."""
    over = _overrides(quick)
    load_before = os.getloadavg()[0]
    pairs, probe = [], []
    for _ in range(1 if quick else 2):
        probe.append(speed_probe())
        seq = call_in_subprocess("sweep", "sequential", {"overrides": over}, SINGLE)
        probe.append(speed_probe())
        par = call_in_subprocess("sweep", "swept", {"overrides": over}, SINGLE)
        pairs.append((seq, par))
    probe.append(speed_probe())
    diff = max(float(np.max(np.abs(np.array(seq["risks"]) - np.array(par["risks"]))))
               for seq, par in pairs)
    seq = min((s for s, _ in pairs), key=lambda r: r["seconds"])
    par = min((p for _, p in pairs), key=lambda r: r["seconds"])
    return {"overrides": over, "deltas": DELTAS, "cores": os.cpu_count(),
            "load1_before": load_before, "load1_after": os.getloadavg()[0],
            "sequential_seconds": seq["seconds"],
            "sequential_points_seconds": seq["points_seconds"], "sweep_seconds": par["seconds"],
            "speedup": seq["seconds"] / par["seconds"], "max_risk_difference": diff,
            "repeats": [{"sequential_seconds": s["seconds"], "sweep_seconds": p["seconds"],
                         "speedup": s["seconds"] / p["seconds"]} for s, p in pairs],
            "speed_probe": probe,
            "point_seconds": par["point_seconds"], "workers_used": len(par["workers_used"]),
            "status": par["status"], "overhead_point": OVERHEAD_POINT,
            "overhead": overhead(OVERHEAD_POINT, 1 if quick else 2),
            "machine_pair": machine_pair(over)}


def _schedule_bound(data: dict) -> str:
    """The speed-up no 2-worker schedule of these point times can beat (the points cost
    unequal times: the best order, longest first, leaves the longer worker at makespan M, so
    sequential / (M + the sweep's fixed overhead) bounds any engine)."""
    times = sorted(data.get("point_seconds", []), reverse=True)
    if not times:
        return ""
    load = [0.0] * data.get("workers_used", 2)
    for x in times:
        load[load.index(min(load))] += x
    bound = data["sequential_points_seconds"] / (max(load) + data["overhead"]["overhead_seconds"])
    text = (f"Point times in the sweep {min(times):.1f} … {max(times):.1f} s (sum "
            f"{sum(times):.1f} s, against {data['sequential_points_seconds']:.1f} s one after "
            f"another): the best schedule of these times on {len(load)} workers (longest "
            f"first) plus the 1-point overhead allows at most {bound:.2f}× here; the sweep "
            f"reached {data['speedup'] / bound:.0%} of that.")
    pair = data.get("machine_pair")
    if pair:
        text += (f" The machine itself: one point (δ = {PAIR_DELTA}) takes "
                 f"{pair['alone_seconds']:.1f} s alone and {max(pair['pair_seconds']):.1f} s "
                 f"as one of two processes at once, so its two cores give two independent "
                 f"processes {pair['throughput']:.2f}× the throughput of one.")
    return text


def _repeats(data: dict) -> str:
    """The interleaved repeats, each pair with its own ratio."""
    reps = data.get("repeats", [])
    if len(reps) < 2:
        return ""
    each = "; ".join(f"{r['sequential_seconds']:.1f} s against {r['sweep_seconds']:.1f} s "
                     f"({r['speedup']:.2f}×)" for r in reps)
    text = (f"The table gives the best of {len(reps)} interleaved repeats of each (sequential, "
            f"sweep, sequential, ...); pair by pair: {each}.")
    probe = data.get("speed_probe")
    if probe:
        text += (f" A plain Python loop timed for 2 s before and after each phase ran at "
                 f"{min(probe) / 1e6:.0f} to {max(probe) / 1e6:.0f} million iterations per "
                 f"second: the machine's own speed moved by {max(probe) / min(probe) - 1:.0%} "
                 "while the phases were measured.")
    return text + "\n"


def render(data: dict) -> str:
    o = data["overhead"]
    return "\n".join([
        "## Parameter sweeps on Dask (8 points on 2 local workers)", "",
        f"The gaussians defaults with `{' '.join(data['overrides'])}` at 8 values of "
        f"model.delta, each from a fresh single-threaded process. Sequential: the 8 `solve` "
        f"calls one after another (the first loads the kernels). Sweep: `sweep(..., workers=2)` "
        f"end to end (cluster start, kernels loaded in each worker, 8 tasks, table). 1-min load "
        f"average "
        f"{data['load1_before']:.1f} before, {data['load1_after']:.1f} after, on "
        f"{data['cores']} cores (a shared machine: the speed-up is what was free to take).", "",
        "| | seconds |", "|---|---|",
        f"| 8 points one after another | {data['sequential_seconds']:.1f} (of which "
        f"{data['sequential_seconds'] - data['sequential_points_seconds']:.1f} loading the "
        "kernels) |",
        f"| 8 points as a sweep on 2 workers | {data['sweep_seconds']:.1f} |",
        f"| speed-up | **{data['speedup']:.2f}×** |",
        f"| 1-point `meanfield-pde sweep` (fresh process, 1 worker; "
        f"`{' '.join(data.get('overhead_point', data['overrides']))}`) | "
        f"{min(o['sweep_seconds']):.1f} |",
        f"| the same point by `meanfield-pde solve` (fresh process) | "
        f"{min(o['solve_seconds']):.1f} |",
        f"| overhead of a 1-point sweep | {o['overhead_seconds']:.1f} |", "",
        _repeats(data),
        f"Per-point risks of the sweep and the sequential runs differ by at most "
        f"{data['max_risk_difference']:.1e}; tasks ran on {data['workers_used']} workers.",
        "", _schedule_bound(data), ""])
