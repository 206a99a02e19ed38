"""The product kernels' two register blocks (``functional/_numba_simd.py``, ``WIDE``): on a CPU with
AVX-512 the implicit and Winograd kernels run two 6 x 16 blocks at once (12 x 16), elsewhere one.
Both give every sum in the same order, so the results are the same bits: each case runs both
ways (whatever this machine's CPU) and is also checked against the loop reference; and the
choice follows Numba's target CPU."""

from __future__ import annotations

import numba
import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab.functional import _backend, _naive, _numba_simd
from cnnlab.functional import _numba_implicit as ni
from cnnlab.functional import _numba_implicit_grad_w as nig
from tests.functional.spies import spied
from tests.functional.test_implicit import CASES, _against_loop_reference, _args, _conv, _inputs

pytestmark = pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")

WINOGRAD_CASES = [
    # x shape, weight shape, padding, dilation: 3x3, stride 1
    ((3, 5, 9, 8), (24, 5, 3, 3), 1, 1),  # 24 filters: one block and half of another
    ((2, 20, 13, 11), (40, 20, 3, 3), 1, 1),  # 20 channels: blocks of 6 channels end unevenly
    ((4, 9, 11, 12), (16, 9, 3, 3), 0, 2),  # dilated
    ((1, 13, 6, 7), (33, 13, 3, 3), (2, 1), 1),  # one sample: a few tiles, an odd number of blocks
]


@pytest.fixture
def compiled():
    previous = _backend.set_backend("numba")  # past the small-work threshold
    yield
    _backend.set_backend(previous)


def _all_three(monkeypatch, wide, run):
    monkeypatch.setattr(_numba_simd, "WIDE", wide)
    return run()


def _bits(a):
    return np.ascontiguousarray(a).view(np.int32)


@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups", CASES)
def test_implicit_kernels_give_the_same_bits_both_ways(compiled, monkeypatch, xs, ws, stride, padding, dilation,
                                                        groups):
    x, w, b = _inputs(xs, ws, seed=3 * sum(xs) + sum(ws))
    kw = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups, "method": "implicit"}
    conv = _conv(w.ndim - 2)
    g = np.random.default_rng(5).uniform(-1, 1, conv(x, w, b, **kw).shape).astype(np.float32)
    calls = spied(monkeypatch, nig, "taps_grad_w", into=spied(monkeypatch, ni, "taps_forward"))

    def run():
        return (conv(x, w, b, **kw), *F.conv_backward(g, x, w, b, **kw)[:2])

    wide, narrow = _all_three(monkeypatch, True, run), _all_three(monkeypatch, False, run)
    assert calls["taps_forward"] >= 4 and calls["taps_grad_w"] >= 2  # (the kernels ran, both times)
    for a, c in zip(wide, narrow, strict=True):
        np.testing.assert_array_equal(_bits(a), _bits(c))
    _against_loop_reference(narrow, x, w, b, g, stride, padding, dilation, groups)


@pytest.mark.parametrize("xs, ws, padding, dilation", WINOGRAD_CASES)
def test_winograd_kernels_give_the_same_bits_both_ways(compiled, monkeypatch, xs, ws, padding, dilation):
    from cnnlab.functional import _numba_winograd as nw

    x, w, b = _inputs(xs, ws, seed=sum(xs) + 7 * sum(ws))
    kw = {"padding": padding, "dilation": dilation, "method": "winograd"}
    g = np.random.default_rng(6).uniform(-1, 1, F.conv2d(x, w, b, **kw).shape).astype(np.float32)
    calls = spied(monkeypatch, nw, "_forward", "_grad_w")

    def run():
        return (F.conv2d(x, w, b, **kw), *F.conv_backward(g, x, w, b, **kw)[:2])

    wide, narrow = _all_three(monkeypatch, True, run), _all_three(monkeypatch, False, run)
    assert calls["_forward"] >= 2 and calls["_grad_w"] >= 2  # (the Winograd kernels ran, both times)
    for a, c in zip(wide, narrow, strict=True):
        np.testing.assert_array_equal(_bits(a), _bits(c))
    s, pads, d = _args(w, 1, padding, dilation)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    ry = _naive.naive_conv(x64, w64, b.astype(np.float64), s, pads, d, 1)
    rx, rw = _naive.naive_conv_backward(g.astype(np.float64), x64, w64, s, pads, d, 1)[:2]
    for got, want in zip(narrow, (ry, rx, rw), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("name, features, expected", [
    ("haswell", "", False),
    ("skylake-avx512", "+avx512f,+avx512vl", True),
    ("generic", "+avx2,+fma", False),
])
def test_the_wide_block_follows_numbas_target_cpu(monkeypatch, name, features, expected):
    monkeypatch.setattr(numba.config, "CPU_NAME", name)
    monkeypatch.setattr(numba.config, "CPU_FEATURES", features)
    assert _numba_simd._wide_cpu() is expected


def test_the_host_cpu_decides_without_a_named_target(monkeypatch):
    """Without a named target, the host's CPU: read here from the kernel's list of its flags."""
    try:
        with open("/proc/cpuinfo") as info:
            flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), None)
    except OSError:
        flags = None
    if flags is None:
        pytest.skip("no /proc/cpuinfo flags on this system")
    monkeypatch.setattr(numba.config, "CPU_NAME", None)
    assert _numba_simd._wide_cpu() is ("avx512f" in flags)


