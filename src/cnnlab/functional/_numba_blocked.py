"""Compiled kernels of first layers (Numba).  The backward's: a stride-1, ungrouped convolution
with a few input channels (at most :data:`BLOCK`, as :func:`cnnlab.functional._conv_kernels.choose_method`
gives the direct forward: an image's first layer), whose two gradients each read one operand once
for :data:`BLOCK` filters or input channels at a time.

Both gradients are sums over the whole batch.  The GEMM path computes them as two thin products
(``27 x 65536`` by ``65536 x 32`` for N64 C3 32x32 -> 32 k3), which stream the column matrix and
a transposed copy of the upstream gradient through memory at about 25 GFLOP/s; the direct kernels
of :mod:`cnnlab.functional._numba_direct` (and the weight gradient's of
:mod:`cnnlab.functional._numba_direct_grad_w`) do one multiply-add per value loaded.  The
kernels here keep :data:`BLOCK` running sums in registers, so every value loaded feeds
:data:`BLOCK` of them:

- weight gradient (:func:`grad_w`):
  ``grad_w[o, c, i, j] = sum_{b, a, e} g[b, o, a, e] * xp[b, c, a + i*dh, e + j*dw]``.
  A job owns a block of 4 filters and a slice of the batch.  For each sample it copies the
  block's 4 planes of ``g`` into a buffer of the thread at the pitch ``wp`` of the padded input
  (the cells ``e >= ow`` of each row zero), and then, for each tap, runs one loop over the flat
  positions ``p = a*wp + e`` that adds ``g[q][p] * xp[p + tap]`` into 4 sums at once.  The sums
  are taken in a different order from the loop reference's (vectorised partial sums), so they may
  differ from it in the last bits of a float; integers stay exact.  The zero cells of the buffer
  multiply input cells that are no pair of the definition, so the input must be finite (the
  caller checks; ``inf * 0`` would be ``nan``).  For float32 and kernels at least
  :data:`ROW_TAPS` wide, the same jobs run with vectors written out
  (:func:`_grad_w_rows_loops`): 3 taps of a kernel row by the 4 filters, 8 positions a step,
  each loaded vector of the input feeding 4 sums and each of the gradient 3 (N64 C3 32x32 -> 32
  k3: 39 -> 60 GFLOP/s on one core; on 2 cores, one process alternating, the weight gradient
  1.47 -> 0.88 ms; LeNet-5's first layer 268 -> 205 us).
- input gradient (:func:`grad_x`), the gather form of :mod:`cnnlab.functional._numba_direct`:
  ``grad_x[b, c, r, q] = sum_{o, i, j} gp[b, o, r + i*dh, q + j*dw] * w[o, c, kh-1-i, kw-1-j]``,
  ``gp`` the upstream gradient zero-padded by ``(k-1)*d - pad`` cells.  A job owns a sample: it
  copies each plane of ``g`` into the interior of a zero-bordered buffer of its thread, and adds
  each kernel row's taps for all (at most 4) input channels at once, one load of ``g`` for 4 sums
  (kept in a row of ``scratch`` per channel).  The zeros around ``g`` are multiplied by every
  weight, so the weights must be finite (the caller checks).

Measured on 2 cores against the GEMM backward (medians, one process): N64 C3 32x32 -> 32 k3 p1
weight gradient 5.4 -> 2.4 ms, input gradient 4.3 -> 2.3 ms (torch's whole forward+backward:
10.6-10.9 ms); N128 C1 28x28 -> 24 k3 p1 weight gradient 3.5 -> 1.2 ms.

The forward of such layers (:func:`forward`, for float32 rows of at least 16 outputs and a unit
stride along them; any other direct problem keeps :mod:`cnnlab.functional._numba_direct`'s loops)
is a register block of 6 filters by 16 positions of an output row: per tap, two vector loads of
the input and six broadcast weights feed twelve vector multiply-adds, and the block's sums are
stored as twelve vectors.  The direct loops load one input value per multiply-add.  Measured on
2 cores, kernel alone, direct loops -> block: N64 C3 34x34 (padded) -> 32 k3 3.26 -> 1.79 ms,
N64 C1 28x28 -> 32 k5 2.29 -> 1.13 ms, N64 C3 36x36 -> 64 k5 14.2 -> 6.1 ms.
"""

from __future__ import annotations

import functools

import numba
import numpy as np

