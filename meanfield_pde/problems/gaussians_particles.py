"""Problem A (``gaussians``, MATH.md §2) as particles: the network for particle SGD and R_N.

θ = w ∈ R^d (no outer weight: a ≡ 1), σ_*(x; w) = σ(⟨w, x⟩); data y = ±1 with probability ½,
x = τ_y g, g ~ N(0, I_d), τ_± = 1 ± Δ (Δ = ``model.delta``).  From the sample block
``[u, g_1, …, g_d]``: y = +1 if u >= 0 else −1.  Reduced coordinate: r = |w|.

Population risk: U = ½ Σ_± E[σ(τ_±⟨w_i, g⟩) σ(τ_±⟨w_j, g⟩)], V(w) = v(|w|) =
−½[q(τ_+ρ) − q(τ_−ρ)] with q(t) = α_0(t) = E σ(tG), R# = 1.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from ..activations import PiecewiseLinearActivation
from ..config import Config
from ..particles.model import (
    LABEL_SIGN_SCALES,
    DataLaw,
    ParticleModel,
    directions,
    stratified_uniforms,
)


class GaussiansParticles(ParticleModel):
    """The radial problem's network: θ = w, sign labels on two data scales (module docstring)."""

    train_outer_weight = False

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.delta = float(cfg["model.delta"])

    # ------------------------------------------------------------------ the network
    def initial_theta(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """θ^0 from ``init.kind``: ``chi`` — w = (κ/√k) G, G ~ N(0, I_d) (N × d normals) when
        k = ``init.d`` or model.d equals d; otherwise r = (κ/√k) χ_k (``chisquare``) and a uniform
        direction (N × d normals, then N chi-squares); ``gaussian`` — uniform direction, then r
        from N(mean, std²) conditioned on r >= 0 by inverting the normal CDF of N uniforms;
        ``from_file`` — uniform direction, then r from the piecewise-constant density of
        ``init.file`` at ``init.time`` (N uniforms, inverse CDF).  With
        ``sgd.init_sampling = "stratified"`` the radii are r_i = F^{-1}(u_i) for stratified
        uniforms u_i = (π_i + v_i)/N (π a random permutation, v_i uniform; N × d normals for the
        directions first, then the permutation, then N uniforms): each neuron still has the law
        ρ̄_0, but the empirical law of the radii is within 1/N of it in Kolmogorov distance, which
        removes the O(N^-1/2) fluctuation of R_N(θ^0) around R(ρ̄_0) (the population risk of an
        isotropic initial law depends on the neurons through their radii only at first order).
        """
        ini, d = self.cfg.section("init"), self.d
        kind = ini["kind"]
        stratified = self.cfg["sgd.init_sampling"] == "stratified"
        if kind == "chi":
            dof = int(ini["d"] or d)
            g = rng.standard_normal((n, d))
            if stratified:
                r = ini["kappa"] / math.sqrt(dof) * np.sqrt(special.chdtri(
                    dof, 1.0 - stratified_uniforms(rng, n)))
                return directions(g) * r[:, None]
            if dof == d:
                return ini["kappa"] / math.sqrt(d) * g
            r = ini["kappa"] / math.sqrt(dof) * np.sqrt(rng.chisquare(dof, n))
            return directions(g) * r[:, None]
        g = rng.standard_normal((n, d))
        u = stratified_uniforms(rng, n) if stratified else rng.random(n)
        if kind == "gaussian":
            mean, std = ini["mean"], ini["std"]
            p = special.ndtr(mean / std)  # P(N(mean, std²) >= 0)
            r = mean - std * special.ndtri(u * p)
            r = np.maximum(r, 0.0)
        else:
            r = _radii_from_file(ini, u)
        return directions(g) * r[:, None]

    @staticmethod
    def reduced_coordinates(theta: np.ndarray) -> np.ndarray:
        """r = |w|, shape (N,)."""
        return np.sqrt(np.einsum("ij,ij->i", theta, theta))

    def data_law(self) -> DataLaw:
        """y = ±1, x = (1 ± Δ) g."""
        return DataLaw(LABEL_SIGN_SCALES, self.delta, 0, np.zeros(3), 0.0)

    # ------------------------------------------------------------------ the risk
    def scales(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """τ_± = 1 ± Δ, weights ½."""
        return (1.0 + self.delta, 1.0 - self.delta), (0.5, 0.5)

    def r_sharp(self) -> float:
        """E y² = 1."""
        return 1.0

    def potential(self, a: np.ndarray, w: np.ndarray, rad: np.ndarray,
                  tables: tuple[list[np.ndarray], list[np.ndarray]] | None) -> np.ndarray:
        """v(ρ) = −½[q(τ_+ρ) − q(τ_−ρ)], q(t) = α_0(t) = E σ(tG): for piecewise-linear σ row
        k = 0 of the risk's Hermite tables (the same closed form) when given."""
        if tables is not None and isinstance(self.sigma, PiecewiseLinearActivation):
            alphas = tables[0]
            return -0.5 * (alphas[0][0] - alphas[1][0])
        tp, tm = self.scales()[0]
        qp = self.sigma.hermite(tp * rad, 0)[0]
        qm = self.sigma.hermite(tm * rad, 0)[0]
        return -0.5 * (qp - qm)


def _radii_from_file(ini: dict, u: np.ndarray) -> np.ndarray:
    """Radii r = F^{-1}(u) for the piecewise-constant radial density of ``init.file`` at
    ``init.time`` (as the radial PDE reads it; negative values clipped to 0)."""
    from .gaussians import read_radial_density

    edges, dens = read_radial_density(ini["file"], ini["time"])
    dens = np.maximum(dens, 0)
    mass = dens * np.diff(edges)
    cdf = np.concatenate([[0.0], np.cumsum(mass)])
    u = u * cdf[-1]
    cell = np.clip(np.searchsorted(cdf, u, side="right") - 1, 0, mass.size - 1)
    frac = np.where(mass[cell] > 0, (u - cdf[cell]) / np.where(mass[cell] > 0,
                                                               mass[cell], 1.0), 0.5)
    return edges[cell] + np.clip(frac, 0.0, 1.0) * (edges[cell + 1] - edges[cell])
