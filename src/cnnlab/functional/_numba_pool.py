"""Compiled pooling kernels (Numba), imported only when Numba is installed and the backend allows it.

Each kernel is the loop of the loop reference in :mod:`cnnlab.functional._naive`: for every
window, the taps in row-major order.  The input is viewed as ``(P, D, H, W)`` with ``P = N*C``
planes (1-d and 2-d problems get height and depth 1), and the jobs that the threads share are
the planes, so every thread owns whole planes: the backward scatters, where overlapping windows add into one
cell, stay serial within a plane and need no atomics.

For every output index along a dim the caller passes the range ``[lo, hi)`` of kernel taps that
land inside the input (:func:`tap_ranges`), so max pooling loops over real cells only and never
picks padding.  Average pooling uses that a window's taps are (its depth and height taps) x (its
width taps): it first adds up whole input rows, then takes each window's width taps of that sum
from a one-row buffer that holds the zero padding, so both steps are loops of uniform length.

Inner loops index arrays by the loop variable (over row slices) wherever they can: Numba wraps a
computed signed index for negative values, and that check stops LLVM from vectorising the loop.
The kernels take the flat (or ``(P, cells)``) views they index as arguments, made by the caller:
only an argument carries :func:`cnnlab.functional._backend.job_kernel`'s no-alias promise into
the loops.

``cache=True`` keeps the compiled code on disk, so only the first run of a new dtype compiles.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from cnnlab.functional import _backend
from cnnlab.functional._numba_kernels import contiguous


def _kernel(fn):
    """``fn`` compiled: a loop over the jobs (planes) ``first_job .. last_job-1``, which
    :func:`cnnlab.functional._backend.run_jobs` shares among the threads (small calls run on the
    calling thread), as for every other compiled kernel."""
    return _backend.job_kernel(fn)


def tap_ranges(out: int, k: int, s: int, d: int, lo: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """For each output index ``o`` along a dim, the taps ``t`` in ``[first, last)`` whose input
    coordinate ``o*s + t*d - lo`` lies in ``[0, size)`` (contiguous, since it grows with ``t``)."""
    start = np.arange(out, dtype=np.int64) * s - lo
    first = np.minimum(np.maximum(-(start // d), 0), k)  # ceil(-start / d), within [0, k]
    last = np.minimum(np.maximum((size - 1 - start) // d + 1, 0), k)
    return first, last


class Plan:
    """The geometry of one pooling call folded to three spatial dims ``(P, D, H, W)``, ``P = N*C``,
    in the two arrays the kernels take: ``ranges`` ``(6, L)``, the tap ranges ``[first, last)`` of
    every output index along depth, height and width, and ``geo``: the strides, dilations, low
    paddings and kernel sizes of the three dims, and the padded width of a row."""

    __slots__ = ("planes", "sp", "out", "sizes", "ranges", "geo", "work", "plain", "disjoint")

    def __init__(self, planes: int, sp: tuple[int, ...], out: tuple[int, ...], ranges: np.ndarray,
                 geo: np.ndarray, work: int, plain: tuple[int, int, int, int] | None = None) -> None:
        self.planes, self.sp, self.out, self.ranges, self.geo = planes, sp, out, ranges, geo
        self.sizes = tuple(int(n) for n in sp + out)  # (depth, height, width, od, oh, ow), for the kernels
        self.work = work  # for _backend.run_jobs: small calls run on the calling thread
        # 2-d windows with every tap inside the input and no dilation, for the specialised kernels:
        # their ``(kh, kw, sh, sw)``, else None; ``disjoint`` when such windows also do not overlap
        self.plain = plain
        self.disjoint = plain is not None and plain[0] <= plain[2] and plain[1] <= plain[3]


@functools.lru_cache(maxsize=256)
def _folded(sp: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
            dilation: tuple[int, ...], lows: tuple[int, ...], out: tuple[int, ...]
            ) -> tuple[tuple[int, ...], tuple[int, ...], np.ndarray, np.ndarray, int, tuple[int, ...] | None]:
    fill = 3 - len(sp)
    sp3, out3 = (1,) * fill + sp, (1,) * fill + out
    k3, s3 = (1,) * fill + kernel, (1,) * fill + stride
    d3, lo3 = (1,) * fill + dilation, (0,) * fill + lows
    ranges = np.zeros((6, max(out3)), dtype=np.int64)
    for i in range(3):
        ranges[2 * i, :out3[i]], ranges[2 * i + 1, :out3[i]] = tap_ranges(
            out3[i], k3[i], s3[i], d3[i], lo3[i], sp3[i])
    # width of a row padded so that every window's width taps land in it (zeros outside the input)
    padded_width = max(lo3[2] + sp3[2], (out3[2] - 1) * s3[2] + (k3[2] - 1) * d3[2] + 1)
    geo = np.array(s3 + d3 + lo3 + k3 + (padded_width,), dtype=np.int64)
    ranges.flags.writeable = False  # shared by every call with this geometry
    geo.flags.writeable = False
    # work per plane: every tap of every window, plus one pass over the input
    per_plane = int(math.prod(out3)) * int(math.prod(k3)) + int(math.prod(sp3))
    full = all((ranges[2 * i, :out3[i]] == 0).all() and (ranges[2 * i + 1, :out3[i]] == k3[i]).all() for i in range(3))
    inside = full and sp3[0] == 1 and k3[0] == 1 and d3[1:] == (1, 1) and lo3[1:] == (0, 0)
    plain = (k3[1], k3[2], s3[1], s3[2]) if inside else None
    return sp3, out3, ranges, geo, per_plane, plain


def plan(planes: int, sp: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
         dilation: Sequence[int], pads: Sequence[tuple[int, int]], out: Sequence[int]) -> Plan:
    """The :class:`Plan` of a pooling call with 1 to 3 spatial dims (cached per geometry)."""
    sp3, out3, ranges, geo, per_plane, plain = _folded(tuple(sp), tuple(kernel), tuple(stride),
                                                       tuple(dilation), tuple(lo for lo, _ in pads), tuple(out))
    return Plan(planes, sp3, out3, ranges, geo, planes * per_plane, plain)


# ---------------------------------------------------------------------------------------------
# max pooling: y[p, o] = max over the taps in the input; arg[p, o] = flat index in the plane


def _max_forward_loops(xf, ranges, geo, shape, yf, af, first_job, last_job, thread):  # pragma: no cover - compiled
    # xf: (planes, depth*height*width); yf, af: (planes, od*oh*ow); shape: those six sizes
    depth, height, width, od, oh, ow = shape
    sd, sh, sw, dd, dh, dw, pd, ph, pw = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5], geo[6], geo[7], geo[8]
    ld, hd, lh, hh, lw, hw = ranges[0], ranges[1], ranges[2], ranges[3], ranges[4], ranges[5]
    for p in range(np.uint64(first_job), np.uint64(last_job)):  # of planes
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
                                k = row + j * dw
                                v = src[np.uint64(k)]  # (an unsigned index skips the negative-index check)
                                # Ties keep the first maximum.  A plain ``>`` select compiles to
                                # branch-free code; NaN is only noted here and handled below.
                                take = v > best
                                best = v if take else best
                                where = k if take else where
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


def _max_backward_loops(gf, af, xf, cells, size, first_job, last_job, thread):  # pragma: no cover - compiled
    # gf, af: flat (planes, cells) gradient and argmax; xf: flat (planes, size) input gradient
    # a plane's windows on one thread: overlapping windows add serially
    for p in range(np.uint64(first_job), np.uint64(last_job)):
        plane = p * size
        for i in range(size):
            xf[np.uint64(plane + i)] = 0
        first = p * cells
        for o in range(cells):
            at = np.uint64(first + o)
            xf[np.uint64(plane + af[at])] += gf[at]


def _max_plain_loops(xf, kh, kw, sh, sw, shape, yf, af, first_job, last_job, thread):  # pragma: no cover - compiled
    # Windows wholly inside a 2-d plane (no padding, no dilation): the taps in row-major order, each
    # applied to a whole output row at once (a loop the compiler vectorises), with the same choice
    # as above written as one select: a larger value, or a NaN, replaces the best so far.  So ties
    # keep the first maximum, and once a NaN is chosen only a later NaN replaces it (the last NaN).
    # (xf, yf, af: flat; shape: as for _max_forward_loops)
    height, width, oh, ow = shape[1], shape[2], shape[4], shape[5]
    step = np.uint64(sw)
    for p in range(np.uint64(first_job), np.uint64(last_job)):  # of planes
        plane = p * height * width
        for b in range(oh):
            o = np.uint64((p * oh + b) * ow)
            for i in range(kh):
                for j in range(kw):
                    where = (b * sh + i) * width + j  # in the plane, for the first column
                    src = np.uint64(plane + where)
                    if i == 0 and j == 0:
                        for c in range(ow):
                            yf[o + np.uint64(c)] = xf[src + np.uint64(c) * step]
                            af[o + np.uint64(c)] = where + c * sw
                    else:
                        for c in range(ow):
                            v = xf[src + np.uint64(c) * step]
                            best = yf[o + np.uint64(c)]
                            take = (v > best) | (v != v)
                            yf[o + np.uint64(c)] = v if take else best
                            af[o + np.uint64(c)] = where + c * sw if take else af[o + np.uint64(c)]


_max_plain = _kernel(_max_plain_loops)
_max_forward = _kernel(_max_forward_loops)
_max_backward = _kernel(_max_backward_loops)


def _make_max_window(kh, kw, sw):
    # The windows of ``_max_plain_loops`` with the window size and the width stride as constants of
    # the closure: the taps unroll, and each window's best value and its index stay in registers
    # while the loop over a row's windows vectorises (a stride of 2 reads as two interleaved
    # loads).  The same taps in the same order with the same select, so the same result to the
    # bit.  Measured on 2 cores, 2x2 stride 2: N64 C6 28x28 0.76 -> 0.09 ms, N64 C32 28x28 4.0 ->
    # 0.8 ms (the general kernel writes every tap's best back to memory).
    def kernel(xf, sh, shape, yf, af, first_job, last_job, thread):  # pragma: no cover - compiled
        height, width, oh, ow = shape[1], shape[2], shape[4], shape[5]
        for p in range(np.uint64(first_job), np.uint64(last_job)):  # of planes
            plane = p * height * width
            for b in range(oh):
                top = b * sh * width  # the first tap's index in the plane, for the first window
                src = np.uint64(plane + top)
                o = np.uint64((p * oh + b) * ow)
                for c in range(ow):
                    first = np.uint64(c * sw)
                    best = xf[src + first]
                    at = top + c * sw
                    for t in range(1, kh * kw):
                        tap = (t // kw) * width + t % kw
                        v = xf[src + first + np.uint64(tap)]
                        take = (v > best) | (v != v)
                        best = v if take else best
                        at = top + c * sw + tap if take else at
                    yf[o + np.uint64(c)] = best
                    af[o + np.uint64(c)] = at
    return kernel


# windows (kh, kw) and width strides with a kernel of their own, compiled on first use
MAX_WINDOW_SIZES = range(1, 4)
MAX_WINDOW_STRIDES = range(1, 4)


@functools.cache
def _max_window(kh: int, kw: int, sw: int):
    fn = _make_max_window(kh, kw, sw)
    fn.__name__ = fn.__qualname__ = f"_max_window_{kh}x{kw}_s{sw}"  # (its own entry in Numba's cache)
    return _backend.made_kernel(_kernel(fn))


def max_forward(x: np.ndarray, plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    """Window maxima ``(P, *out)`` of ``x`` (``(P, *sp)``, a kernel dtype) and their flat int64
    indices into the plane."""
    x4 = np.ascontiguousarray(x).reshape((plan.planes, *plan.sp))
    y = np.empty((plan.planes, *plan.out), dtype=x.dtype)
    arg = np.empty(y.shape, dtype=np.int64)
    shape = plan.sizes
    if plan.planes and plan.plain and x.dtype.kind == "f":
        kh, kw, sh, sw = plan.plain
        flat = (x4.reshape(-1), y.reshape(-1), arg.reshape(-1))  # (the kernels index flat arguments: see above)
        if kh in MAX_WINDOW_SIZES and kw in MAX_WINDOW_SIZES and sw in MAX_WINDOW_STRIDES:
            xf, yf, af = flat
            _backend.run_jobs(_max_window(kh, kw, sw), plan.planes, xf, sh, shape, yf, af, work=plan.work)
        else:
            _backend.run_jobs(_max_plain, plan.planes, flat[0], *plan.plain, shape, *flat[1:], work=plan.work)
    elif plan.planes:
        _backend.run_jobs(_max_forward, plan.planes, x4.reshape(plan.planes, -1), plan.ranges, plan.geo, shape,
                          y.reshape(plan.planes, -1), arg.reshape(plan.planes, -1), work=plan.work)
    return y, arg


def max_backward(grad_out: np.ndarray, arg: np.ndarray, plan: Plan) -> np.ndarray:
    """``grad_x`` ``(P, prod(sp))``: each window's gradient added to the cell it chose."""
    cells = arg.size // max(plan.planes, 1)
    g2 = contiguous(grad_out).reshape(plan.planes, cells)
    grad_x = np.empty((plan.planes, int(math.prod(plan.sp))), dtype=grad_out.dtype)
    if plan.planes:
        _backend.run_jobs(_max_backward, plan.planes, g2.reshape(-1), arg.reshape(-1), grad_x.reshape(-1), cells,
                          grad_x.shape[1], work=plan.work)
    return grad_x


