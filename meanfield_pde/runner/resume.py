"""Resume: continue a run from the last checkpoint of its result file, in place.

The file is checked (a result of this package, a readable checkpoint of its kind, the stored
config matching the checkpoint's hash, the grid the config rebuilds equal to the stored one),
its rows after the checkpoint are dropped, and the runner of its kind continues:
:func:`~.pde.run_pde` or :func:`~.sgd.run_sgd`.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from ..config import Config, build_config
from ..errors import DataError, MeanFieldError, OptionError
from ..io import ResultWriter, load, load_checkpoint
from ..io.layout import CONFIG_BEFORE_EXTENSION
from ..problems import build_problem, problem_class
from .companion import PairedProblem, with_companion
from .pde import SNAPSHOT_FLUSH_SECONDS, PdeStart, run_pde
from .plan import Plan, extend, plan_stops
from .sgd import run_sgd
from .summary import RunSummary, SGDSummary
from .trackers import NEVER, StopFlag, config_hash


def resume(path: str | Path, *, t_end: float | None = None, progress: bool = False,
           stop: StopFlag = NEVER) -> RunSummary | SGDSummary:
    """Continue the run stored in ``path`` from its last checkpoint, in place.

    The snapshots written after a resume equal those of an uninterrupted run (the PDE steps do
    not depend on where a run was cut; SGD restores the generator state).  ``t_end`` extends a
    run past its ``time.t_end`` (uniform outputs keep their spacing; the grid, including an
    automatic wall, stays that of the original run).

    Raises:
        DataError: the file is not a result of this package, has no readable checkpoint, is
            complete and no later ``t_end`` is given, or its stored config does not match the
            checkpoint.
    """
    path = Path(path)
    res = load(path)
    if res.attrs.get("solution") == "gibbs_fixed_point":
        raise DataError(f"{path} holds a Gibbs fixed point, not a time-dependent run; nothing to "
                        "resume")
    ck = load_checkpoint(path)
    meta = ck.meta
    stored, t_end = _checkpoint_config(path, res, meta, t_end)
    kind = "sgd" if res.attrs.get("kind") == "sgd" else "pde"
    if meta.get("kind") != kind:
        raise DataError(f"the checkpoint of {path} is of kind {meta.get('kind')!r}, the file of "
                        f"kind {kind!r}; {path} is corrupt, run the solve again")
    try:
        cfg = build_config(res.problem, _pin_method(res.problem, stored))
    except MeanFieldError as exc:
        raise DataError(f"the stored config of {path} is not valid for this version of "
                        f"meanfield-pde ({exc}); run the solve again") from None
    new_cfg = _new_config(path, cfg, res, meta, t_end)
    k = int(meta["n_snapshots"])
    if not 1 <= k <= res.n_snapshots:
        raise DataError(f"the checkpoint of {path} counts {k} snapshots but the file has "
                        f"{res.n_snapshots}; {path} is corrupt, run the solve again")
    if kind == "sgd":
        theta = ck.arrays.get("theta")
        n = int(cfg["sgd.n_neurons"])
        if theta is None or theta.ndim != 2 or theta.shape[0] != n:
            raise DataError(f"the checkpoint of {path} holds no parameters of {n} neurons; "
                            f"{path} is corrupt, run the sgd again")
        writer = _reopen(path, k, cfg, new_cfg if t_end is not None else None)
        return run_sgd(new_cfg, writer, (meta, theta), progress=progress, stop=stop)
    return _resume_pde(path, cfg, new_cfg, res, ck, t_end is not None, progress, stop)


def _checkpoint_config(path: Path, res, meta: dict,
                       t_end: float | None) -> tuple[dict, float | None]:
    """The config the checkpoint in force was written with, and the ``t_end`` to continue to.

    That is the stored config, except while a ``resume --t-end`` has stored its extended config
    but not yet written a checkpoint of its own (a kill in between): then the checkpoint
    belongs to the config before the extension (:data:`CONFIG_BEFORE_EXTENSION`), and the run
    continues the extension (to the stored ``time.t_end``, unless ``t_end`` says otherwise).
    """
    want = meta.get("config_hash")
    if want == config_hash(res.config):
        return res.config, t_end
    before = res.attrs.get(CONFIG_BEFORE_EXTENSION)
    if isinstance(before, str):
        try:
            before = json.loads(before)
        except ValueError:
            before = None
    if isinstance(before, dict) and want == config_hash(before):
        return before, t_end if t_end is not None else float(res.config["time"]["t_end"])
    raise DataError(f"the stored config of {path} does not match its checkpoint (the file "
                    "was edited or mixed from two runs); run the solve again")


def _pin_method(problem: str, stored: dict) -> dict:
    """A stored config from before ``solver.method`` existed was solved by finite volumes."""
    solver = stored.get("solver")
    if ("method" in problem_class(problem).schema.get("solver", {})
            and isinstance(solver, dict) and "method" not in solver):
        return {**stored, "solver": {**solver, "method": "fv"}}
    return stored


def _new_config(path: Path, cfg: Config, res, meta: dict, t_end: float | None) -> Config:
    """The config to continue with: the stored one, or extended to ``t_end``."""
    t_ck = float(meta["t"])
    if t_end is None:
        if res.complete:
            raise OptionError("t_end", f"{path} is complete (t_end = {cfg['time.t_end']:g}); "
                              f"pass {{opt}} T with T > {t_ck:g} to continue it")
        return cfg
    if meta.get("steady"):
        raise OptionError("t_end", "a steady-state run ends on its own criterion; {opt} does "
                              "not apply")
    if not (math.isfinite(t_end) and t_end > t_ck):
        raise OptionError("t_end", f"{{opt}} {t_end:g} must be a finite time after the "
                          f"checkpoint's "
                        f"t = {t_ck:g}")
    spacing = res.attrs.get("output_spacing")
    return extend(cfg, t_end, spacing if isinstance(spacing, float) else None)


def _fixed_walls(cfg: Config, attrs: dict) -> Config:
    """``cfg`` with the walls the original run chose (the automatic ones depend on t_end)."""
    try:
        return problem_class(cfg.problem).with_walls(cfg, attrs)
    except KeyError as exc:
        raise DataError(f"the result file has no {exc.args[0]!r} attribute; it was not written "
                        "by a solve of this package") from None


def _reopen(path: Path, k: int, cfg: Config, new_cfg: Config | None,
            flush_seconds: float = 0.0) -> ResultWriter:
    """The first write of a resume (after every check): continue after the checkpoint's ``k``
    snapshots (the rows after it stay until the run reproduces them) and store the extended
    config (``--t-end``), if any, keeping ``cfg``, the checkpoint's, beside it."""
    writer = ResultWriter.reopen(path, k, flush_seconds)
    if new_cfg is not None:
        writer.update_config(new_cfg.to_dict(), cfg.to_dict())
    return writer


