"""Stacks of matrix products split between threads (``_blas.products``): each product is NumPy's,
to the bit, for every operand layout the BLAS takes, and anything else is left to ``np.matmul``.

The oracle is ``np.matmul`` (NumPy's own loop over the stack), with a float64 ``einsum`` besides
it; the split runs with and without Numba (without it the helper threads sleep between jobs).
"""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.functional import _backend, _blas, _team

pytestmark = pytest.mark.skipif(not _blas._gemm_routines(), reason="no CBLAS routines found in NumPy's BLAS")


@pytest.fixture
def two_threads():
    before = _backend._state["threads"]
    _backend._state["threads"] = 2
    yield
    _backend._state["threads"] = before


@pytest.fixture
def small_products(monkeypatch):
    monkeypatch.setattr(_blas, "MIN_PRODUCT_FLOPS", 0.0)


def _operands(rng, shape_a, shape_b, dtype, transpose_a=False, transpose_b=False):
    def make(shape, transpose):
        if transpose:  # (the matrices stored column by column: a transposed view)
            return rng.standard_normal((*shape[:-2], shape[-1], shape[-2])).astype(dtype).swapaxes(-1, -2)
        return rng.standard_normal(shape).astype(dtype)
    return make(shape_a, transpose_a), make(shape_b, transpose_b)


