"""Compiled pooling kernels (Numba), imported only when Numba is installed and the backend allows it.

Each kernel is the loop of the loop reference in :mod:`cnnlab.functional._naive`: for every
window, the taps in row-major order.  The input is viewed as ``(P, D, H, W)`` with ``P = N*C``
planes (1-d and 2-d problems get height and depth 1), and ``prange`` runs over the planes, so
every thread owns whole planes: the backward scatters, where overlapping windows add into one
cell, stay serial within a plane and need no atomics.

Padding is never materialised.  For every output index along a dim the caller passes the range
``[lo, hi)`` of kernel taps that land inside the input (:func:`tap_ranges`), so the inner loops
run only over real cells: max pooling never picks padding, and average pooling adds the padding's
zeros by leaving them out (the divisor, computed by the caller, still counts them when asked).

``cache=True`` keeps the compiled code on disk, so only the first run of a new dtype compiles.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit, prange

from cnnlab.functional._numba_kernels import _threads_for

# dtypes the kernels are compiled for (inputs are cast to these first: ints and bools to int64)
DTYPES = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int64))


def tap_ranges(out: int, k: int, s: int, d: int, lo: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """For each output index ``o`` along a dim, the taps ``t`` in ``[first, last)`` whose input
    coordinate ``o*s + t*d - lo`` lies in ``[0, size)`` (contiguous, since it grows with ``t``)."""
    start = np.arange(out, dtype=np.int64) * s - lo
    first = np.clip(-(start // d), 0, k)  # ceil(-start / d)
    last = np.clip((size - 1 - start) // d + 1, 0, k)
    return first, last


class Plan:
    """The geometry of one pooling call folded to three spatial dims, ready for the kernels."""

    __slots__ = ("planes", "sp", "out", "stride", "dilation", "low", "ranges")

    def __init__(self, planes: int, sp: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
                 dilation: Sequence[int], pads: Sequence[tuple[int, int]], out: Sequence[int]) -> None:
        fill = 3 - len(sp)
        self.planes = planes
        self.sp = (1,) * fill + tuple(sp)
        self.out = (1,) * fill + tuple(out)
        self.stride = (1,) * fill + tuple(stride)
        self.dilation = (1,) * fill + tuple(dilation)
        self.low = (0,) * fill + tuple(lo for lo, _ in pads)
        kernel = (1,) * fill + tuple(kernel)
        ranges: list[np.ndarray] = []
        for o, k, s, d, lo, size in zip(self.out, kernel, self.stride, self.dilation, self.low, self.sp,
                                        strict=True):
            ranges += tap_ranges(o, k, s, d, lo, size)
        self.ranges = tuple(ranges)

    def work(self) -> int:
        return self.planes * int(np.prod(self.out)) * 4


# ---------------------------------------------------------------------------------------------
# max pooling: y[p, o] = max over the taps in the input; arg[p, o] = flat index in the plane


@njit(parallel=True, cache=True, nogil=True)
def _max_forward(x, ld, hd, lh, hh, lw, hw, sd, sh, sw, dd, dh, dw, pd, ph, pw, y, arg):  # pragma: no cover
    planes, depth, height, width = x.shape
    od, oh, ow = y.shape[1], y.shape[2], y.shape[3]
    xf = x.reshape(planes, depth * height * width)
    yf = y.reshape(planes, od * oh * ow)
    af = arg.reshape(planes, od * oh * ow)
    for p in prange(planes):
        src = xf[p]
        for a in range(od):
            t0, t1 = ld[a], hd[a]
            z0 = a * sd - pd
            for b in range(oh):
                i0, i1 = lh[b], hh[b]
                r0 = b * sh - ph
                o = (a * oh + b) * ow
                for c in range(ow):
                    j0, j1 = lw[c], hw[c]
                    c0 = c * sw - pw
                    where = ((z0 + t0 * dd) * height + r0 + i0 * dh) * width + c0 + j0 * dw
                    best = src[where]
                    nan = best != best
                    for t in range(t0, t1):
                        for i in range(i0, i1):
                            row = ((z0 + t * dd) * height + r0 + i * dh) * width + c0
                            for j in range(j0, j1):
                                v = src[row + j * dw]
                                # ties keep the first maximum.  A plain ``>`` select compiles to
                                # branch-free code; NaN is only noted here and handled below.
                                take = v > best
                                best = v if take else best
                                where = row + j * dw if take else where
                                nan |= v != v
                    if nan:  # a window holding NaN gives NaN at its last NaN (PyTorch's choice)
                        for t in range(t0, t1):
                            for i in range(i0, i1):
                                row = ((z0 + t * dd) * height + r0 + i * dh) * width + c0
                                for j in range(j0, j1):
                                    if src[row + j * dw] != src[row + j * dw]:
                                        where = row + j * dw
                        best = src[where]
                    yf[p, o + c] = best
                    af[p, o + c] = where


@njit(parallel=True, cache=True, nogil=True)
def _max_backward(grad_out, arg, grad_x):  # pragma: no cover - compiled
    planes, cells = grad_out.shape
    size = grad_x.shape[1]
    for p in prange(planes):  # a plane's windows on one thread: overlapping windows add serially
        dst = grad_x[p]
        for i in range(size):
            dst[i] = 0
        for o in range(cells):
            dst[arg[p, o]] += grad_out[p, o]


def max_forward(x: np.ndarray, plan: Plan, index_dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Window maxima ``(P, *out)`` of ``x`` (``(P, *sp)``, a kernel dtype) and their flat indices."""
    x4 = np.ascontiguousarray(x).reshape((plan.planes, *plan.sp))
    y = np.empty((plan.planes, *plan.out), dtype=x.dtype)
    arg = np.empty(y.shape, dtype=index_dtype)
    if plan.planes:
        with _threads_for(plan.work()):
            _max_forward(x4, *plan.ranges, *plan.stride, *plan.dilation, *plan.low, y, arg)
    return y, arg


