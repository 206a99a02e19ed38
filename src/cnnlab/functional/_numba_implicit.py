"""Implicit-GEMM kernels (Numba, float32): a convolution's products without a column matrix.

The GEMM path (:mod:`cnnlab.functional._conv_kernels`) writes the im2col matrix, has the BLAS
pack it again into its own panels, multiplies, and copies the product back to channel-first
order; with 64 filters each packed value is used only 64 times, so the copies cost a third of
the layer.  The kernels here (the forward, and the input gradient) and the weight gradient's
(:mod:`cnnlab.functional._numba_implicit_grad_w`) read the padded input where it lies.  Both are products of a
``6 x 16`` register block (:mod:`cnnlab.functional._numba_simd`): 6 sixteen-lane vectors of
running sums, one vector load of 16 filters' weights (or upstream gradients) and six broadcast
input values per step of the shared dimension; on a CPU with AVX-512 (``WIDE``) two such blocks
at once, 12 x 16 (12 of its 32 vector registers), where two are left to run, and, where a group
has more than 16 filters, two panels of 16 filters at once, 12 x 32 (``PANELS``).  The sums of each
output are the same, in the same order, either way.

Every problem is given to them as offsets into flat arrays, so one kernel serves any stride,
dilation, padding and group, and the input gradient too:

- :func:`taps_forward`: ``y[yoff[p] + (first_row + o)*cstride] = bias[o] + sum_k src[pos[p] +
  delta[k]] * w[o, k]`` for every position ``p`` (a tap ``k`` is an input channel and a kernel
  offset, ``delta[k]`` its distance in ``src``; ``pos[p]`` is where position ``p``'s window
  starts; ``first_row`` is a group's first filter).  A job is a run of positions; it holds 6
  (or 12) positions by 16 filters at a time, the weights packed as ``wpk[o // 16, k, o % 16]`` (zeros
  past the last filter, by :func:`pack`), and runs its blocks through the taps
  :data:`TAP_CHUNK` at a time.  Its phases each have their own tables and taps (a job takes a
  region of every phase), and read one packing of every tap through a table of each tap's row
  in it (``wtap``).  The forward of a convolution is this with ``src`` the input, a phase
  per class of positions with the same taps inside it; the input gradient is this for every
  phase of the stride and class of its cells at once, with ``src`` the upstream gradient and
  the class's taps of the weights transposed (see :mod:`cnnlab.functional._implicit`).
- the weight gradient, :func:`cnnlab.functional._numba_implicit_grad_w.taps_grad_w`, by the
  same register blocks with taps for positions (a module of its own).

Groups: one call runs every group of a layer (a job is a group's region; group ``g`` reads its
input ``g * gsrc`` further on, its packed weights a step further on, and writes its own rows),
where a group's filters (or input channels) fit one block.  A group of at most 8 filters would
leave half of the 16 lanes idle; there the kernels hold each filter at two adjacent positions
(``span`` 2, :func:`cnnlab.functional._pairs.split_pairs`): lane ``2j + e`` is filter ``j`` at position ``p + e``, the
weights packed with each filter's row twice, and each row's two inputs ``src[p + d]``,
``src[p + d + 1]`` broadcast to the even and odd lanes by one 8-byte load
(:func:`cnnlab.functional._numba_simd.wfma_pair_at`).  Each output's sum runs over the same
taps in the same order as with one position a row (the same bits); the weight gradient sums a
filter's even and odd positions apart and adds the two at the end.  An input gradient's cells
of one phase of a stride read neighbouring values of the upstream gradient and pair too, their
two outputs stored ``ypair`` (the stride) apart instead of by one 8-byte copy.  The positions that
do not pair (a column a class wide, an odd row's last, a forward's every one with a stride along
the last axis) keep one position a row, in a second call.

Where ``src`` is a zero-padded copy (:class:`Frame`), a block of positions runs, of each channel,
only the kernel rows (planes, in 3-d) that some of its positions read inside the copy's values:
at the top and bottom of an image the rows of padding are skipped, the taps kept in their order
(so the same sums, bit for bit).

The sums run in a different order from the loop reference's (and with one rounding per
multiply-add), so float results may differ from it in the last bits.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numba
import numpy as np

from cnnlab.functional import _backend, _numba_simd
from cnnlab.functional._backend import read_only
from cnnlab.functional._frames import Frame, boxes
from cnnlab.functional._numba_panels import (
    BUF,
    COLS,
    ROWS,
    _in_a_row,
    _panel_blocks,
    _panel_run_taps,
    _put_rows,
    _rows,
    _runs,
    call_two_panels,
    two_panels_address,
)
from cnnlab.functional._numba_simd import (
    copy_pair,
    prefetch_write,
    transpose16,
    wfma_span_blocks,
    wfma_span_rows,
    wload,
)

# Blocks of positions per job of the forward (and of the input gradient): JOB_BLOCKS, or
# JOB_BLOCKS_LIGHT where a group's packed weights take at most LIGHT_WEIGHT_BYTES (a job pays for
# each of its phases, chunks and panels a pass of loop bookkeeping and the two-panel part's call,
# which few taps do not hide), with at least MIN_JOBS jobs where JOB_BLOCKS would give them (both
# threads busy on small problems).  Measured on 2 threads, forwards alternating in one process,
# the fastest of 61, JOB_BLOCKS 8 / 16 / 32 (ms): N32 C6 28x28 -> 32 k3 p1 (54 taps) 0.90 / 0.83
# / 0.79; N32 C32 32x32 -> 64 k3 p1 4.99 / 4.87 / 4.65; the layer 1.42 / 1.40 / 1.35; N8
# C64 28x28 -> 128 k5 p2 (800 KB of weights) 6.83 / 6.72 / 6.68; N64 C32 7x7 -> 64 1.02 / 0.95
# / 0.96; against it, heavy weights, 8 / 32: N8 C256 14x14 -> 256 k3 (2.3 MB) 5.37 / 5.69, N8 C128
# 14x14 -> 512 k5 (6.5 MB) 13.1 / 14.2.
JOB_BLOCKS = 8
JOB_BLOCKS_LIGHT = 32
LIGHT_WEIGHT_BYTES = 1 << 20
MIN_JOBS = 8
# Taps per chunk of the forward (the taps are split into equal chunks of at most this many): a job
# runs all its blocks through one chunk before the next, so that the chunk's packed weights (64
# bytes a tap per 16 filters) stay in a cache, the blocks' sums waiting in ``acc`` between chunks.
# The sums are added in the same order.  Chunks of 256 taps (L1-sized, measured on an earlier
# machine: N16 C64 56x56 -> 64 k3 65.8 GFLOP/s without chunks, 77.6 with) cost 4-11% on this Zen 4
# (32 KiB L1, 1 MiB L2 a core, whose L2 keeps up with the 128 bytes of weights per 24
# multiply-adds).  Forward / input gradient, 2 threads, one process, chunks of 256 / 512 / 1024 /
# none (ms): the layer N32 C16 24x24 -> 32 k5 p2 3.54 / 3.27 / 3.28 / - and 3.55 / 3.42 /
# 3.42 / -; N64 C32 14x14 -> 64 3.79 / 3.59 / 3.58 / - and 3.45 / 3.30 / 3.25 / -; N8 C256
# 14x14 -> 256 11.2 / 10.5 / 10.4 / 10.6 and 10.9 / 10.5 / 10.1 / 10.6; N16 C64 56x56 -> 64 22.1 /
# 21.1 / 20.2 / 21.5 and 21.9 / 20.9 / 20.0 / 21.2; N8 C128 14x14 -> 512 k5 30.0 / 28.8 / 27.1 /
# 25.9 and 32.5 / 30.5 / 29.3 / 27.5; on one thread, 256 / 1024: 5.08 -> 4.87, 40.8 -> 38.6, 60.4
# -> 53.8 (forward).
TAP_CHUNK = 1024
# Whether, with the wide block (AVX-512), a pair of blocks runs two panels of 16 filters at once
# (12 x 32 sums in 24 registers, :func:`_two_panels`) where a group has more than 16 filters: each
# input is read once per two panels, and a block's fixed costs (its positions, sums and stores) are
# paid once per 32 filters.  The same bits.  Forward / input gradient, one process, off -> on (ms):
# N8 C128 14x14 -> 512 k5 p2 31.9 -> 29.4 / 32.3 -> 30.5; N64 C256 8x8 -> 64 k7 36.3 -> 34.1 / 36.3
# -> 34.1; N8 C256 14x14 -> 256 k3 13.5 -> 12.2 / 12.7 -> 12.4; N16 C64 56x56 -> 64 26.8 -> 25.7 /
# 26.8 -> 25.6; within the noise (+-3%) for N64 C32 14x14 -> 64 and the layer (32 filters
# of 400 taps).
PANELS = True
# Output planes this many bytes apart (or a multiple) are written a filter at a time after each
# phase of a job (see _taps_forward), instead of a block at a time.
STAGED_PITCH = 2048


@_backend.job_kernel
def _staged_stores(y, acc, yoff, r_first, b_first, b_last, groups16, half, out_ch, row0, cstride, span, ypair
                   ):  # pragma: no cover - compiled
    # The sums of a phase's blocks b_first .. b_last-1 of a job (block blk's at acc[((blk - b_first) *
    # groups16 + og) * ROWS * COLS:], position by position, 16 lanes each; its positions' offsets in
    # y at yoff[r_first + blk * ROWS:], padding < 0) stored a filter at a time, the positions in
    # order: with planes 2 or 4 KB apart (the stride-2 layer's input gradient, 32x32 planes), a
    # block's 16 filters fell into one or two sets of the L1 cache, and its stores took 2.8 of the
    # kernel's 6.1 ms; in order they took 0.9 (round 35).  Round 48, on a Zen 3, where these stores
    # took 1.8-2.6 ms of that input gradient's 6.1-7.7 on one thread: the loop as a part compiled
    # on its own (6.58 -> 6.38 ms against the same loop inside the kernel; a block's six sums written
    # out as six loads, then six stores, no faster: 5.30 / 5.08, 5.47 / 5.16 ms, unrolled / loop).
    # Six loads and stores inlined into the kernel took the input gradient to 9.3-9.9 ms; with
    # unsigned indices here, 5.31 -> 7.06: what this loop costs depends on how LLVM lays it out,
    # so a change here is measured.  Round 50: each value took 14 instructions, 7 of them checks
    # for negative indices (yoff[r + i], acc[a + ...] with signed r and a); read through views
    # from the job's first block with unsigned indices, it takes 5 (a load of its offset, a test,
    # a branch, a load, a store), and the input gradient ran 2.83 -> 2.72, 3.00 -> 2.84 ms (2
    # threads; 1 thread 6.64 -> 5.96), N16 C32 32x32 -> 32 forward 2.91 -> 2.79.
    ys = yoff[r_first + b_first * ROWS:r_first + b_last * ROWS]  # (the job's blocks' offsets from 0)
    step = np.uint64(groups16 * (ROWS * COLS))
    for og in range(groups16):
        sums = acc[og * (ROWS * COLS):]
        for j in range(min(half, out_ch - og * half)):
            at = np.uint64((row0 + og * half + j) * cstride)
            lane = np.uint64(span * j)
            for blk in range(np.uint64(0), np.uint64(b_last - b_first)):
                a, r = blk * step + lane, blk * np.uint64(ROWS)
                for i in range(np.uint64(0), np.uint64(ROWS)):
                    base = ys[r + i]
                    if base >= 0:
                        if span == 1:
                            y[np.uint64(base) + at] = sums[a + i * np.uint64(COLS)]
                        elif ypair == 1:
                            copy_pair(y, np.uint64(base) + at, sums, a + i * np.uint64(COLS))
                        else:  # (a pair's second position ypair further on in y)
                            y[np.uint64(base) + at] = sums[a + i * np.uint64(COLS)]
                            y[np.uint64(base + ypair) + at] = sums[a + i * np.uint64(COLS) + np.uint64(1)]


def _make_taps_forward(span, wide_code=True):
    """The forward product kernel (see :func:`taps_forward`) with ``span`` positions a block's
    row: 1, its 16 lanes 16 filters (each row's input broadcast); 2, 8 filters at two adjacent
    positions (lane ``2j + e``: filter ``j`` at position ``p + e``; each row's two inputs
    broadcast to the even and odd lanes, :func:`cnnlab.functional._numba_simd.wfma_pair_at`), for
    groups of at most 8 filters (or input channels), which would leave half the lanes idle.
    ``wide_code`` False: without the paths of the wide block (its argument ``wide`` then read as
    False), which Numba prunes before compiling (:func:`width_variant`)."""
    def kernel(src, wpk, wtap, wpanel, gwstep, bias, pos, pstart, delta, dstart, yoff, kgrid, box, jobs, chunk, staged,
               cstride, ypair, first_row, out_ch, groups, gsrc, grow, y, wide, panels, two_panels, bufs, accs,
               first_job, last_job, thread):  # pragma: no cover - compiled
        # src: flat input; wpk: the packed weights of every tap (a panel of 16 filters, or one filter
        # twice with span 2, after another, wpanel values apart); phases f = 0 .. F-1, each with its taps
        # delta[dstart[f]:dstart[f+1]] (tap k's weights the 16 values at wpk[wtap[k] * 16:] of each
        # panel) and its positions pos, yoff[pstart[f]:pstart[f+1]] (a multiple of ROWS; a padding
        # entry has yoff < 0: computed, never stored);
        # bias: O16 values a group; filter o is written to row first_row + o of y (a group's first filter);
        # groups: the groups, group g reading src gsrc * g further on, its packed weights gwstep * g
        # further on, its bias O16 * g further on, its filters written grow * g rows further
        # on; wide: two blocks of ROWS positions at a time where the job has two left (12 x 16 sums;
        # with panels, span 1 and a second panel of filters, 12 x 32: _two_panels);
        # bufs: a row of BUF values per thread; job g * jobs + j takes the j-th share of
        # every phase's blocks of group g, so the phases of one region run one after another; jobs
        # first..last-1; kgrid: per phase, its taps a channel (the taps come channel after
        # channel) and a slab of them (the taps of a channel with the same first kernel index);
        # box: empty, or per block of positions (r // ROWS) the slabs lo <= s < hi of each channel
        # that it runs (the others read zero padding alone: skipped)
        o16 = bias.shape[0] // groups
        groups16 = o16 // COLS
        half = COLS // span  # (filters a block)
        buf, acc = bufs[thread], accs[thread]
        for job in range(np.uint64(first_job), np.uint64(last_job)):
            grp, jb = np.int64(job) // jobs, np.int64(job) % jobs
            shift, row0, bias0 = grp * gsrc, first_row + grp * grow, grp * o16
            for f in range(dstart.shape[0] - 1):
                taps = dstart[f + 1] - dstart[f]
                ds = delta[dstart[f]:dstart[f + 1]]  # (a view indexed from 0: an index from dstart[f]
                # could be negative for all LLVM knows, and its wrap-around check in the loop below
                # slowed the 14x14 forward by 10%)
                wt = wtap[dstart[f]:dstart[f + 1]]
                blocks = (pstart[f + 1] - pstart[f]) // ROWS
                b_first, b_last = jb * blocks // jobs, (jb + 1) * blocks // jobs
                # the taps a chunk at a time, every block of the job through each chunk before the
                # next: a chunk's packed weights (chunk * 64 bytes per 16 filters) stay in the L1
                # cache, and the sums of the blocks wait in ``acc`` between chunks
                per, row = max(1, kgrid[2 * f]), kgrid[2 * f + 1]  # (taps a channel, a slab)
                step = max(1, -(-taps // -(-taps // chunk)))  # (the taps split into equal chunks)
                for k0 in range(0, max(taps, 1), step):
                    k1 = min(taps, k0 + step)
                    for og in range(groups16):
                        filters = min(half, out_ch - og * half)
                        blk_from = b_first
                        if wide_code and span == 1 and panels and wide and (og % 2 == 1 or og + 1 < groups16):
                            # (the pairs of blocks run two panels of 16 filters at once, with panel
                            # og - 1 where og is odd: _two_panels; an odd block left takes the path below)
                            pairs = (b_last - b_first) // 2
                            blk_from = b_first + 2 * pairs
                            if og % 2 == 0 and pairs:  # (a call costs, where a job has no pair of a phase)
                                call_two_panels(two_panels, src, wpk, bias, pos, yoff, box, ds, wt, acc, buf, y,
                                            pstart[f] + b_first * ROWS, pairs, shift, og * (ROWS * COLS),
                                            groups16 * (ROWS * COLS), bias0 + og * COLS,
                                            grp * gwstep + og * wpanel, wpanel,
                                            row0 + og * half, min(half, out_ch - (og + 1) * half), cstride,
                                            k0, k1, taps, per, row, staged)
                        for blk in range(blk_from, b_last, 2 if wide_code and wide else 1):
                            pair = wide_code and wide and blk + 1 < b_last  # (blocks blk and blk + 1 at once)
                            r = pstart[f] + blk * ROWS
                            r2 = r + ROWS if pair else r
                            p0, p1, p2 = pos[r] + shift, pos[r + 1] + shift, pos[r + 2] + shift
                            p3, p4, p5 = pos[r + 3] + shift, pos[r + 4] + shift, pos[r + 5] + shift
                            q0, q1, q2 = pos[r2] + shift, pos[r2 + 1] + shift, pos[r2 + 2] + shift
                            q3, q4, q5 = pos[r2 + 3] + shift, pos[r2 + 4] + shift, pos[r2 + 5] + shift
                            a = ((blk - b_first) * groups16 + og) * (ROWS * COLS)
                            a2 = a + groups16 * (ROWS * COLS) if pair else a  # (block blk + 1's sums)
                            if k1 == taps and not staged:
                                # the lines of y the blocks will write, fetched while their sums run
                                # (stored from a cold cache, the 96 values' misses stalled the 14x14
                                # forward by 25%)
                                for i in range(0, 2 * ROWS if pair else ROWS, ROWS - 1):
                                    base = yoff[r + i]
                                    if base >= 0:
                                        at = np.uint64(base + (row0 + og * half) * cstride)
                                        for j in range(filters):
                                            prefetch_write(y, at + np.uint64(j * cstride))
                            if k0 == 0:
                                b0 = wload(bias, bias0 + og * COLS)
                                c0, c1, c2, c3, c4, c5 = b0, b0, b0, b0, b0, b0
                                d0, d1, d2, d3, d4, d5 = b0, b0, b0, b0, b0, b0
                            else:
                                c0, c1, c2, c3, c4, c5 = _rows(acc, a)
                                d0, d1, d2, d3, d4, d5 = _rows(acc, a2)
                            # the block's taps in this chunk: all, or of each channel those of its
                            # rows (the others read zero padding alone)
                            lo, hi = 0, per
                            if box.shape[0]:
                                bi = r // ROWS
                                lo, hi = box[bi, 0] * row, box[bi, 1] * row
                                if pair:  # (both blocks' taps)
                                    lo, hi = min(lo, box[bi + 1, 0] * row), max(hi, box[bi + 1, 1] * row)
                            wk = grp * gwstep + og * wpanel
                            first_ch, last_ch, pitch = k0 // per, (k1 + per - 1) // per, per
                            if lo == 0 and hi == per:  # (every tap: the chunk in one run, not one a channel)
                                first_ch, last_ch, pitch, lo, hi = 0, 1, 0, k0, k1
                            # (with span 1, twelve positions one after another read from one
                            # address a tap, as in _two_panels)
                            run = wide_code and span == 1 and pair and _runs(p0, p1, p2, p3, p4, p5,
                                                                             q0, q1, q2, q3, q4, q5)
                            for ch in range(first_ch, last_ch):
                                ka, kz = max(k0, ch * pitch + lo), min(k1, ch * pitch + hi)
                                if wide_code and run:  # (wide_code: branches Numba prunes)
                                    c0, c1, c2, c3, c4, c5, d0, d1, d2, d3, d4, d5 = _panel_run_taps(
                                        c0, c1, c2, c3, c4, c5, d0, d1, d2, d3, d4, d5, src, p0, q0, ds, wt, wpk,
                                        wk, ka, kz)
                                elif wide_code and span == 1 and pair:
                                    for k in range(np.uint64(ka), np.uint64(kz)):
                                        c0, c1, c2, c3, c4, c5, d0, d1, d2, d3, d4, d5 = _panel_blocks(
                                            c0, c1, c2, c3, c4, c5, d0, d1, d2, d3, d4, d5, src,
                                            p0, p1, p2, p3, p4, p5, q0, q1, q2, q3, q4, q5, ds[k],
                                            wload(wpk, wk + wt[k] * COLS))
                                elif wide_code and pair:
                                    for k in range(np.uint64(ka), np.uint64(kz)):
                                        dk = ds[k]
                                        w = wk + wt[k] * COLS
                                        c0, c1, c2, c3, c4, c5, d0, d1, d2, d3, d4, d5 = wfma_span_blocks(
                                            span, c0, c1, c2, c3, c4, c5, d0, d1, d2, d3, d4, d5, src,
                                            p0 + dk, p1 + dk, p2 + dk, p3 + dk, p4 + dk, p5 + dk,
                                            q0 + dk, q1 + dk, q2 + dk, q3 + dk, q4 + dk, q5 + dk, wload(wpk, w))
                                else:
                                    for k in range(np.uint64(ka), np.uint64(kz)):
                                        dk = ds[k]
                                        w = wk + wt[k] * COLS
                                        c0, c1, c2, c3, c4, c5 = wfma_span_rows(
                                            span, c0, c1, c2, c3, c4, c5,
                                            src, p0 + dk, p1 + dk, p2 + dk, p3 + dk, p4 + dk, p5 + dk, wload(wpk, w))
                            if k1 < taps or staged:  # the running sums wait for the next chunk (or the stores below)
                                _put_rows(acc, a, c0, c1, c2, c3, c4, c5)
                                if pair:
                                    _put_rows(acc, a2, d0, d1, d2, d3, d4, d5)
                                continue
                            _put_rows(buf, 0, c0, c1, c2, c3, c4, c5)
                            if pair:
                                _put_rows(buf, ROWS * COLS, d0, d1, d2, d3, d4, d5)
                            for i in range(2 * ROWS if pair else ROWS):
                                base = yoff[r + i]
                                if base >= 0:
                                    at = np.uint64(base + (row0 + og * half) * cstride)
                                    for j in range(filters):
                                        if span == 1:
                                            y[at + np.uint64(j * cstride)] = buf[i * COLS + j]
                                        elif ypair == 1:  # (lanes 2j, 2j + 1: filter j at the two
                                            # positions, one 8-byte copy)
                                            copy_pair(y, at + np.uint64(j * cstride), buf, i * COLS + 2 * j)
                                        else:  # (the second position ypair further on: an input gradient's
                                            # cells of one phase, a stride apart)
                                            y[at + np.uint64(j * cstride)] = buf[i * COLS + 2 * j]
                                            y[at + np.uint64(j * cstride + ypair)] = buf[i * COLS + 2 * j + 1]
                if staged:  # (the phase's sums, stored a filter at a time: _staged_stores)
                    _staged_stores(y, acc, yoff, pstart[f], b_first, b_last, groups16, half, out_ch, row0, cstride,
                                   span, ypair)
    return kernel


def _named(fn, name):
    """``fn`` (a closure from a ``_make_*`` function) compiled as a job kernel under its own
    ``name``: closures of one source share a name and line, and would otherwise share an entry of
    Numba's disk cache."""
    fn.__name__ = fn.__qualname__ = name
    return _backend.job_kernel(fn)


# The forward kernels are compiled for one block width, this CPU's (``_numba_simd.WIDE`` at
# import), and for the other only where it is asked for (tests set ``_numba_simd.WIDE``):
# without AVX-512 the wide block's paths are never taken, and compiling them as well took the
# first implicit forward of a cold start 12.8-15.5 s instead of 3.5-3.8 (round 50, alternating).
_WIDE_AT_IMPORT = bool(_numba_simd.WIDE)
_taps_forward = _named(_make_taps_forward(1, _WIDE_AT_IMPORT), "_taps_forward")


@functools.cache
def width_variant(make, name: str, span: int, wide: bool):
    """The kernel ``make(span, wide)`` (``span`` 1, or 2: blocks of 8 filters at 2 positions),
    with or without the wide block's paths, compiled on first use under ``name`` (``_pairs``
    added for span 2, and ``_wide`` or ``_narrow`` for the width other than this CPU's, so that
    each has its own entry of Numba's disk cache).  The kernel of span 1 and this CPU's width is
    a module attribute (:data:`_taps_forward`), compiled on import."""
    name += "_pairs" if span == 2 else ""
    if wide != _WIDE_AT_IMPORT:
        name += "_wide" if wide else "_narrow"
    return _backend.made_kernel(_named(make(span, wide), name))


def kernel_for(plain, make, name: str, span: int):
    """The kernel of ``span`` for the block width asked for now (``_numba_simd.WIDE``): ``plain``
    (the module's kernel of span 1 and this CPU's width, read at each call so that a test may
    patch it) or :func:`width_variant`."""
    wide = bool(_numba_simd.WIDE)
    return plain if span == 1 and wide == _WIDE_AT_IMPORT else width_variant(make, name, span, wide)


def _taps_forward_pairs():
    """The forward kernel of blocks of 8 filters at 2 positions for this block width, compiled on first use."""
    return kernel_for(_taps_forward, _make_taps_forward, "_taps_forward", 2)


@_backend.job_kernel
def _pack_rows(src, rows, taps, flat, fstart, ostart, cols, wide, out, first_job, last_job, thread
               ):  # pragma: no cover - compiled
    # src: flat (A, rows, taps); phases f = 0 .. F-1, each with the taps flat[fstart[f]:fstart[f+1]]
    # (nt of them) written from ostart[f] on: job rb * F + f writes out[ostart[f] + ((rb * A + a) *
    # nt + j) * cols + lane] = src[a, rb * cols + lane, flat[fstart[f] + j]] (zeros past the last
    # row) for every a, j and lane (a job per block of rows and phase: an input gradient's 16
    # channels are one block, and its 25 classes of N32 C16 24x24 -> 32 k5 p2 packed 185,000
    # values on one thread, 150 us)
    big = src.shape[0] // (rows * taps)
    phases = fstart.shape[0] - 1
    zero = np.float32(0.0)
    for job in range(np.uint64(first_job), np.uint64(last_job)):
        rb, f = np.int64(job) // phases, np.int64(job) % phases
        r0 = rb * cols
        n = min(cols, rows - r0)
        nt = fstart[f + 1] - fstart[f]
        for a in range(big):
            done = 0  # (taps written by the transposes)
            if wide and n == 16 and cols == 16:
                # 16 taps one after another by the block's 16 rows at once, transposed in registers
                # (the 6.4 MB weights of a 512-channel 7x7 layer: one value at a time, 1.0-1.7 ms)
                base = np.uint64((a * rows + r0) * taps)
                while _in_a_row(flat, fstart[f] + done, fstart[f + 1], 16):
                    transpose16(src, base + np.uint64(flat[fstart[f] + done]), np.uint64(taps), out,
                                np.uint64(ostart[f] + ((rb * big + a) * nt + done) * cols))
                    done += 16
            for j in range(done, nt):
                # (unsigned indices: with signed ones each value's load and store tested for
                # a negative index: the stride-2 layer's 51,200 packed values took 68 us, not 30)
                at = np.uint64(ostart[f] + ((rb * big + a) * nt + j) * cols)
                base = np.uint64((a * rows + r0) * taps + flat[fstart[f] + j])
                for lane in range(np.uint64(n)):
                    out[at + lane] = src[base + lane * np.uint64(taps)]
                for lane in range(np.uint64(n), np.uint64(cols)):
                    out[at + lane] = zero


def starts(lengths: Sequence[int]) -> np.ndarray:
    """``[0, l0, l0 + l1, ...]`` (int64, read-only): where each phase's entries begin in the
    concatenated tables of :func:`taps_forward`, and the end."""
    out = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=out[1:])
    out.flags.writeable = False
    return out


