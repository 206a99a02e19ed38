"""Batched matrix products split between threads: each product one call of the BLAS, on one thread.

``np.matmul`` of stacked matrices calls the BLAS once per matrix, one after the other, each call
on all the BLAS's threads, and it holds the GIL while it does (two Python threads, each
multiplying half the stack on one BLAS thread, took as long as one thread alone).  A stack of
mid-sized products (a 1x1 convolution's ``W @ x[b]`` for each sample ``b``, 12.8 MFLOP each for
the N64 C64 28x28 -> 128 layer) keeps the BLAS's threads starting and stopping on each of them.
Here the products are handed out one at a time to the calling thread and the helper threads of
:mod:`._team`, each product a call of the BLAS's own ``cblas_?gemm`` through ``ctypes`` (which
releases the GIL during the call) with the BLAS on one thread: measured 5.1-5.4 ms against
6.3-6.5 ms for that layer's forward product on 2 cores.

The BLAS called is the one NumPy calls (the same library, routine and arguments as NumPy's own
``cblas_?gemm`` call for the same matrices), so each product has the bits ``np.matmul`` gives it.
Where that BLAS cannot be found (no threadpoolctl, or a BLAS without the CBLAS symbols), or the
operands do not suit (see :func:`products`), the caller uses ``np.matmul``.
"""

from __future__ import annotations

import ctypes
import itertools
import math
from typing import Any

import numpy as np

from cnnlab.functional import _backend

# A stack is split between threads only if each of its products has at least this many flops:
# each BLAS call costs 2-3 us of Python and ctypes, against 10 us for a product of this size.
MIN_PRODUCT_FLOPS = 2e6

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_state: dict[str, Any] = {}


def _gemm_routines() -> dict[str, Any]:
    """``{'f': cblas_sgemm, 'd': cblas_dgemm}`` of the BLAS that NumPy calls, as ``ctypes``
    functions (found once; empty where they cannot be found)."""
    if "gemm" in _state:
        return _state["gemm"]
    routines: dict[str, Any] = {}
    controllers = _backend._blas_controllers()
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


def _offsets(a: np.ndarray, batch: tuple[int, ...]) -> np.ndarray:
    """The byte offset of each matrix of ``a`` broadcast to the stack shape ``batch``, in C order."""
    lead = a.ndim - 2
    strides = [0] * (len(batch) - lead) + [s if d != 1 else 0 for s, d in zip(a.strides[:lead], a.shape[:lead],
                                                                           strict=True)]
    index = np.indices(batch, dtype=np.int64).reshape(len(batch), -1)
    return (np.asarray(strides, dtype=np.int64)[:, None] * index).sum(axis=0) if batch else np.zeros(1, np.int64)


def products(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray | None:
    """``np.matmul(a, b, out=out)`` for stacks of matrices (broadcast as NumPy does), each product
    one BLAS call on one thread, the products shared by the calling thread and the helpers; None
    (nothing done) where this does not apply: not a stack of at least two products, operands not
    both float32 or both float64, a matrix whose rows or columns are not contiguous, one-row or
    one-column products, operands that share memory, ``out`` not a C-contiguous array of the
    result's shape and dtype apart from the operands, products under :data:`MIN_PRODUCT_FLOPS`,
    one thread, no BLAS found, or the team busy."""
    if a.ndim < 2 or b.ndim < 2 or max(a.ndim, b.ndim) < 3 or a.dtype != b.dtype or a.dtype.char not in "fd":
        return None
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    # (NumPy multiplies a row or a column by a matrix with another routine, and a matrix by its
    # own transpose with another, so those keep their bits there)
    if (b.shape[-2] != k or m == 1 or n == 1 or 2.0 * m * k * n < MIN_PRODUCT_FLOPS
            or not (a.flags.aligned and b.flags.aligned) or np.may_share_memory(a, b)):
        return None
    try:
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        return None
    count = math.prod(batch)
    threads = min(count, _backend.get_num_threads())
    routine = _gemm_routines().get(a.dtype.char)
    layout_a = _layout(a.shape[-2:], a.strides[-2:], a.itemsize)
    layout_b = _layout(b.shape[-2:], b.strides[-2:], b.itemsize)
    if threads < 2 or routine is None or layout_a is None or layout_b is None:
        return None
    if out is None:
        out = np.empty((*batch, m, n), dtype=a.dtype)
    elif (out.shape != (*batch, m, n) or out.dtype != a.dtype or not out.flags.c_contiguous
          or np.may_share_memory(out, a) or np.may_share_memory(out, b)):
        return None
    pa = a.ctypes.data + _offsets(a, batch)
    pb = b.ctypes.data + _offsets(b, batch)
    pc = out.ctypes.data + np.arange(count, dtype=np.int64) * (m * n * out.itemsize)
    args = (routine, layout_a, layout_b, m, n, k, pa.tolist(), pb.tolist(), pc.tolist(), itertools.count())
    calls = _backend._blas_thread_calls()
    previous = [get() for get, _ in calls]
    for _, set_ in calls:
        set_(1)
    try:
        done = _backend._team(threads - 1).run([(_multiply, args)] * threads)
    finally:
        for (_, set_), p in zip(calls, previous, strict=True):
            set_(p)
    return None if done is None else out


def _multiply(routine: Any, layout_a: tuple[int, int], layout_b: tuple[int, int], m: int, n: int, k: int,
              pa: list[int], pb: list[int], pc: list[int], taken: Any) -> None:
    """Take the stack's next product (``next(taken)``, atomic under the GIL) and compute it, until
    none is left: ``C = op(A) @ op(B)`` by one call of ``routine`` (``cblas_?gemm``)."""
    (ta, lda), (tb, ldb) = layout_a, layout_b
    i = next(taken)
    while i < len(pc):
        routine(_ROW_MAJOR, ta, tb, m, n, k, 1.0, pa[i], lda, pb[i], ldb, 0.0, pc[i], n)
        i = next(taken)


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` (into ``out`` when given): a stack of products of at least
    :data:`cnnlab.functional._backend.SMALL_GEMM_FLOPS` in all split between threads by
    :func:`products` where it applies, else :func:`cnnlab.functional._backend.matmul`."""
    if a.dtype.kind == "f" and max(a.ndim, b.ndim) >= 3 and a.ndim >= 2 and b.ndim >= 2:
        try:
            count = math.prod(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
        except ValueError:  # (NumPy's matmul says why)
            count = 0
        if 2.0 * a.shape[-2] * a.shape[-1] * b.shape[-1] * count >= _backend.SMALL_GEMM_FLOPS:
            done = products(a, b, out)
            if done is not None:
                return done
    return _backend.matmul(a, b, out=out)
