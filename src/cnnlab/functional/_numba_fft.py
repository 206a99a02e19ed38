"""The compiled float32 parts of the FFT convolution (Numba): the transforms of 1-d and 2-d
planes and the bin-by-bin products of :mod:`cnnlab.functional._fft_conv`.

**Products.**  Each of the three is ``Z[i, j, f] = sum_k A[i, k, f] * B[j, k, f]`` for every
frequency bin ``f`` (channels of one group with one another; a conjugate of either operand by the
signs of the imaginary parts' products).  Bins are independent, so the 16 lanes of a vector hold
16 bins, and a ``2 x 4`` block of ``(i, j)`` pairs keeps 16 running complex sums (real and
imaginary parts apart, 16 of the 32 AVX-512 registers) through the shared index ``k``: each step
loads 2 values of ``A`` and 4 of ``B`` and does 32 multiply-adds, the arithmetic of ``(ar + i
ai)(br + i bi)`` with one rounding each.  The spectra are packed by chunk of 16 bins, then row,
then real and imaginary part (``packed[chunk, row, part, lane]``), so that one chunk of an
operand lies in one piece (the forward of N32 C32 16x16 -> 32 k7: 131 kB a chunk, in the L2 cache
while its blocks are taken in turn; with rows of every bin the same loop ran at 89 instead of 132
GFLOP/s).  Jobs run a chunk's blocks with ``i`` fastest, so the 4 rows of ``B`` of consecutive
jobs are the same.  Without AVX-512 a 16-lane value takes two of the 16 AVX registers, and the
2 x 4 block's sums alone would need 32: :func:`_products_narrow` runs ``1 x 4`` blocks of 8 lanes
(each chunk in two halves), the same sums in the same order (the issue's 5x5 layer's
forward+backward by this method 12.35 -> 10.40 ms on a Zen 3, N8 C64 28x28 -> 64 k7 26.1 -> 20.8).

**Transforms** (:func:`spectra`, :func:`planes`).  Not FFTs: dense sums, ``L`` terms a bin and
axis instead of ``log L``, but vectorised (along a row, its bins 16 a vector; down the columns,
4 bins at a time) and with no call per plane: SciPy's transforms took 0.7-0.9 ms for the 1024
planes of a 16 x 16 layer on one worker, plus 0.2-0.4 ms a packing (:func:`_pack`, still used
for theirs), and the dense sums write the packed layout themselves.  Each value enters at its
position in the period (``Axis``: the input's own, a dilated kernel's taps, a strided output's
places less the padding), so no zero-filled copy is made, and the inverse computes the wanted
positions only.  Their tables of cosines and sines are made in float64 and rounded once.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import numba
import numpy as np

from cnnlab.functional import _backend, _numba_simd
from cnnlab.functional._backend import read_only
from cnnlab.functional._numba_simd import (
    vfma,
    vload,
    vmul,
    vstore,
    vzero,
    wfma,
    wfma_at,
    wload,
    wmul,
    wstore,
    wstore_lanes,
    wzero,
)

LANES = 16


@numba.njit(inline="always")
def _put(z, at, re, im):  # pragma: no cover - compiled
    # a block's sums of one (i, j): its real parts at z[at], its imaginary parts 16 further on
    wstore(z, at, re)
    wstore(z, at + 16, im)


@_backend.job_kernel
def _pack(src, dst, rows, bins, chunks, first_job, last_job, thread):  # pragma: no cover - compiled
    # src: (rows, 2 * bins) float32 (a complex64 array's real and imaginary parts side by side);
    # dst[chunk, row, part, lane] (zeros past the last bin)
    for r in range(np.uint64(first_job), np.uint64(last_job)):
        for f in range(bins):
            at = ((f // 16) * rows + r) * 32 + f % 16
            dst[at] = src[r * 2 * bins + 2 * f]
            dst[at + 16] = src[r * 2 * bins + 2 * f + 1]
        for f in range(bins, chunks * 16):
            at = ((f // 16) * rows + r) * 32 + f % 16
            dst[at] = 0.0
            dst[at + 16] = 0.0


@_backend.job_kernel
def _unpack(src, dst, rows, bins, first_job, last_job, thread):  # pragma: no cover - compiled
    # the inverse of _pack into dst: (rows, 2 * bins)
    for r in range(np.uint64(first_job), np.uint64(last_job)):
        for f in range(bins):
            at = ((f // 16) * rows + r) * 32 + f % 16
            dst[r * 2 * bins + 2 * f] = src[at]
            dst[r * 2 * bins + 2 * f + 1] = src[at + 16]


@_backend.job_kernel
def _products(a, b, z, dims, signs, first_job, last_job, thread):  # pragma: no cover - compiled
    # z[g, i, j] = sum_k a[g, i, k] * b[g, j, k] (complex, packed), rows of a at g*ga + i*ai + k*ak,
    # of b at g*gb + j*bj + k*bk, of z at g*gz + i*zi + j*zj; a job: a 2 x 4 block of one chunk.
    # The real sums take ar*br + u*bi, the imaginary ones v*bi + t*br, with u, v, t = ai, ar, ai
    # times the signs (-1, 1, 1: a times b; 1, -1, 1: a times conj(b); 1, 1, -1: conj(a) times b)
    na, nb, nk, groups = dims[0], dims[1], dims[2], dims[3]
    ga, ai, ak, gb, bj, bk, gz, zi, zj = dims[4], dims[5], dims[6], dims[7], dims[8], dims[9], dims[10], dims[11], \
        dims[12]
    rows_a, rows_b, rows_z = dims[13], dims[14], dims[15]
    su = wload(signs, 0)
    sv = wload(signs, 16)
    st = wload(signs, 32)
    iblocks = (na + 1) // 2
    jblocks = (nb + 3) // 4
    for job in range(np.uint64(first_job), np.uint64(last_job)):
        i0 = (job % iblocks) * 2
        rest = job // iblocks
        j0 = (rest % jblocks) * 4
        rest = rest // jblocks
        g = rest % groups
        chunk = rest // groups
        i1 = min(i0 + 1, na - 1)
        j1 = min(j0 + 1, nb - 1)
        j2 = min(j0 + 2, nb - 1)
        j3 = min(j0 + 3, nb - 1)
        base_a = (chunk * rows_a + g * ga) * 32
        base_b = (chunk * rows_b + g * gb) * 32
        r00 = wzero()
        r01 = wzero()
        r02 = wzero()
        r03 = wzero()
        r10 = wzero()
        r11 = wzero()
        r12 = wzero()
        r13 = wzero()
        m00 = wzero()
        m01 = wzero()
        m02 = wzero()
        m03 = wzero()
        m10 = wzero()
        m11 = wzero()
        m12 = wzero()
        m13 = wzero()
        for k in range(nk):
            p0 = base_a + (i0 * ai + k * ak) * 32
            p1 = base_a + (i1 * ai + k * ak) * 32
            ar0 = wload(a, p0)
            ai0 = wload(a, p0 + 16)
            ar1 = wload(a, p1)
            ai1 = wload(a, p1 + 16)
            u0 = wmul(ai0, su)
            v0 = wmul(ar0, sv)
            t0 = wmul(ai0, st)
            u1 = wmul(ai1, su)
            v1 = wmul(ar1, sv)
            t1 = wmul(ai1, st)
            kb = base_b + k * bk * 32
            q = kb + j0 * bj * 32
            br = wload(b, q)
            bi = wload(b, q + 16)
            r00 = wfma(wfma(r00, ar0, br), u0, bi)
            m00 = wfma(wfma(m00, v0, bi), t0, br)
            r10 = wfma(wfma(r10, ar1, br), u1, bi)
            m10 = wfma(wfma(m10, v1, bi), t1, br)
            q = kb + j1 * bj * 32
            br = wload(b, q)
            bi = wload(b, q + 16)
            r01 = wfma(wfma(r01, ar0, br), u0, bi)
            m01 = wfma(wfma(m01, v0, bi), t0, br)
            r11 = wfma(wfma(r11, ar1, br), u1, bi)
            m11 = wfma(wfma(m11, v1, bi), t1, br)
            q = kb + j2 * bj * 32
            br = wload(b, q)
            bi = wload(b, q + 16)
            r02 = wfma(wfma(r02, ar0, br), u0, bi)
            m02 = wfma(wfma(m02, v0, bi), t0, br)
            r12 = wfma(wfma(r12, ar1, br), u1, bi)
            m12 = wfma(wfma(m12, v1, bi), t1, br)
            q = kb + j3 * bj * 32
            br = wload(b, q)
            bi = wload(b, q + 16)
            r03 = wfma(wfma(r03, ar0, br), u0, bi)
            m03 = wfma(wfma(m03, v0, bi), t0, br)
            r13 = wfma(wfma(r13, ar1, br), u1, bi)
            m13 = wfma(wfma(m13, v1, bi), t1, br)
        # (a block past the last row or column repeats it: the same sums written twice; the
        # highest first, so that the true ones land last)
        base_z = (chunk * rows_z + g * gz) * 32
        _put(z, base_z + (i1 * zi + j3 * zj) * 32, r13, m13)
        _put(z, base_z + (i1 * zi + j2 * zj) * 32, r12, m12)
        _put(z, base_z + (i1 * zi + j1 * zj) * 32, r11, m11)
        _put(z, base_z + (i1 * zi + j0 * zj) * 32, r10, m10)
        _put(z, base_z + (i0 * zi + j3 * zj) * 32, r03, m03)
        _put(z, base_z + (i0 * zi + j2 * zj) * 32, r02, m02)
        _put(z, base_z + (i0 * zi + j1 * zj) * 32, r01, m01)
        _put(z, base_z + (i0 * zi + j0 * zj) * 32, r00, m00)


# Whether, without AVX-512 (cnnlab.functional._numba_simd.WIDE false), the products run by
# :func:`_products_narrow` (1 x 4 blocks of 8 lanes: 8 sums in registers) instead of
# :func:`_products`, whose 2 x 4 blocks of 16 lanes need 32 of the 16 AVX registers (its sums
# stored and reloaded every step).  The same bits.
NARROW_PRODUCTS = True


@numba.njit(inline="always")
def _put8(z, at, re, im):  # pragma: no cover - compiled
    # eight lanes of a block's sums of one (i, j): real parts at z[at], imaginary parts 16 further on
    vstore(z, at, re)
    vstore(z, at + 16, im)


@_backend.job_kernel
def _products_narrow(a, b, z, dims, signs, first_job, last_job, thread):  # pragma: no cover - compiled
    # _products (the same dims and signs, each sum's terms in the same order, so the same bits) by
    # 1 x 4 blocks of (i, j), each chunk of 16 bins as two halves of 8 lanes: a job is row i of one
    # chunk by 4 rows of b (8 running sums of 8 lanes, the 3 signed copies of a's value, 2 of b's)
    na, nb, nk, groups = dims[0], dims[1], dims[2], dims[3]
    ga, ai, ak, gb, bj, bk, gz, zi, zj = dims[4], dims[5], dims[6], dims[7], dims[8], dims[9], dims[10], dims[11], \
        dims[12]
    rows_a, rows_b, rows_z = dims[13], dims[14], dims[15]
    su = vload(signs, 0)
    sv = vload(signs, 16)
    st = vload(signs, 32)
    jblocks = (nb + 3) // 4
    for job in range(np.uint64(first_job), np.uint64(last_job)):
        i0 = job % na
        rest = job // na
        j0 = (rest % jblocks) * 4
        rest = rest // jblocks
        g = rest % groups
        chunk = rest // groups
        j1 = min(j0 + 1, nb - 1)
        j2 = min(j0 + 2, nb - 1)
        j3 = min(j0 + 3, nb - 1)
        for h in range(0, 16, 8):
            base_a = (chunk * rows_a + g * ga) * 32 + h
            base_b = (chunk * rows_b + g * gb) * 32 + h
            r0 = vzero()
            r1 = vzero()
            r2 = vzero()
            r3 = vzero()
            m0 = vzero()
            m1 = vzero()
            m2 = vzero()
            m3 = vzero()
            for k in range(nk):
                p = base_a + (i0 * ai + k * ak) * 32
                ar = vload(a, p)
                aim = vload(a, p + 16)
                u = vmul(aim, su)
                v = vmul(ar, sv)
                t = vmul(aim, st)
                kb = base_b + k * bk * 32
                q = kb + j0 * bj * 32
                br = vload(b, q)
                bi = vload(b, q + 16)
                r0 = vfma(vfma(r0, ar, br), u, bi)
                m0 = vfma(vfma(m0, v, bi), t, br)
                q = kb + j1 * bj * 32
                br = vload(b, q)
                bi = vload(b, q + 16)
                r1 = vfma(vfma(r1, ar, br), u, bi)
                m1 = vfma(vfma(m1, v, bi), t, br)
                q = kb + j2 * bj * 32
                br = vload(b, q)
                bi = vload(b, q + 16)
                r2 = vfma(vfma(r2, ar, br), u, bi)
                m2 = vfma(vfma(m2, v, bi), t, br)
                q = kb + j3 * bj * 32
                br = vload(b, q)
                bi = vload(b, q + 16)
                r3 = vfma(vfma(r3, ar, br), u, bi)
                m3 = vfma(vfma(m3, v, bi), t, br)
            # (a block past the last column repeats it: the same sums, written twice)
            base_z = (chunk * rows_z + g * gz) * 32 + h
            _put8(z, base_z + (i0 * zi + j3 * zj) * 32, r3, m3)
            _put8(z, base_z + (i0 * zi + j2 * zj) * 32, r2, m2)
            _put8(z, base_z + (i0 * zi + j1 * zj) * 32, r1, m1)
            _put8(z, base_z + (i0 * zi + j0 * zj) * 32, r0, m0)


@_backend.job_kernel
def _spectra(src, cw, sw, ch, sh, nsh, dims, dst, scratch, first_job, last_job, thread):  # pragma: no cover
    # the 2-d real DFT of each plane src[r] (a x b values) at the periods lh, lw, its values at the
    # positions the tables were made for, by dense sums: along each row (bins of the last axis,
    # 16 a vector: t = sum_b x[., b] (cw[b] + i sw[b])), then down each column (bin fh: sum_a t[a]
    # (ch[fh, a] - i sh[fh, a])); written packed (dst[chunk, r, part, lane], bins flattened fh
    # first), zeros past the last bin
    a_n, b_n, lh, bw, vb, chunks, rows = dims[0], dims[1], dims[2], dims[3], dims[4], dims[5], dims[6]
    buf = scratch[thread]
    rowlen = vb * 32
    xs = a_n * rowlen  # (the spectra by row fh and vector, before they are flattened)
    flat = xs + lh * rowlen  # (flattened: real parts, then imaginary parts from flat + half)
    half = chunks * 16 + 16
    for r in range(np.uint64(first_job), np.uint64(last_job)):
        base = r * a_n * b_n
        for a0 in range(0, a_n, 4):
            a1 = min(a0 + 1, a_n - 1)
            a2 = min(a0 + 2, a_n - 1)
            a3 = min(a0 + 3, a_n - 1)
            for v in range(vb):
                c0 = wzero()
                c1 = wzero()
                c2 = wzero()
                c3 = wzero()
                s0 = wzero()
                s1 = wzero()
                s2 = wzero()
                s3 = wzero()
                for j in range(b_n):
                    cv = wload(cw, (j * vb + v) * 16)
                    sv = wload(sw, (j * vb + v) * 16)
                    c0 = wfma_at(c0, src, base + a0 * b_n + j, cv)
                    s0 = wfma_at(s0, src, base + a0 * b_n + j, sv)
                    c1 = wfma_at(c1, src, base + a1 * b_n + j, cv)
                    s1 = wfma_at(s1, src, base + a1 * b_n + j, sv)
                    c2 = wfma_at(c2, src, base + a2 * b_n + j, cv)
                    s2 = wfma_at(s2, src, base + a2 * b_n + j, sv)
                    c3 = wfma_at(c3, src, base + a3 * b_n + j, cv)
                    s3 = wfma_at(s3, src, base + a3 * b_n + j, sv)
                _put(buf, a3 * rowlen + v * 32, c3, s3)
                _put(buf, a2 * rowlen + v * 32, c2, s2)
                _put(buf, a1 * rowlen + v * 32, c1, s1)
                _put(buf, a0 * rowlen + v * 32, c0, s0)
        for f0 in range(0, lh, 4):
            f1 = min(f0 + 1, lh - 1)
            f2 = min(f0 + 2, lh - 1)
            f3 = min(f0 + 3, lh - 1)
            for v in range(vb):
                xr0 = wzero()
                xr1 = wzero()
                xr2 = wzero()
                xr3 = wzero()
                xi0 = wzero()
                xi1 = wzero()
                xi2 = wzero()
                xi3 = wzero()
                for a in range(a_n):
                    tr = wload(buf, a * rowlen + v * 32)
                    ti = wload(buf, a * rowlen + v * 32 + 16)
                    xr0 = wfma_at(wfma_at(xr0, ch, f0 * a_n + a, tr), sh, f0 * a_n + a, ti)
                    xi0 = wfma_at(wfma_at(xi0, ch, f0 * a_n + a, ti), nsh, f0 * a_n + a, tr)
                    xr1 = wfma_at(wfma_at(xr1, ch, f1 * a_n + a, tr), sh, f1 * a_n + a, ti)
                    xi1 = wfma_at(wfma_at(xi1, ch, f1 * a_n + a, ti), nsh, f1 * a_n + a, tr)
                    xr2 = wfma_at(wfma_at(xr2, ch, f2 * a_n + a, tr), sh, f2 * a_n + a, ti)
                    xi2 = wfma_at(wfma_at(xi2, ch, f2 * a_n + a, ti), nsh, f2 * a_n + a, tr)
                    xr3 = wfma_at(wfma_at(xr3, ch, f3 * a_n + a, tr), sh, f3 * a_n + a, ti)
                    xi3 = wfma_at(wfma_at(xi3, ch, f3 * a_n + a, ti), nsh, f3 * a_n + a, tr)
                _put(buf, xs + f3 * rowlen + v * 32, xr3, xi3)
                _put(buf, xs + f2 * rowlen + v * 32, xr2, xi2)
                _put(buf, xs + f1 * rowlen + v * 32, xr1, xi1)
                _put(buf, xs + f0 * rowlen + v * 32, xr0, xi0)
        # flattened in increasing order: a vector's lanes past the row's last bin land on the next
        # row's first bins, which are written after it
        for f in range(lh):
            for v in range(vb):
                wstore(buf, flat + f * bw + v * 16, wload(buf, xs + f * rowlen + v * 32))
                wstore(buf, flat + half + f * bw + v * 16, wload(buf, xs + f * rowlen + v * 32 + 16))
        for i in range(lh * bw, chunks * 16):
            buf[flat + i] = 0.0
            buf[flat + half + i] = 0.0
        for c in range(chunks):
            at = (c * rows + r) * 32
            wstore(dst, at, wload(buf, flat + c * 16))
            wstore(dst, at + 16, wload(buf, flat + half + c * 16))


@_backend.job_kernel
def _planes(src, ihc, ihs, ihns, iwc, iws, dims, dst, scratch, first_job, last_job, thread):  # pragma: no cover
    # the inverse of _spectra for each packed spectrum src[., r]: the real plane's values at the
    # out_a x out_b positions the tables were made for (ihc/ihs: cos/sin of each row position's
    # phase for each bin fh, over lh; iwc/iws: those of the columns, times each bin's weight in a
    # real signal, 1 or 2, over lw), written to dst[r] (out_a x out_b, contiguous)
    lh, bw, vb, chunks, rows = dims[0], dims[1], dims[2], dims[3], dims[4]
    out_a, out_b, vo = dims[5], dims[6], dims[7]
    buf = scratch[thread]
    half = chunks * 16 + 16
    ts = 2 * half  # (the rows' sums by bin of the last axis: out_a x vb vectors, real and imaginary)
    rowlen = vb * 32
    for r in range(np.uint64(first_job), np.uint64(last_job)):
        for c in range(chunks):
            at = (c * rows + r) * 32
            wstore(buf, c * 16, wload(src, at))
            wstore(buf, half + c * 16, wload(src, at + 16))
        for a0 in range(0, out_a, 4):
            a1 = min(a0 + 1, out_a - 1)
            a2 = min(a0 + 2, out_a - 1)
            a3 = min(a0 + 3, out_a - 1)
            for v in range(vb):
                tr0 = wzero()
                tr1 = wzero()
                tr2 = wzero()
                tr3 = wzero()
                ti0 = wzero()
                ti1 = wzero()
                ti2 = wzero()
                ti3 = wzero()
                for f in range(lh):
                    xr = wload(buf, f * bw + v * 16)
                    xi = wload(buf, half + f * bw + v * 16)
                    tr0 = wfma_at(wfma_at(tr0, ihc, a0 * lh + f, xr), ihns, a0 * lh + f, xi)
                    ti0 = wfma_at(wfma_at(ti0, ihs, a0 * lh + f, xr), ihc, a0 * lh + f, xi)
                    tr1 = wfma_at(wfma_at(tr1, ihc, a1 * lh + f, xr), ihns, a1 * lh + f, xi)
                    ti1 = wfma_at(wfma_at(ti1, ihs, a1 * lh + f, xr), ihc, a1 * lh + f, xi)
                    tr2 = wfma_at(wfma_at(tr2, ihc, a2 * lh + f, xr), ihns, a2 * lh + f, xi)
                    ti2 = wfma_at(wfma_at(ti2, ihs, a2 * lh + f, xr), ihc, a2 * lh + f, xi)
                    tr3 = wfma_at(wfma_at(tr3, ihc, a3 * lh + f, xr), ihns, a3 * lh + f, xi)
                    ti3 = wfma_at(wfma_at(ti3, ihs, a3 * lh + f, xr), ihc, a3 * lh + f, xi)
                _put(buf, ts + a3 * rowlen + v * 32, tr3, ti3)
                _put(buf, ts + a2 * rowlen + v * 32, tr2, ti2)
                _put(buf, ts + a1 * rowlen + v * 32, tr1, ti1)
                _put(buf, ts + a0 * rowlen + v * 32, tr0, ti0)
        for a0 in range(0, out_a, 4):
            a1 = min(a0 + 1, out_a - 1)
            a2 = min(a0 + 2, out_a - 1)
            a3 = min(a0 + 3, out_a - 1)
            for u in range(vo):
                y0 = wzero()
                y1 = wzero()
                y2 = wzero()
                y3 = wzero()
                for f in range(bw):
                    cv = wload(iwc, (f * vo + u) * 16)
                    sv = wload(iws, (f * vo + u) * 16)
                    lane = (f // 16) * 32 + f % 16
                    y0 = wfma_at(wfma_at(y0, buf, ts + a0 * rowlen + lane, cv), buf, ts + a0 * rowlen + lane + 16, sv)
                    y1 = wfma_at(wfma_at(y1, buf, ts + a1 * rowlen + lane, cv), buf, ts + a1 * rowlen + lane + 16, sv)
                    y2 = wfma_at(wfma_at(y2, buf, ts + a2 * rowlen + lane, cv), buf, ts + a2 * rowlen + lane + 16, sv)
                    y3 = wfma_at(wfma_at(y3, buf, ts + a3 * rowlen + lane, cv), buf, ts + a3 * rowlen + lane + 16, sv)
                hi = min(16, out_b - u * 16)
                base = r * out_a * out_b + u * 16
                wstore_lanes(dst, base + a3 * out_b, y3, 0, hi)
                wstore_lanes(dst, base + a2 * out_b, y2, 0, hi)
                wstore_lanes(dst, base + a1 * out_b, y1, 0, hi)
                wstore_lanes(dst, base + a0 * out_b, y0, 0, hi)


def _packed(a: np.ndarray) -> np.ndarray:
    """``a`` (complex64, ``(rows, channels, bins)``) packed as the products read it."""
    rows, bins = a.shape[0] * a.shape[1], a.shape[2]
    chunks = -(-bins // LANES)
    flat = np.ascontiguousarray(a).reshape(rows, bins).view(np.float32).reshape(-1)
    out = np.empty(chunks * rows * 2 * LANES, dtype=np.float32)
    _backend.run_jobs(_pack, rows, read_only(flat), out, rows, bins, chunks, work=float(rows) * bins)
    return out


# The signs (u, v, t) of _products for a times b, a times conj(b) and conj(a) times b.
_SIGNS = {(False, False): (-1.0, 1.0, 1.0), (False, True): (1.0, -1.0, 1.0), (True, False): (1.0, 1.0, -1.0)}


def packed_products(pa: np.ndarray, a_shape: tuple[int, int], pb: np.ndarray, b_shape: tuple[int, int],
                    groups: int, conj_a: bool, conj_b: bool, kind: str, chunks: int
                    ) -> tuple[np.ndarray, tuple[int, int]]:
    """The sums of :func:`cnnlab.functional._fft_conv._products` of two packed spectra of
    ``a_shape`` and ``b_shape`` rows (``(rows, channels)``; ``chunks`` of 16 bins): the packed
    result and its ``(rows, channels)``."""
    if kind == "forward":  # a (N, C), b (O, C_g): z (N, O)
        n, c = a_shape
        o, cg = b_shape
        og = o // groups
        na, nb, nk, shape = n, og, cg, (n, o)
        strides = (cg, c, 1, og * cg, cg, 1, og, o, 1)
    elif kind == "grad_x":  # a (N, O), b (O, C_g): z (N, C)
        n, o = a_shape
        cg = b_shape[1]
        og = o // groups
        na, nb, nk, shape = n, cg, og, (n, groups * cg)
        strides = (og, o, 1, og * cg, 1, cg, cg, groups * cg, 1)
    else:  # grad_w: a (N, O), b (N, C): z (O, C_g)
        n, o = a_shape
        c = b_shape[1]
        og, cg = o // groups, c // groups
        na, nb, nk, shape = og, cg, n, (o, cg)
        strides = (og, 1, o, cg, 1, c, og * cg, cg, 1)
    ra, rb, rz = a_shape[0] * a_shape[1], b_shape[0] * b_shape[1], shape[0] * shape[1]
    dims = np.array((na, nb, nk, groups, *strides, ra, rb, rz), dtype=np.int64)
    signs = np.repeat(np.array(_SIGNS[(conj_a, conj_b)], dtype=np.float32), LANES)
    z = np.empty(chunks * rz * 2 * LANES, dtype=np.float32)
    narrow = NARROW_PRODUCTS and not _numba_simd.WIDE
    jobs = (na if narrow else (na + 1) // 2) * ((nb + 3) // 4) * groups * chunks
    _backend.run_jobs(_products_narrow if narrow else _products, jobs, read_only(pa), read_only(pb), z,
                      read_only(dims), read_only(signs), work=4.0 * na * nb * nk * groups * chunks * LANES)
    return z, shape


def products(a: np.ndarray, b: np.ndarray, groups: int, conj_a: bool, conj_b: bool, kind: str) -> np.ndarray:
    """:func:`cnnlab.functional._fft_conv._products` for complex64 spectra ``a`` and ``b``
    (``(rows, channels, bins)`` each): the sums as a complex64 array ``(rows, channels, bins)``."""
    bins = a.shape[2]
    chunks = -(-bins // LANES)
    z, shape = packed_products(_packed(a), a.shape[:2], _packed(b), b.shape[:2], groups, conj_a, conj_b, kind,
                               chunks)
    rz = shape[0] * shape[1]
    out = np.empty((*shape, bins), dtype=np.complex64)
    _backend.run_jobs(_unpack, rz, read_only(z), out.reshape(-1).view(np.float32), rz, bins, work=float(rz) * bins)
    return out


class Axis(NamedTuple):
    """Where a plane's values lie along one axis of the period: ``count`` values at
    ``(i*step - offset) mod period`` (the input: step 1; the dilated kernel: its dilation; the
    output and its gradient: the stride, less the padding before)."""

    count: int
    step: int
    offset: int
    period: int

    def phases(self) -> np.ndarray:
        """``2 pi / period`` times each value's position (float64, ``(count,)``)."""
        pos = (np.arange(self.count) * self.step - self.offset) % self.period
        return 2.0 * np.pi * pos / self.period


