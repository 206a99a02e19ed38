"""Compiled direct convolution kernels (Numba): the weight gradient,

    grad_w[o, c, i, j] = sum_{b, a, e} g[b, o, a, e] * xp[b, (o // O_g)*C_g + c, a*sh + i*dh, e*sw + j*dw],

by the loops of the definition, without a column matrix, for the layers that the direct kernels
take (see :func:`cnnlab.functional._conv_kernels.choose_method`).  The forward and the input
gradient are in :mod:`cnnlab.functional._numba_direct`; the kernels here take the padding in the
two ways described there (a padded copy, or ``buffered``: each plane copied into a buffer of the
thread) and use its plane copies, per-thread buffers, phase planes and tap offsets.  Imported only
when Numba is installed and the backend allows it; compiled and cached as the other direct kernels
(flat arrays, unsigned offsets, one compilation per variant, ``cache=True``).  All kernels are
2-d; 1-d problems are viewed with a height 1.

Which loops run (:func:`direct_grad_w`; each choice measured, the numbers are with the code below):

- float32 with at least 3 taps, sums in vector registers (:func:`_grad_w_vectors`; a sum that
  comes out not finite goes the way below);
- otherwise, where the partial sums fit :data:`FLAT_GRAD_W_BYTES`, the flat kernel (strided: on
  the phases, for problems whose planes are read by one filter);
- otherwise partial sums per row.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit

from cnnlab.functional import _backend
from cnnlab.functional._numba_direct import (
    BUFFERED_MAX_OUT,
    _buffers,
    _copy_in,
    _copy_in_phases,
    _phase_buffers,
    _phase_sizes,
    _tap_offsets,
    buffered,
)
from cnnlab.functional._numba_kernels import _variants
from cnnlab.functional._numba_simd import vfma, vload, vstore, vsum, vzero


def _make_direct_grad_w(unit, buffered=False):
    # ``parts``: a row of partial sums per thread (allocated outside: ``np.zeros`` in a parallel
    # kernel is a loop of its own, more to compile, and an allocation per iteration)
    def kernel(xp, g, sh, sw, dh, dw, ph, pw, groups, bufs, parts, grad_w,
               first_job, last_job, thread):  # pragma: no cover - compiled
        batch, out_ch, oh, ow = g.shape
        channels, height, wid = xp.shape[1], xp.shape[2], xp.shape[3]
        wp = bufs.shape[2] if buffered else wid
        cg, kh, kw = grad_w.shape[1], grad_w.shape[2], grad_w.shape[3]
        og = out_ch // groups
        xf, gf = xp.reshape(-1), g.reshape(-1)
        step = np.uint64(sw)
        for job in range(np.uint64(first_job), np.uint64(last_job)):  # one (o, c) filter slice per iteration
            o = job // cg
            c = job % cg
            channel = (o // og) * cg + c
            src = bufs[thread].reshape(-1) if buffered else xf
            # per-position partial sums: the inner loop has no carried sum, so it vectorises
            part = parts[thread]
            for k in range(kh * kw * ow):
                part[k] = 0
            for b in range(batch):
                plane = (b * channels + channel) * height * wid
                if buffered:
                    _copy_in(src, xf, plane, height, wid, ph, pw, wp)
                    plane = 0
                for a in range(oh):
                    g0 = np.uint64(((b * out_ch + o) * oh + a) * ow)
                    for i in range(kh):
                        for j in range(kw):
                            s0 = np.uint64(plane + (a * sh + i * dh) * wp + j * dw)
                            p0 = np.uint64((i * kw + j) * ow)
                            if unit:
                                for e in range(ow):
                                    part[p0 + np.uint64(e)] += gf[g0 + np.uint64(e)] * src[s0 + np.uint64(e)]
                            else:
                                for e in range(ow):
                                    part[p0 + np.uint64(e)] += gf[g0 + np.uint64(e)] * src[s0 + np.uint64(e) * step]
            for i in range(kh):
                for j in range(kw):
                    grad_w[o, c, i, j] = part[(i * kw + j) * ow:(i * kw + j + 1) * ow].sum()
    return kernel


_direct_grad_w = _variants(_make_direct_grad_w)


def _make_direct_grad_w_flat(unit, buffered=False):
    # (not ``unit``: strided problems, whose input planes are always split in stride phases as for
    # the flat forward (_numba_direct.py), from a padded copy too, so that both ways give the same sums;
    # depthwise stride 2 N64 C64 28x28 3.0-5.6 -> 2.5-4.1 ms)
    # Stride 1 both ways, small planes: the loops of the kernel above over the output rows and
    # their cells as one loop over the flat positions ``p = a*wp + e`` (see the flat forward
    # in _numba_direct.py), with ``g``'s plane copied to the pitch ``wp`` of the input's in a buffer of the
    # thread.  The partial sums are kept per flat position, and those with ``e >= ow`` (products
    # of cells that are no pair of the definition, which may be ``inf * 0``) are left out when
    # they are added up.  Faster where all ``kh*kw`` rows of partial sums stay in the L1 cache
    # (:data:`FLAT_GRAD_W_BYTES`): N128 C96 14x14 depthwise 4.2 -> 2.6 ms on 2 cores; on 28x28
    # planes the same (3.1 ms), on 56x56 slower (2.2 -> 3.0).
    def kernel(xp, g, sh, sw, dh, dw, ph, pw, groups, bufs, rows, cols, gbufs, parts,
               grad_w, first_job, last_job, thread):  # pragma: no cover - compiled
        batch, out_ch, oh, ow = g.shape
        channels, height, wid = xp.shape[1], xp.shape[2], xp.shape[3]
        hq, wq = (bufs.shape[2], bufs.shape[3]) if buffered else (height, wid)
        cg, kh, kw = grad_w.shape[1], grad_w.shape[2], grad_w.shape[3]
        og = out_ch // groups
        xf, gf = xp.reshape(-1), g.reshape(-1)
        span = (oh - 1) * wq + ow
        for job in range(np.uint64(first_job), np.uint64(last_job)):  # one (o, c) filter slice per iteration
            o = job // cg
            c = job % cg
            channel = (o // og) * cg + c
            src = bufs[thread].reshape(-1) if buffered else xf
            gb = gbufs[thread]
            part = parts[thread]
            for k in range(kh * kw * span):
                part[k] = 0
            for b in range(batch):
                plane = (b * channels + channel) * height * wid
                if not unit:
                    _copy_in_phases(src, xf, plane, height, wid, ph, pw, sh, sw, hq, wq)
                    plane = 0
                elif buffered:
                    _copy_in(src, xf, plane, height, wid, ph, pw, wq)
                    plane = 0
                _copy_in(gb, gf, (b * out_ch + o) * oh * ow, oh, ow, 0, 0, wq)
                for i in range(kh):
                    for j in range(kw):
                        s0 = np.uint64(plane + rows[i] + cols[j])  # (tap (i, j) in the plane or its phases)
                        p0 = np.uint64((i * kw + j) * span)
                        for p in range(span):
                            part[p0 + np.uint64(p)] += gb[p] * src[s0 + np.uint64(p)]
            for i in range(kh):
                for j in range(kw):
                    p0 = (i * kw + j) * span
                    total = part[p0:p0 + ow].sum()
                    for a in range(1, oh):
                        total += part[p0 + a * wq:p0 + a * wq + ow].sum()
                    grad_w[o, c, i, j] = total
    return kernel


_direct_grad_w_flat = _variants(_make_direct_grad_w_flat)
# The flat weight gradient runs where its partial sums (``kh*kw`` flat planes) take at most this
# many bytes (see above).
FLAT_GRAD_W_BYTES = 16 << 10


# The float32 weight gradient with its sums in vector registers (:func:`_grad_w_vectors`).  The
# kernels above keep a partial sum per output position (or per cell of a row) in memory, so every
# multiply-add loads and stores one; rows of 28 cells ran one value at a time too.  Here a tap's
# sum stays in a register over a whole plane, nine taps at once (one vector of g and nine of the
# input loaded per step), and the jobs are chunks of samples whose planes are read in memory
# order (a job per filter read its 64 planes 200 KB apart: 5.0 against 2.0 ms on one thread).
# Measured on 2 cores, float32, medians (ms), rows or flat kernel -> this one: depthwise N64 C64
# 28x28 3.4-5.0 -> 1.1-1.2, N128 C96 14x14 3.5 -> 1.1, stride 2 2.9 -> 1.7, N32 C32 56x56 3.6 ->
# 2.3, 5x5 10.7 -> 3.7; N32 C64 28x28 with 4 channels a group 8.5 -> 2.2.
# Taps this many at a time (9: a 3x3 kernel in one group; wider kernels in groups of 9, the last
# one overlapping the one before), or 3 at a time for kernels of 3 to 8 taps.
VECTOR_TAPS = 9


@njit(inline="always", cache=True)
def _copy_rows(bf, xf, plane, height, wid, ph, pw, wp):  # pragma: no cover - compiled
    """:func:`_copy_in` for float32 by vectors of 8 (the last one of a row overlapping the one
    before): LLVM's own vector loop copies 32 values a step, so rows of 28 went one value at a time."""
    if wid < 8:
        _copy_in(bf, xf, plane, height, wid, ph, pw, wp)
        return
    last = np.uint64(wid - 8)
    for r in range(height):
        src = np.uint64(plane + r * wid)
        dst = np.uint64((r + ph) * wp + pw)
        for q in range(np.uint64(0), last, np.uint64(8)):
            vstore(bf, dst + q, vload(xf, src + q))
        vstore(bf, dst + last, vload(xf, src + last))


