"""Performance (issue 7): where the time goes, as ratios measured in one run on one machine.

* (a) seconds per SSP-RK3 step of the radial solver against the number of cells n, with the
  log-log slope (the 3-D solver's is in the single-neuron suite);
* (b) the interaction potential ψ_i = v_i + h Σ_j u(r_i, r_j) ρ_j by the low-rank sum
  Σ_k λ_k f_k(r_i) m_k, m_k = h Σ_j f_k(r_j) ρ_j (O(nK), :func:`meanfield_pde.fv.lowrank.potential`)
  against a dense n × n kernel matrix U_ij = u(r_i, r_j) (O(n²)): time per evaluation and the
  largest difference;
* (c) the compiled right-hand sides against the numpy references (radial:
  ``stepper1d.rhs`` vs ``lowrank.potential_numpy`` + ``transport.transport_rhs_numpy``; 3-D:
  ``stepper3d.rhs3d`` vs ``stepper3d.rhs3d_numpy``);
* (d) a method-of-lines baseline a user might write: centred differences for
  ∂_t ρ = ∂_r(ρ · 2ξ ∂_r ψ) with the same low-rank ψ, integrated by scipy ``solve_ivp`` (RK45,
  and BDF/LSODA with finite-difference Jacobians), against the package at the same risk accuracy;
  where it fails (negative density, oscillations: total variation TV = Σ|ρ_{i+1} − ρ_i|);
* (e) PDE against particle SGD time-to-accuracy: see the SGD suite;
* (f) cell-steps per second against the memory bandwidth of a numpy copy measured in the same run,
  with the bytes one radial step must move per cell (:func:`radial_bytes_per_cell_step`);
* (g) the cost of writing one snapshot to the result file (:meth:`ResultWriter.append`: open,
  extend every dataset by a row, write, digest, flush, close) for the default grids.
"""

from __future__ import annotations

import functools
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.integrate import solve_ivp

from meanfield_pde.fv import lowrank, stepper1d, stepper3d, transport
from meanfield_pde.fv.bundles import LowRank, Xi
from meanfield_pde.io import ResultWriter
from meanfield_pde.problems.gaussians import GaussiansProblem, remap
from meanfield_pde.problems.single_neuron import SingleNeuronProblem

from . import common
from .common import fv_config


def _radial(n: int, r_max: float, *over: str) -> GaussiansProblem:
    return GaussiansProblem(fv_config("gaussians").with_overrides(
        [f"grid.n={n}", f"grid.r_max={r_max}", *over]))


@functools.cache
def _default_r_max() -> float:
    return GaussiansProblem(fv_config("gaussians")).r_max


@functools.cache
def _coarse_state(t: float) -> tuple[np.ndarray, np.ndarray]:
    """(edges, density) of the default problem at time t on 2000 cells."""
    p = _radial(2000, _default_r_max())
    rho = p.initial_state()
    p.make_stepper().advance(rho, 0.0, t, 10**9)
    return p.edges, rho


def state_at(p: GaussiansProblem, t: float = 1.0) -> np.ndarray:
    """The default problem's density at time t (2000 cells) remapped conservatively onto the
    cells of ``p`` (same domain): a realistic state for timing, whatever n."""
    return np.ascontiguousarray(remap(*_coarse_state(t), p.edges))


# ------------------------------------------------------------------------------------------
# (a) + (f) cost per step and the memory traffic it implies
# ------------------------------------------------------------------------------------------
def radial_bytes_per_cell_step(n_features: int) -> int:
    """Bytes one accepted SSP-RK3 step of :func:`meanfield_pde.fv.stepper1d.advance` reads or
    writes per cell, counting each array pass once (no write-allocate traffic):

    * each of the 3 right-hand sides: the feature table twice (m = F ρ, g = mᵀF: 2 · 8K bytes),
      ρ twice (8 + 8), g written and read, ψ written and read (16 + 16), the output written (8):
      16K + 56 bytes;
    * the stages: w1 = ρ + dt L (24), w2 = ¾ρ + ¼(w1 + dt L) (32), ρ_new = (ρ + 2(w2 + dt L))/3
      written to w1 (32), copied back (16): 104 bytes;

    in all 48K + 272 bytes, dominated by the K feature rows.
    """
    return 3 * (16 * n_features + 56) + 104


