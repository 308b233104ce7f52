"""Accepted extreme scales give the right answer or a one-line error, never a traceback
(issue 18: init.kappa = 1e155 raised OverflowError in chi_quantile; the ramp's Hermite
coefficients lost everything at t ~ 1e17).

At init.kappa = κ → ∞ every neuron of the ramp network saturates: σ(⟨w, x⟩) = s1 or s2 with
probability ½ each for either label, so the mean-field output is (s1 + s2)/2 = 2.5 and
R = E(y − 2.5)² = 1 + 6.25 = 7.25 exactly (up to O(1/κ))."""

import numpy as np
import pytest
from helpers import config

from meanfield_pde import load, solve
from meanfield_pde.problems.radial_laws import chi_law, chi_quantile


@pytest.mark.parametrize("kappa", [1e20, 1e155, 1e300])
def test_huge_initial_scale_gives_the_saturated_risk(tmp_path, kappa):
    solve(config("gaussians", f"init.kappa={kappa}", "time.t_end=0.5", "time.n_outputs=6",
                 "lagrangian.mass_cells=10"), tmp_path / "r.h5")
    risk = load(tmp_path / "r.h5")["risk"]
    assert np.all(np.abs(risk - 7.25) <= 1e-9), risk


def test_chi_law_at_huge_scales_has_no_overflow():
    kappa, dof = 1e300, 40
    q = chi_quantile(1e-12, kappa, dof)
    assert np.isfinite(q) and q > kappa  # the upper tail lies beyond the scale
    edges = np.linspace(0.0, q, 101)
    masses = chi_law(edges, kappa, dof) * np.diff(edges)
    assert abs(masses.sum() - 1.0) <= 1e-10
