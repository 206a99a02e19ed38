"""The bin-by-bin products of the FFT convolution (Numba, complex64): the one step of
:mod:`cnnlab.functional._fft_conv` whose work grows with channels times filters.

Each of the three products there is ``Z[i, j, f] = sum_k A[i, k, f] * B[j, k, f]`` for every
frequency bin ``f`` (channels of one group with one another; a conjugate taken by the packing).
Bins are independent, so the 16 lanes of a vector hold 16 bins, and a ``2 x 4`` block of ``(i,
j)`` pairs keeps 16 running complex sums (real and imaginary parts apart, 16 of the 32 AVX-512
registers) through the shared index ``k``: each step loads 2 values of ``A`` and 4 of ``B`` and
does 32 multiply-adds, the arithmetic of ``(ar + i ai)(br + i bi)`` with one rounding each.

The complex arrays are packed first (:func:`_pack`): by chunk of 16 bins, then row, then real and
imaginary part (``packed[chunk, row, part, lane]``), so that one chunk of an operand lies in one
piece (the forward of N32 C32 16x16 -> 32 k7: 131 kB a chunk, in the L2 cache while its blocks
are taken in turn; with rows of every bin the same loop ran at 89 instead of 132 GFLOP/s).  Jobs
run a chunk's blocks with ``i`` fastest, so the 4 rows of ``B`` of consecutive jobs are the same.
"""

from __future__ import annotations

import numba
import numpy as np

from cnnlab.functional import _backend
from cnnlab.functional._numba_simd import f32x16, wload, wstore, wzero

LANES = 16


def _vector_ops():
    """``(wfma, wneg)``: ``acc + a * b`` and ``-a`` on sixteen lanes (LLVM's ``fma`` and ``fneg``)."""
    from numba.extending import intrinsic

    from cnnlab.functional._numba_simd import _fma

    @intrinsic
    def wfma(typingctx, acc, a, b):
        if not (acc == f32x16 and a == f32x16 and b == f32x16):
            return None

        def codegen(context, builder, sig, args):
            return _fma(builder, args[1], args[2], args[0])
        return f32x16(acc, a, b), codegen

    @intrinsic
    def wneg(typingctx, a):
        if a != f32x16:
            return None

        def codegen(context, builder, sig, args):
            return builder.fneg(args[0])
        return f32x16(a), codegen

    return wfma, wneg


wfma, wneg = _vector_ops()


@numba.njit(inline="always")
def _put(z, at, re, im):  # pragma: no cover - compiled
    # a block's sums of one (i, j): its real parts at z[at], its imaginary parts 16 further on
    wstore(z, at, re)
    wstore(z, at + 16, im)


