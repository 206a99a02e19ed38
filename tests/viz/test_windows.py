"""Sliding-window diagrams: the frames are the explain engine's windows, the images are written."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from cnnlab import functional as F
from cnnlab.explain import Conv, Pool, explain
from cnnlab.viz import sliding_window
from tests.viz.conftest import expected_size, png_size

LECTURE_I = [[1, 0, 2], [3, 1, 0], [0, 0, 4]]
LECTURE_F = [[1, 0], [0, 1]]


def test_lecture_frames_end_in_five():
    sw = sliding_window(LECTURE_I, LECTURE_F)
    assert [f.index for f in sw.frames] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert sw.output.tolist() == [[2, 0], [3, 5]]
    assert sw.frames[-1].text == "O[1,1] = 1*1 + 0*0 + 0*0 + 1*4 = 5"


@pytest.mark.parametrize("stride, padding, dilation", [
    (1, 0, 1), (2, 1, 1), ((2, 1), ((1, 0), (0, 2)), 1), (1, 2, 2), (3, "same", 1), (1, "full", 1),
])
def test_conv_frames_match_the_explain_windows(stride, padding, dilation):
    rng = np.random.default_rng(0)
    x, k = rng.integers(-3, 4, size=(6, 7)), rng.integers(-2, 3, size=(3, 2))
    sw = sliding_window(x, k, stride=stride, padding=padding, dilation=dilation)
    stage = explain(x, [Conv(k, stride=stride, padding=padding, dilation=dilation)]).stages[0]
    assert [(f.rows, f.cols) for f in sw.frames] == [(c.rows, c.cols) for c in stage.cells]
    assert np.array_equal(sw.output, stage.output[0])
    assert np.array_equal(sw.grid, stage.grid[0])
    expected = np.asarray(F.conv2d(x[None, None].astype(float), k[None, None].astype(float), None, stride,
                                   padding if padding != "full" else 2, dilation))[0, 0]
    if padding not in ("same", "full"):
        assert np.allclose(sw.output.astype(float), expected)


def test_convolve_mode_applies_the_flipped_kernel():
    sw = sliding_window([[1, 2], [3, 4]], [[1, 0], [0, 0]], mode="convolve")
    assert sw.output.tolist() == [[4]]
    assert sw.kernel.tolist() == [[0, 0], [0, 1]]


@pytest.mark.parametrize("stride, padding, dilation, output_padding", [
    (2, 0, 1, 0), (2, 1, 1, 1), (1, 0, 2, 0), (3, 1, 2, 2), ((2, 1), (1, 0), 1, (1, 0)),
])
def test_transposed_frames_give_conv_transpose2d(stride, padding, dilation, output_padding):
    rng = np.random.default_rng(1)
    x, k = rng.integers(-3, 4, size=(3, 4)), rng.integers(-2, 3, size=(2, 3))
    sw = sliding_window(x, k, op="conv_transpose", stride=stride, padding=padding, dilation=dilation,
                        output_padding=output_padding)
    ref = np.asarray(F.conv_transpose2d(x[None, None].astype(float), k[None, None].astype(float), None, stride,
                                        padding, output_padding, 1, dilation))[0, 0]
    assert sw.output.shape == ref.shape
    assert np.array_equal(sw.output.astype(float), ref)
    # each frame's sum is the output cell it is drawn over
    for f in sw.frames:
        taps = sw.grid[np.ix_(f.rows, f.cols)]
        assert np.sum(taps * sw.kernel) == f.value == sw.output[f.index]
    # the input cells sit stride apart in the drawn grid
    assert int((sw.roles == 0).sum()) == x.size


def test_transposed_padding_beyond_the_kernel_is_refused():
    with pytest.raises(ValueError, match="larger than dilation"):
        sliding_window(np.ones((5, 5)), [[1, 1], [1, 1]], op="conv_transpose", padding=2)


@pytest.mark.parametrize("op, kind", [("max_pool", "max"), ("avg_pool", "avg")])
def test_pool_frames_match_the_explain_windows(op, kind):
    x = np.arange(20).reshape(4, 5)
    sw = sliding_window(x, op=op, kernel_size=3, stride=2, padding=1, ceil_mode=True)
    stage = explain(x, [Pool(kind, 3, stride=2, padding=1, ceil_mode=True)]).stages[0]
    assert [(f.rows, f.cols) for f in sw.frames] == [(c.rows, c.cols) for c in stage.cells]
    assert [f.value for f in sw.frames] == [c.value for c in stage.cells]


def test_pool_stride_defaults_to_the_kernel():
    assert len(sliding_window(np.arange(16).reshape(4, 4), op="max_pool", kernel_size=2)) == 4


def test_exact_fractions_stay_exact():
    sw = sliding_window([[Fraction(1, 2), 1], [2, 3]], [[1, 1], [1, 1]])
    assert sw.output[0, 0] == Fraction(13, 2)
    assert sw.frames[0].text.endswith("= 13/2")


@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_frame_image_written_at_its_size(tmp_path, suffix):
    sw = sliding_window(LECTURE_I, LECTURE_F)
    fig = sw.plot(3)
    path = tmp_path / f"frame.{suffix}"
    sw.plot(3, path)
    assert path.stat().st_size > 1000
    if suffix == "png":
        assert png_size(path) == expected_size(fig)
    else:
        assert "O[1,1] = 1*1 + 0*0 + 0*0 + 1*4 = 5" in path.read_text()


def test_frames_and_gif(tmp_path):
    from PIL import Image

    sw = sliding_window(np.arange(16).reshape(4, 4), [[1, 0], [0, -1]], stride=2, padding=1)
    paths = sw.save_frames(tmp_path / "frames")
    assert [p.name for p in paths] == [f"frame_{n:03d}.png" for n in range(len(sw))]
    gif = sw.save_gif(tmp_path / "conv.gif")
    with Image.open(gif) as img:
        assert img.n_frames == len(sw) == 9
        assert img.size == expected_size(sw.plot(0))


@pytest.mark.parametrize("kwargs, error, match", [
    ({"op": "pool"}, ValueError, "op must be one of"),
    ({"op": "conv", "kernel": None}, ValueError, "needs a kernel"),
    ({"kernel": [1, 2]}, ValueError, "2-D matrix"),
    ({"kernel": [[1]], "stride": 0}, ValueError, "stride"),
    ({"kernel": [[1, 1, 1, 1]]}, ValueError, "larger than the padded input"),
])
def test_bad_arguments(kwargs, error, match):
    kwargs.setdefault("kernel", [[1, 0], [0, 1]])
    with pytest.raises(error, match=match):
        sliding_window([[1, 2, 3], [4, 5, 6]], **kwargs)


def test_bad_frame_index():
    sw = sliding_window(LECTURE_I, LECTURE_F)
    with pytest.raises(ValueError, match=r"frame must be in \[0, 3\]"):
        sw.plot(4)
    with pytest.raises(ValueError, match="must end in .png or .svg"):
        sw.plot(0, "frame.jpg")
