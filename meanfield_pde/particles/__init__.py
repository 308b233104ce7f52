"""Particle SGD of the d-dimensional two-layer network and its finite-N population risk.

The PDE of :mod:`meanfield_pde.runner.pde` is the N → ∞, ε → 0 limit of this simulation; the package
exists to validate it (MATH.md §1, §5).  The engine is generic; each problem declares its side
(initial law, trained parameters, data law, reduced coordinates, target terms of the risk) as a
:class:`~meanfield_pde.particles.model.ParticleModel`.

Modules, by the mathematics they hold:

* :mod:`.sgd` — the engine: :class:`ParticleSGD`, :class:`SGDState`, :class:`SGDResult`,
  :func:`run_sgd` (randomness, output times, checkpoints);
* :mod:`.sgd_kernel` — the compiled one-pass SGD update;
* :mod:`.model` — the :class:`ParticleModel` protocol, the data-law bundle, sampling helpers;
* :mod:`.risk` — :class:`PopulationRisk`, :func:`population_risk`;
* :mod:`.mehler` — pair sums by the Mehler series (series lengths, Horner rows);
* :mod:`.gaussian_integrals` — bivariate normal tail, hinge and piecewise-linear pairs, erf pair;
* :mod:`.activation_codes` — activations encoded for the kernels;
* :mod:`.memory` — refusing runs that do not fit in memory.
"""

from __future__ import annotations

from .risk import PopulationRisk, population_risk
from .sgd import ParticleSGD, SGDResult, SGDState, reduced_coordinates, run_sgd

__all__ = [
    "ParticleSGD",
    "PopulationRisk",
    "SGDResult",
    "SGDState",
    "population_risk",
    "reduced_coordinates",
    "run_sgd",
]
