"""Convolve mode on filters with several input channels, against a loop reference.

A true convolution flips each filter in its two spatial axes only; the channel axis is summed,
never reversed.  With one input channel flipping the channel axis too changes nothing, so these
cases use two and three channels, with filters that differ from channel to channel.  The
reference below is written from the defining sum with plain index loops and imports nothing from
cnnlab.
"""

import numpy as np
import pytest

from cnnlab.explain import Conv, explain, render


def _loop_conv(x, filters, mode, stride, padding):
    """out[o, i, j] = sum_c sum_m sum_n xp[c, i*s + m, j*s + n] * f'[o, c, m, n] with
    f' = f for 'correlate' and f'[o, c, m, n] = f[o, c, kH-1-m, kW-1-n] for 'convolve'."""
    channels, height, width = x.shape
    count, fc, kh, kw = filters.shape
    assert fc == channels
    xp = np.zeros((channels, height + 2 * padding, width + 2 * padding), dtype=np.int64)
    for c in range(channels):
        for r in range(height):
            for q in range(width):
                xp[c, r + padding, q + padding] = x[c, r, q]
    out_h = (height + 2 * padding - kh) // stride + 1
    out_w = (width + 2 * padding - kw) // stride + 1
    out = np.zeros((count, out_h, out_w), dtype=np.int64)
    for o in range(count):
        for i in range(out_h):
            for j in range(out_w):
                total = 0
                for c in range(channels):
                    for m in range(kh):
                        for n in range(kw):
                            if mode == "convolve":
                                tap = filters[o, c, kh - 1 - m, kw - 1 - n]
                            else:
                                tap = filters[o, c, m, n]
                            total += int(xp[c, i * stride + m, j * stride + n]) * int(tap)
                out[o, i, j] = total
    return out


def _loop_rotate(filters):
    """Each (o, c) filter rotated by 180 degrees in its own plane, channel order kept."""
    count, channels, kh, kw = filters.shape
    rotated = np.zeros_like(filters)
    for o in range(count):
        for c in range(channels):
            for m in range(kh):
                for n in range(kw):
                    rotated[o, c, m, n] = filters[o, c, kh - 1 - m, kw - 1 - n]
    return rotated


CASES = [
    # (channels, filters, height, width, kH, kW, stride, padding)
    (2, 1, 4, 5, 2, 3, 1, 0),
    (3, 2, 5, 5, 3, 3, 1, 1),
    (2, 3, 6, 4, 3, 2, 2, 0),
    (3, 1, 3, 3, 3, 3, 1, 0),
]


@pytest.mark.parametrize("mode", ["correlate", "convolve"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "C{}O{}_{}x{}_k{}x{}_s{}_p{}".format(*c))
def test_conv_stage_matches_the_loop_reference(case, mode):
    channels, count, height, width, kh, kw, stride, padding = case
    rng = np.random.default_rng([*case, mode == "convolve"])
    x = rng.integers(-4, 5, size=(channels, height, width))
    filters = rng.integers(-3, 4, size=(count, channels, kh, kw))
    # the channels of each filter must differ, or a flip of the channel axis goes unnoticed
    filters[:, 0, 0, 0] = 7
    filters[:, -1, 0, 0] = -7
    spec = Conv(filters if count > 1 else filters[0], mode=mode, stride=stride, padding=padding)
    sol = explain(x, [spec])
    (stage,) = sol.stages
    other = "correlate" if mode == "convolve" else "convolve"

    expected = _loop_conv(x, filters, mode, stride, padding)
    np.testing.assert_array_equal(np.asarray(stage.output, dtype=np.int64), expected)
    np.testing.assert_array_equal(np.asarray(sol.answer, dtype=np.int64).reshape(expected.shape), expected)
    np.testing.assert_array_equal(
        np.asarray(stage.other_output, dtype=np.int64), _loop_conv(x, filters, other, stride, padding)
    )
    np.testing.assert_array_equal(np.asarray(sol.alternative, dtype=np.int64).reshape(expected.shape),
                                  _loop_conv(x, filters, other, stride, padding))
    rotated = _loop_rotate(filters)
    np.testing.assert_array_equal(np.asarray(stage.flipped, dtype=np.int64), rotated)
    applied = rotated if mode == "convolve" else filters
    np.testing.assert_array_equal(np.asarray(stage.applied, dtype=np.int64), applied)
    assert len(stage.cells) == expected.size
    for cell in stage.cells:
        o, i, j = cell.index
        np.testing.assert_array_equal(np.asarray(cell.kernel, dtype=np.int64), applied[o])
        assert int(cell.value) == expected[o, i, j]


def test_flipped_filters_are_printed_channel_by_channel():
    """The text shows flip(F) with each channel's own rotation, in channel order."""
    x = np.arange(2 * 3 * 3).reshape(2, 3, 3)
    filters = np.array([[[1, 2], [3, 4]], [[50, 60], [70, 80]]])  # (C=2, 2, 2)
    text = render(explain(x, [Conv(filters, mode="convolve")]), "text")
    assert "flip(F)" in text
    # correlate with the rotated filter: channel 0 rotated is [[4,3],[2,1]], channel 1 [[80,70],[60,50]]
    want = sum(int(x[0, m, n]) * [[4, 3], [2, 1]][m][n] + int(x[1, m, n]) * [[80, 70], [60, 50]][m][n]
               for m in range(2) for n in range(2))
    sol = explain(x, [Conv(filters, mode="convolve")])
    assert int(np.asarray(sol.stages[0].output)[0, 0, 0]) == want
    assert str(want) in text


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("mode", ["correlate", "convolve"])
def test_the_answer_says_when_the_other_operation_agrees(mode, channels):
    """The closing sentence about the other operation: '(the same, because every filter is
    symmetric ...)' for a symmetric filter, '(the same)' when a non-symmetric filter agrees by
    coincidence (a constant input), nothing when the results differ; decided here with the loop
    reference."""
    other = "a true convolution" if mode == "correlate" else "a cross-correlation"
    lead = f"With {other} in every conv stage instead, the result would be"
    varied = np.arange(channels * 16).reshape(channels, 4, 4) % 7 - 3
    constant = np.ones((channels, 4, 4), dtype=np.int64)
    symmetric = np.array([[[1, 2], [2, 1]], [[3, 0], [0, 3]]])[:channels]
    lopsided = np.array([[[1, 2], [0, 5]], [[4, -1], [2, 0]]])[:channels]
    for x, filt, expect in [(varied, symmetric, " (the same, because every filter is symmetric under a "
                                                "180-degree rotation):"),
                            (constant, lopsided, " (the same):"),
                            (varied, lopsided, ":")]:
        spec_x = x if channels > 1 else x[0]
        spec_f = filt if channels > 1 else filt[0]
        here = _loop_conv(x, filt[None], mode, 1, 0)
        there = _loop_conv(x, filt[None], "correlate" if mode == "convolve" else "convolve", 1, 0)
        assert (expect != ":") == bool(np.array_equal(here, there))  # the case is what it claims
        text = render(explain(spec_x, [Conv(spec_f, mode=mode)]), "text")
        assert lead + expect in [line.strip() for line in text.splitlines()]