PANEL_CASES = [
    # x shape, weight shape, stride, padding, dilation, groups
    ((2, 6, 9, 8), (48, 6, 3, 3), 1, 1, 1, 1),  # three panels of 16 filters: two at once, then one
    ((3, 5, 7, 9), (20, 5, 3, 2), 1, 0, 1, 1),  # the second panel's 4 filters
    ((2, 40, 6, 5), (40, 40, 3, 3), 1, 1, 1, 1),  # 360 taps (chunks on that route); an input gradient of 40
    ((2, 34, 8, 8), (64, 17, 3, 3), 2, 1, 1, 2),  # groups of 32 filters and 17 channels, strided
    ((2, 3, 12, 12), (32, 3, 5, 5), 1, 2, 1, 1),  # the layer made small (k5 p2)
    ((2, 6, 21), (36, 6, 5), 1, 2, 2, 1),  # 1-d, dilated: 42 positions, an odd number of blocks
]


@pytest.mark.parametrize("route", ["default", "copy", "chunks", "staged"])
@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups", PANEL_CASES)
def test_two_panels_at_once_give_the_same_bits(compiled, monkeypatch, xs, ws, stride, padding, dilation, groups,
                                                route):
    """A pair of blocks through two panels of 16 filters at once (``PANELS``, with the wide block:
    12 x 32 sums; ``GRAD_W_PANELS``: 12 taps by 32 filters in the weight gradient) adds every
    product in the order of the panels one after another: the forward and both gradients are the
    same bits either way, on the padded copy with its rows of
    padding skipped (``copy``), with the taps in chunks of 5 (sums kept between chunks) and with
    the sums stored a filter at a time (``staged``); and they agree with the loop reference."""
    from cnnlab.functional import _implicit

    monkeypatch.setattr(_implicit, "MIN_LANES", 1)
    monkeypatch.setattr(_implicit, "GRAD_X_MIN_LANES", 1)
    monkeypatch.setattr(_numba_simd, "WIDE", True)
    if route == "copy":
        monkeypatch.setattr(_implicit, "PACK_COST", 1e9)
    monkeypatch.setattr(ni, "TAP_CHUNK", 5 if route == "chunks" else ni.TAP_CHUNK)
    monkeypatch.setattr(ni, "STAGED_PITCH", 4 if route == "staged" else ni.STAGED_PITCH)
    x, w, b = _inputs(xs, ws, seed=11 * sum(xs) + sum(ws))
    kw = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups, "method": "implicit"}
    conv = _conv(w.ndim - 2)
    g = np.random.default_rng(12).uniform(-1, 1, conv(x, w, b, **kw).shape).astype(np.float32)

    def run(panels):
        monkeypatch.setattr(ni, "PANELS", panels)
        monkeypatch.setattr(nig, "GRAD_W_PANELS", panels)
        return conv(x, w, b, **kw), *F.conv_backward(g, x, w, b, **kw)[:2]

    both, one = run(True), run(False)
    for a, c in zip(both, one, strict=True):
        np.testing.assert_array_equal(_bits(a), _bits(c))
    _against_loop_reference(both, x, w, b, g, stride, padding, dilation, groups)


