"""Shape problems: every number of the worked output-size solution agrees with the problem.

The solution lists, per layer and axis, the size, kernel, stride, dilation, padding and the
result of ``out = floor((size + lo + hi - dilation*(k - 1) - 1) / stride) + 1`` (ceil mode:
ceil, and a last window starting past the input and the left padding dropped).  Each entry must
be the problem's own parameter, and the arithmetic is redone here window by window.
Found by benchmarks/mutation.py (the pooling rows could show a padding the pooling never had).
"""

import pytest

from cnnlab.explain.problems import generate


def _count_windows(size, k, stride, dilation, lo, hi, ceil_mode):
    """Window starts 0, stride, 2*stride, ... over the padded axis of length L, counted one by one:
    every window that fits; in ceil mode one more, partial, window when cells at the end are
    still uncovered, provided it starts inside the input or the left padding."""
    span, length = dilation * (k - 1) + 1, size + lo + hi
    count, start = 0, 0
    while start + span <= length:
        count += 1
        start += stride
    if ceil_mode and count and start - stride + span < length and start < size + lo:
        count += 1
    return count


@pytest.mark.parametrize("difficulty", [1, 2, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_shape_entry_is_the_problems_own(seed, difficulty):
    for p in generate(seed, "shape", difficulty, count=6).problems:
        q = p.params
        (_, conv_dims, conv_is_pool, _), (_, pool_dims, pool_is_pool, _) = p.solution.layers
        assert (conv_is_pool, pool_is_pool) == (False, True)
        _, h, w = q["input"]
        for dim, size in zip(conv_dims, (h, w), strict=True):
            assert (dim.size, dim.kernel, dim.stride, dim.dilation, dim.lo, dim.hi, dim.ceil_mode) == (
                size, q["kernel"], q["stride"], q["dilation"], q["padding"], q["padding"], False)
            assert dim.out == _count_windows(size, q["kernel"], q["stride"], q["dilation"], q["padding"],
                                             q["padding"], False)
        conv_out = tuple(d.out for d in conv_dims)
        for dim, size in zip(pool_dims, conv_out, strict=True):
            assert (dim.size, dim.kernel, dim.stride, dim.dilation, dim.lo, dim.hi, dim.ceil_mode) == (
                size, q["pool"], q["pool_stride"], 1, 0, 0, q["ceil_mode"])
            assert dim.out == _count_windows(size, q["pool"], q["pool_stride"], 1, 0, 0, q["ceil_mode"])
        assert p.answer["after the conv"] == (q["out_channels"], *conv_out)
        assert p.answer["after the pooling"] == (q["out_channels"], *(d.out for d in pool_dims))
