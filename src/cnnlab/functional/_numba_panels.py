"""The register blocks' steps of the implicit kernels (Numba, float32), inlined into them: the
six rows of a ``6 x 16`` block of running sums read from and written to a buffer
(:func:`_rows`, :func:`_put_rows`, and their forms with six addresses), and, on a CPU with
AVX-512, a pair of blocks of 6 positions through two panels of 16 filters at once
(:func:`_two_panels`, 12 x 32 sums in 24 registers; :data:`cnnlab.functional._numba_implicit.PANELS`
says when the forward kernel takes it), whose sums go to the output a filter at a time where their
positions are one run (:func:`_store_panels`).  The Winograd kernels use the rows too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np
from numba.core.extending import intrinsic
from numba.core.types import StarArgTuple
from numba.core.types import void as types_void

from cnnlab.functional import _backend, _shared_compile
from cnnlab.functional._numba_simd import (
    prefetch_write,
    transpose16,
    wfma2_idx,
    wfma2_run6,
    wfma2_slide,
    wfma_idx,
    wfma_run6,
    wfma_slide,
    wload,
    wstore,
    wstore_lanes,
)

# Positions and filters of one register block.
ROWS, COLS = 6, 16
# Where a thread's buffer (of BUF values) holds two blocks' sums by filter (two 16 x 16
# transposes, :func:`_store_panels`), after the 4 * ROWS * COLS values of their sums by position.
TRANSPOSED = 4 * ROWS * COLS
BUF = TRANSPOSED + 2 * COLS * COLS


@numba.njit(inline="always")
def _in_a_row(offsets, p, last, count):  # pragma: no cover - compiled
    # whether offsets[p .. p+count-1] (all before last) follow one another (+1 each): positions of
    # the upstream gradient (the weight gradient's copy), taps of a phase (the weights' packing)
    if p + count > last or offsets[p + count - 1] != offsets[p] + count - 1:  # (the usual miss, at once)
        return False
    for t in range(1, count - 1):
        if offsets[p + t] != offsets[p] + t:
            return False
    return True


@numba.njit(inline="always")
def _rows_at(arr, a0, a1, a2, a3, a4, a5):  # pragma: no cover - compiled
    # the six 16-lane rows of a block of sums whose rows lie at arr[a0], ..., arr[a5]
    return wload(arr, a0), wload(arr, a1), wload(arr, a2), wload(arr, a3), wload(arr, a4), wload(arr, a5)


@numba.njit(inline="always")
def _put_rows_at(arr, a0, a1, a2, a3, a4, a5, c0, c1, c2, c3, c4, c5):  # pragma: no cover - compiled
    # the six rows stored as _rows_at reads them
    wstore(arr, a0, c0)
    wstore(arr, a1, c1)
    wstore(arr, a2, c2)
    wstore(arr, a3, c3)
    wstore(arr, a4, c4)
    wstore(arr, a5, c5)


@numba.njit(inline="always")
def _rows(arr, a):  # pragma: no cover - compiled
    # the six rows of a 6 x 16 block of sums laid out row by row from arr[a] (row i at a + 16*i)
    return _rows_at(arr, a, a + 16, a + 32, a + 48, a + 64, a + 80)


@numba.njit(inline="always")
def _put_rows(arr, a, c0, c1, c2, c3, c4, c5):  # pragma: no cover - compiled
    # the six rows stored as _rows reads them
    _put_rows_at(arr, a, a + 16, a + 32, a + 48, a + 64, a + 80, c0, c1, c2, c3, c4, c5)



@numba.njit(inline="always")
def _runs(p0, p1, p2, p3, p4, p5, q0, q1, q2, q3, q4, q5):  # pragma: no cover - compiled
    # whether each of two blocks' six positions lie one after another in the input (p0, p0 + 1,
    # ...; q0, q0 + 1, ...), so that a step reads them from one address
    return (p1 == p0 + 1 and p2 == p0 + 2 and p3 == p0 + 3 and p4 == p0 + 4 and p5 == p0 + 5 and q1 == q0 + 1
            and q2 == q0 + 2 and q3 == q0 + 3 and q4 == q0 + 4 and q5 == q0 + 5)


@numba.njit(inline="always")
def _panels_step(c0, c1, c2, c3, c4, c5, e0, e1, e2, e3, e4, e5, src, i0, i1, i2, i3, i4, i5, at, v,
                 u):  # pragma: no cover - compiled
    # one step of a block of 6 positions (inputs src[i_r + at]) by two panels: c<r> + src[i_r + at]
    # * v and e<r> + src[i_r + at] * u, row by row, each input broadcast once into a register for
    # both (:func:`cnnlab.functional._numba_simd.wfma2_idx`, the address as base and index)
    c0, e0 = wfma2_idx(c0, e0, src, i0, at, v, u)
    c1, e1 = wfma2_idx(c1, e1, src, i1, at, v, u)
    c2, e2 = wfma2_idx(c2, e2, src, i2, at, v, u)
    c3, e3 = wfma2_idx(c3, e3, src, i3, at, v, u)
    c4, e4 = wfma2_idx(c4, e4, src, i4, at, v, u)
    c5, e5 = wfma2_idx(c5, e5, src, i5, at, v, u)
    return c0, c1, c2, c3, c4, c5, e0, e1, e2, e3, e4, e5


@numba.njit(inline="always")
def _panels_run(c0, c1, c2, c3, c4, c5, e0, e1, e2, e3, e4, e5, src, base, at, v, u):  # pragma: no cover - compiled
    # _panels_step of six positions one after another, src[base + at + r] (one address)
    c0, e0, c1, e1, c2, e2, c3, e3, c4, e4, c5, e5 = wfma2_run6(c0, e0, c1, e1, c2, e2, c3, e3, c4, e4, c5, e5, src,
                                                                base, at, v, u)
    return c0, c1, c2, c3, c4, c5, e0, e1, e2, e3, e4, e5


@numba.njit(inline="always")
def _panel_blocks(c0, c1, c2, c3, c4, c5, d0, d1, d2, d3, d4, d5, src, p0, p1, p2, p3, p4, p5, q0, q1, q2, q3, q4,
                  q5, at, v):  # pragma: no cover - compiled
    # one step of two blocks of 6 positions by one panel: c<r> + src[p_r + at] * v, d<r> +
    # src[q_r + at] * v (:func:`cnnlab.functional._numba_simd.wfma_idx`)
    return (wfma_idx(c0, src, p0, at, v), wfma_idx(c1, src, p1, at, v), wfma_idx(c2, src, p2, at, v),
            wfma_idx(c3, src, p3, at, v), wfma_idx(c4, src, p4, at, v), wfma_idx(c5, src, p5, at, v),
            wfma_idx(d0, src, q0, at, v), wfma_idx(d1, src, q1, at, v), wfma_idx(d2, src, q2, at, v),
            wfma_idx(d3, src, q3, at, v), wfma_idx(d4, src, q4, at, v), wfma_idx(d5, src, q5, at, v))


@numba.njit(inline="always")
def _panel_run_taps(c0, c1, c2, c3, c4, c5, d0, d1, d2, d3, d4, d5, src, p0, q0, ds, wt, wpk, wk, ka,
                    kz):  # pragma: no cover - compiled
    # two blocks of six positions one after another (src[p0 + ...], src[q0 + ...]) by one panel
    # through the taps ka .. kz - 1 (tap k: input offset ds[k], packed weights at wk + wt[k] * COLS):
    # where five (or three) taps come one after another in the input (a row of the kernel), one
    # step of them all for each block (:func:`cnnlab.functional._numba_simd.wfma_slide`: 10
    # inputs read for 30 multiply-adds, where a tap at a time reads 30), else a tap at a time; the
    # same sums in the same order
    k = ka
    while k < kz:
        dk = ds[k]
        if k + 5 <= kz and ds[k + 4] == dk + 4 and ds[k + 1] == dk + 1 and ds[k + 2] == dk + 2 and ds[k + 3] == dk + 3:
            w = (wload(wpk, wk + wt[k] * COLS), wload(wpk, wk + wt[k + 1] * COLS), wload(wpk, wk + wt[k + 2] * COLS),
                 wload(wpk, wk + wt[k + 3] * COLS), wload(wpk, wk + wt[k + 4] * COLS))
            c0, c1, c2, c3, c4, c5 = wfma_slide((c0, c1, c2, c3, c4, c5), src, p0, dk, w)
            d0, d1, d2, d3, d4, d5 = wfma_slide((d0, d1, d2, d3, d4, d5), src, q0, dk, w)
            k += 5
        elif k + 3 <= kz and ds[k + 2] == dk + 2 and ds[k + 1] == dk + 1:
            w3 = (wload(wpk, wk + wt[k] * COLS), wload(wpk, wk + wt[k + 1] * COLS), wload(wpk, wk + wt[k + 2] * COLS))
            c0, c1, c2, c3, c4, c5 = wfma_slide((c0, c1, c2, c3, c4, c5), src, p0, dk, w3)
            d0, d1, d2, d3, d4, d5 = wfma_slide((d0, d1, d2, d3, d4, d5), src, q0, dk, w3)
            k += 3
        else:
            v = wload(wpk, wk + wt[k] * COLS)
            c0, c1, c2, c3, c4, c5 = wfma_run6(c0, c1, c2, c3, c4, c5, src, p0, dk, v)
            d0, d1, d2, d3, d4, d5 = wfma_run6(d0, d1, d2, d3, d4, d5, src, q0, dk, v)
            k += 1
    return c0, c1, c2, c3, c4, c5, d0, d1, d2, d3, d4, d5


@numba.njit(inline="always")
def _panels_run_taps(c0, c1, c2, c3, c4, c5, e0, e1, e2, e3, e4, e5, src, base, ds, wt, wpk, wk, wnext, ka,
                     kz):  # pragma: no cover - compiled
    # six positions one after another (src[base + ...]) by two panels (c the first's sums, e the
    # second's, its weights wnext further on) through the taps ka .. kz - 1: three taps one after
    # another in the input in one step (:func:`cnnlab.functional._numba_simd.wfma2_slide`: 8
    # inputs read for 36 multiply-adds), else a tap at a time; the same sums in the same order
    k = ka
    while k < kz:
        dk = ds[k]
        if k + 3 <= kz and ds[k + 2] == dk + 2 and ds[k + 1] == dk + 1:
            a0, a1, a2 = wk + wt[k] * COLS, wk + wt[k + 1] * COLS, wk + wt[k + 2] * COLS
            c0, e0, c1, e1, c2, e2, c3, e3, c4, e4, c5, e5 = wfma2_slide(
                (c0, e0, c1, e1, c2, e2, c3, e3, c4, e4, c5, e5), src, base, dk,
                (wload(wpk, a0), wload(wpk, a0 + wnext), wload(wpk, a1), wload(wpk, a1 + wnext), wload(wpk, a2),
                 wload(wpk, a2 + wnext)))
            k += 3
        else:
            w = wk + wt[k] * COLS
            c0, c1, c2, c3, c4, c5, e0, e1, e2, e3, e4, e5 = _panels_run(
                c0, c1, c2, c3, c4, c5, e0, e1, e2, e3, e4, e5, src, base, dk, wload(wpk, w), wload(wpk, w + wnext))
            k += 1
    return c0, c1, c2, c3, c4, c5, e0, e1, e2, e3, e4, e5


@numba.njit(inline="always")
def _panels_run_block(src, wpk, bias, acc, out, base, a, e_a, oc, oe, b_at, ds, wt, wk, wnext, k0, k1, first_ch,
                      last_ch, pitch, lo, hi):  # pragma: no cover - compiled
    # one block of _two_panels whose six positions are a run (src[base + ...]): its two panels'
    # sums from the bias (the first chunk) or acc (at a and e_a), through the chunk's taps of each
    # channel (_panels_run_taps), stored to out at oc and oe
    if k0 == 0:
        b0, b1 = wload(bias, b_at), wload(bias, b_at + COLS)
        c0, c1, c2, c3, c4, c5 = b0, b0, b0, b0, b0, b0
        e0, e1, e2, e3, e4, e5 = b1, b1, b1, b1, b1, b1
    else:
        c0, c1, c2, c3, c4, c5 = _rows(acc, a)
        e0, e1, e2, e3, e4, e5 = _rows(acc, e_a)
    for ch in range(first_ch, last_ch):
        ka, kz = max(k0, ch * pitch + lo), min(k1, ch * pitch + hi)
        c0, c1, c2, c3, c4, c5, e0, e1, e2, e3, e4, e5 = _panels_run_taps(
            c0, c1, c2, c3, c4, c5, e0, e1, e2, e3, e4, e5, src, base, ds, wt, wpk, wk, wnext, ka, kz)
    _put_rows(out, oc, c0, c1, c2, c3, c4, c5)
    _put_rows(out, oe, e0, e1, e2, e3, e4, e5)


@numba.njit(inline="always")
def _run_of(yoff, r, n):  # pragma: no cover - compiled
    # whether the n positions r .. r + n - 1 are stored one after another (yoff[r + i] = yoff[r]
    # + i, none a padding entry)
    base = yoff[r]
    if base < 0:
        return False
    for i in range(1, n):
        if yoff[r + i] != base + i:
            return False
    return True


@numba.njit(inline="always")
def _store_panels(y, yoff, r, buf, row_at, second, cstride):  # pragma: no cover - compiled
    # the sums of two blocks of positions r .. r + 11 by two panels, laid out by position in buf
    # (the first panel's rows 0-11, the second's 12-23), stored to y (filter j of the first panel
    # at row row_at + j, and ``second`` filters of the second 16 rows on).  Where the twelve
    # positions are stored one after another (as along an output row), a filter at a time: the
    # rows 0-15 and 8-23 transposed (transpose16: the first panel's filter j's twelve values
    # lanes 0-11 of a row of 16, the second's lanes 4-15) and each filter's twelve values written
    # by one masked store (wstore_lanes).  Stored one value at a time, the 12 x 32 values cost
    # 118 ns a pair of blocks, a filter at a time 97-103 (a one-panel block's 12 x 16 values, or
    # blocks of six, 57-64 ns either way and 85 against 57: left a value at a time).  The bits
    # unchanged.
    if _run_of(yoff, r, 2 * ROWS):
        transpose16(buf, np.uint64(0), np.uint64(COLS), buf, np.uint64(TRANSPOSED))
        transpose16(buf, np.uint64(8 * COLS), np.uint64(COLS), buf, np.uint64(TRANSPOSED + COLS * COLS))
        at = np.int64(yoff[r] + row_at * cstride)
        for j in range(COLS):
            wstore_lanes(y, at + j * cstride, wload(buf, TRANSPOSED + COLS * j), 0, 2 * ROWS)
        at += COLS * cstride - 4  # (the second panel's positions from lane 4)
        for j in range(second):
            wstore_lanes(y, at + j * cstride, wload(buf, TRANSPOSED + COLS * (COLS + j)), 4, COLS)
        return
    for i in range(2 * ROWS):
        base = yoff[r + i]
        if base >= 0:
            at = np.uint64(base + row_at * cstride)
            for j in range(COLS):
                y[at + np.uint64(j * cstride)] = buf[i * COLS + j]
            at += np.uint64(COLS * cstride)
            for j in range(second):
                y[at + np.uint64(j * cstride)] = buf[(2 * ROWS + i) * COLS + j]


@_backend.job_kernel
def _two_panels(src, wpk, bias, pos, yoff, box, ds, wt, acc, buf, y, r_first, pairs, shift, a_first, bstep, b_at, wk,
                wnext, yrow, filters2, cstride, k0, k1, taps, per, row, staged):  # pragma: no cover - compiled
    # ``pairs`` pairs of blocks of 6 positions one after another (the first from table row
    # r_first, its sums at a_first of acc, block i's sums bstep * i further on) by two panels of 16
    # filters (the second with filters2 filters; tap k's packed weights at wk + wt[k] * COLS, the
    # second panel's wnext further on, its sums ROWS * COLS further on in acc, its rows of y 16
    # further on), the taps k0 .. k1 of the chunk: 24 running sums in registers, each input
    # broadcast once into a register for both panels' multiply-adds
    # (:func:`cnnlab.functional._numba_simd.wfma2_idx`).  The same sums in the same order as the two
    # panels one after another (the same bits).  On the Zen 5 of round 35 a block's 24 reads folded
    # into the multiply-adds (each input read twice, as before) held them to about one a cycle,
    # half of what the CPU runs: the layer's forward on one thread 4.8 -> 3.8 ms.
    #
    # A part of the kernel compiled on its own, with the kernels' options
    # (:func:`cnnlab.functional._backend.job_kernel`), and called rather than inlined (round 37:
    # inlined, it took the kernel's compile from 6-8 to 12-13 s; a part, 8.1 s): once per phase,
    # chunk and two panels of a job rather than once per pair (a call per pair slowed the forward
    # of 3 channels, 27 taps, by 7%).  Its helpers are inlined once each: Numba copies an
    # inlined function's IR block by block, each block with every variable of the function, and
    # each call site of a helper of many blocks cost about a second to compile.
    #
    # Round 56: the kernel calls it at its address (:func:`call_two_panels`), not by name, so
    # neither compile needs the other, and two processes can do them at once.  Called by name,
    # Numba compiled it inside the kernel's compile: 6-8 s on the AVX-512 Zen 4, 3.8 s of it this
    # part, and a cold ``cnnlab train`` waited for all of it at its first evaluation.  Compiled
    # apart, this part takes 2.2 s and the kernel 2.8 s; cold ``cnnlab train --epochs 1``
    # 9.9-11.0 -> 7.1-7.7 s, cold ``cnnlab demo`` 9.3 -> 7.4-7.6 s, forwards within the noise.
    filters = COLS + filters2
    waits = k1 < taps or staged
    for pair in range(pairs):
        r = r_first + 2 * ROWS * pair
        a = a_first + 2 * bstep * pair
        r2 = r + ROWS
        p0, p1, p2 = pos[r] + shift, pos[r + 1] + shift, pos[r + 2] + shift
        p3, p4, p5 = pos[r + 3] + shift, pos[r + 4] + shift, pos[r + 5] + shift
        q0, q1, q2 = pos[r2] + shift, pos[r2 + 1] + shift, pos[r2 + 2] + shift
        q3, q4, q5 = pos[r2 + 3] + shift, pos[r2 + 4] + shift, pos[r2 + 5] + shift
        a2, e_a = a + bstep, a + ROWS * COLS
        e_a2 = e_a + bstep
        if k1 == taps and not staged:  # (the lines of y the blocks will write, as in the kernel)
            for i in range(0, 2 * ROWS, ROWS - 1):
                base = yoff[r + i]
                if base >= 0:
                    at = np.uint64(base + yrow * cstride)
                    for j in range(filters):
                        prefetch_write(y, at + np.uint64(j * cstride))
        lo, hi = 0, per
        if box.shape[0]:
            bi = r // ROWS
            lo, hi = min(box[bi, 0], box[bi + 1, 0]) * row, max(box[bi, 1], box[bi + 1, 1]) * row
        first_ch, last_ch, pitch = k0 // per, (k1 + per - 1) // per, per
        if lo == 0 and hi == per:
            first_ch, last_ch, pitch, lo, hi = 0, 1, 0, k0, k1
        # where the sums go: to acc, to wait for the next chunk (or the stores by filter), or to
        # buf, to be stored into y below
        out, oc, od = (acc, a, a2) if waits else (buf, 0, ROWS * COLS)
        oe, of = (e_a, e_a2) if waits else (2 * ROWS * COLS, 3 * ROWS * COLS)
        # (each block a run of six positions one after another in the input, as along an output
        # row: one address a tap.  Where the kernel's rows are three taps long, a row of taps at a
        # time, _panels_run_taps, one block after the other, each block's 12 sums stored before
        # the next runs (with both blocks' 24 sums held, five taps' weights did not fit the
        # registers); with rows of five, a tap at a time, both blocks at once, the two panels'
        # weights read once for both (a block at a time, and rows of five or three taps, ran
        # slower).  One thread, fastest of 21, ms: N64 C32 14x14 -> 64 k3 p1 forward 2.73-2.80 ->
        # 2.14-2.16; the layer (k5) forward 2.88-3.23, a row of five at a time 3.30-4.64,
        # rows of three 3.45-3.82)
        half_runs = _runs(p0, p1, p2, p3, p4, p5, q0, q1, q2, q3, q4, q5)
        if half_runs and row == 3:
            for blk in range(2):
                base, ab, eb, ob, fb = (p0, a, e_a, oc, oe) if blk == 0 else (q0, a2, e_a2, od, of)
                _panels_run_block(src, wpk, bias, acc, out, base, ab, eb, ob, fb, b_at, ds, wt, wk, wnext, k0, k1,
                                  first_ch, last_ch, pitch, lo, hi)
        else:
            if k0 == 0:
                b0, b1 = wload(bias, b_at), wload(bias, b_at + COLS)
                c0, c1, c2, c3, c4, c5 = b0, b0, b0, b0, b0, b0
                d0, d1, d2, d3, d4, d5 = b0, b0, b0, b0, b0, b0
                e0, e1, e2, e3, e4, e5 = b1, b1, b1, b1, b1, b1
                f0, f1, f2, f3, f4, f5 = b1, b1, b1, b1, b1, b1
            else:
                c0, c1, c2, c3, c4, c5 = _rows(acc, a)
                d0, d1, d2, d3, d4, d5 = _rows(acc, a2)
                e0, e1, e2, e3, e4, e5 = _rows(acc, e_a)
                f0, f1, f2, f3, f4, f5 = _rows(acc, e_a2)
            run = half_runs and q0 == p0 + 6  # (twelve positions one after another)
            for ch in range(first_ch, last_ch):
                ka, kz = max(k0, ch * pitch + lo), min(k1, ch * pitch + hi)
                if run:
                    for k in range(np.uint64(ka), np.uint64(kz)):
                        dk = ds[k]
                        w = wk + wt[k] * COLS
                        v, u = wload(wpk, w), wload(wpk, w + wnext)
                        c0, c1, c2, c3, c4, c5, e0, e1, e2, e3, e4, e5 = _panels_run(
                            c0, c1, c2, c3, c4, c5, e0, e1, e2, e3, e4, e5, src, p0, dk, v, u)
                        d0, d1, d2, d3, d4, d5, f0, f1, f2, f3, f4, f5 = _panels_run(
                            d0, d1, d2, d3, d4, d5, f0, f1, f2, f3, f4, f5, src, q0, dk, v, u)
                    continue
                for k in range(np.uint64(ka), np.uint64(kz)):
                    dk = ds[k]
                    w = wk + wt[k] * COLS
                    v, u = wload(wpk, w), wload(wpk, w + wnext)
                    c0, c1, c2, c3, c4, c5, e0, e1, e2, e3, e4, e5 = _panels_step(
                        c0, c1, c2, c3, c4, c5, e0, e1, e2, e3, e4, e5, src, p0, p1, p2, p3, p4, p5, dk, v, u)
                    d0, d1, d2, d3, d4, d5, f0, f1, f2, f3, f4, f5 = _panels_step(
                        d0, d1, d2, d3, d4, d5, f0, f1, f2, f3, f4, f5, src, q0, q1, q2, q3, q4, q5, dk, v, u)
            _put_rows(out, oc, c0, c1, c2, c3, c4, c5)
            _put_rows(out, od, d0, d1, d2, d3, d4, d5)
            _put_rows(out, oe, e0, e1, e2, e3, e4, e5)
            _put_rows(out, of, f0, f1, f2, f3, f4, f5)
        if not waits:
            _store_panels(y, yoff, r, buf, yrow, filters2, cstride)


def _two_panels_signature():
    """The argument types of :func:`_two_panels` as :func:`call_two_panels` passes them (the
    forward kernel's arrays and integers, cast to these)."""
    from numba import types

    def arr(dtype, ndim=1, readonly=True):
        return types.Array(dtype, ndim, "C", readonly=readonly)

    f32, i64, out = arr(types.float32), arr(types.int64), arr(types.float32, readonly=False)
    return types.void(f32, f32, f32, i64, i64, arr(types.int64, 2), i64, i64, out, out, out,
                      *[types.int64] * 16, types.boolean)


@intrinsic
def call_two_panels(typingctx, address, *args):
    """Call :func:`_two_panels`, compiled, at ``address`` (:func:`two_panels_address`) with
    ``args`` (its arguments in order, cast to :func:`_two_panels_signature`'s types), as Numba
    calls a compiled function by name (its calling convention, the same machine code): the
    caller's compile does not compile the callee."""
    sig = _two_panels_signature()
    if len(args) != len(sig.args):
        return None
    packed = StarArgTuple.from_types(args)

    def codegen(context, builder, signature, values):
        fnty = context.call_conv.get_function_type(sig.return_type, sig.args)
        fn = builder.inttoptr(values[0], fnty.as_pointer())
        cast = [context.cast(builder, builder.extract_value(values[1], i), t, want)
                for i, (t, want) in enumerate(zip(args, sig.args, strict=True))]
        context.call_conv.call_function(builder, fn, sig.return_type, sig.args, cast)
        return context.get_dummy_value()

    return types_void(address, packed), codegen


# The address of _two_panels's compiled entry, once known (one compile a process).
_address: list[int] = []


def two_panels_address(meanwhile: Callable[[], Any] | None = None) -> int:
    """The address of :func:`_two_panels`'s compiled entry, for :func:`call_two_panels`; it is
    compiled (or loaded from Numba's disk cache) on the first call.  Where another process is
    compiling it (:mod:`cnnlab.functional._shared_compile`), ``meanwhile`` runs first (the
    caller's own kernel: the forward kernel compiles while the other process compiles this part),
    and then the address is waited for."""
    if _address:
        return _address[0]
    if meanwhile is not None and _shared_compile.sharing():
        try:
            with _shared_compile.without_waiting():
                return _compiled_address()
        except _shared_compile.Busy:
            meanwhile()
    return _compiled_address()


def _compiled_address() -> int:
    """Compile (or load) :func:`_two_panels` for :func:`_two_panels_signature`; its entry's address."""
    sig = _two_panels_signature()
    _two_panels.compile(sig)
    cres = _two_panels.overloads[sig.args]
    _address[:] = [cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)]
    return _address[0]
