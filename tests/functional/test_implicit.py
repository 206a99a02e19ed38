"""The implicit-GEMM method (``functional/_implicit.py`` and its kernels in ``_numba_implicit.py``,
``_numba_simd.py``) against the loop reference: the forward and both gradients for the shapes
its register block splits unevenly, strides, dilations, groups, paddings past the kernel's
reach, 1-d and 3-d problems; the fall-backs (non-finite weights, other dtypes, no Numba); the
automatic rule; and the vector operations themselves."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab.functional import (
    _backend,
    _conv_backward_kernels,
    _conv_kernels,
    _fft_conv,
    _implicit,
    _implicit_grad_w,
    _implicit_grad_x,
    _naive,
)
from cnnlab.functional._args import ntuple, padding_pairs
from tests.functional.spies import spied

pytestmark = pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")

CASES = [
    # x shape, weight shape, stride, padding, dilation, groups
    ((3, 4, 7, 9), (5, 4, 3, 3), 1, 0, 1, 1),  # 5 filters: part of a block of 16; 105 positions
    ((2, 6, 8, 7), (17, 6, 3, 2), 1, 1, 1, 1),  # 17 filters: a block and one more
    ((2, 5, 9, 8), (33, 5, 3, 3), 2, 1, 1, 1),  # strided: the input gradient in 4 phases
    ((2, 6, 11, 10), (18, 6, 3, 3), 1, ((2, 0), (1, 3)), (2, 1), 1),  # asymmetric padding, dilated
    ((2, 6, 9, 8), (12, 2, 3, 3), 1, 1, 1, 3),  # groups of 2 channels and 4 filters
    ((1, 3, 5, 5), (20, 3, 3, 3), 1, (4, 5), 1, 1),  # padding past the kernel's reach; one sample
    ((4, 6, 30), (10, 3, 5), 2, 3, 1, 2),  # 1-d, strided, grouped
    ((3, 7, 19), (16, 7, 3), 1, 2, 3, 1),  # 1-d, dilated
    ((2, 4, 5, 6, 7), (20, 4, 3, 2, 3), 1, 1, 1, 1),  # 3-d
    ((2, 4, 5, 6, 7), (9, 4, 2, 3, 3), (1, 2, 1), (1, 0, 2), 1, 1),  # 3-d, strided
    ((2, 3, 10, 11), (16, 3, 2, 2), 3, 0, 1, 1),  # stride 3 > kernel 2: phases without taps (zeros)
    ((2, 4, 12, 13), (16, 4, 3, 3), (2, 3), (1, 2), (2, 1), 1),  # strided and dilated
    ((2, 9, 9, 8), (8, 9, 3, 3), 2, 1, 1, 1),  # 9 channels: the input gradient implicit by rule too
    ((2, 16, 7, 6), (16, 8, 3, 3), 1, 1, 1, 2),  # groups of 8 channels and 8 filters
    ((2, 120, 6, 5), (20, 120, 3, 3), 1, 1, 1, 1),  # 1,080 taps: the forward in chunks (TAP_CHUNK)
    ((2, 8, 7, 6), (260, 8, 3, 3), 2, 1, 1, 1),  # the input gradient's 4-tap phase in chunks (1,040 taps)
]


def _args(w, stride, padding, dilation):
    n = w.ndim - 2
    return ntuple("", "", stride, n, minimum=1), padding_pairs("", padding, n), ntuple("", "", dilation, n, minimum=1)


def _conv(n):
    return {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[n]


def _inputs(xs, ws, seed):
    g = np.random.default_rng(seed)
    x = g.uniform(-2, 2, xs).astype(np.float32)
    w = g.uniform(-2, 2, ws).astype(np.float32)
    b = g.uniform(-2, 2, ws[0]).astype(np.float32)
    return x, w, b


def _against_loop_reference(results, x, w, b, g, stride, padding, dilation, groups):
    """``(y, gx, gw)`` of a float32 layer against the float64 loop reference (``g``: the upstream
    gradient of the backward)."""
    s, pads, d = _args(w, stride, padding, dilation)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    ry = _naive.naive_conv(x64, w64, b.astype(np.float64), s, pads, d, groups)
    rx, rw = _naive.naive_conv_backward(g.astype(np.float64), x64, w64, s, pads, d, groups)[:2]
    for got, want in zip(results, (ry, rx, rw), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    return ry


@pytest.fixture
def compiled():
    previous = _backend.set_backend("numba")  # past the small-work threshold
    yield
    _backend.set_backend(previous)


@pytest.fixture
def skipping(monkeypatch):
    """The padding skipped wherever the definition allows, whatever the costs (PACK_COST) or runs
    of positions (RUN_BLOCKS)."""
    monkeypatch.setattr(_implicit, "PACK_COST", 0.0)
    monkeypatch.setattr(_implicit, "SEGMENT_COST", 0.0)
    monkeypatch.setattr(_implicit, "RUN_BLOCKS", False)


def _spied(monkeypatch):
    """Counts of the implicit kernels' calls."""
    from cnnlab.functional import _numba_implicit as ni
    from cnnlab.functional import _numba_implicit_grad_w as nw

    return spied(monkeypatch, nw, "taps_grad_w", into=spied(monkeypatch, ni, "taps_forward"))


@pytest.mark.parametrize("rule", ["every", "library"])
@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups", CASES)
def test_matches_the_loop_reference(compiled, monkeypatch, xs, ws, stride, padding, dilation, groups, rule):
    """Each case twice: with every input gradient implicit (``MIN_LANES`` and ``GRAD_X_MIN_LANES``
    1, so the phases of small strided cases run too), and with the library's rule; 16 lanes a
    block throughout (the blocks of 8 filters at 2 positions, and their calls, are test_pairs.py's)."""
    if rule == "every":
        monkeypatch.setattr(_implicit, "MIN_LANES", 1)
        monkeypatch.setattr(_implicit, "GRAD_X_MIN_LANES", 1)
    monkeypatch.setattr(_implicit, "PAIR_LANES", 0)
    x, w, b = _inputs(xs, ws, seed=sum(xs) + sum(ws))
    s, pads, d = _args(w, stride, padding, dilation)
    kw = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups, "method": "implicit"}
    calls = _spied(monkeypatch)
    y = _conv(w.ndim - 2)(x, w, b, **kw)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    ref = _naive.naive_conv(x64, w64, b.astype(np.float64), s, pads, d, groups)
    assert y.dtype == np.float32 and y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    g = np.random.default_rng(7).uniform(-1, 1, y.shape).astype(np.float32)
    gx, gw, gb = F.conv_backward(g, x, w, b, **kw)
    rx, rw = _naive.naive_conv_backward(g.astype(np.float64), x64, w64, s, pads, d, groups)[:2]
    for got, want in ((gx, rx), (gw, rw)):
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    # the forward twice (once per call above), the input gradient once (all phases of the stride
    # in one call), the weight gradient once: each one call for every group, except where a
    # group's lanes (filters for the forward, input channels for the input gradient) fill more
    # than one register block (then a call per group)
    # (fewer than GRAD_X_MIN_LANES input channels per group: the input gradient by col2im)
    def per_call(lanes):
        return 1 if groups == 1 or lanes <= 16 else groups

    assert calls["taps_grad_w"] == 1
    assert calls["taps_forward"] == 2 * per_call(w.shape[0] // groups) + (
        0 if w.shape[1] < _implicit.GRAD_X_MIN_LANES else per_call(w.shape[1]))


