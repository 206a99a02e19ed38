"""Compiled kernels (Numba) for im2col/col2im and ReLU, imported only when Numba is installed and
the backend allows it (the direct convolution kernels are in :mod:`cnnlab.functional._numba_direct`
and :mod:`cnnlab.functional._numba_direct_grad_w`, BatchNorm's in :mod:`cnnlab.functional._numba_norm`).

Each kernel is the loop of the definition it speeds up, written with a loop order that reads
and writes memory in order, and jobs along an outer axis that write disjoint outputs (so no two
threads ever add to the same cell), shared among the threads by
:func:`cnnlab.functional._backend.run_jobs`.  ``cache=True`` keeps the compiled code on
disk (in ``__pycache__`` next to this file, or ``NUMBA_CACHE_DIR``), so only the first run of a
new dtype pays the compile time.  All kernels are 2-d; 1-d problems are viewed with a height 1.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit

from cnnlab.functional import _backend
from cnnlab.functional._numba_simd import LANES, vload, vstore

# ---------------------------------------------------------------------------------------------
# im2col / col2im, channel-major: cols[(c*kh + i)*kw + j, (b*oh + a)*ow + e] = xp[b, c, a*sh + i*dh, e*sw + j*dw]


# Each loop family below is written once, in a ``_make_*(unit)`` function, and compiled twice by
# :func:`_variants`: for a unit stride along the width and for any stride.  ``unit`` is a
# constant of the closure, so Numba prunes the branch on it before compiling: each kernel compiles
# and vectorises as if written alone (a branch on the run-time stride inside the loop body
# instead tripled the compile time, and a stride multiplied into every index stopped the
# unit-stride copies from vectorising), and a conv compiles only the one it uses.  The loops index
# the flat arrays with unsigned offsets: a row of a small layer is only ``ow`` values long, and a
# slice per row (or a signed index, which Numba checks for wrap-around) cost more than the copy
# itself; this way the kernels run 2-3x faster than with one slice per row.


def _variants(make):
    """``get(unit, buffered=False)``: the kernel ``make(unit)`` (``make(unit, buffered=True)``),
    compiled on first use under a name of its own (``_make_im2col`` gives ``_im2col`` and
    ``_im2col_strided``, ``_make_direct_grad_x`` also ``..._buffered``): distinct names, so no two
    variants share an entry of Numba's disk cache."""
    name = make.__name__.removeprefix("_make")

    @functools.cache
    def get(unit, buffered=False):
        fn = make(unit, buffered=True) if buffered else make(unit)
        return _compiled(fn, name + ("" if unit else "_strided") + ("_buffered" if buffered else ""))
    return get


def _compiled(fn, name):
    """``fn`` (a closure from a ``_make_*`` function) compiled under its own ``name``: closures
    of one source share a name and line, and would otherwise share an entry of Numba's disk cache."""
    fn.__name__ = fn.__qualname__ = name
    return _backend.made_kernel(_backend.job_kernel(fn))


