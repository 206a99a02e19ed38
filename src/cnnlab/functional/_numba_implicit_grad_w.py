"""The implicit-GEMM weight gradient (Numba, float32): the register blocks of
:mod:`cnnlab.functional._numba_implicit` with taps where the forward has positions.

:func:`taps_grad_w`: ``parts[t, o // 16, k, o % 16] += sum_p src[pos[p] + delta[k]] * g[p,
o]``, the weight gradient, summed over the threads ``t`` into ``(O, taps)`` at the end.  A
job is a run of :data:`GRAD_W_JOB` positions, in segments of one class of positions each (a
class: the positions with the same taps inside the input); it copies their upstream gradient
channels-last into a buffer of its thread (16 filters per vector; a transposed copy of the
whole gradient beforehand cost NumPy 1.5 ms on the 14x14 layer, a third of the kernel), then
adds 6 (or 12) of a segment's taps by 16 filters at a time into its thread's ``parts``.

On a CPU with AVX-512 (``WIDE``) a job runs two blocks of 6 taps at once (12 x 16 sums), and, where
a group has more than 16 filters, two panels of 16 filters at once (12 taps by 32 filters,
:data:`GRAD_W_PANELS`); without it, the same 12 (or 6) taps 4 at a time (:func:`_four_taps`,
:data:`GRAD_W_FOUR_TAPS`: 8 sums, which AVX2's 16 registers hold with the operands), or, for a
pair of panels, 3 at a time by both (:func:`_three_taps_panels`, :data:`GRAD_W_THREE_BY_TWO`: 12
sums).  A group of at most 8 filters runs each filter at two adjacent positions (``span`` 2, as
the forward: :mod:`cnnlab.functional._numba_implicit`), the two lanes added at the end by
:func:`_parts_transposed`. The sums of each tap are the same, in the same order, either way.
"""

from __future__ import annotations

import functools

import numba
import numpy as np

from cnnlab.functional import _backend, _numba_simd
from cnnlab.functional._backend import read_only
from cnnlab.functional._numba_implicit import _WIDE_AT_IMPORT, _memo, _named, kernel_for
from cnnlab.functional._numba_panels import COLS, ROWS, _in_a_row, _panels_step, _put_rows_at, _rows_at
from cnnlab.functional._numba_simd import (
    transpose8,
    transpose16,
    transpose16_to,
    vfma_at,
    vload,
    vstore,
    wfma_at,
    wfma_span_blocks,
    wfma_span_rows,
    wload,
    wstore,
)

# As the forward's PANELS (:mod:`cnnlab.functional._numba_implicit`), in the weight gradient: a pair
# of blocks of 6 taps through two panels of 16 filters at once (12 taps by 32 filters, each input
# read for both panels).  The same bits.  Off -> on (ms):
# the layer 3.97 -> 3.82, 3.95 -> 3.83; N64 C32 14x14 -> 64 5.26 -> 4.95; N8 C128 14x14 ->
# 512 k5 38.6 -> 36.1; N64 C256 8x8 -> 64 k7 52.0 -> 44.4; N32 C32 16x16 -> 64 3.51 -> 3.38.
GRAD_W_PANELS = True
# Positions per job of the weight gradient: its slice of the upstream gradient (32 KiB per 16
# filters) is read by every block of taps of the job, and the thread's partial sums are read and
# written once per job.  256 (16 KiB, sized for the L1 cache) cost 3-8% on this Zen 4, whose L2
# keeps up.  Weight gradient, 2 threads, one process, 256 / 512 / 1024 positions (ms): the issue's
# layer N32 C16 24x24 -> 32 k5 p2 3.38 / 3.18 / 3.15 and 3.09 / 3.00 / 2.98; N64 C32 14x14 -> 64
# 3.69 / 3.52 / 3.38; N8 C128 14x14 -> 512 k5 34.7 / 31.9 / 32.1; N16 C64 56x56 -> 64 21.4 / 20.7 /
# 20.5; the stride-2 layer 2.71 / 2.61 / 2.55; small layers, whose runs of 1024 are too few to share
# out (the taps shared instead): N8 C32 16x16 -> 64 0.93 / 0.97 / 1.02, N2 C64 28x28 -> 64 1.21 /
# 1.17 / 1.18, N4 C128 14x14 -> 128 1.99 / 2.00 / 2.04, LeNet-5's second layer 0.52 / 0.50 / 0.52.
GRAD_W_JOB = 512
# Runs of GRAD_W_JOB positions per thread below which the weight gradient's jobs share out the
# taps as well (with one run, N1 C256 14x14 -> 256 k3, it ran on one thread).
GRAD_W_TAP_SPLIT = 4
# Runs of positions (at most, and at most a fifth of them) that the weight gradient hands out
# last, one at a time, to whichever thread is free: each adds into sums of its own, added to the
# threads' in a fixed order, so the result does not depend on which thread ran it (a static
# split left one thread waiting 0.1-0.3 ms of the 14x14 layer's 3.3, on this shared machine).
GRAD_W_TAIL = 8
# Values of the weight gradient's partial sums (threads' and tail runs') from which their sum is
# split between the threads (by panels of 16 filters): the stride-2 layer's 8 x 74 KB of sums took
# 87-100 us on the calling thread alone.
PARTS_MIN_WORK = 1 << 16

