"""Round-off scales of the discrete free energies, shared by the drift-diffusion tests.

F sums terms that cancel, so its round-off is u times the sum of |terms| (times n for a plain
n-term sum, a few for the compensated sums of the package) -- not a fraction of |F|.
"""

import numpy as np

from meanfield_pde.fv.stepper3d import potential3d

U = 2.0**-53  # unit round-off of float64


def free_energy_scale_1d(rho, h, r, v, feats, lam_k, r_sharp, lam, beta, m):
    """Sum of |terms| of F (moments squared: |m_k| h |f_k| . rho): its round-off is a multiple of
    u times this (n u for a plain length-n sum, a few u for the compensated dd.free_energy)."""
    mom_abs = np.abs(h * feats @ rho) * (h * np.abs(feats) @ rho)
    pos = rho > 0
    ent = np.where(pos, rho * (np.log(np.where(pos, rho, 1.0)) - m * np.log(r)), 0.0)
    return (0.5 * (abs(r_sharp) + 2 * h * np.abs(v) @ rho + lam_k @ mom_abs)
            + 0.5 * lam * h * (r * r) @ rho + h * np.abs(ent).sum() / beta)


def free_energy_roundoff_3d(rho, a_c, s_c, r_c, h_a, h_s, h_r, phi0, feats, w, r_sharp, lam, beta,
                            m):
    """Round-off of F (free_energy3d: Neumaier sums, plain N-cell loops for the moments) in
    units of u: a few (8) times the sum of |terms|, plus the moment errors N u h³ |a f_k| . rho
    amplified by d(w M²/2)/dM = w M."""
    h3 = h_a * h_s * h_r
    a, s, r = np.meshgrid(a_c, s_c, r_c, indexing="ij")
    _, M = potential3d(rho, a_c, h_a, h_s, h_r, phi0, feats, w)
    m_abs = np.abs(M) * np.array([h3 * np.sum(np.abs(a * f.reshape(phi0.shape)[None] * rho))
                                  for f in feats])
    pos = rho > 0
    ent = np.where(pos, rho * (np.log(np.where(pos, rho, 1.0)) - m * np.log(r)), 0.0)
    fs = (0.5 * (abs(r_sharp) + 2 * h3 * np.sum(np.abs(a * phi0[None] * rho)) + np.abs(w) @ M**2)
          + 0.5 * lam * h3 * np.sum((a * a + s * s + r * r) * rho) + h3 * np.abs(ent).sum() / beta)
    return 8 * fs + rho.size * (np.abs(w) @ m_abs)


def risk_roundoff_1d(rho, h, v, feats, lam_k, r_sharp):
    """Round-off bound of lowrank.risk (plain n-term loops): R = R# + 2h Σ v_i ρ_i + Σ_k λ_k m_k²
    with m_k = h Σ f_k ρ.  Each n-term sum errs by <= n u Σ|terms|, m_k² by 2|m_k| δm_k, the final
    additions by a few u: (n + 3) u [|R#| + 2h |v|·ρ + Σ_k λ_k 2|m_k| h |f_k|·ρ]."""
    n = rho.size
    m = h * feats @ rho
    m_abs = h * np.abs(feats) @ np.abs(rho)
    return (n + 3) * U * (abs(r_sharp) + 2 * h * np.abs(v) @ np.abs(rho)
                          + np.abs(lam_k) @ (2 * np.abs(m) * m_abs + m * m))


def risk_roundoff_3d(rho, grid, kern, r_sharp):
    """Round-off bound of stepper3d.discrete_risk: column moments A = h_a Σ_i a_i ρ_i (n_a-term
    loops), then R = R# + 2 h_s h_r Σ φ0 A + Σ_q w_q M_q² with M_q = h_s h_r Σ f_q A (n_s n_r-term
    loops): (n_a + n_s n_r + 3) u [|R#| + 2h³ Σ|a φ0 ρ| + Σ_q |w_q| (2|M_q| h³ Σ|a f_q ρ| + M_q²)].
    """
    na, ns, nr = rho.shape
    h3 = grid.h_a * grid.h_s * grid.h_r
    a_abs = h3 * np.tensordot(np.abs(grid.a_c), np.abs(rho), axes=(0, 0)).ravel()  # (ns nr,)
    col = h3 * np.tensordot(grid.a_c, rho, axes=(0, 0)).ravel()
    m = kern.feats @ col
    m_abs = np.abs(kern.feats) @ a_abs
    lin = 2 * np.abs(kern.phi0.ravel()) @ a_abs
    return (na + ns * nr + 3) * U * (abs(r_sharp) + lin
                                     + np.abs(kern.w) @ (2 * np.abs(m) * m_abs + m * m))


def free_energy_roundoff_1d(p, rho):
    """Round-off of the radial problem ``p``'s free energy (dd1.free_energy: Neumaier sums, 8u of
    the sum of |terms|, moments by plain n-cell loops, n u h |f_k| . rho each, amplified by
    lam_k |m_k|)."""
    k = p.kernel
    fs = free_energy_scale_1d(rho, p.h, p.centers, k.v, k.feats, k.lam, 1.0, p.lam, p.beta,
                              p.d - 1.0)
    mom = np.abs(p.h * k.feats @ rho) * (p.h * np.abs(k.feats) @ rho)
    return U * (8 * fs + rho.size * (k.lam @ mom))


def energy_roundoff(p, rho, field: str) -> float:
    """Round-off of one evaluation of the energy ``field`` ("risk" or "free_energy") of problem
    ``p`` (radial: 1-D state; single neuron: 3-D state) at ``rho``."""
    k = p.kernel
    if rho.ndim == 1:
        if field == "risk":
            return risk_roundoff_1d(rho, p.h, k.v, k.feats, k.lam, 1.0)  # R# = E y² = 1
        return free_energy_roundoff_1d(p, rho)
    if field == "risk":
        grid, kern, _ = p.tables()
        return risk_roundoff_3d(rho, grid, kern, k.r_sharp)
    return U * free_energy_roundoff_3d(rho, p.a_centers, p.s_centers, p.r_centers, p.h_a, p.h_s,
                                       p.h_r, -k.v, k.feats, k.weights, k.r_sharp, p.lam,
                                       p.beta, p.d - 2.0)
