"""Compiled kernels (Numba), imported only when Numba is installed and the backend allows it.

Each kernel is the loop of the definition it speeds up, written with a loop order that reads
and writes memory in order, and a ``prange`` over an outer axis whose iterations write disjoint
outputs (so no two threads ever add to the same cell).  ``cache=True`` keeps the compiled code on
disk (in ``__pycache__`` next to this file, or ``NUMBA_CACHE_DIR``), so only the first run of a
new dtype pays the compile time.  All kernels are 2-d; 1-d problems are viewed with a height 1.
"""

from __future__ import annotations

import contextlib

import numba
import numpy as np
from numba import njit, prange

from cnnlab.functional import _backend


@contextlib.contextmanager
def _threads_for(work: int):
    """Run a small kernel on the calling thread only (waking the pool costs more than it saves)."""
    if _backend.parallel_worth_it(work):
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)

# ---------------------------------------------------------------------------------------------
# im2col / col2im, channel-major: cols[(c*kh + i)*kw + j, (b*oh + a)*ow + e] = xp[b, c, a*sh + i*dh, e*sw + j*dw]


@njit(parallel=True, cache=True, nogil=True)
def _im2col(xp, kh, kw, sh, sw, dh, dw, oh, ow, cols):  # pragma: no cover - compiled
    batch, channels = xp.shape[0], xp.shape[1]
    for row in prange(channels * kh * kw):
        c = row // (kh * kw)
        i = (row // kw) % kh
        j = row % kw
        for b in range(batch):
            base = b * oh * ow
            for a in range(oh):
                src = xp[b, c, a * sh + i * dh, j * dw:]
                dst = cols[row, base + a * ow: base + (a + 1) * ow]
                if sw == 1:  # unit stride: a contiguous copy the compiler vectorises
                    for e in range(ow):
                        dst[e] = src[e]
                else:
                    for e in range(ow):
                        dst[e] = src[e * sw]


@njit(parallel=True, cache=True, nogil=True)
def _col2im(cols, kh, kw, sh, sw, dh, dw, oh, ow, grad):  # pragma: no cover - compiled
    batch, channels = grad.shape[0], grad.shape[1]
    for c in prange(channels):  # each thread owns whole channels: no two write one cell
        for i in range(kh):
            for j in range(kw):
                row = (c * kh + i) * kw + j
                for b in range(batch):
                    base = b * oh * ow
                    for a in range(oh):
                        dst = grad[b, c, a * sh + i * dh, j * dw:]
                        src = cols[row, base + a * ow: base + (a + 1) * ow]
                        if sw == 1:
                            for e in range(ow):
                                dst[e] += src[e]
                        else:
                            for e in range(ow):
                                dst[e * sw] += src[e]


def im2col(xp, kernel, stride, dilation):
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    batch, channels, hp, wp = xp.shape
    oh = (hp - dh * (kh - 1) - 1) // sh + 1
    ow = (wp - dw * (kw - 1) - 1) // sw + 1
    cols = np.empty((channels * kh * kw, batch * oh * ow), dtype=xp.dtype)
    with _threads_for(cols.size):
        _im2col(np.ascontiguousarray(xp), kh, kw, sh, sw, dh, dw, oh, ow, cols)
    return cols


def col2im(cols, xp_shape, kernel, stride, dilation, out):
    grad = np.zeros(xp_shape, dtype=cols.dtype)
    with _threads_for(cols.size):
        _col2im(np.ascontiguousarray(cols), *kernel, *stride, *dilation, *out, grad)
    return grad


# ---------------------------------------------------------------------------------------------
# direct convolution: y[b, o, a, e] = sum_{c, i, j} xp[b, g*C_g + c, a*sh + i*dh, e*sw + j*dw] * w[o, c, i, j]


@njit(parallel=True, cache=True, nogil=True)
def _direct_forward(xp, w, sh, sw, dh, dw, groups, y):  # pragma: no cover - compiled
    batch, out_ch, oh, ow = y.shape
    cg, kh, kw = w.shape[1], w.shape[2], w.shape[3]
    og = out_ch // groups
    for job in prange(batch * out_ch):
        b = job // out_ch
        o = job % out_ch
        first = (o // og) * cg
        for c in range(cg):
            for i in range(kh):
                for j in range(kw):
                    wv = w[o, c, i, j]
                    for a in range(oh):
                        src = xp[b, first + c, a * sh + i * dh, j * dw:]
                        dst = y[b, o, a]
                        if sw == 1:  # unit stride: contiguous rows the compiler vectorises
                            for e in range(ow):
                                dst[e] += wv * src[e]
                        else:
                            for e in range(ow):
                                dst[e] += wv * src[e * sw]


@njit(parallel=True, cache=True, nogil=True)
def _direct_grad_w(xp, g, sh, sw, dh, dw, groups, grad_w):  # pragma: no cover - compiled
    batch, out_ch, oh, ow = g.shape
    cg, kh, kw = grad_w.shape[1], grad_w.shape[2], grad_w.shape[3]
    og = out_ch // groups
    for job in prange(out_ch * cg):  # one (o, c) filter slice per iteration
        o = job // cg
        c = job % cg
        channel = (o // og) * cg + c
        # per-position partial sums: the inner loop has no carried sum, so it vectorises
        part = np.zeros((kh, kw, ow), dtype=grad_w.dtype)
        for b in range(batch):
            for a in range(oh):
                gg = g[b, o, a]
                for i in range(kh):
                    row = xp[b, channel, a * sh + i * dh]
                    for j in range(kw):
                        src = row[j * dw:]
                        acc = part[i, j]
                        if sw == 1:
                            for e in range(ow):
                                acc[e] += gg[e] * src[e]
                        else:
                            for e in range(ow):
                                acc[e] += gg[e] * src[e * sw]
        for i in range(kh):
            for j in range(kw):
                grad_w[o, c, i, j] = part[i, j].sum()


@njit(parallel=True, cache=True, nogil=True)
def _direct_grad_x(g, w, sh, sw, dh, dw, groups, grad_xp):  # pragma: no cover - compiled
    batch, out_ch, oh, ow = g.shape
    channels = grad_xp.shape[1]
    cg, kh, kw = w.shape[1], w.shape[2], w.shape[3]
    og = out_ch // groups
    for job in prange(batch * channels):  # each thread owns one (sample, input channel) plane
        b = job // channels
        channel = job % channels
        grp = channel // cg
        c = channel % cg
        for o in range(grp * og, (grp + 1) * og):
            for i in range(kh):
                for j in range(kw):
                    wv = w[o, c, i, j]
                    for a in range(oh):
                        dst = grad_xp[b, channel, a * sh + i * dh, j * dw:]
                        src = g[b, o, a]
                        if sw == 1:
                            for e in range(ow):
                                dst[e] += wv * src[e]
                        else:
                            for e in range(ow):
                                dst[e * sw] += wv * src[e]


def direct_forward(xp, w, stride, dilation, groups, out):
    dtype = np.result_type(xp, w)
    y = np.zeros((xp.shape[0], w.shape[0], *out), dtype=dtype)
    with _threads_for(y.size * w[0].size):
        _direct_forward(np.ascontiguousarray(xp, dtype=dtype), np.ascontiguousarray(w, dtype=dtype),
                        *stride, *dilation, groups, y)
    return y


def direct_grad_w(xp, g, w_shape, stride, dilation, groups):
    grad_w = np.zeros(w_shape, dtype=g.dtype)
    with _threads_for(g.size * grad_w[0].size):
        _direct_grad_w(np.ascontiguousarray(xp, dtype=g.dtype), g, *stride, *dilation, groups, grad_w)
    return grad_w


def direct_grad_x(g, w, xp_shape, stride, dilation, groups):
    grad_xp = np.zeros(xp_shape, dtype=g.dtype)
    with _threads_for(g.size * w[0].size):
        _direct_grad_x(g, np.ascontiguousarray(w, dtype=g.dtype), *stride, *dilation, groups, grad_xp)
    return grad_xp
