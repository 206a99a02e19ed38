"""Compiled direct convolution kernels (Numba): the loops of the definition, without a column
matrix, for the layers where they beat im2col and a product (first layers, depthwise layers; see
:func:`cnnlab.functional._conv_kernels.choose_method`).  Here the forward and the input gradient,
and the plane copies, per-thread buffers, phase planes and tap offsets that the weight gradient's
kernels (:mod:`cnnlab.functional._numba_direct_grad_w`) use too.  Imported only when Numba is
installed and the backend allows it; written, compiled and cached as the im2col kernels of
:mod:`cnnlab.functional._numba_kernels` (flat arrays, unsigned offsets, one compilation per
variant, ``cache=True``).  All kernels are 2-d; 1-d problems are viewed with a height 1.

Which loops run (each choice measured; the numbers are with the code below):

- forward (:func:`direct_forward`), for a kernel at most 7 wide: stride 1 both ways, the flat
  kernel (one loop over a plane's flat positions), except for rows of 1-4 whole AVX2 vectors,
  which keep the row kernel (taps of a kernel row summed in a register); strided buffered
  (depthwise) problems, the flat kernel on the plane split in stride phases; other problems with
  a unit width stride, the row kernel; anything else, the general loop (tap by tap);
- weight gradient: :func:`cnnlab.functional._numba_direct_grad_w.direct_grad_w` (its rule is there);
- input gradient (:func:`direct_grad_x`): stride 1 with finite weights, a gather by the forward's
  kernels (:func:`_gather`); otherwise a scatter tap by tap.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
from numba import njit

from cnnlab.functional import _backend
from cnnlab.functional._numba_kernels import _compiled, _variants
from cnnlab.functional._windows import pad

# direct convolution: y[b, o, a, e] = sum_{c, i, j} xp[b, g*C_g + c, a*sh + i*dh, e*sw + j*dw] * w[o, c, i, j]
# (the same compilations of one source, flat arrays and unsigned offsets, as im2col's)
#
# ``xp`` is ``x`` zero-padded by ``(ph, pw)`` cells before each spatial dim (and as many after as
# the output needs).  The kernels take it in one of two ways, each a compilation of its own:
# - a padded copy made by the caller (``ph = pw = 0`` here);
# - ``buffered``: ``x`` itself, each plane copied into a zero-bordered buffer of the thread
#   (``bufs[thread]``, shape ``(hp, wp)``: its border is zeroed once and never written) just
#   before its loops read it, or, for the input gradient, the loops add into the buffer and its
#   interior is copied out.  The loops are the same, and so is every sum, to the bit; but a plane
#   stays in cache between the copy and the loops, where a padded copy of the whole input goes
#   out to memory and back (and its gradient once more to crop it).  That wins when every plane
#   is read by one job only (depthwise layers): forward N64 C64 28x28 3.9-4.8 -> 2.7-3.2 ms.  A
#   plane that many jobs read (a first layer's, by every filter) would be copied by each of them.


@njit(inline="always", cache=True)
def _copy_in(bf, xf, plane, height, wid, ph, pw, wp):  # pragma: no cover - compiled
    """Plane ``plane`` of ``xf`` (``height`` rows of ``wid``) into the interior of the buffer ``bf``."""
    for r in range(height):
        src = np.uint64(plane + r * wid)
        dst = np.uint64((r + ph) * wp + pw)
        for q in range(wid):
            bf[dst + np.uint64(q)] = xf[src + np.uint64(q)]


@njit(inline="always", cache=True)
def _copy_in_phases(bf, xf, plane, height, wid, ph, pw, sh, sw, hq, wq):  # pragma: no cover - compiled
    """Plane ``plane`` of ``xf`` into the ``sh*sw`` phase planes of the buffer ``bf`` (each
    ``hq x wq``): the padded cell ``(R, Q)`` goes to phase ``(R % sh, Q % sw)``, cell ``(R // sh,
    Q // sw)``, so that a strided tap reads one phase plane with a unit stride.  One phase (a
    unit stride) is :func:`_copy_in`."""
    if sh == 1 and sw == 1:
        _copy_in(bf, xf, plane, height, wid, ph, pw, wq)
        return
    size = hq * wq
    for r in range(height):
        rr = r + ph
        row = (rr % sh) * sw * size + (rr // sh) * wq
        for pc in range(sw):
            q0 = (pc - pw) % sw  # the row's first column that lands in column phase pc
            src = np.uint64(plane + r * wid + q0)
            dst = np.uint64(row + pc * size + (q0 + pw) // sw)
            for k in range((wid - q0 + sw - 1) // sw):
                bf[dst + np.uint64(k)] = xf[src + np.uint64(k * sw)]


def _phase_offsets(i_or_j, dilation, stride, size, pitch):
    """The offset of kernel row (column) ``i_or_j`` in the phase planes: ``((i*d) % s) * size +
    ((i*d) // s) * pitch`` (``size``: a phase plane's, or a column phase's, cells apart)."""
    at = i_or_j * dilation
    return (at % stride) * size + (at // stride) * pitch


def _tap_offsets(kernel, dilation, stride, hq, wq):
    """``(rows, cols)``: the offsets of the kernel's rows and columns in the phase planes of
    :func:`_copy_in_phases` (``hq x wq`` each; with a unit stride, the plain padded plane), so that
    tap ``(i, j)`` of output cell ``(0, 0)`` is at ``rows[i] + cols[j]``.  Computed here once,
    rather than with (checked) integer division inside the kernels' loops."""
    (kh, kw), (dh, dw), (sh, sw) = kernel, dilation, stride
    rows = np.array([_phase_offsets(i, dh, sh, sw * hq * wq, wq) for i in range(kh)], dtype=np.int64)
    cols = tuple(_phase_offsets(j, dw, sw, hq * wq, 1) for j in range(kw))
    return rows, cols


def _make_direct_forward(unit, width=0, buffered=False):
    # ``width`` > 0 (with a unit stride along the width): the kernel's width as a constant of the
    # closure, and the taps of one kernel row unrolled inside the loop over output positions, so
    # the running sum stays in a register for a whole kernel row (one load and one store of y per
    # kernel row instead of per tap).  The sum is taken in the same order (c, i, j) either way, so
    # the result is the same to the bit.  1.2-1.7x faster on first layers (3x3 and 5x5).
    # ``zero``: a zero of y's dtype, passed in (``np.zeros`` in the kernel, when it had a ``prange``,
    # was a parallel loop of its own, about 1 s more to compile)
    def kernel(xp, w, sh, sw, dh, dw, ph, pw, groups, bufs, zero, y,
               first_job, last_job, thread):  # pragma: no cover - compiled
        batch, out_ch, oh, ow = y.shape
        channels, height, wid = xp.shape[1], xp.shape[2], xp.shape[3]
        hp, wp = (bufs.shape[1], bufs.shape[2]) if buffered else (height, wid)
        cg, kh, kw = w.shape[1], w.shape[2], w.shape[3]
        og = out_ch // groups
        xf, wf, yf = xp.reshape(-1), w.reshape(-1), y.reshape(-1)
        step = np.uint64(sw)
        for job in range(np.uint64(first_job), np.uint64(last_job)):  # of batch * out_ch
            b = job // out_ch
            o = job % out_ch
            first = (o // og) * cg
            out = job * oh * ow
            src = bufs[thread].reshape(-1) if buffered else xf
            for c in range(cg):
                plane = (b * channels + first + c) * height * wid
                if buffered:
                    _copy_in(src, xf, plane, height, wid, ph, pw, wp)
                    plane = 0
                if width:
                    for i in range(kh):
                        taps = ((o * cg + c) * kh + i) * width
                        for a in range(oh):
                            s0 = np.uint64(plane + (a * sh + i * dh) * wp)
                            d0 = np.uint64(out + a * ow)
                            if c == 0 and i == 0:  # the first kernel row starts the sums: y needs no zeroing
                                for e in range(ow):
                                    acc = zero
                                    for j in range(width):
                                        acc += wf[taps + j] * src[s0 + np.uint64(e + j * dw)]
                                    yf[d0 + np.uint64(e)] = acc
                                continue
                            for e in range(ow):
                                acc = yf[d0 + np.uint64(e)]
                                for j in range(width):
                                    acc += wf[taps + j] * src[s0 + np.uint64(e + j * dw)]
                                yf[d0 + np.uint64(e)] = acc
                    continue
                for i in range(kh):
                    for j in range(kw):
                        wv = wf[((o * cg + c) * kh + i) * kw + j]
                        for a in range(oh):
                            s0 = np.uint64(plane + (a * sh + i * dh) * wp + j * dw)
                            d0 = np.uint64(out + a * ow)
                            if unit:
                                for e in range(ow):
                                    yf[d0 + np.uint64(e)] += wv * src[s0 + np.uint64(e)]
                            else:
                                for e in range(ow):
                                    yf[d0 + np.uint64(e)] += wv * src[s0 + np.uint64(e) * step]
    return kernel


def _make_direct_grad_x(unit, buffered=False):
    # buffered: the gradient of the padded plane is summed in the thread's buffer (zeroed per
    # plane) and its interior copied out, so the padding's gradient is never written to memory
    def kernel(g, w, sh, sw, dh, dw, ph, pw, groups, bufs, grad_x,
               first_job, last_job, thread):  # pragma: no cover - compiled
        batch, out_ch, oh, ow = g.shape
        channels, height, wid = grad_x.shape[1], grad_x.shape[2], grad_x.shape[3]
        hp, wp = (bufs.shape[1], bufs.shape[2]) if buffered else (height, wid)
        cg, kh, kw = w.shape[1], w.shape[2], w.shape[3]
        og = out_ch // groups
        gf, wf, xf = g.reshape(-1), w.reshape(-1), grad_x.reshape(-1)
        step = np.uint64(sw)
        # each thread owns one (sample, input channel) plane
        for job in range(np.uint64(first_job), np.uint64(last_job)):
            b = job // channels
            channel = job % channels
            grp = channel // cg
            c = channel % cg
            dst = bufs[thread].reshape(-1) if buffered else xf
            plane = 0 if buffered else job * hp * wp
            if buffered:
                for k in range(hp * wp):
                    dst[k] = 0
            for o in range(grp * og, (grp + 1) * og):
                gplane = (b * out_ch + o) * oh * ow
                for i in range(kh):
                    for j in range(kw):
                        wv = wf[((o * cg + c) * kh + i) * kw + j]
                        for a in range(oh):
                            d0 = np.uint64(plane + (a * sh + i * dh) * wp + j * dw)
                            s0 = np.uint64(gplane + a * ow)
                            if unit:
                                for e in range(ow):
                                    dst[d0 + np.uint64(e)] += wv * gf[s0 + np.uint64(e)]
                            else:
                                for e in range(ow):
                                    dst[d0 + np.uint64(e) * step] += wv * gf[s0 + np.uint64(e)]
            if buffered:
                out = job * height * wid
                for r in range(height):
                    s0 = np.uint64((r + ph) * wp + pw)
                    d0 = np.uint64(out + r * wid)
                    for q in range(wid):
                        xf[d0 + np.uint64(q)] = dst[s0 + np.uint64(q)]
    return kernel


_direct_forward = _variants(_make_direct_forward)
_direct_grad_x = _variants(_make_direct_grad_x)


# kernel widths with a forward of their own (compiled on first use; wider kernels take the loop above)
ROW_KERNEL_WIDTHS = range(1, 8)


@functools.cache
def _direct_forward_rows(width, buffered=False):
    return _compiled(_make_direct_forward(True, width, buffered),
                     f"_direct_forward_rows{width}" + ("_buffered" if buffered else ""))


def _make_direct_forward_flat(width, buffered=False, phased=False):
    # ``phased`` (strided buffered problems): the thread's buffer holds the padded plane split in
    # ``sh*sw`` stride phases (:func:`_copy_in_phases`), in which every tap of a strided window
    # reads a unit-stride run of cells, so the loop below is the stride-1 one on a phase plane of
    # pitch ``wq``, each tap at its own offset (``rows``, ``cols``: :func:`_tap_offsets`).  The same taps
    # in the same order as the general strided loop: equal to the bit (tested).  Depthwise stride
    # 2, N64 C64 28x28 2.6-4.7 -> 2.1-3.9 ms, N32 C32 56x56 2.1-3.5 -> 1.5-2.3 (one process).
    # Stride 1 both ways: the rows kernel's loops over a plane's output rows and their cells
    # become one loop over the flat positions ``p = a*wp + e`` (``wp`` the pitch of the padded
    # plane), which read the plane at ``p + i*dh*wp + j*dw``: one long loop instead of ``oh``
    # loops of ``ow`` cells, which vectorise badly when a row is 14 or 28 cells, 1.75 or 3.5
    # vectors, long.  The cells with ``e >= ow`` are computed too (from the next row's first
    # cells: never out of the plane, since the loop stops at the last real cell) and dropped when
    # the sums, kept in a row of ``scratch`` per thread, are copied out to ``y``; every cell of
    # ``y`` is written, so it needs no zeroing.  The same taps in the same order as the rows
    # kernel, starting from zero: equal to the bit.  Measured on 2 cores (medians, one process):
    # N128 C96 14x14 depthwise 3.5 -> 2.2 ms, N64 C64 28x28 depthwise 2.8 -> 2.1, N64 C1 28x28 ->
    # 32 k5 1.16 -> 0.98, N64 C3 32x32 -> 32 k3 p1 2.9 -> 2.5.
    def kernel(xp, w, sh, sw, dh, dw, ph, pw, groups, bufs, rows, cols, scratch, y,
               first_job, last_job, thread):  # pragma: no cover - compiled
        batch, out_ch, oh, ow = y.shape
        channels, height, wid = xp.shape[1], xp.shape[2], xp.shape[3]
        hq, wq = (bufs.shape[2], bufs.shape[3]) if buffered else (height, wid)
        cg, kh = w.shape[1], w.shape[2]
        og = out_ch // groups
        xf, wf, yf = xp.reshape(-1), w.reshape(-1), y.reshape(-1)
        span = (oh - 1) * wq + ow
        for job in range(np.uint64(first_job), np.uint64(last_job)):  # of batch * out_ch
            b = job // out_ch
            o = job % out_ch
            first = (o // og) * cg
            src = bufs[thread].reshape(-1) if buffered else xf
            sums = scratch[thread]
            for p in range(span):
                sums[p] = 0
            for c in range(cg):
                plane = (b * channels + first + c) * height * wid
                if phased:
                    _copy_in_phases(src, xf, plane, height, wid, ph, pw, sh, sw, hq, wq)
                    plane = 0
                elif buffered:
                    _copy_in(src, xf, plane, height, wid, ph, pw, wq)
                    plane = 0
                for i in range(kh):
                    taps = ((o * cg + c) * kh + i) * width
                    if phased:
                        s0 = np.uint64(plane + rows[i])
                        for p in range(span):
                            acc = sums[p]
                            for j in range(width):  # (cols[j]: tap j's offset in the phase planes)
                                acc += wf[taps + j] * src[s0 + np.uint64(p + cols[j])]
                            sums[p] = acc
                        continue
                    s0 = np.uint64(plane + i * dh * wq)
                    for p in range(span):
                        acc = sums[p]
                        for j in range(width):
                            acc += wf[taps + j] * src[s0 + np.uint64(p + j * dw)]
                        sums[p] = acc
            out = job * oh * ow
            for a in range(oh):
                d0 = np.uint64(out + a * ow)
                s1 = np.uint64(a * wq)
                for e in range(ow):
                    yf[d0 + np.uint64(e)] = sums[s1 + np.uint64(e)]
    return kernel


@functools.cache
def _direct_forward_flat(width, buffered=False, phased=False):
    return _compiled(_make_direct_forward_flat(width, buffered, phased),
                     f"_direct_forward_flat{width}" + ("_phased" if phased else "_buffered" if buffered else ""))


# Output channels per group up to which a padded problem takes the buffered kernels: with more,
# each input plane would be copied into a buffer once per filter reading it.  Measured on 2 cores,
# forward / forward+backward: N64 C6 28x28 -> 6 k5 p2 2.4-2.6 / 13.5-14.0 ms from a padded copy,
# 3.1-3.2 / 18.0-18.4 buffered; groups of 2 filters (N64 C32 28x28 -> 64, groups 32) 4.2-4.3 /
# 13.7-16.1 against 4.1-4.5 / 18.0-18.2; N64 C3 32x32 -> 32 forward 1.9-3.3 against 3.3-4.7.
BUFFERED_MAX_OUT = 1


def _buffers(x_shape, pads, buffered, dtype):
    """The per-thread plane buffers of a buffered kernel (zeros), or a placeholder."""
    if not buffered:
        return np.zeros((1, 1, 1), dtype)
    (ph, ph_hi), (pw, pw_hi) = pads
    return np.zeros((numba.config.NUMBA_NUM_THREADS, x_shape[2] + ph + ph_hi, x_shape[3] + pw + pw_hi), dtype)


def _phase_sizes(x_shape, pads, stride):
    """``(hq, wq)``: the sizes of a phase plane, the padded plane's divided by the strides, rounded up."""
    (ph, ph_hi), (pw, pw_hi) = pads
    return -(-(x_shape[2] + ph + ph_hi) // stride[0]), -(-(x_shape[3] + pw + pw_hi) // stride[1])


def _phase_buffers(x_shape, pads, stride, dtype):
    """The per-thread phase planes of the buffered flat kernels (zeros): ``(threads, sh*sw, hq, wq)``
    (:func:`_phase_sizes`)."""
    return np.zeros((numba.config.NUMBA_NUM_THREADS, stride[0] * stride[1], *_phase_sizes(x_shape, pads, stride)),
                    dtype)


def buffered(w_shape, groups, pads):
    """Whether the direct kernels take ``x`` itself, padding plane by plane (see above), rather
    than a padded copy: only for padded problems whose planes are each read by one filter."""
    return any(lo or hi for lo, hi in pads) and w_shape[0] // groups <= BUFFERED_MAX_OUT


# Rows of this many bytes or fewer that are a whole number of 32-byte vectors (AVX2's) keep the row
# kernel at stride 1; other rows take the flat one.  Measured on 2 cores (medians of 61, float32),
# rows against flat: depthwise N128 C64 16x16 1.9 against 2.7 ms, N64 C64 24x24 2.1 against 2.5,
# 32x32 the same (3.3); N64 C3 32x32 -> 32 k3 p1 1.85 against 2.04; but 28-wide rows 1.91 against
# 1.67 (the same layer on 28x28), 30-wide 2.53 against 1.94, 64-wide (N32 C32 64x64 depthwise)
# 3.5 against 2.9, and 14x14 depthwise 3.5 against 2.2.
WHOLE_VECTOR_ROW_BYTES = 128


def _whole_vectors(ow, dtype):
    row = ow * np.dtype(dtype).itemsize
    return row % 32 == 0 and row <= WHOLE_VECTOR_ROW_BYTES


def direct_forward(xp, w, stride, dilation, groups, out, pads=((0, 0), (0, 0))):
    """The correlation of ``xp`` zero-padded further by ``pads`` with ``w``: ``(N, O, *out)``;
    with padding, only for :func:`buffered` problems (others pass a padded copy)."""
    dtype = np.result_type(xp, w)
    buf = buffered(w.shape, groups, pads)
    unit = tuple(stride) == (1, 1)
    if w.shape[3] in ROW_KERNEL_WIDTHS and (unit and not _whole_vectors(out[1], dtype) or not unit and buf):
        y = np.empty((xp.shape[0], w.shape[0], *out), dtype=dtype)
        bufs = _phase_buffers(xp.shape, pads, stride, dtype) if buf else np.zeros((1, 1, 1, 1), dtype)
        pitch = bufs.shape[3] if buf else xp.shape[3]
        scratch = np.empty((numba.config.NUMBA_NUM_THREADS, (out[0] - 1) * pitch + out[1]), dtype=dtype)
        taps = _tap_offsets(w.shape[2:], dilation, stride, xp.shape[2] if not buf else bufs.shape[2], pitch)
        _backend.run_jobs(_direct_forward_flat(w.shape[3], buf, not unit), y.shape[0] * y.shape[1],
                          np.ascontiguousarray(xp, dtype=dtype), np.ascontiguousarray(w, dtype=dtype), *stride,
                          *dilation, pads[0][0], pads[1][0], groups, bufs, *taps, scratch, y, work=y.size * w[0].size,
                          balanced=True)
        return y
    rows = stride[1] == 1 and w.shape[3] in ROW_KERNEL_WIDTHS
    # (the row kernels write every cell of y in their first pass; the general one adds to it)
    y = (np.empty if rows else np.zeros)((xp.shape[0], w.shape[0], *out), dtype=dtype)
    kernel = _direct_forward_rows(w.shape[3], buf) if rows else _direct_forward(stride[1] == 1, buf)
    _backend.run_jobs(kernel, y.shape[0] * y.shape[1], np.ascontiguousarray(xp, dtype=dtype),
                      np.ascontiguousarray(w, dtype=dtype), *stride, *dilation, pads[0][0], pads[1][0], groups,
                      _buffers(xp.shape, pads, buf, dtype), y.dtype.type(0), y, work=y.size * w[0].size, balanced=True)
    return y


# The input gradient of a stride-1 convolution is itself a correlation: of ``g`` zero-padded by
# ``(k-1)*d - p`` cells on each side (``p`` the forward's padding there; where that is negative,
# ``g`` is cropped by as much: those rows and columns of ``g`` reach only the padding of ``x``),
# with the filters turned by 180 degrees and their in and out channels swapped:
#   grad_x[b, c, r, q] = sum_{o, i, j} gp[b, o, r + i*dh, q + j*dw] * w[o, c, kh-1-i, kw-1-j].
# The forward's row kernels compute it as a gather (one load and store of a cell per kernel row,
# its taps summed in a register) instead of the scatter above (one per tap): N64 C64 28x28
# depthwise 6.1 -> 4.1 ms, N128 C96 14x14 7.6 -> 6.0, N32 C32 56x56 3.7 -> 3.1 (medians, 2 cores).
# Taken at stride 1 with finite weights.  With one input channel per group (depthwise layers, and
# their channel multipliers) each of ``g``'s planes is read by one job of that forward, which pads
# it in its buffer; with more, ``g`` is padded into a copy first (the forward's rule for several
# filters per group, BUFFERED_MAX_OUT), and the gather still beats the scatter's load and store
# per tap: N32 C64 28x28 -> 4 k3 p1 4.1 -> 2.4 ms, N32 C128 28x28 -> 128 groups 32 11.3 -> 8.2
# (one process, alternating).  Finite weights only: the gather
# multiplies every weight by the zeros around ``g``, and an infinite one would give ``inf * 0 =
# nan`` at cells that the definition (and the scatter) never sums it into.  Its sums run over the
# taps in the other order, so they may differ from the scatter's in the last bits of a float.
def _gather(g, w, stride, dilation, groups, pads):
    """``(g, weights, pads)`` of the gather form of the input gradient (see above), or None."""
    kh, kw = w.shape[2], w.shape[3]
    if tuple(stride) != (1, 1) or kw not in ROW_KERNEL_WIDTHS:
        return None
    if w.dtype.kind == "f" and not np.isfinite(w).all():
        return None
    cropped, g_pads = gather_padding(g, (kh, kw), dilation, pads)
    og, cg = w.shape[0] // groups, w.shape[1]
    # (group k's filters become its input channels, its input channels its filters)
    turned = w.reshape(groups, og, cg, kh, kw).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
    turned = np.ascontiguousarray(turned.reshape(groups * cg, og, kh, kw), dtype=g.dtype)
    if not buffered(turned.shape, groups, g_pads):  # (several input channels per group: a padded copy)
        cropped, g_pads = pad(cropped, g_pads), ((0, 0), (0, 0))
    return cropped, turned, g_pads


def gather_padding(g, kernel, dilation, pads):
    """``(g, g_pads)`` of the gather form (see above): ``g`` cropped where ``(k-1)*d - pad`` is
    negative (a view), and the zero padding ``((top, bottom), (left, right))`` it takes elsewhere."""
    spans = ((kernel[0] - 1) * dilation[0], (kernel[1] - 1) * dilation[1])
    edges = [(span - lo, span - hi) for span, (lo, hi) in zip(spans, pads, strict=True)]
    crop = tuple(slice(max(0, -lo), size - max(0, -hi)) for (lo, hi), size in zip(edges, g.shape[2:], strict=True))
    return g[(slice(None), slice(None), *crop)], tuple((max(0, lo), max(0, hi)) for lo, hi in edges)


def direct_grad_x(g, w, xp_shape, stride, dilation, groups, pads=((0, 0), (0, 0))):
    """The input gradient: of ``xp`` itself (shape ``xp_shape``), never of its padding ``pads``."""
    gather = _gather(g, w, stride, dilation, groups, pads)
    if gather is not None:
        return direct_forward(gather[0], gather[1], (1, 1), dilation, groups, tuple(xp_shape[2:]), gather[2])
    buf = buffered(w.shape, groups, pads)
    grad_xp = (np.empty if buf else np.zeros)(xp_shape, dtype=g.dtype)  # (buffered: every cell is written)
    _backend.run_jobs(_direct_grad_x(stride[1] == 1, buf), xp_shape[0] * xp_shape[1], np.ascontiguousarray(g),
                      np.ascontiguousarray(w, dtype=g.dtype), *stride, *dilation, pads[0][0], pads[1][0], groups,
                      _buffers(xp_shape, pads, buf, g.dtype), grad_xp, work=g.size * w[0].size, balanced=True)
    return grad_xp