@njit(inline="always", cache=True)
def _three_offsets(offs, first):  # pragma: no cover - compiled
    return np.uint64(offs[first]), np.uint64(offs[first + 1]), np.uint64(offs[first + 2])


@njit(inline="always", cache=True)
def _three_fmas(a0, a1, a2, src, o0, o1, o2, p, gv):  # pragma: no cover - compiled
    # three taps' sums plus their input vectors at position p times the gradient's vector gv
    return vfma(a0, vload(src, o0 + p), gv), vfma(a1, vload(src, o1 + p), gv), vfma(a2, vload(src, o2 + p), gv)


@njit(inline="always", cache=True)
def _add_lane_sums(sums, at, first, done, lanes, accs):  # pragma: no cover - compiled
    # sums[at + first + k] += the lanes' sum of accs[k], for the taps first + k not added yet (>= done)
    for k, a in enumerate(accs):
        if first + k >= done:
            sums[at + first + k] += vsum(a, lanes)


@njit(inline="always", cache=True)
def _nine_sums(src, gb, offs, first, done, steps, sums, at, lanes):  # pragma: no cover - compiled
    """Adds to ``sums[at + t]`` (for ``done <= t < first + 9``) the products of the thread's ``g``
    plane ``gb`` with its input plane ``src`` at tap ``t``'s offset, over ``steps`` vectors of
    positions: nine sums in registers, one ``g`` vector and nine input vectors loaded per step."""
    o0, o1, o2 = _three_offsets(offs, first)
    o3, o4, o5 = _three_offsets(offs, first + 3)
    o6, o7, o8 = _three_offsets(offs, first + 6)
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = vzero()
    for s in range(np.uint64(steps)):
        p = s * np.uint64(8)
        gv = vload(gb, p)
        a0, a1, a2 = _three_fmas(a0, a1, a2, src, o0, o1, o2, p, gv)
        a3, a4, a5 = _three_fmas(a3, a4, a5, src, o3, o4, o5, p, gv)
        a6, a7, a8 = _three_fmas(a6, a7, a8, src, o6, o7, o8, p, gv)
    _add_lane_sums(sums, at, first, done, lanes, (a0, a1, a2, a3, a4, a5, a6, a7, a8))