@pytest.mark.parametrize("cols", [16, 8])
def test_transpose_moves_a_block_unchanged(compiled, cols):
    """``transpose16`` and ``transpose8``: 16 rows of 16 (or 8) values of a flat array (rows
    ``stride`` apart) written transposed into another, 16 values a column, every value's bits
    unchanged (NaNs, infinities, signed zeros, subnormals among them), nothing else written."""
    rng = np.random.default_rng(16)
    src = rng.standard_normal(45 * 19).astype(np.float32)
    src[[3, 50, 100, 101, 200, 7]] = [np.nan, -np.inf, -0.0, 1e-45, np.inf, -np.nan]
    transpose = _numba_simd.transpose16 if cols == 16 else _numba_simd.transpose8

    @numba.njit
    def run(src, i, stride, dst, j):
        transpose(src, np.uint64(i), np.int64(stride), dst, np.uint64(j))

    for at, stride, out in ((0, 16, 0), (3, 45, 7), (19, 50, 1), (0, 8, 2)):
        if stride < cols:
            continue
        dst = np.full(300, 7.0, np.float32)
        run(src, at, stride, dst, out)
        block = np.lib.stride_tricks.as_strided(src[at:], (16, cols), (4 * stride, 4))
        np.testing.assert_array_equal(_bits(dst[out:out + 16 * cols]), _bits(block.T.reshape(-1)))
        assert (dst[:out] == 7).all() and (dst[out + 16 * cols:] == 7).all()


def test_transpose_to_writes_its_rows_apart(compiled):
    """``transpose16_to(src, i, stride, dst, j, dstride)``: ``dst[j + dstride*c + r] = src[i +
    r*stride + c]`` for ``r, c`` in 0 .. 15, the bits unchanged (NaNs, infinities, signed zeros,
    subnormals among them), nothing else written (the gaps between the rows of ``dst`` kept)."""
    rng = np.random.default_rng(17)
    src = rng.standard_normal(40 * 20).astype(np.float32)
    src[[0, 21, 60, 61, 250, 399]] = [np.nan, -np.inf, -0.0, 1e-45, np.inf, -np.nan]

    @numba.njit
    def run(src, i, stride, dst, j, dstride):
        _numba_simd.transpose16_to(src, np.uint64(i), np.uint64(stride), dst, np.uint64(j), np.uint64(dstride))

    for at, stride, out, dstride in ((0, 16, 0, 16), (5, 20, 3, 17), (21, 40, 9, 31), (0, 16, 1, 50)):
        dst = np.full(16 * dstride + 40, 7.0, np.float32)
        run(src, at, stride, dst, out, dstride)
        block = np.lib.stride_tricks.as_strided(src[at:], (16, 16), (4 * stride, 4))
        written = np.zeros(dst.size, bool)
        for c in range(16):
            row = dst[out + dstride * c:out + dstride * c + 16]
            np.testing.assert_array_equal(_bits(row), _bits(block[:, c].copy()))
            written[out + dstride * c:out + dstride * c + 16] = True
        assert (dst[~written] == 7).all()


def test_masked_store_writes_only_its_lanes(compiled):
    """``wstore_lanes(a, i, v, lo, hi)``: ``a[i + l] = v[l]`` for ``lo <= l < hi`` and nothing
    else, the bits unchanged; ``i`` may lie before the array's start where ``lo`` keeps the
    stored lanes inside it (the two-panel forward stores a second panel's lanes 4-15 so)."""
    values = np.arange(1, 17, dtype=np.float32)
    values[[2, 5, 9]] = [np.nan, -0.0, 1e-45]

    @numba.njit
    def run(dst, i, src, lo, hi):
        _numba_simd.wstore_lanes(dst, np.int64(i), _numba_simd.wload(src, 0), lo, hi)

    for at, lo, hi in ((0, 0, 16), (10, 0, 12), (-4, 4, 16), (7, 3, 9), (20, 5, 5), (5, 15, 16)):
        dst = np.full(48, 7.0, np.float32)
        run(dst, at, values, lo, hi)
        expected = np.full(48, 7.0, np.float32)
        for lane in range(lo, hi):
            expected[at + lane] = values[lane]
        np.testing.assert_array_equal(_bits(dst), _bits(expected))


TRANSPOSE_CASES = [
    # x shape, weight shape, stride, padding, dilation, groups
    ((3, 4, 9, 21), (40, 4, 3, 3), 1, 1, 1, 1),  # rows of 21: 16 in a row, then 5; a third panel of 8 filters
    ((2, 6, 24, 24), (32, 6, 5, 5), 1, 2, 1, 1),  # the layer, two images
    ((2, 32, 10, 10), (64, 16, 3, 3), 1, 1, 1, 2),  # two groups of 32 filters
    ((2, 8, 20, 18), (17, 8, 3, 3), 2, 1, 1, 1),  # strided, rows of 9 (8 in a row); 17 filters: a panel of 1
    ((2, 5, 300), (20, 5, 3), 1, 1, 1, 1),  # 1-d: runs of 512 positions end inside a row
]


