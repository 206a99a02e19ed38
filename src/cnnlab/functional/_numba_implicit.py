"""Implicit-GEMM kernels (Numba, float32): a convolution's products without a column matrix.

The GEMM path (:mod:`cnnlab.functional._conv_kernels`) writes the im2col matrix, has the BLAS
pack it again into its own panels, multiplies, and copies the product back to channel-first
order; with 64 filters each packed value is used only 64 times, so the copies cost a third of
the layer.  The kernels here read the padded input where it lies.  Both are products of a
``6 x 16`` register block (:mod:`cnnlab.functional._numba_simd`): 12 vectors of running sums,
two vector loads of 16 filters' weights (or upstream gradients) and six broadcast input values
per step of the shared dimension.

Every problem is given to them as offsets into flat arrays, so one kernel serves any stride,
dilation, padding and group, and the input gradient too:

- :func:`taps_forward`: ``y[yoff[p] + (first_row + o)*cstride] = bias[o] + sum_k src[pos[p] +
  delta[k]] * w[o, k]`` for every position ``p`` (a tap ``k`` is an input channel and a kernel
  offset, ``delta[k]`` its distance in ``src``; ``pos[p]`` is where position ``p``'s window
  starts; ``first_row`` is a group's first filter).  A job is a run of positions; it holds 6
  positions by 16 filters at a time, the weights packed as ``wpk[o // 16, k, o % 16]`` (zeros
  past the last filter).  The forward of a convolution is this with ``src`` the padded input;
  the input gradient is this for every phase of the stride at once (each phase its own tables,
  a job a region of every phase), with ``src`` the zero-bordered upstream gradient and the
  phase's taps of the weights transposed (see :mod:`cnnlab.functional._implicit`).
- :func:`taps_grad_w`: ``parts[t, k, o] += sum_p src[pos[p] + delta[k]] * g[p, o]``, the
  weight gradient.  A job is a run of :data:`GRAD_W_JOB` positions: it copies their upstream
  gradient channels-last into a buffer of its thread (16 filters per vector; a transposed copy
  of the whole gradient beforehand cost NumPy 1.5 ms on the 14x14 layer, a third of the
  kernel), then adds 6 taps by 16 filters at a time into its thread's row of ``parts`` (the
  caller sums the rows).

The sums run in a different order from the loop reference's (and with one rounding per
multiply-add), so float results may differ from it in the last bits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

from cnnlab.functional import _backend
from cnnlab.functional._backend import read_only
from cnnlab.functional._numba_simd import prefetch_write, vfma_at, vload, vstore

# Positions and filters of one register block.
ROWS, COLS = 6, 16
# Blocks of positions per job of the forward: the job's weights stay in the L1 cache while it
# runs through 8 blocks of 6 positions.
JOB_BLOCKS = 8
# Positions per job of the weight gradient (its slice of the upstream gradient, 16 KiB per 16
# filters, stays in the L1 cache while the job's 6-tap blocks read it).
GRAD_W_JOB = 256


@_backend.job_kernel
def _taps_forward(src, wpk, wstart, bias, pos, pstart, delta, dstart, yoff, jobs, cstride, first_row, out_ch, y, bufs,
                  first_job, last_job, thread):  # pragma: no cover - compiled
    # src: flat input; phases f = 0 .. F-1, each with its packed weights wpk[wstart[f]:] ((O16 // 16)
    # * K_f * 16 values), its taps delta[dstart[f]:dstart[f+1]] and its positions pos, yoff[pstart[f]:
    # pstart[f+1]] (a multiple of ROWS; a padding entry has yoff < 0: computed, never stored);
    # bias: O16 values; filter o is written to row first_row + o of y (a group's first filter);
    # bufs: a row of ROWS * COLS values per thread; job j (of jobs) takes the j-th share of every
    # phase's blocks, so the phases of one region run one after another; jobs first..last-1
    groups16 = bias.shape[0] // COLS
    buf = bufs[thread]
    for job in range(np.uint64(first_job), np.uint64(last_job)):
        jb = np.int64(job)
        for f in range(dstart.shape[0] - 1):
            taps = dstart[f + 1] - dstart[f]
            ds = delta[dstart[f]:dstart[f + 1]]  # (a view indexed from 0: an index from dstart[f]
            # could be negative for all LLVM knows, and its wrap-around check in the loop below
            # slowed the 14x14 forward by 10%)
            blocks = (pstart[f + 1] - pstart[f]) // ROWS
            for og in range(groups16):
                for blk in range(jb * blocks // jobs, (jb + 1) * blocks // jobs):
                    r = pstart[f] + blk * ROWS
                    p0, p1, p2, p3, p4, p5 = pos[r], pos[r + 1], pos[r + 2], pos[r + 3], pos[r + 4], pos[r + 5]
                    filters = min(COLS, out_ch - og * COLS)
                    # the lines of y the block will write, fetched while its sums run (stored
                    # from a cold cache, the 96 values' misses stalled the 14x14 forward by 25%)
                    for i in range(0, ROWS, ROWS - 1):
                        base = yoff[r + i]
                        if base >= 0:
                            at = np.uint64(base + (first_row + og * COLS) * cstride)
                            for j in range(filters):
                                prefetch_write(y, at + np.uint64(j * cstride))
                    b0 = vload(bias, og * COLS)
                    b1 = vload(bias, og * COLS + 8)
                    c00, c01, c10, c11, c20, c21 = b0, b1, b0, b1, b0, b1
                    c30, c31, c40, c41, c50, c51 = b0, b1, b0, b1, b0, b1
                    w = wstart[f] + og * taps * COLS
                    for k in range(taps):
                        dk = ds[k]
                        w0 = vload(wpk, w)
                        w1 = vload(wpk, w + 8)
                        c00 = vfma_at(c00, src, p0 + dk, w0)
                        c01 = vfma_at(c01, src, p0 + dk, w1)
                        c10 = vfma_at(c10, src, p1 + dk, w0)
                        c11 = vfma_at(c11, src, p1 + dk, w1)
                        c20 = vfma_at(c20, src, p2 + dk, w0)
                        c21 = vfma_at(c21, src, p2 + dk, w1)
                        c30 = vfma_at(c30, src, p3 + dk, w0)
                        c31 = vfma_at(c31, src, p3 + dk, w1)
                        c40 = vfma_at(c40, src, p4 + dk, w0)
                        c41 = vfma_at(c41, src, p4 + dk, w1)
                        c50 = vfma_at(c50, src, p5 + dk, w0)
                        c51 = vfma_at(c51, src, p5 + dk, w1)
                        w += COLS
                    vstore(buf, 0, c00)
                    vstore(buf, 8, c01)
                    vstore(buf, 16, c10)
                    vstore(buf, 24, c11)
                    vstore(buf, 32, c20)
                    vstore(buf, 40, c21)
                    vstore(buf, 48, c30)
                    vstore(buf, 56, c31)
                    vstore(buf, 64, c40)
                    vstore(buf, 72, c41)
                    vstore(buf, 80, c50)
                    vstore(buf, 88, c51)
                    for i in range(ROWS):
                        base = yoff[r + i]
                        if base >= 0:
                            at = np.uint64(base + (first_row + og * COLS) * cstride)
                            for j in range(filters):
                                y[at + np.uint64(j * cstride)] = buf[i * COLS + j]


@_backend.job_kernel
def _taps_grad_w(src, g, npos, out_ch, pos, delta, bufs, parts, first_job, last_job, thread
                 ):  # pragma: no cover - compiled
    # src: flat input; g: flat (N, O, npos) upstream gradient, channel-first; pos: N*npos window
    # starts; delta: taps, a multiple of ROWS long (padding taps: any valid offset, their sums
    # unused); bufs: (threads, GRAD_W_JOB * O16); parts: (threads, taps * O16), zeros on entry;
    # jobs first_job..last_job-1 (see run_jobs)
    total = pos.shape[0]
    taps = delta.shape[0]
    width = parts.shape[1] // taps  # O16
    zero = np.float32(0.0)
    part, gt = parts[thread], bufs[thread]
    for job in range(np.uint64(first_job), np.uint64(last_job)):
        first, last = job * GRAD_W_JOB, min(total, (job + 1) * GRAD_W_JOB)
        # the job's positions channels-last, 16 filters at a time:
        # gt[(o // 16) * GRAD_W_JOB * 16 + (p - first) * 16 + o % 16] = g[b, o, p - b*npos]
        for p in range(first, last):
            b = p // npos
            start = np.uint64(b * out_ch * npos + p - b * npos)
            for og in range(0, width, COLS):
                cell = np.uint64(og * GRAD_W_JOB + (p - first) * COLS)
                for j in range(COLS):
                    o = og + j
                    gt[cell + np.uint64(j)] = g[start + np.uint64(o * npos)] if o < out_ch else zero
        for kt in range(0, taps, ROWS):
            d0, d1, d2 = delta[kt], delta[kt + 1], delta[kt + 2]
            d3, d4, d5 = delta[kt + 3], delta[kt + 4], delta[kt + 5]
            for og in range(0, width, COLS):
                a = kt * width + og
                c00, c01 = vload(part, a), vload(part, a + 8)
                c10, c11 = vload(part, a + width), vload(part, a + width + 8)
                c20, c21 = vload(part, a + 2 * width), vload(part, a + 2 * width + 8)
                c30, c31 = vload(part, a + 3 * width), vload(part, a + 3 * width + 8)
                c40, c41 = vload(part, a + 4 * width), vload(part, a + 4 * width + 8)
                c50, c51 = vload(part, a + 5 * width), vload(part, a + 5 * width + 8)
                at = og * GRAD_W_JOB  # (og counts filters: the block of filters og..og+15)
                for p in range(first, last):
                    s = pos[p]
                    g0 = vload(gt, at)
                    g1 = vload(gt, at + 8)
                    c00 = vfma_at(c00, src, s + d0, g0)
                    c01 = vfma_at(c01, src, s + d0, g1)
                    c10 = vfma_at(c10, src, s + d1, g0)
                    c11 = vfma_at(c11, src, s + d1, g1)
                    c20 = vfma_at(c20, src, s + d2, g0)
                    c21 = vfma_at(c21, src, s + d2, g1)
                    c30 = vfma_at(c30, src, s + d3, g0)
                    c31 = vfma_at(c31, src, s + d3, g1)
                    c40 = vfma_at(c40, src, s + d4, g0)
                    c41 = vfma_at(c41, src, s + d4, g1)
                    c50 = vfma_at(c50, src, s + d5, g0)
                    c51 = vfma_at(c51, src, s + d5, g1)
                    at += COLS  # (a constant step: with the run-time width the cached code ran 1.5x slower)
                vstore(part, a, c00)
                vstore(part, a + 8, c01)
                vstore(part, a + width, c10)
                vstore(part, a + width + 8, c11)
                vstore(part, a + 2 * width, c20)
                vstore(part, a + 2 * width + 8, c21)
                vstore(part, a + 3 * width, c30)
                vstore(part, a + 3 * width + 8, c31)
                vstore(part, a + 4 * width, c40)
                vstore(part, a + 4 * width + 8, c41)
                vstore(part, a + 5 * width, c50)
                vstore(part, a + 5 * width + 8, c51)


def starts(lengths: Sequence[int]) -> np.ndarray:
    """``[0, l0, l0 + l1, ...]`` (int64, read-only): where each phase's entries begin in the
    concatenated tables of :func:`taps_forward`, and the end."""
    out = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=out[1:])
    out.flags.writeable = False
    return out


def taps_forward(src: np.ndarray, wpk: np.ndarray, wstart: np.ndarray, bias: np.ndarray, pos: np.ndarray,
                 pstart: np.ndarray, delta: np.ndarray, dstart: np.ndarray, yoff: np.ndarray, cstride: int,
                 first_row: int, out_ch: int, y: np.ndarray) -> None:
    """Run :func:`_taps_forward` (see the module's docstring) into the flat float32 ``y``: its
    filter ``o`` goes to row ``first_row + o`` (``cstride`` apart).  The phases' tables are
    concatenated, phase ``f``'s entries from ``pstart[f]`` (positions), ``dstart[f]`` (taps) and
    ``wstart[f]`` (packed weights) on (:func:`starts`); a forward is one phase."""
    bufs = np.empty((numba.config.NUMBA_NUM_THREADS, ROWS * COLS), np.float32)
    blocks = np.diff(pstart) // ROWS
    jobs = max(1, -(-int(blocks.max(initial=0)) // JOB_BLOCKS))
    work = float(np.dot(np.diff(pstart), np.diff(dstart))) * out_ch
    inputs = map(read_only, (src, wpk, wstart, bias, pos, pstart, delta, dstart, yoff))
    _backend.run_jobs(_taps_forward, jobs, *inputs, jobs, cstride, first_row, out_ch, y, bufs, work=work,
                      balanced=True)


def taps_grad_w(src: np.ndarray, g: np.ndarray, pos: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """``(taps, O16)``: the sums of :func:`_taps_grad_w` over its threads (``g``: ``(N, O, P)``
    float32, C-contiguous)."""
    threads = numba.config.NUMBA_NUM_THREADS
    out_ch, npos = g.shape[1], g.shape[2]
    width = -(-out_ch // COLS) * COLS
    bufs = np.empty((threads, GRAD_W_JOB * width), np.float32)
    parts = np.zeros((threads, delta.shape[0] * width), np.float32)
    _backend.run_jobs(_taps_grad_w, -(-pos.shape[0] // GRAD_W_JOB), read_only(src), read_only(g.reshape(-1)), npos,
                      out_ch, read_only(pos), read_only(delta), bufs, parts,
                      work=pos.shape[0] * delta.shape[0] * out_ch)
    return parts.sum(axis=0).reshape(delta.shape[0], width)
