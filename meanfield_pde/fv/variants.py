"""Serial and threaded variants of a kernel compiled from one Python source.

A kernel is written once with ``numba.prange`` over independent slabs (partial sums stored per
slab and added in slab order, so that no reduction changes its order).  :func:`serial_and_parallel`
compiles it twice: serially (``prange`` is ``range``) and with ``parallel=True``; the two are
bit-identical by construction.  ``swap`` names globals the threaded variant sees replaced (the
threaded variant of a callee), e.g. ``swap={"field3d": field3d_par}``.

The on-disk cache (the trap this module exists for): Numba files a cached kernel under the
qualified name and first line of its Python function, and keys the entries by signature, target
and the hashes of the bytecode and the closure variables — not by ``parallel``.  Two dispatchers
of one Python function would therefore overwrite, or worse load, each other's entries.  The
threaded variant is compiled from a copy of the function with the qualified name
``<name>_par`` (same code object, same source file), so the two live in separate cache files;
tests/test_kernel_cache.py checks that both load from the cache in a fresh process and that the
threaded one starts the thread pool.
"""

from __future__ import annotations

import types
from collections.abc import Callable

import numba

SUFFIX = "_par"


def _renamed(fn: Callable, globals_: dict) -> Callable:
    """A copy of ``fn`` (same code, defaults and closure) named ``fn.__name__ + SUFFIX``."""
    copy = types.FunctionType(fn.__code__, globals_, fn.__name__ + SUFFIX, fn.__defaults__,
                              fn.__closure__)
    copy.__qualname__ = fn.__qualname__ + SUFFIX
    copy.__module__ = fn.__module__
    copy.__doc__ = fn.__doc__
    return copy


def serial_and_parallel(fn: Callable, swap: dict | None = None, prange: bool = True) -> tuple:
    """(serial, threaded) cached dispatchers of the Python function ``fn`` (module doc).

    ``swap``: globals replaced in the threaded variant (looked up in a copy of the module's
    namespace taken now, so ``fn`` may only use names defined before this call).  ``prange``:
    ``fn`` has ``prange`` loops of its own (False for a driver whose threads are all in the
    swapped callees: it is then compiled without ``parallel=True``).
    """
    serial = numba.njit(cache=True)(fn)
    globals_ = fn.__globals__ if not swap else {**fn.__globals__, **swap}
    threaded = numba.njit(cache=True, parallel=prange)(_renamed(fn, globals_))
    return serial, threaded
