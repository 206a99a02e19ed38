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
is installed) and of the compiled kernels (:func:`run_jobs`) together; ``CNNLAB_NUM_THREADS`` sets
it at import.
"""

from __future__ import annotations

import contextlib
import itertools
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


def _environ_lookup(name: str) -> Any:
    """A function returning the environment variable ``name`` (or None) as ``os.environ`` holds it
    now.  ``os.environ.get`` of a variable that is not set raises and catches a KeyError inside:
    0.8 us, and every op asks (through :func:`use_numba`) several times per call, 30 times in a
    LeNet-5 training step.  So the lookup goes to the mapping ``os.environ`` keeps its values in
    (its ``_data``, which every assignment to ``os.environ`` updates), 0.04 us, where CPython has
    one, and falls back to ``os.environ.get`` elsewhere."""
    data, encode, decode = (getattr(os.environ, a, None) for a in ("_data", "encodekey", "decodevalue"))
    if not isinstance(data, dict) or encode is None or decode is None:
        return lambda: os.environ.get(name)
    key = encode(name)

    def lookup() -> str | None:
        raw = data.get(key)
        return None if raw is None else decode(raw)
    return lookup


_disable_numba_env = _environ_lookup("CNNLAB_DISABLE_NUMBA")


def _disabled_by_env() -> bool:
    value = _disable_numba_env()
    return value is not None and value.strip().lower() not in ("", "0", "false", "no")


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
    """Import Numba and make the compiled kernels' thread pool (:func:`run_jobs`'; Numba's own pool,
    which the kernels no longer use, is started too, bound to its OpenMP library as described in
    :func:`_quiet_openmp_threads`), when the backend may use them; True if done.

    Everything starts by itself on the first op that needs it; calling this first moves the
    start-up cost (Numba's import and the threads) out of the first op, e.g. out of a timing.
    """
    started = get_backend() != "numpy" and numba_available()
    if started and kernel_threads() > 1:
        _team(kernel_threads() - 1)
    return started


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
# is read from the disk cache in milliseconds).  So the lecture's 3 x 3 example never waits for a
# compiler.  Above it the compiled kernels win even on small arrays: 4,096 keeps the MNIST-1D
# CNN's small layers (12,500-25,000) compiled, 5% off its training step (BENCHMARKS round 53).
# ``set_backend('numba')`` ignores it.
COMPILE_MIN_WORK = 1 << 12


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


# A Numba kernel doing less work than this (values, or multiply-adds) runs on the calling thread.
PARALLEL_MIN_WORK = 500_000

# A balanced run_jobs of less work than this (multiply-adds, or values) splits its jobs as a plain
# one does: each of its chunks is a trip through Python on its thread, and each trip can wait
# for the other thread's, while a call this small (0.3 ms on 2 cores for a convolution's
# multiply-adds) has little to even out.  Measured on 2 cores, LeNet-5's second layer's forward
# kernels (15.4 million multiply-adds), alternating: 243-270 us balanced, 216-228 us split; its
# training step 4.25 -> 4.16 ms (10th percentile of 400 steps each, alternating).
BALANCED_MIN_WORK = 3e7

# The smallest chunk of a balanced run_jobs, as a share of the call's jobs: at most about 1/0.03
# kernel calls, each 5-15 us of Python.
MIN_CHUNK_SHARE = 0.03


def _team(helpers: int) -> Any:
    """The team of helper threads that :func:`run_jobs` hands its jobs to (:mod:`._team`), made on
    first use, again for more helpers, and again in a process forked from the one that made it (a
    fork keeps no threads).  Its helpers watch for the next job only while compiled kernels may
    be used (the watch loop is compiled); otherwise they sleep between jobs."""
    team = _state.get("team")
    if team is None or team.pid != os.getpid() or team.helpers < helpers:
        from cnnlab.functional import _team as team_module

        if team is not None and team.pid == os.getpid():
            team.close()
        spin = team_module.SPIN_SECONDS if get_backend() != "numpy" and numba_available() else 0.0
        team = team_module.Team(helpers, spin)
        _state["team"] = team
    return team


def park_threads() -> None:
    """Send the kernels' helper threads to sleep now, if they are watching for work (see
    :mod:`._team`): before a matrix product on several BLAS threads, which need those cores."""
    team = _state.get("team")
    if team is not None and team.pid == os.getpid():
        team.park()


def wake_threads(work: float) -> None:
    """Wake the kernels' helper threads if they sleep and a call of ``work`` multiply-adds (or
    values) is coming that :func:`run_jobs` would share with them: called as an op starts, so that
    their waking overlaps the op's preparation (:meth:`._team.Team.wake`)."""
    team = _state.get("team")
    if team is not None and work >= PARALLEL_MIN_WORK and team.pid == os.getpid() and kernel_threads() > 1:
        team.wake()


