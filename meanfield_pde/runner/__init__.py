"""The runner: one time loop (:mod:`.loop`) driving a stepper from event to event, trackers
(:mod:`.trackers`) that act on the state between steps, and the runs built from them — PDE
(:mod:`.pde`), particle SGD (:mod:`.sgd`), the Gibbs fixed point (:mod:`.gibbs`) and
:mod:`.resume`.

This module imports nothing, so that :mod:`meanfield_pde.problems` can use :mod:`.loop` and
:mod:`.trackers` (which import nothing from ``problems`` or above) for their pilot runs.
"""
