"""The PDE against the network it describes (MATH.md §5).

``validate(cfg, widths, seeds)`` solves the PDE once, runs particle SGD of the d-dimensional network
for every width N and seed (Dask tasks, each writing its own checkpointed result file, so that an
interrupted validate resumes: :mod:`.validation_runs`), and reports per N

* sup_t |R_SGD(t) − R_PDE(t)| (mean ± std over seeds; the PDE risk interpolated linearly at the
  SGD output times, which land on step boundaries), the sup over t > 0 only (without the
  initial-sampling term R_N(θ⁰) − R(ρ̄_0), O(N^-1/2) for i.i.d. initial neurons, O(1/N) with
  ``sgd.init_sampling = "stratified"``), and the same against the expected risk of N
  independent neurons from ρ̄_t, R_PDE + D(t)/N (the finite-N self-interaction term; measured: it
  accounts for the gap at t = 0, but over-corrects later, since the trained network is not N
  independent draws from ρ̄_t — its dynamics optimise the empirical measure's own risk),
* W1 between the empirical law of r (gaussians) or of each coordinate of z = (a, s, r)
  (single-neuron) and the PDE's marginal density, at every output time,
* the exponent p of a fit gap ≈ C N^(−p) (the theorem's rate is between 1/2 and 1),

writes ``validation.json`` and ``validation.png`` (every seed's risk and risk gap over t, the gap
against N with the fitted exponent, histograms of the particles over the PDE density at three
times as in MMN18 Fig. 1: :mod:`.validation_figure`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.stats import wasserstein_distance

from . import validation_runs
from .config import Config
from .errors import ConfigError, DataError, OutputExists
from .io import load
from .problems import build_problem, problem_class
from .runner.trackers import NEVER, Interrupted, StopFlag
from .schedule import output_times
from .validation_runs import SGD_DIR, SGDRun, ValidateInterrupted, plan_runs

MAX_TIMES = 41  # SGD outputs used for the comparison (each costs an O(N²) risk evaluation)


def _quantiles(edges: np.ndarray, density: np.ndarray, m: int = 20000) -> np.ndarray:
    """m equally spaced quantiles of the piecewise-constant density on ``edges`` (exact)."""
    cdf = np.concatenate([[0.0], np.cumsum(density * np.diff(edges))])
    cdf /= cdf[-1]
    u = (np.arange(m) + 0.5) / m
    keep = np.concatenate([[True], np.diff(cdf) > 0])  # strictly increasing for interp
    return np.interp(u, cdf[keep], edges[keep])


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, m: int = 20000) -> np.ndarray:
    """m equally spaced quantiles of the discrete law Σ_p w_p δ_{values_p} (exact: the
    generalised inverse of its CDF at (i + ½)/m)."""
    order = np.argsort(values, kind="stable")
    cdf = np.cumsum(weights[order])
    cdf /= cdf[-1]
    u = (np.arange(m) + 0.5) / m
    return values[order][np.minimum(np.searchsorted(cdf, u), values.size - 1)]


def _marginal_quantiles(pde, problem, names: list[str], idx: np.ndarray) -> dict:
    """Per coordinate, the quantiles of the PDE's marginal at the outputs ``idx``: from the
    Lagrangian state when the result holds one (mass cells ``cell_edges`` with ``cell_masses``,
    or weighted ``particles``: the solver's own law, no output-grid binning), else from the
    marginal densities on the output grid."""
    if "cell_edges" in pde.fields and "cell_masses" in pde.grid and len(names) == 1:
        masses = np.asarray(pde.grid["cell_masses"])
        return {names[0]: [_quantiles(e, masses / np.diff(e))
                           for e in (np.asarray(pde["cell_edges"][k]) for k in idx)]}
    if "particles" in pde.fields and "particle_weights" in pde.grid:
        w = np.asarray(pde.grid["particle_weights"])
        return {x: [_weighted_quantiles(np.asarray(pde["particles"][k])[:, c], w) for k in idx]
                for c, x in enumerate(names)}
    marg = {x: pde[problem.marginal_fields[x]] for x in names}
    return {x: [_quantiles(pde.grid[f"{x}_edges"], marg[x][k]) for k in idx] for x in names}


def _self_interaction(cfg: Config, pde, idx: np.ndarray) -> np.ndarray:
    """D(t) = ∫U(θ, θ) ρ̄_t(dθ) − ∬U ρ̄_t ρ̄_t at the outputs ``idx``: the expected risk of N
    independent neurons drawn from ρ̄_t is E R_N = R(ρ̄_t) + D(t)/N (MATH.md §5's O(1/N) term)."""
    from .particles import PopulationRisk

    problem = build_problem(problem_class(cfg.problem).with_walls(cfg, pde.attrs))
    diag = PopulationRisk(cfg)._diag
    return np.array([problem.self_interaction(pde["density"][j], diag) for j in idx])


def _pde_result(cfg: Config, path: Path, stop: StopFlag):
    """``path`` (pde.h5, this directory's cache of the solve) as a finished PDE result of exactly
    ``cfg``: reused when it is one, continued from its checkpoint when an earlier validate was
    interrupted, else solved (replacing what was there)."""
    from .runner.pde import solve
    from .runner.resume import resume

    try:
        res = load(path) if path.exists() else None
    except DataError:
        res = None
    if (res is not None and res.attrs.get("kind") != "sgd"
            and res.config == json.loads(json.dumps(cfg.to_dict()))):
        if res.complete:
            return res
        try:
            resume(path, stop=stop)
            return load(path)
        except (DataError, ConfigError):  # no usable checkpoint: solve again
            pass
    solve(cfg, path, overwrite=True, stop=stop)
    return load(path)


def _sgd_run(run: SGDRun, field: str) -> dict:
    """What the comparison needs of one SGD result file: times, risk, particle coordinates at
    those times, wall time."""
    res = load(run.path)
    return {"n": run.n, "seed": run.seed, "t": res.t.tolist(), "risk": res["risk"].tolist(),
            "coords": res[field], "wall_seconds": float(res.attrs["wall_seconds"])}


def _decay_exponent(widths: list[int], gaps: np.ndarray) -> tuple[float | None, float | None]:
    """(p, standard error of p) of the least-squares fit log gap = c − p log N.

    Needs three or more distinct widths: through two points a line always fits exactly, which
    would report an exponent with no evidence behind it."""
    ns = np.log(np.asarray(widths, dtype=float))
    if np.unique(ns).size < 3 or not np.all(gaps > 0):
        return None, None
    (slope, intercept), cov = np.polyfit(ns, np.log(gaps), 1, cov="unscaled")
    resid = np.log(gaps) - (slope * ns + intercept)
    sigma2 = float(resid @ resid) / (ns.size - 2)
    return float(-slope), float(np.sqrt(cov[0, 0] * sigma2))


def _summary(widths: list[int], per_run: list[dict], names: list[str]) -> list[dict]:
    """Per width: the gaps' mean (and std over seeds, for two or more), the mean W1 per
    coordinate at every output, and the mean SGD wall time."""
    summary = []
    for n in widths:
        rs = [r for r in per_run if r["n"] == n]
        gaps = np.array([r["sup_risk_gap"] for r in rs])
        gaps_iid = np.array([r["sup_risk_gap_iid"] for r in rs])
        after0 = np.array([r["sup_risk_gap_after0"] for r in rs])
        w1 = {x: np.mean([r["w1"][x] for r in rs], axis=0).tolist() for x in names}
        summary.append({"n": n, "sup_risk_gap_mean": float(gaps.mean()),
                        "sup_risk_gap_std": float(gaps.std(ddof=1)) if gaps.size > 1 else None,
                        "sup_risk_gap_iid_mean": float(gaps_iid.mean()),
                        "sup_risk_gap_iid_std": (float(gaps_iid.std(ddof=1)) if gaps_iid.size > 1
                                                 else None),
                        "sup_risk_gap_after0_mean": float(after0.mean()),
                        "t": rs[0]["t"], "w1_mean": w1,
                        "sgd_seconds": float(np.mean([r["wall_seconds"] for r in rs]))})
    return summary


def validate(cfg: Config, widths: list[int], seeds: list[int], out_dir: str | Path, *,
             workers: int | None = None, scheduler: str | None = None,
             pde_file: str | Path | None = None, overwrite: bool = False,
             progress: bool = False, stop: StopFlag = NEVER) -> dict:
    """Run the comparison and write ``validation.json`` and ``validation.png`` in ``out_dir``.

    The PDE result is ``out_dir/pde.h5`` (or ``pde_file``); each SGD run (width N, seed S) is a
    Dask task writing its own checkpointed result ``out_dir/sgd/n{N}-seed{S}.h5``
    (:mod:`.validation_runs`): on ``workers`` local single-threaded processes (default: one per
    core, at most one per run), or on the cluster of the scheduler at ``scheduler``
    (``tcp://HOST:PORT``, whose workers must reach ``out_dir``).

    Resuming: calling again with the same arguments after an interruption (``stop``, a signal, a
    crash) reuses the finished SGD files and a finished pde.h5, continues interrupted ones from
    their checkpoints and runs the missing ones; the report is that of an uninterrupted call.

    Refusals, before any work: an ``out_dir`` that already holds ``validation.json`` or
    ``validation.png``, and an SGD file there that holds a result of another config (e.g. of an
    earlier validate with other settings), unless ``overwrite`` — which then replaces the report
    and recomputes those SGD files (matching ones are still reused).  A pde.h5 of another config
    is solved again, as before.

    Standard deviations over seeds are reported for two or more seeds (``None`` for one); the
    decay exponent for three or more widths (``None`` otherwise).  ``progress``: a bar over
    the SGD runs (on a terminal).

    Raises:
        ValidateInterrupted: ``stop`` was set; finished files are kept (rerun to continue).
    """
    from .particles.model import particle_model

    particle_model(cfg.problem)  # a problem with no network behind it: refused before any work
    if workers is not None and workers < 1:
        raise ConfigError(f"workers = {workers}: give at least 1 worker process")
    if scheduler is not None and workers is not None:
        raise ConfigError("workers= applies to the local cluster only; with a scheduler start "
                          "workers with `dask worker ADDRESS` on the cluster")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir} is a file; validate writes a directory (pde.h5, sgd/, "
                        "validation.json, validation.png): choose a directory path")
    existing = [n for n in ("validation.json", "validation.png") if (out_dir / n).exists()]
    if existing and not overwrite:
        raise OutputExists(out_dir / existing[0], "report")
    pde_path = Path(pde_file) if pde_file else out_dir / "pde.h5"
    pde = load(pde_path) if pde_file else None
    t_pde = pde.t if pde is not None else output_times(cfg)  # the times solve() writes
    idx = np.unique(np.round(np.linspace(0, t_pde.size - 1, min(MAX_TIMES, t_pde.size)))
                    .astype(int))
    runs = plan_runs(cfg, widths, seeds, t_pde[idx].tolist(), out_dir / SGD_DIR,
                     overwrite=overwrite)
    (out_dir / SGD_DIR).mkdir(parents=True, exist_ok=True)
    if pde is None:
        try:
            pde = _pde_result(cfg, pde_path, stop)
        except Interrupted as exc:
            raise ValidateInterrupted(exc.signum, sum(r.done for r in runs), len(runs),
                                      out_dir / SGD_DIR) from None
        if not np.array_equal(pde.t, t_pde):
            raise DataError(f"{pde_path} has output times other than time.outputs gives; "
                            "remove it and run validate again")
    done = validation_runs.execute(runs, scheduler=scheduler, workers=workers, stop=stop,
                                   progress=progress)
    problem = problem_class(cfg.problem)
    sgd = [_sgd_run(r, problem.particle_field) for r in runs]
    report = _compare(cfg, pde, idx, sgd, widths, seeds)
    report["pde_file"] = str(pde_path)
    report["sgd_files"] = [{"n": r.n, "seed": r.seed, "path": str(r.path),
                            "status": done[r.path]["status"], "worker": done[r.path]["worker"]}
                           for r in runs]
    (out_dir / "validation.json").write_text(json.dumps(report, indent=1))
    names = list(problem.particle_coords)
    _figure(report, pde, idx, sgd, {x: problem.marginal_fields[x] for x in names},
            out_dir / "validation.png")
    return report


def _compare(cfg: Config, pde, idx: np.ndarray, runs: list[dict], widths: list[int],
             seeds: list[int]) -> dict:
    """The report (without file paths) of the SGD ``runs`` against the PDE result ``pde`` at
    its outputs ``idx``; each run gets ``pde_index``, the PDE output nearest to its outputs."""
    t_pde = pde.t
    times = t_pde[idx]
    problem = problem_class(cfg.problem)
    names = list(problem.particle_coords)
    quant = _marginal_quantiles(pde, problem, names, idx)
    self_term = _self_interaction(cfg, pde, idx)
    per_run = []
    for run in runs:
        t = np.asarray(run["t"])
        # SGD outputs land on the first step boundary at or after each requested time (several
        # requested times may share one when eps is coarse): compare each with the nearest PDE time
        near = np.abs(t[:, None] - times[None, :]).argmin(axis=1)
        run["pde_index"] = near
        gap = np.abs(np.asarray(run["risk"]) - np.interp(t, t_pde, pde["risk"]))
        iid = np.interp(t, times, pde["risk"][idx] + self_term / run["n"])
        gap_iid = np.abs(np.asarray(run["risk"]) - iid)
        coords = np.asarray(run["coords"])
        w1 = {}
        for c, x in enumerate(names):
            vals = coords if coords.ndim == 2 else coords[..., c]  # (K, N) or (K, N, C)
            w1[x] = [float(wasserstein_distance(vals[k], quant[x][near[k]]))
                     for k in range(t.size)]
        per_run.append({"n": run["n"], "seed": run["seed"], "t": t.tolist(),
                        "risk": run["risk"], "sup_risk_gap": float(gap.max()),
                        "sup_risk_gap_iid": float(gap_iid.max()),
                        "sup_risk_gap_after0": float(gap[t > 0].max()) if np.any(t > 0) else 0.0,
                        "w1": w1,
                        "wall_seconds": run["wall_seconds"]})
    summary = _summary(widths, per_run, names)
    exponent, exponent_se = _decay_exponent(
        widths, np.array([s["sup_risk_gap_mean"] for s in summary]))
    report = {
        "problem": cfg.problem, "config": cfg.to_dict(), "widths": widths, "seeds": seeds,
        "eps": cfg["sgd.eps"], "batch": cfg["sgd.batch"],
        "init_sampling": cfg["sgd.init_sampling"], "times": times.tolist(),
        "pde_file": None, "pde_risk": pde["risk"][idx].tolist(),
        "self_interaction": self_term.tolist(),
        "summary": summary, "gap_decay_exponent": exponent,
        "gap_decay_exponent_stderr": exponent_se, "runs": per_run,
    }
    return report


def _figure(report: dict, pde, idx: np.ndarray, runs: list[dict], marginal_fields: dict[str, str],
            out: Path) -> None:
    """``validation.png``: all seeds' risk and risk gap over t, the gap against N with the
    fitted exponent, and the largest width's particles over the PDE marginals
    (:func:`.validation_figure.draw`)."""
    from .validation_figure import draw

    draw(report, pde, idx, runs, marginal_fields, out)
