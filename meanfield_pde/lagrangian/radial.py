"""The radial noiseless flow in mass coordinates (MATH.md §6): Lagrangian finite volumes.

The state is X_p(t), the positions of the Gauss–Lobatto nodes of fixed-mass cells
(:mod:`.radial_cells`; cell edges shared by neighbours), labelled by their initial position.
Every node moves with the velocity of the flow,

    dX_p/dt = −2ξ(t) ∂_rψ_λ(X_p; ρ̂_t),     ρ̂_t = Σ_p w_p δ_{X_p(t)},

ψ_λ from the low-rank kernel at the moving points (:mod:`.radial_features`), integrated by
DOP853 with error control (:class:`.ode.OdeStepper`).  Mass is exact (the weights are fixed), the
cell average Δm_i/(X_{i+1} − X_i) stays positive while edges stay ordered (the velocity is
Lipschitz in r, so characteristics do not cross), and nothing diffuses.  The risk and moments
are the Lobatto quadrature Σ_p w_p f(X_p), high order in the cell width while X is smooth in
the label.

Initial laws (:class:`InitialLaw`) give ρ̄_0, its exact cell masses and its quantiles.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special

from ..activations import Activation
from ..schedule import Schedule
from .ode import OdeStepper
from .radial_cells import TAIL, MassCells
from .radial_features import RadialFeatures

__all__ = ["InitialLaw", "RadialFlow"]


@dataclass
class InitialLaw:
    """ρ̄_0 on r >= 0: its density ``pdf``, ``masses(edges)`` (exact masses of the intervals
    between consecutive edges, the tails beyond the end edges included in the end intervals),
    ``quantile(m)``, the label range ``[lo, hi]`` holding all but TAIL of the mass at each end,
    and ``breaks``: label points where ρ̄_0 is not smooth (cell edges are put there)."""

    pdf: Callable[[np.ndarray], np.ndarray]
    masses: Callable[[np.ndarray], np.ndarray]
    quantile: Callable[[np.ndarray], np.ndarray]
    lo: float
    hi: float
    breaks: np.ndarray

    @classmethod
    def chi(cls, kappa: float, dof: int) -> InitialLaw:
        """r = (κ/√k) χ_k: P(r <= x) = P(k/2, k x²/(2κ²))."""
        a, s = dof / 2.0, kappa / math.sqrt(dof)
        lgam = special.gammaln(a)

        def pdf(r):
            r = np.asarray(r, dtype=np.float64)
            z = r / s
            with np.errstate(divide="ignore", invalid="ignore"):
                logp = (dof - 1) * np.log(z) - 0.5 * z * z - (a - 1) * math.log(2.0) - lgam
            return np.where(z > 0, np.exp(logp), 1.0 if dof == 1 else 0.0) / s

        def cdf_sf(x):
            y = 0.5 * (np.asarray(x) / s) ** 2
            return special.gammainc(a, y), special.gammaincc(a, y)

        def quantile(m):
            m = np.asarray(m, dtype=np.float64)
            lo = special.gammaincinv(a, np.minimum(m, 0.5))
            hi = special.gammainccinv(a, np.minimum(1.0 - m, 0.5))
            return s * np.sqrt(2.0 * np.where(m < 0.5, lo, hi))

        lo = float(quantile(TAIL))
        hi = float(s * math.sqrt(2.0 * special.gammainccinv(a, TAIL)))
        return cls(pdf, _masses(cdf_sf), quantile, lo, hi, np.empty(0))

    @classmethod
    def gaussian(cls, mean: float, std: float) -> InitialLaw:
        """N(mean, std²) conditioned on r >= 0."""
        z0 = -mean / std
        norm = special.ndtr(-z0)

        def pdf(r):
            z = (np.asarray(r) - mean) / std
            return np.exp(-0.5 * z * z) / (math.sqrt(2 * math.pi) * std * norm)

        def cdf_sf(x):
            z = (np.asarray(x) - mean) / std
            return (special.ndtr(z) - special.ndtr(z0)) / norm, special.ndtr(-z) / norm

        def quantile(m):
            m = np.asarray(m, dtype=np.float64)
            lo = special.ndtri(special.ndtr(z0) + m * norm)
            hi = -special.ndtri((1.0 - m) * norm)
            return np.maximum(mean + std * np.where(m < 0.5, lo, hi), 0.0)

        lo = float(quantile(TAIL))
        hi = float(mean - std * special.ndtri(TAIL * norm))
        return cls(pdf, _masses(cdf_sf), quantile, lo, hi, np.empty(0))

    @classmethod
    def piecewise(cls, edges: np.ndarray, density: np.ndarray) -> InitialLaw:
        """The piecewise-constant density on ``edges`` (e.g. a result file's snapshot): its
        support is trimmed to the cells with mass, its jumps are cell edges."""
        edges = np.asarray(edges, dtype=np.float64)
        mass = np.maximum(np.asarray(density, dtype=np.float64), 0.0) * np.diff(edges)
        full = np.nonzero(mass > 0)[0]
        i0, i1 = int(full[0]), int(full[-1]) + 1
        edges, mass = edges[i0 : i1 + 1], mass[i0:i1] / math.fsum(mass[i0:i1])
        dens = mass / np.diff(edges)
        cum = np.concatenate([[0.0], np.cumsum(mass)])

        def pdf(r):
            i = np.clip(np.searchsorted(edges, r, side="right") - 1, 0, dens.size - 1)
            return dens[i]

        def masses(e):
            c = np.interp(e, edges, cum)
            c[0], c[-1] = 0.0, 1.0
            return np.diff(c)

        def quantile(m):
            return np.interp(m, cum, edges)

        return cls(pdf, masses, quantile, float(edges[0]), float(edges[-1]), edges)


def _masses(cdf_sf: Callable) -> Callable[[np.ndarray], np.ndarray]:
    """Interval masses from (CDF, survival function): CDF differences left of the median,
    survival differences right of it (relative accuracy in both tails); the end intervals take
    the tails beyond the end edges."""

    def masses(edges):
        cdf, sf = cdf_sf(np.asarray(edges, dtype=np.float64))
        cdf, sf = np.array(cdf, dtype=np.float64), np.array(sf, dtype=np.float64)
        cdf[0], sf[-1] = 0.0, 0.0
        mid = 0.5 * (cdf[:-1] + cdf[1:])
        return np.where(mid < 0.5, np.diff(cdf), -np.diff(sf))

    return masses


class RadialFlow:
    """The ODE system of the nodes (module docstring): ``rhs(t, X)`` and the risk."""

    def __init__(self, cells: MassCells, act: Activation, delta: float, n_terms: int,
                 lam: np.ndarray, l2: float, schedule: Schedule):
        self.cells = cells
        self.features = RadialFeatures(act, delta, n_terms, lam, l2)
        self.schedule = schedule
        self.weights = np.ascontiguousarray(cells.weights)

    def velocity(self, t: float, x: np.ndarray) -> np.ndarray:
        """dX/dt = −2ξ(t) ∂_rψ_λ(X; ρ̂)."""
        slope, _ = self.features.slope_and_risk(x, self.weights)
        return (-2.0 * self.schedule(t)) * slope

    def risk(self, x: np.ndarray) -> float:
        """R(ρ̂_t) by the Lobatto quadrature in mass."""
        return self.features.risk(x, self.weights)

    def stepper(self, rtol: float, atol: float) -> OdeStepper:
        """The DOP853 stepper of the nodes (its ``umax``: the largest node speed); serial
        kernels that release the GIL, so it may run beside another stepper."""
        stepper = OdeStepper(self.velocity, rtol, atol)
        stepper.concurrent = True
        return stepper