def max_backward(grad_out: np.ndarray, arg: np.ndarray, plan: Plan) -> np.ndarray:
    """``grad_x`` ``(P, prod(sp))``: each window's gradient added to the cell it chose."""
    cells = int(np.prod(plan.out))
    g2 = np.ascontiguousarray(grad_out).reshape(plan.planes, cells)
    grad_x = np.empty((plan.planes, int(np.prod(plan.sp))), dtype=grad_out.dtype)
    if plan.planes:
        with _threads_for(plan.work()):
            _max_backward(g2, arg.reshape(plan.planes, cells), grad_x)
    return grad_x


# ---------------------------------------------------------------------------------------------
# average pooling: y[p, o] = (sum of the taps in the input) / divisor[o]


@njit(parallel=True, cache=True, nogil=True)
def _avg_forward(x, ld, hd, lh, hh, lw, hw, sd, sh, sw, dd, dh, dw, pd, ph, pw, divisor, zero,
                 y):  # pragma: no cover - compiled
    planes, depth, height, width = x.shape
    od, oh, ow = y.shape[1], y.shape[2], y.shape[3]
    xf = x.reshape(planes, depth * height * width)
    yf = y.reshape(planes, od * oh * ow)
    df = divisor.reshape(od * oh * ow)
    for p in prange(planes):
        src = xf[p]
        for a in range(od):
            t0, t1 = ld[a], hd[a]
            z0 = a * sd - pd
            for b in range(oh):
                i0, i1 = lh[b], hh[b]
                r0 = b * sh - ph
                o = (a * oh + b) * ow
                for c in range(ow):
                    j0, j1 = lw[c], hw[c]
                    c0 = c * sw - pw
                    total = zero
                    for t in range(t0, t1):
                        for i in range(i0, i1):
                            row = ((z0 + t * dd) * height + r0 + i * dh) * width + c0
                            for j in range(j0, j1):
                                total += src[row + j * dw]
                    yf[p, o + c] = total / df[o + c]


@njit(parallel=True, cache=True, nogil=True)
def _avg_backward(grad_out, ld, hd, lh, hh, lw, hw, sd, sh, sw, dd, dh, dw, pd, ph, pw, divisor,
                  grad_x):  # pragma: no cover - compiled
    planes, depth, height, width = grad_x.shape
    od, oh, ow = grad_out.shape[1], grad_out.shape[2], grad_out.shape[3]
    gf = grad_out.reshape(planes, od * oh * ow)
    xf = grad_x.reshape(planes, depth * height * width)
    df = divisor.reshape(od * oh * ow)
    size = depth * height * width
    for p in prange(planes):  # a plane's windows on one thread: overlapping windows add serially
        dst = xf[p]
        for k in range(size):
            dst[k] = 0
        for a in range(od):
            t0, t1 = ld[a], hd[a]
            z0 = a * sd - pd
            for b in range(oh):
                i0, i1 = lh[b], hh[b]
                r0 = b * sh - ph
                o = (a * oh + b) * ow
                for c in range(ow):
                    j0, j1 = lw[c], hw[c]
                    c0 = c * sw - pw
                    share = gf[p, o + c] / df[o + c]
                    for t in range(t0, t1):
                        for i in range(i0, i1):
                            row = ((z0 + t * dd) * height + r0 + i * dh) * width + c0
                            for j in range(j0, j1):
                                dst[row + j * dw] += share


def avg_forward(x: np.ndarray, plan: Plan, divisor: np.ndarray, out_dtype: np.dtype) -> np.ndarray:
    """Window means ``(P, *out)`` of ``x`` (``(P, *sp)``, a kernel dtype), divided by ``divisor``
    (shape ``out``, of ``out_dtype``); integers are summed exactly in int64 first."""
    x4 = np.ascontiguousarray(x).reshape((plan.planes, *plan.sp))
    y = np.empty((plan.planes, *plan.out), dtype=out_dtype)
    if plan.planes:
        with _threads_for(plan.work()):
            _avg_forward(x4, *plan.ranges, *plan.stride, *plan.dilation, *plan.low,
                         np.ascontiguousarray(divisor, dtype=out_dtype).reshape(plan.out),
                         x.dtype.type(0), y)
    return y


def avg_backward(grad_out: np.ndarray, plan: Plan, divisor: np.ndarray) -> np.ndarray:
    """``grad_x`` ``(P, *sp)``: ``grad_out[p, o] / divisor[o]`` added to every input tap of window ``o``."""
    g4 = np.ascontiguousarray(grad_out).reshape((plan.planes, *plan.out))
    grad_x = np.empty((plan.planes, *plan.sp), dtype=grad_out.dtype)
    if plan.planes:
        with _threads_for(plan.work()):
            _avg_backward(g4, *plan.ranges, *plan.stride, *plan.dilation, *plan.low,
                          np.ascontiguousarray(divisor, dtype=grad_out.dtype).reshape(plan.out), grad_x)
    return grad_x
