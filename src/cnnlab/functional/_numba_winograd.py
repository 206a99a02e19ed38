"""Winograd kernels (Numba, float32): a 3x3 convolution of stride 1 with 16 products per 2x2 outputs,
and a 5x5 one with 36 (F(2x2, 5x5), the forward's and input gradient's kernel only, whose
transforms and kernel are in :mod:`cnnlab.functional._numba_winograd5`).

Each output tile of 2 x 2 positions (``dh``, ``dw`` apart: the dilation) of one image and one
filter is ``Y = A' [sum_c (G w[o, c] G') * (B' d[c] B)] A`` (Lavin and Gray's F(2x2, 3x3)), with
``d[c]`` the tile's 4 x 4 input values of channel ``c`` and ``*`` the product of entries.  The
sum over the channels is, for each of the 16 entries ``xi``, a matrix product ``M[xi] = V[xi] @
U[xi]`` of (tiles, C) by (C, O): 16 multiply-adds per input channel, tile and filter where the
direct sum has 36 (2.25 times fewer).  The transforms ``B`` and ``A`` only add and subtract;
``U = G w G'`` is made once per call (in float64, rounded once to float32) by
:mod:`cnnlab.functional._winograd`.

- :func:`_blocked`: the input zero-padded into blocks of 8 channels, ``xb[n, c // 8, h, w, c %
  8]`` (zeros past the last channel), so that a tile's 16 values of 8 channels are 16 vector
  loads and the transform runs on 8 channels at once, without a test for the border.
- :func:`_forward` (and ``_numba_winograd5._forward5``, F(2x2, 5x5)'s) runs jobs of :data:`TILES` tiles.  A
  job transforms its tiles' input (a chunk of :data:`CHANNEL_CHUNK` channels at a time) into a
  buffer of its thread, ``V[xi, tile, c]``, runs the 16 products by the same ``6 x 16`` register
  block as :mod:`cnnlab.functional._numba_implicit` (6 tiles by 16 filters, the channels the
  shared dimension), keeps the sums ``M[xi, og, tile, 16]`` in a second buffer, and transforms them
  into the output, 8 filters per vector.
- :func:`_grad_w`: the weight gradient's 16 products, ``dU[xi, c, o] = sum_tiles V[xi, tile, c]
  * Z[xi, tile, o]`` with ``Z = A dY A'`` of the tile's 2 x 2 upstream gradients (read from the
  blocked gradient, 8 filters per vector); 6 channels by 16 filters a block, the job's tiles the
  shared dimension, into sums per thread (and per tail job) that the caller adds in a fixed order
  and turns into ``G' dU G``.
- :func:`_weights`: ``U = G w G'`` of every filter and channel, in float64, rounded once, packed
  16 filters to a panel.

The sums run in a different order from the loop reference's, with the transforms' roundings, so
float results may differ from it in the last bits (measured on N64 C32 14x14 -> 64 with normal
values: the largest error against a float64 reference 2.1e-6, the implicit kernels' 6.2e-6).
"""

from __future__ import annotations

import numba
import numpy as np

from cnnlab.functional import _backend
from cnnlab.functional._numba_panels import _put_rows, _rows
from cnnlab.functional._numba_simd import vadd, vload, vstore, vsub, vzero, wfma_rows, wload, wzero

ROWS, COLS = 6, 16  # the register block: tiles by filters
LANES = 8  # channels per block of the blocked input (one vector)
# Tiles per job at most (a multiple of ROWS): the job's 16 x TILES x channels transformed inputs
# and 16 x TILES x filters sums stay in the L2 cache.
TILES = 48
# (for a 5x5 kernel's 36 entries a tile: the same buffers' bytes at 2.25 times the entries)
TILES_5 = 24
# Input channels transformed and multiplied at a time (a multiple of LANES): their 16 x TILES
# values per entry, and the chunk's transformed weights (64 bytes a channel per 16 filters),
# stay in the L1 cache.
CHANNEL_CHUNK = 64
# Values added between two entries' panels of either buffer: without them the 16 entries of a tile
# lay a multiple of 4 KB apart (48 tiles by 64 channels or 64 filters: 12 KB), shared one set of
# the 8-way L1 cache, and the transforms ran 4-8x slower.
SKEW = 16
# Input channels per chunk of the weight gradient: a multiple of 6 (its blocks of 6 channels) and
# of 8 (the transform's), so that only the last chunk's last block overruns, into the padding
# rows of the sums.
GRAD_W_CHUNK = 48


