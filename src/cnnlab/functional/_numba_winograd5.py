"""Winograd's F(2x2, 5x5) kernels (Numba, float32): a 5x5 convolution of stride 1 with 36 products
per 2 x 2 outputs and input channel instead of 100, in the fused forward of
:mod:`cnnlab.functional._numba_winograd` (its ``_forward_body``, here with this size's transforms:
:func:`_forward5`), for the forward and the input gradient; and :func:`_weights5`, ``U = G w G'``
of the weights (in float64, rounded once; ``G`` by the even and odd sums of the taps, :func:`_g5`).

The transforms of a tile's 6 x 6 inputs and of its 36 sums are additions and subtractions (and
products by 2 and 4, which are sums): :func:`_bt6` and :func:`_at6` on one row or column of 8
channels (or filters) a vector; :func:`_input_tiles5` and :func:`_output_tile5` apply them to a
whole tile, in the layouts of the 3x3 kernels' ``_input_tiles`` and ``_output_tile``.
"""

from __future__ import annotations

import numba
import numpy as np

from cnnlab.functional import _backend
from cnnlab.functional._numba_simd import vadd, vload, vstore, vsub
from cnnlab.functional._numba_winograd import COLS, LANES, _forward_body, _tile_origin

# F(2x2, 5x5): the same tiles of 2 x 2 outputs, from 6 x 6 input values and 36 products per input
# channel instead of 100 (2.8 times fewer), by Lavin and Gray's transforms for the points 0, 1, -1,
# 2, -2 and infinity (the input transform is F(4x4, 3x3)'s):
#
#     B' = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
#           [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
#     A' = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 1]]
#
# and G (6 x 5, its rows w -> w(p) / prod_{q != p} (p - q) at each point p, and the last tap at
# infinity) applied in float64 by _weights5.  Products by 2 and 4 are sums (exact).


@numba.njit(inline="always")
def _twice(a):  # pragma: no cover - compiled
    return vadd(a, a)


@numba.njit(inline="always")
def _four(a):  # pragma: no cover - compiled
    b = vadd(a, a)
    return vadd(b, b)


@numba.njit(inline="always")
def _bt6(d0, d1, d2, d3, d4, d5):  # pragma: no cover - compiled
    # B' d of six values (one column or row of a 6 x 6 tile), 8 lanes each
    t42 = vsub(d4, d2)
    m31 = _twice(vsub(d3, d1))
    return (vadd(_four(vsub(d0, d2)), t42), vsub(vadd(d3, d4), _four(vadd(d1, d2))),
            vadd(_four(vsub(d1, d2)), vsub(d4, d3)), vadd(m31, t42), vsub(t42, m31),
            vadd(_four(vsub(d1, d3)), vsub(d5, d3)))


@numba.njit(inline="always")
def _at6(m0, m1, m2, m3, m4, m5):  # pragma: no cover - compiled
    # A' m of six values: (m0 + m1 + m2 + m3 + m4, m1 - m2 + 2 (m3 - m4) + m5)
    return (vadd(vadd(vadd(m0, m1), vadd(m2, m3)), m4),
            vadd(vadd(vsub(m1, m2), _twice(vsub(m3, m4))), m5))


@numba.njit(inline="always")
def _bt6_loads(a, at, step):  # pragma: no cover - compiled
    # _bt6 of the six vectors a[at], a[at + step], ..., a[at + 5*step]
    return _bt6(vload(a, at), vload(a, at + step), vload(a, at + 2 * step), vload(a, at + 3 * step),
                vload(a, at + 4 * step), vload(a, at + 5 * step))


@numba.njit(inline="always")
def _at6_loads(a, at, step):  # pragma: no cover - compiled
    # _at6 of the six vectors a[at], a[at + step], ..., a[at + 5*step]
    return _at6(vload(a, at), vload(a, at + step), vload(a, at + 2 * step), vload(a, at + 3 * step),
                vload(a, at + 4 * step), vload(a, at + 5 * step))