@pytest.mark.parametrize("wide", [True, False])
@pytest.mark.parametrize("route", ["default", "classes", "copy"])
@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups", TRANSPOSE_CASES)
def test_weight_gradient_transposed_copy_gives_the_same_bits(compiled, monkeypatch, xs, ws, stride, padding,
                                                               dilation, groups, route, wide):
    """The weight gradient's upstream gradient copied channels-last 16 (or 8) positions by 16 filters
    at a time (``GRAD_W_TRANSPOSE``) or one value at a time: the same bits, on the classes of positions
    (``classes``: runs of positions broken at each class's edges) and on the padded copy
    (``copy``), with and without AVX-512's kernels (``wide``); and the loop reference."""
    from cnnlab.functional import _implicit

    monkeypatch.setattr(_implicit, "MIN_LANES", 1)
    monkeypatch.setattr(_implicit, "GRAD_X_MIN_LANES", 1)
    monkeypatch.setattr(_numba_simd, "WIDE", wide)
    if route == "classes":
        monkeypatch.setattr(_implicit, "PACK_COST", 0.0)
        monkeypatch.setattr(_implicit, "SEGMENT_COST", 0.0)
        monkeypatch.setattr(_implicit, "RUN_BLOCKS", False)
    if route == "copy":
        monkeypatch.setattr(_implicit, "PACK_COST", 1e9)
    x, w, b = _inputs(xs, ws, seed=5 * sum(xs) + sum(ws))
    kw = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups, "method": "implicit"}
    conv = _conv(w.ndim - 2)
    g = np.random.default_rng(13).uniform(-1, 1, conv(x, w, b, **kw).shape).astype(np.float32)
    calls = spied(monkeypatch, nig, "taps_grad_w")

    def run(transposed):
        monkeypatch.setattr(nig, "GRAD_W_TRANSPOSE", transposed)
        return F.conv_backward(g, x, w, b, **kw)

    blocks, values = run(True), run(False)
    assert calls["taps_grad_w"] >= 2
    np.testing.assert_array_equal(_bits(blocks[1]), _bits(values[1]))
    _against_loop_reference((conv(x, w, b, **kw), *blocks[:2]), x, w, b, g, stride, padding, dilation, groups)