# ---------------------------------------------------------------------------------------------
# average pooling: y[p, o] = (sum of the taps in the input) / divisor[o]


def _avg_forward_loops(xf, ranges, geo, shape, divisor, zero, yf, first_job, last_job,
                       thread):  # pragma: no cover - compiled
    # xf, yf, shape: as for _max_forward_loops
    depth, height, width, od, oh, ow = shape
    sd, sh, sw, dd, dh, dw, pd, ph, pw = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5], geo[6], geo[7], geo[8]
    kw, padded_width = geo[11], geo[12]
    ld, hd, lh, hh = ranges[0], ranges[1], ranges[2], ranges[3]
    for p in range(np.uint64(first_job), np.uint64(last_job)):  # of planes
        src = xf[p]
        # one row of the input with its zero padding, and one row of window sums
        lines = np.zeros(padded_width, dtype=xf.dtype)
        sums = np.empty(ow, dtype=xf.dtype)
        inside = lines[pw:pw + width]
        for a in range(od):
            z0 = a * sd - pd
            for b in range(oh):
                r0 = b * sh - ph
                # The taps of window (a, b, c) are (its depth and height taps) x (its width taps):
                # first add up the input rows of the first two, whole rows at a time ...
                for col in range(width):
                    inside[col] = zero
                for t in range(ld[a], hd[a]):
                    for i in range(lh[b], hh[b]):
                        row = ((z0 + t * dd) * height + r0 + i * dh) * width
                        src_row = src[row:row + width]
                        for col in range(width):  # (indexing by the loop variable vectorises)
                            inside[col] += src_row[col]
                # ... then each window's width taps of that sum (padding adds zeros), tap by tap.
                for c in range(ow):
                    sums[c] = zero
                for j in range(kw):
                    tap = lines[j * dw:j * dw + (ow - 1) * sw + 1:sw]  # tap j of every window
                    for c in range(ow):
                        sums[c] += tap[c]
                o = (a * oh + b) * ow
                for c in range(ow):
                    yf[p, o + c] = sums[c] / divisor[o + c]


