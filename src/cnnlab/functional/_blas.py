"""Matrix products: small ones on one BLAS thread, large ones split between cnnlab's own threads.

Every float matrix product of the library goes through :func:`matmul`:

- A product of fewer than :data:`SMALL_GEMM_FLOPS` runs on one BLAS thread: waking a second
  thread costs more than it saves.  OpenBLAS runs the smallest of them (:data:`BLAS_ONE_THREAD_MNK`)
  on the calling thread by itself, and those go to NumPy as they are.
- A larger one is split (:func:`products`): a stack of products (``np.matmul`` of 3-d arrays) is
  handed out product by product, and a single product is cut into as many parts as there are
  threads, along its longer side.  The calling thread and the helper threads of :mod:`._team`
  take the parts, each one call of the BLAS's own ``cblas_?gemm`` through ``ctypes`` (which
  releases the GIL during the call) with the BLAS on one thread.
- Where the split does not apply (see :func:`products`), NumPy multiplies on all of the BLAS's
  threads, with the team's helpers sent to sleep first (they would take the cores those threads
  need).

Why not NumPy's own threads.  ``np.matmul`` of a stack calls the BLAS once per matrix, one after
the other, each call on all of the BLAS's threads, and it holds the GIL while it does (two Python
threads, each multiplying half a stack on one BLAS thread, took as long as one alone).  The 1x1
layer's ``W @ x[b]`` for each sample (12.8 MFLOP each, N64 C64 28x28 -> 128) then starts and stops
the BLAS's threads 64 times: its forward product took 6.3-6.5 ms, split here 5.1-5.4 ms (2
cores).  And OpenBLAS's threads, once woken, keep their cores for a while after each product
unless ``OPENBLAS_THREAD_TIMEOUT`` was set before NumPy loaded (cnnlab/__init__.py sets it only
when it is imported first): a LeNet-5 step in a script that imported NumPy first took 9-28 ms
(three fresh processes; 3.8-4.7 ms with cnnlab imported first), and 4.5-5.9 ms with the products
split here, where the BLAS's own threads never run.

Bits.  The BLAS called is the one NumPy calls, with the routine and arguments NumPy passes for
the same matrices, so each product of a stack has the bits ``np.matmul`` gives it.  A single
product cut into parts has, part by part, the bits ``np.matmul`` gives that part; the BLAS may
take other kernels for a part than for the whole (OpenBLAS does for small ones), so the last
bits can differ from one unsplit product's, and depend on the thread count, as they do with the
BLAS's own threads.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import math
import os
import threading
from typing import Any

import numpy as np

from cnnlab.functional import _backend

# A matrix product below this many flops runs on one BLAS thread: waking a second thread costs
# more than it saves on small products, and on a busy machine it can cost milliseconds.  With the
# BLAS threads asleep between products (OPENBLAS_THREAD_TIMEOUT, see cnnlab/__init__.py) and
# Numba's pool on its own OpenMP runtime, products down to this size gain from a second thread: on
# 2 cores, A/B in one process, this value and PARALLEL_MIN_WORK (from 5e7 and 2,000,000) took the
# LeNet-5 step 12.7-13.3 -> 11.0-11.9 ms and the convnet step 81-88 -> 74-75 ms, the MNIST-1D step
# unchanged.
SMALL_GEMM_FLOPS = 1e7
# A product (``np.matmul`` calls ``?gemm``) of at most this many multiply-adds ``m*n*k`` OpenBLAS
# runs on the calling thread by itself: its gemm interface takes one thread up to
# ``SMP_THRESHOLD_MIN`` (65,536) times ``GEMM_MULTITHREAD_THRESHOLD`` (4, its default).  Those products
# skip setting the thread count to 1 and back (2 ctypes calls and a lock, 4-5 us against 2.1-2.7
# for a 64 x 84 by 84 x 10 product, LeNet-5's last layer; a MNIST-1D step has 4 such products, a
# LeNet-5 step 4).  Checked on NumPy's OpenBLAS 0.3.31 by the CPU time of its other threads
# (/proc): none for 20,000 products of 53,760 to 921,600 multiply-adds, 112 ticks for 3,072,000.
BLAS_ONE_THREAD_MNK = 65536 * 4
# A stack of products is split product by product only if each has at least this many flops: each
# BLAS call costs 2-3 us of Python and ctypes, against 10 us for a product of this size.  Smaller
# products of a stack run on one BLAS thread, one after the other (NumPy's loop).
MIN_PRODUCT_FLOPS = 2e6
# A single product is cut into parts of a multiple of this many rows (or columns): the BLAS's
# register blocks are 16 float32 values wide on AVX-512.
PART_MULTIPLE = 16

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_state: dict[str, Any] = {}


def _controllers() -> list[Any]:
    """threadpoolctl's controllers of the BLAS that NumPy calls (the one in NumPy's own folders when
    it can be told apart, e.g. not SciPy's separate copy), found once."""
    if _state.get("controllers") is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _state["controllers"] = []
        else:
            found = list(ThreadpoolController().select(user_api="blas").lib_controllers)
            home = os.path.dirname(os.path.dirname(os.path.abspath(np.__file__)))
            own = [c for c in found if os.path.abspath(str(c.filepath)).startswith(
                (os.path.join(home, "numpy.libs"), os.path.join(home, "numpy") + os.sep))]
            _state["controllers"] = own or found
    return _state["controllers"]