# Whether the weight gradient copies its upstream gradient channels-last 16 positions by 16
# filters at a time (:func:`cnnlab.functional._numba_simd.transpose16`) where 16 positions of a
# job lie in a row of the gradient (8: ``transpose8``), rather than one value at a time (0.42 ->
# 0.20 ns a value on one core for the layer, 0.46 -> 0.17 for N64 C8 7x7 -> 256, with
# AVX-512).  The same values either way.  Without AVX-512 too since round 49 (LLVM splits the
# shuffles into AVX2's): the weight gradient, 2 threads, Zen 3, one process alternating, values ->
# transposed (ms): the stride-2 layer 2.63 -> 2.47 and 2.70 -> 2.48 (one thread 4.50 -> 4.11);
# N64 C32 14x14 -> 64 3.80 -> 3.54; the layer 3.89 -> 3.61; N16 C64 56x56 -> 64 25.3 ->
# 23.6; N8 C32 16x16 -> 48 0.77 -> 0.68.
GRAD_W_TRANSPOSE = True

# Whether, without AVX-512, the weight gradient's product runs its taps 4 at a time by a panel of 16
# filters (:func:`_four_taps`: 8 sums of 8 lanes), not 6 (12 sums: with the upstream gradient's two
# vectors and two broadcasts, LLVM kept one sum on the stack, stored and loaded again every step).
# The same bits.
GRAD_W_FOUR_TAPS = True

# Whether, without AVX-512, pairs of panels of 16 filters run 3 taps at a time by both panels
# (:func:`_three_taps_panels`: 12 sums of 8 lanes, each broadcast input feeding 4 of them, where
# :func:`_four_taps`' 8 sums, one multiply-add each a step, barely cover the multiply-add's
# latency).  Written with the inputs held and the gradient's vectors loaded one after another: with
# both panels' gradient held (17 registers), LLVM kept 5 sums on the stack and the stride-2 layer's
# weight gradient took 9.9 ms, not 5.7.  The same bits.  Off -> on, weight gradient, one process
# alternating (ms, Zen 3, 2 threads): the stride-2 layer N32 C32 32x32 -> 64 k3 s2 2.76 -> 2.41
# and 2.70 -> 2.44 (one thread 5.92 -> 5.70); N64 C32 14x14 -> 64 3.54 -> 3.12; the layer
# N32 C16 24x24 -> 32 k5 3.49 -> 3.09; N16 C64 56x56 -> 64 28.0 -> 23.7; N8 C32 16x16 -> 48
# (a pair and a single panel) 0.66 -> 0.59.
GRAD_W_THREE_BY_TWO = True


@numba.njit(inline="always")
def _tap_rows(tm, k, pb):  # pragma: no cover - compiled
    # where the sums of taps k .. k+5 lie in a panel of a thread's parts that starts at pb (16 a tap's row)
    return (pb + tm[k] * COLS, pb + tm[k + 1] * COLS, pb + tm[k + 2] * COLS, pb + tm[k + 3] * COLS,
            pb + tm[k + 4] * COLS, pb + tm[k + 5] * COLS)


