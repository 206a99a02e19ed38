"""The register-blocked forward of the direct method (``_numba_blocked.forward``: 6 filters by 16
positions of an output row) against the loop reference, for the shapes it splits unevenly
(filters past a block of 6, rows that are no multiple of 16), kernel sizes, dilations and row
strides; through ``F.conv2d`` with padding; exact small-integer results; and the problems it
leaves to the other direct kernels."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab.functional import _backend, _naive
from tests.functional.spies import spied

pytestmark = pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")


@pytest.fixture
def two_threads(monkeypatch):
    """Two threads with the parallel threshold at 0, so that every job split is reached."""
    monkeypatch.setattr(_backend, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setitem(_backend._state, "threads", 2)


CASES = [
    # x shape (padded), weight shape, row stride, dilation
    ((2, 3, 9, 20), (7, 3, 3, 3), 1, (1, 1)),  # 7 filters: a block of 6 and one; rows of 18
    ((1, 1, 5, 16), (6, 1, 1, 1), 1, (1, 1)),  # rows of exactly 16, one block of filters
    ((3, 2, 12, 37), (13, 2, 3, 5), 2, (1, 2)),  # 13 filters, strided rows, dilated columns
    ((2, 3, 10, 33), (1, 3, 2, 2), 3, (2, 1)),  # one filter, rows of 32
    ((2, 4, 8, 52), (12, 4, 7, 7), 1, (1, 1)),  # 4 channels, a 7x7 kernel, rows of 46
    ((5, 1, 6, 17), (5, 1, 2, 1), 1, (3, 1)),  # rows of 17: the last 16 overlap the first
    # the last block of filters with 2, 3 and 4 of its 6
    ((2, 2, 4, 16), (8, 2, 1, 1), 1, (1, 1)), ((2, 2, 6, 18), (9, 2, 3, 3), 1, (1, 1)),
    ((1, 3, 5, 20), (10, 3, 2, 3), 2, (1, 1)),
]


@pytest.mark.parametrize("xs, ws, sh, dilation", CASES)
def test_matches_the_loop_reference(two_threads, xs, ws, sh, dilation):
    from cnnlab.functional import _numba_blocked as nb

    g = np.random.default_rng(sum(xs) + sum(ws))
    xp = g.uniform(-2, 2, xs).astype(np.float32)
    w = g.uniform(-2, 2, ws).astype(np.float32)
    ref = _naive.naive_conv(xp.astype(np.float64), w.astype(np.float64), None, (sh, 1), ((0, 0), (0, 0)),
                            dilation, 1)
    out = ref.shape[2:]
    assert nb.forward_applies(xp, w, (sh, 1), 1, out)
    y = nb.forward(xp, w, (sh, 1), dilation, out)
    assert y.dtype == np.float32 and y.shape == ref.shape and y.flags.c_contiguous
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


@pytest.mark.parametrize("padding", [0, 1, (2, 3)])
def test_conv2d_takes_it_and_matches(two_threads, monkeypatch, padding):
    """``F.conv2d`` of a first layer (3 channels), 'auto' and 'direct': the blocked forward runs
    (on the padded copy) and its values are the reference's; small integers come out exact."""
    from cnnlab.functional import _numba_blocked as nb

    g = np.random.default_rng(5)
    x = g.integers(-3, 4, (3, 3, 18, 21)).astype(np.float32)
    w = g.integers(-2, 3, (8, 3, 3, 3)).astype(np.float32)
    calls = spied(monkeypatch, nb, "forward")
    pads = ((padding, padding),) * 2 if isinstance(padding, int) else tuple((p, p) for p in padding)
    ref = _naive.naive_conv(x.astype(np.int64), w.astype(np.int64), None, (1, 1), pads, (1, 1), 1)
    for method in ("auto", "direct"):
        y = F.conv2d(x, w, padding=padding, method=method)
        assert y.dtype == np.float32
        np.testing.assert_array_equal(y, ref)  # integers below 2**24: every sum exact
    assert calls["forward"] == 2


@pytest.mark.parametrize("case", ["float64", "groups", "width stride", "short rows"])
def test_other_problems_take_the_direct_loops(two_threads, monkeypatch, case):
    from cnnlab.functional import _numba_blocked as nb

    g = np.random.default_rng(3)
    x = g.standard_normal((2, 2, 9, 24)).astype(np.float64 if case == "float64" else np.float32)
    w = g.standard_normal((4, 1 if case == "groups" else 2, 3, 3)).astype(x.dtype)
    groups, stride = (2 if case == "groups" else 1), ((1, 2) if case == "width stride" else (1, 1))
    if case == "short rows":
        x = np.ascontiguousarray(x[..., :17])  # rows of 15 outputs
    calls = spied(monkeypatch, nb, "forward")
    y = F.conv2d(x, w, method="direct", groups=groups, stride=stride)
    ref = _naive.naive_conv(x.astype(np.float64), w.astype(np.float64), None, stride, ((0, 0), (0, 0)), (1, 1),
                            groups)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    assert calls["forward"] == 0
