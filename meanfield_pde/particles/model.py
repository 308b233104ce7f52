"""What a problem declares for particle SGD and the finite-N population risk (MATH.md §1, §5).

The engine (:mod:`~meanfield_pde.particles.sgd`, :mod:`~meanfield_pde.particles.risk`) is
generic; each problem supplies a :class:`ParticleModel` subclass as the class attribute
``particle_model`` of its :class:`~meanfield_pde.problems.base.Problem` class, found by
:func:`particle_model` through the problem registry.  The model declares:

* the parameters of one neuron, θ = w ∈ R^d or, with :attr:`~ParticleModel.train_outer_weight`,
  θ = (a, w) ∈ R^{1+d} (the network is ŷ(x; θ) = (1/N) Σ_i a_i σ(⟨w_i, x⟩), a ≡ 1 otherwise);
* the initial law of θ (:meth:`~ParticleModel.initial_theta`, drawing from a NumPy generator);
* the reduced coordinates the PDE evolves (:meth:`~ParticleModel.reduced_coordinates`);
* the law of the data (x, y) as a :class:`DataLaw` bundle for the compiled update;
* the target terms of the risk R_N(θ) = R# + (2/N) Σ_i V(θ_i) + (1/N²) Σ_{i,j} U(θ_i, θ_j):
  R#, the potential V, and the data scales τ_s with weights π_s of the interaction
  U(θ_i, θ_j) = a_i a_j Σ_s π_s E[σ(τ_s⟨w_i, g⟩) σ(τ_s⟨w_j, g⟩)], g ~ N(0, I_d).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import NamedTuple

import numpy as np

from ..activations import Activation, get_activation
from ..config import Config
from ..errors import ConfigError

# label laws of the compiled update (one sample from the standard normals [u, g_1, …, g_d])
LABEL_SIGN_SCALES = 0  # y = +1 if u >= 0 else −1, x = τ_y g with τ_± = 1 ± Δ
LABEL_TEACHER = 1  # x = g, y = f_*(g_1) + ν u


class DataLaw(NamedTuple):
    """The law of one sample (x, y) for the compiled update (codes above).

    ``spread`` Δ of the sign-label scales τ_± = 1 ± Δ; ``target_code, target_p`` the encoded
    teacher f_* (:func:`~meanfield_pde.particles.activation_codes.encode_activation`) and
    ``noise_std`` ν of the teacher labels.  Unused fields hold neutral values.
    """

    kind: int
    spread: float
    target_code: int
    target_p: np.ndarray
    noise_std: float


class ParticleModel(ABC):
    """The problem-specific side of particle SGD and of the population risk (module docstring).

    Built from the configuration; :attr:`sigma` is the network's activation and :attr:`d` the
    (finite) input dimension.
    """

    #: θ = (a, w) with a trained outer weight a (True), or θ = w with a ≡ 1 (False)
    train_outer_weight: bool = False

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.d = finite_d(cfg)
        m = cfg.section("model")
        self.sigma: Activation = get_activation(m["activation"], m["activation_params"])

    @classmethod
    def check(cls, cfg: Config) -> None:
        """Raise :class:`ConfigError` if ``cfg``'s ``[sgd]`` options do not apply to this model
        (called before anything is drawn)."""
        return None

    @property
    def dim(self) -> int:
        """D, the number of parameters of one neuron."""
        return self.d + (1 if self.train_outer_weight else 0)

    # ------------------------------------------------------------------ the network
    @abstractmethod
    def initial_theta(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """θ^0 (n, D) drawn from the configuration's initial law ρ̄_0 (the first draws of
        ``rng``; the order of the draws is part of the contract: same seed, same θ^0)."""

    @staticmethod
    @abstractmethod
    def reduced_coordinates(theta: np.ndarray) -> np.ndarray:
        """The PDE's variables of each particle: shape (N,) for one coordinate, else (N, C) in
        the order of the problem's ``particle_coords``."""

    @abstractmethod
    def data_law(self) -> DataLaw:
        """The law of the samples (x, y), for the compiled update."""

    # ------------------------------------------------------------------ the risk
    @abstractmethod
    def scales(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(τ_s, π_s): the data scales of the interaction U and their weights."""

    @abstractmethod
    def r_sharp(self) -> float:
        """R# = E y², the risk of the zero network."""

    @abstractmethod
    def potential(self, a: np.ndarray, w: np.ndarray, rad: np.ndarray,
                  tables: tuple[list[np.ndarray], list[np.ndarray]] | None) -> np.ndarray:
        """V(θ_i) for every particle, from the outer weights ``a``, the rows ``w`` and their
        radii ``rad``; ``tables`` = (α_s, diag_s) per data scale (the risk's Hermite tables
        ``α_s[k, i] = α_k(τ_s ρ_i)`` and diagonals E σ(τ_s ρ_i G)²) when the caller has them, for
        reuse, else None."""


def finite_d(cfg: Config) -> int:
    """``model.d`` as an int; particle SGD needs a finite input dimension."""
    d = cfg["model.d"]
    if math.isinf(d):
        raise ConfigError("particle SGD needs a finite input dimension; set model.d "
                          "(e.g. model.d = 40)")
    return int(d)


def particle_model(problem: str) -> type[ParticleModel]:
    """The :class:`ParticleModel` that the problem ``problem`` declares (registry lookup)."""
    from ..problems import problem_class

    model = getattr(problem_class(problem), "particle_model", None)
    if model is None:
        raise ConfigError(f"problem {problem!r} declares no particle model; particle SGD and "
                          "validation are not available for it")
    return model


# ---------------------------------------------------------------------- sampling helpers
def stratified_uniforms(rng: np.random.Generator, n: int) -> np.ndarray:
    """u_i = (π_i + v_i)/n: one uniform in each of the n strata [k/n, (k+1)/n), in random order."""
    return (rng.permutation(n) + rng.random(n)) / n


def directions(g: np.ndarray) -> np.ndarray:
    """Rows of ``g`` normalised to unit length (uniform directions for Gaussian rows)."""
    norm = np.sqrt(np.einsum("ij,ij->i", g, g))
    return g / np.where(norm > 0, norm, 1.0)[:, None]