def _fused_oracle(a: np.float32, w: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """``acc + a * w`` lane by lane with one rounding to float32 (to nearest, ties to even),
    from the exact rational sum."""
    from fractions import Fraction

    out = np.empty(acc.shape, np.float32)
    for i, (wi, ci) in enumerate(zip(w, acc, strict=True)):
        exact = Fraction(float(a)) * Fraction(float(wi)) + Fraction(float(ci))
        guess = np.float32(float(exact))
        near = [np.nextafter(guess, np.float32(-np.inf)), guess, np.nextafter(guess, np.float32(np.inf))]
        dist = [abs(Fraction(float(f)) - exact) for f in near]
        best = min(dist)
        ties = [f for f, d in zip(near, dist, strict=True) if d == best]
        out[i] = ties[0] if len(ties) == 1 else next(f for f in ties if not f.view(np.int32) & 1)
    return out


@pytest.mark.parametrize("written_out", [True, False])
def test_both_panels_step_is_two_fused_multiply_adds_of_one_read(monkeypatch, written_out):
    """``wfma2_idx``: ``c + a * v`` and ``e + a * u``, ``a`` read once at base + index and broadcast,
    each sum rounded once; written out as AVX-512 instructions (on such a CPU) or by LLVM's
    ``fma``, each compiled anew here.  Values whose unfused sums round otherwise in some lanes."""
    if written_out and not _numba_simd._wide_cpu():
        pytest.skip("no AVX-512 here")
    monkeypatch.setattr(_numba_simd, "WIDE_ASM", written_out)
    wfma2_idx, wload, wstore = _numba_simd.wfma2_idx, _numba_simd.wload, _numba_simd.wstore

    @numba.njit
    def step(c, e, arr, index, v, u, out):  # (compiled on the first call, after the switch)
        c1, e1 = wfma2_idx(wload(c, 0), wload(e, 0), arr, 2, index - 2, wload(v, 0), wload(u, 0))
        wstore(out, 0, c1)
        wstore(out, 16, e1)

    rng = np.random.default_rng(41)
    c, e, v, u = (rng.standard_normal(16).astype(np.float32) for _ in range(4))
    arr = (rng.standard_normal(9) * 3).astype(np.float32)
    out = np.full(32, np.nan, np.float32)
    step(c, e, arr, 5, v, u, out)
    want = np.concatenate([_fused_oracle(arr[5], v, c), _fused_oracle(arr[5], u, e)])
    np.testing.assert_array_equal(_bits(out), _bits(want))
    unfused = np.concatenate([arr[5] * v + c, arr[5] * u + e])  # (float32: two roundings)
    assert (_bits(unfused) != _bits(want)).any()  # (the values tell a fused sum from two roundings)


def _fused_chain(arr, first, weights, acc):
    """``acc`` plus ``arr[first + r] * weights[r]`` for r = 0, 1, ... in order, each rounded once
    (the exact oracle, a step at a time)."""
    for r, w in enumerate(weights):
        acc = _fused_oracle(arr[first + r], w, acc)
    return acc


@pytest.mark.parametrize("written_out", [True, False])
@pytest.mark.parametrize("positions, width", [(6, 3), (6, 5), (12, 5), (6, 1)])
def test_slide_adds_each_tap_fused_in_order(monkeypatch, written_out, positions, width):
    """``wfma_slide``: position ``i``'s sum plus ``a[base + index + i + r] * w[r]``, r in order,
    each rounded once; the same as ``width`` one-tap steps (written out, or by LLVM's ``fma``)."""
    if written_out and not _numba_simd._wide_cpu():
        pytest.skip("no AVX-512 here")
    monkeypatch.setattr(_numba_simd, "WIDE_ASM", written_out)
    slide, wload, wstore = _numba_simd.wfma_slide, _numba_simd.wload, _numba_simd.wstore
    widths = {1: lambda w: (wload(w, 0),), 3: lambda w: (wload(w, 0), wload(w, 16), wload(w, 32)),
              5: lambda w: (wload(w, 0), wload(w, 16), wload(w, 32), wload(w, 48), wload(w, 64))}
    sums = {6: lambda c: (wload(c, 0), wload(c, 16), wload(c, 32), wload(c, 48), wload(c, 64), wload(c, 80)),
            12: lambda c: (wload(c, 0), wload(c, 16), wload(c, 32), wload(c, 48), wload(c, 64), wload(c, 80),
                           wload(c, 96), wload(c, 112), wload(c, 128), wload(c, 144), wload(c, 160), wload(c, 176))}
    take_w, take_c = numba.njit(inline="always")(widths[width]), numba.njit(inline="always")(sums[positions])

    @numba.njit
    def step(c, arr, base, index, w, out):  # (compiled on the first call, after the switch)
        new = slide(take_c(c), arr, base, index, take_w(w))
        for i in range(len(new)):
            wstore(out, 16 * i, new[i])

    rng = np.random.default_rng(43 + positions + width)
    c = rng.standard_normal(16 * positions).astype(np.float32)
    w = (rng.standard_normal(16 * width) * 2).astype(np.float32)
    arr = (rng.standard_normal(40) * 3).astype(np.float32)
    out = np.full(16 * positions, np.nan, np.float32)
    step(c, arr, 7, 4, w, out)
    taps = w.reshape(width, 16)
    want = np.concatenate([_fused_chain(arr, 11 + i, taps, c[16 * i:16 * i + 16]) for i in range(positions)])
    np.testing.assert_array_equal(_bits(out), _bits(want))
    if width > 1:  # (the values tell the taps' order apart)
        backwards = np.concatenate([_fused_chain(arr[::-1], len(arr) - 11 - i - width, taps[::-1],
                                                 c[16 * i:16 * i + 16]) for i in range(positions)])
        assert (_bits(backwards) != _bits(want)).any()


@pytest.mark.parametrize("written_out", [True, False])
def test_base_and_index_steps_read_their_sum(monkeypatch, written_out):
    """``wfma_idx``, ``wfma2_idx``, ``wfma_run6``, ``wfma2_run6``: the input at ``base + index``
    (and the five after it), broadcast and multiplied into each sum with one rounding."""
    if written_out and not _numba_simd._wide_cpu():
        pytest.skip("no AVX-512 here")
    monkeypatch.setattr(_numba_simd, "WIDE_ASM", written_out)
    S = _numba_simd

    @numba.njit
    def steps(c, arr, base, index, v, u, out):
        a, e, vv, uu = S.wload(c, 0), S.wload(c, 16), S.wload(v, 0), S.wload(u, 0)
        S.wstore(out, 0, S.wfma_idx(a, arr, base, index, vv))
        x, y = S.wfma2_idx(a, e, arr, base, index, vv, uu)
        S.wstore(out, 16, x)
        S.wstore(out, 32, y)
        r = S.wfma_run6(a, a, a, e, e, e, arr, base, index, vv)
        for i in range(6):
            S.wstore(out, 48 + 16 * i, r[i])
        t = S.wfma2_run6(a, e, a, e, a, e, a, e, a, e, a, e, arr, base, index, vv, uu)
        for i in range(12):
            S.wstore(out, 144 + 16 * i, t[i])

    rng = np.random.default_rng(47)
    c, v, u = (rng.standard_normal(n).astype(np.float32) for n in (32, 16, 16))
    arr = (rng.standard_normal(30) * 3).astype(np.float32)
    out = np.full(336, np.nan, np.float32)
    steps(c, arr, 9, 5, v, u, out)
    a, e = c[:16], c[16:]
    want = [_fused_oracle(arr[14], v, a), _fused_oracle(arr[14], v, a), _fused_oracle(arr[14], u, e)]
    want += [_fused_oracle(arr[14 + i], v, a if i < 3 else e) for i in range(6)]
    want += [_fused_oracle(arr[14 + i // 2], (v, u)[i % 2], (a, e)[i % 2]) for i in range(12)]
    np.testing.assert_array_equal(_bits(out), _bits(np.concatenate(want)))


@pytest.mark.parametrize("xs, ws, padding, dilation", [
    ((2, 16, 12, 12), (32, 16, 5, 5), 2, 1),  # the layer in small: rows of 12, rows of 5 taps
    ((2, 12, 6, 18), (16, 12, 7, 7), 3, 1),  # rows of 7 taps: five at once, then two alone
    ((3, 10, 12, 6), (24, 10, 3, 4), 1, 1),  # rows of 4 taps: three at once, then one
    ((2, 16, 12, 12), (16, 16, 3, 3), 1, 2),  # dilated: taps two apart, one at a time
    ((2, 8, 12, 12), (32, 8, 3, 3), 1, 1),  # two panels, rows of 3 taps: the forward's blocks a row at a time
    ((3, 9, 7, 14), (40, 9, 3, 3), 1, 1),  # rows of 14 positions: some blocks runs, some not; 40 filters
])
def test_runs_of_positions_by_rows_of_taps(monkeypatch, compiled, xs, ws, padding, dilation):
    """Blocks that are runs of positions take a row of taps at a time (one panel: rows of five or
    three; two panels: rows of three; the forward, and the input gradient on the bordered copy
    where :func:`_implicit_grad_x._runs_pay` says so): the same bits as the input gradient by classes,
    and the loop reference; each case both ways (WIDE)."""
    from cnnlab.functional import _implicit, _implicit_grad_x

    monkeypatch.setattr(_implicit, "MIN_LANES", 1)
    monkeypatch.setattr(_implicit, "GRAD_X_MIN_LANES", 1)
    x, w, b = _inputs(xs, ws, seed=sum(xs) + 3 * sum(ws))
    kw = {"stride": 1, "padding": padding, "dilation": dilation, "method": "implicit"}
    g = np.random.default_rng(17).uniform(-1, 1, F.conv2d(x, w, b, **kw).shape).astype(np.float32)
    real, chosen, pack_cost = _implicit_grad_x._runs_pay, [], _implicit.PACK_COST

    def seen(*args):
        chosen.append(real(*args))
        return chosen[-1]

    monkeypatch.setattr(_implicit_grad_x, "_runs_pay", seen)
    for wide in (True, False):
        monkeypatch.setattr(_numba_simd, "WIDE", wide)
        monkeypatch.setattr(_implicit, "RUN_BLOCKS", True)
        chosen.clear()
        y = F.conv2d(x, w, b, **kw)
        copies, padded_input = [], _implicit._padded_input

        def copy(a, pads, copies=copies, padded_input=padded_input):
            copies.append(np.shares_memory(a, g))  # (a copy of the upstream gradient, or of the input)
            return padded_input(a, pads)

        monkeypatch.setattr(_implicit, "_padded_input", copy)
        gx, gw, _ = F.conv_backward(g, x, w, b, **kw)
        runs = wide and ws[1] > _implicit.PAIR_LANES and xs[-1] % 6 == 0 and dilation == 1
        assert chosen == [runs]
        with_runs = sum(copies)
        copies.clear()
        monkeypatch.setattr(_implicit, "RUN_BLOCKS", False)
        monkeypatch.setattr(_implicit, "PACK_COST", 0.0)  # (by classes, whatever the copy's cost)
        classes = F.conv_backward(g, x, w, b, **kw)[0]
        monkeypatch.setattr(_implicit, "PACK_COST", pack_cost)
        monkeypatch.setattr(_implicit, "_padded_input", padded_input)
        if runs:  # (the upstream gradient's bordered copy, which the classes do without)
            assert (with_runs, sum(copies)) == (1, 0)
        np.testing.assert_array_equal(_bits(gx), _bits(classes))
        _against_loop_reference((y, gx, gw), x, w, b, g, 1, padding, dilation, 1)


@pytest.mark.parametrize("xs, ws, padding", [
    ((2, 16, 14, 14), (16, 16, 5, 5), 0),  # LeNet-5's second layer: rows of 10, two blocks each
    ((2, 12, 9, 11), (40, 12, 3, 3), 1),  # two panels' forward as it is; the input gradient's rows of 11
    ((3, 9, 7, 7), (16, 9, 1, 1), 0),  # 1x1: a whole image one row of 49
])
def test_rows_retiled_into_runs_give_the_same_bits(monkeypatch, compiled, xs, ws, padding):
    """Rows of positions that do not fill whole blocks are re-tiled into runs where a call has one
    panel of filters (:func:`cnnlab.functional._implicit.run_phases`): the forward and the input gradient give
    the same bits as without (``RUN_BLOCKS`` off), and the loop reference's values."""
    from cnnlab.functional import _implicit, _pairs

    monkeypatch.setattr(_numba_simd, "WIDE", True)
    x, w, b = _inputs(xs, ws, seed=sum(xs) + sum(ws))
    kw = {"stride": 1, "padding": padding, "dilation": 1, "method": "implicit"}
    g = np.random.default_rng(5).uniform(-1, 1, F.conv2d(x, w, b, **kw).shape).astype(np.float32)
    real, made = _pairs.aligned_runs, []

    def seen(*args):
        made.append(real(*args))
        return made[-1]

    monkeypatch.setattr(_pairs, "aligned_runs", seen)
    y = F.conv2d(x, w, b, **kw)
    gx, gw, _ = F.conv_backward(g, x, w, b, **kw)
    assert any(m is not None for m in made)  # (re-tiled)
    monkeypatch.setattr(_implicit, "RUN_BLOCKS", False)
    made.clear()
    y0 = F.conv2d(x, w, b, **kw)
    gx0 = F.conv_backward(g, x, w, b, **kw)[0]
    assert made == []
    np.testing.assert_array_equal(_bits(y), _bits(y0))
    np.testing.assert_array_equal(_bits(gx), _bits(gx0))
    _against_loop_reference((y, gx, gw), x, w, b, g, 1, padding, 1, 1)


@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups", [
    ((3, 7, 9, 8), (33, 7, 3, 3), 1, 1, 1, 1),  # 63 taps: 5 runs of 12 and one of 6 (4 + 2 stand-ins)
    ((2, 5, 12, 11), (16, 5, 5, 5), 1, 2, 1, 1),  # 5x5: classes of positions with 2-5 rows of taps
    ((2, 6, 9, 8), (12, 2, 3, 3), 1, 1, 1, 3),  # groups
    ((3, 7, 19), (16, 7, 3), 1, 2, 3, 1),  # 1-d, dilated
    ((2, 5, 9, 10), (48, 5, 3, 3), 2, 1, 1, 1),  # stride 2, 3 panels: a pair by 3 taps, one by 4
    ((2, 6, 8, 7), (64, 3, 3, 2), 1, (1, 0), 1, 2),  # 2 groups of 2 panels each (a pair per group)
])
def test_weight_gradient_by_four_taps_gives_the_same_bits(compiled, monkeypatch, xs, ws, stride, padding, dilation,
                                                          groups):
    """Without AVX-512 the weight gradient's product runs its taps 4 at a time (``GRAD_W_FOUR_TAPS``,
    a run's last taps past its end summed into the scratch row), and pairs of panels 3 taps at a
    time (``GRAD_W_THREE_BY_TWO``): every tap's sums as the 6 x 16 block's, in the same order, so
    the same bits; and the loop reference's values."""
    x, w, b = _inputs(xs, ws, seed=11 * sum(xs) + sum(ws))
    kw = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups, "method": "implicit"}
    conv = _conv(w.ndim - 2)
    g = np.random.default_rng(9).uniform(-1, 1, conv(x, w, b, **kw).shape).astype(np.float32)
    monkeypatch.setattr(_numba_simd, "WIDE", False)
    calls = spied(monkeypatch, nig, "taps_grad_w")
    runs = {}
    for four, three in ((True, True), (True, False), (False, False)):
        monkeypatch.setattr(nig, "GRAD_W_FOUR_TAPS", four)
        monkeypatch.setattr(nig, "GRAD_W_THREE_BY_TWO", three)
        runs[four, three] = (conv(x, w, b, **kw), *F.conv_backward(g, x, w, b, **kw)[:2])
    assert calls["taps_grad_w"] >= 3
    for key in ((True, True), (True, False)):
        np.testing.assert_array_equal(_bits(runs[key][2]), _bits(runs[False, False][2]))
    _against_loop_reference(runs[True, True], x, w, b, g, stride, padding, dilation, groups)


NARROW_ONLY = """
import json
import numpy as np
from cnnlab.functional import _numba_simd

_numba_simd.WIDE = False  # (a CPU without AVX-512, whatever this one is, before the kernels' module is imported)
import cnnlab.functional as F
from cnnlab.functional import _backend, _numba_implicit as ni, _numba_implicit_grad_w as nw, _numba_panels

_backend.set_backend("numba")
rng = np.random.default_rng(0)
x = rng.standard_normal((4, 32, 12, 12)).astype(np.float32)
for w, groups in ((rng.standard_normal((64, 32, 3, 3)).astype(np.float32), 1),
                  (rng.standard_normal((16, 8, 3, 3)).astype(np.float32), 4)):  # (spans 1 and 2)
    y = F.conv2d(x, w, padding=1, groups=groups, method="implicit")
    F.conv_backward(np.ones_like(y), x, w, None, padding=1, groups=groups, method="implicit")
print(json.dumps({"two_panels": len(_numba_panels._two_panels.signatures),
                  "forward": [ni._taps_forward.py_func.__name__, len(ni._taps_forward.signatures),
                              ni._taps_forward_pairs().py_func.__name__],
                  "grad_w": [nw._taps_grad_w.py_func.__name__, len(nw._taps_grad_w.signatures),
                             nw._taps_grad_w_pairs().py_func.__name__]}))
"""


def test_a_narrow_cpu_compiles_no_wide_block_code():
    """Without AVX-512 the product kernels are compiled without the wide block's paths, which Numba
    prunes before compiling (they took a cold start's first implicit forward 12.8-15.5 s
    instead of 3.5-3.8): the two-panel part those paths call is never compiled, and the kernels that ran are
    this width's, under their plain names."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = str(Path(__file__).resolve().parents[2] / "src")
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", NARROW_ONLY], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["two_panels"] == 0
    assert got["forward"] == ["_taps_forward", 1, "_taps_forward_pairs"]
    assert got["grad_w"] == ["_taps_grad_w", 1, "_taps_grad_w_pairs"]


def test_the_other_width_is_its_own_kernel(compiled, monkeypatch):
    """The block width this CPU lacks is compiled on first use under a name of its own (its own
    entry of Numba's disk cache), and gives the same bits as this CPU's."""
    x, w, _ = _inputs((2, 16, 9, 9), (32, 16, 3, 3), seed=8)
    runs = {}
    for wide in (ni._WIDE_AT_IMPORT, not ni._WIDE_AT_IMPORT):
        monkeypatch.setattr(_numba_simd, "WIDE", wide)
        calls = spied(monkeypatch, ni, "taps_forward")
        runs[wide] = F.conv2d(x, w, padding=1, method="implicit")
        assert calls["taps_forward"] >= 1
    other = ni.width_variant(ni._make_taps_forward, "_taps_forward", 1, not ni._WIDE_AT_IMPORT)
    assert other is not ni._taps_forward and other.signatures
    assert other.py_func.__name__ == "_taps_forward_" + ("narrow" if ni._WIDE_AT_IMPORT else "wide")
    np.testing.assert_array_equal(_bits(runs[True]), _bits(runs[False]))