CASES = [  # (a's shape, b's shape)
    ((5, 7, 9), (5, 9, 11)),
    ((7, 9), (6, 9, 11)),  # one matrix against a stack
    ((6, 7, 9), (9, 11)),
    ((3, 1, 7, 9), (1, 4, 9, 11)),  # broadcast stack dimensions
    ((2, 3, 7, 1), (2, 3, 1, 9)),  # outer products
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("transpose_b", [False, True])
@pytest.mark.parametrize("shapes", CASES, ids=str)
def test_each_product_is_numpys_to_the_bit(shapes, transpose_a, transpose_b, dtype, two_threads, small_products):
    rng = np.random.default_rng(7)
    a, b = _operands(rng, *shapes, dtype, transpose_a, transpose_b)
    got = _blas.products(a, b)
    assert got is not None
    want = np.matmul(a, b)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    exact = np.einsum("...ij,...jk->...ik", a.astype(np.float64), b.astype(np.float64))
    np.testing.assert_allclose(got, exact, rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-5)


def test_products_of_strided_stacks_and_into_out(two_threads, small_products):
    rng = np.random.default_rng(8)
    big_a = rng.standard_normal((8, 6, 10)).astype(np.float32)
    big_b = rng.standard_normal((4, 12, 5)).astype(np.float32)
    a, b = big_a[::2, :, 1:8], big_b[:, 2:9, :]  # every other matrix; rows with gaps between them
    out = np.full((4, 6, 5), np.nan, np.float32)
    got = _blas.products(a, b, out=out)
    assert got is out
    np.testing.assert_array_equal(out, np.matmul(a, b))


def test_the_split_takes_the_layer_sized_stacks_it_was_made_for(two_threads):
    rng = np.random.default_rng(9)
    w = rng.standard_normal((128, 64)).astype(np.float32)
    x = rng.standard_normal((4, 64, 784)).astype(np.float32)  # 12.8 MFLOP per product
    assert 2.0 * 128 * 64 * 784 >= _blas.MIN_PRODUCT_FLOPS
    np.testing.assert_array_equal(_blas.products(w, x), np.matmul(w, x))
    np.testing.assert_array_equal(_blas.matmul(w, x), np.matmul(w, x))


def test_the_blas_runs_on_one_thread_during_the_split_and_is_restored_after(two_threads, small_products,
                                                                            monkeypatch):
    calls = _backend._blas_thread_calls()
    if not calls:
        pytest.skip("no BLAS thread control (threadpoolctl)")
    seen = []
    multiply = _blas._multiply

    def spy(*args):
        seen.append([get() for get, _ in calls])
        return multiply(*args)

    monkeypatch.setattr(_blas, "_multiply", spy)
    before = [get() for get, _ in calls]
    for _, set_ in calls:
        set_(2)
    try:
        rng = np.random.default_rng(10)
        a, b = _operands(rng, (4, 8, 8), (4, 8, 8), np.float32)
        assert _blas.products(a, b) is not None
        assert seen and all(counts == [1] * len(calls) for counts in seen)
        assert [get() for get, _ in calls] == [2] * len(calls)
    finally:
        for (_, set_), p in zip(calls, before, strict=True):
            set_(p)


def test_every_product_of_the_stack_is_computed_once_whichever_thread_takes_it(two_threads, small_products,
                                                                              monkeypatch):
    taken = []
    multiply = _blas._multiply

    def spy(routine, la, lb, m, n, k, pa, pb, pc, count):
        def counting():
            while True:
                i = next(count)
                taken.append(i)
                yield i
        return multiply(routine, la, lb, m, n, k, pa, pb, pc, counting())

    monkeypatch.setattr(_blas, "_multiply", spy)
    rng = np.random.default_rng(11)
    a, b = _operands(rng, (9, 4, 5), (9, 5, 3), np.float64)
    got = _blas.products(a, b)
    np.testing.assert_array_equal(got, np.matmul(a, b))
    assert sorted(i for i in taken if i < 9) == list(range(9))


@pytest.mark.parametrize("case", ["integers", "mixed dtypes", "one matrix", "small products", "rows with gaps",
                                  "one row", "one column", "a times its transpose", "out overlaps",
                                  "out of another dtype", "out not contiguous", "empty stack"])
def test_what_the_split_leaves_to_numpy(case, two_threads, monkeypatch):
    rng = np.random.default_rng(12)
    a, b = _operands(rng, (4, 6, 8), (4, 8, 5), np.float32)
    out = None
    if case != "small products":
        monkeypatch.setattr(_blas, "MIN_PRODUCT_FLOPS", 0.0)
    if case == "integers":
        a, b = a.astype(np.int64), b.astype(np.int64)
    elif case == "mixed dtypes":
        b = b.astype(np.float64)
    elif case == "one matrix":
        a, b = a[0], b[0]
    elif case == "rows with gaps":
        a = rng.standard_normal((4, 6, 16)).astype(np.float32)[:, :, ::2]
    elif case == "one row":
        a = a[:, :1]
    elif case == "one column":
        b = b[:, :, :1]
    elif case == "a times its transpose":
        b = a.swapaxes(1, 2)
    elif case == "out overlaps":
        a, b = _operands(rng, (4, 6, 6), (4, 6, 6), np.float32)
        out = a
    elif case == "out of another dtype":
        out = np.empty((4, 6, 5), np.float64)
    elif case == "out not contiguous":
        out = np.empty((4, 6, 10), np.float32)[:, :, ::2]
    elif case == "empty stack":
        a, b = a[:0], b[:0]
    assert _blas.products(a, b, out=out) is None
    if out is None or case == "out of another dtype":
        want = np.matmul(a, b, out=None if out is None else out.copy())
        got = _blas.matmul(a, b, out=out)
        np.testing.assert_array_equal(got, want)


def test_one_thread_leaves_the_stack_to_numpy(small_products):
    before = _backend._state["threads"]
    _backend.set_num_threads(1)
    try:
        rng = np.random.default_rng(13)
        a, b = _operands(rng, (4, 6, 8), (4, 8, 5), np.float32)
        assert _blas.products(a, b) is None
    finally:
        _backend._state["threads"] = before
        _backend.set_num_threads(_backend.get_num_threads())
        _backend._state["threads"] = before


def test_a_split_called_from_inside_a_job_is_left_to_numpy(two_threads, small_products):
    rng = np.random.default_rng(14)
    a, b = _operands(rng, (4, 6, 8), (4, 8, 5), np.float32)
    inner = []
    team = _backend._team(1)

    def job():
        inner.append(_blas.products(a, b))
        inner.append(_blas.matmul(a, b))

    assert team.run([(job, ()), (lambda: None, ())]) is not None
    assert inner[0] is None
    np.testing.assert_array_equal(inner[1], np.matmul(a, b))


def test_an_error_of_the_blas_call_is_raised_after_the_split_and_the_thread_count_is_restored(
        two_threads, small_products, monkeypatch):
    calls = _backend._blas_thread_calls()
    before = [get() for get, _ in calls]

    def failing(*args):
        raise RuntimeError("planted")

    monkeypatch.setattr(_blas, "_multiply", failing)
    rng = np.random.default_rng(15)
    a, b = _operands(rng, (4, 6, 8), (4, 8, 5), np.float32)
    with pytest.raises(RuntimeError, match="planted"):
        _blas.products(a, b)
    assert [get() for get, _ in calls] == before
    assert isinstance(_backend._team(1), _team.Team)