def _avg_backward_loops(gf, ranges, geo, shape, divisor, xf, first_job, last_job,
                        thread):  # pragma: no cover - compiled
    # gf: (planes, od*oh*ow); xf: the input gradient, (planes, depth*height*width)
    depth, height, width, od, oh, ow = shape
    sd, sh, sw, dd, dh, dw, pd, ph, pw = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5], geo[6], geo[7], geo[8]
    kw, padded_width = geo[11], geo[12]
    ld, hd, lh, hh = ranges[0], ranges[1], ranges[2], ranges[3]
    size = depth * height * width
    # a plane's windows on one thread: overlapping windows add serially
    for p in range(np.uint64(first_job), np.uint64(last_job)):
        dst = xf[p]
        lines = np.empty(padded_width, dtype=xf.dtype)
        shares = np.empty(ow, dtype=xf.dtype)
        inside = lines[pw:pw + width]
        for k in range(size):
            dst[k] = 0
        for a in range(od):
            z0 = a * sd - pd
            for b in range(oh):
                r0 = b * sh - ph
                # The adjoint of the forward's two steps: spread each window's share over its
                # width taps in one padded row ...
                o = (a * oh + b) * ow
                for c in range(ow):
                    shares[c] = gf[p, o + c] / divisor[o + c]
                for col in range(padded_width):
                    lines[col] = 0
                for j in range(kw):
                    tap = lines[j * dw:j * dw + (ow - 1) * sw + 1:sw]  # tap j of every window
                    for c in range(ow):
                        tap[c] += shares[c]
                # ... then add its input part to every input row among the depth and height taps.
                for t in range(ld[a], hd[a]):
                    for i in range(lh[b], hh[b]):
                        row = ((z0 + t * dd) * height + r0 + i * dh) * width
                        dst_row = dst[row:row + width]
                        for col in range(width):  # (indexing by the loop variable vectorises)
                            dst_row[col] += inside[col]


