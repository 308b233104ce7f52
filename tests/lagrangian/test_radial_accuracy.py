"""Accuracy of the radial Lagrangian solver against converged references, and the honesty of its
error estimate (issue 14 acceptance).

The reference of each setting is the same solver refined until it stops changing: 480 mass cells
× 8 Lobatto nodes at solver.rtol = 1e-13 (its risk agrees with 640 cells to 3e-14 on every
setting below, its quantiles to 2e-9).  At the default setting it also reproduces the finite-volume
errors the issue quotes at n = 2400 (1.15e-3 at t = 5, 4e-4 at t = 10, 5.7e-4 at t = 20), and
the finite-volume risk converges to it at order ~1.9 (tested below).
"""

from functools import partial

import numpy as np
import pytest
from helpers import make_problem

from meanfield_pde.runner.companion import curve_error, curve_estimate

_problem = partial(make_problem, "gaussians")
LEVELS = np.array([0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99])
REFERENCE = ("lagrangian.mass_cells=480", "lagrangian.cell_order=8", "solver.rtol=1e-13")
SETTINGS = {
    "default": (),
    "delta0.6-d20-kappa0.5": ("model.delta=0.6", "model.d=20", "init.kappa=0.5"),
    "dinf-gaussian": ("model.d=inf", "init.kind=gaussian"),
    "l2-kappa1.2": ("noise.lam=0.05", "init.kappa=1.2"),
    "relu-d100-kappa1.2": ("model.d=100", "model.activation=relu", "init.kappa=1.2"),
}


def _trajectory(*sets):
    """Risks (every default output time) and quantiles X(m) at LEVELS of a Lagrangian run."""
    p = _problem(*sets)
    times = np.linspace(0.0, p.config["time.t_end"], p.config["time.n_outputs"])
    st, x = p.make_stepper(), p.initial_state()
    lag = p.lagrangian
    labels = lag.law.quantile(LEVELS)
    risks, quants = [p.risk(x)], [lag.cells.positions_at(x, labels)]
    for a, b in zip(times[:-1], times[1:], strict=True):
        assert st.advance(x, a, b, 10**8).t == b
        risks.append(p.risk(x))
        quants.append(lag.cells.positions_at(x, labels))
    return p, np.array(risks), np.array(quants)


_REFS: dict = {}
TIME_FLOOR = 2e-11


def _reference(name):
    if name not in _REFS:
        _REFS[name] = _trajectory(*SETTINGS[name], *REFERENCE)
    return _REFS[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SETTINGS))
def test_default_resolution_meets_the_acceptance(name):
    """Risk within 1e-6 of the reference at every output, quantiles of r within 1e-4."""
    _, r_ref, q_ref = _reference(name)
    _, r, q = _trajectory(*SETTINGS[name])
    assert np.max(np.abs(r - r_ref)) <= 1e-6
    assert np.max(np.abs(q - q_ref)) <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("cells", [25, 50, 100])
@pytest.mark.parametrize("name", list(SETTINGS))
def test_the_error_estimate_is_honest_over_the_run(name, cells):
    """risk_error_k = max_{j<=k} |R_j − R̃_j| / (q^p − 1) with the ¾-cells companion (p = 4,
    runner/companion.py) against the error of the risk curve so far, max_{j<=k} |R_j − R_ref|:
    <= 3 × the estimate at every output, and the final estimate <= 100 × the run's largest error
    + 1e-10 (measured on three settings: <= 1.7× and <= 13×)."""
    p, r_ref, _ = _reference(name)
    main, r, _ = _trajectory(*SETTINGS[name], f"lagrangian.mass_cells={cells}")
    comp = main.companion_config()["lagrangian.mass_cells"]
    _, rc, _ = _trajectory(*SETTINGS[name], f"lagrangian.mass_cells={comp}")
    est = curve_estimate(r, rc, main.error_order, main.companion_ratio, main.risk_error_floor)
    err = curve_error(r, r_ref)
    assert np.all(err <= 3 * est + TIME_FLOOR), np.max(err / est)
    assert est[-1] <= 100 * err[-1] + 1e-10, (est[-1], err[-1])


@pytest.mark.slow
def test_order_in_the_mass_cells_over_the_whole_run():
    """Default setting, t <= 20: the max-norm risk error falls >= 2^6 per doubling of the
    cells from 50 on (measured 4.6e-6, 2.5e-8, 1.8e-11 for 50, 100, 200 cells)."""
    _, r_ref, _ = _reference("default")
    errs = [np.max(np.abs(_trajectory(f"lagrangian.mass_cells={n}")[1] - r_ref))
            for n in (50, 100, 200)]
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(orders >= 6.0), (errs, orders)


@pytest.mark.slow
def test_finite_volumes_converge_to_the_lagrangian_reference():
    """Independent cross-check: the finite-volume risk at t = 1 and t = 5 converges to the
    Lagrangian reference at order >= 1.7 (n = 1200 → 2400 → 4800)."""
    _, r_ref, _ = _reference("default")
    r_max = _problem("solver.method=fv", "grid.n=8").r_max  # the default run's wall (t <= 20)
    times = np.linspace(0.0, 20.0, 201)
    errs = []
    for n in (1200, 2400, 4800):
        q = _problem("solver.method=fv", f"grid.n={n}", f"grid.r_max={r_max}", "time.t_end=5")
        st, rho = q.make_stepper(), q.initial_state()
        e = []
        for a, b in zip(times[:50], times[1:51], strict=True):
            st.advance(rho, a, b, 10**9)
            if b in (1.0, 5.0):
                e.append(abs(q.risk(rho) - r_ref[int(round(b * 10))]))
        errs.append(e)
    errs = np.array(errs)
    orders = np.log2(errs[:-1] / errs[1:])
    assert np.all(orders >= 1.7), (errs, orders)
    assert errs[1, 1] == pytest.approx(1.15e-3, rel=0.05)  # the number at n = 2400


@pytest.mark.slow
def test_the_noisy_finite_volume_estimate_is_honest():
    """With noise the semi-implicit scheme's first-order time error dominates; the companion
    (half the cells, twice dt_max) with p = 1 brackets the actual error — against a Richardson
    reference in dt from n = 4800 / 9600 at dt = 0.0025 / 0.00125 — within [1/3, 100] at every
    output (measured [0.94, 59])."""
    base = ("noise.beta=100", "noise.lam=0.01", "time.n_outputs=41")

    def risks(*sets):
        p = _problem(*base, *sets)
        times = np.linspace(0.0, 20.0, 41)
        st, rho = p.make_stepper(), p.initial_state()
        out = [p.risk(rho)]
        for a, b in zip(times[:-1], times[1:], strict=True):
            st.advance(rho, a, b, 10**9)
            out.append(p.risk(rho))
        return p, np.array(out)

    main, r = risks()
    wall = f"grid.r_max={main.r_max}"
    comp = main.companion_config()
    _, rc = risks(f"grid.n={comp['grid.n']}", f"solver.dt_max={comp['solver.dt_max']}", wall)
    _, f1 = risks("grid.n=4800", "solver.dt_max=0.0025", wall)
    _, f2 = risks("grid.n=9600", "solver.dt_max=0.00125", wall)
    err = np.abs(r - (2 * f2 - f1))[1:]
    est = np.abs(r - rc)[1:] / (2**main.error_order - 1)
    assert np.all(err <= 3 * est) and np.all(est <= 100 * err + 1e-10)