@_backend.job_kernel
def _pack(src, dst, rows, bins, chunks, sign, first_job, last_job, thread):  # pragma: no cover - compiled
    # src: (rows, 2 * bins) float32 (a complex64 array's real and imaginary parts side by side);
    # dst[chunk, row, part, lane] (zeros past the last bin), the imaginary parts times sign
    for r in range(np.uint64(first_job), np.uint64(last_job)):
        for f in range(bins):
            at = ((f // 16) * rows + r) * 32 + f % 16
            dst[at] = src[r * 2 * bins + 2 * f]
            dst[at + 16] = sign * src[r * 2 * bins + 2 * f + 1]
        for f in range(bins, chunks * 16):
            at = ((f // 16) * rows + r) * 32 + f % 16
            dst[at] = 0.0
            dst[at + 16] = 0.0


@_backend.job_kernel
def _unpack(src, dst, rows, bins, first_job, last_job, thread):  # pragma: no cover - compiled
    # the inverse of _pack (sign 1) into dst: (rows, 2 * bins)
    for r in range(np.uint64(first_job), np.uint64(last_job)):
        for f in range(bins):
            at = ((f // 16) * rows + r) * 32 + f % 16
            dst[r * 2 * bins + 2 * f] = src[at]
            dst[r * 2 * bins + 2 * f + 1] = src[at + 16]


@_backend.job_kernel
def _products(a, b, z, dims, first_job, last_job, thread):  # pragma: no cover - compiled
    # z[g, i, j] = sum_k a[g, i, k] * b[g, j, k] (complex, packed), rows of a at g*ga + i*ai + k*ak,
    # of b at g*gb + j*bj + k*bk, of z at g*gz + i*zi + j*zj; a job: a 2 x 4 block of one chunk
    na, nb, nk, groups = dims[0], dims[1], dims[2], dims[3]
    ga, ai, ak, gb, bj, bk, gz, zi, zj = dims[4], dims[5], dims[6], dims[7], dims[8], dims[9], dims[10], dims[11], \
        dims[12]
    rows_a, rows_b, rows_z = dims[13], dims[14], dims[15]
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
            xr0 = wload(a, p0)
            xi0 = wload(a, p0 + 16)
            xr1 = wload(a, p1)
            xi1 = wload(a, p1 + 16)
            nx0 = wneg(xi0)
            nx1 = wneg(xi1)
            kb = base_b + k * bk * 32
            q = kb + j0 * bj * 32
            br = wload(b, q)
            bi = wload(b, q + 16)
            r00 = wfma(wfma(r00, xr0, br), nx0, bi)
            m00 = wfma(wfma(m00, xr0, bi), xi0, br)
            r10 = wfma(wfma(r10, xr1, br), nx1, bi)
            m10 = wfma(wfma(m10, xr1, bi), xi1, br)
            q = kb + j1 * bj * 32
            br = wload(b, q)
            bi = wload(b, q + 16)
            r01 = wfma(wfma(r01, xr0, br), nx0, bi)
            m01 = wfma(wfma(m01, xr0, bi), xi0, br)
            r11 = wfma(wfma(r11, xr1, br), nx1, bi)
            m11 = wfma(wfma(m11, xr1, bi), xi1, br)
            q = kb + j2 * bj * 32
            br = wload(b, q)
            bi = wload(b, q + 16)
            r02 = wfma(wfma(r02, xr0, br), nx0, bi)
            m02 = wfma(wfma(m02, xr0, bi), xi0, br)
            r12 = wfma(wfma(r12, xr1, br), nx1, bi)
            m12 = wfma(wfma(m12, xr1, bi), xi1, br)
            q = kb + j3 * bj * 32
            br = wload(b, q)
            bi = wload(b, q + 16)
            r03 = wfma(wfma(r03, xr0, br), nx0, bi)
            m03 = wfma(wfma(m03, xr0, bi), xi0, br)
            r13 = wfma(wfma(r13, xr1, br), nx1, bi)
            m13 = wfma(wfma(m13, xr1, bi), xi1, br)
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


def _packed(a: np.ndarray, sign: float) -> np.ndarray:
    rows, bins = a.shape[0] * a.shape[1], a.shape[2]
    chunks = -(-bins // LANES)
    flat = np.ascontiguousarray(a).reshape(rows, bins).view(np.float32).reshape(-1)
    out = np.empty(chunks * rows * 2 * LANES, dtype=np.float32)
    _backend.run_jobs(_pack, rows, flat, out, rows, bins, chunks, np.float32(sign), work=float(rows) * bins)
    return out


def products(a: np.ndarray, b: np.ndarray, groups: int, conj_a: bool, conj_b: bool, kind: str) -> np.ndarray:
    """:func:`cnnlab.functional._fft_conv._products` for complex64 spectra ``a`` and ``b``
    (``(rows, channels, bins)`` each): the sums as a complex64 array ``(rows, channels, bins)``."""
    bins = a.shape[2]
    chunks = -(-bins // LANES)
    pa, pb = _packed(a, -1.0 if conj_a else 1.0), _packed(b, -1.0 if conj_b else 1.0)
    ra, rb = a.shape[0] * a.shape[1], b.shape[0] * b.shape[1]
    if kind == "forward":  # a (N, C), b (O, C_g): z (N, O)
        n, c = a.shape[:2]
        o, cg = b.shape[:2]
        og = o // groups
        na, nb, nk, shape = n, og, cg, (n, o)
        strides = (cg, c, 1, og * cg, cg, 1, og, o, 1)
    elif kind == "grad_x":  # a (N, O), b (O, C_g): z (N, C)
        n, o = a.shape[:2]
        cg = b.shape[1]
        og = o // groups
        na, nb, nk, shape = n, cg, og, (n, groups * cg)
        strides = (og, o, 1, og * cg, 1, cg, cg, groups * cg, 1)
    else:  # grad_w: a (N, O), b (N, C): z (O, C_g)
        n, o = a.shape[:2]
        c = b.shape[1]
        og, cg = o // groups, c // groups
        na, nb, nk, shape = og, cg, n, (o, cg)
        strides = (og, 1, o, cg, 1, c, og * cg, cg, 1)
    rz = shape[0] * shape[1]
    dims = np.array((na, nb, nk, groups, *strides, ra, rb, rz), dtype=np.int64)
    z = np.empty(chunks * rz * 2 * LANES, dtype=np.float32)
    jobs = ((na + 1) // 2) * ((nb + 3) // 4) * groups * chunks
    _backend.run_jobs(_products, jobs, pa, pb, z, dims, work=4.0 * na * nb * nk * groups * chunks * LANES)
    out = np.empty((*shape, bins), dtype=np.complex64)
    _backend.run_jobs(_unpack, rz, z, out.reshape(-1).view(np.float32), rz, bins, work=float(rz) * bins)
    return out