@njit(inline="always", cache=True)
def _three_sums(src, gb, offs, first, done, steps, sums, at, lanes):  # pragma: no cover - compiled
    """:func:`_nine_sums` for three taps."""
    o0, o1, o2 = _three_offsets(offs, first)
    a0 = a1 = a2 = vzero()
    for s in range(np.uint64(steps)):
        p = s * np.uint64(8)
        a0, a1, a2 = _three_fmas(a0, a1, a2, src, o0, o1, o2, p, vload(gb, p))
    _add_lane_sums(sums, at, first, done, lanes, (a0, a1, a2))


@_backend.job_kernel
def _grad_w_vectors(xf, gf, batch, channels, height, wid, out_ch, oh, ow, sh, sw, ph, pw, hq, wq, groups, offs,
                    sblocks, bufs, gbufs, lanes, parts, first_job, last_job, thread):  # pragma: no cover - compiled
    # float32: parts[k, j, t] (flat) = the sum over the samples b of chunk k (b from k*N//K to
    # (k+1)*N//K - 1, K = parts.shape[0], in order) of the products of g's plane (b, o) with the
    # input's plane (b, channel) at tap t, for every filter slice j = o*cg + c.  The g plane is
    # copied at the pitch wq of the input's phase planes into gbufs[thread] (zeros past each row's
    # ow cells and past the plane: never written), the input's plane into bufs[thread] (by
    # _copy_rows, or _copy_in_phases for a stride), tap t at offset offs[t] from it.  The zeros of
    # gbufs meet input cells that are no pair of the definition: +-0 where those are finite (the
    # caller recomputes a sum that comes out not finite another way).  Job: a chunk k of samples
    # and the sb-th of sblocks runs of slices (job = k * sblocks + sb), each slice of the run of
    # each sample in turn, so both planes are read in memory order; a slice's sum over a chunk is
    # one job's, whatever the runs, so the bits do not depend on them.
    taps = offs.shape[0]
    chunks = parts.shape[0]
    slices = parts.shape[1] // taps
    cg = slices // out_ch
    og = out_ch // groups
    span = (oh - 1) * wq + ow
    steps = (span + 7) // 8
    src, gb, lane = bufs[thread], gbufs[thread], lanes[thread]
    for job in range(np.uint64(first_job), np.uint64(last_job)):
        k, sb = np.int64(job) // sblocks, np.int64(job) % sblocks
        sums = parts[k]
        for b in range(batch * k // chunks, batch * (k + 1) // chunks):
            for j in range(slices * sb // sblocks, slices * (sb + 1) // sblocks):
                o, c = j // cg, j % cg
                plane = (b * channels + (o // og) * cg + c) * height * wid
                if sh == 1 and sw == 1:
                    _copy_rows(src, xf, plane, height, wid, ph, pw, wq)
                else:
                    _copy_in_phases(src, xf, plane, height, wid, ph, pw, sh, sw, hq, wq)
                _copy_rows(gb, gf, (b * out_ch + o) * oh * ow, oh, ow, 0, 0, wq)
                at = j * taps
                done = 0
                while done < taps:
                    if taps >= VECTOR_TAPS:
                        first = min(done, taps - VECTOR_TAPS)
                        _nine_sums(src, gb, offs, first, done, steps, sums, at, lane)
                        done = first + VECTOR_TAPS
                    else:
                        first = min(done, taps - 3)
                        _three_sums(src, gb, offs, first, done, steps, sums, at, lane)
                        done = first + 3


# Chunks of samples of the vector weight gradient (at most; fewer for smaller batches, and for
# layers whose partial sums would pass VECTOR_PARTS_VALUES): each adds its own partial sums, added
# up in order after (the same chunks for any number of threads).  Where there are fewer chunks
# than twice the threads, the slices are split into runs as well, so that a batch of one still
# runs on every thread (N1 C256 56x56 depthwise: one job before).
VECTOR_CHUNKS = 16
VECTOR_PARTS_VALUES = 1 << 22


def _vector_grad_w(xp, g, w_shape, stride, dilation, groups, pads):
    """:func:`direct_grad_w` by :func:`_grad_w_vectors` (float32, at least 3 taps), or None where
    a sum came out not finite."""
    (sh, sw), (ph, pw) = stride, (pads[0][0], pads[1][0])
    hq, wq = _phase_sizes(xp.shape, pads, stride)
    rows, cols = _tap_offsets(w_shape[2:], dilation, stride, hq, wq)
    offs = (rows[:, None] + np.asarray(cols, np.int64)[None, :]).reshape(-1)
    oh, ow = g.shape[2:]
    steps = -(-((oh - 1) * wq + ow) // 8)
    threads = numba.config.NUMBA_NUM_THREADS
    bufs = np.zeros((threads, max(sh * sw * hq * wq, int(offs.max()) + steps * 8)), np.float32)
    gbufs = np.zeros((threads, max(oh * wq, steps * 8)), np.float32)
    slices = w_shape[0] * w_shape[1]
    chunks = max(1, min(VECTOR_CHUNKS, xp.shape[0], VECTOR_PARTS_VALUES // (slices * offs.size)))
    sblocks = max(1, min(slices, -(-2 * threads // chunks)))
    parts = np.zeros((chunks, slices * offs.size), np.float32)
    _backend.run_jobs(_grad_w_vectors, chunks * sblocks, _backend.read_only(np.ascontiguousarray(xp).reshape(-1)),
                      _backend.read_only(np.ascontiguousarray(g).reshape(-1)), xp.shape[0], xp.shape[1],
                      xp.shape[2], xp.shape[3], g.shape[1], oh, ow, sh, sw, ph, pw, hq, wq, groups, offs, sblocks,
                      bufs, gbufs, np.empty((threads, 8), np.float32), parts, work=g.size * offs.size * w_shape[1],
                      balanced=True)
    grad_w = parts[0]
    for part in parts[1:]:
        grad_w += part
    grad_w = grad_w.reshape(w_shape)
    return grad_w if np.isfinite(grad_w).all() else None


def direct_grad_w(xp, g, w_shape, stride, dilation, groups, pads=((0, 0), (0, 0)), vectors=True):
    if vectors and g.dtype == np.float32 and xp.dtype == np.float32 and w_shape[2] * w_shape[3] >= 3:
        grad_w = _vector_grad_w(xp, g, w_shape, tuple(stride), tuple(dilation), groups, pads)
        if grad_w is not None:
            return grad_w
    grad_w = np.zeros(w_shape, dtype=g.dtype)
    buf = buffered(w_shape, groups, pads)
    # strided: always through the phase planes (from a padded copy too, with no further padding),
    # so that both ways of taking the padding give the same sums
    phases = buf or tuple(stride) != (1, 1)
    bufs = _phase_buffers(xp.shape, pads, stride, g.dtype) if phases else np.zeros((1, 1, 1, 1), g.dtype)
    pitch = bufs.shape[3] if phases else xp.shape[3]
    span = (g.shape[2] - 1) * pitch + g.shape[3]
    parts = w_shape[2] * w_shape[3] * span
    threads = numba.config.NUMBA_NUM_THREADS
    if parts * g.dtype.itemsize <= FLAT_GRAD_W_BYTES and (not phases or w_shape[0] // groups <= BUFFERED_MAX_OUT):
        kernel = _direct_grad_w_flat(tuple(stride) == (1, 1), phases)
        taps = _tap_offsets(w_shape[2:], dilation, stride, bufs.shape[2] if phases else xp.shape[2], pitch)
        _backend.run_jobs(kernel, w_shape[0] * w_shape[1], np.ascontiguousarray(xp, dtype=g.dtype),
                          np.ascontiguousarray(g), *stride, *dilation, pads[0][0], pads[1][0], groups, bufs, *taps,
                          np.zeros((threads, g.shape[2] * pitch), g.dtype), np.empty((threads, parts), g.dtype),
                          grad_w, work=g.size * grad_w[0].size)
        return grad_w
    partial = np.empty((threads, w_shape[2] * w_shape[3] * g.shape[3]), g.dtype)
    _backend.run_jobs(_direct_grad_w(stride[1] == 1, buf), w_shape[0] * w_shape[1],
                      np.ascontiguousarray(xp, dtype=g.dtype), np.ascontiguousarray(g), *stride, *dilation,
                      pads[0][0], pads[1][0], groups, _buffers(xp.shape, pads, buf, g.dtype), partial, grad_w,
                      work=g.size * grad_w[0].size)
    return grad_w
