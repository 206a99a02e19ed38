"""Compiled softmax and log-softmax kernels (Numba), forward and backward, imported only when
Numba is installed and the backend allows it.

The input is viewed as ``(outer, n, inner)`` with the softmax taken over ``n``.  Two loop orders
cover every case, each written once for both functions (a ``log`` flag chosen per call):

- the reduced axis is the last one (``inner == 1``, a classifier's ``(N, C)`` scores): rows of
  ``n`` contiguous values, blocks of rows the jobs that the threads share;
- the reduced axis is not the last one (``(N, C, H, W)`` with ``dim=1``): for a block of ``inner``
  columns the loops run over ``n`` outside and the columns inside, so every inner loop reads
  contiguous memory and is elementwise (one running maximum and sum per column), with a
  ``outer`` x column-block tasks as the jobs.  No transposed copy is made.

Every value is computed in float64 and rounded once into the output's dtype, as the float64 NumPy
formulas are.  ``exp`` is :func:`~cnnlab.functional._numba_math.exp_nonpos` of ``x - max`` (<= 0),
so the loops vectorise; the kernels are compiled with ``contract`` (as ``exp_nonpos`` is, whose
flags an inlined call does not keep), so its multiply-adds fuse (30% faster).  The exponentials
of a row or column block are kept in a float64 scratch array of the task, so each is computed
once and rounded once.

NaN, ``+inf`` and rows of ``-inf`` give what the NumPy formulas give (NaN for the whole slice):
the maximum is a plain comparison loop that skips NaN, but a NaN input (or ``inf - inf``) makes
its ``exp``, hence the slice's sum, NaN, and every output of the slice is divided by that sum (or
has its log subtracted).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from cnnlab.functional import _backend
from cnnlab.functional._numba_math import exp_nonpos

# Row blocks per call of the row kernels: a few per thread, so that a task allocates its scratch
# row once for many rows and the threads still share the rows evenly.
_ROW_TASKS = 64
# The column kernels keep ``n x block`` float64 exponentials per task: about this many bytes.
_COLUMN_SCRATCH_BYTES = 1 << 18


# ---------------------------------------------------------------------------------------------
# sums whose terms may be added in any order (reassoc lets LLVM split them into vector lanes);
# called, not inlined by Numba, so the flag stays on their own instructions and never reaches the
# Cody-Waite reduction of exp_nonpos (which reassociation would undo)


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _sum(a):  # pragma: no cover - compiled
    total = 0.0
    for c in range(a.size):
        total += a[c]
    return total


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _dot(a, b):  # pragma: no cover - compiled
    total = 0.0
    for c in range(a.size):
        total += a[c] * b[c]
    return total


# ---------------------------------------------------------------------------------------------
# the reduced axis last: x, out of shape (rows, n), C-contiguous


@_backend.job_kernel(fastmath={"contract"})
def _forward_rows(x, out, log, shift, log_total, tasks, first_job, last_job, thread):  # pragma: no cover - compiled
    # out = exp(x - m) / total, or (x - m) - log(total), with m = max(x), total = sum exp(x - m);
    # m and log(total) are also written (per row, float64) for cross_entropy
    # (tasks: the jobs, blocks of rows)
    rows, n = x.shape
    for task in range(np.uint64(first_job), np.uint64(last_job)):  # of tasks
        e = np.empty(n)  # float64: exp(x - m) of one row
        for r in range(task * rows // tasks, (task + 1) * rows // tasks):
            src, dst = x[r], out[r]
            m = -np.inf
            for c in range(n):
                v = src[c]
                m = v if v > m else m
            for c in range(n):
                e[c] = exp_nonpos(src[c] - m)
            total = _sum(e)
            ls = math.log(total)
            shift[r] = m
            log_total[r] = ls
            if log:
                for c in range(n):
                    dst[c] = (src[c] - m) - ls
            else:
                inv = 1.0 / total
                for c in range(n):
                    dst[c] = e[c] * inv


@_backend.job_kernel(fastmath={"contract"})
def _backward_rows(y, g, out, log, first_job, last_job, thread):  # pragma: no cover - compiled
    # softmax: grad_x = y (g - sum(g y));  log_softmax (y = log p): grad_x = g - exp(y) sum(g)
    rows, n = y.shape
    for r in range(np.uint64(first_job), np.uint64(last_job)):  # of rows
        yr, gr, dst = y[r], g[r], out[r]
        if log:
            total = _sum(gr)
            for c in range(n):
                dst[c] = gr[c] - exp_nonpos(yr[c]) * total
        else:
            total = _dot(gr, yr)
            for c in range(n):
                dst[c] = yr[c] * (gr[c] - total)


# ---------------------------------------------------------------------------------------------
# the reduced axis in the middle: x, out of shape (outer, n, inner), C-contiguous; a task is one
# block of `block` columns of one outer index


@_backend.job_kernel(fastmath={"contract"})
def _forward_columns(x, out, log, shift, log_total, block, first_job, last_job, thread):  # pragma: no cover - compiled
    # as _forward_rows; shift and log_total hold one value per (outer, inner) column, flat.  The
    # inputs are indexed flat by unsigned offsets: Numba checks a signed computed index
    # (``lo + i``) for negative values, which kept the inner loops from vectorising
    outer, n, inner = x.shape
    xf, of = x.reshape(-1), out.reshape(-1)
    blocks = (inner + block - 1) // block
    for task in range(np.uint64(first_job), np.uint64(last_job)):  # of outer * blocks
        o = task // blocks
        lo = (task % blocks) * block
        width = min(block, inner - lo)
        m = np.full(width, -np.inf)
        for c in range(n):
            row = np.uint64((o * n + c) * inner + lo)
            for i in range(width):
                v = xf[row + np.uint64(i)]
                m[i] = v if v > m[i] else m[i]
        e = np.empty((n, width))
        total = np.zeros(width)
        for c in range(n):
            row = np.uint64((o * n + c) * inner + lo)
            er = e[c]
            for i in range(width):
                er[i] = exp_nonpos(xf[row + np.uint64(i)] - m[i])
            for i in range(width):
                total[i] += er[i]
        col = np.uint64(o * inner + lo)
        for i in range(width):
            shift[col + np.uint64(i)] = m[i]
            lt = math.log(total[i])
            log_total[col + np.uint64(i)] = lt
            total[i] = lt if log else 1.0 / total[i]  # what the output needs
        for c in range(n):
            row = np.uint64((o * n + c) * inner + lo)
            er = e[c]
            if log:
                for i in range(width):
                    of[row + np.uint64(i)] = (xf[row + np.uint64(i)] - m[i]) - total[i]
            else:
                for i in range(width):
                    of[row + np.uint64(i)] = er[i] * total[i]


@_backend.job_kernel(fastmath={"contract"})
def _backward_columns(y, g, out, log, block, first_job, last_job, thread):  # pragma: no cover - compiled
    # (flat unsigned offsets, as in _forward_columns)
    outer, n, inner = y.shape
    yf, gf, of = y.reshape(-1), g.reshape(-1), out.reshape(-1)
    blocks = (inner + block - 1) // block
    for task in range(np.uint64(first_job), np.uint64(last_job)):  # of outer * blocks
        o = task // blocks
        lo = (task % blocks) * block
        width = min(block, inner - lo)
        total = np.zeros(width)
        for c in range(n):
            row = np.uint64((o * n + c) * inner + lo)
            if log:
                for i in range(width):
                    total[i] += gf[row + np.uint64(i)]
            else:
                for i in range(width):
                    total[i] += gf[row + np.uint64(i)] * yf[row + np.uint64(i)]
        for c in range(n):
            row = np.uint64((o * n + c) * inner + lo)
            if log:
                for i in range(width):
                    of[row + np.uint64(i)] = gf[row + np.uint64(i)] - exp_nonpos(yf[row + np.uint64(i)]) * total[i]
            else:
                for i in range(width):
                    of[row + np.uint64(i)] = yf[row + np.uint64(i)] * (gf[row + np.uint64(i)] - total[i])


# ---------------------------------------------------------------------------------------------
# entry points: any shape, the reduced axis given


def _split(shape: tuple[int, ...], axis: int) -> tuple[int, int, int]:
    """``shape`` as ``(outer, n, inner)`` around ``axis``."""
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])


def _column_block(n: int, inner: int) -> int:
    """Columns per task: the float64 scratch of ``n`` x block values near
    ``_COLUMN_SCRATCH_BYTES``, at least 8 columns, and the blocks of equal width."""
    most = max(8, _COLUMN_SCRATCH_BYTES // (8 * n))
    blocks = -(-inner // most)
    return -(-inner // blocks)


def forward(x: np.ndarray, axis: int, log: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``softmax(x, axis)`` (``log_softmax`` if ``log``) of a non-empty float32/float64 array,
    with the maximum ``m`` and ``log(sum(exp(x - m)))`` of each slice (float64, the shape of ``x``
    with ``axis`` of length 1)."""
    outer, n, inner = _split(x.shape, axis)
    src = np.ascontiguousarray(x)
    out = np.empty(x.shape, x.dtype)
    shift = np.empty(outer * inner)
    log_total = np.empty(outer * inner)
    if inner == 1:
        tasks = min(outer, _ROW_TASKS)
        _backend.run_jobs(_forward_rows, tasks, src.reshape(outer, n), out.reshape(outer, n), log, shift, log_total,
                          tasks, work=16 * x.size)
    else:
        block = _column_block(n, inner)
        _backend.run_jobs(_forward_columns, outer * -(-inner // block), src.reshape(outer, n, inner),
                          out.reshape(outer, n, inner), log, shift, log_total, block, work=16 * x.size)
    kept = x.shape[:axis] + (1,) + x.shape[axis + 1:]
    return out, shift.reshape(kept), log_total.reshape(kept)


def backward(y: np.ndarray, g: np.ndarray, axis: int, log: bool) -> np.ndarray:
    """The input gradient of ``softmax`` (``log_softmax`` if ``log``) from its output ``y`` and
    ``g``, the gradient with respect to ``y``: same shape and dtype, non-empty."""
    outer, n, inner = _split(y.shape, axis)
    yc, gc = np.ascontiguousarray(y), np.ascontiguousarray(g)
    out = np.empty(y.shape, y.dtype)
    if inner == 1:
        _backend.run_jobs(_backward_rows, outer, yc.reshape(outer, n), gc.reshape(outer, n), out.reshape(outer, n), log,
                          work=8 * y.size)
    else:
        shape = (outer, n, inner)
        block = _column_block(n, inner)
        _backend.run_jobs(_backward_columns, outer * -(-inner // block), yc.reshape(shape), gc.reshape(shape),
                          out.reshape(shape), log, block, work=8 * y.size)
    return out