def radial_cost(ns: tuple[int, ...]) -> dict:
    """Seconds per step for n cells on the default domain (steps from the initial law, best of
    5 batches of >= 0.1 s), cell-steps per second and the traffic of
    :func:`radial_bytes_per_cell_step` per second."""
    r_max = _default_r_max()
    rows = []
    for n in ns:
        p = _radial(n, r_max)
        st = p.make_stepper()
        rho = p.initial_state()
        st.advance(rho, 0.0, 1e9, 3)  # leave the initial state, warm the caches
        state = rho.copy()
        probe = state.copy()
        t0 = time.perf_counter()
        st.advance(probe, 0.0, 1e9, 5)
        per = (time.perf_counter() - t0) / 5
        steps = max(5, int(0.1 / max(per, 1e-9)))
        best = math.inf
        for _ in range(5):
            work = state.copy()
            t0 = time.perf_counter()
            rep = st.advance(work, 0.0, 1e9, steps)
            best = min(best, (time.perf_counter() - t0) / rep.steps)
        k = int(p.kernel.feats.shape[0])
        bpc = radial_bytes_per_cell_step(k)
        rows.append({"n": n, "K": k, "seconds_per_step": best, "cell_steps_per_second": n / best,
                     "bytes_per_cell_step": bpc, "bytes_per_second": bpc * n / best,
                     "working_set_bytes": 8 * n * (k + 8)})
    return {"r_max": r_max, "rows": rows,
            "slope": common.loglog_slope([r["n"] for r in rows],
                                         [r["seconds_per_step"] for r in rows]),
            "slope_large": common.loglog_slope([r["n"] for r in rows[-3:]],
                                               [r["seconds_per_step"] for r in rows[-3:]])}


