"""A power-law ξ(t) = ξ0 (1 + t/t0)^(−p) is resolved in time: the plan lands on stops where ξ has
changed by XI_RESOLUTION (schedule.py), so steps chosen from ξ(t_n) never span its time scale."""

import math

import numpy as np
from helpers import config

from meanfield_pde import load, solve
from meanfield_pde.schedule import XI_NEGLIGIBLE, XI_RESOLUTION, Schedule, stop_times


def _power(t0: float, p: float, xi0: float = 1.0) -> Schedule:
    return Schedule.from_config(config("gaussians", "schedule.kind=power", f"schedule.t0={t0}",
                                       f"schedule.p={p}", f"schedule.xi0={xi0}"))


def test_consecutive_stops_change_xi_by_the_resolution():
    for t0, p in ((1e-3, 0.5), (1.0, 1.0), (1e-6, 3.0)):
        s = _power(t0, p)
        tau = np.concatenate([[0.0], s.resolution_stops(10.0)])
        xi = np.array([s(t) for t in tau])
        # ξ_{j+1}/ξ_j = (1 + XI_RESOLUTION/p)^(−p), within round-off of the stop times
        ratio = xi[1:] / xi[:-1]
        assert np.allclose(ratio, (1 + XI_RESOLUTION / p) ** (-p), rtol=1e-12)
        assert 1 - ratio.max() <= XI_RESOLUTION


def test_stops_are_bounded_whatever_the_schedule():
    """At most ln(1/XI_NEGLIGIBLE)/XI_RESOLUTION + 1 stops, and none once ξ is negligible."""
    bound = math.log(1 / XI_NEGLIGIBLE) / XI_RESOLUTION + 1
    for t0, p in ((1e-300, 100.0), (1e-300, 1e-3), (1e300, 1.0)):
        s = _power(t0, p)
        stops = s.resolution_stops(1e300)
        assert stops.size <= bound
        if stops.size:
            assert s(stops[-1]) / s(0.0) >= XI_NEGLIGIBLE * (1 - 1e-9)
    assert Schedule.from_config(config("gaussians")).resolution_stops(20.0).size == 0


def test_plan_lands_on_the_stops():
    cfg = config("gaussians", "schedule.kind=power", "schedule.t0=1e-3", "schedule.p=0.5",
                 "time.t_end=2")
    stops = stop_times(cfg, Schedule.from_config(cfg))
    assert np.all(np.isin(Schedule.from_config(cfg).resolution_stops(2.0), stops))


def test_noisy_finite_volumes_resolve_a_fast_decaying_xi(tmp_path):
    """ξ0 = 30, t0 = 1e-3, p = 0.5 with noise (β = 100, λ = 0.01), semi-implicit steps at the
    default dt_max = 0.01 against dt_max = 1e-5: within 8e-3 (measured 4.7e-3 on n = 600; 4.1e-2
    when steps were chosen from ξ(t_n) alone)."""
    sets = ("schedule.kind=power", "schedule.t0=1e-3", "schedule.p=0.5", "schedule.xi0=30",
            "time.t_end=1", "time.n_outputs=11", "noise.beta=100", "noise.lam=0.01",
            "grid.n=300")
    solve(config("gaussians", *sets), tmp_path / "a.h5")
    solve(config("gaussians", *sets, "solver.dt_max=1e-5"), tmp_path / "b.h5")
    a, b = load(tmp_path / "a.h5"), load(tmp_path / "b.h5")
    assert np.max(np.abs(a["risk"] - b["risk"])) <= 8e-3
