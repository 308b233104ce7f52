"""The compiled one-pass SGD update of the two-layer network (MATH.md §1).

ŷ(x; θ) = (1/N) Σ_i a_i σ(⟨w_i, x⟩).  Per step k, with s_k = ε ξ(t_k), t_k = k B ε and B fresh
samples (x_b, y_b) (their law: :class:`~meanfield_pde.particles.model.DataLaw`):

    θ_i^{k+1} = (1 − 2λ B s_k) θ_i^k + 2 s_k Σ_b (y_b − ŷ(x_b; θ^k)) ∇_θ [a_i σ(⟨w_i, x_b⟩)]
                + sqrt(4 B s_k / β) g_i^k,

∇_w = a σ'(⟨w, x⟩) x (old a; σ' at a kink is the mean of the one-sided slopes) and, when the
outer weight is trained, ∇_a = σ(⟨w, x⟩).  One step consumes a row of standard normals:
B blocks ``[u_b, g_b1, …, g_bd]`` (the sample), then, if noisy, the noise as a (D, N) array
(coordinate-major: a first when trained, then w_1 … w_d).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

from ..fv.xi import xi_at
from .activation_codes import act_vd
from .model import LABEL_SIGN_SCALES, DataLaw


class StepRule(NamedTuple):
    """The step: mini-batch ``batch`` B, ``eps`` ε, the schedule ξ (``sched_kind``,
    ``sched_params`` of :func:`~meanfield_pde.fv.xi.xi_at`), the decay ``lam`` λ and
    ``noise_coef`` = sqrt(4/β) (0 if noiseless)."""

    batch: int
    eps: float
    sched_kind: int
    sched_params: np.ndarray
    lam: float
    noise_coef: float


class Network(NamedTuple):
    """The activation (``act_code``, ``act_p``) and whether the outer weight a is trained."""

    act_code: int
    act_p: np.ndarray
    train_outer_weight: bool


class StepWork(NamedTuple):
    """Work arrays: ``z, sv, dv`` (N,), ``xb`` (d,), ``ga`` (N,), ``gwt`` (d, N) (batch > 1)."""

    z: np.ndarray
    sv: np.ndarray
    dv: np.ndarray
    xb: np.ndarray
    ga: np.ndarray
    gwt: np.ndarray


def step_work(n: int, d: int, batch: int) -> StepWork:
    """Fresh work arrays for N neurons in dimension d."""
    return StepWork(np.empty(n), np.empty(n), np.empty(n), np.empty(d), np.empty(n),
                    np.empty((d, n) if batch > 1 else (1, 1)))


@numba.njit(cache=True, inline="always")
def _sample(row: np.ndarray, b: int, kind: int, spread: float, target_code: int,
            target_p: np.ndarray, noise_std: float, xb: np.ndarray) -> float:
    """x_b into ``xb`` and the label y_b, from the block ``[u_b, g_b1, …, g_bd]`` of ``row``
    (the fields of :class:`~meanfield_pde.particles.model.DataLaw`)."""
    d = xb.size
    per = d + 1
    u = row[b * per]
    if kind == LABEL_SIGN_SCALES:
        y = 1.0 if u >= 0.0 else -1.0
        tau = 1.0 + spread if u >= 0.0 else 1.0 - spread
        for q in range(d):
            xb[q] = tau * row[b * per + 1 + q]
    else:
        for q in range(d):
            xb[q] = row[b * per + 1 + q]
        y = act_vd(target_code, target_p, xb[0])[0] + noise_std * u
    return y


@numba.njit(cache=True, inline="always")
def _gradient_factors(a: np.ndarray, wt: np.ndarray, xb: np.ndarray, two_s: float, y: float,
                      act_code: int, act_p: np.ndarray, z: np.ndarray, sv: np.ndarray,
                      dv: np.ndarray) -> None:
    """For the sample (x, y) = (``xb``, ``y``): e = 2s (y − ŷ), then ``dv[i]`` =
    e a_i σ'(⟨w_i, x⟩) (the coefficient of x in the w-gradient, old a) and ``sv[i]`` =
    e σ(⟨w_i, x⟩) (the a-gradient)."""
    d, n = wt.shape
    # pre-activations <w_i, x> for all i, then the network output
    z[:] = 0.0
    for q in range(d):
        xq = xb[q]
        for i in range(n):
            z[i] += wt[q, i] * xq
    yhat = 0.0
    for i in range(n):
        v_, d_ = act_vd(act_code, act_p, z[i])
        sv[i] = v_
        dv[i] = d_
        yhat += a[i] * v_
    e2s = two_s * (y - yhat * (1.0 / n))
    for i in range(n):
        dv[i] *= e2s * a[i]
        sv[i] *= e2s


@numba.njit(cache=True, inline="always")
def _step_outer_weight(a: np.ndarray, grad: np.ndarray, row: np.ndarray, noff: int, decay: float,
                       amp: float) -> None:
    """a' = decay a + gradient (+ amp × noise, the first N noise normals ``row[noff:]``)."""
    for i in range(a.size):
        a[i] = decay * a[i] + grad[i]
        if amp > 0.0:
            a[i] += amp * row[noff + i]