@numba.njit(inline="always")
def _tap4(ds, tm, kt, i, nt, pb, scratch):  # pragma: no cover - compiled
    # tap kt + i of a run of nt taps (its offset and its row of sums), or past the run a stand-in:
    # the run's first offset (valid for its class) and the scratch row
    if i < nt:
        return ds[kt + i], pb + tm[kt + i] * COLS
    return ds[kt], pb + scratch * COLS


@numba.njit(inline="always")
def _four_taps(part, src, gt, pos, ds, tm, kt, nt, pb, scratch, at, p0, p1, sshift):  # pragma: no cover
    # Without AVX-512: taps kt .. kt+nt-1 of a panel of 16 filters, 4 taps at a time (8 sums of 8
    # lanes, 2 of the upstream gradient and the broadcasts: a 6 x 16 block's 12 sums left LLVM one
    # of the 16 registers short, a sum spilled to the stack every step).  Each tap's sums in the
    # same order as the 6 x 16 block's.
    for i in range(0, nt, 4):
        f0, a0 = _tap4(ds, tm, kt, i, nt, pb, scratch)
        f1, a1 = _tap4(ds, tm, kt, i + 1, nt, pb, scratch)
        f2, a2 = _tap4(ds, tm, kt, i + 2, nt, pb, scratch)
        f3, a3 = _tap4(ds, tm, kt, i + 3, nt, pb, scratch)
        c0, c1, c2, c3 = wload(part, a0), wload(part, a1), wload(part, a2), wload(part, a3)
        q = at
        for p in range(p0, p1):
            s = pos[p] + sshift
            v = wload(gt, q)
            c0 = wfma_at(c0, src, s + f0, v)
            c1 = wfma_at(c1, src, s + f1, v)
            c2 = wfma_at(c2, src, s + f2, v)
            c3 = wfma_at(c3, src, s + f3, v)
            q += COLS
        wstore(part, a0, c0)
        wstore(part, a1, c1)
        wstore(part, a2, c2)
        wstore(part, a3, c3)


@numba.njit(inline="always")
def _three_at(part, a0, a1, a2, off):  # pragma: no cover - compiled
    # the 8 lanes at a0 + off, a1 + off and a2 + off: three taps' sums of one half of a panel
    return vload(part, a0 + off), vload(part, a1 + off), vload(part, a2 + off)


@numba.njit(inline="always")
def _put_three_at(part, a0, a1, a2, off, c0, c1, c2):  # pragma: no cover - compiled
    # _three_at's sums written back
    vstore(part, a0 + off, c0)
    vstore(part, a1 + off, c1)
    vstore(part, a2 + off, c2)


@numba.njit(inline="always")
def _three_taps_panels(part, src, gt, pos, ds, tm, kt, nt, pb, dq, at, du, p0, p1, sshift):  # pragma: no cover
    # Without AVX-512: taps kt .. kt+nt-1 (nt: 6 or 12, a block or two) of two panels of 16 filters (the
    # second's sums dq further on in part, its gradient du further on in gt), 3 taps at a time:
    # 12 sums of 8 lanes; the three inputs broadcast and held, the gradient's four vectors of 8
    # loaded one after another (12 + 3 + 1 registers)
    for i in range(0, nt, 3):
        f0, f1, f2 = ds[kt + i], ds[kt + i + 1], ds[kt + i + 2]
        a0, a1, a2 = pb + tm[kt + i] * COLS, pb + tm[kt + i + 1] * COLS, pb + tm[kt + i + 2] * COLS
        c0, c1, c2 = _three_at(part, a0, a1, a2, 0)  # (first panel, lanes 0-7 and 8-15; then the second)
        h0, h1, h2 = _three_at(part, a0, a1, a2, 8)
        e0, e1, e2 = _three_at(part, a0, a1, a2, dq)
        z0, z1, z2 = _three_at(part, a0, a1, a2, dq + 8)
        q = at
        for p in range(p0, p1):
            s = pos[p] + sshift
            i0, i1, i2 = s + f0, s + f1, s + f2
            v = vload(gt, q)
            c0, c1, c2 = vfma_at(c0, src, i0, v), vfma_at(c1, src, i1, v), vfma_at(c2, src, i2, v)
            v = vload(gt, q + 8)
            h0, h1, h2 = vfma_at(h0, src, i0, v), vfma_at(h1, src, i1, v), vfma_at(h2, src, i2, v)
            v = vload(gt, q + du)
            e0, e1, e2 = vfma_at(e0, src, i0, v), vfma_at(e1, src, i1, v), vfma_at(e2, src, i2, v)
            v = vload(gt, q + du + 8)
            z0, z1, z2 = vfma_at(z0, src, i0, v), vfma_at(z1, src, i1, v), vfma_at(z2, src, i2, v)
            q += COLS
        _put_three_at(part, a0, a1, a2, 0, c0, c1, c2)
        _put_three_at(part, a0, a1, a2, 8, h0, h1, h2)
        _put_three_at(part, a0, a1, a2, dq, e0, e1, e2)
        _put_three_at(part, a0, a1, a2, dq + 8, z0, z1, z2)


