"""The exact integer path never wraps: sums that could leave int64 are refused before any work, and
every sum that is allowed equals the same sum in Python's unbounded integers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import cnnlab.functional as F

BIG = 2**62


def python_correlate2d(x, k):
    """Valid 2-D cross-correlation in Python ints (no overflow possible)."""
    h, w = len(x) - len(k) + 1, len(x[0]) - len(k[0]) + 1
    return [[sum(int(x[i + a][j + b]) * int(k[a][b]) for a, b in itertools.product(range(len(k)), range(len(k[0]))))
             for j in range(w)] for i in range(h)]


def test_conv_near_two_to_the_62_is_refused_not_wrapped():
    x = np.full((1, 1, 3, 3), BIG, dtype=np.int64)
    w = np.ones((1, 1, 2, 2), dtype=np.int64)
    with pytest.raises(ValueError, match=r"conv2d: these integer inputs could overflow int64 in the exact sums: "
                                         r"up to 4 products of \|x\| <= 4611686018427387904 and \|weight\| <= 1"):
        F.conv2d(x, w)


def test_the_bound_counts_the_bias_and_the_channels():
    x = np.full((1, 2, 2, 2), 2**60, dtype=np.int64)
    w = np.ones((1, 2, 2, 2), dtype=np.int64)  # 8 products of 2**60: 2**63, one past the limit
    with pytest.raises(ValueError, match="up to 8 products"):
        F.conv2d(x, w)
    x_ok = np.full((1, 2, 2, 2), 2**60 - 1, dtype=np.int64)  # 8 * (2**60 - 1) fits
    assert int(F.conv2d(x_ok, w)[0, 0, 0, 0]) == 8 * (2**60 - 1)
    with pytest.raises(ValueError, match="overflow int64"):
        F.conv2d(x_ok, w, np.array([9], dtype=np.int64))  # + 9 passes 2**63 - 1


@pytest.mark.parametrize("seed", range(5))
def test_allowed_integer_sums_equal_pythons_unbounded_sums(seed):
    rng = np.random.default_rng(seed)
    k = rng.integers(-(2**20), 2**20, size=(2, 3), dtype=np.int64)
    limit = (2**63 - 1) // (k.size * 2**20)
    x = rng.integers(-limit, limit, size=(5, 6), dtype=np.int64)
    assert F.correlate(x, k).tolist() == python_correlate2d(x.tolist(), k.tolist())
    out = F.conv2d(x[None, None], k[None, None])[0, 0]
    assert out.dtype == np.int64 and out.tolist() == python_correlate2d(x.tolist(), k.tolist())


def test_correlate_linear_and_conv_transpose_refuse_too():
    big = np.full((3, 3), BIG, dtype=np.int64)
    with pytest.raises(ValueError, match="correlate: these integer inputs could overflow int64"):
        F.correlate(big, np.ones((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="linear: these integer inputs could overflow int64"):
        F.linear(np.full((1, 4), BIG, dtype=np.int64), np.ones((2, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="conv_transpose2d: these integer inputs could overflow int64"):
        F.conv_transpose2d(np.full((1, 3, 2, 2), BIG, dtype=np.int64), np.ones((3, 1, 2, 2), dtype=np.int64))


def test_uint64_beyond_int64_is_refused():
    x = np.full((1, 1, 2, 2), 2**63 + 5, dtype=np.uint64)
    with pytest.raises(ValueError, match="overflow int64"):
        F.conv2d(x, np.ones((1, 1, 1, 1), dtype=np.int64))


def test_floats_and_images_are_unaffected():
    image = np.full((1, 1, 28, 28), 255, dtype=np.uint8)
    w = np.full((1, 1, 5, 5), 255, dtype=np.int64)
    assert int(F.conv2d(image, w)[0, 0, 0, 0]) == 25 * 255 * 255
    huge = np.full((1, 1, 3, 3), 1e300)
    assert np.isinf(F.conv2d(huge, np.full((1, 1, 2, 2), 1e300))).all()  # floats overflow to inf, as IEEE says