def read_only(a: Any) -> Any:
    """A read-only view of the array ``a`` (``a`` itself when it is read-only already): Numba
    compiles a kernel once per argument type, and an array's type includes whether it is
    writeable, so the kernels' wrappers pass their inputs read-only (one compilation, 2-3 s,
    instead of one per mix of the callers' arrays)."""
    if not a.flags.writeable:
        return a
    view = a.view()
    view.flags.writeable = False
    return view


def fillable(a: Any) -> bool:
    """Whether the compiled fill writes ``a`` out (:func:`cnnlab.functional._numba_kernels.contiguous`):
    a float array of at least :data:`PARALLEL_MIN_WORK` values that is one value broadcast (every
    stride 0: the upstream gradient of a ``sum`` or a ``mean``), with the compiled kernels allowed.
    (NumPy's copy of such a view runs a strided loop on one core: the 2.4 MB output of N32 C16
    24x24 -> 32 took it 0.15-0.6 ms in a training-style backward.)"""
    import numpy as np

    return (isinstance(a, np.ndarray) and a.ndim > 0 and a.size >= PARALLEL_MIN_WORK and not any(a.strides)
            and a.dtype.kind == "f" and use_numba(a.size))


# Values from which :func:`sum_all` adds the two halves of an array on two threads.
PARALLEL_SUM_MIN = 1 << 19


def sum_all(a: Any) -> Any:
    """``np.sum(a)``, bit for bit: a C-contiguous float32 or float64 array of at least
    :data:`PARALLEL_SUM_MIN` values is summed as two halves, one on a helper thread.

    NumPy sums a contiguous float array pairwise, and its first step splits ``n`` values at
    ``h = n // 2`` rounded down to a multiple of 8, then adds the two halves' sums; the halves here
    are those two, each summed by NumPy (whose reduction runs without the GIL), so the result is
    the same value.  One core reading the output of a convolution (8 MB, just written by both
    cores) took 0.7 ms longer for the N64 C3 32x32 layer's ``y.sum()`` than the two halves did.
    Other arrays, and one thread (:func:`get_num_threads`), take ``np.sum``.
    """
    import numpy as np

    a = np.asarray(a)
    if (a.size < PARALLEL_SUM_MIN or a.dtype not in (np.float32, np.float64) or not a.flags.c_contiguous
            or get_num_threads() < 2):
        return np.sum(a)
    flat = a.reshape(-1)
    half = flat.size // 2
    half -= half % 8
    halves = _team(1).run([(_reduce, (flat[:half],)), (_reduce, (flat[half:],))])
    if halves is None:  # (the helper is busy: another thread's call)
        return np.sum(a)
    return halves[0] + halves[1]


def _reduce(part: Any) -> Any:
    """NumPy's sum of the contiguous 1-d ``part`` (a half of :func:`sum_all`)."""
    import numpy as np

    return np.add.reduce(part)


def job_kernel(fn: Any = None, **options: Any) -> Any:
    """``numba.njit`` for a kernel that :func:`run_jobs` runs (``@job_kernel`` or
    ``@job_kernel(fastmath=...)``): cached on disk, without the GIL, and compiled with the two
    flags Numba gives the body of a ``prange`` loop, which the kernels had before (the third
    thing such a body has, an unsigned loop index, is each kernel's ``range(np.uint64(first_job),
    np.uint64(last_job))``: Numba checks a signed index for negative values, and that check kept
    a flat loop from vectorising, 0.88 against 0.15 ms for ReLU of 1e6 values):

    - no array argument aliases another (LLVM's ``noalias``), so loops that read one array and
      write another vectorise without run-time overlap checks.  Without it the 2x2 max-pooling
      kernel ran 4x slower (6.7 against 1.6 ms on one thread); the flag reaches the loops only
      through arguments, so the kernels take the flat views they index (a ``reshape`` inside the
      kernel hides where the pointer came from).  Every caller passes distinct arrays for its
      outputs and its inputs (scratch buffers included).
    - ``error_model="numpy"``: an integer division by zero is not checked (the kernels divide by
      sizes that are never zero).
    """
    import numba

    from . import _kernel_cache

    _kernel_cache.stamp_kernel_caches()
    options = {"cache": True, "nogil": True, "error_model": "numpy",
               "pipeline_class": _kernel_cache.no_alias_compiler(),
               **options}
    if fn is None:
        return lambda f: numba.njit(**options)(f)
    return numba.njit(**options)(fn)


def kernel_threads() -> int:
    """The threads :func:`run_jobs` may use: :func:`get_num_threads`, at most as many as the
    kernels have scratch rows for (``numba.config.NUMBA_NUM_THREADS``)."""
    import numba

    return min(get_num_threads(), int(numba.config.NUMBA_NUM_THREADS))


# The work (see :func:`run_jobs`) from which a call's helpers wait the longer grace of
# :data:`._team.LONG_GRACE_SECONDS` before they take the GIL for their share: a few hundred
# microseconds a thread at least, where 6 us more of waiting costs under 2%.
LONG_WORK = 20_000_000


