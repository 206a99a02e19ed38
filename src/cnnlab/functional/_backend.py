"""The one switch for cnnlab's fast paths: which kernels run, and on how many threads.

Every operator with several methods (``conv(..., method=...)``, pooling, batch norm, ...) asks
this module whether the optional compiled kernels may be used.  The rule is:

- ``"auto"`` (the default): use Numba kernels where they are faster, if Numba is installed
  (``pip install cnnlab[fast]``); otherwise the pure NumPy paths.
- ``"numpy"``: never use Numba (the complete fallback; every op has a NumPy path).
- ``"numba"``: like ``"auto"`` but an error if Numba is missing.

The environment variable ``CNNLAB_BACKEND`` sets the starting value, and ``CNNLAB_DISABLE_NUMBA=1``
forces ``"numpy"`` whatever else is asked (CI runs the test suite both ways).  At run time use
:func:`set_backend`.  A ``method=`` argument on an op overrides the automatic choice for that
call only.

Threads: :func:`set_num_threads` sets the thread count of the BLAS (through threadpoolctl when it
is installed) and of Numba's ``prange`` loops together; ``CNNLAB_NUM_THREADS`` sets it at import.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterator
from typing import Any

BACKENDS = ("auto", "numpy", "numba")

_state: dict[str, Any] = {"backend": None, "numba": None, "threads": None, "limiter": None}
# Compiled kernels made on first use (one per kernel width, window, stride variant...), which no
# module attribute holds: what :func:`compiled_kernels` reports besides the modules' own.
_made_kernels: list[Any] = []
# Functions applied to each such kernel as it is made (see made_kernel).
made_kernel_hooks: list[Any] = []


def made_kernel(dispatcher: Any) -> Any:
    """Record a Numba kernel created on first use (for :func:`compiled_kernels`); returns it,
    passed through :data:`made_kernel_hooks` (:mod:`._shared_compile` adds one while it is on)."""
    _made_kernels.append(dispatcher)
    for hook in made_kernel_hooks:
        dispatcher = hook(dispatcher)
    return dispatcher


def kernels(*modules: Any) -> list[Any]:
    """The Numba kernels (dispatchers) defined so far: the module-level ones of ``modules`` and
    every kernel made on first use."""
    return [d for m in modules for d in vars(m).values() if hasattr(d, "signatures")] + _made_kernels


def compiled_kernels(*modules: Any) -> list[str]:
    """Names of the Numba kernels that have compiled code in this process (see :func:`kernels`)."""
    return sorted({d.py_func.__name__ for d in kernels(*modules) if d.signatures})


def _disabled_by_env() -> bool:
    return os.environ.get("CNNLAB_DISABLE_NUMBA", "").strip().lower() not in ("", "0", "false", "no")


def numba_available() -> bool:
    """Whether the ``numba`` package can be imported (and is not disabled by the environment)."""
    if _disabled_by_env():
        return False
    if _state["numba"] is None:
        with _quiet_openmp_threads():
            try:
                import numba
            except ImportError:
                _state["numba"] = False
            else:
                _state["numba"] = True
                # start the thread pool now, binding it to the OpenMP library loaded for it (below);
                # a pool that cannot start fails later, where a kernel needs it, as it did before
                with contextlib.suppress(Exception), _own_symbols_first():
                    numba.get_num_threads()
    return bool(_state["numba"])


@contextlib.contextmanager
def _quiet_openmp_threads() -> Iterator[None]:
    """Within the block, ask OpenMP (Numba's usual threading layer) not to spin after a parallel loop.

    By default GNU OpenMP's idle threads busy-wait for a while after each parallel region.  The
    BLAS has threads of its own, so on a machine with few cores a spinning kernel thread takes the
    core a matrix product needs next (and the reverse): a convnet training step on 2 cores ran
    1.6x slower.  ``GOMP_SPINCOUNT`` is read once, when an OpenMP library loads, which Numba's
    does inside this block; a value the user set (or ``OMP_WAIT_POLICY``) is left alone.  The
    variable is removed again at the end, so that a library loading its own OpenMP later (PyTorch)
    and child processes see the user's environment, not cnnlab's choice: left in place, it made
    PyTorch's small training steps (LeNet-5, MNIST-1D) 1.3-2x slower.

    The pool is started as soon as Numba is imported, because that is when its OpenMP calls are
    bound to a library.  A library that loaded its own OpenMP into the global namespace before
    that (PyTorch does, with its own copy of GNU OpenMP) would otherwise receive Numba's calls
    too: :func:`_own_symbols_first` keeps them on the library loaded here, so each keeps its own
    runtime whichever was imported first.
    """
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        yield
        return
    os.environ["GOMP_SPINCOUNT"] = "1000"
    try:
        yield
    finally:
        os.environ.pop("GOMP_SPINCOUNT", None)


@contextlib.contextmanager
def _own_symbols_first() -> Iterator[None]:
    """Within the block, a shared library loaded (Numba's OpenMP pool) binds its symbols to its own
    dependencies before those already loaded into the global namespace (``RTLD_DEEPBIND``; glibc
    only, elsewhere nothing changes).

    PyTorch loads its own GNU OpenMP into the global namespace.  Imported before cnnlab, it used to
    receive the calls of Numba's pool, whose idle threads then spun for milliseconds after every
    loop (set up as PyTorch wants them) and took the core the next matrix product needed: on 2
    cores a 14x14 conv forward took 16 ms instead of 7, forward+backward 33-40 instead of 18-21.
    Bound to the system's OpenMP, loaded inside :func:`_quiet_openmp_threads`, the pool keeps
    cnnlab's settings whichever library came first.
    """
    flag = getattr(os, "RTLD_DEEPBIND", 0)
    if not flag or not sys.platform.startswith("linux"):
        yield
        return
    previous = sys.getdlopenflags()
    sys.setdlopenflags(previous | flag)
    try:
        yield
    finally:
        sys.setdlopenflags(previous)


def start_threads() -> bool:
    """Import Numba and start its thread pool now, when the backend may use it; True if started.

    Everything starts by itself on the first op that needs it; calling this first moves the
    start-up cost (Numba's import and its threads) out of the first op, e.g. out of a timing.
    """
    return get_backend() != "numpy" and numba_available()


def get_backend() -> str:
    """The current backend: ``'auto'``, ``'numpy'`` or ``'numba'``."""
    if _state["backend"] is None:
        value = os.environ.get("CNNLAB_BACKEND", "auto").strip().lower() or "auto"
        _state["backend"] = value if value in BACKENDS else "auto"
    return "numpy" if _disabled_by_env() else _state["backend"]


def set_backend(name: str) -> str:
    """Choose the kernels every op uses; returns the previous backend.

    Parameters
    ----------
    name : {'auto', 'numpy', 'numba'}
        ``'auto'`` uses Numba when installed, ``'numpy'`` never does, ``'numba'`` requires it.

    Raises
    ------
    TypeError
        If ``name`` is not a string.
    ValueError
        If ``name`` is not one of the three, or is ``'numba'`` while Numba cannot be imported.

    Examples
    --------
    >>> previous = set_backend("numpy")
    >>> get_backend()
    'numpy'
    >>> _ = set_backend(previous)
    """
    if not isinstance(name, str):
        raise TypeError(f"set_backend: name must be one of {list(BACKENDS)}, got {name!r}")
    if name not in BACKENDS:
        raise ValueError(f"set_backend: name must be one of {list(BACKENDS)}, got {name!r}")
    if name == "numba" and not numba_available():
        raise ValueError(
            "set_backend: 'numba' needs the numba package (pip install 'cnnlab[fast]'), which is "
            "not importable here (or CNNLAB_DISABLE_NUMBA is set)"
        )
    previous = get_backend()
    _state["backend"] = name
    return previous


# Below this much work (elements, or multiply-adds) the 'auto' backend keeps to the NumPy path: the
# first call of a compiled kernel costs a second or more of compilation (once per machine, then it
# is read from the disk cache in milliseconds), and on tiny arrays NumPy is as fast anyway.  So the
# lecture's 3 x 3 example never waits for a compiler.  ``set_backend('numba')`` ignores it.
COMPILE_MIN_WORK = 1 << 15


@contextlib.contextmanager
def using(name: str) -> Iterator[None]:
    """Within the block, the backend ``name`` (see :func:`set_backend`); the previous one after it.

    Examples
    --------
    >>> with using("numpy"):
    ...     get_backend()
    'numpy'
    """
    previous = set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def use_numba(work: float | None = None) -> bool:
    """Whether ops should run their Numba kernels now, for a call doing ``work`` (None: any)."""
    backend = get_backend()
    if backend == "numpy" or not numba_available():
        return False
    return work is None or backend == "numba" or work >= COMPILE_MIN_WORK


def float_kernels_take(a: Any) -> bool:
    """Whether an op's compiled float kernels take the array ``a`` now: float32 or float64 (dtype
    characters ``'f'``, ``'d'``), and :func:`use_numba` for its size."""
    return a.dtype.char in "fd" and use_numba(a.size)


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in the BLAS and in the Numba kernels.

    Raises
    ------
    TypeError
        If ``n`` is not an int.
    ValueError
        If ``n`` < 1.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: n must be a positive int, got {n!r}")
    if n < 1:
        raise ValueError(f"set_num_threads: n must be a positive int, got {n}")
    _state["threads"] = n
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        pass
    else:
        _state["limiter"] = threadpool_limits(limits=n, user_api="blas")
    if numba_available():
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


def get_num_threads() -> int:
    """The thread count set by :func:`set_num_threads`, else the number of CPUs available."""
    if _state["threads"] is not None:
        return int(_state["threads"])
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# A matrix product below this many flops runs on one BLAS thread: waking a second thread costs
# more than it saves on small products, and on a busy machine it can cost milliseconds.  With the
# BLAS threads asleep between products (OPENBLAS_THREAD_TIMEOUT, see cnnlab/__init__.py) and
# Numba's pool on its own OpenMP runtime, products down to this size gain from a second thread: on
# 2 cores, A/B in one process, this value and PARALLEL_MIN_WORK below (from 5e7 and 2,000,000)
# took the LeNet-5 step 12.7-13.3 -> 11.0-11.9 ms and the convnet step 81-88 -> 74-75 ms, the
# MNIST-1D step unchanged.
SMALL_GEMM_FLOPS = 1e7
# A Numba kernel doing less work than this (values, or multiply-adds) runs on the calling thread.
PARALLEL_MIN_WORK = 500_000


def _blas_controllers() -> list[Any]:
    """threadpoolctl's controllers of the BLAS that NumPy calls (the one in NumPy's own folders when
    it can be told apart, e.g. not SciPy's separate copy), found once."""
    if _state.get("blas") is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _state["blas"] = []
        else:
            import numpy as np

            found = list(ThreadpoolController().select(user_api="blas").lib_controllers)
            home = os.path.dirname(os.path.dirname(os.path.abspath(np.__file__)))
            own = [c for c in found if os.path.abspath(str(c.filepath)).startswith(
                (os.path.join(home, "numpy.libs"), os.path.join(home, "numpy") + os.sep))]
            _state["blas"] = own or found
    return _state["blas"]


def matmul(a: Any, b: Any, out: Any = None) -> Any:
    """``a @ b`` (into ``out`` when given) on one BLAS thread when the product is small, else on
    all of them.

    Only floating products reach the BLAS (integer ones are NumPy's exact loops), so the gate
    applies to floats only.
    """
    import numpy as np

    flops = 2.0 * a.shape[-2] * a.shape[-1] * b.shape[-1] * max(1, int(math.prod(b.shape[:-2])))
    controllers = _blas_controllers() if flops < SMALL_GEMM_FLOPS and a.dtype.kind == "f" else []
    if not controllers:
        return np.matmul(a, b, out=out)
    previous = [c.num_threads for c in controllers]
    if all(p == 1 for p in previous):
        return np.matmul(a, b, out=out)
    for c in controllers:
        c.set_num_threads(1)
    try:
        return np.matmul(a, b, out=out)
    finally:
        for c, p in zip(controllers, previous, strict=True):
            c.set_num_threads(p)


def parallel_worth_it(work: int) -> bool:
    """Whether a Numba kernel doing ``work`` multiply-adds should use its threaded version."""
    return work >= PARALLEL_MIN_WORK and get_num_threads() > 1


@contextlib.contextmanager
def threads_for(work: int) -> Iterator[None]:
    """Within the block, Numba's parallel kernels run on the calling thread only when ``work`` is
    small (:func:`parallel_worth_it`): waking the pool would cost more than it saves."""
    if parallel_worth_it(work):
        yield
        return
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def _init_from_env() -> None:
    value = os.environ.get("CNNLAB_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) >= 1:
        set_num_threads(int(value))


_init_from_env()
