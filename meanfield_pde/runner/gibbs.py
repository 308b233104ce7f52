"""The self-consistent Gibbs fixed point, solved directly and written as a one-snapshot file."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..config import Config
from ..errors import ConfigError, SolverError
from ..io import ResultWriter
from ..problems import build_problem
from .companion import richardson_factor
from .memory import run_in_memory
from .summary import GibbsSummary


def solve_gibbs(cfg: Config, output: str | Path | None = None, *,
                overwrite: bool = False) -> GibbsSummary:
    """Solve the self-consistent Gibbs fixed point ρ̄* ∝ w exp(−β Ψ_λ(ρ̄*)) directly (Newton in the
    moment space of the low-rank kernel, :meth:`Problem.gibbs`) and write it as a one-snapshot
    result file (t = 0, root attribute ``solution = "gibbs_fixed_point"``).

    Args:
        cfg: resolved configuration with finite ``noise.beta``.
        output: result file to write; None: keep it in memory (``summary.path`` is None,
            ``summary.result`` the :class:`~meanfield_pde.io.Result`; see :mod:`.memory`).
        overwrite: replace an existing ``output`` (otherwise that is an error).

    Returns:
        A :class:`.summary.GibbsSummary`: free energy, risk, Newton iterations, ``result``.

    Raises:
        ConfigError: the problem has no Gibbs solver or no noise.
        SolverError: Newton did not converge, or the fixed point has mass at a wall.
        DataError: ``output`` exists and ``overwrite`` is False.
    """
    if output is None:
        return run_in_memory(cfg.problem, lambda path: solve_gibbs(cfg, path))
    t0 = time.perf_counter()
    problem = build_problem(cfg)
    res = problem.gibbs()
    _check_resolved(cfg, res.floor)
    if not res.converged:
        raise SolverError(
            f"the Gibbs fixed point did not converge (residual {res.residual:.1e} after "
            f"{res.iterations} Newton steps); try a finer grid or a smaller noise.beta"
        )
    state = np.ascontiguousarray(res.density.reshape(problem.initial_state().shape))
    problem.check_walls(state, float("inf"))
    extra = _companion_risk(problem)
    wall = time.perf_counter() - t0
    writer = ResultWriter(
        Path(output), problem=cfg.problem, config=cfg.to_dict(), grid=problem.grid,
        fields={**problem.fields, **{k: () for k in extra}}, overwrite=overwrite,
        attrs={"seed": "none (deterministic solver)", "solution": "gibbs_fixed_point",
               **problem.attrs()},
    )
    snap = problem.snapshot(state)
    if extra:  # the Richardson estimate of the fixed point's risk (runner/companion.py)
        extra["risk_error"] = max(abs(float(snap["risk"]) - extra["risk_companion"])
                                  * richardson_factor(problem.error_order, problem.companion_ratio),
                                  float(problem.risk_error_floor))
    snap = {**snap, **extra}
    try:
        writer.append(0.0, snap)
    except BaseException:
        writer.close()
        raise
    writer.finish(wall_seconds=wall, newton_iterations=res.iterations,
                  newton_residual=res.residual)
    energy = float(snap.get(problem.energy_field, res.free_energy))
    return GibbsSummary(writer.path, cfg.problem, energy, float(snap["risk"]), res.iterations,
                        res.residual, wall, snap.get("risk_error"))


#: the largest round-off floor of the Gibbs residual (relative error of the moments that the
#: exponent β(E + Σ λ_k μ_k f_k) alone leaves, :func:`~meanfield_pde.fv.gibbs.residual_floor`)
#: at which the fixed point is still resolved; it grows in proportion to noise.beta
GIBBS_MAX_FLOOR = 1e-4


def _check_resolved(cfg: Config, floor: float) -> None:
    """Refuse a ``noise.beta`` so large that round-off in the Gibbs exponent exceeds
    :data:`GIBBS_MAX_FLOOR` (the floor is proportional to β, so the message can state the
    largest β this grid and potential resolve)."""
    if floor <= GIBBS_MAX_FLOOR:
        return
    beta = float(cfg["noise.beta"])
    beta_max = beta * GIBBS_MAX_FLOOR / floor
    raise ConfigError(
        f"noise.beta = {beta:g} is too large for the Gibbs state: round-off in the exponent "
        f"beta * potential leaves a relative error {min(floor, 1.0):.1e} in its moments; "
        f"accepted here: noise.beta <= {beta_max:.2g} (or noise.beta = inf, the noiseless "
        "dynamics, with solve)")


def _companion_risk(problem) -> dict[str, float]:
    """{"risk_companion": R̃} of the Gibbs fixed point of the problem's companion (the same
    problem at a coarser resolution), or {} when it names none or that one does not converge."""
    cfg = problem.companion_config()
    if cfg is None or problem.error_order <= 0:
        return {}
    companion = build_problem(cfg)
    res = companion.gibbs()
    if not res.converged:
        return {}
    state = np.ascontiguousarray(res.density.reshape(companion.initial_state().shape))
    return {"risk_companion": float(companion.snapshot(state)["risk"]), "risk_error": 0.0}