@numba.njit(inline="always")
def _store6(a, at, step, v):  # pragma: no cover - compiled
    # the six vectors of v at a[at], a[at + step], ..., a[at + 5*step]
    vstore(a, at, v[0])
    vstore(a, at + step, v[1])
    vstore(a, at + 2 * step, v[2])
    vstore(a, at + 3 * step, v[3])
    vstore(a, at + 4 * step, v[4])
    vstore(a, at + 5 * step, v[5])


@numba.njit(inline="always")
def _input_tiles5(xb, cblocks, hn, wn, dh, dw, rows_base, cols_base, total, t0, count, c0, cc, vb, vstep,
                  width):  # pragma: no cover - compiled
    # _input_tiles for F(2x2, 5x5): vb[xi*vstep + tl*width + c - c0] = (B' d B)[xi] of the tile's
    # 6 x 6 values d of channel c, xi = 6*i + k
    r = np.uint64(dh * wn * LANES)
    k = np.uint64(dw * LANES)
    for tl in range(count):
        n, h0, w0 = _tile_origin(min(t0 + tl, total - 1), rows_base, cols_base)
        for cb in range(c0 // LANES, (c0 + cc) // LANES):
            b = np.uint64((((n * cblocks + cb) * hn + h0) * wn + w0) * LANES)
            at = np.uint64(tl * width + cb * LANES - c0)
            # columns first: E[:, j] = B' d[:, j], then each row of E times B
            e0, e1, e2 = _bt6_loads(xb, b, r), _bt6_loads(xb, b + k, r), _bt6_loads(xb, b + 2 * k, r)
            e3, e4, e5 = _bt6_loads(xb, b + 3 * k, r), _bt6_loads(xb, b + 4 * k, r), _bt6_loads(xb, b + 5 * k, r)
            _store6(vb, at, vstep, _bt6(e0[0], e1[0], e2[0], e3[0], e4[0], e5[0]))
            _store6(vb, at + 6 * vstep, vstep, _bt6(e0[1], e1[1], e2[1], e3[1], e4[1], e5[1]))
            _store6(vb, at + 12 * vstep, vstep, _bt6(e0[2], e1[2], e2[2], e3[2], e4[2], e5[2]))
            _store6(vb, at + 18 * vstep, vstep, _bt6(e0[3], e1[3], e2[3], e3[3], e4[3], e5[3]))
            _store6(vb, at + 24 * vstep, vstep, _bt6(e0[4], e1[4], e2[4], e3[4], e4[4], e5[4]))
            _store6(vb, at + 30 * vstep, vstep, _bt6(e0[5], e1[5], e2[5], e3[5], e4[5], e5[5]))


@numba.njit(inline="always")
def _output_tile5(m, at, mstep, b):  # pragma: no cover - compiled
    # Y = A' M A (+ b) of a tile from its 36 entries m[at + xi*mstep .. + 8], xi = 6*i + k
    step = 6 * mstep
    s0, s1, s2 = _at6_loads(m, at, step), _at6_loads(m, at + mstep, step), _at6_loads(m, at + 2 * mstep, step)
    s3, s4 = _at6_loads(m, at + 3 * mstep, step), _at6_loads(m, at + 4 * mstep, step)
    s5 = _at6_loads(m, at + 5 * mstep, step)
    y00, y01 = _at6(s0[0], s1[0], s2[0], s3[0], s4[0], s5[0])
    y10, y11 = _at6(s0[1], s1[1], s2[1], s3[1], s4[1], s5[1])
    return vadd(b, y00), vadd(b, y01), vadd(b, y10), vadd(b, y11)


@_backend.job_kernel
def _forward5(xb, cblocks, hn, wn, dh, dw, rows_base, cols_base, u, bias, out_ch, out_h, out_w, y, tiles, wide,
              vbuf, mbuf, obuf, checks, first_job, last_job, thread):  # pragma: no cover - compiled
    _forward_body(xb, cblocks, hn, wn, dh, dw, rows_base, cols_base, u, bias, out_ch, out_h, out_w, y, tiles, wide,
                  36, _input_tiles5, _output_tile5, vbuf, mbuf, obuf, checks, first_job, last_job, thread)


@numba.njit(inline="always")
def _g5(v0, v1, v2, v3, v4):  # pragma: no cover - compiled
    # G v of five taps (float64): the values at 0, 1, -1, 2, -2 over prod_{q != p} (p - q) (4, -6,
    # -6, 24, 24), and the last tap (infinity), by the taps' even and odd sums
    even, odd = v0 + v2 + v4, v1 + v3
    even2, odd2 = v0 + 4.0 * v2 + 16.0 * v4, 2.0 * v1 + 8.0 * v3
    return (v0 * 0.25, (even + odd) * (-1.0 / 6.0), (odd - even) * (1.0 / 6.0), (even2 + odd2) * (1.0 / 24.0),
            (even2 - odd2) * (1.0 / 24.0), v4)


@numba.njit(inline="always")
def _tap(w, base, s, t, swap):  # pragma: no cover - compiled
    # tap (s, t) of the 5 x 5 weights at w[base:], turned by 180 degrees with swap, in float64
    return np.float64(w[np.uint64(base + (24 - 5 * s - t if swap else 5 * s + t))])


@_backend.job_kernel
def _weights5(w, out_ch, channels, swap, u, scratch, first_job, last_job, thread):  # pragma: no cover - compiled
    # u: flat (36, O16 // 16, C8, 16): u[xi, f // 16, e, f % 16] = (G v G')[xi] of the 5 x 5
    # v = w[f, e] (with swap, w[e, f] turned by 180 degrees: the input gradient's weights),
    # xi = 6*i + k, in float64, rounded once, and zero for the padding's filters f >= out_ch and
    # channels e >= channels (u need not be zero on entry); w: flat (O, C, 5, 5) if not swap else
    # (C, O, 5, 5); scratch: (threads, 36 * 16) float64; job j: filters 16*j .. 16*j + 15.  As
    # the 3 x 3 kernel's: a channel's 16 filters into the scratch, then the 36 planes (a multiple
    # of 4 KiB apart) written one cache line each
    c8 = -(-channels // LANES) * LANES
    groups16 = u.shape[0] // (36 * COLS * c8)
    step = np.uint64(groups16 * c8 * COLS)
    scratch = scratch[thread]
    for job in range(np.uint64(first_job), np.uint64(last_job)):
        og = np.int64(job)
        for e in range(c8):
            for f in range(og * COLS, (og + 1) * COLS):
                block = 36 * (f - og * COLS)  # (the filter's 36 values in the scratch)
                if f >= out_ch or e >= channels:
                    for xi in range(36):
                        scratch[block + xi] = 0.0
                    continue
                base = (e * out_ch + f) * 25 if swap else (f * channels + e) * 25
                # G v, a column t of v at a time: c[t][i] = (G v)[i, t]
                c0 = _g5(_tap(w, base, 0, 0, swap), _tap(w, base, 1, 0, swap), _tap(w, base, 2, 0, swap),
                         _tap(w, base, 3, 0, swap), _tap(w, base, 4, 0, swap))
                c1 = _g5(_tap(w, base, 0, 1, swap), _tap(w, base, 1, 1, swap), _tap(w, base, 2, 1, swap),
                         _tap(w, base, 3, 1, swap), _tap(w, base, 4, 1, swap))
                c2 = _g5(_tap(w, base, 0, 2, swap), _tap(w, base, 1, 2, swap), _tap(w, base, 2, 2, swap),
                         _tap(w, base, 3, 2, swap), _tap(w, base, 4, 2, swap))
                c3 = _g5(_tap(w, base, 0, 3, swap), _tap(w, base, 1, 3, swap), _tap(w, base, 2, 3, swap),
                         _tap(w, base, 3, 3, swap), _tap(w, base, 4, 3, swap))
                c4 = _g5(_tap(w, base, 0, 4, swap), _tap(w, base, 1, 4, swap), _tap(w, base, 2, 4, swap),
                         _tap(w, base, 3, 4, swap), _tap(w, base, 4, 4, swap))
                for i in range(6):  # (G v) G', row i
                    r = _g5(c0[i], c1[i], c2[i], c3[i], c4[i])
                    for k in range(6):
                        scratch[block + 6 * i + k] = r[k]
            at = np.uint64((og * c8 + e) * COLS)
            for xi in range(36):
                row = at + np.uint64(xi) * step
                for f in range(COLS):
                    u[row + np.uint64(f)] = np.float32(scratch[36 * f + xi])
