"""The float32 weight gradient of the direct kernels with its sums in vector registers
(``functional/_numba_direct_grad_w.py``: ``_grad_w_vectors``) against the loop reference: taps
in groups of nine or three (the last group overlapping), strides through the phase planes,
dilations, paddings, grouped and depthwise layers, rows shorter and longer than a vector,
batches split in chunks; and the way back to the other kernels where a sum comes out not
finite."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab.functional import _backend, _naive
from tests.functional.spies import spied

pytestmark = pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")

CASES = [
    # x shape, w shape, stride, padding, dilation, groups
    ((3, 4, 9, 11), (4, 1, 3, 3), 1, 1, 1, 4),  # depthwise 3x3: one group of nine taps, buffered
    ((2, 3, 12, 10), (3, 1, 5, 5), 1, 2, 1, 3),  # 25 taps: groups from 0, 9 and 16 (overlapping)
    ((2, 2, 8, 16), (2, 1, 1, 3), 1, (0, 1), 1, 2),  # three taps; rows of 16: whole vectors
    ((2, 2, 6, 9), (4, 1, 2, 2), 1, 1, 1, 2),  # four taps: groups of three from 0 and 1
    ((2, 3, 13, 5), (3, 1, 7, 1), 1, (3, 0), 1, 3),  # seven taps from 0, 3, 4; rows of 5 (< a vector)
    ((2, 4, 11, 13), (4, 1, 3, 3), (2, 3), ((2, 0), (1, 3)), (1, 2), 4),  # strided: phase planes
    ((2, 4, 10, 12), (4, 1, 3, 3), 1, 2, 2, 4),  # dilated
    ((2, 4, 9, 10), (6, 2, 3, 3), 1, 0, 1, 2),  # 2 input channels and 3 filters a group, a padded copy
    ((20, 2, 6, 7), (2, 1, 3, 3), 1, 1, 1, 2),  # 20 samples: 16 chunks of one or two
    ((1, 3, 8, 8), (3, 1, 3, 3), 1, 1, 1, 3),  # one sample: one chunk
    ((3, 5, 17), (5, 1, 5), 2, 2, 1, 5),  # 1-d (a height of 1), strided
]


def _geometry(x_ndim, stride, padding, dilation):
    from cnnlab.functional._args import ntuple, padding_pairs

    n = x_ndim - 2
    return (ntuple("", "", stride, n, minimum=1), padding_pairs("", padding, n),
            ntuple("", "", dilation, n, minimum=1))


def _grads(g, x, w, kw):
    previous = _backend.set_backend("numba")  # past the small-work threshold
    try:
        return F.conv_backward(g, x, w, method="direct", **kw)[1]
    finally:
        _backend.set_backend(previous)


def _problem(xs, ws, stride, padding, dilation, groups, seed):
    rng = np.random.default_rng(seed)
    conv = F.conv2d if len(xs) == 4 else F.conv1d
    kw = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    shape = conv(np.zeros(xs), np.zeros(ws), **kw).shape
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    return x, w, g, kw


def _reference(g, x, w, kw):
    s, pads, d = _geometry(x.ndim, kw["stride"], kw["padding"], kw["dilation"])
    return _naive.naive_conv_backward(g.astype(np.float64), x.astype(np.float64), w.astype(np.float64), s, pads, d,
                                      kw["groups"])[1]


@pytest.mark.parametrize(("xs", "ws", "stride", "padding", "dilation", "groups"), CASES)
def test_vector_weight_gradient_matches_the_loop_reference(xs, ws, stride, padding, dilation, groups, monkeypatch):
    from cnnlab.functional import _numba_direct_grad_w as ndw

    calls = spied(monkeypatch, ndw, "_vector_grad_w")
    x, w, g, kw = _problem(xs, ws, stride, padding, dilation, groups, sum(xs) + sum(ws))
    gw = _grads(g, x, w, kw)
    assert calls["_vector_grad_w"] == 1
    assert gw.dtype == np.float32 and gw.shape == w.shape
    ref = _reference(g, x, w, kw)
    # float32 sums of at most a few hundred products of standard normal values
    np.testing.assert_allclose(gw, ref, rtol=1e-5, atol=2e-5 * np.sqrt(g[:, :1].size))


@pytest.mark.parametrize("xs", [(32, 4, 30, 31), (1, 16, 64, 64)], ids=["chunks", "one sample, runs of slices"])
def test_vector_weight_gradient_does_not_depend_on_the_threads(xs):
    # each chunk of samples adds into sums of its own, added up in order after, and a slice's sum
    # over a chunk is one job's however the slices are split into runs: the same bits on one
    # thread as on all of them (problems large enough to be shared out)
    x, w, g, kw = _problem(xs, (xs[1], 1, 3, 3), 1, 1, 1, xs[1], 7)
    assert g.size * 9 >= _backend.PARALLEL_MIN_WORK
    both = _grads(g, x, w, kw)
    threads = _backend.get_num_threads()
    _backend.set_num_threads(1)
    try:
        one = _grads(g, x, w, kw)
    finally:
        _backend.set_num_threads(threads)
    assert np.array_equal(one.view(np.uint32), both.view(np.uint32))


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the reference's inf * 0
@pytest.mark.parametrize("where", ["input", "gradient"])
def test_a_sum_that_is_not_finite_is_recomputed_by_the_other_kernels(where, monkeypatch):
    # an infinite input in a row's last column: the zeros past each row of g's copy meet it at
    # taps that the definition never pairs with it (inf * 0 = nan there); a NaN upstream gradient
    # reaches only its own filter's weights
    from cnnlab.functional import _numba_direct_grad_w as ndw

    calls = spied(monkeypatch, ndw, "_vector_grad_w")
    x, w, g, kw = _problem((3, 4, 9, 11), (4, 1, 3, 3), 1, 1, 1, 4, 11)
    if where == "input":
        x[1, 2, 4, -1] = np.inf
    else:
        g[-1, 1, -1, -1] = np.nan
    gw = _grads(g, x, w, kw)
    assert calls["_vector_grad_w"] == 1
    ref = _reference(g, x, w, kw)
    assert np.isfinite(ref).any() and not np.isfinite(ref).all()
    np.testing.assert_array_equal(np.isnan(gw), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(gw), np.isinf(ref))
    finite = np.isfinite(ref)
    np.testing.assert_allclose(gw[finite], ref[finite], rtol=1e-5, atol=1e-4)


def test_narrow_kernels_and_other_dtypes_keep_the_scalar_kernels(monkeypatch):
    from cnnlab.functional import _numba_direct_grad_w as ndw

    calls = spied(monkeypatch, ndw, "_vector_grad_w")
    x, w, g, kw = _problem((2, 3, 7, 8), (3, 1, 1, 2), 1, 1, 1, 3, 5)  # two taps
    np.testing.assert_allclose(_grads(g, x, w, kw), _reference(g, x, w, kw), rtol=1e-5, atol=1e-4)
    x, w, g, kw = _problem((2, 3, 7, 8), (3, 1, 3, 3), 1, 1, 1, 3, 5)
    gw64 = _grads(g.astype(np.float64), x.astype(np.float64), w.astype(np.float64), kw)
    assert gw64.dtype == np.float64
    np.testing.assert_allclose(gw64, _reference(g, x, w, kw), rtol=1e-12, atol=1e-12)
    assert calls["_vector_grad_w"] == 0


def test_fewer_chunks_where_the_partial_sums_would_be_large(monkeypatch):
    # the chunks of samples shrink to keep their partial sums under VECTOR_PARTS_VALUES (one chunk
    # here): the same sums in another grouping, against the reference
    from cnnlab.functional import _numba_direct_grad_w as ndw

    x, w, g, kw = _problem((12, 6, 9, 10), (6, 1, 3, 3), 1, 1, 1, 6, 13)
    monkeypatch.setattr(ndw, "VECTOR_PARTS_VALUES", 6 * 9)
    calls = spied(monkeypatch, ndw, "_vector_grad_w")
    gw = _grads(g, x, w, kw)
    assert calls["_vector_grad_w"] == 1
    np.testing.assert_allclose(gw, _reference(g, x, w, kw), rtol=1e-5, atol=2e-5 * np.sqrt(g[:, :1].size))
