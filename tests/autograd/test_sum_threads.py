"""A sum of every value of a large array runs as two halves on two threads
(``_backend.sum_all``) and gives NumPy's ``np.sum`` bit for bit: the same halves NumPy's pairwise
sum splits the array into first."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from cnnlab import Tensor
from cnnlab.functional import _backend

# sizes around NumPy's split (a multiple of 8 below n // 2) and its 128-value blocks
SIZES = [1, 7, 8, 129, 1000, 1023, 4096, 8193, 65_537, 300_001, 1 << 20, (1 << 20) + 13]


@pytest.fixture
def two_threads(monkeypatch):
    """Two threads, and every array large enough for the threaded sum."""
    previous = _backend._state["threads"]
    _backend._state["threads"] = 2
    monkeypatch.setattr(_backend, "PARALLEL_SUM_MIN", 1)
    yield
    _backend._state["threads"] = previous


def _values(n: int, dtype, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # magnitudes over eight decades: every change of the order of additions shows in the last bits
    return (rng.standard_normal(n) * 10.0 ** rng.integers(-4, 4, n)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
def test_matches_numpy_bit_for_bit(two_threads, n, dtype):
    a = _values(n, dtype, seed=n)
    got, want = _backend.sum_all(a), np.sum(a)
    assert got.dtype == want.dtype == dtype
    assert got.tobytes() == want.tobytes()


def test_a_different_split_would_show():
    """The check above can fail: halves split anywhere else than NumPy's give other last bits."""
    a = _values(300_011, np.float32, seed=3)
    half = a.size // 2  # 150,005: NumPy's split is 150,000
    assert (np.add.reduce(a[:half]) + np.add.reduce(a[half:])).tobytes() != np.sum(a).tobytes()


def test_the_second_half_runs_on_another_thread(two_threads, monkeypatch):
    seen = []
    reduce = _backend._reduce
    caller, helper_began = threading.get_ident(), threading.Event()

    def spy(part):
        if threading.get_ident() != caller:
            helper_began.set()
        else:  # (the caller's half waits for the helper's to begin: none is left to take back)
            helper_began.wait(30)
        seen.append((part.size, threading.get_ident()))
        return reduce(part)

    monkeypatch.setattr(_backend, "_reduce", spy)
    a = _values(1001, np.float32, seed=5)
    assert _backend.sum_all(a).tobytes() == np.sum(a).tobytes()
    assert sorted(size for size, _ in seen) == [496, 505]
    assert len({ident for _, ident in seen}) == 2


@pytest.mark.parametrize("special", [np.nan, np.inf, -np.inf, -0.0])
def test_special_values(two_threads, special):
    a = _values(5000, np.float32, seed=9)
    a[[17, 4000]] = special
    assert _backend.sum_all(a).tobytes() == np.sum(a).tobytes()
    zeros = np.full(5000, -0.0, np.float32)
    assert _backend.sum_all(zeros).tobytes() == np.sum(zeros).tobytes()


@pytest.mark.parametrize("a", [
    np.arange(5000, dtype=np.int32),  # (NumPy's sum promotes it to int64)
    np.linspace(0, 1, 5000).astype(np.float16),
    np.ones((300, 40), np.float32)[:, ::2],  # not contiguous
])
def test_other_arrays_take_numpy(two_threads, a):
    got, want = _backend.sum_all(a), np.sum(a)
    assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


@pytest.mark.parametrize("keepdim", [False, True])
def test_tensor_sum_of_every_value(two_threads, keepdim):
    x = _values(6 * 5 * 7 * 11, np.float32, seed=11).reshape(6, 5, 7, 11)
    t = Tensor(x, requires_grad=True)
    s = t.sum(keepdim=keepdim) if keepdim else t.sum()
    want = np.sum(x, keepdims=keepdim)
    assert np.asarray(s.data).shape == want.shape and np.asarray(s.data).tobytes() == want.tobytes()
    s.sum().backward()
    np.testing.assert_array_equal(t.grad, np.ones_like(x))
    # all axes named one by one: the same sum
    assert np.asarray(t.sum(dim=(0, 1, 2, 3)).data).tobytes() == np.sum(x).tobytes()