@_backend.job_kernel
def _blocked(src, channels, height, width, lo_h, lo_w, hn, wn, xb, first_job, last_job, thread
             ):  # pragma: no cover - compiled
    # src: flat (N, C, H, W); xb: flat (N, CB, hn, wn, 8), CB = ceil(C / 8): xb[n, cb, h, w, l] =
    # src[n, 8*cb + l, h - lo_h, w - lo_w], zero outside src; job j: image j // CB, block j % CB
    zero = np.float32(0.0)
    cblocks = -(-channels // LANES)
    plane = height * width
    for job in range(np.uint64(first_job), np.uint64(last_job)):
        n, cb = np.int64(job) // cblocks, np.int64(job) % cblocks
        lanes = min(LANES, channels - cb * LANES)
        out0 = np.uint64(np.int64(job) * hn * wn * LANES)
        w_first, w_last = max(0, lo_w), min(wn, lo_w + width)  # the columns inside src
        for h in range(hn):
            row = np.uint64(h * wn * LANES) + out0
            hs = h - lo_h
            if hs < 0 or hs >= height:
                for i in range(np.uint64(wn * LANES)):
                    xb[row + i] = zero
                continue
            for i in range(np.uint64(w_first * LANES)):
                xb[row + i] = zero
            for i in range(np.uint64(w_last * LANES), np.uint64(wn * LANES)):
                xb[row + i] = zero
            first = np.uint64((n * channels + cb * LANES) * plane + hs * width + w_first - lo_w)
            at = row + np.uint64(w_first * LANES)
            if lanes == LANES:  # (a constant count: the eight loads and one vector store per column)
                for w in range(np.uint64(w_last - w_first)):
                    for lane in range(np.uint64(LANES)):
                        xb[at + w * np.uint64(LANES) + lane] = src[first + w + lane * np.uint64(plane)]
            else:
                for w in range(np.uint64(w_last - w_first)):
                    for lane in range(np.uint64(LANES)):
                        xb[at + w * np.uint64(LANES) + lane] = (src[first + w + lane * np.uint64(plane)]
                                                               if lane < lanes else zero)


@numba.njit(inline="always")
def _tile_origin(t, rows_base, cols_base):  # pragma: no cover - compiled
    # tile t of the batch: its image and its first input row and column in the blocked input
    th, tw = rows_base.shape[0], cols_base.shape[0]
    rest = t % (th * tw)
    return t // (th * tw), rows_base[rest // tw], cols_base[rest % tw]


@numba.njit(inline="always")
def _input_tiles(xb, cblocks, hn, wn, dh, dw, rows_base, cols_base, total, t0, count, c0, cc, vb, vstep,
                 width):  # pragma: no cover - compiled
    # the input transform of tiles t0 .. t0 + count - 1 (past the last tile: the last one again),
    # channels c0 .. c0 + cc - 1 (cc a multiple of LANES): vb[xi*vstep + tl*width + c - c0]
    # = (B' d B)[xi] of tile t0 + tl's 4 x 4 values d of channel c, 8 channels per vector
    r1, r2, r3 = np.uint64(dh * wn * LANES), np.uint64(2 * dh * wn * LANES), np.uint64(3 * dh * wn * LANES)
    k1, k2, k3 = np.uint64(dw * LANES), np.uint64(2 * dw * LANES), np.uint64(3 * dw * LANES)
    for tl in range(count):
        n, h0, w0 = _tile_origin(min(t0 + tl, total - 1), rows_base, cols_base)
        for cb in range(c0 // LANES, (c0 + cc) // LANES):
            b = np.uint64((((n * cblocks + cb) * hn + h0) * wn + w0) * LANES)
            d00, d01, d02, d03 = vload(xb, b), vload(xb, b + k1), vload(xb, b + k2), vload(xb, b + k3)
            b1 = b + r1
            d10, d11, d12, d13 = vload(xb, b1), vload(xb, b1 + k1), vload(xb, b1 + k2), vload(xb, b1 + k3)
            b2 = b + r2
            d20, d21, d22, d23 = vload(xb, b2), vload(xb, b2 + k1), vload(xb, b2 + k2), vload(xb, b2 + k3)
            b3 = b + r3
            d30, d31, d32, d33 = vload(xb, b3), vload(xb, b3 + k1), vload(xb, b3 + k2), vload(xb, b3 + k3)
            # rows: B' d
            e00, e01, e02, e03 = vsub(d00, d20), vsub(d01, d21), vsub(d02, d22), vsub(d03, d23)
            e10, e11, e12, e13 = vadd(d10, d20), vadd(d11, d21), vadd(d12, d22), vadd(d13, d23)
            e20, e21, e22, e23 = vsub(d20, d10), vsub(d21, d11), vsub(d22, d12), vsub(d23, d13)
            e30, e31, e32, e33 = vsub(d10, d30), vsub(d11, d31), vsub(d12, d32), vsub(d13, d33)
            # columns: (B' d) B, entry xi = 4*i + k at ``at + xi*vstep``
            at = np.uint64(tl * width + cb * LANES - c0)
            vstore(vb, at, vsub(e00, e02))
            vstore(vb, at + vstep, vadd(e01, e02))
            vstore(vb, at + 2 * vstep, vsub(e02, e01))
            vstore(vb, at + 3 * vstep, vsub(e01, e03))
            vstore(vb, at + 4 * vstep, vsub(e10, e12))
            vstore(vb, at + 5 * vstep, vadd(e11, e12))
            vstore(vb, at + 6 * vstep, vsub(e12, e11))
            vstore(vb, at + 7 * vstep, vsub(e11, e13))
            vstore(vb, at + 8 * vstep, vsub(e20, e22))
            vstore(vb, at + 9 * vstep, vadd(e21, e22))
            vstore(vb, at + 10 * vstep, vsub(e22, e21))
            vstore(vb, at + 11 * vstep, vsub(e21, e23))
            vstore(vb, at + 12 * vstep, vsub(e30, e32))
            vstore(vb, at + 13 * vstep, vadd(e31, e32))
            vstore(vb, at + 14 * vstep, vsub(e32, e31))
            vstore(vb, at + 15 * vstep, vsub(e31, e33))


@numba.njit(inline="always")
def _grad_loads(gb, n, block, gblocks, ghn, gwn, h, w, dh, dw, more_h, more_w):  # pragma: no cover - compiled
    # the 2 x 2 upstream gradients of a tile, 8 filters (block ``block`` of gb) per vector, from
    # row h and column w of the blocked gradient on; zeros past the output's edge (``more_h``,
    # ``more_w``: the tile's second row, column exist) and past the last block
    zero = vzero()
    if block >= gblocks:
        return zero, zero, zero, zero
    b = np.uint64((((n * gblocks + block) * ghn + h) * gwn + w) * LANES)
    g01 = vload(gb, b + np.uint64(dw * LANES)) if more_w else zero
    g10 = vload(gb, b + np.uint64(dh * gwn * LANES)) if more_h else zero
    g11 = vload(gb, b + np.uint64((dh * gwn + dw) * LANES)) if more_h and more_w else zero
    return vload(gb, b), g01, g10, g11


@numba.njit(inline="always")
def _grad_row(zb, at, zstep, t0, t1, zero):  # pragma: no cover - compiled
    # one row (t0, t1) of A dY times A' = [[1, 1, 1, 0], [0, 1, -1, -1]]: its four entries,
    # stored zstep apart from zb[at]
    vstore(zb, at, t0)
    vstore(zb, at + zstep, vadd(t0, t1))
    vstore(zb, at + 2 * zstep, vsub(t0, t1))
    vstore(zb, at + 3 * zstep, vsub(zero, t1))


@numba.njit(inline="always")
def _grad_tile(g00, g01, g10, g11, zb, at, zstep):  # pragma: no cover - compiled
    # Z = A dY A' of a tile's 2 x 2 upstream gradients (8 filters per vector): entry xi = 4*i + k
    # stored at zb[at + xi*zstep .. + 8]
    zero = vzero()
    # rows: A dY (A = [[1, 0], [1, 1], [1, -1], [0, -1]]), then columns: (A dY) A'
    _grad_row(zb, at, zstep, g00, g01, zero)
    _grad_row(zb, at + 4 * zstep, zstep, vadd(g00, g10), vadd(g01, g11), zero)
    _grad_row(zb, at + 8 * zstep, zstep, vsub(g00, g10), vsub(g01, g11), zero)
    _grad_row(zb, at + 12 * zstep, zstep, vsub(zero, g10), vsub(zero, g11), zero)


@numba.njit(inline="always")
def _output_tile(m, at, mstep, b):  # pragma: no cover - compiled
    # Y = A' M A (+ b) of a tile from its 16 entries m[at + xi*mstep .. + 8] (8 filters per
    # vector): the four outputs y00, y01, y10, y11
    m00, m01, m02, m03 = vload(m, at), vload(m, at + mstep), vload(m, at + 2 * mstep), vload(m, at + 3 * mstep)
    m10, m11, m12, m13 = vload(m, at + 4 * mstep), vload(m, at + 5 * mstep), vload(m, at + 6 * mstep), vload(
        m, at + 7 * mstep)
    m20, m21, m22, m23 = vload(m, at + 8 * mstep), vload(m, at + 9 * mstep), vload(m, at + 10 * mstep), vload(
        m, at + 11 * mstep)
    m30, m31, m32, m33 = vload(m, at + 12 * mstep), vload(m, at + 13 * mstep), vload(m, at + 14 * mstep), vload(
        m, at + 15 * mstep)
    s00, s01 = vadd(vadd(m00, m10), m20), vadd(vadd(m01, m11), m21)
    s02, s03 = vadd(vadd(m02, m12), m22), vadd(vadd(m03, m13), m23)
    s10, s11 = vsub(vsub(m10, m20), m30), vsub(vsub(m11, m21), m31)
    s12, s13 = vsub(vsub(m12, m22), m32), vsub(vsub(m13, m23), m33)
    return (vadd(b, vadd(vadd(s00, s01), s02)), vadd(b, vsub(vsub(s01, s02), s03)),
            vadd(b, vadd(vadd(s10, s11), s12)), vadd(b, vsub(vsub(s11, s12), s13)))


@numba.njit(inline="always")
def _tile_at(t, rows_base, cols_base, dh, dw, out_h, out_w):  # pragma: no cover - compiled
    # tile t of the batch: its image n, first output row and column, and whether its second row
    # and column (dh, dw further) exist
    th, tw = rows_base.shape[0], cols_base.shape[0]
    n, rest = t // (th * tw), t % (th * tw)
    oh, ow = rows_base[rest // tw], cols_base[rest % tw]
    return n, oh, ow, oh + dh < out_h, ow + dw < out_w


@numba.njit(inline="always")
def _stage_outputs(ob, width, at, y00, y01, y10, y11, check):  # pragma: no cover - compiled
    # a tile's four output vectors into ob (at at, width + at, 2*width + at, 3*width + at) for
    # _store_outputs; returns check plus s - s for s their sum: 0, or nan for a value that is not
    # finite
    vstore(ob, at, y00)
    vstore(ob, width + at, y01)
    vstore(ob, 2 * width + at, y10)
    vstore(ob, 3 * width + at, y11)
    total4 = vadd(vadd(y00, y01), vadd(y10, y11))
    return vadd(check, vsub(total4, total4))


@numba.njit(inline="always")
def _store_outputs(y, ob, width, at0, count, plane_out, dh, dw, out_w, more_h, more_w):  # pragma: no cover - compiled
    # a tile's outputs of ``count`` filters, ob[lane], ob[width + lane], ob[2*width + lane] and
    # ob[3*width + lane] (y00, y01, y10, y11), into y from at0 on (filter planes plane_out apart);
    # the second row and column only where they exist (more_h, more_w)
    for lane in range(count):
        at = at0 + np.uint64(lane * plane_out)
        y[at] = ob[lane]
        if more_w:
            y[at + np.uint64(dw)] = ob[width + lane]
        if more_h:
            y[at + np.uint64(dh * out_w)] = ob[2 * width + lane]
            if more_w:
                y[at + np.uint64(dh * out_w + dw)] = ob[3 * width + lane]


@numba.njit(inline="always")
def _add_checks(checks, thread, ob, check):  # pragma: no cover - compiled
    # checks[thread] += the eight lanes of check (through ob's last 8 values)
    vstore(ob, ob.shape[0] - LANES, check)
    for lane in range(LANES):
        checks[thread] += ob[ob.shape[0] - LANES + lane]


# The forward of a 3x3 layer (_forward) and of a 5x5 one (_numba_winograd5._forward5): one body,
# inlined into each with the size's entries and its two transforms passed in as functions, so that
# each kernel compiles only its own transforms (with both in one kernel behind a test of the size, a 3x3
# layer's first call compiled 4.8 s instead of 2.6: Numba types and lowers a branch never taken).

@_backend.job_kernel
def _forward(xb, cblocks, hn, wn, dh, dw, rows_base, cols_base, u, bias, out_ch, out_h, out_w, y, tiles, wide,
             vbuf, mbuf, obuf, checks, first_job, last_job, thread):  # pragma: no cover - compiled
    _forward_body(xb, cblocks, hn, wn, dh, dw, rows_base, cols_base, u, bias, out_ch, out_h, out_w, y, tiles, wide,
                  16, _input_tiles, _output_tile, vbuf, mbuf, obuf, checks, first_job, last_job, thread)


@numba.njit(inline="always")
def _forward_body(xb, cblocks, hn, wn, dh, dw, rows_base, cols_base, u, bias, out_ch, out_h, out_w, y, tiles, wide,
                  entries, input_tiles, output_tile, vbuf, mbuf, obuf, checks, first_job, last_job, thread
                  ):  # pragma: no cover - compiled
    # xb: flat (N, cblocks, hn, wn, 8) blocked, padded input (by _blocked); a tile (n, a, j)
    # covers output rows rows_base[a] (+ dh) and columns cols_base[j] (+ dw) of image n, and reads
    # xb rows rows_base[a] + dh*i, columns cols_base[j] + dw*k (i, k = 0..3); u: flat (16, O16 //
    # 16, C8, 16) transformed weights (C8 = 8 * cblocks); bias: O16; y: flat (N, O, out_h, out_w);
    # wide: two blocks of 6 tiles at a time where two are left (12 x 16 sums); vbuf: (threads,
    # 16 * (tiles * CHANNEL_CHUNK + SKEW)); mbuf: (threads, 16 * (O16 * tiles + SKEW)); obuf:
    # (threads, 5 * 16); checks: (threads,), each thread's sum of y - y over its outputs (nan
    # where one is not finite); entries: 16 (xi = 4*i + k) with _input_tiles and _output_tile, or
    # for F(2x2, 5x5) 36 (xi = 6*i + k; u flat (36, ...), the buffers' 16 rows 36, the tiles 6 x
    # 6 input values) with _numba_winograd5's _input_tiles5 and _output_tile5; job j: tiles
    # j*tiles .. (j+1)*tiles - 1 of all N*TH*TW
    th, tw = rows_base.shape[0], cols_base.shape[0]
    total = xb.shape[0] // (cblocks * hn * wn * LANES) * th * tw
    groups16 = bias.shape[0] // COLS
    channels = cblocks * LANES
    vb, mb, ob = vbuf[thread], mbuf[thread], obuf[thread]
    vstep = np.uint64(tiles * CHANNEL_CHUNK + SKEW)
    mstep = np.uint64(groups16 * tiles * COLS + SKEW)
    for job in range(np.uint64(first_job), np.uint64(last_job)):
        t0 = np.int64(job) * tiles
        count = min(tiles, total - t0)
        padded = -(-count // ROWS) * ROWS
        for c0 in range(0, channels, CHANNEL_CHUNK):
            cc = min(CHANNEL_CHUNK, channels - c0)
            input_tiles(xb, cblocks, hn, wn, dh, dw, rows_base, cols_base, total, t0, padded, c0, cc, vb, vstep,
                        CHANNEL_CHUNK)
            # the products, M[xi, og, tile, 16] (+)= V[xi, tile, :] @ U[xi, og, :, 16]
            for xi in range(entries):
                for og in range(groups16):
                    w_at = ((xi * groups16 + og) * channels + c0) * COLS
                    for blk in range(0, padded, 2 * ROWS if wide else ROWS):
                        pair = wide and blk + ROWS < padded  # (tiles blk .. blk + 11 at once: 12 x 16 sums)
                        v = xi * (tiles * CHANNEL_CHUNK + SKEW) + blk * CHANNEL_CHUNK
                        p0, p1, p2 = v, v + CHANNEL_CHUNK, v + 2 * CHANNEL_CHUNK
                        p3, p4, p5 = v + 3 * CHANNEL_CHUNK, v + 4 * CHANNEL_CHUNK, v + 5 * CHANNEL_CHUNK
                        q = p5 + CHANNEL_CHUNK if pair else p0  # (the second block's first tile)
                        q0, q1, q2 = q, q + CHANNEL_CHUNK, q + 2 * CHANNEL_CHUNK
                        q3, q4, q5 = q + 3 * CHANNEL_CHUNK, q + 4 * CHANNEL_CHUNK, q + 5 * CHANNEL_CHUNK
                        a = xi * (groups16 * tiles * COLS + SKEW) + (og * tiles + blk) * COLS
                        a2 = a + ROWS * COLS if pair else a
                        if c0 == 0:
                            c_0 = c_1 = c_2 = c_3 = c_4 = c_5 = d_0 = d_1 = d_2 = d_3 = d_4 = d_5 = wzero()
                        else:
                            c_0, c_1, c_2, c_3, c_4, c_5 = _rows(mb, a)
                            d_0, d_1, d_2, d_3, d_4, d_5 = _rows(mb, a2)
                        w = w_at
                        if pair:
                            for c in range(cc):
                                wc = wload(u, w)
                                c_0, c_1, c_2, c_3, c_4, c_5 = wfma_rows(c_0, c_1, c_2, c_3, c_4, c_5, vb, p0 + c,
                                                                         p1 + c, p2 + c, p3 + c, p4 + c, p5 + c, wc)
                                d_0, d_1, d_2, d_3, d_4, d_5 = wfma_rows(d_0, d_1, d_2, d_3, d_4, d_5, vb, q0 + c,
                                                                         q1 + c, q2 + c, q3 + c, q4 + c, q5 + c, wc)
                                w += COLS
                            _put_rows(mb, a2, d_0, d_1, d_2, d_3, d_4, d_5)
                        else:
                            for c in range(cc):
                                c_0, c_1, c_2, c_3, c_4, c_5 = wfma_rows(c_0, c_1, c_2, c_3, c_4, c_5, vb, p0 + c,
                                                                         p1 + c, p2 + c, p3 + c, p4 + c, p5 + c,
                                                                         wload(u, w))
                                w += COLS
                        _put_rows(mb, a, c_0, c_1, c_2, c_3, c_4, c_5)
        _outputs(output_tile, mb, mstep, bias, tiles, t0, count, rows_base, cols_base, dh, dw, out_ch, out_h, out_w,
                 y, ob, checks, thread)


@numba.njit(inline="always")
def _outputs(output_tile, mb, mstep, bias, tiles, t0, count, rows_base, cols_base, dh, dw, out_ch, out_h, out_w, y,
             ob, checks, thread):  # pragma: no cover - compiled
    # the output transform of a job's tiles t0 .. t0 + count - 1, Y = A' M A (+ bias) by
    # output_tile (_output_tile or _output_tile5), 8 filters per vector, from their sums M[xi, og,
    # tile, 16] at mb (entries mstep apart); checks[thread] += the outputs' y - y (as _forward's)
    groups16 = bias.shape[0] // COLS
    plane_out = out_h * out_w
    check = vzero()
    for tl in range(count):
        n, oh, ow, more_h, more_w = _tile_at(t0 + tl, rows_base, cols_base, dh, dw, out_h, out_w)
        for og in range(groups16):
            for half in range(0, COLS, LANES):
                at = np.uint64((og * tiles + tl) * COLS + half)
                y00, y01, y10, y11 = output_tile(mb, at, mstep, vload(bias, og * COLS + half))
                check = _stage_outputs(ob, COLS, half, y00, y01, y10, y11, check)
            _store_outputs(y, ob, COLS, np.uint64((n * out_ch + og * COLS) * plane_out + oh * out_w + ow),
                           min(COLS, out_ch - og * COLS), plane_out, dh, dw, out_w, more_h, more_w)
    _add_checks(checks, thread, ob, check)


@_backend.job_kernel
def _grad_w(xb, cblocks, hn, wn, dh, dw, rows_base, cols_base, gb, gblocks, ghn, gwn, glo_h, glo_w, out_ch, out_h,
            out_w, tiles, tail_start, wide, vbuf, zbuf, parts, first_job, last_job, thread
            ):  # pragma: no cover - compiled
    # The weight gradient's 16 products: parts[r, xi, og, c, 16] += sum_tiles V[xi, tile, c] *
    # Z[xi, tile, og, 16], Z = A dY A' of the tile's 2 x 2 upstream gradients dY (zeros for
    # outputs past the edge), V as in _forward (xb, tiles and their geometry the forward's); gb:
    # flat (N, gblocks, ghn, gwn, 8), the upstream gradient blocked, dY[n, o, i, j] at row i + glo_h,
    # column j + glo_w; parts: (threads + tail, 16 * O16 * (C8 + LANES)), the threads' rows zeros
    # on entry; row r the thread's, or for a job from tail_start on, its own (threads + job -
    # tail_start, zeroed by the job);
    # wide: two blocks of 6 channels at a time where two are left; vbuf as _forward's; zbuf:
    # (threads, 16 * (O16 * tiles + SKEW)); job j: tiles j*tiles ..
    th, tw = rows_base.shape[0], cols_base.shape[0]
    total = xb.shape[0] // (cblocks * hn * wn * LANES) * th * tw
    groups16 = -(-out_ch // COLS)
    channels = cblocks * LANES
    width = channels + LANES  # (rows of a panel of parts: a block of 6 channels may overrun)
    vb, zb = vbuf[thread], zbuf[thread]
    rows = vbuf.shape[0]
    vstep = np.uint64(tiles * CHANNEL_CHUNK + SKEW)
    zstep = np.uint64(groups16 * tiles * COLS + SKEW)
    for job in range(np.uint64(first_job), np.uint64(last_job)):
        if np.int64(job) < tail_start:
            part = parts[thread]
        else:  # (a tail job's own sums, zeroed here, by whichever thread runs it)
            part = parts[rows + np.int64(job) - tail_start]
            for i in range(np.uint64(part.shape[0])):
                part[i] = np.float32(0.0)
        t0 = np.int64(job) * tiles
        count = min(tiles, total - t0)
        # the gradient transform, Z[xi, og, tile, 16] = (A dY A')[xi], 8 filters per vector
        for tl in range(count):
            n, oh, ow, more_h, more_w = _tile_at(t0 + tl, rows_base, cols_base, dh, dw, out_h, out_w)
            for half in range(2 * groups16):
                g00, g01, g10, g11 = _grad_loads(gb, n, half, gblocks, ghn, gwn, oh + glo_h, ow + glo_w, dh, dw,
                                                 more_h, more_w)
                at = np.uint64(((half // 2) * tiles + tl) * COLS + (half % 2) * LANES)
                _grad_tile(g00, g01, g10, g11, zb, at, zstep)
        for c0 in range(0, channels, GRAD_W_CHUNK):
            cc = min(GRAD_W_CHUNK, channels - c0)
            _input_tiles(xb, cblocks, hn, wn, dh, dw, rows_base, cols_base, total, t0, count, c0, cc, vb, vstep,
                         CHANNEL_CHUNK)
            # parts[xi, og, c .. c+5, 16] += V[xi, :, c .. c+5]' @ Z[xi, og, :, 16], 6 channels by 16
            # filters, the job's tiles the shared dimension
            for xi in range(16):
                for og in range(groups16):
                    z = xi * (groups16 * tiles * COLS + SKEW) + og * tiles * COLS
                    for c6 in range(0, cc, 2 * ROWS if wide else ROWS):
                        pair = wide and c6 + ROWS < cc  # (channels c6 .. c6 + 11 at once: 12 x 16 sums)
                        a = ((xi * groups16 + og) * width + c0 + c6) * COLS
                        a2 = a + ROWS * COLS if pair else a
                        c_0, c_1, c_2, c_3, c_4, c_5 = _rows(part, a)
                        v = xi * (tiles * CHANNEL_CHUNK + SKEW) + c6
                        zt = z
                        if pair:
                            d_0, d_1, d_2, d_3, d_4, d_5 = _rows(part, a2)
                            for _ in range(count):
                                zc = wload(zb, zt)
                                c_0, c_1, c_2, c_3, c_4, c_5 = wfma_rows(c_0, c_1, c_2, c_3, c_4, c_5, vb, v, v + 1,
                                                                         v + 2, v + 3, v + 4, v + 5, zc)
                                d_0, d_1, d_2, d_3, d_4, d_5 = wfma_rows(d_0, d_1, d_2, d_3, d_4, d_5, vb, v + 6,
                                                                         v + 7, v + 8, v + 9, v + 10, v + 11, zc)
                                v += CHANNEL_CHUNK
                                zt += COLS
                            _put_rows(part, a2, d_0, d_1, d_2, d_3, d_4, d_5)
                        else:
                            for _ in range(count):
                                c_0, c_1, c_2, c_3, c_4, c_5 = wfma_rows(c_0, c_1, c_2, c_3, c_4, c_5, vb, v, v + 1,
                                                                         v + 2, v + 3, v + 4, v + 5, wload(zb, zt))
                                v += CHANNEL_CHUNK
                                zt += COLS
                        _put_rows(part, a, c_0, c_1, c_2, c_3, c_4, c_5)


@_backend.job_kernel
def _weights(w, out_ch, channels, swap, blas, u, scratch, first_job, last_job, thread):  # pragma: no cover - compiled
    # u: flat (16, O16 // 16, C8, 16): u[xi, f // 16, e, f % 16] = (G v G')[xi] of the 3 x 3
    # v = w[f, e] (or, with swap, w[e, f] turned by 180 degrees: the input gradient's weights), in
    # float64, rounded once, and zero for the padding's filters f >= out_ch and channels
    # e >= channels (u need not be zero on entry); w: flat (O, C, 3, 3) if not swap else (C, O, 3, 3);
    # scratch: (threads, 12 + 16 * 16) float64; job j: filters 16*j .. 16*j + 15; with blas, u is
    # instead flat (16, C8, O8): u[xi, e, f] (the BLAS's layout).  A channel's 16 filters are
    # transformed into the scratch first, then written plane by plane, each plane's 16 values
    # one cache line: the planes lie a multiple of 4 KiB apart, and writing a value to each in
    # turn had every line evicted between two of its writes.
    c8 = -(-channels // LANES) * LANES
    groups16 = u.shape[0] // (16 * COLS * c8)
    o8 = u.shape[0] // (16 * c8)
    half = 0.5
    scratch = scratch[thread]
    step = np.uint64(c8 * o8) if blas else np.uint64(groups16 * c8 * COLS)  # (between two planes)
    for job in range(np.uint64(first_job), np.uint64(last_job)):
        og = np.int64(job)
        first = og * COLS
        last = min(o8, first + COLS)
        for e in range(c8):
            for f in range(first, last):
                block = 12 + 16 * (f - first)  # (the filter's 16 values in the scratch)
                if f >= out_ch or e >= channels:
                    for xi in range(16):
                        scratch[block + xi] = 0.0
                    continue
                # G v, row by row (v's rows s = 0, 1, 2; for the input gradient, turned)
                base = (e * out_ch + f) * 9 if swap else (f * channels + e) * 9
                r0, r2 = (6, 0) if swap else (0, 6)
                for t in range(3):
                    tt = 2 - t if swap else t
                    v0 = np.float64(w[np.uint64(base + r0 + tt)])
                    v1 = np.float64(w[np.uint64(base + 3 + tt)])
                    v2 = np.float64(w[np.uint64(base + r2 + tt)])
                    scratch[t] = v0
                    scratch[3 + t] = (v0 + v1 + v2) * half
                    scratch[6 + t] = (v0 - v1 + v2) * half
                    scratch[9 + t] = v2
                for i in range(4):  # (G v) G': entry xi = 4 i + j
                    g0, g1, g2 = scratch[3 * i], scratch[3 * i + 1], scratch[3 * i + 2]
                    scratch[block + 4 * i] = g0
                    scratch[block + 4 * i + 1] = (g0 + g1 + g2) * half
                    scratch[block + 4 * i + 2] = (g0 - g1 + g2) * half
                    scratch[block + 4 * i + 3] = g2
            at = np.uint64(e * o8 + first) if blas else np.uint64((og * c8 + e) * COLS)
            for xi in range(16):
                row = at + np.uint64(xi) * step
                for f in range(last - first):
                    u[row + np.uint64(f)] = np.float32(scratch[12 + 16 * f + xi])


# The transforms of the whole batch, for products by the BLAS (large layers): V[xi, t, c] of the
# input, Z[xi, t, o] of the upstream gradient, and the output from M[xi, t, o].

@_backend.job_kernel
def _input_all(xb, cblocks, hn, wn, dh, dw, rows_base, cols_base, first, tiles, v, first_job, last_job, thread
               ):  # pragma: no cover - compiled
    # v: flat (16, T, C8), v[xi, t, c] = (B' d B)[xi] of tile first + t's channel c (T tiles of
    # the batch from ``first`` on, C8 = 8 * cblocks); job j: tiles j*tiles .. (j+1)*tiles - 1 of them
    c8 = cblocks * LANES
    count_all = v.shape[0] // (16 * c8)
    total = xb.shape[0] // (cblocks * hn * wn * LANES) * rows_base.shape[0] * cols_base.shape[0]
    vstep = np.uint64(count_all * c8)
    for job in range(np.uint64(first_job), np.uint64(last_job)):
        t0 = np.int64(job) * tiles
        count = min(tiles, count_all - t0)
        _input_tiles(xb, cblocks, hn, wn, dh, dw, rows_base, cols_base, total, first + t0, count, 0, c8, v[t0 * c8:],
                     vstep, c8)


@_backend.job_kernel
def _grad_all(gb, gblocks, ghn, gwn, glo_h, glo_w, dh, dw, rows_base, cols_base, out_h, out_w, first, tiles, z,
              first_job, last_job, thread):  # pragma: no cover - compiled
    # z: flat (16, T, O8), z[xi, t, o] = (A dY A')[xi] of tile first + t's upstream gradients of
    # filter o (O8 = 8 * gblocks; dY[n, o, i, j] at row i + glo_h, column j + glo_w of gb)
    o8 = gblocks * LANES
    total = z.shape[0] // (16 * o8)
    zstep = np.uint64(total * o8)
    for job in range(np.uint64(first_job), np.uint64(last_job)):
        t0 = np.int64(job) * tiles
        for t in range(t0, min(total, t0 + tiles)):
            n, oh, ow, more_h, more_w = _tile_at(first + t, rows_base, cols_base, dh, dw, out_h, out_w)
            for block in range(gblocks):
                g00, g01, g10, g11 = _grad_loads(gb, n, block, gblocks, ghn, gwn, oh + glo_h, ow + glo_w, dh, dw,
                                                 more_h, more_w)
                _grad_tile(g00, g01, g10, g11, z, np.uint64(t * o8 + block * LANES), zstep)


@_backend.job_kernel
def _output_all(m, rows_base, cols_base, dh, dw, out_ch, out_h, out_w, bias, y, first, tiles, obuf, checks,
                first_job, last_job, thread):  # pragma: no cover - compiled
    # y[n, o, ...] of tile first + t from m[:, t]: flat (16, T, O8) (O8 a multiple of 8, at least
    # out_ch), plus bias (O8 values); checks[thread] += y - y over the outputs (nan where one is
    # not finite); obuf: (threads, 5 * 16); job j: tiles j*tiles .. of the T
    o8 = bias.shape[0]
    total = m.shape[0] // (16 * o8)
    mstep = np.uint64(total * o8)
    ob = obuf[thread]
    check = vzero()
    plane_out = out_h * out_w
    for job in range(np.uint64(first_job), np.uint64(last_job)):
        t0 = np.int64(job) * tiles
        for t in range(t0, min(total, t0 + tiles)):
            n, oh, ow, more_h, more_w = _tile_at(first + t, rows_base, cols_base, dh, dw, out_h, out_w)
            for o0 in range(0, out_ch, LANES):
                y00, y01, y10, y11 = _output_tile(m, np.uint64(t * o8 + o0), mstep, vload(bias, o0))
                check = _stage_outputs(ob, LANES, 0, y00, y01, y10, y11, check)
                _store_outputs(y, ob, LANES, np.uint64((n * out_ch + o0) * plane_out + oh * out_w + ow),
                               min(LANES, out_ch - o0), plane_out, dh, dw, out_w, more_h, more_w)
    _add_checks(checks, thread, ob, check)


@_backend.job_kernel
def _adjoint(du, channels, out_ch, row, plane, gw, first_job, last_job, thread):  # pragma: no cover - compiled
    # gw[o, c] = G' dU[:, c, o] G (3 x 3, in float64, rounded once) from du: flat float32,
    # dU[xi, c, o] at xi * plane + c * row + o, entry xi = 4*i + k; gw: flat (O, C, 3, 3); job j:
    # filters 16*j .. 16*j + 15, channel by channel, so that the 16 planes' lines read for one
    # filter serve the next 15 (filter by filter, every line of dU was read 16 times from memory)
    half = 0.5
    plane = np.uint64(plane)
    for job in range(np.uint64(first_job), np.uint64(last_job)):
        first = np.int64(job) * 16
        for c in range(channels):
            for o in range(first, min(out_ch, first + 16)):
                at = np.uint64(c * row + o)
                out = np.uint64((o * channels + c) * 9)
                # rows: G' dU (G' = [[1, 1/2, 1/2, 0], [0, 1/2, -1/2, 0], [0, 1/2, 1/2, 1]]), column k
                for k in range(4):
                    d0 = np.float64(du[at + np.uint64(k) * plane])
                    d1 = np.float64(du[at + np.uint64(4 + k) * plane])
                    d2 = np.float64(du[at + np.uint64(8 + k) * plane])
                    d3 = np.float64(du[at + np.uint64(12 + k) * plane])
                    if k == 0:
                        a0, b0, c0 = d0 + (d1 + d2) * half, (d1 - d2) * half, (d1 + d2) * half + d3
                    elif k == 1:
                        a1, b1, c1 = d0 + (d1 + d2) * half, (d1 - d2) * half, (d1 + d2) * half + d3
                    elif k == 2:
                        a2, b2, c2 = d0 + (d1 + d2) * half, (d1 - d2) * half, (d1 + d2) * half + d3
                    else:
                        a3, b3, c3 = d0 + (d1 + d2) * half, (d1 - d2) * half, (d1 + d2) * half + d3
                # then columns: (G' dU) G
                gw[out] = np.float32(a0 + (a1 + a2) * half)
                gw[out + np.uint64(1)] = np.float32((a1 - a2) * half)
                gw[out + np.uint64(2)] = np.float32((a1 + a2) * half + a3)
                gw[out + np.uint64(3)] = np.float32(b0 + (b1 + b2) * half)
                gw[out + np.uint64(4)] = np.float32((b1 - b2) * half)
                gw[out + np.uint64(5)] = np.float32((b1 + b2) * half + b3)
                gw[out + np.uint64(6)] = np.float32(c0 + (c1 + c2) * half)
                gw[out + np.uint64(7)] = np.float32((c1 - c2) * half)
                gw[out + np.uint64(8)] = np.float32((c1 + c2) * half + c3)
