"""The numerical kernels (flat arrays and scalars only; nothing here imports a module above
``meanfield_pde.fv``: no configuration, problem, runner or I/O — tests/test_repo.py checks it).

``bundles``     NamedTuple bundles of grid, kernel, noise and ξ tables that the kernels take
``xi``          ξ(t) of the step-size schedule, from an integer kind and a flat parameter array
``variants``    serial and threaded kernels compiled from one ``prange`` source (cached apart)
``rk``          the adaptive SSP-RK3 driver (CFL dt, stages, positivity, exact landing), once
``semi_implicit``  the frozen-interaction driver with the energy acceptance test, and the
                steady-state loop, once
``lowrank``     Ψ = V + Σ_k λ_k f_k m_k with moments m_k = Σ_i f_k(r_i) ρ_i h  (O(cells × rank))
``transport``   upwind flux with the positivity-preserving minmod reconstruction (Carrillo,
                Chertock, Huang, Commun. Comput. Phys. 17 (2015)), no-flux walls
``stepper1d``   the 1-D transport right-hand side stepped by ``rk``
``stepper3d``   the 3-D (a, s, r) transport: the potential φ (``field3d``) and the right-hand side
``driftdiffusion1d``, ``driftdiffusion3d``   Scharfetter–Gummel fluxes and semi-implicit steps
``splitstep3d``, ``energy3d``   the 3-D split line solves; the 3-D free energy and step balance
``gibbs``       the self-consistent Gibbs fixed point by Newton in moment space
``threads``     serial or threaded 3-D kernels, chosen online; passive OpenMP waiting by default
"""

from .threads import passive_wait_default

passive_wait_default()  # before Numba's first parallel region starts OpenMP (threads.py)