def _thread_calls() -> list[tuple[Any, Any]]:
    """For each of :func:`_controllers`, its BLAS's own functions that get and set the thread
    count (OpenBLAS's, called through ctypes: 0.3 us, against 2-3 us through threadpoolctl's
    methods, which look the symbol up on every call; a small product makes three such calls), or
    the controller's methods for other BLAS libraries; found once."""
    if _state.get("thread_calls") is None:
        calls = []
        for c in _controllers():
            get = set_ = None
            if getattr(c, "internal_api", None) == "openblas" and hasattr(c, "_get_symbol"):
                with contextlib.suppress(Exception):
                    get, set_ = c._get_symbol("openblas_get_num_threads"), c._get_symbol("openblas_set_num_threads")
            if get is None or set_ is None:
                get, set_ = (lambda c=c: c.num_threads), c.set_num_threads
            calls.append((get, set_))
        _state["thread_calls"] = calls
    return _state["thread_calls"]


def _gemm_routines() -> dict[str, Any]:
    """``{'f': cblas_sgemm, 'd': cblas_dgemm}`` of the BLAS that NumPy calls, as ``ctypes``
    functions (found once; empty where they cannot be found)."""
    if "gemm" in _state:
        return _state["gemm"]
    routines: dict[str, Any] = {}
    controllers = _controllers()
    if len(controllers) == 1:  # (NumPy's own BLAS, told apart from any other loaded)
        try:
            lib = ctypes.CDLL(str(controllers[0].filepath))
        except OSError:
            lib = None
        for char, name, real in (("f", "sgemm", ctypes.c_float), ("d", "dgemm", ctypes.c_double)):
            routine = _symbol(lib, name, real) if lib is not None else None
            if routine is not None:
                routines[char] = routine
    _state["gemm"] = routines
    return routines


def _symbol(lib: Any, name: str, real: Any) -> Any:
    """``cblas_<name>`` of ``lib`` under the names OpenBLAS builds give it (``scipy_`` prefix of
    NumPy's wheels, ``64_`` suffix of 64-bit integer builds), its argument types set; or None."""
    for prefix in ("scipy_", ""):
        for suffix in ("64_", "_64", ""):
            routine = getattr(lib, f"{prefix}cblas_{name}{suffix}", None)
            if routine is None:
                continue
            integer = ctypes.c_int64 if suffix else ctypes.c_int
            enum, pointer = ctypes.c_int, ctypes.c_void_p
            routine.argtypes = [enum, enum, enum, integer, integer, integer, real, pointer, integer, pointer,
                                integer, real, pointer, integer]
            routine.restype = None
            routine.largest = 2 ** 63 - 1 if suffix else 2 ** 31 - 1  # (its integers' range)
            return routine
    return None


def _layout(shape: tuple[int, int], strides: tuple[int, int], itemsize: int) -> tuple[int, int] | None:
    """``(transpose flag, leading dimension)`` of a matrix with these shape and byte strides as a
    row-major CBLAS operand (NumPy's test: its rows, or else its columns, contiguous and apart by
    at least their length); None if neither holds."""
    rows, cols = shape
    s0, s1 = strides
    if s1 == itemsize and s0 % itemsize == 0 and s0 >= max(1, cols) * itemsize:
        return _NO_TRANS, s0 // itemsize
    if s0 == itemsize and s1 % itemsize == 0 and s1 >= max(1, rows) * itemsize:
        return _TRANS, s1 // itemsize
    return None


