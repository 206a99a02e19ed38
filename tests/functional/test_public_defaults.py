"""The public ops' documented defaults: called with only the required arguments, each op must
give the loop reference's answer for stride 1 (pooling: stride = kernel), no padding, dilation
1, one group.  The other tests always pass these arguments, so a changed default went unnoticed
(found by benchmarks/mutation.py: conv2d's default stride 1 -> 2 survived)."""

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab.functional import _naive


@pytest.mark.parametrize("n", [1, 2, 3])
def test_conv_defaults(n):
    rng = np.random.default_rng(n)
    x = rng.integers(-4, 5, size=(2, 3) + (5,) * n)
    w = rng.integers(-3, 4, size=(2, 3) + (2,) * n)
    expected = _naive.naive_conv(x, w, None, (1,) * n, ((0, 0),) * n, (1,) * n, 1)
    np.testing.assert_array_equal(getattr(F, f"conv{n}d")(x, w), expected)


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_defaults(kind, n):
    x = np.random.default_rng(n).standard_normal((2, 3) + (6,) * n)
    common = ((2,) * n, (2,) * n, ((0, 0),) * n, (1,) * n)
    expected = (_naive.naive_max_pool if kind == "max" else _naive.naive_avg_pool)(x, *common)
    np.testing.assert_allclose(getattr(F, f"{kind}_pool{n}d")(x, 2), expected, rtol=1e-12)