from cnnlab.functional import _backend
from cnnlab.functional._backend import read_only
from cnnlab.functional._numba_simd import LANES, fma_block, vfma, vload, vstore, vsum, vzero

# Filters (weight gradient) or input channels (input gradient) summed at once.
BLOCK = 4


@numba.njit(inline="always")
def _gradient_planes(gf, gb, b, out_ch, first, filters, oh, ow, span, wp):  # pragma: no cover - compiled
    # sample b's upstream gradient of the filters first .. first + filters - 1 into rows of gb at
    # the padded input's pitch wp (filter q's cell (a, e) at q*span + a*wp + e; the cells e >= ow
    # are left as they are: zeros)
    for q in range(filters):
        for a in range(oh):
            src = np.uint64(((b * out_ch + first + q) * oh + a) * ow)
            dst = np.uint64(q * span + a * wp)
            for e in range(ow):
                gb[dst + np.uint64(e)] = gf[src + np.uint64(e)]


@numba.njit(inline="always")
def _job_block(job, slices, per_slice, batch, out_ch, span, parts, gbufs, thread, zero):  # pragma: no cover - compiled
    # what a weight-gradient job (of blocks * slices) works on: the sums of its slice of the batch,
    # its block's first filter and count of filters (at most BLOCK), the thread's buffer for their
    # upstream gradient, zeroed (rows of absent filters, and the cells e >= ow, stay zero), and the
    # slice's samples b0 .. b1 - 1
    jb = np.int64(job)
    sl = jb % slices
    first = jb // slices * BLOCK
    gb = gbufs[thread]
    for k in range(BLOCK * span):
        gb[k] = zero
    return parts[sl], first, min(BLOCK, out_ch - first), gb, sl * per_slice, min(batch, (sl + 1) * per_slice)