@pytest.mark.parametrize("route", ["skip", "copy"])
@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups", CASES)
def test_padding_skipped_or_copied_gives_the_same_values(compiled, monkeypatch, xs, ws, stride, padding, dilation,
                                                         groups, route):
    """Every case with the padding skipped by classes of positions wherever the definition allows
    (``PACK_COST`` and ``SEGMENT_COST`` 0), and with padded copies of the input and of the upstream
    gradient instead (``PACK_COST`` huge), every input gradient implicit: all three results
    against the loop reference."""
    monkeypatch.setattr(_implicit, "MIN_LANES", 1)
    monkeypatch.setattr(_implicit, "GRAD_X_MIN_LANES", 1)
    monkeypatch.setattr(_implicit, "PAIR_LANES", 0)  # (pairs of positions take the copy: see test_pairs.py)
    monkeypatch.setattr(_implicit, "PACK_COST", 0.0 if route == "skip" else 1e30)
    monkeypatch.setattr(_implicit, "SEGMENT_COST", 0.0 if route == "skip" else 1e30)
    monkeypatch.setattr(_implicit, "RUN_BLOCKS", route != "skip")  # (the copy that makes blocks runs)
    copies = spied(monkeypatch, _implicit, "_padded_input")
    x, w, b = _inputs(xs, ws, seed=sum(xs) + 3 * sum(ws))
    s, pads, d = _args(w, stride, padding, dilation)
    kw = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups, "method": "implicit"}
    y = _conv(w.ndim - 2)(x, w, b, **kw)
    g = np.random.default_rng(9).uniform(-1, 1, y.shape).astype(np.float32)
    gx, gw, _ = F.conv_backward(g, x, w, b, **kw)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    ry = _naive.naive_conv(x64, w64, b.astype(np.float64), s, pads, d, groups)
    rx, rw = _naive.naive_conv_backward(g.astype(np.float64), x64, w64, s, pads, d, groups)[:2]
    for got, want in ((y, ry), (gx, rx), (gw, rw)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    padded = any(lo or hi for lo, hi in pads)
    if route == "copy" and padded:
        assert copies["_padded_input"] >= 1
    tapless = any(lo >= d_ * (k - 1) + 1 or hi >= d_ * (k - 1) + 1 for (lo, hi), d_, k in zip(pads, d, w.shape[2:],
                                                                                               strict=True))
    if route == "skip" and not tapless:
        assert copies["_padded_input"] == 0


@pytest.mark.parametrize("chunk", [1, 5, 64])
@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups", [CASES[i] for i in (0, 1, 2, 4, 8, 14, 15)])
def test_tap_chunks_change_no_value(compiled, monkeypatch, xs, ws, stride, padding, dilation, groups, chunk):
    """The forward's taps a chunk at a time (``TAP_CHUNK``, the running sums kept between chunks)
    add the same products in the same order as all taps at once: the forward and the input
    gradient are the same to the bit for any chunk (1: every tap a chunk; 5 and 64: chunks split
    evenly with a shorter remainder of taps), and agree with the loop reference."""
    from cnnlab.functional import _numba_implicit as ni

    monkeypatch.setattr(_implicit, "MIN_LANES", 1)
    monkeypatch.setattr(_implicit, "GRAD_X_MIN_LANES", 1)
    x, w, b = _inputs(xs, ws, seed=sum(xs) * 3 + sum(ws))
    kw = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups, "method": "implicit"}
    g = np.random.default_rng(8).uniform(-1, 1, _conv(w.ndim - 2)(x, w, b, **kw).shape).astype(np.float32)
    results = []
    for taps in (10**9, chunk):
        monkeypatch.setattr(ni, "TAP_CHUNK", taps)
        y = _conv(w.ndim - 2)(x, w, b, **kw)
        results.append((y, F.conv_backward(g, x, w, b, **kw)[0]))
    (y0, gx0), (y1, gx1) = results
    np.testing.assert_array_equal(y1, y0)
    np.testing.assert_array_equal(gx1, gx0)
    s, pads, d = _args(w, stride, padding, dilation)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    ref = _naive.naive_conv(x64, w64, b.astype(np.float64), s, pads, d, groups)
    rx = _naive.naive_conv_backward(g.astype(np.float64), x64, w64, s, pads, d, groups)[0]
    np.testing.assert_allclose(y1, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    np.testing.assert_allclose(gx1, rx, rtol=1e-5, atol=1e-5 * np.abs(rx).max())


@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups", [CASES[i] for i in (0, 1, 2, 4, 6, 8, 10, 15)])
def test_staged_stores_change_no_value(compiled, monkeypatch, xs, ws, stride, padding, dilation, groups):
    """Sums stored a filter at a time after each phase of a job (``STAGED_PITCH`` 4: every
    problem) or a block at a time (``STAGED_PITCH`` huge: none): the forward and the input
    gradient are the same to the bit, padding entries and phases without taps included."""
    from cnnlab.functional import _numba_implicit as ni

    monkeypatch.setattr(_implicit, "MIN_LANES", 1)
    monkeypatch.setattr(_implicit, "GRAD_X_MIN_LANES", 1)
    x, w, b = _inputs(xs, ws, seed=sum(xs) * 5 + sum(ws))
    kw = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups, "method": "implicit"}
    g = np.random.default_rng(9).uniform(-1, 1, _conv(w.ndim - 2)(x, w, b, **kw).shape).astype(np.float32)
    results = []
    for pitch in (10**9, 4):
        monkeypatch.setattr(ni, "STAGED_PITCH", pitch)
        results.append((_conv(w.ndim - 2)(x, w, b, **kw), F.conv_backward(g, x, w, b, **kw)[0]))
    np.testing.assert_array_equal(results[1][0], results[0][0])
    np.testing.assert_array_equal(results[1][1], results[0][1])


def test_staged_stores_for_planes_of_4_kb(compiled, monkeypatch):
    """The input gradient of a stride-2 layer on 32x32 planes (4 KB apart: staged by the
    default rule) against the loop reference."""
    x, w, b = _inputs((2, 8, 32, 32), (16, 8, 3, 3), seed=21)
    kw = {"stride": 2, "padding": 1, "method": "implicit"}
    g = np.random.default_rng(3).uniform(-1, 1, F.conv2d(x, w, b, **kw).shape).astype(np.float32)
    gx = F.conv_backward(g, x, w, b, **kw)[0]
    pads, two, one = ((1, 1), (1, 1)), (2, 2), (1, 1)
    rx = _naive.naive_conv_backward(g.astype(np.float64), x.astype(np.float64), w.astype(np.float64), two, pads,
                                    one, 1)[0]
    np.testing.assert_allclose(gx, rx, rtol=1e-5, atol=1e-5 * np.abs(rx).max())


@pytest.mark.parametrize("tap_split", [0, 10**6])
@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups", [
    ((3, 4, 7, 9), (5, 4, 3, 3), 1, 0, 1, 1),
    ((2, 6, 11, 10), (18, 6, 3, 3), 1, ((2, 0), (1, 3)), (2, 1), 1),
    ((5, 8, 16, 14), (20, 8, 3, 3), 1, 1, 1, 1),  # 1,120 positions: 3 runs of GRAD_W_JOB
    ((2, 6, 9, 8), (12, 2, 3, 3), 1, 1, 1, 3),
])
def test_weight_gradient_jobs_split_positions_or_taps(compiled, monkeypatch, xs, ws, stride, padding, dilation,
                                                      groups, tap_split):
    """The weight gradient with its jobs over runs of positions only (``GRAD_W_TAP_SPLIT`` 0:
    partial sums per thread) and with the taps shared out between the threads as well (every
    case below the threshold), against the loop reference."""
    from cnnlab.functional import _numba_implicit_grad_w as nw

    monkeypatch.setattr(nw, "GRAD_W_TAP_SPLIT", tap_split)
    x, w, b = _inputs(xs, ws, seed=sum(xs) + 2 * sum(ws))
    kw = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups, "method": "implicit"}
    g = np.random.default_rng(6).uniform(-1, 1, F.conv2d(x, w, b, **kw).shape).astype(np.float32)
    gw = F.conv_backward(g, x, w, b, **kw)[1]
    s, pads, d = _args(w, stride, padding, dilation)
    rw = _naive.naive_conv_backward(g.astype(np.float64), x.astype(np.float64), w.astype(np.float64), s, pads, d,
                                    groups)[1]
    np.testing.assert_allclose(gw, rw, rtol=1e-5, atol=1e-5 * np.abs(rw).max())


@pytest.mark.parametrize("tail", [0, 1, 4])
def test_weight_gradient_tail_runs_keep_their_own_sums(compiled, monkeypatch, tail):
    """The last runs of positions go to whichever thread is free, each into sums of its own
    (``GRAD_W_TAIL``): the weight gradient agrees with the loop reference, and repeated calls,
    whose threads take the tail in whatever order, give the same bits."""
    from cnnlab.functional import _numba_implicit_grad_w as nw

    monkeypatch.setattr(nw, "GRAD_W_TAIL", tail)
    x, w, b = _inputs((20, 8, 24, 22), (20, 8, 3, 3), seed=12)  # 10,560 positions: 21 runs
    g = np.random.default_rng(4).uniform(-1, 1, (20, 20, 24, 22)).astype(np.float32)
    kw = {"padding": 1, "method": "implicit"}
    first = F.conv_backward(g, x, w, b, **kw)[1]
    for _ in range(5):
        np.testing.assert_array_equal(F.conv_backward(g, x, w, b, **kw)[1], first)
    pads, one = ((1, 1), (1, 1)), (1, 1)
    rw = _naive.naive_conv_backward(g.astype(np.float64), x.astype(np.float64), w.astype(np.float64), one, pads,
                                    one, 1)[1]
    np.testing.assert_allclose(first, rw, rtol=1e-5, atol=1e-5 * np.abs(rw).max())


def test_weight_gradient_tail_sums_do_not_depend_on_the_thread(compiled, monkeypatch):
    """The tail runs taken all by one thread, then all by the other (the thread that is to miss
    them held back until they are done): the same bits."""
    import threading

    from cnnlab.functional import _numba_implicit_grad_w as nw

    if _backend.get_num_threads() < 2:
        pytest.skip("needs two threads")
    monkeypatch.setattr(nw, "GRAD_W_TAIL", 4)
    x, w, b = _inputs((20, 8, 24, 22), (20, 8, 3, 3), seed=13)  # 21 runs, the last 4 shared
    g = np.random.default_rng(5).uniform(-1, 1, (20, 20, 24, 22)).astype(np.float32)
    real = nw._taps_grad_w
    results = []
    for held in (0, 1):
        done, tails = threading.Event(), []

        def kernel(*a, held=held, done=done, tails=tails):
            first, thread, tail_start = a[-3], a[-1], a[13]  # (first_job, thread, tail_start)
            if thread == held and first < tail_start:
                assert done.wait(timeout=60)
            real(*a)
            if first >= tail_start:
                tails.append(thread)
                if len(tails) == 4:
                    done.set()

        monkeypatch.setattr(nw, "_taps_grad_w", kernel)
        results.append(F.conv_backward(g, x, w, b, padding=1, method="implicit")[1])
        assert tails == [1 - held] * 4
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize("big, rows, taps, cols", [(1, 5, 7, 16), (1, 33, 20, 16), (3, 16, 9, 16), (4, 17, 9, 16),
                                                   (1, 13, 11, 6), (2, 6, 4, 6)])
