"""Transforms: ToFloat, Normalize, shift/RandomShift, RandomCrop, Compose; seeding and errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cnnlab.data.transforms import Compose, Normalize, RandomCrop, RandomShift, ToFloat, apply_transform, shift


def _shift_reference(x, offsets):
    """Zero-filled shift by explicit index loops over the spatial axes."""
    n = len(offsets)
    out = np.zeros_like(x)
    spatial = x.shape[x.ndim - n:]
    for src in itertools.product(*(range(s) for s in spatial)):
        dst = tuple(i + o for i, o in zip(src, offsets, strict=True))
        if all(0 <= d < s for d, s in zip(dst, spatial, strict=True)):
            out[(Ellipsis, *dst)] = x[(Ellipsis, *src)]
    return out


def _which_shift(x, y, max_shift):
    """All offsets within max_shift that turn x into y."""
    n = len(max_shift)
    ranges = [range(-m, m + 1) for m in max_shift]
    return [o for o in itertools.product(*ranges) if np.array_equal(_shift_reference(x, o), y)][: n + 10]


# ----------------------------------------------------------------------------------------------
# ToFloat and Normalize


def test_to_float():
    x = np.array([[0, 1], [128, 255]], dtype=np.uint8)
    y = ToFloat()(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, x.astype(np.float64) / 255, rtol=1e-7)
    with pytest.raises(TypeError, match="ToFloat: sample must have dtype uint8, got float32"):
        ToFloat()(y)


def test_normalize_scalar_and_per_channel():
    rng = np.random.default_rng(0)
    x = rng.random((3, 4, 5)).astype(np.float32)
    y = Normalize(0.25, 2.0)(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, (x - 0.25) / 2.0, rtol=1e-6)
    mean, std = [0.1, 0.2, 0.3], [1.0, 0.5, 4.0]
    y = Normalize(mean, std)(x)
    for c in range(3):
        np.testing.assert_allclose(y[c], (x[c] - mean[c]) / std[c], rtol=1e-6)
    y64 = Normalize([1.0], [2.0])(x.astype(np.float64))
    assert y64.dtype == np.float64


def test_normalize_mnist_statistics_give_zero_mean_unit_std():
    rng = np.random.default_rng(1)
    x = rng.normal(0.13, 0.31, size=(1, 200, 200))
    y = Normalize(float(x.mean()), float(x.std()))(x)
    assert abs(y.mean()) < 1e-12 and abs(y.std() - 1) < 1e-12


@pytest.mark.parametrize(
    ("args", "exc", "pattern"),
    [
        ((0.0, 0.0), ValueError, "std must be positive"),
        ((0.0, [1.0, -1.0]), ValueError, "std must be positive"),
        (([0.0, 1.0], [1.0, 1.0, 1.0]), ValueError, "mean has 2 values but std has 3"),
        (("a", 1.0), TypeError, "mean must be a number or a sequence of numbers"),
        ((0.0, float("nan")), ValueError, "std must be finite"),
        (([], 1.0), ValueError, "mean must be finite and not empty"),
    ],
)
def test_normalize_argument_errors(args, exc, pattern):
    with pytest.raises(exc, match="Normalize: " + pattern):
        Normalize(*args)


def test_normalize_sample_errors():
    with pytest.raises(TypeError, match="use ToFloat first"):
        Normalize(0.5, 0.5)(np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match=r"3 channel values but the sample has shape \(1, 2, 2\)"):
        Normalize([0, 0, 0], [1, 1, 1])(np.zeros((1, 2, 2)))
    with pytest.raises(TypeError, match="sample must be a numpy.ndarray, got list"):
        Normalize(0, 1)([1.0])


# ----------------------------------------------------------------------------------------------
# shift and RandomShift


@pytest.mark.parametrize(("shape", "offsets"), [
    ((7,), (2,)), ((7,), (-3,)), ((7,), (0,)), ((7,), (7,)), ((7,), (-9,)),
    ((4, 5), (1, -2)), ((4, 5), (-4, 0)), ((2, 4, 5), (2, 3)), ((3, 6), (-1,)),
])
def test_shift_matches_loop_reference(shape, offsets):
    x = np.arange(1, np.prod(shape) + 1).reshape(shape)
    np.testing.assert_array_equal(shift(x, offsets), _shift_reference(x, offsets))


@pytest.mark.parametrize(("shape", "max_shift", "spatial_dims", "n"), [
    ((40,), 3, None, 1),          # an MNIST-1D signal
    ((1, 40), (3,), None, 1),     # the same with a channel axis, told by the tuple
    ((2, 40), 3, 1, 1),           # ... or by spatial_dims
    ((6, 7), 2, None, 2),         # a 2-D image
    ((2, 6, 7), (1, 2), None, 2),  # channels move together
])
def test_random_shift_is_a_bounded_shift(shape, max_shift, spatial_dims, n):
    rng = np.random.default_rng(0)
    x = rng.integers(1, 100, size=shape).astype(np.float32)
    t = RandomShift(max_shift, generator=1, spatial_dims=spatial_dims)
    limits = max_shift if isinstance(max_shift, tuple) else (max_shift,) * n
    seen = set()
    for _ in range(60):
        y = t(x)
        assert y.shape == x.shape and y.dtype == x.dtype
        offsets = _which_shift(x, y, limits)
        assert len(offsets) == 1  # nonzero data: exactly one offset explains y
        seen.add(offsets[0])
    assert len(seen) > 1  # it is random
    if n == 1:
        assert seen == {(s,) for s in range(-limits[0], limits[0] + 1)}  # every offset turns up


def test_random_shift_seeded_and_rng_override():
    x = np.arange(1.0, 21.0)
    a, b = RandomShift(4, generator=5), RandomShift(4, generator=5)
    assert all(np.array_equal(a(x), b(x)) for _ in range(10))
    r1, r2 = np.random.default_rng(3), np.random.default_rng(3)
    c, d = RandomShift(4, generator=1), RandomShift(4, generator=2)
    assert all(np.array_equal(c(x, rng=r1), d(x, rng=r2)) for _ in range(10))


def test_random_shift_zero_is_identity():
    x = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(RandomShift(0, generator=0)(x), x)


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"max_shift": -1}, ValueError, "max_shift must be >= 0"),
        ({"max_shift": 1.5}, TypeError, "max_shift must be an int or a tuple of ints"),
        ({"max_shift": (1, 2, 3)}, ValueError, r"max_shift must be an int or a tuple of 1 or 2 ints, got \(1, 2, 3\)"),
        ({"max_shift": 1, "spatial_dims": 3}, ValueError, "spatial_dims must be 1, 2 or None"),
        ({"max_shift": (1, 1), "spatial_dims": 1}, ValueError, "spatial_dims=1 disagrees with a tuple of 2"),
        ({"max_shift": 1, "generator": -2}, TypeError, "generator must be a non-negative int"),
    ],
)
def test_random_shift_argument_errors(kwargs, exc, pattern):
    with pytest.raises(exc, match="RandomShift: " + pattern):
        RandomShift(**kwargs)


def test_random_shift_sample_errors():
    with pytest.raises(ValueError, match=r"cannot tell the spatial axes of a sample of shape \(1, 1, 2, 2\)"):
        RandomShift(1)(np.zeros((1, 1, 2, 2)))
    with pytest.raises(ValueError, match=r"sample of shape \(5,\) has fewer than spatial_dims=2 axes"):
        RandomShift((1, 1))(np.zeros(5))


# ----------------------------------------------------------------------------------------------
# RandomCrop


def test_random_crop_is_a_window_of_the_padded_sample():
    rng = np.random.default_rng(2)
    x = rng.integers(1, 255, size=(2, 8, 9)).astype(np.uint8)
    t = RandomCrop((5, 6), padding=2, generator=0)
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2)))
    starts = set()
    for _ in range(50):
        y = t(x)
        assert y.shape == (2, 5, 6) and y.dtype == np.uint8
        matches = [(i, j) for i in range(12 - 5 + 1) for j in range(13 - 6 + 1)
                   if np.array_equal(padded[:, i:i + 5, j:j + 6], y)]
        assert matches
        starts.update(matches)
    assert len(starts) > 5


def test_random_crop_same_size_is_a_shift():
    x = np.arange(1.0, 26.0).reshape(5, 5)
    t = RandomCrop(5, padding=1, generator=3)
    for _ in range(20):
        assert len(_which_shift(x, t(x), (1, 1))) == 1


def test_random_crop_1d_without_padding():
    x = np.arange(10)
    y = RandomCrop(4, generator=0)(x)
    assert y.shape == (4,) and np.array_equal(y, np.arange(y[0], y[0] + 4))


def test_random_crop_errors():
    with pytest.raises(ValueError, match=r"RandomCrop: crop size \(9, 9\) is larger than the padded sample \(7, 7\)"):
        RandomCrop(9, padding=1)(np.zeros((5, 5)))
    with pytest.raises(ValueError, match="RandomCrop: size must be >= 1"):
        RandomCrop(0)
    with pytest.raises(ValueError, match="differ in length"):
        RandomCrop((3, 3), padding=(1,))


# ----------------------------------------------------------------------------------------------
# Compose


def test_compose_order_and_rng_passing():
    x = np.array([0, 255, 51], dtype=np.uint8)
    t = Compose([ToFloat(), Normalize(0.5, 0.5), RandomShift(1, generator=0), lambda v: v * 10])
    assert t.uses_rng
    r1, r2 = np.random.default_rng(8), np.random.default_rng(8)
    y1, y2 = t(x, rng=r1), t(x, rng=r2)
    np.testing.assert_array_equal(y1, y2)
    base = (x.astype(np.float32) / 255 - 0.5) / 0.5 * 10
    assert any(np.allclose(y1, _shift_reference(base, (o,))) for o in (-1, 0, 1))
    assert not Compose([ToFloat()]).uses_rng
    with pytest.raises(TypeError, match="Compose: every transform must be callable, got 3"):
        Compose([ToFloat(), 3])
    with pytest.raises(TypeError, match="Compose: transforms must be a sequence of callables"):
        Compose(ToFloat())


def test_apply_transform_passes_rng_only_to_random_transforms():
    calls = []

    def plain(v):
        calls.append("plain")
        return v

    out = apply_transform(plain, np.zeros(2), np.random.default_rng(0))
    assert calls == ["plain"] and out.shape == (2,)
