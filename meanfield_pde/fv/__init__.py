"""Numba kernels of the finite-volume schemes (flat arrays and scalars only).

``lowrank``     Ψ = V + Σ_k λ_k f_k m_k with moments m_k = Σ_i f_k(r_i) ρ_i h  (O(cells × rank))
``transport``   upwind flux with the positivity-preserving minmod reconstruction (Carrillo,
                Chertock, Huang, Commun. Comput. Phys. 17 (2015)), no-flux walls
``stepper1d``   SSP-RK3 with CFL-adaptive dt, landing exactly on stop times
``reference``   the same right-hand side in plain numpy (for tests)
``threads``     serial or threaded 3-D kernels, chosen online; passive OpenMP waiting by default
"""

from .threads import passive_wait_default

passive_wait_default()  # before Numba's first parallel region starts OpenMP (threads.py)