def _make_taps_grad_w(span, wide_code=True):
    """The weight gradient's product kernel (see :func:`taps_grad_w`) with ``span`` positions a
    lane set: 1, lane ``j`` of a panel filter ``j``; 2, lane ``j`` filter ``j // 2`` at the
    pair's position ``j % 2`` (``pos``, ``goff``: the pairs' first positions, the second one
    further on in the input and the gradient; each tap's two inputs broadcast to the even and odd
    lanes), whose two lanes :func:`_parts_transposed` adds.  ``wide_code`` False: without the
    wide block's paths (``wide`` read as False), which Numba prunes before compiling (see
    :func:`cnnlab.functional._numba_implicit.width_variant`)."""
    def kernel(src, g, npos, out_ch, pos, goff, seg, segf, delta, dstart, tapmap, wide, tap_jobs, tail_start,
               groups, gsrc, gg, bufs, parts, wpanels, transposed, four, three, first_job, last_job,
               thread):  # pragma: no cover - compiled
        # src: flat input; g: flat upstream gradient, channel-first (position p's value of filter o at
        # goff[p] + o*npos); pos: the positions in segments seg[i] .. seg[i+1]-1, each of one class
        # segf[i] of positions with the same taps (image by image: an image's classes one after
        # another), class f's taps delta[dstart[f]:dstart[f+1]] (a multiple of ROWS), tap k's sums in
        # row tapmap[k] of the weight's taps (padding taps: any offset valid for the class, and the
        # scratch row after the last tap); bufs: (threads, GRAD_W_JOB * O16); parts: (threads + tail,
        # O16 // 16, taps + 1, 16), zeros on entry (a filter's sums 16 values apart).  Job j is the
        # (j // R)-th of tap_jobs shares of each class's taps (in blocks of 6) over the (j % R)-th run
        # of at most GRAD_W_JOB positions (R runs in all, as equal as they can be); a job from
        # tail_start on adds into its own row of parts (row T + job - tail_start, T the threads'
        # rows), whichever thread runs it; wide: two blocks of 6 taps at a time where the share has
        # two left (12 x 16 sums); groups: the groups, job j of group k being job k * J + j (J: the
        # jobs above), reading src gsrc * k and g gg * k further on, adding into group k's
        # panels of parts (each part row holds the groups' sums one after another); wpanels: with
        # span 1, pairs of panels at once (GRAD_W_PANELS, see _two_panels);
        # transposed: the upstream gradient copied 16 positions by 16 filters at a time where it can
        # be (GRAD_W_TRANSPOSE); four: with span 1, runs of 12 (or 6) taps by 4 taps at a time
        # (GRAD_W_FOUR_TAPS, without AVX-512), not by blocks of 6; three: with ``four``, pairs of
        # panels by 3 taps at a time (GRAD_W_THREE_BY_TWO)
        total = pos.shape[0]
        runs = (total + GRAD_W_JOB - 1) // GRAD_W_JOB
        width = bufs.shape[1] // GRAD_W_JOB  # O16
        rows_k = parts.shape[1] // (width * groups)  # the weight's taps and the scratch row
        zero = np.float32(0.0)
        gt = bufs[thread]
        rows = bufs.shape[0]
        for job in range(np.uint64(first_job), np.uint64(last_job)):
            jg = np.int64(job)
            grp, jb = jg // (runs * tap_jobs), jg % (runs * tap_jobs)
            share, run = jb // runs, jb % runs
            # (one row of parts: every job adds into it, see taps_grad_w's ``shared``)
            part = (parts[0] if parts.shape[0] == 1 else parts[thread] if jg < tail_start
                    else parts[rows + jg - tail_start])
            pbase, sshift = grp * rows_k * width, grp * gsrc  # (group grp's panels; its input channels)
            first, last = total * run // runs, total * (run + 1) // runs
            # the job's positions channels-last, 16 filters at a time:
            # gt[(o // 16) * GRAD_W_JOB * 16 + (p - first) * 16 + o % 16] = g[goff[p] + o*npos]; with
            # ``transposed``, 16 (or 8) positions in a row of the gradient by a panel of 16 filters at
            # once (transpose16, transpose8), the others one value at a time
            p = first
            while p < last:
                count = 1
                if span == 1 and transposed:
                    count = 16 if _in_a_row(goff, p, last, 16) else 8 if _in_a_row(goff, p, last, 8) else 1
                for og in range(0, width, COLS):
                    if count > 1 and og + COLS <= out_ch:
                        at = np.uint64(goff[p] + grp * gg + og * npos)
                        to = np.uint64(og * GRAD_W_JOB + (p - first) * COLS)
                        if count == 16:
                            transpose16(g, at, np.uint64(npos), gt, to)
                        else:
                            transpose8(g, at, np.uint64(npos), gt, to)
                        continue
                    for q in range(np.uint64(p), np.uint64(p + count)):
                        start = np.uint64(goff[q] + grp * gg)
                        cell = np.uint64(og * GRAD_W_JOB + (q - first) * COLS)
                        for j in range(COLS):
                            o = (og + j) // span  # (lane j: filter o at position q + j % span)
                            gt[cell + np.uint64(j)] = g[start + np.uint64(o * npos + j % span)] if o < out_ch else zero
                p += count
            # from the segment that holds position first (seg[i] <= first < seg[i + 1])
            for i in range(np.searchsorted(seg, first, side="right") - 1, segf.shape[0]):
                if seg[i] >= last:
                    break
                f = segf[i]
                s0 = max(seg[i], first)
                p0, p1 = np.uint64(s0), np.uint64(min(seg[i + 1], last))
                ds = delta[dstart[f]:dstart[f + 1]]
                tm = tapmap[dstart[f]:dstart[f + 1]]
                kblocks = (dstart[f + 1] - dstart[f]) // ROWS
                kt, k_end = share * kblocks // tap_jobs * ROWS, (share + 1) * kblocks // tap_jobs * ROWS
                while kt < k_end:
                    if span == 1 and four:  # (AVX2: a run of two blocks of 6 taps, or one, by 4 taps)
                        nt = 2 * ROWS if kt + ROWS < k_end else ROWS
                        for og in range(0, width, COLS):
                            if three and og // COLS % 2 == 0 and og + COLS < width:
                                _three_taps_panels(part, src, gt, pos, ds, tm, kt, nt, pbase + og * rows_k,
                                                   COLS * rows_k, og * GRAD_W_JOB + (s0 - first) * COLS,
                                                   COLS * GRAD_W_JOB, p0, p1, sshift)
                                continue
                            if three and og // COLS % 2 == 1:
                                continue  # (run with the panel before it)
                            _four_taps(part, src, gt, pos, ds, tm, kt, nt, pbase + og * rows_k, rows_k - 1,
                                       og * GRAD_W_JOB + (s0 - first) * COLS, p0, p1, sshift)
                        kt += nt
                        continue
                    pair = wide_code and wide and kt + ROWS < k_end  # (two blocks of 6 taps at once: 12 x 16 sums)
                    kt2 = kt + ROWS if pair else kt
                    d0, d1, d2 = ds[kt], ds[kt + 1], ds[kt + 2]
                    d3, d4, d5 = ds[kt + 3], ds[kt + 4], ds[kt + 5]
                    e0, e1, e2 = ds[kt2], ds[kt2 + 1], ds[kt2 + 2]
                    e3, e4, e5 = ds[kt2 + 3], ds[kt2 + 4], ds[kt2 + 5]
                    for og in range(0, width, COLS):
                        if wide_code and span == 1 and wpanels and pair and og + COLS < width and (og // COLS) % 2 == 0:
                            # (two panels of 16 filters at once: 12 taps by 32 filters, 24 sums)
                            pb, dq = pbase + og * rows_k, COLS * rows_k  # (dq: the second panel further on)
                            a0, a1, a2, a3, a4, a5 = _tap_rows(tm, kt, pb)
                            b0, b1, b2, b3, b4, b5 = _tap_rows(tm, kt2, pb)
                            c0, c1, c2, c3, c4, c5 = _rows_at(part, a0, a1, a2, a3, a4, a5)
                            h0, h1, h2, h3, h4, h5 = _rows_at(part, b0, b1, b2, b3, b4, b5)
                            x0, x1, x2, x3, x4, x5 = _rows_at(part, a0 + dq, a1 + dq, a2 + dq,
                                                              a3 + dq, a4 + dq, a5 + dq)
                            z0, z1, z2, z3, z4, z5 = _rows_at(part, b0 + dq, b1 + dq, b2 + dq,
                                                              b3 + dq, b4 + dq, b5 + dq)
                            at = og * GRAD_W_JOB + (s0 - first) * COLS
                            for p in range(p0, p1):
                                s = pos[p] + sshift
                                v, u = wload(gt, at), wload(gt, at + COLS * GRAD_W_JOB)
                                c0, c1, c2, c3, c4, c5, x0, x1, x2, x3, x4, x5 = _panels_step(
                                    c0, c1, c2, c3, c4, c5, x0, x1, x2, x3, x4, x5, src,
                                    d0, d1, d2, d3, d4, d5, s, v, u)
                                h0, h1, h2, h3, h4, h5, z0, z1, z2, z3, z4, z5 = _panels_step(
                                    h0, h1, h2, h3, h4, h5, z0, z1, z2, z3, z4, z5, src,
                                    e0, e1, e2, e3, e4, e5, s, v, u)
                                at += COLS
                            _put_rows_at(part, a0, a1, a2, a3, a4, a5, c0, c1, c2, c3, c4, c5)
                            _put_rows_at(part, b0, b1, b2, b3, b4, b5, h0, h1, h2, h3, h4, h5)
                            _put_rows_at(part, a0 + dq, a1 + dq, a2 + dq, a3 + dq, a4 + dq,
                                         a5 + dq, x0, x1, x2, x3, x4, x5)
                            _put_rows_at(part, b0 + dq, b1 + dq, b2 + dq, b3 + dq, b4 + dq,
                                         b5 + dq, z0, z1, z2, z3, z4, z5)
                            continue
                        if wide_code and span == 1 and wpanels and pair and (og // COLS) % 2 == 1:
                            continue  # (this panel ran with the one before it)
                        # (16 filters' panel of taps by lanes; the blocks' taps in their rows)
                        pb = pbase + og * rows_k
                        a0, a1, a2, a3, a4, a5 = _tap_rows(tm, kt, pb)
                        b0, b1, b2, b3, b4, b5 = _tap_rows(tm, kt2, pb)
                        c0, c1, c2, c3, c4, c5 = _rows_at(part, a0, a1, a2, a3, a4, a5)
                        at = og * GRAD_W_JOB + (s0 - first) * COLS  # (og: filters og..og+15)
                        if wide_code and pair:  # (wide_code: branches Numba prunes)
                            h0, h1, h2, h3, h4, h5 = _rows_at(part, b0, b1, b2, b3, b4, b5)
                            for p in range(p0, p1):
                                s = pos[p] + sshift
                                c0, c1, c2, c3, c4, c5, h0, h1, h2, h3, h4, h5 = wfma_span_blocks(
                                    span, c0, c1, c2, c3, c4, c5, h0, h1, h2, h3, h4, h5, src,
                                    s + d0, s + d1, s + d2, s + d3, s + d4, s + d5,
                                    s + e0, s + e1, s + e2, s + e3, s + e4, s + e5, wload(gt, at))
                                at += COLS  # (a constant step: with the run-time width the cached code ran 1.5x slower)
                            _put_rows_at(part, a0, a1, a2, a3, a4, a5, c0, c1, c2, c3, c4, c5)
                            _put_rows_at(part, b0, b1, b2, b3, b4, b5, h0, h1, h2, h3, h4, h5)
                        else:
                            for p in range(p0, p1):
                                s = pos[p] + sshift
                                c0, c1, c2, c3, c4, c5 = wfma_span_rows(
                                    span, c0, c1, c2, c3, c4, c5,
                                    src, s + d0, s + d1, s + d2, s + d3, s + d4, s + d5, wload(gt, at))
                                at += COLS
                            _put_rows_at(part, a0, a1, a2, a3, a4, a5, c0, c1, c2, c3, c4, c5)
                    kt += 2 * ROWS if pair else ROWS
    return kernel


_taps_grad_w = _named(_make_taps_grad_w(1, _WIDE_AT_IMPORT), "_taps_grad_w")  # (this CPU's block width)


def _taps_grad_w_pairs():
    """The weight gradient kernel of 8 filters at 2 positions a panel for this block width, compiled on first use."""
    return kernel_for(_taps_grad_w, _make_taps_grad_w, "_taps_grad_w", 2)


@_backend.job_kernel
def _parts_transposed(parts, part, rows, out_ch, group_ch, span, wide, out, first_job, last_job, thread
                      ):  # pragma: no cover - compiled
    # parts: flat (T, G * O16 // 16, rows, 16), each thread's ``part`` values (G groups of
    # group_ch filters, O16 // 16 panels of 16 each); job ob writes out[o, k] = parts[0, ob, k, o %
    # 16] + parts[1, ob, k, o % 16] + ... (in that order, as NumPy's sum over the first axis) for
    # the filters o of panel ob (group ob // (O16 // 16)) and every tap k; out: flat (out_ch,
    # taps).  The other threads' panels are first added into thread 0's (in place: ``parts`` is
    # scratch), which is then read in order and written to its 16 rows in order (NumPy's
    # transposed copy of a 512 x 4608 gradient, whose reads or writes go to a new page every
    # value, took 14 ms, 6x this kernel; adding the threads' values inside that loop ran 8x slower).
    # span 2: a panel's lanes 2j and 2j + 1 are filter j's sums at two positions (the pairs'
    # kernel), added (even + odd) after the threads' sums
    count = parts.shape[0] // part
    taps = out.shape[0] // out_ch
    half = COLS // span  # (filters a panel)
    per = (group_ch * span + COLS - 1) // COLS  # (panels a group)
    for job in range(np.uint64(first_job), np.uint64(last_job)):
        ob = np.int64(job)
        o0 = ob // per * group_ch + ob % per * half
        n = min(half, group_ch - ob % per * half)
        panel = ob * rows * COLS
        for t in range(1, count):
            for i in range(panel, panel + taps * COLS):
                parts[i] += parts[t * part + i]
        if span == 2:
            for k in range(taps):
                at = panel + k * COLS
                for lane in range(n):
                    out[(o0 + lane) * taps + k] = parts[at + 2 * lane] + parts[at + 2 * lane + 1]
        elif n == COLS:  # (a constant count of lanes: with ``n`` for every panel, 512 x 4608 took 3.7 ms, not 2.8)
            k0 = 0
            if wide:  # 16 taps of the 16 filters at a time, each filter's 16 in one vector
                while k0 + COLS <= taps:
                    transpose16_to(parts, np.uint64(panel + k0 * COLS), np.uint64(COLS), out,
                                   np.uint64(o0 * taps + k0), np.uint64(taps))
                    k0 += COLS
            for k in range(k0, taps):
                at = panel + k * COLS
                for lane in range(COLS):
                    out[(o0 + lane) * taps + k] = parts[at + lane]
        else:
            for k in range(taps):
                at = panel + k * COLS
                for lane in range(n):
                    out[(o0 + lane) * taps + k] = parts[at + lane]


def _grad_w_plan(seg: np.ndarray, segf: np.ndarray, dstart: np.ndarray, tapmap: np.ndarray, taps: int
                 ) -> tuple[int, float, np.ndarray]:
    """``(most taps of a class, products of positions by taps, tap rows)`` of :func:`taps_grad_w`
    for these tables: its tap rows are ``tapmap`` with the padding taps (-1) sent to the scratch
    row ``taps``."""
    rowmap = np.where(tapmap < 0, taps, tapmap)
    rowmap.flags.writeable = False
    return int(np.diff(dstart).max(initial=0)), float(np.dot(np.diff(seg), np.diff(dstart)[segf])), rowmap


def _one_owner(jobs: int, runs: int, threads: int) -> bool:
    """Whether :func:`_backend.run_jobs`'s split of ``jobs`` between ``threads`` (runs of equal
    length, in order) leaves every share of a group's taps (``runs`` jobs one after another) on one
    thread."""
    threads = min(jobs, threads)
    return runs == 1 or all(jobs * t // threads % runs == 0 for t in range(1, threads))


def taps_grad_w(src: np.ndarray, g: np.ndarray, pos: np.ndarray, goff: np.ndarray, seg: np.ndarray,
                segf: np.ndarray, delta: np.ndarray, dstart: np.ndarray, tapmap: np.ndarray, taps: int,
                filters: int | None = None, groups: int = 1, gsrc: int = 0, span: int = 1) -> np.ndarray:
    """``(O, taps)``: the sums of :func:`_taps_grad_w` over its threads and then over its tail
    runs (:data:`GRAD_W_TAIL`), in that fixed order, transposed, for the positions ``pos`` in
    segments of one class each and the classes' taps (``tapmap``: each tap's index among the
    weight's ``taps``, -1 for padding; ``g``: ``(N, O_all, P)`` float32, C-contiguous, position
    ``p``'s value of filter ``o`` at ``goff[p] + o*P``; ``O``: ``filters``, or ``O_all``).  With
    ``groups``, ``filters`` is a group's and ``O`` is ``groups * filters``: group ``k``'s filters
    ``k * filters ..`` read ``src`` ``k * gsrc`` values further on, in one call (a call per group
    cost a hand-off between the threads each).  ``span`` 2: panels of 8 filters at 2 positions
    (:func:`_make_taps_grad_w`; ``pos``, ``goff``, ``seg``, ``segf``: the pairs', from
    :func:`split_segments`)."""
    threads = numba.config.NUMBA_NUM_THREADS
    out_ch, npos = (g.shape[1] if filters is None else filters), g.shape[2]
    width = -(-out_ch * span // COLS) * COLS
    bufs = np.empty((threads, GRAD_W_JOB * width), np.float32)
    runs = -(-pos.shape[0] // GRAD_W_JOB)
    # few runs of positions: the taps shared out too, a share per thread (each thread then adds
    # up its own taps over every position, and copies every position's gradient); many: the last
    # runs go to whichever thread is free, each into sums of its own (see GRAD_W_TAIL)
    most_taps, products, rowmap = _memo((seg, segf, dstart, tapmap), (taps,),
                                       functools.partial(_grad_w_plan, seg, segf, dstart, tapmap, taps))
    tap_jobs = 1 if runs * groups >= GRAD_W_TAP_SPLIT * threads else max(1, min(threads, most_taps // ROWS))
    jobs = runs * tap_jobs * groups
    tail = min(GRAD_W_TAIL, runs * groups // 5) if tap_jobs == 1 and threads > 1 else 0
    rows = taps + 1  # (the padding taps' scratch row last)
    shared = tap_jobs > 1 and dstart.shape[0] == 2 and _one_owner(jobs, runs, _backend.kernel_threads())
    parts = np.zeros((1 if shared else threads + tail, groups * rows * width), np.float32)
    kernel = kernel_for(_taps_grad_w, _make_taps_grad_w, "_taps_grad_w", span)
    _backend.run_jobs(kernel, jobs, read_only(src), read_only(g.reshape(-1)), npos, out_ch,
                      *map(read_only, (pos, goff, seg, segf, delta, dstart, rowmap)),
                      _numba_simd.WIDE, tap_jobs, jobs - tail, groups, gsrc, out_ch * npos, bufs, parts,
                      GRAD_W_PANELS and _numba_simd.WIDE, GRAD_W_TRANSPOSE,
                      GRAD_W_FOUR_TAPS and not _numba_simd.WIDE, GRAD_W_THREE_BY_TWO and span == 1,
                      work=products * out_ch * groups * span,
                      tail=tail)
    out = np.empty((groups * out_ch, taps), np.float32)
    _backend.run_jobs(_parts_transposed, groups * width // COLS, parts.reshape(-1), parts.shape[1], rows,
                      groups * out_ch, out_ch, span, _numba_simd.WIDE, out.reshape(-1), work=parts.size,
                      min_work=PARTS_MIN_WORK)
    return out