def _fits(routine: Any, *sizes: int) -> bool:
    """Whether every size and leading dimension passed to ``routine`` is within its integers'
    range (32-bit in BLAS builds without the ``64_`` suffix); NumPy's own loop takes larger ones."""
    return max(sizes) <= routine.largest


def _offsets(a: np.ndarray, batch: tuple[int, ...]) -> list[int]:
    """The address of each matrix of ``a`` broadcast to the stack shape ``batch``, in C order."""
    lead = a.ndim - 2
    strides = [0] * (len(batch) - lead) + [s if d != 1 else 0 for s, d in zip(a.strides[:lead], a.shape[:lead],
                                                                           strict=True)]
    if not batch:
        return [a.ctypes.data]
    index = np.indices(batch, dtype=np.int64).reshape(len(batch), -1)
    return (a.ctypes.data + (np.asarray(strides, dtype=np.int64)[:, None] * index).sum(axis=0)).tolist()


def _cuts(size: int, parts: int) -> list[int]:
    """Where at most ``parts`` near-equal parts of ``size`` rows start (and ``size`` last), at
    multiples of :data:`PART_MULTIPLE`; a last part shorter than that joins the one before (a part
    of one row would be NumPy's product of a row, another routine)."""
    step = -(-size // parts)
    step = -(-step // PART_MULTIPLE) * PART_MULTIPLE
    cuts = [*range(0, size, step), size]
    if len(cuts) > 2 and cuts[-1] - cuts[-2] < PART_MULTIPLE:
        del cuts[-2]
    return cuts


def _numpy_gemm(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``np.matmul`` hands these matrices to ``?gemm``: more than one row and one column,
    operands apart (NumPy multiplies a row or a column by a matrix with ``gemv``, and a matrix by
    its own transpose with ``syrk``)."""
    return a.shape[-2] > 1 and b.shape[-1] > 1 and not np.may_share_memory(a, b)


def _blas_operands(a: np.ndarray, b: np.ndarray) -> tuple[Any, tuple[int, int], tuple[int, int]] | None:
    """``(routine, layout of a's matrices, layout of b's)`` where the BLAS can take the matrices of
    ``a`` and ``b`` as NumPy would hand them to ``cblas_?gemm``; None where it cannot: operands not
    both float32 or both float64, shapes that do not chain, a matrix whose rows or columns are not
    contiguous, one-row or one-column products, operands that share memory or are not aligned,
    sizes past the routine's integers, no routine found."""
    if a.ndim < 2 or b.ndim < 2 or a.dtype != b.dtype or a.dtype.char not in "fd":
        return None
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    # (the products NumPy gives another routine keep their bits there)
    if b.shape[-2] != k or not (a.flags.aligned and b.flags.aligned) or not _numpy_gemm(a, b):
        return None
    routine = _gemm_routines().get(a.dtype.char)
    layout_a = _layout(a.shape[-2:], a.strides[-2:], a.itemsize)
    layout_b = _layout(b.shape[-2:], b.strides[-2:], b.itemsize)
    if routine is None or layout_a is None or layout_b is None or not _fits(routine, m, n, k, layout_a[1],
                                                                             layout_b[1]):
        return None
    return routine, layout_a, layout_b


def products(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray | None:
    """``np.matmul(a, b, out=out)``, split between the calling thread and the team's helpers (a
    stack product by product; a single product, or a stack of fewer products than threads, cut
    into parts along the longer side of each), each part one BLAS call on one thread (so each
    part has the bits of NumPy's product of that part with the BLAS on one thread: a product the
    BLAS threads itself can round otherwise, as OpenBLAS's Haswell kernels do); None
    (nothing done) where this does not apply: operands not both float32 or both float64, a matrix
    whose rows or columns are not contiguous, one-row or one-column products, operands that share
    memory, ``out`` not a C-contiguous array of the result's shape and dtype apart from the
    operands, a stack's products under :data:`MIN_PRODUCT_FLOPS`, nothing to split, one thread, no
    BLAS found, or the team busy."""
    found = _blas_operands(a, b)
    if found is None:
        return None
    routine, layout_a, layout_b = found
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    try:
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        return None
    count = math.prod(batch)
    threads = _backend.get_num_threads()
    if count == 0 or threads < 2 or (count > 1 and 2.0 * m * k * n < MIN_PRODUCT_FLOPS):
        return None
    rows = m >= n  # (a single product is cut along its longer side)
    cuts = _cuts(m if rows else n, -(-threads // count)) if count < threads else [0, m if rows else n]
    if count * (len(cuts) - 1) < 2:
        return None
    if out is None:
        out = np.empty((*batch, m, n), dtype=a.dtype)
    elif (out.shape != (*batch, m, n) or out.dtype != a.dtype or not out.flags.c_contiguous
          or np.may_share_memory(out, a) or np.may_share_memory(out, b)):
        return None
    jobs = []  # (rows, columns, address of A's part, of B's, of C's)
    step_a, step_b, size = a.strides[-2], b.strides[-1], out.itemsize
    for pa, pb, pc in zip(_offsets(a, batch), _offsets(b, batch), _offsets(out, batch), strict=True):
        for first, last in itertools.pairwise(cuts):
            if rows:
                jobs.append((last - first, n, pa + first * step_a, pb, pc + first * n * size))
            else:
                jobs.append((m, last - first, pa, pb + first * step_b, pc + first * size))
    args = (routine, layout_a, layout_b, k, n, jobs, itertools.count())
    done = _run_split(threads, [(_multiply, args)] * min(threads, len(jobs)))
    return None if done is None else out


def _multiply(routine: Any, layout_a: tuple[int, int], layout_b: tuple[int, int], k: int, ldc: int,
              jobs: list[tuple[int, int, int, int, int]], taken: Any) -> None:
    """Take the next job (``next(taken)``, atomic under the GIL) and compute it, until none is
    left: ``C = op(A) @ op(B)`` for the job's part, one call of ``routine`` (``cblas_?gemm``)."""
    (ta, lda), (tb, ldb) = layout_a, layout_b
    i = next(taken)
    while i < len(jobs):
        rows, cols, pa, pb, pc = jobs[i]
        routine(_ROW_MAJOR, ta, tb, rows, cols, k, 1.0, pa, lda, pb, ldb, 0.0, pc, ldc)
        i = next(taken)


def summed(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """``np.matmul(a, b).sum(axis=0)`` without the stack of products: ``a`` ``(N, *S, m, k)`` and
    ``b`` ``(N, *S, k, n)`` (the same ``S``), each thread summing the products of a run of
    consecutive ``N`` into sums of its own (the BLAS adds each product into them: ``beta = 1``),
    the threads' sums then added in order; so the result depends on the thread count, not on
    which thread ran first.  None where :func:`products` would not split the stack (and for
    ``N`` below 2)."""
    if a.ndim < 3 or a.ndim != b.ndim or a.shape[:-2] != b.shape[:-2] or a.shape[0] < 2:
        return None
    found = _blas_operands(a, b)
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    count, inner = a.shape[0], a.shape[1:-2]
    threads = min(count, _backend.get_num_threads())
    if found is None or threads < 2 or 2.0 * m * k * n < MIN_PRODUCT_FLOPS:
        return None
    routine, layout_a, layout_b = found
    sums = np.empty((threads, *inner, m, n), dtype=a.dtype)
    pa, pb = _offsets(a, a.shape[:-2]), _offsets(b, b.shape[:-2])
    pc = _offsets(sums[0], tuple(inner))
    per = math.prod(inner)
    step = sums.strides[0]
    calls = []
    for t in range(threads):
        first, last = count * t // threads, count * (t + 1) // threads
        jobs = [(m, n, pa[i * per + j], pb[i * per + j], pc[j] + t * step, 0.0 if i == first else 1.0)
                for i in range(first, last) for j in range(per)]
        calls.append((_accumulate, (routine, layout_a, layout_b, k, n, jobs)))
    done = _run_split(threads, calls)
    if done is None:
        return None
    total = sums[0]
    for t in range(1, threads):
        total += sums[t]
    return total


def _accumulate(routine: Any, layout_a: tuple[int, int], layout_b: tuple[int, int], k: int, ldc: int,
                jobs: list[tuple[int, int, int, int, int, float]]) -> None:
    """Run the jobs in order: ``C = op(A) @ op(B) + beta * C``, one call of ``routine`` each."""
    (ta, lda), (tb, ldb) = layout_a, layout_b
    for rows, cols, pa, pb, pc, beta in jobs:
        routine(_ROW_MAJOR, ta, tb, rows, cols, k, 1.0, pa, lda, pb, ldb, beta, pc, ldc)


# Callers on several Python threads at once share the BLAS's one thread count: the first to need
# one thread sets it and the last to finish puts the count back (without this, a caller could read
# the 1 another had set as the count to restore, and leave it there).
_single = {"depth": 0, "previous": []}
_single_lock = threading.Lock()


def _enter_one_thread() -> None:
    """Run the BLAS on one thread until the matching :func:`_leave_one_thread`; its count is put
    back when the last such span open in the process (on any thread) ends.  (Two plain calls in a
    ``try``, not a context manager: this runs for every small product, and a generator-based
    ``with`` cost 2 us of a 9 us one.)"""
    with _single_lock:
        if _single["depth"] == 0:
            calls = _thread_calls()
            _single["previous"] = [get() for get, _ in calls]
            for (_, set_), p in zip(calls, _single["previous"], strict=True):
                if p != 1:
                    set_(1)
        _single["depth"] += 1


def _leave_one_thread() -> None:
    with _single_lock:
        _single["depth"] -= 1
        if _single["depth"] == 0:
            for (_, set_), p in zip(_thread_calls(), _single["previous"], strict=True):
                if p != 1:
                    set_(p)


def _run_split(threads: int, calls: list[tuple[Any, tuple]]) -> list[Any] | None:
    """The team's :meth:`run` of ``calls`` (the caller's first) with the BLAS on one thread: their
    results, or None when the team is busy."""
    _enter_one_thread()
    try:
        return _backend._team(threads - 1).run(calls)
    finally:
        _leave_one_thread()


def _openblas() -> bool:
    """Whether the BLAS that NumPy calls is OpenBLAS (threadpoolctl's record of it; found once)."""
    if "openblas" not in _state:
        found = _controllers()
        _state["openblas"] = bool(found) and all(getattr(c, "internal_api", None) == "openblas" for c in found)
    return _state["openblas"]


def _on_one_thread(a: np.ndarray, b: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """``np.matmul(a, b, out=out)`` with the BLAS on one thread (its count put back after), or
    as it is where OpenBLAS takes one thread by itself: each product a ``gemm`` (:func:`_numpy_gemm`;
    ``gemv`` and ``syrk`` have thresholds of their own) of at most :data:`BLAS_ONE_THREAD_MNK`
    multiply-adds."""
    if a.shape[-2] * b.shape[-1] * a.shape[-1] <= BLAS_ONE_THREAD_MNK and _openblas() and _numpy_gemm(a, b):
        return np.matmul(a, b, out=out)
    _enter_one_thread()
    try:
        return np.matmul(a, b, out=out)
    finally:
        _leave_one_thread()


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` (into ``out`` when given), as the module's summary says: below
    :data:`SMALL_GEMM_FLOPS` on one BLAS thread, above it split between threads by
    :func:`products`, else on all of the BLAS's threads; an outer product (an inner size of 1) as
    a broadcast multiply, with NumPy's bits.

    Only floating products reach the BLAS (integer ones are NumPy's exact loops), so the rules
    apply to floats only.
    """
    if a.dtype.kind != "f" or a.ndim < 2 or b.ndim < 2:
        return np.matmul(a, b, out=out)
    if a.shape[-1] == 1 and b.shape[-2] == 1 and b.dtype.kind == "f":
        # (an outer product: NumPy's matmul takes its own loop for an inner size of 1, 4-15x slower
        # than the same products as a broadcast multiply, one rounding each; a sum's zero added,
        # as the product's loop and the BLAS add each product to 0, so that -0.0 comes out +0.0)
        out = np.multiply(a, b, out=out)
        return np.add(out, 0.0, out=out)
    flops = 2.0 * a.shape[-2] * a.shape[-1] * b.shape[-1]
    if a.ndim == 2 and b.ndim == 2:
        count = 1  # (broadcast_shapes costs 1.5 us)
    else:
        try:
            count = math.prod(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
        except ValueError:  # (NumPy's matmul says why)
            return np.matmul(a, b, out=out)
    if flops * count < SMALL_GEMM_FLOPS:
        return _on_one_thread(a, b, out)
    done = products(a, b, out)
    if done is not None:
        return done
    if flops < SMALL_GEMM_FLOPS and count > 1:  # (a stack of small products: one after the other)
        return _on_one_thread(a, b, out)
    _backend.park_threads()  # (the BLAS's threads need the cores)
    return np.matmul(a, b, out=out)