def _avg_plain_loops(xf, kh, kw, sh, sw, shape, divisor, sums, yf, first_job, last_job,
                     thread):  # pragma: no cover - compiled
    # Windows that neither overlap nor leave a 2-d plane (no padding, no dilation): the sums of
    # each input column over the window's height taps, in one contiguous pass along the row (a loop
    # that vectorises), then each window's column sums added up over its width taps.  That is the
    # order of the kernel above (height taps first, then width taps), so the same rounding.
    # ``sums`` holds one input row per plane, allocated once by the caller.
    # (xf, yf: flat; shape: as for _max_forward_loops)
    height, width, oh, ow = shape[1], shape[2], shape[4], shape[5]
    used = min(ow * sw, width)  # the columns any window reads (and the gaps between them)
    for p in range(np.uint64(first_job), np.uint64(last_job)):  # of planes
        plane = p * height * width
        t = sums[p]
        for b in range(oh):
            src = np.uint64(plane + b * sh * width)
            for col in range(used):
                t[col] = xf[src + np.uint64(col)]
            for i in range(1, kh):
                row = src + np.uint64(i * width)
                for col in range(used):
                    t[col] += xf[row + np.uint64(col)]
            o = np.uint64((p * oh + b) * ow)
            for c in range(ow):
                acc = t[c * sw]
                for j in range(1, kw):
                    acc += t[c * sw + j]
                yf[o + np.uint64(c)] = acc / divisor[b * ow + c]