def _grad_w_loops(xp, g, dh, dw, slices, gbufs, zero, parts,
                  first_job, last_job, thread):  # pragma: no cover - compiled
    # ``parts[s, o, c, i, j]``: the sum over slice ``s`` of the batch (zeros on entry); ``zero``: a
    # zero of its dtype (passed in: ``np.zeros`` in the kernel, when it had a ``prange``, was a
    # parallel loop of its own, about 1 s more to compile)
    batch, out_ch, oh, ow = g.shape
    channels, height, wp = xp.shape[1], xp.shape[2], xp.shape[3]
    kh, kw = parts.shape[3], parts.shape[4]
    span = (oh - 1) * wp + ow
    per_slice = -(-batch // slices)
    xf, gf = xp.reshape(-1), g.reshape(-1)
    g1, g2, g3 = np.uint64(span), np.uint64(2 * span), np.uint64(3 * span)
    for job in range(np.uint64(first_job), np.uint64(last_job)):  # of blocks * slices
        part, first, filters, gb, b0, b1 = _job_block(job, slices, per_slice, batch, out_ch, span, parts, gbufs,
                                                      thread, zero)
        for b in range(b0, b1):
            _gradient_planes(gf, gb, b, out_ch, first, filters, oh, ow, span, wp)
            for c in range(channels):
                plane = (b * channels + c) * height * wp
                for i in range(kh):
                    for j in range(kw):
                        s0 = np.uint64(plane + i * dh * wp + j * dw)
                        a0 = a1 = a2 = a3 = zero
                        for p in range(span):
                            xv = xf[s0 + np.uint64(p)]
                            u = np.uint64(p)
                            a0 += gb[u] * xv
                            a1 += gb[g1 + u] * xv
                            a2 += gb[g2 + u] * xv
                            a3 += gb[g3 + u] * xv
                        part[first, c, i, j] += a0
                        part[first + 1, c, i, j] += a1
                        part[first + 2, c, i, j] += a2
                        part[first + 3, c, i, j] += a3


@functools.cache
def _grad_w_blocks():
    # compiled on first use (and recorded, as every kernel made then: ``_backend.made_kernel``);
    # ``fastmath`` allows the reassociation that vectorises the loop over ``p``
    return _backend.made_kernel(_backend.job_kernel(_grad_w_loops, fastmath={"reassoc"}))


# Taps of a kernel row whose float32 weight gradient :func:`_grad_w_rows_loops` sums at once.
ROW_TAPS = 3


def _grad_w_rows_loops(xp, g, dh, dw, slices, gbufs, scratch, parts,
                       first_job, last_job, thread):  # pragma: no cover - compiled
    # _grad_w_loops for float32 and kernels at least ROW_TAPS wide, with its jobs, buffers and
    # parts, written with vectors: 8 positions at a time, ROW_TAPS taps of a kernel row by the
    # BLOCK filters (12 vectors of sums: per step three loads of the input and four of the
    # gradient, where the scalar loop's vectorised form loaded the input once per four sums and
    # ran at 39 GFLOP/s on one core, the N64 C3 32x32 -> 32 k3 layer).  A row's taps go in groups
    # from j0 = 0, 3, 6, ...; the last group starts at kw - 3 (it overlaps the one before it, whose
    # taps it does not add again).  Each sum: the lanes' partial sums over the positions below a
    # multiple of 8 (added by vsum), then the rest one by one.
    batch, out_ch, oh, ow = g.shape
    channels, height, wp = xp.shape[1], xp.shape[2], xp.shape[3]
    kh, kw = parts.shape[3], parts.shape[4]
    span = (oh - 1) * wp + ow
    span8 = span // LANES * LANES
    per_slice = -(-batch // slices)
    xf, gf = xp.reshape(-1), g.reshape(-1)
    hb = scratch[thread]
    zero = np.float32(0.0)
    g1, g2, g3 = span, 2 * span, 3 * span
    for job in range(np.uint64(first_job), np.uint64(last_job)):  # of blocks * slices
        part, first, filters, gb, b0, b1 = _job_block(job, slices, per_slice, batch, out_ch, span, parts, gbufs,
                                                      thread, zero)
        for b in range(b0, b1):
            _gradient_planes(gf, gb, b, out_ch, first, filters, oh, ow, span, wp)
            for c in range(channels):
                plane = (b * channels + c) * height * wp
                for i in range(kh):
                    row = plane + i * dh * wp
                    for j0 in range(0, kw, ROW_TAPS):
                        start = min(j0, kw - ROW_TAPS)
                        s0 = np.uint64(row + start * dw)
                        s1, s2 = s0 + np.uint64(dw), s0 + np.uint64(2 * dw)
                        a00 = a01 = a02 = a03 = a10 = a11 = a12 = a13 = a20 = a21 = a22 = a23 = vzero()
                        for p in range(0, span8, LANES):
                            # the three input vectors held, the gradient's four one after another: 12
                            # sums, 3 inputs and 1 gradient vector fill AVX2's 16 registers (with
                            # the 4 gradient vectors held, two sums went to the stack every step).
                            # The same sums in the same order.  Round 48, Zen 3, forward+backward
                            # alternating in one process (ms): N64 C3 32x32 -> 32 k3 p1 8.81 -> 7.53
                            # and 8.04 -> 6.77 (one thread 11.63 -> 9.50); N64 C1 28x28 -> 32 k5
                            # 6.93 -> 5.85 and 5.50 -> 4.59
                            u = np.uint64(p)
                            x0, x1, x2 = vload(xf, s0 + u), vload(xf, s1 + u), vload(xf, s2 + u)
                            v = vload(gb, u)
                            a00, a10, a20 = vfma(a00, x0, v), vfma(a10, x1, v), vfma(a20, x2, v)
                            v = vload(gb, g1 + u)
                            a01, a11, a21 = vfma(a01, x0, v), vfma(a11, x1, v), vfma(a21, x2, v)
                            v = vload(gb, g2 + u)
                            a02, a12, a22 = vfma(a02, x0, v), vfma(a12, x1, v), vfma(a22, x2, v)
                            v = vload(gb, g3 + u)
                            a03, a13, a23 = vfma(a03, x0, v), vfma(a13, x1, v), vfma(a23, x2, v)
                        t00, t01, t02, t03 = vsum(a00, hb), vsum(a01, hb), vsum(a02, hb), vsum(a03, hb)
                        t10, t11, t12, t13 = vsum(a10, hb), vsum(a11, hb), vsum(a12, hb), vsum(a13, hb)
                        t20, t21, t22, t23 = vsum(a20, hb), vsum(a21, hb), vsum(a22, hb), vsum(a23, hb)
                        for p in range(span8, span):
                            u = np.uint64(p)
                            y0, y1, y2 = xf[s0 + u], xf[s1 + u], xf[s2 + u]
                            h0, h1, h2, h3 = gb[u], gb[g1 + u], gb[g2 + u], gb[g3 + u]
                            t00, t01, t02, t03 = t00 + h0 * y0, t01 + h1 * y0, t02 + h2 * y0, t03 + h3 * y0
                            t10, t11, t12, t13 = t10 + h0 * y1, t11 + h1 * y1, t12 + h2 * y1, t13 + h3 * y1
                            t20, t21, t22, t23 = t20 + h0 * y2, t21 + h1 * y2, t22 + h2 * y2, t23 + h3 * y2
                        if start >= j0:
                            part[first, c, i, start] += t00
                            part[first + 1, c, i, start] += t01
                            part[first + 2, c, i, start] += t02
                            part[first + 3, c, i, start] += t03
                        if start + 1 >= j0:
                            part[first, c, i, start + 1] += t10
                            part[first + 1, c, i, start + 1] += t11
                            part[first + 2, c, i, start + 1] += t12
                            part[first + 3, c, i, start + 1] += t13
                        part[first, c, i, start + 2] += t20
                        part[first + 1, c, i, start + 2] += t21
                        part[first + 2, c, i, start + 2] += t22
                        part[first + 3, c, i, start + 2] += t23


@functools.cache
def _grad_w_rows():
    # compiled on first use, as _grad_w_blocks (no fastmath: the vectors are written out)
    return _backend.made_kernel(_backend.job_kernel(_grad_w_rows_loops))


def _make_grad_x_gather(width):
    # ``width``: the kernel's width, a constant of the closure, so the taps of a kernel row unroll
    # inside the loop over positions (as the direct forward's row kernels do)
    def kernel(g, wt, dh, dw, top, left, bufs, scratch, zero, grad_x,
               first_job, last_job, thread):  # pragma: no cover - compiled
        # (``zero``: of grad_x's dtype, passed in as in _grad_w_loops)
        batch, out_ch, oh, ow = g.shape
        channels, height, wid = grad_x.shape[1], grad_x.shape[2], grad_x.shape[3]
        wp = bufs.shape[2]
        kh = wt.shape[1]
        span = (height - 1) * wp + wid
        gf, wf, xf = g.reshape(-1), wt.reshape(-1), grad_x.reshape(-1)
        s1, s2, s3 = np.uint64(span), np.uint64(2 * span), np.uint64(3 * span)
        for b in range(np.uint64(first_job), np.uint64(last_job)):  # of batch
            buf = bufs[thread].reshape(-1)  # (its border is zero and never written)
            sums = scratch[thread]
            for k in range(BLOCK * span):
                sums[k] = zero
            for o in range(out_ch):
                for a in range(oh):
                    src = np.uint64(((b * out_ch + o) * oh + a) * ow)
                    dst = np.uint64((a + top) * wp + left)
                    for e in range(ow):
                        buf[dst + np.uint64(e)] = gf[src + np.uint64(e)]
                for i in range(kh):
                    row = np.uint64(i * dh * wp)
                    taps = (o * kh + i) * width * BLOCK
                    for p in range(span):
                        u = np.uint64(p)
                        a0, a1, a2, a3 = sums[u], sums[s1 + u], sums[s2 + u], sums[s3 + u]
                        for j in range(width):
                            gv = buf[row + u + np.uint64(j * dw)]
                            t = taps + j * BLOCK
                            a0 += wf[t] * gv
                            a1 += wf[t + 1] * gv
                            a2 += wf[t + 2] * gv
                            a3 += wf[t + 3] * gv
                        sums[u], sums[s1 + u], sums[s2 + u], sums[s3 + u] = a0, a1, a2, a3
            for c in range(channels):
                out = (b * channels + c) * height * wid
                for r in range(height):
                    src = np.uint64(c * span + r * wp)
                    dst = np.uint64(out + r * wid)
                    for q in range(wid):
                        xf[dst + np.uint64(q)] = sums[src + np.uint64(q)]
    return kernel


@functools.cache
def _grad_x_gather(width):
    from cnnlab.functional._numba_kernels import _compiled

    return _compiled(_make_grad_x_gather(width), f"_grad_x_gather{width}")


def grad_w(xp, g, w_shape, dilation):
    """The weight gradient, ``xp`` the padded input (finite: see above)."""
    out_ch = w_shape[0]
    blocks = -(-out_ch // BLOCK)
    threads = numba.config.NUMBA_NUM_THREADS
    # enough jobs for every thread: slices of the batch, whose sums are added in a fixed order (so
    # which thread runs a job changes nothing, and the jobs can go out balanced)
    slices = max(1, min(g.shape[0], -(-2 * threads // blocks)))
    parts = np.zeros((slices, blocks * BLOCK, *w_shape[1:]), dtype=g.dtype)
    span = (g.shape[2] - 1) * xp.shape[3] + g.shape[3]
    xp, g = np.ascontiguousarray(xp, dtype=g.dtype), np.ascontiguousarray(g)
    gbufs = np.empty((threads, BLOCK * span), g.dtype)
    work = g.size * int(np.prod(w_shape[1:]))
    if g.dtype == np.float32 and w_shape[-1] >= ROW_TAPS:
        _backend.run_jobs(_grad_w_rows(), blocks * slices, read_only(xp), read_only(g), *dilation, slices, gbufs,
                          np.empty((threads, LANES), np.float32), parts, work=work, balanced=True)
    else:
        _backend.run_jobs(_grad_w_blocks(), blocks * slices, xp, g, *dilation, slices, gbufs, g.dtype.type(0), parts,
                          work=work, balanced=True)
    total = parts[0]
    for s in range(1, slices):
        total += parts[s]
    return np.ascontiguousarray(total[:out_ch])


def grad_x(g, w, x_shape, dilation, pads):
    """The gradient of the unpadded input ``x`` (shape ``x_shape``) of the convolution of ``x``
    zero-padded by ``pads`` with ``w`` (finite: see above)."""
    from cnnlab.functional._numba_direct import gather_padding

    out_ch, channels, kh, kw = w.shape
    (dh, dw) = dilation
    # g zero-padded by (k-1)*d - pad on each side, or cropped where that is negative
    g, ((top, bottom), (left, right)) = gather_padding(g, (kh, kw), dilation, pads)
    g = np.ascontiguousarray(g)
    # wt[o, i, j, c] = w[o, c, kh-1-i, kw-1-j], the channels padded with zero filters to BLOCK
    wt = np.zeros((out_ch, kh, kw, BLOCK), dtype=g.dtype)
    wt[..., :channels] = w[:, :, ::-1, ::-1].transpose(0, 2, 3, 1)
    threads = numba.config.NUMBA_NUM_THREADS
    hp, wp = g.shape[2] + top + bottom, g.shape[3] + left + right
    span = (x_shape[2] - 1) * wp + x_shape[3]
    grad = np.empty(x_shape, dtype=g.dtype)
    _backend.run_jobs(_grad_x_gather(kw), g.shape[0], g, wt, dh, dw, top, left, np.zeros((threads, hp, wp), g.dtype),
                      np.empty((threads, BLOCK * span), g.dtype), g.dtype.type(0), grad, work=g.size * w[0].size,
                      balanced=True)
    return grad


def gradients(grad_out, xp, weight, dilation, crop, which):
    """``(grad_x, grad_w)`` of a convolution of ``x`` zero-padded by ``crop`` (``((lo, hi), ...)``
    per spatial dim, or None) into ``xp`` with ``weight``: the entries ``which`` asks for (the
    others None), ``grad_x`` of the unpadded ``x``.  1-d problems are viewed with a height 1."""
    one_d = weight.ndim == 3
    pads = tuple(crop) if crop else ((0, 0),) * (weight.ndim - 2)
    if one_d:
        xp, weight, grad_out = xp[:, :, None, :], weight[:, :, None, :], grad_out[:, :, None, :]
        dilation, pads = (1, *dilation), ((0, 0), *pads)
    x_shape = (*xp.shape[:2], *(size - lo - hi for size, (lo, hi) in zip(xp.shape[2:], pads, strict=True)))
    gx = grad_x(grad_out, weight, x_shape, tuple(dilation), pads) if which[0] else None
    gw = grad_w(xp, grad_out, weight.shape, tuple(dilation)) if which[1] else None
    if one_d:
        gx = None if gx is None else gx[:, :, 0, :]
        gw = None if gw is None else gw[:, :, 0, :]
    return gx, gw


# The forward's register block: filters by output positions (two vectors of 8 along a row).
F_FILTERS, F_POSITIONS = 6, 16


@_backend.job_kernel
def _forward_block(xp, wpk, channels, height, wid, sh, dh, dw, kh, kw, oh, ow, out_ch, y, first_job, last_job, thread
                   ):  # pragma: no cover - compiled
    # xp: flat (N, C, height, wid) padded input; wpk: flat [o // 6][tap][o % 6] packed weights
    # (taps (c, i, j) in order, zeros past out_ch); y: flat (N, O, oh, ow), ow >= 16; job:
    # (sample b, block of 6 filters), every output row, 16 positions at a time (the last 16 of a
    # row overlap the block before them when ow is no multiple of 16: they are written twice, with
    # the same values)
    taps = channels * kh * kw
    blocks = (out_ch + F_FILTERS - 1) // F_FILTERS
    plane = height * wid
    for job in range(np.uint64(first_job), np.uint64(last_job)):
        b = np.int64(job) // blocks
        ob = np.int64(job) % blocks
        filters = min(F_FILTERS, out_ch - ob * F_FILTERS)
        w0 = ob * taps * F_FILTERS
        first = (b * out_ch + ob * F_FILTERS) * oh * ow  # y's cell (b, first filter, 0, 0)
        for a in range(oh):
            row = b * channels * plane + a * sh * wid
            for blk in range((ow + F_POSITIONS - 1) // F_POSITIONS):
                e0 = min(blk * F_POSITIONS, ow - F_POSITIONS)
                c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = vzero()
                t = w0
                for c in range(channels):
                    for i in range(kh):
                        at = row + c * plane + i * dh * wid + e0
                        for j in range(kw):
                            x0 = vload(xp, at + j * dw)
                            x1 = vload(xp, at + j * dw + 8)
                            c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51 = fma_block(
                                c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51,
                                wpk, t, t + 1, t + 2, t + 3, t + 4, t + 5, x0, x1)
                            t += F_FILTERS
                out = first + a * ow + e0
                step = oh * ow  # (one filter's plane)
                vstore(y, out, c00)
                vstore(y, out + 8, c01)
                if filters > 1:
                    vstore(y, out + step, c10)
                    vstore(y, out + step + 8, c11)
                if filters > 2:
                    vstore(y, out + 2 * step, c20)
                    vstore(y, out + 2 * step + 8, c21)
                if filters > 3:
                    vstore(y, out + 3 * step, c30)
                    vstore(y, out + 3 * step + 8, c31)
                if filters > 4:
                    vstore(y, out + 4 * step, c40)
                    vstore(y, out + 4 * step + 8, c41)
                if filters > 5:
                    vstore(y, out + 5 * step, c50)
                    vstore(y, out + 5 * step + 8, c51)


def forward_applies(xp: np.ndarray, weight: np.ndarray, stride, groups: int, out) -> bool:
    """Whether :func:`forward` runs: float32 input and weights, 2-d, no groups, a unit stride
    along the width and rows of at least 16 outputs."""
    return (xp.dtype == np.float32 and weight.dtype == np.float32 and weight.ndim == 4 and groups == 1
            and stride[1] == 1 and out[1] >= F_POSITIONS)


def forward(xp: np.ndarray, weight: np.ndarray, stride, dilation, out) -> np.ndarray:
    """``y[b, o, a, e] = sum_{c, i, j} xp[b, c, a*sh + i*dh, e + j*dw] * w[o, c, i, j]`` (see
    :func:`forward_applies`), by blocks of 6 filters by 16 positions of a row: each step loads
    two vectors of the input and six weights for twelve multiply-adds, where the direct loops
    load an input value per multiply-add.  Each sum runs over the taps in the order ``(c, i, j)``,
    one rounding per multiply-add."""
    from cnnlab.functional._implicit import _pack

    out_ch, channels, kh, kw = weight.shape
    blocks = -(-out_ch // F_FILTERS)
    wpk = _pack(weight.reshape(out_ch, -1), F_FILTERS)
    y = np.empty((xp.shape[0], out_ch, *out), np.float32)
    x = np.ascontiguousarray(xp)
    _backend.run_jobs(_forward_block, xp.shape[0] * blocks, read_only(x.reshape(-1)), read_only(wpk), channels,
                      xp.shape[2], xp.shape[3], stride[0], dilation[0], dilation[1], kh, kw, out[0], out[1], out_ch,
                      y.reshape(-1), work=y.size * channels * kh * kw, balanced=True)
    return y