# ------------------------------------------------------------------------------------------
# (b) low-rank against dense
# ------------------------------------------------------------------------------------------
def dense_kernel(feats: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """U_ij = Σ_k λ_k f_k(r_i) f_k(r_j), the n × n kernel matrix of the low-rank form."""
    return (feats.T * lam) @ feats


def dense_potential(u: np.ndarray, v: np.ndarray, rho: np.ndarray, h: float) -> np.ndarray:
    """ψ_i = v_i + h Σ_j U_ij ρ_j (the O(n²) evaluation)."""
    return v + h * (u @ rho)


def lowrank_vs_dense(ns: tuple[int, ...]) -> dict:
    """Time per evaluation of ψ: low-rank (compiled, O(nK)) and dense matrix–vector (BLAS,
    O(n²)), and max|ψ_dense − ψ_lowrank| / max|ψ|, on the density at t = 1 (:func:`state_at`)."""
    r_max = _default_r_max()
    rows = []
    for n in ns:
        p = _radial(n, r_max)
        k = p.kernel
        rho = state_at(p)
        psi, mom = np.empty(n), np.empty(k.lam.size)
        t_low = common.best_seconds(
            lambda p=p, k=k, rho=rho, psi=psi, mom=mom: lowrank.potential(
                rho, p.h, k.v, k.feats, k.lam, psi, mom))
        t0 = time.perf_counter()
        u = dense_kernel(k.feats, k.lam)
        build = time.perf_counter() - t0
        t_dense = common.best_seconds(
            lambda u=u, p=p, k=k, rho=rho: dense_potential(u, k.v, rho, p.h), repeat=3)
        dense = dense_potential(u, k.v, rho, p.h)
        u = None  # free the n² matrix before the next size
        rows.append({"n": n, "K": int(k.lam.size), "lowrank_seconds": t_low,
                     "dense_seconds": t_dense, "dense_build_seconds": build,
                     "speedup": t_dense / t_low,
                     "max_rel_diff": float(np.max(np.abs(dense - psi)) / np.max(np.abs(psi)))})
    return {"rows": rows}


# ------------------------------------------------------------------------------------------
# (c) compiled against numpy
# ------------------------------------------------------------------------------------------
def numba_vs_numpy(ns: tuple[int, ...], grid3: tuple[int, int, int], box: list[str]) -> dict:
    """Seconds per right-hand-side evaluation, compiled against the numpy reference (radial: the
    density at t = 1, :func:`state_at`; 3-D: after 20 steps); the largest relative difference
    of the two results."""
    r_max = _default_r_max()
    rows = []
    for n in ns:
        p = _radial(n, r_max)
        k, s = p.kernel, p.schedule
        rho = state_at(p)
        psi, mom, out = np.empty(n), np.empty(k.lam.size), np.empty(n)
        theta = p.config["solver.theta"]

        def fast(rho=rho, psi=psi, mom=mom, out=out, k=k, s=s, h=p.h, theta=theta) -> float:
            return stepper1d.rhs(rho, 1.0, h, LowRank.make(k.v, k.feats, k.lam),
                                 Xi.make(s.kind, s.params), theta, psi, mom, out)

        def slow(rho=rho, k=k, h=p.h, theta=theta) -> np.ndarray:
            ps, _ = lowrank.potential_numpy(rho, h, k.v, k.feats, k.lam)
            return transport.transport_rhs_numpy(rho, ps, h, 2.0, theta)

        tf, ts = common.best_seconds(fast), common.best_seconds(slow)
        fast()
        ref = slow()
        rows.append({"case": f"radial, n = {n}", "numba_seconds": tf, "numpy_seconds": ts,
                     "ratio": ts / tf,
                     "max_rel_diff": float(np.max(np.abs(out - ref)) / np.max(np.abs(ref)))})
    g = grid3
    p3 = SingleNeuronProblem(fv_config("single-neuron").with_overrides(
        box + [f"grid.n_a={g[0]}", f"grid.n_s={g[1]}", f"grid.n_r={g[2]}",
               "solver.parallel=false"]))
    rho = p3.initial_state()
    p3.make_stepper().advance(rho, 0.0, 1e9, 20)  # leave the initial law
    kk = p3.kernel
    grid, kern, xi = p3.tables()
    ns_, nr_ = p3.shape[1:]
    work = (np.empty((ns_, nr_)), np.empty(kk.feats.shape[0]), np.empty((ns_, nr_)),
            np.empty(p3.shape))
    theta = p3.config["solver.theta"]

    def fast3() -> float:
        return stepper3d.rhs3d(rho, 1.0, grid, kern, xi, theta, *work)

    def slow3() -> np.ndarray:
        return stepper3d.rhs3d_numpy(rho, grid, kern, 1.0, theta)

    tf, ts = common.best_seconds(fast3, repeat=3), common.best_seconds(slow3, repeat=3)
    fast3()
    ref = slow3()
    rows.append({"case": f"3-D, {g[0]}×{g[1]}×{g[2]} (serial)", "numba_seconds": tf,
                 "numpy_seconds": ts, "ratio": ts / tf,
                 "max_rel_diff": float(np.max(np.abs(work[3] - ref)) / np.max(np.abs(ref)))})
    return {"rows": rows}


# ------------------------------------------------------------------------------------------
# (d) method of lines with scipy
# ------------------------------------------------------------------------------------------
def centred_divergence(rho: np.ndarray, psi: np.ndarray, h: float, c: float) -> np.ndarray:
    """dρ_i/dt = (G_{i+1/2} − G_{i−1/2})/h, G_{i+1/2} = c (ρ_i + ρ_{i+1})/2 · (ψ_{i+1} − ψ_i)/h,
    G = 0 at both walls: the conservative centred discretisation of ∂_r(ρ c ∂_r ψ)."""
    g = c * 0.5 * (rho[1:] + rho[:-1]) * np.diff(psi) / h
    out = np.empty_like(rho)
    out[0] = g[0] / h
    out[1:-1] = np.diff(g) / h
    out[-1] = -g[-1] / h
    return out


def mol_rhs(rho: np.ndarray, h: float, v: np.ndarray, feats: np.ndarray, lam: np.ndarray,
            c: float) -> np.ndarray:
    """The method-of-lines right-hand side: ψ from the low-rank kernel
    (:func:`meanfield_pde.fv.lowrank.potential_numpy`), then :func:`centred_divergence`."""
    psi, _ = lowrank.potential_numpy(rho, h, v, feats, lam)
    return centred_divergence(rho, psi, h, c)


class _Budget(Exception):
    pass


def total_variation(rho: np.ndarray) -> float:
    """TV(ρ) = Σ_i |ρ_{i+1} − ρ_i| (of the cell averages)."""
    return float(np.sum(np.abs(np.diff(rho))))


def _mol_run(p: GaussiansProblem, t_end: float, method: str, budget: float, rtol: float,
             n_out: int = 21) -> dict:
    k = p.kernel
    c = 2.0 * p.config["schedule.xi0"]  # constant schedule
    deadline = time.perf_counter() + budget
    nfev = [0]

    def fun(_t: float, y: np.ndarray) -> np.ndarray:
        nfev[0] += 1
        if time.perf_counter() > deadline:
            raise _Budget
        return mol_rhs(y, p.h, k.v, k.feats, k.lam, c)

    rho0 = p.initial_state()
    t_eval = np.linspace(0.0, t_end, n_out)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sol = solve_ivp(fun, (0.0, t_end), rho0, method=method, t_eval=t_eval, rtol=rtol,
                            atol=1e-9 * float(np.max(rho0)))
    except _Budget:
        return {"status": f"over the {budget:g} s budget", "seconds": time.perf_counter() - t0,
                "nfev": nfev[0]}
    wall = time.perf_counter() - t0
    if sol.status != 0 or sol.y.shape[1] != n_out:
        return {"status": f"failed: {sol.message}", "seconds": wall, "nfev": nfev[0]}
    final = np.ascontiguousarray(sol.y[:, -1])
    tv = [total_variation(sol.y[:, i]) for i in range(n_out)]
    return {"status": "ok", "seconds": wall, "nfev": nfev[0], "risk": p.risk(final),
            "min_density": float(sol.y.min()), "tv_max": max(tv), "tv_final": tv[-1],
            "mass_drift": float(abs(np.sum(final) - np.sum(rho0)) / np.sum(rho0)),
            "density": final}


def _fv_run(p: GaussiansProblem, t_end: float, n_out: int = 21) -> dict:
    st, rho, t = p.make_stepper(), p.initial_state(), 0.0
    st.advance(rho.copy(), 0.0, 0.0, 0)
    tv = [total_variation(rho)]
    t0 = time.perf_counter()
    for t_stop in np.linspace(0.0, t_end, n_out)[1:]:
        rep = st.advance(rho, t, float(t_stop), 10**9)
        t = rep.t
        tv.append(total_variation(rho))
    wall = time.perf_counter() - t0
    return {"seconds": wall, "risk": p.risk(rho), "min_density": float(rho.min()),
            "tv_max": max(tv), "tv_final": tv[-1], "density": rho}


def mol_baseline(t_ends: tuple[float, ...], ref_ns: tuple[int, int],
                 mol_ns: tuple[int, ...], implicit_ns: tuple[int, ...],
                 budget: float) -> dict:
    """For each t_end: the reference R(t_end) (Richardson extrapolation of the package at
    ``ref_ns`` = (n, 2n) with its formal order 2: R_2n + (R_2n − R_n)/3), the package at the
    default grid (its error is the target), and the centred method of lines with RK45 (n in
    ``mol_ns``) and BDF/LSODA (n in ``implicit_ns``) — error, wall time (``budget`` seconds at
    most per run), min density, max TV over 21 outputs; the cheapest run reaching the target
    gives the time ratio."""
    r_max = _default_r_max()
    n0 = fv_config("gaussians")["grid.n"]
    out = {"r_max": r_max, "default_n": n0, "reference_ns": list(ref_ns), "cases": []}
    for t_end in t_ends:
        coarse, fine = (_fv_run(_radial(n, r_max), t_end)["risk"] for n in ref_ns)
        limit = fine + (fine - coarse) / 3.0
        p0 = _radial(n0, r_max)
        ours = _fv_run(p0, t_end)
        target = abs(ours["risk"] - limit)
        case = {"t_end": t_end, "reference": limit,
                "reference_correction": abs(fine - coarse) / 3.0,
                "package": {k: v for k, v in ours.items() if k != "density"} | {
                    "n": n0, "error": target,
                    "tv_initial": total_variation(p0.initial_state())},
                "mol": []}
        profile = None
        for method, ns in (("RK45", mol_ns), ("BDF", implicit_ns), ("LSODA", implicit_ns)):
            for n in ns:
                p = _radial(n, r_max)
                res = _mol_run(p, t_end, method, budget, rtol=1e-6)
                dens = res.pop("density", None)
                if method == "RK45" and n == n0:
                    profile = dens
                row = {"method": method, "n": n, **res}
                if res["status"] == "ok":
                    row["error"] = abs(res["risk"] - limit)
                case["mol"].append(row)
                if res["status"] != "ok" or row["error"] <= target:
                    break  # a finer grid only costs more
        hits = [r for r in case["mol"] if r.get("error", math.inf) <= target]
        best = min(hits, key=lambda r: r["seconds"]) if hits else None
        case["matched"] = best
        case["time_ratio"] = best["seconds"] / ours["seconds"] if best else None
        if profile is None:  # the densities at t_end on the default grid, for a figure
            profile = _mol_run(p0, t_end, "RK45", budget, rtol=1e-6).get("density")
        step = max(1, n0 // 600)
        case["profile"] = {"n": n0, "r": p0.centers[::step].tolist(),
                           "package": ours["density"][::step].tolist(),
                           "mol": None if profile is None else profile[::step].tolist()}
        out["cases"].append(case)
    return out


# ------------------------------------------------------------------------------------------
def snapshot_cost(n_appends: int = 300) -> dict:
    """Milliseconds per :meth:`ResultWriter.append` with the fields of the default gaussians
    (n = 2400) and single-neuron (24 × 48 × 48) solves, in a temporary directory (best of 3
    batches of ``n_appends``)."""
    layouts = {
        "gaussians (n = 2400)": {"risk": (), "mass": (), "mean_r": (), "density": (2400,)},
        "single-neuron (24 x 48 x 48)": {
            "risk": (), "mass": (), "mean_a": (), "mean_s": (), "mean_r": (),
            "marginal_a": (24,), "marginal_s": (48,), "marginal_r": (48,),
            "density": (24, 48, 48)},
    }
    rows = []
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for name, fields in layouts.items():
            values = {k: rng.random(shape) for k, shape in fields.items()}
            row_bytes = 8 * (1 + sum(int(np.prod(shape)) for shape in fields.values()))
            best = math.inf
            for rep in range(3):
                w = ResultWriter(Path(tmp) / f"{len(rows)}-{rep}.h5", problem="gaussians",
                                 config={}, grid={"x": np.arange(3.0)}, fields=fields)
                t0 = time.perf_counter()
                for k in range(n_appends):
                    w.append(float(k), values)
                best = min(best, (time.perf_counter() - t0) / n_appends)
            rows.append({"layout": name, "row_bytes": row_bytes, "seconds_per_append": best,
                         "bytes_per_second": row_bytes / best})
    return {"n_appends": n_appends, "rows": rows}


def cost_sizes(quick: bool) -> tuple[int, ...]:
    """Cell counts of the cost table (a)."""
    if quick:
        return (250, 1000, 4000, 16000, 64000, 256000, 1024000)
    return (250, 500, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 512000,
            1024000)


def measure(quick: bool = False) -> dict:
    """Every section of this suite in the current process (called in a child process with a
    single-threaded BLAS by :func:`run`)."""
    t0 = time.perf_counter()
    out: dict = {"quick": quick, "seconds": {}}
    # about the default problem's automatic box (no pilot run needed to time a right-hand side)
    box = ["grid.a_min=0.1", "grid.a_max=2.4", "grid.s_min=-1.0", "grid.s_max=1.85",
           "grid.r_max=1.1"]
    sections = {
        "bandwidth": common.memory_bandwidth,
        "cost": lambda: radial_cost(cost_sizes(quick)),
        "lowrank": lambda: lowrank_vs_dense((1000, 2000, 4000, 8000, 16000)),
        "numba": lambda: numba_vs_numpy((2400, 64000), (24, 48, 48), box),
        "mol": lambda: mol_baseline(
            (5.0, 10.0), (2000, 4000) if quick else (4000, 8000),
            (600, 1200, 2400, 4800) if quick else (600, 1200, 2400, 4800, 9600),
            (300, 600) if quick else (300, 600, 1200), 20.0 if quick else 120.0),
        "io": snapshot_cost,
    }
    for key, fn in sections.items():
        t1 = time.perf_counter()
        out[key] = fn()
        out["seconds"][key] = time.perf_counter() - t1
        print(f"  performance.{key}: {out['seconds'][key]:.1f} s", file=sys.stderr, flush=True)
    again = common.memory_bandwidth()  # after the cost table too: keep the better of the two
    for key in ("copy", "read"):
        if again[f"{key}_seconds"] < out["bandwidth"][f"{key}_seconds"]:
            for k in (f"{key}_seconds", f"{key}_bytes_per_second"):
                out["bandwidth"][k] = again[k]
    bw = out["bandwidth"]["read_bytes_per_second"]
    for row in out["cost"]["rows"]:
        row["bandwidth_fraction"] = row["bytes_per_second"] / bw
    out["seconds"]["total"] = time.perf_counter() - t0
    return out


def run(quick: bool = False) -> dict:
    """:func:`measure` with one BLAS thread (all timings and ratios on one core, like the copy
    bandwidth they are compared with), then the cost table (a) again in this process with the
    default BLAS threads (the radial potential calls BLAS inside the compiled step)."""
    out = common.call_in_subprocess("performance", "measure", {"quick": quick},
                                    common.SINGLE_THREAD_ENV)
    t0 = time.perf_counter()
    out["cost_default_threads"] = radial_cost(cost_sizes(quick))
    out["seconds"]["cost_default_threads"] = time.perf_counter() - t0
    return out


# ------------------------------------------------------------------------------------------
# rendering
# ------------------------------------------------------------------------------------------
def _figures(data: dict) -> list[str]:
    """performance_cost.png (cost per step, low-rank vs dense) and performance_mol.png."""
    plt, path = common.figure("performance_cost")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    rows = data["cost"]["rows"]
    n = np.array([r["n"] for r in rows], dtype=float)
    axes[0].loglog(n, [r["seconds_per_step"] for r in rows], "o-", label="one BLAS thread")
    if "cost_default_threads" in data:
        rd = data["cost_default_threads"]["rows"]
        axes[0].loglog([r["n"] for r in rd], [r["seconds_per_step"] for r in rd], "s--",
                       label="default BLAS threads")
    bw = data["bandwidth"]["read_bytes_per_second"]
    axes[0].loglog(n, [r["bytes_per_cell_step"] * r["n"] / bw for r in rows], "k:",
                   label="traffic model / read bandwidth")
    axes[0].set_xlabel("cells n")
    axes[0].set_ylabel("seconds per SSP-RK3 step")
    axes[0].set_title("radial solver")
    axes[0].legend(fontsize=8)
    lr = data["lowrank"]["rows"]
    axes[1].loglog([r["n"] for r in lr], [r["lowrank_seconds"] for r in lr], "o-",
                   label="low-rank O(nK)")
    axes[1].loglog([r["n"] for r in lr], [r["dense_seconds"] for r in lr], "s-",
                   label="dense O(n²)")
    axes[1].set_xlabel("cells n")
    axes[1].set_ylabel("seconds per evaluation of ψ")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    made = [path.name]
    plt, path = common.figure("performance_mol")
    cases = data["mol"]["cases"]
    fig, axes = plt.subplots(1, len(cases), figsize=(5 * len(cases), 3.6), squeeze=False)
    for ax, case in zip(axes[0], cases, strict=True):
        prof = case["profile"]
        ax.plot(prof["r"], prof["package"], label="package (upwind FV, SSP-RK3)")
        if prof["mol"] is not None:
            ax.plot(prof["r"], prof["mol"], lw=0.8, label="centred MOL + RK45")
        ax.set_xlim(0, max(r for r, x in zip(prof["r"], prof["package"], strict=True)
                           if x > 1e-6 * max(prof["package"])) * 1.1)
        ax.set_title(f"density at t = {case['t_end']:g}, n = {prof['n']}", fontsize=9)
        ax.set_xlabel("r")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    made.append(path.name)
    return made


def render(data: dict) -> str:
    made = _figures(data)
    bw = data["bandwidth"]
    cost = data["cost"]
    dflt = {r["n"]: r for r in data.get("cost_default_threads", {}).get("rows", [])}
    lines = [
        "## Performance" + (" (quick sizes)" if data.get("quick") else ""), "",
        "All timings in this section except the `default BLAS threads` column come from one "
        "child process with a single-threaded BLAS, so that every ratio compares one core with "
        "one core (the numpy copy included).", "",
        f"Memory bandwidth on {bw['array_bytes'] / 2**20:.0f} MiB arrays, one thread: "
        f"`np.copyto` {bw['copy_bytes_per_second'] / 1e9:.1f} GB/s (read + write), `np.dot` "
        f"{bw['read_bytes_per_second'] / 1e9:.1f} GB/s (read).", "",
        "### (a, f) Cost per step of the radial solver, and the memory traffic it implies", "",
        f"Seconds per accepted SSP-RK3 step (3 right-hand sides) on the default domain; "
        f"log-log slope {cost['slope']:.2f} overall, {cost['slope_large']:.2f} over the three "
        "largest n. Traffic model (`radial_bytes_per_cell_step`): per cell and step the K "
        "feature rows are read twice per right-hand side plus ~34 passes over length-n "
        "arrays, 48K + 272 bytes. While the feature table (8Kn bytes) fits in the caches the "
        "step runs above the memory bandwidth; beyond, the fraction of the read bandwidth "
        "shows how close to the memory bound it runs.", "",
        "| n | K | s/step | s/step, default BLAS threads | cell-steps/s | bytes/cell-step | "
        "working set | model GB/s | fraction of read bandwidth |",
        "|---|---|---|---|---|---|---|---|---|"]
    for r in cost["rows"]:
        d = dflt.get(r["n"])
        dcol = f"{d['seconds_per_step'] * 1e3:.3g} ms" if d else "–"
        lines.append(f"| {r['n']} | {r['K']} | {r['seconds_per_step'] * 1e3:.3g} ms | {dcol} | "
                     f"{r['cell_steps_per_second']:.2e} | {r['bytes_per_cell_step']} | "
                     f"{r['working_set_bytes'] / 2**20:.1f} MiB | "
                     f"{r['bytes_per_second'] / 1e9:.1f} | {r['bandwidth_fraction']:.2f} |")
    lines += ["", "The default-threads column is measured in the parent process at the same "
              "time as whatever else runs on the machine: the BLAS matrix–vector products "
              "inside the compiled step use both cores, and when the other core is busy the "
              "spinning BLAS threads can make a step many times slower than on one thread.", ""]
    lines += [
        "### (b) Low-rank potential against a dense kernel matrix", "",
        "ψ_i = v_i + h Σ_j U_ij ρ_j with U_ij = Σ_k λ_k f_k(r_i) f_k(r_j) formed once (dense "
        "matrix–vector product, O(n²)) against `fv.lowrank.potential` (O(nK)); density at t = 1.",
        "", "| n | K | low-rank | dense | speed-up | forming U | max \\|Δψ\\| / max \\|ψ\\| |",
        "|---|---|---|---|---|---|---|"]
    for r in data["lowrank"]["rows"]:
        lines.append(f"| {r['n']} | {r['K']} | {r['lowrank_seconds'] * 1e6:.1f} µs | "
                     f"{r['dense_seconds'] * 1e3:.2f} ms | {r['speedup']:.0f}× | "
                     f"{r['dense_build_seconds']:.2f} s | {r['max_rel_diff']:.1e} |")
    lines += ["", f"![cost per step, low-rank vs dense]({'results/' + made[0]})", "",
              "### (c) Compiled kernels against the numpy references", "",
              "One right-hand-side evaluation (potential + fluxes), best of several batches.", "",
              "| case | Numba | numpy | numpy / Numba | max relative difference |",
              "|---|---|---|---|---|"]
    for r in data["numba"]["rows"]:
        lines.append(f"| {r['case']} | {r['numba_seconds'] * 1e6:.1f} µs | "
                     f"{r['numpy_seconds'] * 1e6:.1f} µs | {r['ratio']:.1f}× | "
                     f"{r['max_rel_diff']:.1e} |")
    mol = data["mol"]
    lines += [
        "", "### (d) A method-of-lines baseline (scipy `solve_ivp`)", "",
        "What a user might write: the same low-rank ψ, the conservative centred discretisation "
        "dρ_i/dt = (G_{i+1/2} − G_{i−1/2})/h, G_{i+1/2} = 2ξ (ρ_i + ρ_{i+1})/2 (ψ_{i+1} − ψ_i)/h, "
        "and `solve_ivp` (rtol 1e-6) with RK45, or BDF / LSODA (finite-difference Jacobians: "
        "ψ is nonlocal, so the Jacobian is dense). Target: the package's risk error on its "
        f"default grid (n = {mol['default_n']}); reference: Richardson extrapolation of the "
        "package's grids " + ", ".join(map(str, mol["reference_ns"])) + " with its order 2 "
        "(the size of the correction is given). Min "
        "density and max TV over 21 output times (TV = Σ|ρ_{i+1} − ρ_i|; the exact solution's "
        "TV grows as the mass concentrates, the package's maximum is given for comparison). A "
        "finer grid is tried only while the error is above the target.", ""]
    for case in mol["cases"]:
        pk = case["package"]
        m = case["matched"]
        ratio = (f"{case['time_ratio']:.1f}× the package's time ({m['method']}, n = {m['n']}; "
                 f"min density {m['min_density']:.1e}, max TV {m['tv_max']:.3g})"
                 if m is not None else "not reached by any method-of-lines run")
        lines += [
            f"t = {case['t_end']:g}: reference R = {case['reference']:.8f} (Richardson "
            f"correction {case['reference_correction']:.0e}); package n = {pk['n']}: error "
            f"{pk['error']:.1e} in {pk['seconds']:.2f} s, min density {pk['min_density']:.1e}, "
            f"max TV {pk['tv_max']:.3g}. Same accuracy by the method of lines: {ratio}.", "",
            "| method | n | status | time | time / package | error | min density | max TV |",
            "|---|---|---|---|---|---|---|---|"]
        for r in case["mol"]:
            if r["status"] == "ok":
                lines.append(f"| {r['method']} | {r['n']} | ok | {r['seconds']:.2f} s | "
                             f"{r['seconds'] / pk['seconds']:.1f} | {r['error']:.1e} | "
                             f"{r['min_density']:.1e} | {r['tv_max']:.3g} |")
            else:
                lines.append(f"| {r['method']} | {r['n']} | {r['status']} | "
                             f"{r['seconds']:.1f} s | – | – | – | – |")
        lines.append("")
    lines += [f"![package vs method of lines]({'results/' + made[1]})", "",
              "Centred differences have no numerical diffusion: where the transport steepens "
              "the density they produce oscillations of both signs (negative densities, TV far "
              "above the solution's), first at the coarse grids and, once the fronts are sharp "
              "(t = 10), at every grid.", "",
              "### (e) PDE against particle SGD", "",
              "Time to a given accuracy of the PDE against SGD of the network: see the Particle "
              "SGD section.", ""]
    if "io" in data:
        lines += [
            "### (g) Writing a snapshot", "",
            "`ResultWriter.append`: open the file, extend every dataset by one row (h5py's "
            "low-level API), write, update the SHA-256 hash chain, flush, set n_snapshots, "
            f"flush, close (best of 3 × {data['io']['n_appends']}). The default radial solve "
            "writes 201 snapshots.", "",
            "| fields of | bytes per snapshot | ms per snapshot | MB/s |", "|---|---|---|---|"]
        for r in data["io"]["rows"]:
            lines.append(f"| {r['layout']} | {r['row_bytes']} | "
                         f"{r['seconds_per_append'] * 1e3:.2f} | "
                         f"{r['bytes_per_second'] / 1e6:.0f} |")
        lines.append("")
    return "\n".join(lines)