def _guided_bounds(jobs: int, threads: int) -> list[int]:
    """Where the chunks of a balanced :func:`run_jobs` start (and, last, ``jobs``): each chunk
    a ``2 * threads``-th of the jobs not yet given out, down to :data:`MIN_CHUNK_SHARE` of all,
    so a thread slowed down by the machine's other tenants takes fewer chunks than the rest."""
    bounds, first = [0], 0
    smallest = max(1, math.ceil(jobs * MIN_CHUNK_SHARE))
    while first < jobs:
        first = min(jobs, first + max(smallest, math.ceil((jobs - first) / (2 * threads))))
        bounds.append(first)
    return bounds


def run_jobs(kernel: Any, jobs: int, *args: Any, work: float, min_work: float = PARALLEL_MIN_WORK,
             balanced: bool = False, tail: int = 0) -> None:
    """Run the compiled ``kernel`` over the jobs ``0 .. jobs-1`` on up to :func:`get_num_threads`
    threads: thread ``t`` calls ``kernel(*args, first, last, t)`` for its run of consecutive jobs
    ``first .. last-1`` (the runs are as equal as they can be, in order; ``t`` picks a scratch
    buffer of that thread).  The calling thread runs the first run itself.

    The kernels are plain ``nogil`` Numba functions, not ``parallel=True`` ones with ``prange``:
    they run the same loops, but Numba's parallel lowering cost 2-3 s of compilation per kernel
    (``native_parfor_lowering``), three times the rest of it, and cold starts are mostly
    compilation.  When ``work`` (the values, or multiply-adds, of the whole call) is below
    ``min_work`` (:data:`PARALLEL_MIN_WORK` unless a kernel has its own), or on one thread,
    everything runs on the calling thread: handing jobs to a helper costs a few microseconds while
    it is still watching for work after its last job, 25-60 us once it has gone to sleep
    (:mod:`._team`), more than a small call saves.  A call made while the team is busy (from
    another thread, or from inside a job) runs on its calling thread alone.
    With ``balanced``, for kernels whose jobs write what they write whichever thread runs them
    (no partial sums per thread), the jobs are handed out in shrinking chunks
    (:func:`_guided_bounds`) to whichever thread is free: on the shared 2-core machine one
    thread's half of a 5 ms kernel often ended 0.5-2.5 ms after the other's.  Below
    :data:`BALANCED_MIN_WORK` they are split as without it.
    With ``tail``, for kernels with partial sums per thread that must not depend on which thread
    ran a job, the last ``tail`` jobs are handed out one at a time to whichever thread is free,
    once it has run its share of the others (the kernel keeps those jobs' sums apart, by job).
    An error in any run is raised here once every run has ended (none is left writing).
    From :data:`LONG_WORK` on, the helpers wait the longer grace of a long job before they take
    the GIL for their share (:data:`._team.LONG_GRACE_SECONDS`).
    """
    # (the work first: the thread count reads the CPU affinity, a system call of 1 us)
    threads = 1 if work < min_work else min(int(jobs), kernel_threads())
    if threads <= 1:
        kernel(*args, 0, int(jobs), 0)
        return
    if balanced and work >= BALANCED_MIN_WORK:
        bounds = _guided_bounds(int(jobs), threads)
        taken = itertools.count()

        def runner(*call: Any) -> None:  # (call: args, and the thread's index last)
            chunk = next(taken)  # (atomic: a count's next() runs under the GIL)
            while chunk < len(bounds) - 1:
                kernel(*call[:-1], bounds[chunk], bounds[chunk + 1], call[-1])
                chunk = next(taken)
        body, per_thread = runner, [(t,) for t in range(threads)]
    elif tail:
        head = int(jobs) - tail
        bounds = [head * t // threads for t in range(threads + 1)]
        taken = itertools.count(head)

        def shared_tail(*call: Any) -> None:  # (call: args, the thread's share of the head, its index)
            first, last, thread = call[-3:]
            if last > first:
                kernel(*call[:-3], first, last, thread)
            job = next(taken)  # (atomic: a count's next() runs under the GIL)
            while job < jobs:
                kernel(*call[:-3], job, job + 1, thread)
                job = next(taken)
        body, per_thread = shared_tail, [(bounds[t], bounds[t + 1], t) for t in range(threads)]
    else:
        bounds = [jobs * t // threads for t in range(threads + 1)]
        body, per_thread = kernel, [(bounds[t], bounds[t + 1], t) for t in range(threads)]
    if _team(threads - 1).run([(body, (*args, *per_thread[t])) for t in range(threads)],
                              long=work >= LONG_WORK) is None:
        kernel(*args, 0, int(jobs), 0)  # (the team is busy: another thread's call, or one inside a job)


def _init_from_env() -> None:
    value = os.environ.get("CNNLAB_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) >= 1:
        set_num_threads(int(value))


_init_from_env()
