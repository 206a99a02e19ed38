"""The bin-by-bin products of the FFT convolution (Numba, float32; :mod:`cnnlab.functional._fft_conv`,
whose spectra :mod:`cnnlab.functional._numba_fft` makes and inverts).

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
"""
from __future__ import annotations

import numba
import numpy as np

from cnnlab.functional import _backend, _numba_simd
from cnnlab.functional._backend import read_only
from cnnlab.functional._numba_simd import vfma, vload, vmul, vstore, vzero, wfma, wload, wmul, wstore, wzero

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
# stored and reloaded every step), and the transforms by blocks of 2 rows instead of 4
# (:func:`_make_spectra`, :func:`_make_planes`).  The same bits.
NARROW_KERNELS = True


def narrow() -> bool:
    """Whether the narrow kernels run (:data:`NARROW_KERNELS`, on a CPU without AVX-512)."""
    return NARROW_KERNELS and not _numba_simd.WIDE


@numba.njit(inline="always")
def _put8(z, at, re, im):  # pragma: no cover - compiled
    # eight lanes of a block's sums of one (i, j): real parts at z[at], imaginary parts 16 further on
    vstore(z, at, re)
    vstore(z, at + 16, im)


@numba.njit(inline="always")
def _complex_step(r, m, ar, u, v, t, b, q):  # pragma: no cover - compiled
    # one step of a running complex sum of 8 lanes by b's value at q (real parts, then imaginary
    # parts 16 further on): as _products' steps, r + ar*br + u*bi and m + v*bi + t*br
    br = vload(b, q)
    bi = vload(b, q + 16)
    return vfma(vfma(r, ar, br), u, bi), vfma(vfma(m, v, bi), t, br)


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
                r0, m0 = _complex_step(r0, m0, ar, u, v, t, b, kb + j0 * bj * 32)
                r1, m1 = _complex_step(r1, m1, ar, u, v, t, b, kb + j1 * bj * 32)
                r2, m2 = _complex_step(r2, m2, ar, u, v, t, b, kb + j2 * bj * 32)
                r3, m3 = _complex_step(r3, m3, ar, u, v, t, b, kb + j3 * bj * 32)
            # (a block past the last column repeats it: the same sums, written twice)
            base_z = (chunk * rows_z + g * gz) * 32 + h
            _put8(z, base_z + (i0 * zi + j3 * zj) * 32, r3, m3)
            _put8(z, base_z + (i0 * zi + j2 * zj) * 32, r2, m2)
            _put8(z, base_z + (i0 * zi + j1 * zj) * 32, r1, m1)
            _put8(z, base_z + (i0 * zi + j0 * zj) * 32, r0, m0)


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
    thin = narrow()
    jobs = (na if thin else (na + 1) // 2) * ((nb + 3) // 4) * groups * chunks
    _backend.run_jobs(_products_narrow if thin else _products, jobs, read_only(pa), read_only(pb), z,
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
