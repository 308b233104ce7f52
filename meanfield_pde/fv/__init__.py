"""The numerical kernels (flat arrays and scalars only; nothing here imports a module above
``meanfield_pde.fv``: no configuration, problem, runner or I/O — tests/test_repo.py checks it).

``xi``          ξ(t) of the step-size schedule, from an integer kind and a flat parameter array
``lowrank``     Ψ = V + Σ_k λ_k f_k m_k with moments m_k = Σ_i f_k(r_i) ρ_i h  (O(cells × rank))
``transport``   upwind flux with the positivity-preserving minmod reconstruction (Carrillo,
                Chertock, Huang, Commun. Comput. Phys. 17 (2015)), no-flux walls
``stepper1d``   SSP-RK3 with CFL-adaptive dt, landing exactly on stop times
``stepper3d``   the same for the 3-D (a, s, r) transport, serial and prange variants
``driftdiffusion1d``, ``driftdiffusion3d``   Scharfetter–Gummel fluxes and semi-implicit steps
``gibbs``       the self-consistent Gibbs fixed point by Newton in moment space
``threads``     serial or threaded 3-D kernels, chosen online; passive OpenMP waiting by default
"""

from .threads import passive_wait_default

passive_wait_default()  # before Numba's first parallel region starts OpenMP (threads.py)
