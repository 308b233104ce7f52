"""Output-time planning: the events of a run and how a resume extends them.

A :class:`Plan` is the list of stop times after the start of a run — output times and schedule
breakpoints, each flagged as writing a snapshot or not — and the index of the first stop not yet
reached.  The time loop (:mod:`.loop`) lands on every stop exactly; trackers may append stops
(``--steady``).  :func:`extend` rewrites a config for ``resume --t-end`` so that the old output
times are kept bit for bit; :func:`default_output_path` names a new result file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..config import Config
from ..errors import OptionError
from ..schedule import grid_time, output_times, stop_times


@dataclass
class Plan:
    """Stops ``(time, is_output)`` after the start; ``i`` = index of the first stop not yet
    reached; ``n_plan`` = stops up to ``time.t_end`` (later ones are ``--steady`` extensions);
    ``interval`` = length of the last extension."""

    stops: list[tuple[float, bool]] = field(default_factory=list)
    i: int = 0
    n_plan: int = 0
    interval: float = 1.0

    @classmethod
    def of(cls, stops, *, output: bool = False, i: int = 0) -> Plan:
        """A plan of the times ``stops`` (all outputs, or none)."""
        pairs = [(float(s), bool(output)) for s in stops]
        return cls(pairs, i, len(pairs), _last_interval(pairs))

    @property
    def done(self) -> bool:
        """Every stop reached."""
        return self.i >= len(self.stops)

    @property
    def current(self) -> tuple[float, bool]:
        """The stop in progress (or just reached, within a tracker's ``event``)."""
        return self.stops[self.i]

    @property
    def past_t_end(self) -> bool:
        """The current stop is the last one of ``time.t_end`` or an extension past it."""
        return self.i >= self.n_plan - 1

    def append(self, t: float) -> None:
        """One more output stop at ``t`` (past the planned end)."""
        self.stops.append((float(t), True))

    @property
    def t_stop(self) -> float | None:
        """The stop in progress, None when every stop is reached."""
        return None if self.done else self.stops[self.i][0]


def _last_interval(pairs: list[tuple[float, bool]]) -> float:
    if not pairs:
        return 1.0
    return float(pairs[-1][0] - (pairs[-2][0] if len(pairs) > 1 else 0.0))


def plan_stops(cfg: Config, schedule) -> list[tuple[float, bool]]:
    """(stop, is_output) for every stop after t = 0: outputs and schedule breakpoints."""
    stops = stop_times(cfg, schedule)
    is_output = np.isin(stops, output_times(cfg))
    return [(float(s), bool(o)) for s, o in zip(stops[1:], is_output[1:], strict=True)]


def make_plan(cfg: Config, schedule) -> Plan:
    """The plan of a run from t = 0 (:func:`plan_stops`)."""
    stops = plan_stops(cfg, schedule)
    return Plan(stops, 0, len(stops), _last_interval(stops))


#: the most snapshots a run may write (time.n_outputs has the same upper bound)
MAX_OUTPUTS = 1_000_000


def output_spacing(cfg: Config) -> dict:
    """{"output_spacing": h} for uniform outputs (stored with the result, so that every
    ``resume --t-end`` continues the grid k h), else {}."""
    tc = cfg.section("time")
    if tc["outputs"] == "uniform" and tc["t_end"] > 0:
        return {"output_spacing": tc["t_end"] / (tc["n_outputs"] - 1)}
    return {}


def extend(cfg: Config, t_end: float, spacing: float | None = None) -> Config:
    """``cfg`` with ``time.t_end = t_end`` whose output times begin with those of ``cfg``,
    exactly (a resume's plan, and a later resume's, is rebuilt from the stored config).

    Uniform outputs (spacing h, or ``spacing`` from the file for a run extended before) go on
    at the times k h after the old t_end, then ``t_end``: n_outputs is scaled when ``t_end`` is
    a multiple of h (linspace then reproduces the old times bit for bit), otherwise the outputs
    become the list of those times. Listed (or log) outputs get ``t_end`` as a last output.
    """
    tc = cfg.section("time")
    old = output_times(cfg)
    over: dict[str, object] = {"time.t_end": float(t_end)}
    if tc["outputs"] == "uniform" and tc["t_end"] > 0:
        spacing = tc["t_end"] / (tc["n_outputs"] - 1)
    if spacing is not None and spacing > 0:  # the budget, checked before any list is built
        count = len(old) + (t_end - old[-1]) / spacing
        if not count <= MAX_OUTPUTS:
            raise OptionError("t_end", f"{{opt}} {t_end:g} would write {count:.3g} snapshots at "
                              f"the run's output spacing {spacing:g} (at most {MAX_OUTPUTS:,}); "
                              "choose an earlier end, or extend a run with fewer outputs")
    if tc["outputs"] == "uniform" and tc["t_end"] > 0:
        n = round(t_end / spacing) + 1
        if n <= MAX_OUTPUTS:
            scaled = cfg.replace({**over, "time.n_outputs": max(2, n)})
            new = output_times(scaled)
            if len(new) > len(old) and np.array_equal(new[: len(old)], old):
                return scaled
    extra: list[float] = []
    if spacing is not None and spacing > 0:
        first = math.floor(old[-1] / spacing + 1e-9) + 1
        last = math.ceil(t_end / spacing - 1e-9) - 1
        extra = [grid_time(k, spacing) for k in range(first, last + 1)]
        extra = [x for x in extra if old[-1] + 1e-9 * spacing < x < t_end - 1e-9 * spacing]
    over["time.outputs"] = [float(x) for x in old] + extra  # old t_end included
    return cfg.replace(over)


def default_output_path(problem: str, directory: str | Path = "runs") -> Path:
    """``runs/<problem>-<UTC time>.h5``, never an existing file."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = Path(directory) / f"{problem}-{stamp}"
    path, i = base.with_suffix(".h5"), 1
    while path.exists():
        path = Path(f"{base}-{i}.h5")
        i += 1
    return path
