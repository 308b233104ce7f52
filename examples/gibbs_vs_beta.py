"""Gibbs states of noisy SGD against the inverse temperature β.

With noise (finite ``noise.beta``) and an ℓ2 penalty λ (``noise.lam``), the PDE relaxes to the
Gibbs state ρ̄* ∝ r^(d−1) exp(−β Ψ_λ(r; ρ̄*)), the minimiser of the free energy
F = ½R + (λ/2)∫|w|² ρ̄ + β⁻¹∫ρ̄ log(ρ̄/w).  :func:`meanfield_pde.gibbs` solves that fixed point
directly (Newton on the moments of the low-rank kernel) for the ``gaussians`` problem at several
β: the figure shows the equilibrium law of r = |w|, the risk R(β), and the free energy with its
energy part E = ½R + (λ/2)∫|w|² (F − E = −β⁻¹ × entropy: F → E as β → ∞).

    python examples/gibbs_vs_beta.py              # docs/examples/gibbs_vs_beta.png (~20 s)
    python examples/gibbs_vs_beta.py --small --out /tmp/ex
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import rc_context

import meanfield_pde as mf
from meanfield_pde import plotting

LAM = 0.1
BETAS = (3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 300.0, 1000.0)


def main(out_dir: str | Path, small: bool = False) -> Path:
    """Solve the Gibbs state at each β and write ``out_dir/gibbs_vs_beta.png`` (returns it)."""
    cfg = mf.default_config("gaussians").replace({"noise.lam": LAM})
    betas = BETAS
    if small:
        cfg, betas = cfg.replace({"grid.n": 200}), (5.0, 50.0)
    states = [mf.gibbs(cfg.replace({"noise.beta": b})) for b in betas]
    risk = np.array([s.risk for s in states])
    free = np.array([s.free_energy for s in states])
    moments = [s.result.moments() for s in states]
    second = np.array([float(m["mean_r"][0] ** 2 + m["var_r"][0]) for m in moments])  # ∫|w|² ρ̄
    energy = 0.5 * risk + 0.5 * LAM * second

    with rc_context(plotting.STYLE):
        fig = plotting.new_figure("double", height=2.6)
        laws, risks, energies = fig.subplots(1, 3, width_ratios=(1.3, 1, 1))
        _laws_panel(fig, laws, betas, states)
        risks.semilogx(betas, risk, "o-", color="C0", ms=4)
        risks.set_title("risk")
        energies.set_title("free energy F and energy E")
        risks.set_ylabel("risk R of the Gibbs state")
        energies.semilogx(betas, free, "o-", color="C3", ms=4, label="F")
        energies.semilogx(betas, energy, "s--", color="C2", ms=4, label="E")
        energies.set_yscale("symlog", linthresh=1.0)
        energies.set_ylabel("F,  E = ½R + (λ/2)∫|w|² ρ̄  (symlog)")
        energies.legend(loc="lower right", handlelength=1.5)
        for ax in (risks, energies):
            ax.set_xlabel("inverse temperature β")
            ax.grid(True, which="major", alpha=0.3)
        fig.suptitle(f"gaussians (d = {cfg['model.d']}, δ = {cfg['model.delta']:g}, "
                     f"{cfg['model.activation']}): Gibbs states of noisy SGD against β")
    path = Path(out_dir) / "gibbs_vs_beta.png"
    plotting.save_figure(fig, path)
    return path


def _laws_panel(fig, ax, betas, states) -> None:
    """The equilibrium law of r at each β, as the density of log r (r ρ(r) on a log r axis:
    the cold states' narrow peaks near r = 0 and the hot states' wide ones both visible), one
    colour per β on a labelled colour bar."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LogNorm

    norm = LogNorm(min(betas), max(betas) if len(betas) > 1 else 10 * min(betas))
    mappable = ScalarMappable(norm=norm, cmap="viridis")
    lo, hi = np.inf, 0.0
    for b, s in zip(betas, states, strict=True):
        law = s.result.marginal("r").isel(t=0)
        r, rho = law["r"].values, law.values
        per_log_r = r * rho
        ax.plot(r, per_log_r, color=mappable.to_rgba(b))
        seen = r[per_log_r > 1e-3 * per_log_r.max()]
        lo, hi = min(lo, seen.min()), max(hi, seen.max())
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ax.set_xlabel("r = |w|")
    ax.set_ylabel("density of log r,  r ρ(r)")
    ax.set_title(f"equilibrium law of r (λ = {LAM:g})")
    fig.colorbar(mappable, ax=ax, label="β", pad=0.01)


if __name__ == "__main__":
    from _cli import run

    run(main, __doc__)