def taps_forward(src: np.ndarray, wpk: np.ndarray, wtap: np.ndarray, bias: np.ndarray, pos: np.ndarray,
                 pstart: np.ndarray, delta: np.ndarray, dstart: np.ndarray, yoff: np.ndarray, cstride: int,
                 first_row: int, out_ch: int, y: np.ndarray, groups: int = 1, gsrc: int = 0, grow: int = 0,
                 span: int = 1, frame: Frame | None = None, pair_step: int = 1) -> None:
    """Run :func:`_taps_forward` (see the module's docstring) into the flat float32 ``y``: its
    filter ``o`` goes to row ``first_row + o`` (``cstride`` apart).  ``wpk``: the weights of
    every tap packed once (:func:`pack`; every group's, one after another); the phases' tables
    are concatenated, phase ``f``'s entries from ``pstart[f]`` (positions) and ``dstart[f]``
    (taps) on (:func:`starts`), and ``wtap`` (int64, as ``delta``) gives each tap's row in the
    packed weights, so that the phases (classes of positions, with fewer taps than the kernel)
    share one packing; a forward is one phase.  With ``groups``,
    the same tables serve every group in one call: group ``g`` reads ``src`` ``g * gsrc`` values
    further on, its packed weights the ``g``-th share of ``wpk``, its ``out_ch`` values of ``bias``
    (``groups`` blocks of ``O16``) ``g * O16`` further on, and writes rows ``g * grow`` further
    on (a call per group cost a hand-off between the threads each: 32 groups, 64 calls a step).
    ``span`` 2: blocks of 8 filters at 2 positions (:func:`_make_taps_forward`; ``pos``, ``yoff``:
    the pairs' first positions, from :func:`split_pairs`; weights and bias packed with each
    filter's row twice, ``bias`` 16 values a group; ``pair_step``: how far a pair's second
    position lies from its first in ``y``, 1 for a forward, the stride for an input gradient's
    phases).  ``frame``
    (:class:`Frame`): where ``src`` is a zero-padded copy, so that each block of positions runs
    only the kernel rows that reach inside it (:func:`cnnlab.functional._frames.boxes`; None: every tap)."""
    threads = numba.config.NUMBA_NUM_THREADS
    bufs = np.empty((threads, BUF), np.float32)
    job_blocks = JOB_BLOCKS_LIGHT if wpk.nbytes // groups <= LIGHT_WEIGHT_BYTES else JOB_BLOCKS
    jobs, share, chunked, products = _memo((pstart, dstart), (job_blocks, TAP_CHUNK, JOB_BLOCKS, MIN_JOBS),
                                           functools.partial(_forward_plan, pstart, dstart, job_blocks, TAP_CHUNK))
    # output planes a multiple of 2 KB apart: a block's 16 filters would share one or two sets of
    # the L1 cache, so the sums wait in ``accs`` and are stored a filter at a time
    staged = (cstride * y.itemsize) % STAGED_PITCH == 0
    o16 = bias.shape[0] // groups
    accs = np.empty((threads, share * o16 * ROWS if chunked or staged else 0), np.float32)
    kgrid, box = _memo((pos, pstart, yoff, delta, dstart), ("box", frame),
                       functools.partial(boxes, pos, pstart, yoff, delta, dstart, frame, ROWS))
    kernel = kernel_for(_taps_forward, _make_taps_forward, "_taps_forward", span)
    gwstep = wpk.shape[0] // groups  # (a group's packed weights)
    wpanel = gwstep // (o16 // COLS)  # (a panel's)
    wide = bool(_numba_simd.WIDE)
    panels = PANELS and wide
    args = (read_only(src), read_only(wpk), read_only(wtap), wpanel, gwstep,
            *map(read_only, (bias, pos, pstart, delta, dstart, yoff, kgrid, box)),
            jobs, TAP_CHUNK, staged, cstride, int(pair_step), first_row, out_ch, groups, gsrc, grow, y, wide, panels)
    # (the kernel calls _two_panels at its address; where another process is compiling that, this
    # one compiles the kernel meanwhile, a call that runs no job)
    address = two_panels_address(lambda: kernel(*args, 0, bufs, accs, 0, 0, 0)) if panels and span == 1 else 0
    _backend.run_jobs(kernel, jobs * groups, *args, address, bufs, accs, work=products * out_ch * groups * span,
                      balanced=True)


