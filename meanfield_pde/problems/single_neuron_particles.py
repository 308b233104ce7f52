"""Problem B (``single-neuron``, MATH.md §3) as particles: the network for particle SGD and R_N.

θ = (a, w) ∈ R^{1+d}, σ_*(x; θ) = a σ(⟨w, x⟩); data x ~ N(0, I_d), y = f_*(⟨w_*, x⟩) + ν ζ with
w_* = e_1, ζ ~ N(0, 1) and ν² = ``model.label_noise``.  From the sample block
``[u, g_1, …, g_d]``: x = g, y = f_*(g_1) + ν u.  ∇_a σ_* = σ(⟨w, x⟩), ∇_w σ_* = a σ'(⟨w, x⟩) x
(old a).  Reduced coordinates: z = (a, s, r) with s = w_1 = ⟨w, w_*⟩ and r = |w_{2:d}|.

Population risk: U = a_i a_j E[σ(⟨w_i, g⟩) σ(⟨w_j, g⟩)] (one data scale τ = 1), V = −a v(s, r)
with v(s, r) = E[f_*(G1) σ(sG1 + rZ)] (the accurate :mod:`~meanfield_pde.problems.neuron_kernel`
routine; for analytic σ and f_* the Mehler series Σ_k (s/ρ)^k f̂_k α_k(ρ) on the risk's
coefficient table), R# = E f_*(G)² + ν².
"""

from __future__ import annotations

import math

import numpy as np

from ..activations import Activation, PiecewiseLinearActivation, get_activation
from ..config import Config
from ..errors import ConfigError
from ..particles.activation_codes import encode_activation
from ..particles.mehler import _mehler_v
from ..particles.model import LABEL_TEACHER, DataLaw, ParticleModel, directions
from .neuron_kernel import _v_points
from .neuron_kernel import r_sharp as target_r_sharp


class SingleNeuronParticles(ParticleModel):
    """The single-neuron teacher problem's network: θ = (a, w) (module docstring)."""

    train_outer_weight = True

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        m = cfg.section("model")
        self.target: Activation = (self.sigma if m["target"] == "same"
                                   else get_activation(m["target"], m["target_params"]))
        self.label_noise = float(m["label_noise"])
        # ν of y = f_*(⟨w_*, x⟩) + ν ζ: model.label_noise is the variance ν² (as in the PDE's
        # R# = E f_*² + ν², neuron_kernel.r_sharp)
        self.nu = math.sqrt(self.label_noise)
        self._ef2: float | None = None

    @classmethod
    def check(cls, cfg: Config) -> None:
        """Stratified initial radii do not apply: the initial law is not a law of one radius."""
        if cfg["sgd.init_sampling"] == "stratified":
            raise ConfigError("sgd.init_sampling = 'stratified' exists for gaussians only (the "
                              "single-neuron initial law is not a law of one radius); use 'iid'")

    # ------------------------------------------------------------------ the network
    def initial_theta(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """a (``init.a_law``): ``point`` a = init.a (no draw), ``gaussian`` a + a_std g
        (N normals), ``uniform`` a + a_halfwidth (2U − 1) (N uniforms); then w: with
        k = ``init.d`` or d, w = (κ/√k) G (N × d normals) with w_1 += ``init.s0`` if k = d,
        otherwise s = s0 + (κ/√k) g (N normals), r = (κ/√k) χ_{k−1} (N chi-squares) and a uniform
        direction in the d − 1 remaining coordinates (N × (d − 1) normals)."""
        ini, d = self.cfg.section("init"), self.d
        law = ini["a_law"]
        if law == "point":
            a = np.full(n, ini["a"])
        elif law == "gaussian":
            a = ini["a"] + ini["a_std"] * rng.standard_normal(n)
        else:
            a = ini["a"] + ini["a_halfwidth"] * (2.0 * rng.random(n) - 1.0)
        dof = int(ini["d"] or d)
        scale = ini["kappa"] / math.sqrt(dof)
        if dof == d:
            w = scale * rng.standard_normal((n, d))
            w[:, 0] += ini["s0"]
        else:
            if dof < 3:
                raise ConfigError(f"init.d = {dof} is out of range; accepted: 3 <= d")
            s = ini["s0"] + scale * rng.standard_normal(n)
            r = scale * np.sqrt(rng.chisquare(dof - 1, n))
            w = np.empty((n, d))
            w[:, 0] = s
            w[:, 1:] = directions(rng.standard_normal((n, d - 1))) * r[:, None]
        return np.column_stack([a, w])

    @staticmethod
    def reduced_coordinates(theta: np.ndarray) -> np.ndarray:
        """(a, s, r), shape (N, 3)."""
        w = theta[:, 1:]
        r = np.sqrt(np.einsum("ij,ij->i", w[:, 1:], w[:, 1:]))
        return np.column_stack([theta[:, 0], w[:, 0], r])

    def data_law(self) -> DataLaw:
        """x = g, y = f_*(g_1) + ν u."""
        code, p = encode_activation(self.target)
        return DataLaw(LABEL_TEACHER, 0.0, code, p, self.nu)

    # ------------------------------------------------------------------ the risk
    def scales(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """One data scale, τ = 1."""
        return (1.0,), (1.0,)

    def r_sharp(self) -> float:
        """R# = E f_*(G)² + ν²."""
        return float(target_r_sharp(self.target, self.label_noise))

    def potential(self, a: np.ndarray, w: np.ndarray, rad: np.ndarray,
                  tables: tuple[list[np.ndarray], list[np.ndarray]] | None) -> np.ndarray:
        """V = −a v(s, r)."""
        alpha, diag = (tables[0][0], tables[1][0]) if tables is not None else (None, None)
        return -a * self._v(w, rad, alpha, diag)

    def _v(self, w: np.ndarray, rad: np.ndarray, alpha: np.ndarray | None,
           diag: np.ndarray | None) -> np.ndarray:
        """v(s, r) = E[f_*(G1) σ(sG1 + rZ)] for each particle.

        Analytic σ and f_*: the Mehler series Σ_k (s/ρ)^k f̂_k α_k(ρ) on the table ``alpha``
        (ρ = |w|) when its tail, at most sqrt(Σ_{k>K} f̂_k² · max_i Σ_{k>K} α_k(ρ_i)²), is below
        1e-13; otherwise (and for piecewise-linear σ or f_*) the conditioned quadrature of
        :mod:`~meanfield_pde.problems.neuron_kernel` (~1e-14).
        """
        s = w[:, 0]
        r = np.sqrt(np.einsum("ij,ij->i", w[:, 1:], w[:, 1:]))
        analytic = not isinstance(self.sigma, PiecewiseLinearActivation) and not isinstance(
            self.target, PiecewiseLinearActivation)
        if analytic and alpha is not None and diag is not None and alpha.shape[0] > 1:
            fhat = self.target.hermite(1.0, alpha.shape[0] - 1)
            ftail = max(0.0, self._target_square() - float(np.sum(fhat * fhat)))
            atail = float(np.max(diag - np.sum(alpha * alpha, axis=0), initial=0.0))
            if math.sqrt(ftail * max(atail, 0.0)) <= 1e-13:
                c = np.where(rad > 0, s / np.where(rad > 0, rad, 1.0), 0.0)
                return _mehler_v(np.ascontiguousarray(fhat), alpha, np.ascontiguousarray(c))
        return _v_points(self.sigma, self.target, s, r)

    def _target_square(self) -> float:
        """E f_*(G)² (R# without the label noise)."""
        if self._ef2 is None:
            self._ef2 = float(target_r_sharp(self.target, 0.0))
        return self._ef2
