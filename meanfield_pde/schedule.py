"""The step-size schedule ξ(t) and the output times of a run.

The mean-field PDE carries the factor ξ(t) of the SGD step size s_k = ε ξ(kε) (MATH.md §1):

    constant:   ξ(t) = xi0
    power:      ξ(t) = xi0 (1 + t/t0)^(−p)
    piecewise:  ξ(t) = values[i]  for times[i−1] <= t < times[i]   (times[−1] = 0, times[n] = ∞)

Numba kernels evaluate ξ through :func:`~meanfield_pde.fv.xi.xi_at` from an integer ``kind`` and a
flat ``params`` array, so that one compiled kernel serves every schedule; :class:`Schedule` builds
that encoding from a configuration.  The time loop never steps across a breakpoint
of a piecewise schedule (they are returned by :meth:`Schedule.breakpoints`), nor across the
points of :meth:`Schedule.resolution_stops`, where a power-law ξ has changed by XI_RESOLUTION
since the previous one: the steppers choose dt from the flow at the start of a step (ξ(t_n)), so
without them a fast-decaying ξ was integrated with steps far longer than its own time scale
t0 + t (noisy finite volumes at t0 = 1e-3: risk error 4e-2 against 6e-3 at ten times smaller
steps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from .config import Config
from .fv.xi import CONSTANT, PIECEWISE, POWER, xi_at

_KINDS = {"constant": CONSTANT, "power": POWER, "piecewise": PIECEWISE}
#: relative change of a power-law ξ between consecutive resolution stops
XI_RESOLUTION = 0.02
#: resolution stops end where ξ has fallen below this fraction of ξ(0) (the flow has stopped)
XI_NEGLIGIBLE = 1e-9


@dataclass(frozen=True)
class Schedule:
    """ξ(t) built from the ``[schedule]`` section of a configuration."""

    kind: int
    params: np.ndarray

    @classmethod
    def from_config(cls, cfg: Config) -> Schedule:
        """ξ(t) of the ``[schedule]`` section of ``cfg`` (kind and flat parameters)."""
        s = cfg.section("schedule")
        kind = _KINDS[s["kind"]]
        if kind == CONSTANT:
            params = [s["xi0"]]
        elif kind == POWER:
            params = [s["xi0"], s["t0"], s["p"]]
        else:
            params = [len(s["times"]), *s["times"], *s["values"]]
        return cls(kind, np.asarray(params, dtype=np.float64))

    def __call__(self, t: float) -> float:
        return float(xi_at(self.kind, self.params, float(t)))

    def breakpoints(self) -> np.ndarray:
        """Times at which ξ jumps (the time loop lands on them exactly)."""
        if self.kind != PIECEWISE:
            return np.empty(0)
        n = int(self.params[0])
        return self.params[1 : 1 + n].copy()

    def resolution_stops(self, t_end: float) -> np.ndarray:
        """Times in (0, t_end) at which a power-law ξ has changed by XI_RESOLUTION since the
        previous one: t0 + τ_j = t0 (1 + XI_RESOLUTION/p)^j, while ξ(τ_j) > XI_NEGLIGIBLE ξ(0)
        (at most ln(1/XI_NEGLIGIBLE)/XI_RESOLUTION + 1 ≈ 1040 of them, whatever t0 and p); none
        for the other kinds (constant, or piecewise: :meth:`breakpoints`)."""
        if self.kind != POWER or not t_end > 0.0:
            return np.empty(0)
        t0, p = float(self.params[1]), float(self.params[2])
        if p <= 0.0:
            return np.empty(0)
        ratio = 1.0 + XI_RESOLUTION / p
        # ξ(τ)/ξ(0) = (1 + τ/t0)^(−p) > XI_NEGLIGIBLE  <=>  1 + τ/t0 < XI_NEGLIGIBLE^(−1/p)
        q = t_end / t0  # ln(1 + q), also where q overflows (the stops then stay below t_end)
        span = math.log1p(q) if math.isfinite(q) else math.log(t_end) - math.log(t0)
        top = min(span, -math.log(XI_NEGLIGIBLE) / p)
        j = np.arange(1, int(top / math.log(ratio)) + 1)
        x = j * math.log(ratio)
        tau = np.empty(x.size)
        small = x <= 700.0  # e^x finite: t0 expm1(x) keeps the early stops' relative accuracy
        tau[small] = t0 * np.expm1(x[small])
        tau[~small] = np.exp(math.log(t0) + x[~small])  # t0 e^x − t0 = t0 e^x here
        return tau[(tau > 0.0) & (tau < t_end)]

    def integral(self, t: float) -> float:
        """∫_0^t ξ(s) ds (the 'intrinsic time' of the flow), in closed form."""
        xi0 = self.params[0]
        if self.kind == CONSTANT:
            return xi0 * t
        if self.kind == POWER:
            t0, p = self.params[1], self.params[2]
            if abs(p - 1.0) < 1e-14:
                return xi0 * t0 * math.log1p(t / t0)
            return xi0 * t0 * ((1.0 + t / t0) ** (1.0 - p) - 1.0) / (1.0 - p)
        edges = np.concatenate([[0.0], self.breakpoints(), [np.inf]])
        n = int(self.params[0])
        vals = self.params[1 + n :]
        total = 0.0
        for a, b, v in zip(edges[:-1], edges[1:], vals, strict=True):
            if t <= a:
                break
            total += v * (min(t, b) - a)
        return total


def grid_time(k: int, spacing: float) -> float:
    """The k-th point of a uniform time grid: the double nearest to k × (the shortest decimal
    that reads back as ``spacing``), so k = 3, spacing = 0.1 gives 0.3, not the
    0.30000000000000004 of 3 × 0.1 (or of linspace)."""
    return float(k * Decimal(repr(float(spacing))))


def uniform_times(t_end: float, intervals: int) -> np.ndarray:
    """0, h, 2h, ..., t_end with h = t_end / intervals, each by :func:`grid_time` (the last is
    t_end exactly)."""
    h = Decimal(repr(float(t_end) / intervals))
    times = np.array([float(k * h) for k in range(intervals + 1)])
    times[-1] = t_end
    return times


def output_times(cfg: Config) -> np.ndarray:
    """The sorted, unique output times in [0, t_end], always containing 0 and t_end.

    ``"uniform"``: n_outputs equally spaced; ``"log"``: 0 then n_outputs − 1 log-spaced points from
    t_first to t_end; a list: those times.
    """
    tcfg = cfg.section("time")
    t_end, n, outs = tcfg["t_end"], tcfg["n_outputs"], tcfg["outputs"]
    if outs == "uniform":
        times = uniform_times(t_end, n - 1)
    elif outs == "log":
        times = np.concatenate([[0.0], np.geomspace(tcfg["t_first"], t_end, n - 1)])
    else:
        times = np.asarray(outs, dtype=np.float64)
    times = np.unique(np.concatenate([[0.0], times, [t_end]]))
    times[-1] = t_end  # exact, whatever geomspace rounded to
    return times


def stop_times(cfg: Config, schedule: Schedule) -> np.ndarray:
    """Output times merged with the schedule's breakpoints and resolution stops below t_end
    (where steps must land)."""
    out = output_times(cfg)
    bp = np.concatenate([schedule.breakpoints(), schedule.resolution_stops(out[-1])])
    bp = bp[(bp > 0) & (bp < out[-1])]
    return np.unique(np.concatenate([out, bp]))