def _vectors(n: int) -> int:
    return -(-n // LANES)


@functools.lru_cache(maxsize=256)
def _row_tables(axis: Axis) -> tuple[np.ndarray, np.ndarray]:
    """``(cos, -sin)`` of each bin ``f < period // 2 + 1`` (columns, 16 a vector, zeros past the
    last) at each position (rows) of the last axis, for the forward sums."""
    bins = axis.period // 2 + 1
    angle = np.outer(axis.phases(), np.arange(bins))
    width = _vectors(bins) * LANES
    c, s = np.zeros((axis.count, width)), np.zeros((axis.count, width))
    c[:, :bins], s[:, :bins] = np.cos(angle), -np.sin(angle)
    return read_only(c.astype(np.float32)), read_only(s.astype(np.float32))


@functools.lru_cache(maxsize=256)
def _column_tables(axis: Axis) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(cos, sin, -sin)`` of each bin (rows) at each position (columns) of the first axis."""
    angle = np.outer(np.arange(axis.period), axis.phases())
    c, s = np.cos(angle), np.sin(angle)
    return tuple(read_only(t.astype(np.float32)) for t in (c, s, -s))


@functools.lru_cache(maxsize=256)
def _inverse_column_tables(axis: Axis) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(cos, sin, -sin) / period`` of each position (rows) for each bin (columns) of the first axis."""
    angle = np.outer(axis.phases(), np.arange(axis.period))
    c, s = np.cos(angle) / axis.period, np.sin(angle) / axis.period
    return tuple(read_only(t.astype(np.float32)) for t in (c, s, -s))


@functools.lru_cache(maxsize=256)
def _inverse_row_tables(axis: Axis) -> tuple[np.ndarray, np.ndarray]:
    """``(w cos, -w sin) / period`` of each bin (rows) at each position (columns, 16 a vector,
    zeros past the last) of the last axis, ``w`` the bin's weight in a real signal's half spectrum
    (1 for the first bin and, for an even period, the last; 2 for the others)."""
    bins = axis.period // 2 + 1
    weight = np.full(bins, 2.0)
    weight[0] = 1.0
    if axis.period % 2 == 0:
        weight[-1] = 1.0
    angle = np.outer(np.arange(bins), axis.phases())
    width = _vectors(axis.count) * LANES
    c, s = np.zeros((bins, width)), np.zeros((bins, width))
    c[:, :axis.count] = weight[:, None] * np.cos(angle) / axis.period
    s[:, :axis.count] = -weight[:, None] * np.sin(angle) / axis.period
    return read_only(c.astype(np.float32)), read_only(s.astype(np.float32))


def chunks_of(rows_axis: Axis, cols_axis: Axis) -> int:
    """Chunks of 16 bins of a plane's spectrum of these periods."""
    return _vectors(rows_axis.period * (cols_axis.period // 2 + 1))


def _scratch(size: int) -> np.ndarray:
    return np.empty((_backend.kernel_threads(), size), dtype=np.float32)


def spectra(planes: np.ndarray, rows_axis: Axis, cols_axis: Axis) -> np.ndarray:
    """The packed 2-d real DFTs of the float32 ``planes`` (``(P, rows_axis.count,
    cols_axis.count)``, contiguous) at the axes' periods, each value at its axis position."""
    count = planes.shape[0]
    lh, bw = rows_axis.period, cols_axis.period // 2 + 1
    vb, chunks = _vectors(bw), chunks_of(rows_axis, cols_axis)
    cw, sw = _row_tables(cols_axis)
    ch, sh, nsh = _column_tables(rows_axis)
    dims = np.array((rows_axis.count, cols_axis.count, lh, bw, vb, chunks, count), dtype=np.int64)
    size = (rows_axis.count + lh) * vb * 32 + 2 * (chunks * LANES + LANES)
    dst = np.empty(chunks * count * 2 * LANES, dtype=np.float32)
    work = float(count) * (rows_axis.count * cols_axis.count + lh * rows_axis.count) * vb * 32
    _backend.run_jobs(_spectra, count, read_only(planes.reshape(-1)), cw, sw, ch, sh, nsh, read_only(dims), dst,
                      _scratch(size), work=work)
    return dst


def planes(packed: np.ndarray, count: int, rows_axis: Axis, cols_axis: Axis) -> np.ndarray:
    """The real planes (float32, ``(count, rows_axis.count, cols_axis.count)``) whose packed
    spectra ``packed`` holds, at the axes' positions: the inverse of :func:`spectra`."""
    lh, bw = rows_axis.period, cols_axis.period // 2 + 1
    vb, chunks, vo = _vectors(bw), chunks_of(rows_axis, cols_axis), _vectors(cols_axis.count)
    ihc, ihs, ihns = _inverse_column_tables(rows_axis)
    iwc, iws = _inverse_row_tables(cols_axis)
    dims = np.array((lh, bw, vb, chunks, count, rows_axis.count, cols_axis.count, vo), dtype=np.int64)
    size = 2 * (chunks * LANES + LANES) + rows_axis.count * vb * 32
    dst = np.empty((count, rows_axis.count, cols_axis.count), dtype=np.float32)
    work = float(count) * rows_axis.count * (lh * vb + bw * vo) * 32
    _backend.run_jobs(_planes, count, read_only(packed), ihc, ihs, ihns, iwc, iws, read_only(dims), dst.reshape(-1),
                      _scratch(size), work=work)
    return dst