def test_pack_lays_out_the_register_blocks(compiled, big, rows, taps, cols):
    """``pack(src, flat, cols)[((r // cols) * A + a) * nt + j) * cols + r % cols] == src[a, r,
    flat[j]]``, zeros past the last row: checked value by value against the index formula, for
    taps in a shuffled subset and the order given."""
    from cnnlab.functional import _numba_implicit as ni

    g = np.random.default_rng(rows * taps + big)
    src = g.uniform(-2, 2, (big, rows, taps)).astype(np.float32)
    flat = g.permutation(taps)[: max(1, taps - 2)]
    out = ni.pack(src, flat, cols)
    blocks = -(-rows // cols)
    assert out.shape == (blocks * cols * big * flat.size,) and out.dtype == np.float32
    for r in range(blocks * cols):
        for a in range(big):
            for j, t in enumerate(flat):
                want = src[a, r, t] if r < rows else 0.0
                assert out[(((r // cols) * big + a) * flat.size + j) * cols + r % cols] == want


@pytest.mark.parametrize("xs, ws, stride, padding, groups", [
    ((2, 9, 9, 8), (20, 9, 3, 3), 2, 1, 1),  # 9 classes forward, 4 phases of the stride backward
    ((2, 16, 7, 6), (16, 8, 3, 3), 1, 1, 2),  # groups: each group's share of one packing
    ((1, 20, 6, 7), (24, 20, 5, 3), 1, (2, 1), 1),  # two panels of filters; the input gradient's 20 channels
])
def test_classes_share_one_packing_of_every_tap(compiled, skipping, monkeypatch, xs, ws, stride, padding, groups):
    """The forward's classes of positions and the input gradient's classes of cells read one
    packing of every tap (each through its taps' rows, ``wtap``), not one of their own: each call
    of ``pack`` packs all ``T`` taps of its weights (``C_g * K`` for the forward, ``K`` for the
    input gradient, whose rows are its filters'), and the layer still gives the loop reference's
    values with more than one class."""
    from cnnlab.functional import _numba_implicit as ni

    packed, tables = [], []
    pack, taps_forward = ni.pack, ni.taps_forward

    def spy_pack(src, flat, cols=ni.COLS):
        packed.append((src.shape, np.asarray(flat).copy()))
        return pack(src, flat, cols)

    def spy_forward(*args, **kwargs):
        tables.append(args[7])  # (dstart: the classes)
        return taps_forward(*args, **kwargs)

    monkeypatch.setattr(ni, "pack", spy_pack)
    monkeypatch.setattr(ni, "taps_forward", spy_forward)
    monkeypatch.setattr(_implicit, "PAIR_LANES", 0)  # (one call each: the pairs' are test_pairs.py's)
    x, w, b = _inputs(xs, ws, 5)
    kw = {"stride": stride, "padding": padding, "groups": groups, "method": "implicit"}
    y = F.conv2d(x, w, b, **kw)
    g = np.random.default_rng(6).uniform(-2, 2, y.shape).astype(np.float32)
    gx, gw, _ = F.conv_backward(g, x, w, b, **kw)
    assert len(tables) == 3 and all(len(d) > 2 for d in tables)  # (forward twice, input gradient: classes)
    og = ws[0] // groups
    assert {shape[-1] for shape, _ in packed} == {ws[1] * ws[2] * ws[3], ws[2] * ws[3]}
    for shape, flat in packed:
        np.testing.assert_array_equal(flat, np.arange(shape[-1]))  # (every tap, in order)
        assert shape[0] in (groups, groups * og)  # (forward: a row of taps a group; input gradient: every filter's)
    _against_loop_reference((y, gx, gw), x, w, b, g, stride, padding, 1, groups)


def test_packing_plans_kept_by_the_tables_identity(compiled, monkeypatch):
    """``pack_phases`` of the cached tables' read-only taps keeps their plan (``_memo``): the same
    layout as from a list of the same taps (computed afresh), for the same taps again, and for other
    read-only taps with the same values; a full memo starts afresh."""
    from cnnlab.functional import _numba_implicit as ni

    g = np.random.default_rng(31)
    src = g.uniform(-2, 2, (1, 20, 9)).astype(np.float32)

    def frozen(*lists):
        arrays = tuple(np.array(f, np.int64) for f in lists)
        for a in arrays:
            a.flags.writeable = False
        return arrays

    taps = ([0, 1, 2, 3, 4, 5, 6, 7, 8], [4, 5, 7, 8], [1, 2])
    monkeypatch.setattr(ni, "_memos", {})
    want = ni.pack_phases(src, [list(t) for t in taps])
    assert ni._memos == {}  # (a list of lists: nothing kept)
    first = frozen(*taps)
    for flats in (first, first, frozen(*taps)):
        got = ni.pack_phases(src, flats)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    assert len(ni._memos) == 2
    other = frozen([8, 0], [3])  # (other taps, other layout)
    got = ni.pack_phases(src, other)
    np.testing.assert_array_equal(got[0], ni.pack_phases(src, [[8, 0], [3]])[0])
    monkeypatch.setattr(ni, "MEMO_ENTRIES", 3)
    ni.pack_phases(src, frozen([2]))
    assert len(ni._memos) == 1


def test_a_kept_answer_needs_the_same_read_only_tables(monkeypatch):
    """``_memo`` answers from what it kept only for the very tables it kept, still read-only: a
    table made writeable again (its values may have changed) is computed afresh."""
    from cnnlab.functional import _numba_implicit as ni

    monkeypatch.setattr(ni, "_memos", {})
    table = np.arange(5, dtype=np.int64)
    table.flags.writeable = False
    made: list[int] = []

    def make():
        made.append(int(table.sum()))
        return made[-1]

    assert ni._memo((table,), ("x",), make) == 10 and ni._memo((table,), ("x",), make) == 10
    assert made == [10]  # (kept)
    assert ni._memo((table,), ("y",), make) == 10 and made == [10, 10]  # (other values: afresh)
    table.flags.writeable = True
    table[0] = 100
    assert ni._memo((table,), ("x",), make) == 110 and made == [10, 10, 110]
    assert ni._memo((table.copy(),), ("x",), lambda: -1) == -1  # (a writeable copy: never kept)


@pytest.mark.parametrize("wide", [False, True])
@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("count, out_ch, taps, rows, groups", [
    (1, 16, 12, 12, 1), (2, 20, 10, 12, 1), (3, 37, 7, 12, 1), (2, 64, 288, 288, 1), (8, 64, 288, 289, 1),
    (2, 8, 10, 12, 3), (3, 20, 7, 9, 2), (1, 48, 40, 41, 1), (2, 40, 35, 36, 2)])
def test_weight_gradient_parts_summed_and_transposed(compiled, count, out_ch, taps, rows, groups, split, wide):
    """The weight gradient's per-thread sums ``parts[t, g, o // 16, k, o % 16]`` come out as ``(G *
    O, taps)`` (``O``: a group's filters): the threads' values added in thread order (as NumPy's
    sum over the first axis), the padding filters and taps dropped, group after group; any number
    of threads, on the calling thread alone or its panels split between the threads (``split``:
    as ``PARTS_MIN_WORK`` lets the stride-2 layer's 8 sums of 289 x 64 run); ``wide``: full panels
    written 16 taps at a time by transposes in registers (``transpose16_to``), the last taps one by one."""
    from cnnlab.functional import _numba_implicit_grad_w as nw

    width = -(-out_ch // 16) * 16
    parts = np.random.default_rng(out_ch + count).uniform(-1, 1, (count, groups, width // 16, rows, 16)
                                                          ).astype(np.float32)
    total = parts[0].copy()
    for t in range(1, count):
        total = total + parts[t]
    want = np.concatenate([total[k].transpose(0, 2, 1).reshape(width, rows)[:out_ch, :taps] for k in range(groups)])
    out = np.empty((groups * out_ch, taps), np.float32)
    flat = parts.reshape(-1).copy()
    _backend.run_jobs(nw._parts_transposed, groups * width // 16, flat, parts[0].size, rows, groups * out_ch, out_ch, 1,
                      wide, out.reshape(-1), work=flat.size, min_work=0 if split else flat.size + 1)
    np.testing.assert_array_equal(out, want)


GEOMETRIES = [
    # batch, channels, spatial, kernel, stride, dilation, pads
    (2, 3, (6, 7), (2, 3), (2, 1), (1, 2), ((0, 0), (0, 0))),
    (2, 3, (6, 7), (3, 3), (2, 2), (1, 1), ((1, 1), (1, 1))),
    (1, 2, (5, 6), (3, 2), (1, 2), (2, 1), ((2, 0), (1, 3))),
    (2, 2, (4, 4), (3, 3), (1, 1), (1, 1), ((4, 5), (1, 1))),  # rows that read only padding
    (2, 2, (9,), (4,), (3,), (1,), ((2, 2),)),
    (1, 2, (3, 4, 4), (2, 3, 3), (1, 2, 1), (1, 1, 2), ((1, 0), (0, 1), (2, 2))),
]


def _cells(spatial, kernel, stride, dilation, pads):
    """Per output position (multi-index) and tap (multi-index), the input cell it reads, or None
    for padding: from the definition, cell by cell."""
    out = [(n + lo + hi - d * (k - 1) - 1) // s + 1
           for n, (lo, hi), k, s, d in zip(spatial, pads, kernel, stride, dilation, strict=True)]
    for q in np.ndindex(*out):
        for t in np.ndindex(*kernel):
            cell = tuple(qa * s + ta * d - lo for qa, ta, s, d, (lo, _) in zip(q, t, stride, dilation, pads,
                                                                                strict=True))
            yield q, t, (cell if all(0 <= c < n for c, n in zip(cell, spatial, strict=True)) else None)


@pytest.mark.parametrize("batch, channels, spatial, kernel, stride, dilation, pads", GEOMETRIES)
def test_classes_read_every_tap_inside_the_input_once(batch, channels, spatial, kernel, stride, dilation, pads):
    """The forward's classes of positions: every pair of an output position and a tap whose
    cell lies inside the unpadded input is read once, at ``pos + delta`` = that cell's flat index
    (np.ravel_multi_index), and written at ``yoff`` = the position's flat index (filter 0); no
    pair that reads padding is; the weight gradient's tables name the same taps
    (``tapmap``), in blocks of 6; and ``border`` holds every position with a padding tap."""
    out_ch = 5
    n = len(spatial)
    out = tuple((s_ + lo + hi - d * (k - 1) - 1) // st + 1
                for s_, (lo, hi), k, st, d in zip(spatial, pads, kernel, stride, dilation, strict=True))
    tables = _implicit._tables(batch, channels, spatial, out_ch, channels, kernel, out, stride, dilation,
                               tuple(lo for lo, _ in pads))
    shape, ktaps = (batch, channels, *spatial), int(np.prod(kernel))
    want, borders = set(), set()
    for q, t, cell in _cells(spatial, kernel, stride, dilation, pads):
        for b in range(batch):
            for c in range(channels):
                if cell is None:
                    borders.add((b, *q))
                else:
                    want.add((np.ravel_multi_index((b, *q), (batch, *out)), c * ktaps + np.ravel_multi_index(
                        t, kernel), np.ravel_multi_index((b, c, *cell), shape)))
    got = []
    for f in range(len(tables.flats)):
        taps = tables.delta[tables.dstart[f]:tables.dstart[f + 1]]
        assert list(tables.flats[f]) == [k for k in tables.tapmap[tables.dstart6[f]:tables.dstart6[f + 1]] if k >= 0]
        assert (tables.dstart6[f + 1] - tables.dstart6[f]) % 6 == 0
        assert (tables.pstart[f + 1] - tables.pstart[f]) % 6 == 0
        real = tables.yoff[tables.pstart[f]:tables.pstart[f + 1]] >= 0
        count = int(real.sum())  # (the padding entries last, fewer than 6)
        assert real[:count].all() and real.size - count < 6
        for p in range(tables.pstart[f], tables.pstart[f + 1]):
            if tables.yoff[p] < 0:
                continue
            b, spot = divmod(int(tables.yoff[p]), out_ch * int(np.prod(out)))
            assert spot < int(np.prod(out))  # (filter 0's)
            position = b * int(np.prod(out)) + spot
            got += [(position, k, int(tables.pos[p] + d)) for k, d in zip(tables.flats[f], taps, strict=True)]
    assert len(got) == len(set(got)) and set(got) == want
    # the weight gradient's: image by image, in segments of one class each
    got = []
    for i, f in enumerate(tables.segf):
        taps = [(k, d) for k, d in zip(tables.tapmap[tables.dstart6[f]:tables.dstart6[f + 1]],
                                       tables.delta6[tables.dstart6[f]:tables.dstart6[f + 1]], strict=True) if k >= 0]
        for p in range(tables.seg[i], tables.seg[i + 1]):
            b, spot = divmod(int(tables.wgoff[p]), out_ch * int(np.prod(out)))
            assert spot < int(np.prod(out))
            position = b * int(np.prod(out)) + spot
            got += [(position, int(k), int(tables.wpos[p] + d)) for k, d in taps]
    assert len(got) == len(set(got)) and set(got) == want
    images = [int(tables.wgoff[p]) // (out_ch * int(np.prod(out))) for p in range(tables.wpos.size)]
    assert images == sorted(images) and tables.seg[-1] == tables.wpos.size
    assert tables.tapless == (len({(position, k) for position, k, _ in want}) == 0 or any(
        not any(pair[0] == pos_ for pair in want) for pos_ in range(batch * int(np.prod(out)))))
    marked = set()
    for axis, q0, length in tables.border:
        for index in np.ndindex(batch, *out):
            if q0 <= index[1 + axis] < q0 + length:
                marked.add(index)
    assert borders <= marked and n == len(out)
    assert not tables.pos.flags.writeable


def _grad_x_pairs(batch, out_ch, channels, x_spatial, kernel, stride, dilation, pads):
    """Per input cell of the input gradient, the (filter, tap, upstream cell) pairs it receives,
    from the definition: cell ``i`` of the padded input is read by position ``q`` through tap
    ``t`` when ``q*s + t*d = i + lo``."""
    out = [(n + lo + hi - d * (k - 1) - 1) // s + 1
           for n, (lo, hi), k, s, d in zip(x_spatial, pads, kernel, stride, dilation, strict=True)]
    pairs = set()
    for q, t, cell in _cells(x_spatial, kernel, stride, dilation, pads):
        if cell is None:
            continue
        for b in range(batch):
            for o in range(out_ch):
                pairs.add((np.ravel_multi_index((b, *cell), (batch, *x_spatial)), o * int(np.prod(kernel))
                           + np.ravel_multi_index(t, kernel), np.ravel_multi_index((b, o, *q), (batch, out_ch, *out))))
    return out, pairs


@pytest.mark.parametrize("batch, channels, spatial, kernel, stride, dilation, pads", GEOMETRIES)
def test_input_gradient_classes_read_the_definitions_pairs(batch, channels, spatial, kernel, stride, dilation,
                                                           pads):
    """The input gradient's phases and classes: every (input cell, filter, tap, upstream cell)
    of the definition is read once, at ``pos + delta`` of the unpadded upstream gradient, each
    class's taps in rising order of offsets within a filter (read backwards, the kernel ran at
    half speed); ``complete`` says whether every cell receives a term."""
    out_ch = 3
    out, want = _grad_x_pairs(batch, out_ch, channels, spatial, kernel, stride, dilation, pads)
    complete, flats, (pos, pstart, yoff, delta, dstart) = _implicit_grad_x._grad_x_tables(
        batch, out_ch, out_ch, channels, spatial, tuple(out), kernel, stride, dilation, tuple(lo for lo, _ in pads))
    plane, ktaps = int(np.prod(spatial)), int(np.prod(kernel))
    got = []
    for f, flat in enumerate(flats):
        per_filter = delta[dstart[f]:dstart[f + 1]].reshape(out_ch, len(flat))
        assert (np.diff(per_filter, axis=1) > 0).all()
        for p in range(pstart[f], pstart[f + 1]):
            if yoff[p] < 0:
                continue
            b, spot = divmod(int(yoff[p]), channels * plane)
            assert spot < plane
            for o in range(out_ch):
                got += [(b * plane + spot, o * ktaps + k, int(pos[p] + d)) for k, d in zip(flat, per_filter[o],
                                                                                          strict=True)]
    assert len(got) == len(set(got)) and set(got) == want
    assert complete == (len({cell for cell, _, _ in want}) == batch * plane)


@pytest.mark.parametrize("bad", ["weight", "input"])
def test_non_finite_values_match_the_reference(compiled, bad):
    """An infinite weight would meet the zero border of the input gradient's padded upstream
    gradient (``inf * 0``): that gradient takes col2im, and every result keeps the reference's
    nan pattern; an infinite input is read only where the definition reads it."""
    x, w, b = _inputs((2, 8, 6, 6), (16, 8, 3, 3), seed=3)
    (w if bad == "weight" else x)[0, 1, 1, 2] = np.inf
    kw = {"padding": 1, "method": "implicit"}
    y = F.conv2d(x, w, b, **kw)
    g = np.random.default_rng(1).uniform(-1, 1, y.shape).astype(np.float32)
    gx, gw, _ = F.conv_backward(g, x, w, b, **kw)
    pads, one = ((1, 1), (1, 1)), (1, 1)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    ref_y = _naive.naive_conv(x64, w64, b.astype(np.float64), one, pads, one, 1)
    ref_x, ref_w = _naive.naive_conv_backward(g.astype(np.float64), x64, w64, one, pads, one, 1)[:2]
    for got, want in ((y, ref_y), (gx, ref_x), (gw, ref_w)):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
        finite = np.isfinite(want)
        np.testing.assert_allclose(got[finite], want[finite], rtol=1e-5, atol=1e-4)
    assert _implicit.grad_x_applies(w) is (bad == "input")


@pytest.mark.parametrize("where", ["corner", "edge", "inside"])
def test_non_finite_upstream_gradient_where_padding_is_read(compiled, skipping, monkeypatch, where):
    """The definition multiplies the zero padding by the upstream gradient: an infinite value at a
    position with a padding tap gives ``nan`` in those taps' weight gradient (the kernels, which
    skip the padding, run on a padded copy then); inside, no copy is made.  Both against the loop
    reference's nan pattern."""
    x, w, b = _inputs((2, 8, 7, 6), (16, 8, 3, 3), seed=5)
    kw = {"padding": 1, "stride": 2, "method": "implicit"}
    y = F.conv2d(x, w, b, **kw)
    g = np.random.default_rng(2).uniform(-1, 1, y.shape).astype(np.float32)
    g[1, 3, *{"corner": (0, 0), "edge": (0, 2), "inside": (2, 1)}[where]] = np.inf
    copies = spied(monkeypatch, _implicit, "_padded_input")
    gw = F.conv_backward(g, x, w, b, **kw)[1]
    assert copies["_padded_input"] == (0 if where == "inside" else 1)
    pads, one, two = ((1, 1), (1, 1)), (1, 1), (2, 2)
    want = _naive.naive_conv_backward(g.astype(np.float64), x.astype(np.float64), w.astype(np.float64), two, pads,
                                      one, 1)[1]
    np.testing.assert_array_equal(np.isnan(gw), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(gw), np.isinf(want))
    assert np.isnan(want).any() == (where != "inside")
    finite = np.isfinite(want)
    np.testing.assert_allclose(gw[finite], want[finite], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("case, checks, copies", [("finite", 0, 0), ("input inf", 1, 0), ("gradient inf", 1, 1),
                                                  ("tapless", 1, 0), ("tapless inf", 1, 1)])
def test_weight_gradient_checks_the_border_only_when_it_must(compiled, skipping, monkeypatch, case, checks, copies):
    """The weight gradient reads the upstream gradient's border for values that are not finite
    only when its sums came out not finite (or some output reads padding alone, whose gradient
    no sum shows): finite values, no check and no copy; an infinite input, a check and no copy;
    an infinite gradient on the border, a check and a padded copy; outputs of padding alone
    (``_implicit_grad_w.grad_w`` called with such padding), a check first, and a copy for an infinite
    gradient there.  Each against the loop reference's values and nan pattern."""
    pad = 3 if case.startswith("tapless") else 1  # (3: the corner outputs of a 3x3 kernel read padding alone)
    x, w, b = _inputs((2, 8, 7, 6), (16, 8, 3, 3), seed=12)
    if case == "input inf":
        x[1, 2, 3, 3] = np.inf
    kw = {"padding": pad, "stride": 2, "method": "implicit"}
    y = F.conv2d(x, w, b, **kw)
    g = np.random.default_rng(4).uniform(-1, 1, y.shape).astype(np.float32)
    if case in ("gradient inf", "tapless inf"):
        g[0, 5, 0, 0] = np.inf  # (a corner: padding taps, and no tap at all with padding 3)
    pads, one, two = ((pad, pad), (pad, pad)), (1, 1), (2, 2)
    calls = spied(monkeypatch, _implicit_grad_w, "_border_finite", into=spied(monkeypatch, _implicit, "_padded_input"))
    if case.startswith("tapless"):  # (the forward pads such an input itself: the kernel's own entry)
        gw = _implicit_grad_w.grad_w(g, x, pads, w.shape, two, one, 1)
    else:
        gw = F.conv_backward(g, x, w, b, **kw)[1]
    assert (calls["_border_finite"], calls["_padded_input"]) == (checks, copies)
    want = _naive.naive_conv_backward(g.astype(np.float64), x.astype(np.float64), w.astype(np.float64), two, pads,
                                      one, 1)[1]
    np.testing.assert_array_equal(np.isnan(gw), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(gw), np.isinf(want))
    assert np.isfinite(want).all() == (case in ("finite", "tapless"))
    finite = np.isfinite(want)
    np.testing.assert_allclose(gw[finite], want[finite], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("padding, weight_bad, copies", [(1, False, 0), (1, True, 1), ((4, 1), False, 1),
                                                         (0, False, 0)])
def test_forward_pads_a_copy_only_where_the_definition_needs_it(compiled, skipping, monkeypatch, padding, weight_bad,
                                                                copies):
    """The forward reads the unpadded input (its classes skip the padding taps), except for a
    weight that is not finite (``inf * 0`` is ``nan`` in the padding) and outputs that read only
    padding: then a padded copy; the results match the loop reference either way."""
    x, w, b = _inputs((2, 8, 5, 6), (16, 8, 3, 3), seed=8)
    if weight_bad:
        w[2, 1, 0, 0] = -np.inf
    calls = spied(monkeypatch, _implicit, "_padded_input")
    y = F.conv2d(x, w, b, padding=padding, method="implicit")
    assert calls["_padded_input"] == copies
    s, pads, d = _args(w, 1, padding, 1)
    want = _naive.naive_conv(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), s, pads, d, 1)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(y[finite], want[finite], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("xs, ws, stride, pad, skips", [
    ((32, 32, 32, 32), (64, 32, 3, 3), 2, 1, True),  # the stride-2 layer: a quarter of the work per value copied
    ((8, 512, 7, 7), (512, 512, 3, 3), 1, 1, False),  # 8 corners of 8 positions, each packing 2,048 x 512 weights
    # nine classes of 7x7 images: short segments, joined class by class since round 40 (4.8 / 4.1 ms)
    ((64, 64, 7, 7), (64, 64, 3, 3), 1, 1, True),
    ((64, 256, 7, 7), (64, 256, 7, 7), 2, 3, True),  # half the taps read the border (24.2 / 18.6 ms)
    ((8, 512, 14, 14), (64, 512, 7, 7), 2, 3, False),  # 16 classes of 25,088 taps' tables (23.8 / 25.4 ms)
    ((32, 16, 24, 24), (32, 16, 5, 5), 1, 2, True),  # the layer
])
def test_padding_skipped_where_it_pays(compiled, monkeypatch, xs, ws, stride, pad, skips):
    """The rule (``classes_pay``) on layers measured both ways (forward+backward, padded copy /
    classes): whether the forward reads the unpadded input, seen by whether it makes a padded
    copy."""
    calls = spied(monkeypatch, _implicit, "_padded_input")
    x = np.zeros(xs, np.float32)
    _implicit.forward(x, np.ones(ws, np.float32), (stride, stride), (1, 1), 1, ((pad, pad), (pad, pad)), None)
    assert calls["_padded_input"] == (0 if skips else 1)



def test_the_rule_is_kept_for_the_same_tables_and_costs(compiled, monkeypatch):
    """``classes_pay`` keeps its answer for the same cached tables, the same numbers and the same
    costs, and answers afresh when any of them changes."""
    x = np.zeros((32, 16, 24, 24), np.float32)
    tables = _implicit._geometry(x, (32, 16, 5, 5), (1, 1), (1, 1), ((2, 2), (2, 2)), (24, 24))
    padded = 32.0 * 16 * 28 * 28
    assert _implicit.classes_pay(tables, padded, 32, 400) is True
    assert _implicit.classes_pay(tables, padded, 32, 400) is _implicit._classes_pay(tables, padded, 32, 400)
    assert _implicit.classes_pay(tables, 0.0, 32, 400) is _implicit._classes_pay(tables, 0.0, 32, 400)
    monkeypatch.setattr(_implicit, "PACK_COST", 1e9)
    assert _implicit.classes_pay(tables, padded, 32, 400) is False
    monkeypatch.setattr(_implicit, "PACK_COST", 4.0)
    monkeypatch.setattr(_implicit, "SEGMENT_COST", 1e9)
    assert _implicit.classes_pay(tables, padded, 32, 400) is False

BORDER_CASES = [
    # x shape, weight shape, stride, padding, dilation, groups, pair lanes
    ((3, 16, 9, 10), (32, 16, 5, 5), 1, 2, 1, 1, 0),  # the layer, small: rows 0-1 and 7-8 skip
    ((2, 8, 8, 8), (24, 8, 7, 7), 1, 3, 1, 1, 0),  # 8x8, k7: most blocks skip a row
    ((2, 8, 11, 9), (16, 8, 3, 5), 1, ((3, 1), (2, 2)), (2, 1), 1, 0),  # asymmetric, dilated rows
    ((2, 16, 9, 9), (16, 4, 3, 3), 1, 1, 1, 4, 8),  # groups of 4 filters: blocks of 8 filters at 2 positions
    ((2, 16, 7, 7), (16, 8, 3, 3), 1, 1, 1, 2, 8),  # groups of 8: pairs, both spans
    ((3, 8, 21), (16, 8, 5), 1, 2, 1, 1, 0),  # 1-d: the blocks at the ends
    ((2, 8, 5, 6, 6), (16, 8, 3, 3, 3), 1, 1, 1, 1, 0),  # 3-d: planes of padding skipped
    ((2, 8, 12, 12), (16, 8, 3, 3), 2, 1, 1, 1, 0),  # strided: the forward skips, the input gradient's 4 phases not
    ((1, 8, 3, 4), (16, 8, 3, 3), 1, (4, 1), 1, 1, 0),  # rows of padding alone (outputs with no tap inside)
    ((2, 8, 8, 7), (16, 8, 3, 3), 1, ((4, 0), (1, 1)), 1, 1, 0),  # the input gradient's first tap 2 rows on
]


def _border_run(monkeypatch, skip, xs, ws, stride, padding, dilation, groups, lanes):
    """``(y, gx, gw, calls)`` with padded copies (``PACK_COST`` huge), the border skipped or
    not; ``calls``: the tables and frame of each forward kernel call."""
    from cnnlab.functional import _numba_implicit as ni

    calls, original, stage = [], ni.taps_forward, ["forward"]

    def spy(src, wpk, wstart, bias, pos, pstart, delta, dstart, yoff, *args, frame=None, **kw):
        calls.append((pos, pstart, delta, dstart, yoff, frame, stage[0]))
        return original(src, wpk, wstart, bias, pos, pstart, delta, dstart, yoff, *args, frame=frame, **kw)

    with monkeypatch.context() as m:
        m.setattr(_implicit, "MIN_LANES", 1)
        m.setattr(_implicit, "GRAD_X_MIN_LANES", 1)
        m.setattr(_implicit, "PAIR_LANES", lanes)
        m.setattr(_implicit, "PACK_COST", 1e30)
        m.setattr(_implicit, "SEGMENT_COST", 1e30)
        m.setattr(_implicit, "SKIP_BORDER", skip)
        m.setattr(ni, "taps_forward", spy)
        x, w, b = _inputs(xs, ws, seed=sum(xs) + 5 * sum(ws))
        kw = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups, "method": "implicit"}
        y = _conv(w.ndim - 2)(x, w, b, **kw)
        g = np.random.default_rng(3).uniform(-1, 1, y.shape).astype(np.float32)
        stage[0] = "backward"
        gx, gw, _ = F.conv_backward(g, x, w, b, **kw)
    return (y, gx, gw), (x, w, b, g), calls


@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups, lanes", BORDER_CASES)
def test_border_rows_skipped_give_the_same_bits(compiled, monkeypatch, xs, ws, stride, padding, dilation, groups,
                                                lanes):
    """On padded copies (of the input, and of the upstream gradient for the input gradient), the
    blocks of positions skip the kernel rows (planes, in 3-d) that read the zero border alone:
    the same bits as with every row run (a zero times a finite weight adds nothing), the loop
    reference's values, and some rows really skipped (the forward's frame, with stride 1 the
    input gradient's too)."""
    skipped, (x, w, b, g), calls = _border_run(monkeypatch, True, xs, ws, stride, padding, dilation, groups, lanes)
    full, _, plain = _border_run(monkeypatch, False, xs, ws, stride, padding, dilation, groups, lanes)
    for got, want in zip(skipped, full, strict=True):
        np.testing.assert_array_equal(got, want)
    _against_loop_reference(skipped, x, w, b, g, stride, padding, dilation, groups)
    assert len(calls) == len(plain) and all(call[5] is None for call in plain)
    # (a frame for each call of one phase: the forward, and the input gradient of stride 1; none
    # for the input gradient's phases of a stride)
    assert [pstart.size == 2 for _, pstart, *_ in calls] == [call[5] is not None for call in calls]
    assert any(call[5] is not None for call in calls)


def _inside(spatial, pads):
    """``{(padded shape, low pads): mask}``: the cells of a plane ``spatial`` zero-padded by
    ``pads`` that hold values (not the zero border), flat."""
    shape = tuple(n + lo + hi for n, (lo, hi) in zip(spatial, pads, strict=True))
    inside = np.zeros(shape, bool)
    inside[tuple(slice(lo, lo + n) for n, (lo, _) in zip(spatial, pads, strict=True))] = True
    return {(shape, pads[0][0]): inside.reshape(-1)}


@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups, lanes", BORDER_CASES)
def test_border_boxes_hold_every_tap_read_inside(compiled, monkeypatch, xs, ws, stride, padding, dilation, groups,
                                                 lanes):
    """Each block's range of kernel rows, against the cells its positions read: every row that
    some real position of the block reads inside the input (or the upstream gradient) with some
    tap lies in the range, and the range's first and last rows are such rows (or it is empty,
    where the block reads padding alone).  The cells come from the offset tables and a mask of
    the padded plane built here."""
    from cnnlab.functional import _frames

    _, (x, w, _, _), calls = _border_run(monkeypatch, True, xs, ws, stride, padding, dilation, groups, lanes)
    n = w.ndim - 2
    s, pads, d = _args(w, stride, padding, dilation)
    out = _conv(n)(x, w, None, stride=stride, padding=padding, dilation=dilation, groups=groups).shape[2:]
    border = _implicit_grad_x._grad_x_border(tuple(x.shape[2:]), tuple(out), tuple(w.shape[2:]), s, d,
                                      tuple(lo for lo, _ in pads))
    checked = 0
    # the forward's padded input (also run by the array backward), and the input gradient's
    # upstream gradient inside its zero border
    planes = {**_inside(x.shape[2:], pads), **_inside(out, border)}
    for pos, pstart, delta, dstart, yoff, frame, _ in calls:
        if frame is None:
            continue
        inside = planes[(frame.shape, frame.lo)]
        kgrid, box = _frames.boxes(pos, pstart, yoff, delta, dstart, frame, 6)
        for f in range(pstart.size - 1):
            per_channel = (dstart[f + 1] - dstart[f]) // frame.channels
            taps = delta[dstart[f]:dstart[f] + per_channel]  # (channel 0's: the others' a plane further each)
            at = pos[pstart[f]:pstart[f + 1]]
            reads = inside[(at[:, None] + taps[None, :]) % inside.size]  # (position, tap) inside?
            rows = reads.reshape(at.size, w.shape[2], -1).any(axis=2) & (yoff[pstart[f]:pstart[f + 1]] >= 0)[:, None]
            for blk in range(at.size // 6):
                used = np.flatnonzero(rows[6 * blk:6 * blk + 6].any(axis=0))
                lo, hi = box[pstart[f] // 6 + blk]
                if used.size:
                    assert (lo, hi) == (used[0], used[-1] + 1)
                else:
                    assert hi <= lo
                checked += 1
    assert checked


@pytest.mark.parametrize("dtype", [np.float64, np.int64])
def test_other_dtypes_take_the_gemm_path(compiled, monkeypatch, dtype):
    """float64 stays float64 and integers stay exact: the implicit kernels are float32 only."""
    g = np.random.default_rng(5)
    x = g.integers(-4, 5, (2, 3, 6, 5)).astype(dtype)
    w = g.integers(-3, 4, (20, 3, 3, 3)).astype(dtype)
    calls = _spied(monkeypatch)
    y = F.conv2d(x, w, padding=1, method="implicit")
    ref = _naive.naive_conv(x, w, None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, ref)
    assert calls == {"taps_forward": 0, "taps_grad_w": 0}


def test_float64_upstream_gradient_takes_the_gemm_path(compiled):
    """A float32 forward whose backward gets a float64 gradient (_conv_backward_kernels.backward directly)."""
    x, w, _ = _inputs((2, 5, 7, 6), (18, 5, 3, 3), seed=11)
    y, saved = _conv_kernels.forward(x, w, (1, 1), (1, 1), 1, "implicit", save=True, pads=((1, 1), (1, 1)))
    assert saved.method == "implicit"
    g = np.random.default_rng(2).uniform(-1, 1, y.shape)
    gx, gw = _conv_backward_kernels.backward(g, saved)
    rx, rw = _naive.naive_conv_backward(g, x.astype(np.float64), w.astype(np.float64), (1, 1),
                                        ((1, 1), (1, 1)), (1, 1), 1)[:2]
    assert gx.shape == x.shape
    np.testing.assert_allclose(gx, rx, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gw, rw, rtol=1e-5, atol=1e-5)


def test_without_numba_the_method_is_the_gemm_path(monkeypatch):
    x, w, b = _inputs((2, 3, 6, 6), (8, 3, 3, 3), seed=4)
    previous = _backend.set_backend("numpy")
    try:
        calls = _spied(monkeypatch)
        y = F.conv2d(x, w, b, padding=1, method="implicit")
        assert calls == {"taps_forward": 0, "taps_grad_w": 0}
    finally:
        _backend.set_backend(previous)
    ref = _naive.naive_conv(x, w, b, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("xs, ws, groups, stride, dtype, expected", [
    ((64, 32, 14, 14), (64, 32, 3, 3), 1, (1, 1), np.float32, "winograd"),  # (3x3, stride 1: test_winograd.py)
    ((64, 32, 14, 14), (64, 32, 3, 3), 1, (2, 2), np.float32, "implicit"),
    ((64, 32, 14, 14), (64, 32, 3, 3), 1, (1, 1), np.float64, "gemm"),
    ((64, 32, 14, 14), (64, 32, 3, 3), 1, (1, 1), None, "gemm"),  # (no dtype: the rule of the shapes alone)
    ((64, 32, 16, 16), (64, 32, 1, 1), 1, (1, 1), np.float32, "gemm"),  # 1x1: batched products from 256 positions
    ((64, 32, 14, 14), (64, 32, 1, 1), 1, (1, 1), np.float32, "implicit"),  # 196 positions a sample
    ((64, 32, 256), (64, 32, 1), 1, (1,), np.float32, "gemm"),  # (1-d: the same count)
    ((64, 32, 255), (64, 32, 1), 1, (1,), np.float32, "implicit"),
    ((64, 32, 14, 14), (64, 32, 1, 1), 1, (2, 2), np.float32, "implicit"),
    ((64, 32, 14, 14), (4, 32, 3, 3), 1, (1, 1), np.float32, "direct"),  # 4 filters: 12 of 16 lanes idle
    ((64, 32, 14, 14), (32, 4, 3, 3), 8, (1, 1), np.float32, "direct"),  # 4 filters per group
    ((64, 32, 14, 14), (32, 4, 3, 3), 8, (1, 1), np.float64, "direct"),  # (any dtype)
    ((64, 32, 14, 14), (32, 4, 3, 3), 8, (2, 2), np.float32, "gemm"),  # strided along the width: 7 MFLOP
    ((32, 128, 58, 58), (128, 4, 3, 3), 32, (2, 2), np.float32, "implicit"),  # 4 filters a group (ResNeXt's)
    ((32, 128, 58, 58), (128, 4, 3, 3), 32, (1, 2), np.float32, "implicit"),  # (a stride along the width)
    ((32, 96, 58, 58), (96, 3, 3, 3), 32, (2, 2), np.float32, "gemm"),  # 3 filters a group
    ((64, 32, 14, 14), (32, 4, 3, 3), 8, (2, 1), np.float32, "direct"),  # strided along the height only
    ((64, 32, 14, 14), (4, 32, 1, 1), 1, (1, 1), np.float32, "gemm"),  # 1x1: no columns to save
    ((64, 32, 14), (4, 32, 3), 1, (1,), np.float32, "gemm"),  # 1-d: not the 2-d direct kernels' rule
    ((32, 3, 514), (128, 3, 3), 1, (1,), np.float32, "direct"),  # a 1-d first layer of 512 outputs
    ((256, 1, 132), (32, 1, 5), 1, (1,), np.float32, "direct"),  # 128 outputs
    ((256, 1, 131), (32, 1, 5), 1, (1,), np.float32, "implicit"),  # 127
    ((32, 3, 514), (128, 3, 3), 1, (2,), np.float32, "implicit"),  # strided
    ((32, 4, 514), (128, 4, 3), 1, (1,), np.float32, "implicit"),  # 4 channels
    ((64, 32, 14, 14), (64, 4, 3, 3), 8, (1, 1), np.float32, "implicit"),  # 8 filters per group
    ((64, 3, 14, 14), (16, 3, 3, 3), 1, (1, 1), np.float32, "direct"),  # a first layer
    ((64, 3, 18, 18), (16, 3, 5, 5), 1, (1, 1), np.float32, "direct"),  # rows of 14 for a 5x5 kernel: 16 filters
    ((64, 3, 18, 18), (17, 3, 5, 5), 1, (1, 1), np.float32, "implicit"),  # 17 filters
    ((64, 3, 22, 22), (16, 3, 7, 7), 1, (1, 1), np.float32, "direct"),  # rows of 16 for 7x7
    ((64, 3, 18, 18), (16, 3, 7, 7), 1, (1, 1), np.float32, "implicit"),  # rows of 12: under 2 a kernel column
    ((256, 3, 10, 10), (16, 3, 3, 3), 1, (1, 1), np.float32, "implicit"),  # rows of 8 for a 3x3 kernel
    ((64, 32, 14, 14), (32, 1, 3, 3), 32, (1, 1), np.float32, "direct"),  # depthwise
    ((32, 64, 1000), (64, 64, 9), 1, (1,), np.float32, "implicit"),  # 1-d, 2.4 GFLOP
    ((100, 25, 19), (25, 25, 3), 1, (2,), np.float32, "gemm"),  # MNIST-1D's second layer: 3.6 MFLOP
    ((4, 8, 16, 16, 16), (16, 8, 3, 3, 3), 1, (1, 1, 1), np.float32, "implicit"),  # 3-d
    ((2, 8, 6, 6, 6), (16, 8, 3, 3, 3), 1, (1, 1, 1), np.float32, "gemm"),  # 3-d, 3 MFLOP
    ((8, 512, 9, 9), (512, 512, 3, 3), 1, (1, 1), np.float32, "gemm"),  # 392 output positions
    ((8, 512, 9, 9), (64, 512, 3, 3), 1, (1, 1), np.float32, "implicit"),  # 392, but 64 filters
    ((1, 128, 20, 20), (16, 128, 5, 5), 1, (1, 1), np.float32, "implicit"),  # 256 positions, 16 filters
    ((1, 128, 20, 20), (65, 128, 5, 5), 1, (1, 1), np.float32, "gemm"),  # 65 filters
    ((1, 128, 19, 19), (16, 128, 5, 5), 1, (1, 1), np.float32, "gemm"),  # 225 positions
    ((1, 512, 14, 14), (8, 512, 5, 5), 1, (1, 1), np.float32, "implicit"),  # 100 positions of 12,800 taps
    ((1, 512, 12, 12), (64, 512, 3, 3), 1, (1, 1), np.float32, "implicit"),  # 100 positions of 4,608 taps
    ((1, 512, 11, 11), (64, 512, 3, 3), 1, (1, 1), np.float32, "gemm"),  # 81 positions
    ((1, 512, 12, 12), (65, 512, 3, 3), 1, (1, 1), np.float32, "gemm"),  # 65 filters
    ((1, 448, 12, 12), (64, 448, 3, 3), 1, (1, 1), np.float32, "gemm"),  # 4,032 taps
    ((8, 128, 32, 32), (512, 128, 5, 5), 1, (1, 1), np.float32, "gemm"),  # 512 filters
    ((8, 128, 32, 32), (511, 128, 5, 5), 1, (1, 1), np.float32, "implicit"),
    ((8, 64, 20, 20), (512, 64, 5, 5), 1, (1, 1), np.float32, "implicit"),  # 512 filters, 64 channels of 25 taps
    ((8, 65, 20, 20), (512, 65, 5, 5), 1, (1, 1), np.float32, "gemm"),  # 65 channels
    ((1, 32, 38, 38), (512, 32, 7, 7), 1, (1, 1), np.float32, "implicit"),  # 49 taps
    ((8, 32, 18, 24), (512, 32, 5, 5), 1, (1, 1), np.float32, "implicit"),  # 25 taps
    ((8, 32, 18, 24), (512, 32, 4, 6), 1, (1, 1), np.float32, "gemm"),  # 24 taps
    ((8, 32, 18, 24), (512, 32, 5, 5), 1, (1, 1), np.float64, "gemm"),  # (float64: never implicit)
    ((8, 128, 32, 32), (1024, 128, 3, 3), 2, (1, 1), np.float32, "gemm"),  # 512 filters a group
    ((8, 128, 32, 32), (512, 128, 3, 3), 1, (1, 1), np.float32, "winograd"),  # 3x3: Winograd's all the same
    ((8, 512, 32), (512, 512, 3), 1, (1,), np.float32, "gemm"),  # 1-d
    ((16, 256, 9, 9), (256, 256, 3, 3), 1, (1, 1), np.float32, "winograd"),  # 784 positions
    ((16, 576, 9, 9), (576, 576, 3, 3), 1, (1, 1), np.float32, "gemm"),  # (576 channels: not Winograd; 576 filters)
    ((16, 576, 9, 9), (320, 576, 3, 3), 1, (1, 1), np.float32, "implicit"),  # (576 channels: not Winograd)
    ((2, 256, 33, 33), (256, 256, 3, 3), 1, (2, 2), np.float32, "implicit"),  # 2 * 16 * 16 = 512 positions
    ((2, 256, 31, 34), (256, 256, 3, 3), 1, (2, 2), np.float32, "gemm"),  # 2 * 15 * 16 = 480
])
def test_automatic_rule(compiled, monkeypatch, xs, ws, groups, stride, dtype, expected):
    # (the rule among the other methods: where the FFT's model would take a layer first is
    # test_fft_conv.py's to check)
    monkeypatch.setattr(_fft_conv, "chosen", lambda *args: False)
    assert _conv_kernels.choose_method(xs, ws, groups, stride, dtype) == expected


def test_vector_operations():
    """vload / vstore / vfma_at / vzero in a compiled loop against NumPy (fma: one rounding, so
    the float64 value rounded once)."""
    from numba import njit

    from cnnlab.functional._numba_simd import vfma_at, vload, vstore, vzero

    @njit
    def axpy(a, x, out, at):  # out[0:8] = a[at] * x[8:16] + x[0:8]; out[8:16] = 0
        vstore(out, 0, vfma_at(vload(x, 0), a, at, vload(x, 8)))
        vstore(out, 8, vzero())

    g = np.random.default_rng(9)
    a, x = g.uniform(-2, 2, 5).astype(np.float32), g.uniform(-2, 2, 16).astype(np.float32)
    out = np.full(16, np.nan, np.float32)
    axpy(a, x, out, 3)
    want = (np.float64(a[3]) * x[8:16].astype(np.float64) + x[:8]).astype(np.float32)
    np.testing.assert_array_equal(out[:8], want)
    np.testing.assert_array_equal(out[8:], np.zeros(8, np.float32))


def test_prefetch_changes_no_value():
    """prefetch_write is a hint only: the array it names keeps its values, and the stores after
    it land as without it."""
    from numba import njit

    from cnnlab.functional._numba_simd import prefetch_write

    @njit
    def fill(out, step):  # out[i] = 2 * i at every step-th cell, a hint for each first
        for i in range(0, out.size, step):
            prefetch_write(out, i)
            out[i] = 2.0 * i

    out = np.arange(40, dtype=np.float32)
    fill(out, 3)
    want = np.arange(40, dtype=np.float32)
    want[::3] *= 2
    np.testing.assert_array_equal(out, want)


def test_jobs_follow_the_weights_size_and_leave_the_bits_alone(compiled, monkeypatch):
    """A forward's blocks go to jobs of JOB_BLOCKS_LIGHT blocks where a group's packed weights
    are light, of JOB_BLOCKS where heavy, at least MIN_JOBS jobs where JOB_BLOCKS gives them; the
    outputs and input gradient are the same bits whatever the jobs (each position's sums are its
    block's alone)."""
    from cnnlab.functional import _numba_implicit as ni

    pstart = ni.starts([6 * 100, 6 * 7])  # (phases of 100 and 7 blocks)
    dstart = ni.starts([9, 4])
    monkeypatch.setattr(ni, "JOB_BLOCKS", 8)
    monkeypatch.setattr(ni, "MIN_JOBS", 8)
    assert ni._forward_plan(pstart, dstart, 32, 1024)[0] == 8  # (ceil(100/32) = 4, ceil(100/8) = 13: 8)
    assert ni._forward_plan(pstart, dstart, 8, 1024)[0] == 13
    assert ni._forward_plan(ni.starts([6 * 5]), dstart[:2], 32, 1024)[0] == 1  # (5 blocks: one job of 8)
    seen = []
    real = ni._forward_plan

    def spy(pstart, dstart, job_blocks, chunk):
        seen.append(job_blocks)
        return real(pstart, dstart, job_blocks, chunk)

    monkeypatch.setattr(ni, "_forward_plan", spy)
    x, w, b = _inputs((3, 8, 11, 13), (24, 8, 3, 3), seed=12)
    kw = {"padding": 1, "method": "implicit"}
    g = np.random.default_rng(2).uniform(-1, 1, F.conv2d(x, w, b, **kw).shape).astype(np.float32)
    results = []
    for light, limit in ((32, 1 << 20), (3, 1 << 20), (32, 0)):
        monkeypatch.setattr(ni, "JOB_BLOCKS_LIGHT", light)
        monkeypatch.setattr(ni, "LIGHT_WEIGHT_BYTES", limit)
        seen.clear()
        ni._memos.clear()
        results.append((F.conv2d(x, w, b, **kw), F.conv_backward(g, x, w, b, **kw)[0]))
        assert seen and set(seen) == {light if limit else 8}
    for y, gx in results[1:]:
        np.testing.assert_array_equal(y.view(np.int32), results[0][0].view(np.int32))
        np.testing.assert_array_equal(gx.view(np.int32), results[0][1].view(np.int32))


@pytest.mark.parametrize("xs, ws, stride, padding, groups", [
    ((7, 3, 11, 10), (8, 3, 5, 5), 2, 2, 1),  # 3 channels, strided, padded; 7 samples: blocks of 2, the last 1
    ((5, 9, 9, 9), (24, 3, 3, 3), 1, 1, 3),  # 3 channels a group (from GRAD_X_MIN_LANES, 4: implicit)
])
def test_few_channel_input_gradient_in_blocks_of_samples(compiled, monkeypatch, xs, ws, stride, padding, groups):
    """An implicit forward's input gradient for layers with fewer channels a group than its
    kernels take runs col2im(W.T @ G) a block of samples at a time (GRAD_X_BLOCK_BYTES): blocks
    of 2 samples, the last of 1, give the loop reference's values (the BLAS may round a block's
    product apart from the whole batch's: its kernels for small products sum in another order)."""
    from cnnlab.functional import _conv_backward_kernels as bk

    x, w, b = _inputs(xs, ws, seed=sum(xs) + 7)
    kw = {"stride": stride, "padding": padding, "groups": groups, "method": "implicit"}
    y = F.conv2d(x, w, b, **kw)
    g = np.random.default_rng(8).uniform(-1, 1, y.shape).astype(np.float32)
    whole = F.conv_backward(g, x, w, b, **kw)
    calls = []
    real = bk.gemm_grad_x

    def spy(g2, saved, shape, *args, **kwargs):
        calls.append(shape[0])
        return real(g2, saved, shape, *args, **kwargs)

    monkeypatch.setattr(bk, "gemm_grad_x", spy)
    per_sample = xs[1] * ws[2] * ws[3] * int(np.prod(y.shape[2:])) * 4
    monkeypatch.setattr(bk, "GRAD_X_BLOCK_BYTES", 2 * per_sample)
    blocks = F.conv_backward(g, x, w, b, **kw)
    assert calls == [2] * (xs[0] // 2) + [1] * (xs[0] % 2)
    _against_loop_reference((y, blocks[0], blocks[1]), x, w, b, g, stride, padding, 1, groups)
    np.testing.assert_allclose(blocks[0], whole[0], rtol=1e-5, atol=1e-5 * np.abs(whole[0]).max())


@pytest.mark.parametrize("big, rows, taps, flat", [
    (1, 32, 40, list(range(40))),  # every tap in order: two runs of 16 transposed, 8 one by one
    (3, 16, 37, list(range(5, 37)) + [0, 1, 2]),  # runs of 16 after a start, then a jump back
    (2, 20, 50, list(range(18)) + list(range(30, 50))),  # rows past a block's 16: the block of 4 one by one
    (1, 48, 33, list(range(16)) + [20] + list(range(16, 20)) + list(range(21, 33))),  # a tap out of order
])
def test_pack_transposes_runs_of_sixteen_taps(compiled, big, rows, taps, flat):
    """Where 16 taps of a phase lie one after another and a block has 16 rows, ``pack`` writes them
    by 16 x 16 transposes in registers: every value still at the index formula's place (as in
    test_pack_lays_out_the_register_blocks, here with runs of consecutive taps and jumps between
    them), zeros past the last row, with and without the wide path."""
    from cnnlab.functional import _numba_implicit as ni

    src = np.random.default_rng(rows + taps).uniform(-2, 2, (big, rows, taps)).astype(np.float32)
    blocks, nt = -(-rows // 16), len(flat)
    want = np.zeros((blocks, big, nt, 16), np.float32)  # [r // 16, a, j, r % 16]
    padded = np.zeros((big, blocks * 16, taps), np.float32)
    padded[:, :rows] = src
    want[:] = padded[:, :, flat].reshape(big, blocks, 16, nt).transpose(1, 0, 3, 2)
    got = ni.pack(src, np.array(flat), 16)
    np.testing.assert_array_equal(got, want.reshape(-1))
    ostart, flat64, fstart = ni._pack_plan([flat], blocks * 16 * big)
    for wide in (False, True):
        out = np.full(got.size, np.nan, np.float32)
        ni._pack_rows(src.reshape(-1), rows, taps, flat64, fstart, ostart, 16, wide, out, 0, blocks, 0)
        np.testing.assert_array_equal(out, want.reshape(-1))


def test_one_owner_of_each_share_of_taps():
    """The weight gradient's threads add into one row of sums only where run_jobs's split keeps
    each share of a group's taps (``runs`` jobs in a row) on one thread."""
    from cnnlab.functional import _numba_implicit_grad_w as nw

    assert nw._one_owner(2, 1, 2) and nw._one_owner(6, 3, 2) and nw._one_owner(8, 2, 4)
    assert not nw._one_owner(9, 3, 2)  # (4 of 9: the second share split at its second run)
    assert not nw._one_owner(4, 2, 3)  # (1 and 2 of 4: the first share split)
    assert nw._one_owner(5, 5, 1)  # (one thread)


@pytest.mark.parametrize("xs, ws, stride, padding, shared", [
    ((1, 64, 9, 9), (32, 64, 5, 5), 2, 2, True),  # padded copy: one class, one run, the taps shared out
    ((2, 32, 8, 8), (48, 32, 3, 3), 1, 1, True),
    ((1, 64, 9, 9), (32, 64, 5, 5), 2, 2, False),  # the padding skipped: 9 classes, a row of sums per thread
])
def test_weight_gradient_of_shared_taps_in_one_row_of_sums(compiled, monkeypatch, xs, ws, stride, padding, shared):
    """With the taps shared out between the threads (few runs of positions) and one class of
    positions, every tap's sums have one thread, so the threads add into one row of ``parts``
    (no zeros of a row per thread, nor their sum, to write and read: 12.8 MB for N8 C512 14x14 ->
    64 k7 s2): the same bits as a row per thread (``_one_owner`` refused), and close to the float64
    loop reference; with classes of positions (``shared`` False here: the padding skipped) a tap
    has a share in each class, and the rows stay apart."""
    import numba

    from cnnlab.functional import _numba_implicit_grad_w as nw

    if not shared:
        monkeypatch.setattr(_implicit, "PACK_COST", 0.0)
        monkeypatch.setattr(_implicit, "SEGMENT_COST", 0.0)
        monkeypatch.setattr(_implicit, "RUN_BLOCKS", False)
    apart_rows = numba.config.NUMBA_NUM_THREADS  # (a row of sums per thread the kernels may use)
    monkeypatch.setitem(_backend._state, "threads", 2)
    rng = np.random.default_rng(sum(xs) + sum(ws))
    x = rng.uniform(-1, 1, xs).astype(np.float32)
    w = rng.uniform(-1, 1, ws).astype(np.float32)
    out = F.conv2d(x, w, None, stride, padding, method="implicit")
    g = rng.uniform(-1, 1, out.shape).astype(np.float32)
    real, rows = nw._taps_grad_w, []

    def kernel(*a):
        rows.append(a[18].shape[0])  # (parts)
        real(*a)

    monkeypatch.setattr(nw, "_taps_grad_w", kernel)
    got = F.conv_backward(g, x, w, None, stride, padding, method="implicit")[1]
    assert rows and set(rows) == {1 if shared else apart_rows}
    monkeypatch.setattr(nw, "_one_owner", lambda *a: False)
    rows.clear()
    apart = F.conv_backward(g, x, w, None, stride, padding, method="implicit")[1]
    assert set(rows) == {apart_rows}
    np.testing.assert_array_equal(got, apart)
    s, pads, d = _args(w, stride, padding, 1)
    want = _naive.naive_conv_backward(g.astype(np.float64), x.astype(np.float64), w.astype(np.float64), s, pads, d,
                                      1)[1]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_segments_of_one_class_joined(monkeypatch):
    """``_joined_segments``: segments shorter than SMALL_SEGMENT after the others, class by class
    (each class's positions in their order), then each run of segments of one class one segment;
    every position kept once, with its upstream gradient's offset, in a segment of its class."""
    from cnnlab.functional import _pairs

    monkeypatch.setattr(_pairs, "SMALL_SEGMENT", 10)
    seg = np.array([0, 16, 32, 40, 41, 57, 73, 80, 82])
    segf = np.array([0, 0, 1, 0, 0, 0, 2, 1])  # (lengths 16 16 8 1 16 16 7 2)
    pos = np.arange(82) * 3
    goff = np.arange(82) * 5 + 1
    p, g, got_seg, got_f = _implicit._joined_segments(pos, goff, seg, segf)
    # large ones in order (0: 0-16, 16-32; 0: 41-57, 57-73), then the short ones class by class:
    # class 0: 40-41; class 1: 32-40, 80-82; class 2: 73-80
    order = [*range(0, 32), *range(41, 73), 40, *range(32, 40), 80, 81, *range(73, 80)]
    np.testing.assert_array_equal(p, pos[order])
    np.testing.assert_array_equal(g, goff[order])
    np.testing.assert_array_equal(got_seg, [0, 65, 75, 82])
    np.testing.assert_array_equal(got_f, [0, 1, 2])
    assert not any(a.flags.writeable for a in (p, g, got_seg, got_f))
    one = _implicit._joined_segments(pos[:5], goff[:5], np.array([0, 5]), np.array([3]))
    assert one[2].tolist() == [0, 5] and one[3].tolist() == [3]


@pytest.mark.parametrize("xs, ws, stride, padding", [
    ((16, 32, 7, 7), (24, 32, 5, 5), 2, 2),  # a padded copy: one class, 16 positions an image
    ((6, 16, 9, 9), (32, 16, 3, 3), 1, 1),
])
def test_weight_gradient_of_joined_segments_keeps_its_bits(compiled, monkeypatch, xs, ws, stride, padding):
    """The weight gradient over segments joined across images (a load and store of the sums per run
    of one class) gives the same bits as over a segment per image and class (each segment's
    positions add onto the sums in the same order either way), and the float64 loop reference's
    values; the kernel is handed one segment where there is one class."""
    from cnnlab.functional import _numba_implicit_grad_w as nw

    rng = np.random.default_rng(sum(xs))
    x = rng.uniform(-1, 1, xs).astype(np.float32)
    w = rng.uniform(-1, 1, ws).astype(np.float32)
    g = rng.uniform(-1, 1, F.conv2d(x, w, None, stride, padding).shape).astype(np.float32)
    real, segments = nw.taps_grad_w, []

    def spy(src, g, pos, goff, seg, segf, *a, **k):
        segments.append(seg.size - 1)
        return real(src, g, pos, goff, seg, segf, *a, **k)

    monkeypatch.setattr(nw, "taps_grad_w", spy)
    got = F.conv_backward(g, x, w, None, stride, padding, method="implicit")[1]
    assert segments == [1]
    monkeypatch.setattr(_implicit, "_joined_segments", lambda *segments: segments)
    per_image = F.conv_backward(g, x, w, None, stride, padding, method="implicit")[1]
    assert segments[-1] == xs[0]
    np.testing.assert_array_equal(got, per_image)
    s, pads, d = _args(w, stride, padding, 1)
    want = _naive.naive_conv_backward(g.astype(np.float64), x.astype(np.float64), w.astype(np.float64), s, pads, d,
                                      1)[1]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