def _avg_plain_backward_loops(gf, kh, kw, sh, sw, shape, divisor, shares, xf,
                              first_job, last_job, thread):  # pragma: no cover - compiled
    # The adjoint for windows that neither overlap nor leave the plane: every input cell receives
    # its window's share, or 0 when no window covers it.  The shares of one output row are divided
    # out once, in a loop that vectorises (``shares`` holds one row per plane, allocated once by
    # the caller), and then copied to each of the window's taps: dividing again for every tap made
    # the divisions most of the time (2x2 windows: 4 divisions per window instead of 1).
    # (gf, xf: flat, the upstream and the input gradient; shape: as for _max_forward_loops)
    height, width, oh, ow = shape[1], shape[2], shape[4], shape[5]
    step = np.uint64(sw)
    for p in range(np.uint64(first_job), np.uint64(last_job)):  # of planes
        plane = p * height * width
        share = shares[p]
        for k in range(height * width):
            xf[np.uint64(plane + k)] = 0
        for b in range(oh):
            o = np.uint64((p * oh + b) * ow)
            for c in range(ow):
                share[c] = gf[o + np.uint64(c)] / divisor[b * ow + c]
            for i in range(kh):
                for j in range(kw):
                    dst = np.uint64(plane + (b * sh + i) * width + j)
                    for c in range(ow):
                        xf[dst + np.uint64(c) * step] = share[c]


_avg_plain = _kernel(_avg_plain_loops)
_avg_plain_backward = _kernel(_avg_plain_backward_loops)
_avg_forward = _kernel(_avg_forward_loops)
_avg_backward = _kernel(_avg_backward_loops)


def avg_forward(x: np.ndarray, plan: Plan, divisor: np.ndarray) -> np.ndarray:
    """Window means ``(P, *out)`` of ``x`` (``(P, *sp)``, a kernel dtype): window sums (exact
    int64 sums for integers) divided by ``divisor`` (shape ``out``, whose dtype ``y`` takes)."""
    x4 = np.ascontiguousarray(x).reshape((plan.planes, *plan.sp))
    y = np.empty((plan.planes, *plan.out), dtype=divisor.dtype)
    div = np.ascontiguousarray(divisor).reshape(-1)
    # windows that do not overlap (overlapping ones share row sums in the general kernel, faster)
    if plan.planes and plan.disjoint and x.dtype.kind == "f" and x.dtype == y.dtype:
        sums = np.empty((plan.planes, plan.sp[2]), dtype=x.dtype)
        _backend.run_jobs(_avg_plain, plan.planes, x4.reshape(-1), *plan.plain, plan.sizes, div, sums, y.reshape(-1),
                          work=plan.work)
    elif plan.planes:
        _backend.run_jobs(_avg_forward, plan.planes, x4.reshape(plan.planes, -1), plan.ranges, plan.geo, plan.sizes,
                          div, x.dtype.type(0), y.reshape(plan.planes, -1), work=plan.work)
    return y