@njit(inline="always", cache=True)
def _valid_columns(j, dw, pw, sw, width, ow):  # pragma: no cover - compiled
    """The output columns ``e_lo <= e < e_hi`` whose input column ``e*sw + j*dw - pw`` lies inside
    ``[0, width)``: the others read the zero padding."""
    e_lo = min(max(0, -((j * dw - pw) // sw)), ow)  # (at most ow: a row holds ow cells)
    e_hi = max(e_lo, min(ow, (width - 1 + pw - j * dw) // sw + 1))
    return e_lo, e_hi


@njit(inline="always", cache=True)
def _zero_cells(cf, d0, lo, hi):  # pragma: no cover - compiled
    """Zero the cells ``d0 + lo`` to ``d0 + hi - 1`` of a row of columns (the ones that read padding)."""
    for e in range(lo, hi):
        cf[d0 + np.uint64(e)] = 0


# Rows of columns shorter than this many cells have their padding cells zeroed one by one (see
# the im2col kernel)
SHORT_ROW = 32

# The input ``x`` is the unpadded one: ``(ph, pw)`` zero cells are taken to lie before its first
# row and column (and as many as ``oh``, ``ow`` need after its last), so no padded copy is made.
def _make_im2col(unit):
    def kernel(x, kh, kw, sh, sw, dh, dw, ph, pw, oh, ow, cols, zero,
               first_job, last_job, thread):  # pragma: no cover - compiled
        batch, channels, height, width = x.shape
        xf, cf, ncols = x.reshape(-1), cols.reshape(-1), cols.shape[1]
        step = np.uint64(sw)
        # rows shorter than SHORT_ROW: their padding cells are written with ``zero[0]`` (a value
        # LLVM cannot see is 0), cell by cell, where a loop storing a constant 0 became a call of
        # ``memset`` for every row, which cost as much as the row's copy (1-d layers, 7x7 images)
        z = zero[0]
        short = ow < SHORT_ROW
        for row in range(np.uint64(first_job), np.uint64(last_job)):  # of channels * kh * kw
            c = row // (kh * kw)
            i = (row // kw) % kh
            j = row % kw
            e_lo, e_hi = _valid_columns(j, dw, pw, sw, width, ow)
            for b in range(batch):
                dst = row * ncols + b * oh * ow
                for a in range(oh):
                    d0 = np.uint64(dst + a * ow)
                    r = a * sh + i * dh - ph
                    outside = r < 0 or r >= height
                    if outside or e_lo > 0 or e_hi < ow:  # (a row that reads any padding)
                        if short:  # (its padding cells only, one by one)
                            for e in range(np.uint64(0), np.uint64(ow if outside else e_lo)):
                                cf[d0 + e] = z
                            if not outside:
                                for e in range(np.uint64(e_hi), np.uint64(ow)):
                                    cf[d0 + e] = z
                        else:
                            # zeroed whole and its inside copied over: one loop instead of one per
                            # side, which took 1.5-2 s off this kernel's compile time (4.2-5.4 -> 2.9-3.6
                            # s) at the same speed (the row is in L1)
                            _zero_cells(cf, d0, 0, ow)
                    if outside:
                        continue
                    s0 = np.uint64(((b * channels + c) * height + r) * width + e_lo * sw + j * dw - pw)
                    d1 = d0 + np.uint64(e_lo)
                    if unit:
                        for e in range(e_hi - e_lo):
                            cf[d1 + np.uint64(e)] = xf[s0 + np.uint64(e)]
                    else:
                        for e in range(e_hi - e_lo):
                            cf[d1 + np.uint64(e)] = xf[s0 + np.uint64(e) * step]
    return kernel


def _make_col2im(unit):
    def kernel(cols, kh, kw, sh, sw, dh, dw, ph, pw, oh, ow, grad,
               first_job, last_job, thread):  # pragma: no cover - compiled
        batch, channels, height, width = grad.shape
        gf, cf, ncols = grad.reshape(-1), cols.reshape(-1), cols.shape[1]
        step = np.uint64(sw)
        # each thread owns whole channels: no two write one cell
        for c in range(np.uint64(first_job), np.uint64(last_job)):
            for i in range(kh):
                for j in range(kw):
                    row = (c * kh + i) * kw + j
                    e_lo, e_hi = _valid_columns(j, dw, pw, sw, width, ow)
                    for b in range(batch):
                        src = row * ncols + b * oh * ow
                        for a in range(oh):
                            r = a * sh + i * dh - ph
                            if r < 0 or r >= height:  # a padding row: its gradient is dropped
                                continue
                            d0 = np.uint64(((b * channels + c) * height + r) * width + e_lo * sw + j * dw - pw)
                            s0 = np.uint64(src + a * ow + e_lo)
                            if unit:
                                for e in range(e_hi - e_lo):
                                    gf[d0 + np.uint64(e)] += cf[s0 + np.uint64(e)]
                            else:
                                for e in range(e_hi - e_lo):
                                    gf[d0 + np.uint64(e) * step] += cf[s0 + np.uint64(e)]
    return kernel


_im2col = _variants(_make_im2col)
_col2im = _variants(_make_col2im)


def im2col(x, kernel, stride, dilation, pads=((0, 0), (0, 0))):
    """The channel-major column matrix of ``x`` zero-padded by ``pads`` (without padding it)."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    batch, channels, height, width = x.shape
    (ph, ph_hi), (pw, pw_hi) = pads
    oh = (height + ph + ph_hi - dh * (kh - 1) - 1) // sh + 1
    ow = (width + pw + pw_hi - dw * (kw - 1) - 1) // sw + 1
    cols = np.empty((channels * kh * kw, batch * oh * ow), dtype=x.dtype)
    x = np.ascontiguousarray(x)
    _backend.run_jobs(_im2col(sw == 1), channels * kh * kw, x, kh, kw, sh, sw, dh, dw, ph, pw, oh, ow, cols,
                      np.zeros(1, x.dtype), work=cols.size)
    return cols


def col2im(cols, x_shape, kernel, stride, dilation, out, pads=((0, 0), (0, 0)), into=None):
    """The adjoint of :func:`im2col`: the gradient of the unpadded input (padding cells dropped)."""
    if into is None:
        grad = np.zeros(x_shape, dtype=cols.dtype)
    else:  # a contiguous block of a larger gradient (the kernel indexes it flat)
        grad = into
        grad[...] = 0
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out
    cols = np.ascontiguousarray(cols)
    _backend.run_jobs(_col2im(sw == 1), x_shape[1], cols, kh, kw, sh, sw, dh, dw, pads[0][0], pads[1][0], oh, ow, grad,
                      work=cols.size)
    return grad


# 3-d: the same loops with a depth axis outside the height (one compilation each, any stride: 3-d
# layers are rarer, and each variant costs its compile time).  Before these, a 3-d layer built its
# columns by NumPy's copy of a window view and scattered them back tap by tap with strided adds:
# N4 C8 16^3 -> 16 k3 p1, col2im 9 ms of a 22 ms forward+backward.
@_backend.job_kernel
def _im2col3(x, kd, kh, kw, sd, sh, sw, dd, dh, dw, pd, ph, pw, od, oh, ow, cols, zero, first_job, last_job,
             thread):  # pragma: no cover - compiled
    batch, channels, depth, height, width = x.shape
    xf, cf, ncols = x.reshape(-1), cols.reshape(-1), cols.shape[1]
    step = np.uint64(sw)
    # (padding cells written with ``zero[0]``, one by one, as in the 2-d kernel: a row's sides, and
    # whole rows shorter than SHORT_ROW, each a call of ``memset`` otherwise)
    zv = zero[0]
    short = ow < SHORT_ROW
    taps = kd * kh * kw
    for row in range(np.uint64(first_job), np.uint64(last_job)):  # of channels * taps
        c = row // taps
        t = row % taps
        q, i, j = t // (kh * kw), (t // kw) % kh, t % kw
        e_lo, e_hi = _valid_columns(j, dw, pw, sw, width, ow)
        for b in range(batch):
            for z in range(od):
                plane = z * sd + q * dd - pd
                for a in range(oh):
                    d0 = np.uint64(row * ncols + ((b * od + z) * oh + a) * ow)
                    r = a * sh + i * dh - ph
                    if plane < 0 or plane >= depth or r < 0 or r >= height:
                        if short:
                            for e in range(np.uint64(0), np.uint64(ow)):
                                cf[d0 + e] = zv
                        else:
                            _zero_cells(cf, d0, 0, ow)
                        continue
                    for e in range(np.uint64(0), np.uint64(e_lo)):
                        cf[d0 + e] = zv
                    for e in range(np.uint64(e_hi), np.uint64(ow)):
                        cf[d0 + e] = zv
                    s0 = np.uint64((((b * channels + c) * depth + plane) * height + r) * width
                                   + e_lo * sw + j * dw - pw)
                    d1 = d0 + np.uint64(e_lo)
                    for e in range(e_hi - e_lo):
                        cf[d1 + np.uint64(e)] = xf[s0 + np.uint64(e) * step]


@_backend.job_kernel
def _col2im3(cols, kd, kh, kw, sd, sh, sw, dd, dh, dw, pd, ph, pw, od, oh, ow, grad, first_job, last_job,
             thread):  # pragma: no cover - compiled
    batch, channels, depth, height, width = grad.shape
    gf, cf, ncols = grad.reshape(-1), cols.reshape(-1), cols.shape[1]
    step = np.uint64(sw)
    for c in range(np.uint64(first_job), np.uint64(last_job)):  # each thread owns whole channels: no two write one cell
        for t in range(kd * kh * kw):
            q, i, j = t // (kh * kw), (t // kw) % kh, t % kw
            row = c * kd * kh * kw + t
            e_lo, e_hi = _valid_columns(j, dw, pw, sw, width, ow)
            for b in range(batch):
                for z in range(od):
                    plane = z * sd + q * dd - pd
                    if plane < 0 or plane >= depth:
                        continue
                    for a in range(oh):
                        r = a * sh + i * dh - ph
                        if r < 0 or r >= height:  # a padding row: its gradient is dropped
                            continue
                        d0 = np.uint64((((b * channels + c) * depth + plane) * height + r) * width
                                       + e_lo * sw + j * dw - pw)
                        s0 = np.uint64(row * ncols + ((b * od + z) * oh + a) * ow + e_lo)
                        for e in range(e_hi - e_lo):
                            gf[d0 + np.uint64(e) * step] += cf[s0 + np.uint64(e)]


def im2col3(x, kernel, stride, dilation, pads):
    """:func:`im2col` of a 3-d input ``(N, C, D, H, W)``."""
    out = tuple((size + lo + hi - d * (k - 1) - 1) // s + 1
                for size, k, s, d, (lo, hi) in zip(x.shape[2:], kernel, stride, dilation, pads, strict=True))
    cols = np.empty((x.shape[1] * int(np.prod(kernel)), x.shape[0] * int(np.prod(out))), dtype=x.dtype)
    _backend.run_jobs(_im2col3, cols.shape[0], np.ascontiguousarray(x), *kernel, *stride, *dilation,
                      *(lo for lo, _ in pads), *out, cols, np.zeros(1, x.dtype), work=cols.size)
    return cols


def col2im3(cols, x_shape, kernel, stride, dilation, out, pads, into=None):
    """:func:`col2im` of a 3-d input's columns."""
    if into is None:
        grad = np.zeros(x_shape, dtype=cols.dtype)
    else:
        grad = into
        grad[...] = 0
    _backend.run_jobs(_col2im3, x_shape[1], np.ascontiguousarray(cols), *kernel, *stride, *dilation,
                      *(lo for lo, _ in pads), *out, grad, work=cols.size)
    return grad


# ---------------------------------------------------------------------------------------------
# the GEMM path's product (O, N*P) and channel-first arrays (N, O, P), one into the other.  NumPy's
# copy of the transposed view runs its inner loop along P, a handful of values for small layers
# (the MNIST-1D CNN's P = 19, 10, 5): 23-31 us against 6-8 us here for its (25, 100, P) products,
# 483 against 100-125 us for (32, 64, 576).  Each value is copied, or has the bias added once,
# so the results are NumPy's to the bit.


@_backend.job_kernel
def _swap_leading(src, bias, with_bias, count, positions, out, first_job, last_job, thread
                  ):  # pragma: no cover - compiled
    # out[b, a, :] = src[a, b, :] (+ bias[a]); src: flat (A, B, P) with A = bias.size, B = count;
    # out: flat (B, A, P)
    rows, n, p = np.uint64(bias.size), np.uint64(count), np.uint64(positions)
    for a in range(np.uint64(first_job), np.uint64(last_job)):  # of the source's first axis
        value = bias[a]
        for b in range(n):
            s, d = (a * n + b) * p, (b * rows + a) * p
            if with_bias:
                for e in range(p):
                    out[d + e] = src[s + e] + value
            else:
                for e in range(p):
                    out[d + e] = src[s + e]


def _swapped(src, bias=None, out=None):
    """``out[b, a, :] = src[a, b, :] (+ bias[a])`` for a C-contiguous ``(A, B, P)`` array of a float
    kernel dtype: a new (or the given contiguous) ``(B, A, P)`` array."""
    rows, count, positions = src.shape
    out = np.empty((count, rows, positions), src.dtype) if out is None else out
    given = bias is not None
    values = bias.astype(src.dtype, copy=False) if given else np.zeros(rows, src.dtype)
    _backend.run_jobs(_swap_leading, rows, _backend.read_only(src.reshape(-1)),
                      _backend.read_only(np.ascontiguousarray(values)), given, count, positions, out.reshape(-1),
                      work=src.size)
    return out


def channel_first(prod, batch, bias=None, out=None):
    """``out[b, o, p] = prod[o, b*P + p] (+ bias[o])``: the product ``(O, N*P)`` (C-contiguous, a
    float kernel dtype) as a new (or the given contiguous) ``(N, O, P)`` array."""
    return _swapped(prod.reshape(prod.shape[0], batch, -1), bias, out)


def channel_major(g):
    """``out[o, b*P + p] = g[b, o, p]``: the channel-first ``(N, O, P)`` array ``g`` (C-contiguous,
    a float kernel dtype) as a new ``(O, N*P)`` one."""
    batch, channels, positions = g.shape
    return _swapped(g).reshape(channels, batch * positions)


# ---------------------------------------------------------------------------------------------
# whether every value of a float32 array is finite: its exponent bits are not all ones


_EXPONENT32 = np.uint32(0x7F800000)
# Values a job of all_finite reads (64 KiB)
FINITE_JOB = 1 << 14


@_backend.job_kernel
def _largest_exponent(bits, per, out, first_job, last_job, thread):  # pragma: no cover - compiled
    # bits: the values' bits (uint32); out[thread]: the largest exponent field of the values of
    # jobs first_job .. last_job-1 (``per`` values a job) and of what out[thread] held
    top = out[thread]
    for i in range(np.uint64(first_job * per), np.uint64(min(last_job * per, bits.shape[0]))):
        top = max(top, bits[i] & _EXPONENT32)  # (an integer max: it vectorises, unlike a float test)
    out[thread] = top


def all_finite(a: np.ndarray) -> bool:
    """``bool(np.isfinite(a).all())`` of a float32 array in one pass and no temporary array, on
    both cores for large ones (the 6.4 MB weights of a 512-channel 7x7 layer, read cold after a
    layer: 450 us by NumPy on one core, whose temporary array of 1.6 MB is written and read again)."""
    flat = np.ascontiguousarray(a, np.float32).reshape(-1)
    out = np.zeros(_backend.kernel_threads(), np.uint32)
    _backend.run_jobs(_largest_exponent, -(-flat.size // FINITE_JOB), _backend.read_only(flat.view(np.uint32)),
                      FINITE_JOB, out, work=flat.size)
    return bool(out.max(initial=0) < _EXPONENT32)


# ---------------------------------------------------------------------------------------------
# ReLU, and its backward from the mask of kept values: branch-free selects over the flat arrays


@_backend.job_kernel
def _relu(x, out, first_job, last_job, thread):  # pragma: no cover - compiled
    for i in range(np.uint64(first_job), np.uint64(last_job)):  # (unsigned: no wrap-around check, so it vectorises)
        # as np.maximum(x, 0): NaN stays NaN, -0.0 gives +0.0
        out[i] = 0 if x[i] <= 0 else x[i]


def relu(x):
    """``max(x, 0)`` of a floating array on both cores, bit for bit as ``np.maximum(x, 0)``."""
    out = np.empty(x.shape, x.dtype)
    _backend.run_jobs(_relu, out.size, np.ascontiguousarray(x).reshape(-1), out.reshape(-1), work=4 * out.size)
    return out


@_backend.job_kernel
def _relu_keep(x, out, keep, first_job, last_job, thread):  # pragma: no cover - compiled
    for i in range(np.uint64(first_job), np.uint64(last_job)):
        below = x[i] <= 0  # (False for NaN: NaN is kept, and passes its gradient, as in relu_backward)
        out[i] = 0 if below else x[i]
        keep[i] = 0 if below else 1


def relu_keep(x):
    """:func:`relu` and, in one pass, ``keep``: a ``np.bool_`` array, True where the output is not
    ``<= 0`` (positive or NaN), what the backward needs of it."""
    out = np.empty(x.shape, x.dtype)
    keep = np.empty(x.shape, np.bool_)
    _backend.run_jobs(_relu_keep, out.size, np.ascontiguousarray(x).reshape(-1), out.reshape(-1),
                      keep.reshape(-1).view(np.uint8), work=5 * out.size)
    return out, keep


@_backend.job_kernel
def _relu_grad_kept(g, keep, out, first_job, last_job, thread):  # pragma: no cover - compiled
    for i in range(np.uint64(first_job), np.uint64(last_job)):
        out[i] = 0 if keep[i] == 0 else g[i]


@_backend.job_kernel
def _relu_grad_kept_one(g, keep, out, first_job, last_job, thread):  # pragma: no cover - compiled
    value = g[0]
    for i in range(np.uint64(first_job), np.uint64(last_job)):
        out[i] = 0 if keep[i] == 0 else value


def relu_grad_kept(g, keep):
    """``g`` where ``keep`` (a ``np.bool_`` array, :func:`relu_keep`'s), else 0; ``g`` is broadcast to
    ``keep``'s shape, and one value broadcast is read as that value."""
    g = np.broadcast_to(g, keep.shape)
    out = np.empty(keep.shape, g.dtype)
    if not out.size:
        return out
    flat_keep = np.ascontiguousarray(keep).reshape(-1).view(np.uint8)
    if not any(g.strides):
        _backend.run_jobs(_relu_grad_kept_one, out.size, np.array([g.flat[0]], g.dtype), flat_keep,
                          out.reshape(-1), work=4 * out.size)
        return out
    _backend.run_jobs(_relu_grad_kept, out.size, np.ascontiguousarray(g).reshape(-1), flat_keep, out.reshape(-1),
                      work=4 * out.size)
    return out


@_backend.job_kernel
def _fill(value, out, first_job, last_job, thread):  # pragma: no cover - compiled
    v = value[0]
    for i in range(np.uint64(first_job), np.uint64(last_job)):
        out[i] = v


def filled(a):
    """``a``, one value broadcast (every stride 0: the gradient a ``sum`` or ``mean`` hands back),
    written out as a new C-contiguous array on both cores, bit for bit that value."""
    out = np.empty(a.shape, a.dtype)
    if out.size:
        _backend.run_jobs(_fill, out.size, np.array([a.flat[0]], a.dtype), out.reshape(-1), work=out.size)
    return out


def contiguous(a):
    """``np.ascontiguousarray(a)``, by :func:`filled` where :func:`cnnlab.functional._backend.fillable`
    says so (a large gradient that is one value broadcast)."""
    return filled(a) if _backend.fillable(a) else np.ascontiguousarray(a)


# ---------------------------------------------------------------------------------------------
# zero padding of planes, one pass: each padded row written once, its border zeroed and its
# interior copied (NumPy's ``np.zeros`` then a copy of the interior writes the whole array twice,
# on one core)


@_backend.job_kernel
def _pad_planes(x, height, width, lo_h, lo_w, hp, wp, out, first_job, last_job, thread
                ):  # pragma: no cover - compiled
    # x: flat (P, height, width); out: flat (P, hp, wp), with lo_h zero rows and lo_w zero columns
    # before x's cells; jobs: planes first..last-1
    for p in range(np.uint64(first_job), np.uint64(last_job)):
        src = p * np.uint64(height * width)
        dst = p * np.uint64(hp * wp)
        for r in range(hp):
            row = dst + np.uint64(r * wp)
            i = r - lo_h
            if 0 <= i < height:
                at = src + np.uint64(i * width)
                for q in range(np.uint64(lo_w)):
                    out[row + q] = 0
                start = row + np.uint64(lo_w)
                for q in range(np.uint64(width)):
                    out[start + q] = x[at + q]
                for q in range(np.uint64(lo_w + width), np.uint64(wp)):
                    out[row + q] = 0
            else:
                for q in range(np.uint64(wp)):
                    out[row + q] = 0


@_backend.job_kernel
def _pad_planes_f32(x, height, width, lo_h, lo_w, hp, wp, out, first_job, last_job, thread
                    ):  # pragma: no cover - compiled
    # as _pad_planes, float32 rows of width >= 8: a padded plane is contiguous, so it is a run of
    # zeros, then each row's cells followed by the zeros up to the next row's first cell (the last
    # row's run reaches the plane's end); a row is copied in vectors of 8, the last one overlapping
    # its neighbour instead of a scalar tail (rows of 14 ran at 50 cycles each before)
    gap = np.uint64(wp - width)
    for p in range(np.uint64(first_job), np.uint64(last_job)):
        src = p * np.uint64(height * width)
        dst = p * np.uint64(hp * wp)
        at = dst + np.uint64(lo_h * wp + lo_w)
        for q in range(dst, at):
            out[q] = 0
        for i in range(height):
            s = src + np.uint64(i * width)
            for j in range(0, width - LANES, LANES):
                vstore(out, at + np.uint64(j), vload(x, s + np.uint64(j)))
            tail = np.uint64(width - LANES)
            vstore(out, at + tail, vload(x, s + tail))
            at += np.uint64(width)
            end = at + gap if i + 1 < height else dst + np.uint64(hp * wp)
            for q in range(at, end):
                out[q] = 0
            at = end


def pad_planes(x, pads):
    """``x`` (float32 or float64, 1 or 2 spatial axes) zero-padded by ``pads`` (pairs, >= 0), on
    both cores: the same array as :func:`cnnlab.functional._windows.pad`'s, C-contiguous."""
    spatial = x.shape[2:]
    out = np.empty(x.shape[:2] + tuple(n + lo + hi for n, (lo, hi) in zip(spatial, pads, strict=True)), x.dtype)
    if out.size:
        (lo_h, _), (lo_w, _) = ((0, 0), *pads) if len(spatial) == 1 else pads
        height, width = (1, *spatial) if len(spatial) == 1 else spatial
        hp, wp = (1, *out.shape[2:]) if len(spatial) == 1 else out.shape[2:]
        flat = _backend.read_only(np.ascontiguousarray(x).reshape(-1))
        kernel = _pad_planes_f32 if x.dtype == np.float32 and width >= LANES and height else _pad_planes
        _backend.run_jobs(kernel, x.shape[0] * x.shape[1], flat, height, width, lo_h, lo_w, hp, wp,
                          out.reshape(-1), work=out.size)
    return out