def _forward_plan(pstart: np.ndarray, dstart: np.ndarray, job_blocks: int, chunk: int) -> tuple[int, int, bool, float]:
    """``(jobs, share, chunked, products)`` of :func:`taps_forward` for these tables (``job_blocks``:
    :data:`JOB_BLOCKS` or :data:`JOB_BLOCKS_LIGHT`, ``chunk``: :data:`TAP_CHUNK`): its jobs (at least
    :data:`MIN_JOBS` where :data:`JOB_BLOCKS` gives them), the most blocks a job takes of a
    phase, whether the taps come in chunks, and the products of positions by taps (times the
    filters: the call's work)."""
    blocks = np.diff(pstart) // ROWS
    most = int(blocks.max(initial=0))
    jobs = max(1, -(-most // job_blocks), min(-(-most // JOB_BLOCKS), MIN_JOBS))
    products = float(np.dot(np.diff(pstart), np.diff(dstart)))
    chunked = int(np.diff(dstart).max(initial=0)) > chunk
    return jobs, -(-most // jobs), chunked, products


# What :func:`_memo` keeps: at most this many entries (then it starts afresh).
MEMO_ENTRIES = 256
_memos: dict[tuple, tuple[tuple, object]] = {}


def _memo(tables: Sequence, extra: tuple, make):
    """``make()`` for these ``tables`` and the values ``extra``, kept for the next call with the
    same ones where every table is a read-only array (the cached offset tables of
    :mod:`cnnlab.functional._implicit`, taken by identity; any other is computed afresh): the
    sizes and starts that the kernels' wrappers derive from the tables cost 10-20 us of NumPy calls
    each time (a LeNet-5 layer's forward is 250 us).  The entry holds the tables themselves, so
    that their ``id`` is not reused while it is kept."""
    key = (*map(id, tables), *extra)
    hit = _memos.get(key)
    if hit is not None:  # (plain loops: a dozen calls a layer's step, run with the caches cold)
        for kept, table in zip(hit[0], tables, strict=True):
            if kept is not table or table.flags.writeable:
                break
        else:
            return hit[1]
    for table in tables:
        if not isinstance(table, np.ndarray) or table.flags.writeable:
            return make()
    value = make()
    if len(_memos) >= MEMO_ENTRIES:
        _memos.clear()
    _memos[key] = (tables, value)
    return value


def pack(src: np.ndarray, flat: np.ndarray, cols: int = COLS) -> np.ndarray:
    """The weights packed for the kernels, on both cores: flat ``wpk[r // cols, a * nt + j, r %
    cols] = src[a, r, flat[j]]`` (zeros past the last row ``r``) from the float32 ``(A, R, T)``
    ``src`` and the ``nt`` taps ``flat``: a forward's ``(O, K)`` weights are ``src = w[None]``
    with every tap, an input gradient's phase ``src = w`` (``(O, C, T)``) with the phase's taps.
    (NumPy's transposed copies took 21 ms for the 512-channel 3x3 layer's input gradient, as
    long as its kernel.)"""
    return pack_phases(src, [flat], cols)[0]


def pack_phases(src: np.ndarray, flats: Sequence[Sequence[int]], cols: int = COLS) -> tuple[np.ndarray, np.ndarray]:
    """``(wpk, wstart)``: :func:`pack` of ``src`` for each list of taps in ``flats``, one after
    another (phase ``f``'s from ``wstart[f]`` on), in one parallel call (a call per phase cost a
    hand-off between the threads each, 30-50 us)."""
    big, rows, taps = src.shape
    blocks = -(-rows // cols)
    per_tap = blocks * cols * big
    ostart, flat, fstart = _memo(flats, (per_tap,), functools.partial(_pack_plan, flats, per_tap))
    out = np.empty(int(ostart[-1]), np.float32)
    _backend.run_jobs(_pack_rows, blocks * len(flats), read_only(np.ascontiguousarray(src, np.float32).reshape(-1)),
                      rows, taps, flat, fstart, ostart, cols, _numba_simd.WIDE, out, work=out.size)
    return out, ostart


def _pack_plan(flats: Sequence[Sequence[int]], per_tap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ostart, flat, fstart)`` of :func:`pack_phases`: where each phase's packed weights start
    (``per_tap`` values a tap), its taps concatenated, and where each phase's taps start."""
    ostart = starts([per_tap * len(flat) for flat in flats])
    flat = np.concatenate(flats, dtype=np.int64) if len(flats) else np.zeros(0, np.int64)
    flat.flags.writeable = False
    return ostart, flat, starts([len(f) for f in flats])