@numba.njit(cache=True, inline="always")
def _apply_sample(wt: np.ndarray, row: np.ndarray, noff: int, decay: float, amp: float,
                  train_a: bool, dv: np.ndarray, xb: np.ndarray) -> None:
    """B = 1: w' = decay w + gradient (+ amp × noise) directly; the step's noise normals are
    ``row[noff:]`` (coordinate-major, after a's row when a is trained)."""
    d, n = wt.shape
    for q in range(d):
        xq = xb[q]
        if amp > 0.0:
            nq = noff + (q + 1 if train_a else q) * n
            for i in range(n):
                wt[q, i] = decay * wt[q, i] + dv[i] * xq + amp * row[nq + i]
        elif decay != 1.0:
            for i in range(n):
                wt[q, i] = decay * wt[q, i] + dv[i] * xq
        else:
            for i in range(n):
                wt[q, i] += dv[i] * xq


@numba.njit(cache=True, inline="always")
def _accumulate(train_a: bool, sv: np.ndarray, dv: np.ndarray, xb: np.ndarray, ga: np.ndarray,
                gwt: np.ndarray) -> None:
    """B > 1: add the sample's gradient to ``ga``, ``gwt``."""
    d, n = gwt.shape
    if train_a:
        for i in range(n):
            ga[i] += sv[i]
    for q in range(d):
        xq = xb[q]
        for i in range(n):
            gwt[q, i] += dv[i] * xq


@numba.njit(cache=True, inline="always")
def _apply_batch(wt: np.ndarray, row: np.ndarray, noff: int, decay: float, amp: float,
                 train_a: bool, gwt: np.ndarray) -> None:
    """B > 1: w' = decay w + the summed gradient (+ amp × noise)."""
    d, n = wt.shape
    for q in range(d):
        nq = noff + (q + 1 if train_a else q) * n
        for i in range(n):
            wt[q, i] = decay * wt[q, i] + gwt[q, i]
            if amp > 0.0:
                wt[q, i] += amp * row[nq + i]


@numba.njit(cache=True)
def _sgd_block(a: np.ndarray, wt: np.ndarray, draws: np.ndarray, step0: int, rule: StepRule,
               net: Network, law: DataLaw, w: StepWork) -> None:
    """Advance ``draws.shape[0]`` steps in place (the update of the module docstring).

    ``a`` (N,) outer weights (all 1 and untouched unless trained); ``wt`` (d, N) the first-layer
    weights, transposed so that ⟨w_i, x⟩ for all i and the update are contiguous loops over i;
    ``draws[k]`` the standard normals of step ``step0 + k``.  The bundles are unpacked once here
    (the helpers are inlined and take plain arrays: no reference counting per sample).
    """
    d = wt.shape[0]
    batch, eps, sched_kind, sched_params, lam, noise_coef = rule
    act_code, act_p, train_a = net
    kind, spread, target_code, target_p, noise_std = law
    z, sv, dv, xb, ga, gwt = w
    noff = batch * (d + 1)
    for k in range(draws.shape[0]):
        row = draws[k]
        t = float(step0 + k) * batch * eps
        s = eps * xi_at(sched_kind, sched_params, t)
        decay = 1.0 - 2.0 * lam * batch * s
        amp = noise_coef * math.sqrt(batch * s)
        if batch > 1:
            ga[:] = 0.0
            gwt[:, :] = 0.0
        for b in range(batch):
            y = _sample(row, b, kind, spread, target_code, target_p, noise_std, xb)
            _gradient_factors(a, wt, xb, 2.0 * s, y, act_code, act_p, z, sv, dv)
            if batch == 1:  # apply directly: theta' = decay theta + grad (+ noise)
                if train_a:
                    _step_outer_weight(a, sv, row, noff, decay, amp)
                _apply_sample(wt, row, noff, decay, amp, train_a, dv, xb)
            else:
                _accumulate(train_a, sv, dv, xb, ga, gwt)
        if batch > 1:
            if train_a:
                _step_outer_weight(a, ga, row, noff, decay, amp)
            _apply_batch(wt, row, noff, decay, amp, train_a, gwt)
