"""The convolution's checked arguments kept for the next call with the same shapes, dtypes and
settings (``_conv._CHECKED``): the kept forms equal the checks' own, and nothing the checks would
refuse gets past them because an equal-looking call passed before.

The oracle is the uncached checks (``_conv._checked_args``) on the same arguments."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab.functional import _conv

FIELDS = ("unbatched", "stride", "pads", "dilation", "groups", "padding_mode", "out", "dtype")


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(_conv, "_CHECKED", {})


def _same(a, b):
    assert all(getattr(a, f) == getattr(b, f) for f in FIELDS)
    assert a.x.shape == b.x.shape and np.shares_memory(a.x, b.x) and a.weight is b.weight and a.bias is b.bias


@pytest.mark.parametrize("op, xs, ws, settings", [
    ("conv1d", (100, 25, 19), (25, 25, 3), (2, 1, 1, 1, "zeros")),
    ("conv2d", (4, 6, 9, 11), (8, 3, 3, 2), ((2, 1), (1, 0), (1, 2), 2, "zeros")),
    ("conv2d", (6, 9, 11), (8, 6, 3, 3), (1, "same", 1, 1, "reflect")),  # (unbatched)
    ("conv3d", (2, 2, 5, 6, 7), (3, 2, 2, 3, 2), (1, 0, 1, 1, "circular")),
])
def test_kept_settings_are_the_checks_own(fresh, op, xs, ws, settings):
    rng = np.random.default_rng(41)
    n = len(ws) - 2
    for dtype in (np.float32, np.float64):
        x, w = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)
        b = rng.standard_normal(ws[0]).astype(dtype)
        want = _conv._checked_args(op, x, w, b, *settings, n)
        for _ in range(2):  # (the first call checks and keeps, the second takes what was kept)
            _same(_conv._conv_args(op, x, w, b, *settings, n), want)
        assert len(_conv._CHECKED) == (1 if dtype == np.float32 else 2)
        # another input of the same shape and dtype: the kept settings, with its own arrays
        x2 = rng.standard_normal(xs).astype(dtype)
        _same(_conv._conv_args(op, x2, w, b, *settings, n), _conv._checked_args(op, x2, w, b, *settings, n))


def test_what_the_checks_refuse_is_refused_after_an_equal_looking_call_passed(fresh):
    x = np.ones((2, 3, 8, 8), np.float32)
    w = np.ones((4, 3, 3, 3), np.float32)
    F.conv2d(x, w, stride=2, padding=(1, 1))
    F.conv2d(x, w, stride=2, padding=(1, 1))
    for kw in ({"stride": 2.0, "padding": (1, 1)}, {"stride": True, "padding": (1, 1)},
               {"stride": 2, "padding": (1.0, 1)}, {"stride": np.float64(2), "padding": (1, 1)}):
        with pytest.raises(TypeError, match="conv2d"):
            F.conv2d(x, w, **kw)
    with pytest.raises(ValueError, match="conv2d: bias must have shape"):
        F.conv2d(x, w, np.ones(5, np.float32), stride=2, padding=(1, 1))
    with pytest.raises(ValueError, match="input channels"):
        F.conv2d(x[:, :2], w, stride=2, padding=(1, 1))
    with pytest.raises(TypeError, match="conv2d: x must"):  # (another dtype, the same shape)
        F.conv2d(x.astype(np.str_), w, stride=2, padding=(1, 1))


def test_integer_inputs_have_their_values_checked_every_call(fresh):
    x, w = np.ones((1, 1, 4, 4), np.int64), np.ones((1, 1, 2, 2), np.int64)
    np.testing.assert_array_equal(F.conv2d(x, w), np.full((1, 1, 3, 3), 4))
    assert _conv._CHECKED == {}
    with pytest.raises(ValueError, match="could overflow int64"):
        F.conv2d(x * 2**40, w * 2**40)


def test_lists_subclasses_and_other_settings_are_checked_afresh(fresh, monkeypatch):
    x = np.ones((1, 2, 5, 5), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    want = F.conv2d(x, w, padding=1)
    monkeypatch.setattr(_conv, "_CHECKED", {})
    np.testing.assert_array_equal(F.conv2d(x.tolist(), w.tolist(), padding=1), want)
    np.testing.assert_array_equal(F.conv2d(x, w, padding=((1, 1), (1, 1))), want)
    np.testing.assert_array_equal(F.conv2d(x, w, padding=[(1, 1), 1]), want)
    np.testing.assert_array_equal(F.conv2d(np.ma.masked_array(x), w, padding=1), want)
    assert _conv._CHECKED == {}


def test_lists_of_ints_are_kept_apart_from_tuples(fresh):
    """A list of ints (the nn layers pass their padding so) is kept under a key of its own, not
    the tuple of the same ints', and what it keeps is the checks' own; a list the checks refuse
    is refused after an equal-looking one passed."""
    x = np.ones((2, 2, 7, 6), np.float32)
    w = np.ones((3, 2, 3, 2), np.float32)
    for padding, stride in (([1, 2], [1]), ([0, 1], [2, 1]), ((1, 2), (1,))):
        want = _conv._checked_args("conv2d", x, w, None, stride, padding, 1, 1, "zeros", 2)
        for _ in range(2):
            _same(_conv._conv_args("conv2d", x, w, None, stride, padding, 1, 1, "zeros", 2), want)
    assert len(_conv._CHECKED) == 3
    with pytest.raises(TypeError, match="conv2d"):
        F.conv2d(x, w, padding=[1, 2.0], stride=[1])
    with pytest.raises(ValueError, match="conv2d"):
        F.conv2d(x, w, padding=[1, 2, 3], stride=[1])


def test_a_full_store_starts_afresh(fresh, monkeypatch):
    monkeypatch.setattr(_conv, "CHECKED_ENTRIES", 2)
    w = np.ones((1, 1, 2), np.float32)
    for length in (5, 6, 7):
        F.conv1d(np.ones((1, 1, length), np.float32), w)
    assert len(_conv._CHECKED) == 1
