"""Compiled kernels of adaptive max pooling (Numba), imported only when Numba is installed and the
backend allows it (:mod:`cnnlab.functional._adaptive_max` holds the op and its NumPy paths).

Both kernels take a plane (``N*C`` of them) a job, as :mod:`cnnlab.functional._numba_pool`'s do,
and choose PyTorch's cell: the first maximum in row-major order over a window, or the window's
last NaN.  ``cache=True`` keeps the compiled code on disk, so only the first run of a new dtype
compiles.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnnlab.functional import _backend


def _kernel(fn):
    """``fn`` compiled: a loop over the jobs (planes) ``first_job .. last_job-1``, shared among
    the threads by :func:`cnnlab.functional._backend.run_jobs`."""
    return _backend.job_kernel(fn)


def _adaptive_max_loops(x, sp, osz, starts, ends, y, idx, first_job, last_job, thread):  # pragma: no cover - compiled
    # x: flat (P, D, H, W); sp = (D, H, W); osz = (OD, OH, OW); output cell (od, oh, ow)'s box:
    # starts[a, o] <= i_a < ends[a, o] along each dim a; y, idx: flat (P, OD, OH, OW), each box's
    # first maximum in row-major order, or its last NaN (v != v), and its flat index in the plane
    height, width = sp[1], sp[2]
    plane, oplane = sp[0] * height * width, osz[0] * osz[1] * osz[2]
    for p in range(first_job, last_job):
        base, obase = p * plane, p * oplane
        for od in range(osz[0]):
            for oh in range(osz[1]):
                for ow in range(osz[2]):
                    at = (starts[0, od] * height + starts[1, oh]) * width + starts[2, ow]
                    best, chosen = x[base + at], at
                    for d in range(starts[0, od], ends[0, od]):
                        for h in range(starts[1, oh], ends[1, oh]):
                            row = (d * height + h) * width
                            for w in range(starts[2, ow], ends[2, ow]):
                                v = x[base + row + w]
                                if v > best or v != v:
                                    best, chosen = v, row + w
                    o = obase + (od * osz[1] + oh) * osz[2] + ow
                    y[o] = best
                    idx[o] = chosen


_adaptive_max = _kernel(_adaptive_max_loops)


def adaptive_max(x: np.ndarray, windows: Sequence[Sequence[tuple[int, int]]]) -> tuple[np.ndarray, np.ndarray]:
    """``(y, indices)`` of adaptive max pooling of the C-contiguous ``(P, D, H, W)`` ``x`` with the
    windows ``[start, end)`` of each output index along depth, height and width: each output
    cell's box maximum (the first in row-major order, or the box's last NaN) and its flat index in
    the plane, a plane a job."""
    sizes = tuple(len(w) for w in windows)
    starts = np.zeros((3, max(sizes)), np.int64)
    ends = np.zeros((3, max(sizes)), np.int64)
    for a, dim in enumerate(windows):
        for o, (start, end) in enumerate(dim):
            starts[a, o], ends[a, o] = start, end
    y = np.empty((x.shape[0], *sizes), x.dtype)
    idx = np.empty((x.shape[0], *sizes), np.int64)
    _backend.run_jobs(_adaptive_max, x.shape[0], x.reshape(-1), np.array(x.shape[1:], np.int64),
                      np.array(sizes, np.int64), starts, ends, y.reshape(-1), idx.reshape(-1), work=x.size)
    return y, idx


def _plane_argmax_loops(xf, bits, size, shift, mask, top, bottom, vals, idx, first_job, last_job,
                        thread):  # pragma: no cover - compiled
    # vals[p], idx[p]: row p of the flat (P, size) xf's first maximum, or its last NaN.  bits: xf's
    # values as integers of their width, b ^ ((b >> shift) & mask) an integer key in the order of
    # the values (a float's sign bit turns its other bits round; an integer's is itself, mask 0),
    # so that the row's largest and smallest keys are two integer reductions the compiler
    # vectorises; a key above ``top`` (+inf's) or below ``bottom`` (-inf's) is a NaN.  Then the
    # first cell with the largest key, or with a zero of either sign where the maximum is a zero
    # (-0.0 and 0.0 tie), or the last NaN.  (A compare and a branch per value took 3.6 ns a value
    # on one core; this 1.3.)
    count = size
    for p in range(first_job, last_job):
        base = p * count
        b0 = bits[base]
        high = b0 ^ ((b0 >> shift) & mask)
        low = high
        for i in range(1, count):
            b = bits[base + i]
            k = b ^ ((b >> shift) & mask)
            high = max(high, k)
            low = min(low, k)
        if high > top or low < bottom:  # (a NaN: the last one)
            i = count - 1
            while i > 0 and xf[base + i] == xf[base + i]:
                i -= 1
            vals[p], idx[p] = xf[base + i], i
            continue
        j = 0
        while j < count - 1 and (bits[base + j] ^ ((bits[base + j] >> shift) & mask)) != high:
            j += 1
        if xf[base + j] == 0:
            j = 0
            while j < count - 1 and xf[base + j] != 0:
                j += 1
        vals[p], idx[p] = xf[base + j], j


_plane_argmax = _kernel(_plane_argmax_loops)

# Per dtype: the integers of its width, and (shift, mask, top, bottom) of _plane_argmax_loops.
_KEYS = {
    np.dtype(np.float32): (np.int32, np.int32(31), np.int32(0x7FFFFFFF), np.int32(0x7F800000),
                           np.int32(-0x800000) ^ np.int32(0x7FFFFFFF)),
    np.dtype(np.float64): (np.int64, np.int64(63), np.int64(0x7FFFFFFFFFFFFFFF), np.int64(0x7FF0000000000000),
                           np.int64(-0x10000000000000) ^ np.int64(0x7FFFFFFFFFFFFFFF)),
    np.dtype(np.int64): (np.int64, np.int64(0), np.int64(0), np.int64(2**63 - 1), np.int64(-2**63)),
}


def plane_argmax(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(vals, idx)``: each row's first maximum of the C-contiguous ``(P, size)`` ``x`` (float32,
    float64 or int64; or its last NaN) and its index, a row a job (global max pooling: a plane is
    a short row)."""
    width, shift, mask, top, bottom = _KEYS[x.dtype]
    vals = np.empty(x.shape[0], x.dtype)
    idx = np.empty(x.shape[0], np.int64)
    flat = x.reshape(-1)
    _backend.run_jobs(_plane_argmax, x.shape[0], flat, flat.view(width), x.shape[1], shift, mask, top, bottom,
                      vals, idx, work=x.size)
    return vals, idx