def avg_backward(grad_out: np.ndarray, plan: Plan, divisor: np.ndarray) -> np.ndarray:
    """``grad_x`` ``(P, *sp)``: ``grad_out[p, o] / divisor[o]`` added to every input tap of window
    ``o`` (``divisor`` of ``grad_out``'s dtype)."""
    g4 = contiguous(grad_out).reshape((plan.planes, *plan.out))
    grad_x = np.empty((plan.planes, *plan.sp), dtype=grad_out.dtype)
    div = np.ascontiguousarray(divisor).reshape(-1)
    if plan.planes and plan.disjoint:
        shares = np.empty((plan.planes, plan.out[2]), dtype=grad_out.dtype)
        _backend.run_jobs(_avg_plain_backward, plan.planes, g4.reshape(-1), *plan.plain, plan.sizes, div, shares,
                          grad_x.reshape(-1), work=plan.work)
    elif plan.planes:
        _backend.run_jobs(_avg_backward, plan.planes, g4.reshape(plan.planes, -1), plan.ranges, plan.geo, plan.sizes,
                          div, grad_x.reshape(plan.planes, -1), work=plan.work)
    return grad_x


# ----------------------------------------------------------------------------------------------
# Whole planes (a global average pooling): each plane's sum in float64, and each plane's share
# written to all of its cells.  NumPy's route converted the whole input to float64 and multiplied
# by a vector of ones on one thread (N32 C512 7x7: 0.64 ms, torch's pooling 0.32).


def _plane_sums_loops(xf, size, sums, first_job, last_job, thread):  # pragma: no cover - compiled
    # sums[p] = the float64 sum of plane p (xf[p*size:(p+1)*size]): four running sums (values i,
    # i+4, ... each), added (0 + 1) + (2 + 3) at the end, in this order on every machine
    zero = np.float64(0.0)
    count = np.uint64(size)
    for p in range(np.uint64(first_job), np.uint64(last_job)):
        base = p * count
        s0 = s1 = s2 = s3 = zero
        i = np.uint64(0)
        while i + np.uint64(4) <= count:
            s0 += np.float64(xf[base + i])
            s1 += np.float64(xf[base + i + np.uint64(1)])
            s2 += np.float64(xf[base + i + np.uint64(2)])
            s3 += np.float64(xf[base + i + np.uint64(3)])
            i += np.uint64(4)
        if i < count:
            s0 += np.float64(xf[base + i])
        if i + np.uint64(1) < count:
            s1 += np.float64(xf[base + i + np.uint64(1)])
        if i + np.uint64(2) < count:
            s2 += np.float64(xf[base + i + np.uint64(2)])
        sums[p] = (s0 + s1) + (s2 + s3)


def _plane_fill_loops(shares, size, out, first_job, last_job, thread):  # pragma: no cover - compiled
    # out[p*size:(p+1)*size] = shares[p]
    count = np.uint64(size)
    for p in range(np.uint64(first_job), np.uint64(last_job)):
        value = shares[p]
        base = p * count
        for i in range(count):
            out[base + i] = value


_plane_sums = _kernel(_plane_sums_loops)
_plane_fill = _kernel(_plane_fill_loops)


def plane_sums(x: np.ndarray) -> np.ndarray:
    """``(P,)`` float64: the sum of each row of the C-contiguous float ``(P, size)`` array ``x``."""
    sums = np.empty(x.shape[0], np.float64)
    _backend.run_jobs(_plane_sums, x.shape[0], x.reshape(-1), x.shape[1], sums, work=x.size)
    return sums


def plane_fill(shares: np.ndarray, size: int) -> np.ndarray:
    """``(P, size)``: row ``p`` every value ``shares[p]`` (``shares`` C-contiguous, its dtype)."""
    out = np.empty((shares.shape[0], size), shares.dtype)
    _backend.run_jobs(_plane_fill, shares.shape[0], shares, size, out.reshape(-1), work=out.size)
    return out
