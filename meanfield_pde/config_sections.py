"""The configuration sections every problem shares with the runner (time grid, schedule, noise,
particle SGD, checkpoints, steady state, solver), for the problems' schemas to include
(:func:`shared_sections`); importable from :mod:`meanfield_pde.config` too."""

from __future__ import annotations

import math

from .config import Choice, Float, FloatList, Int, Outputs, Schema

#: the doc of time.t_end (every problem's, whatever its default)
T_END_DOC = ("final time of the run; uniform outputs need t_end >= (n_outputs - 1) * 2.2e-308 "
             "(distinct output times)")
TIME = {
    "t_end": Float(20.0, lo=0.0, doc=T_END_DOC),
    "outputs": Outputs("uniform", doc='"uniform", "log" or a list of output times'),
    "n_outputs": Int(201, lo=2, hi=1_000_000, doc="number of output times (uniform / log)"),
    "t_first": Float(1e-3, lo=0.0, doc="first positive output time of log spacing"),
}
SCHEDULE = {
    "kind": Choice("constant", options=("constant", "power", "piecewise"),
                   doc="xi(t): constant xi0; power xi0 (1 + t/t0)^-p; piecewise constant"),
    "xi0": Float(1.0, lo=0.0, doc="scale of xi(t)"),
    "t0": Float(1.0, lo=0.0, doc="time scale of the power schedule"),
    "p": Float(0.5, lo=0.0, lo_closed=True, doc="exponent of the power schedule"),
    "times": FloatList([], item=Float(0.0, lo=0.0), doc="breakpoints of the piecewise schedule"),
    "values": FloatList([], item=Float(0.0, lo=0.0),
                        doc="xi on each piece (one more than times)"),
}
NOISE = {
    "beta": Float(math.inf, lo=0.0, allow_inf=True,
                  doc="inverse temperature of noisy SGD (inf = noiseless); gibbs refuses a "
                      "beta whose round-off in beta * potential exceeds 1e-4 (about 3e10 for "
                      "the gaussians defaults)"),
    "lam": Float(0.0, lo=0.0, lo_closed=True, doc="l2 penalty lambda (also without noise)"),
}
SGD = {
    "n_neurons": Int(800, lo=1, hi=10_000_000, doc="SGD: width N of the network"),
    "eps": Float(1e-4, lo=0.0, doc="SGD: time per sample (step size s_k = eps xi(k eps)); a "
                                    "run's work, t_end / eps samples x N x d (+ outputs x N^2 "
                                    "x d for the risk), may be at most 1e14"),
    "batch": Int(1, lo=1, hi=1_000_000, doc="SGD: samples per step (a step advances t by "
                                             "batch * eps, at most 1% of time.t_end or a whole "
                                             "fraction of it)"),
    "seed": Int(0, lo=0, hi=2**63 - 1, doc="SGD: seed of the random generator"),
    "init_sampling": Choice("iid", options=("iid", "stratified"),
                            doc="SGD: initial radii i.i.d. from rho_0, or stratified (one per "
                                "1/N quantile bin; gaussians only)"),
}
CHECKPOINT = {
    "every": Float(0.0, lo=0.0, lo_closed=True,
                   doc="simulated time between checkpoints (0: no time trigger)"),
    "wall_seconds": Float(60.0, lo=0.0, lo_closed=True,
                          doc="wall-clock seconds between checkpoints (0: no wall trigger); "
                              "one is always written at the start, at the end and on a signal"),
}
STEADY = {
    "steady_tol": Float(1e-10, lo=0.0, doc="--steady: stop when the relative free-energy "
                                            "decrease per unit time is below this"),
    "steady_tol_rho": Float(1e-10, lo=0.0, doc="--steady: and the relative L1 change of the "
                                                  "density per unit time is below this"),
    "steady_t_max": Float(1e6, lo=0.0, doc="--steady: give up at this time"),
}
SOLVER = {
    "method": Choice("auto", options=("auto", "fv", "lagrangian"),
                     doc="auto: Lagrangian without noise, finite volumes with noise; fv: finite "
                         "volumes; lagrangian: mass cells / characteristics (noiseless only)"),
    "rtol": Float(1e-10, lo=0.0, hi=1e-2,
                  doc="Lagrangian: relative (and absolute) tolerance of the embedded "
                      "Runge-Kutta pair (DOP853) per step"),
    "cfl": Float(0.4, lo=0.0, hi=0.5, hi_closed=True,
                 doc="dt = cfl h / max abs(u); <= 0.5 keeps the density non-negative"),
    "theta": Float(2.0, lo=1.0, hi=2.0, lo_closed=True, hi_closed=True,
                   doc="generalised-minmod parameter of the slope limiter"),
    "max_steps": Int(100_000_000, lo=1, doc="stop with an error after this many steps"),
    "noisy_scheme": Choice("semi-implicit", options=("semi-implicit", "explicit"),
                           doc="with noise: frozen-interaction implicit steps (no parabolic dt "
                               "limit) or explicit SSP-RK3"),
    "dt_max": Float(0.01, lo=0.0, doc="with noise (semi-implicit): largest time step"),
}


def shared_sections(**extra: dict) -> Schema:
    """The sections every problem shares, in the order the key tables list them (noise, sgd,
    time with the steady-state keys, schedule, solver, checkpoint); ``extra[section]`` adds or
    replaces keys of one section (e.g. ``time={"t_end": Float(8.0, ...)}``)."""
    base = {"noise": NOISE, "sgd": SGD, "time": {**TIME, **STEADY}, "schedule": SCHEDULE,
            "solver": SOLVER, "checkpoint": CHECKPOINT}
    unknown = set(extra) - set(base)
    if unknown:
        raise ValueError(f"not a shared section: {sorted(unknown)}")
    return {name: {**spec, **extra.get(name, {})} for name, spec in base.items()}
