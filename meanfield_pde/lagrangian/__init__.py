"""Lagrangian solvers of the noiseless flow (MATH.md §6): mass coordinates for the radial
problem, weighted characteristics for the single neuron, both integrated by an embedded
Runge–Kutta pair (:mod:`.ode`)."""