def _resumed_plan(cfg: Config, new_cfg: Config, schedule, meta: dict, extended: bool) -> Plan:
    """The plan of the original run (or of the extended one), at the checkpoint's stop."""
    i = int(meta["i"])
    stops = plan_stops(cfg, schedule)
    if extended:
        t_done = stops[i - 1][0] if i >= 1 else 0.0
        stops = stops[:i] + [e for e in plan_stops(new_cfg, schedule) if e[0] > t_done]
        n_plan = len(stops)
    else:
        n_plan = len(stops)
        if i >= len(stops):  # inside the --steady extension: rebuild the stop in progress
            stops += [(math.nan, True)] * (i - len(stops))
            if meta["t_stop"] is not None:
                stops.append((float(meta["t_stop"]), True))
    return Plan(stops, i, n_plan, float(meta["interval"]))


def _resume_pde(path: Path, cfg: Config, new_cfg: Config, res, ck, extended: bool,
                progress: bool, stop: StopFlag) -> RunSummary:
    meta = ck.meta
    t0 = time.perf_counter()
    problem_class(cfg.problem).warmup(cfg)
    compile_seconds = time.perf_counter() - t0
    problem = build_problem(_fixed_walls(new_cfg, res.attrs))
    if "risk_error" in res.fields:  # the run has a companion (runner/companion.py)
        problem = with_companion(problem)
        if not isinstance(problem, PairedProblem):
            raise DataError(f"{path} holds risk_error but its problem names no companion in "
                            "this version of meanfield-pde; run the solve again")
    for name, arr in problem.grid.items():
        if name not in res.grid or not np.array_equal(res.grid[name], arr):
            raise DataError(f"the grid of {path} ({name}) differs from the one its config gives "
                            "in this version of meanfield-pde; run the solve again")
    state = np.ascontiguousarray(ck.arrays.get("state"), dtype=np.float64)
    expected = np.shape(problem.initial_state())
    if state.shape != expected:
        raise DataError(f"the checkpoint state of {path} has shape {state.shape}, the problem "
                        f"{expected}; {path} is corrupt, run the solve again")
    stepper = problem.make_stepper()
    stepper.set_state(meta["stepper"])
    k = int(meta["n_snapshots"])
    names = ("risk", "mass", problem.energy_field,
             *(("risk_error",) if "risk_error" in res.fields else ()))
    if isinstance(problem, PairedProblem):
        problem.restore_previous(np.abs(res["risk"][:k] - res["risk_companion"][:k]).tolist())
    start = PdeStart(
        state=state, t=float(meta["t"]),
        plan=_resumed_plan(cfg, new_cfg, problem.schedule, meta, extended),
        times=res.t[:k].tolist(), history={name: res[name][:k].tolist() for name in names},
        last_state=res["density"][k - 1].copy(), min_density=float(meta["min_density"]),
        steady=bool(meta["steady"]), fresh=False, n_steps=int(meta["n_steps"]),
        n_rejected=int(meta["n_rejected"]), wall_before=float(meta["wall_seconds"]),
        rates=(meta["rate"], meta["rho_rate"]),
        seconds={"compile": compile_seconds, "setup": time.perf_counter() - t0 - compile_seconds},
    )
    writer = _reopen(path, k, cfg, new_cfg if extended else None, SNAPSHOT_FLUSH_SECONDS)
    return run_pde(new_cfg, problem, stepper, writer, start, progress=progress, stop=stop)
