"""The library's matrix products (``_blas.matmul``): small ones on one BLAS thread; large ones
split between threads (``_blas.products``), a stack's products each NumPy's to the bit, a single
product's parts each NumPy's product of that part to the bit, for every operand layout the BLAS
takes; anything else left to ``np.matmul`` on all of the BLAS's threads.

The oracle is ``np.matmul`` (NumPy's own loop), with a float64 ``einsum`` besides it; the split
runs with and without Numba (without it the helper threads sleep between jobs).  Where a product
is large enough for the BLAS to run it on several threads of its own, the oracle is NumPy's
product with the BLAS held to one thread (threadpoolctl), as each part of the split is: a threaded
OpenBLAS product can round otherwise (its Haswell kernels, which it takes on this Zen 5 machine,
do; on the Zen 4 before, it did not).
"""

from __future__ import annotations

import itertools
import threading

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


@pytest.fixture
def blas_threads():
    """The BLAS's thread controls, with its count set to 2 for the test and put back after."""
    calls = _blas._thread_calls()
    if not calls:
        pytest.skip("no BLAS thread control (threadpoolctl)")
    before = [get() for get, _ in calls]
    for _, set_ in calls:
        set_(2)
    try:
        if any(get() < 2 for get, _ in calls):
            pytest.skip("the BLAS here runs on one thread")
        yield calls
    finally:
        for (_, set_), p in zip(calls, before, strict=True):
            set_(p)


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


def _on_one_blas_thread(a, b):
    """NumPy's product with the BLAS held to one thread of its own (each product of a stack one
    single-threaded call, as each part of the split is)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        return np.matmul(a, b)


def test_the_split_takes_the_layer_sized_stacks_it_was_made_for(two_threads):
    rng = np.random.default_rng(9)
    w = rng.standard_normal((128, 64)).astype(np.float32)
    x = rng.standard_normal((4, 64, 784)).astype(np.float32)  # 12.8 MFLOP per product
    assert 2.0 * 128 * 64 * 784 >= _blas.MIN_PRODUCT_FLOPS
    want = _on_one_blas_thread(w, x)
    np.testing.assert_array_equal(_blas.products(w, x), want)
    np.testing.assert_array_equal(_blas.matmul(w, x), want)
    exact = np.einsum("ij,bjk->bik", w.astype(np.float64), x.astype(np.float64))
    np.testing.assert_allclose(want, exact, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("entry, worker", [("products", "_multiply"), ("summed", "_accumulate")])
def test_the_blas_runs_on_one_thread_during_the_split_and_is_restored_after(entry, worker, two_threads,
                                                                            small_products, blas_threads,
                                                                            monkeypatch):
    calls = blas_threads
    seen = []
    work = getattr(_blas, worker)

    def spy(*args):
        seen.append([get() for get, _ in calls])
        return work(*args)

    monkeypatch.setattr(_blas, worker, spy)
    rng = np.random.default_rng(10)
    a, b = _operands(rng, (4, 8, 8), (4, 8, 8), np.float32)
    assert getattr(_blas, entry)(a, b) is not None
    assert len(seen) == 2 and all(counts == [1] * len(calls) for counts in seen)  # (one call per thread)
    assert [get() for get, _ in calls] == [2] * len(calls)


def test_every_product_of_the_stack_is_computed_once_whichever_thread_takes_it(two_threads, small_products,
                                                                              monkeypatch):
    taken = []
    multiply = _blas._multiply

    def spy(routine, la, lb, k, ldc, jobs, count):
        def counting():
            while True:
                i = next(count)
                taken.append(i)
                yield i
        return multiply(routine, la, lb, k, ldc, jobs, counting())

    monkeypatch.setattr(_blas, "_multiply", spy)
    rng = np.random.default_rng(11)
    a, b = _operands(rng, (9, 4, 5), (9, 5, 3), np.float64)
    got = _blas.products(a, b)
    np.testing.assert_array_equal(got, np.matmul(a, b))
    assert sorted(i for i in taken if i < 9) == list(range(9))


@pytest.mark.parametrize("case", ["integers", "mixed dtypes", "one matrix, too few rows to cut", "small products",
                                  "rows with gaps", "one row", "one column", "a times its transpose", "out overlaps",
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
    elif case == "one matrix, too few rows to cut":
        a, b = a[0, :, :], b[0, :, :4]
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
    want = np.matmul(a, b, out=None if out is None else out.copy())
    np.testing.assert_array_equal(_blas.matmul(a, b, out=out), want)


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
    calls = _blas._thread_calls()
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("transpose_b", [False, True])
@pytest.mark.parametrize("shape", [(70, 9, 40), (40, 9, 70), (50, 5, 33), (130, 17, 3)], ids=str)
def test_a_single_product_is_cut_along_its_longer_side_each_part_numpys(shape, transpose_a, transpose_b, dtype,
                                                                       two_threads, small_products):
    m, k, n = shape
    rng = np.random.default_rng(16)
    a, b = _operands(rng, (m, k), (k, n), dtype, transpose_a, transpose_b)
    got = _blas.products(a, b)
    assert got is not None
    rows = a.shape[0] >= b.shape[1]
    cuts = _blas._cuts(a.shape[0] if rows else b.shape[1], 2)
    assert len(cuts) == 3 and all(c % _blas.PART_MULTIPLE == 0 for c in cuts[1:-1])
    for first, last in itertools.pairwise(cuts):
        part = np.matmul(a[first:last], b) if rows else np.matmul(a, b[:, first:last])
        np.testing.assert_array_equal(got[first:last] if rows else got[:, first:last], part)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(got, exact, rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-5)


def test_a_product_of_two_threads_with_too_few_rows_and_columns_is_not_cut(two_threads, small_products):
    rng = np.random.default_rng(17)
    a, b = _operands(rng, (20, 30), (30, 24), np.float32)  # (no side reaches 2 * PART_MULTIPLE)
    assert _blas.products(a, b) is None
    np.testing.assert_array_equal(_blas.matmul(a, b), np.matmul(a, b))


def test_a_stack_of_fewer_products_than_threads_cuts_each(small_products):
    before = _backend._state["threads"]
    _backend._state["threads"] = 4
    try:
        rng = np.random.default_rng(18)
        a, b = _operands(rng, (2, 64, 8), (2, 8, 20), np.float32)
        got = _blas.products(a, b)
        cuts = _blas._cuts(64, 2)
        for i in range(2):
            for first, last in itertools.pairwise(cuts):
                np.testing.assert_array_equal(got[i, first:last], np.matmul(a[i, first:last], b[i]))
    finally:
        _backend._state["threads"] = before


@pytest.mark.parametrize("size, parts", [(64, 2), (65, 2), (100, 3), (31, 2), (16, 4), (1000, 7), (33, 2), (47, 2)])
def test_cuts_cover_the_rows_once_at_multiples_of_the_register_block(size, parts):
    cuts = _blas._cuts(size, parts)
    assert cuts[0] == 0 and cuts[-1] == size
    assert all(b > a for a, b in itertools.pairwise(cuts))
    assert len(cuts) - 1 <= parts
    assert all(c % _blas.PART_MULTIPLE == 0 for c in cuts[1:-1])
    assert len(cuts) == 2 or cuts[-1] - cuts[-2] >= _blas.PART_MULTIPLE  # (no part of a row or two)


def _spy_thread_counts(monkeypatch):
    """Record the BLAS thread counts that each ``np.matmul`` call of ``_blas`` runs with."""
    seen = []
    original = np.matmul

    def spy(a, b, out=None):
        seen.append([get() for get, _ in _blas._thread_calls()])
        return original(a, b, out=out)

    monkeypatch.setattr(_blas.np, "matmul", spy)
    return seen, original


def test_small_products_run_on_one_blas_thread_and_restore_the_count(blas_threads, monkeypatch):
    calls = blas_threads
    seen, original = _spy_thread_counts(monkeypatch)
    a = np.arange(100 * 100, dtype=np.float32).reshape(100, 100) % 7  # (1e6 multiply-adds, 2e6 flops)
    assert _blas.BLAS_ONE_THREAD_MNK < 100 ** 3 and 2.0 * 100 ** 3 < _blas.SMALL_GEMM_FLOPS
    np.testing.assert_array_equal(_blas.matmul(a, a.copy()), original(a, a))
    assert seen == [[1] * len(calls)]
    assert [get() for get, _ in calls] == [2] * len(calls)


def test_products_openblas_runs_on_one_thread_by_itself_keep_the_thread_count(blas_threads, monkeypatch):
    calls = blas_threads
    if not _blas._openblas():
        pytest.skip("NumPy's BLAS here is not OpenBLAS")
    seen, original = _spy_thread_counts(monkeypatch)
    rng = np.random.default_rng(21)
    side = round(_blas.BLAS_ONE_THREAD_MNK ** (1 / 3))  # (64: 262,144 multiply-adds, the largest such)
    cases = [_operands(rng, (side, side), (side, side), np.float32),
             _operands(rng, (64, 84), (84, 10), np.float32),  # (LeNet-5's last layer)
             _operands(rng, (6, 20, 30), (6, 30, 40), np.float64, transpose_b=True)]  # (a stack)
    for a, b in cases:
        np.testing.assert_array_equal(_blas.matmul(a, b), original(a, b))
    assert seen == [[2] * len(calls)] * len(cases)
    # one more multiply-add, a one-row product (NumPy's gemv) and a matrix times its own transpose
    # (syrk) take one thread as before
    seen.clear()
    a, b = _operands(rng, (side, side + 1), (side + 1, side), np.float32)
    row, matrix = _operands(rng, (1, 300), (300, 200), np.float32)
    small = rng.standard_normal((20, 30)).astype(np.float32)
    for x, y in ((a, b), (row, matrix), (small, small.T)):
        np.testing.assert_array_equal(_blas.matmul(x, y), original(x, y))
    assert seen == [[1] * len(calls)] * 3
    assert [get() for get, _ in calls] == [2] * len(calls)


def test_a_stack_of_small_products_runs_one_after_the_other_on_one_blas_thread(two_threads, monkeypatch):
    calls = _blas._thread_calls()
    if not calls:
        pytest.skip("threadpoolctl finds no BLAS here")
    seen, original = _spy_thread_counts(monkeypatch)
    rng = np.random.default_rng(19)
    a, b = _operands(rng, (8, 70, 70), (8, 70, 70), np.float32)  # 686,000 flops each, 5.5e6 in all
    assert 70 ** 3 > _blas.BLAS_ONE_THREAD_MNK  # (each above what OpenBLAS runs on one thread by itself)
    monkeypatch.setattr(_blas, "SMALL_GEMM_FLOPS", 1e6)
    np.testing.assert_array_equal(_blas.matmul(a, b), original(a, b))
    assert seen == [[1] * len(calls)]


def test_large_products_split_leave_the_helpers_watching_and_unsplit_ones_park_them(two_threads, monkeypatch):
    team = _backend._team(1)
    parked = []
    monkeypatch.setattr(team, "park", lambda: parked.append(True))
    big = np.ones((400, 400), np.float32)  # 2 * 400**3 flops, above SMALL_GEMM_FLOPS
    assert 2.0 * 400 ** 3 >= _blas.SMALL_GEMM_FLOPS
    np.testing.assert_array_equal(_blas.matmul(big, big.copy()), np.full((400, 400), 400, np.float32))
    assert parked == []
    monkeypatch.setattr(_blas, "products", lambda a, b, out=None: None)  # (as where no BLAS is found)
    np.testing.assert_array_equal(_blas.matmul(big, big.copy()), np.full((400, 400), 400, np.float32))
    assert parked == [True]


def test_integer_products_are_numpys_exact_loops(two_threads, small_products):
    a = np.arange(2 * 40 * 40, dtype=np.int64).reshape(2, 40, 40) * (1 << 20)
    np.testing.assert_array_equal(_blas.matmul(a, a), np.matmul(a, a))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("inner", [(), (3,)], ids=["no groups", "3 groups"])
def test_summed_adds_every_product_of_the_stack(inner, dtype, two_threads, small_products):
    # integer values: every partial sum is exact, so any order gives the exact sum, to the bit
    rng = np.random.default_rng(20)
    a = rng.integers(-8, 8, (5, *inner, 6, 40)).astype(dtype)
    b = rng.integers(-8, 8, (5, *inner, 7, 40)).astype(dtype).swapaxes(-1, -2)  # (the 1x1 layer's x.T)
    got = _blas.summed(a, b)
    assert got is not None and got.dtype == dtype and got.shape == (*inner, 6, 7)
    exact = np.einsum("n...ik,n...kj->...ij", a.astype(np.int64), b.astype(np.int64))
    np.testing.assert_array_equal(got, exact)


def test_summed_of_real_values_is_the_sum_within_rounding_and_the_same_each_call(two_threads, small_products):
    rng = np.random.default_rng(21)
    a = rng.standard_normal((9, 2, 16, 300)).astype(np.float32)
    b = rng.standard_normal((9, 2, 300, 12)).astype(np.float32)
    got = _blas.summed(a, b)
    exact = np.einsum("ngik,ngkj->gij", a.astype(np.float64), b.astype(np.float64))
    np.testing.assert_allclose(got, exact, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(_blas.summed(a, b), got)  # (each thread's run of the stack is fixed)


@pytest.mark.parametrize("case", ["one product", "different groups", "integers", "mixed dtypes", "small products"])
def test_what_summed_leaves_to_the_caller(case, two_threads, monkeypatch):
    rng = np.random.default_rng(22)
    a, b = _operands(rng, (4, 6, 8), (4, 8, 5), np.float32)
    if case != "small products":
        monkeypatch.setattr(_blas, "MIN_PRODUCT_FLOPS", 0.0)
    if case == "one product":
        a, b = a[:1], b[:1]
    elif case == "different groups":
        a = np.stack([a, a], axis=1)
    elif case == "integers":
        a, b = a.astype(np.int64), b.astype(np.int64)
    elif case == "mixed dtypes":
        b = b.astype(np.float64)
    assert _blas.summed(a, b) is None


def test_sizes_beyond_the_blas_integers_are_left_to_numpy(two_threads, small_products, monkeypatch):
    rng = np.random.default_rng(24)
    a, b = _operands(rng, (4, 40, 9), (4, 9, 40), np.float32)
    routine = _blas._gemm_routines()["f"]
    monkeypatch.setattr(routine, "largest", 39)  # (as a 32-bit BLAS for sizes past 2**31 - 1)
    assert _blas.products(a, b) is None and _blas.summed(a, b) is None
    np.testing.assert_array_equal(_blas.matmul(a, b), np.matmul(a, b))
    monkeypatch.setattr(routine, "largest", 40)
    assert _blas.products(a, b) is not None and _blas.summed(a, b) is not None


def test_overlapping_one_thread_spans_put_the_count_back_when_the_last_ends(blas_threads):
    calls = blas_threads
    _blas._enter_one_thread()  # (a caller on one thread...)
    entered = threading.Event()
    leave = threading.Event()

    def other() -> None:  # (...and one on another, whose span starts while the first's is open)
        _blas._enter_one_thread()
        entered.set()
        leave.wait(60)
        _blas._leave_one_thread()

    worker = threading.Thread(target=other)
    worker.start()
    assert entered.wait(60)
    _blas._leave_one_thread()  # the first ends: the other's span is still open
    assert [get() for get, _ in calls] == [1] * len(calls)
    leave.set()
    worker.join(60)
    assert [get() for get, _ in calls] == [2] * len(calls)  # the last ended: the count is back


def test_products_from_several_python_threads_at_once_leave_the_count_as_it_was(two_threads, blas_threads):
    calls = blas_threads
    rng = np.random.default_rng(25)
    small = _operands(rng, (8, 8), (8, 8), np.float32)
    large = _operands(rng, (4, 128, 64), (4, 64, 400), np.float32)
    # (a large product is split, each product on one BLAS thread, or, with the team busy, left to
    # NumPy on the BLAS's threads, two of them or one where another caller holds it to one: its
    # bits are one of these two, which a threaded OpenBLAS product can round apart)
    large_wants = [_on_one_blas_thread(*large), np.matmul(*large)]
    small_want = np.matmul(*small)
    failures = []

    def work() -> None:
        try:
            for _ in range(30):
                np.testing.assert_array_equal(_blas.matmul(*small), small_want)
                got = _blas.matmul(*large)
                if not any(np.array_equal(got, want) for want in large_wants):
                    np.testing.assert_array_equal(got, large_wants[0])
        except BaseException as exc:  # (reported on the test's thread)
            failures.append(exc)

    workers = [threading.Thread(target=work) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert not failures and not any(w.is_alive() for w in workers)
    assert [get() for get, _ in calls] == [2] * len(calls)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shapes", [((7, 1), (1, 9)), ((3, 1, 5, 1), (4, 1, 6)), ((1, 8, 1), (64, 1, 1, 40))], ids=str)
def test_outer_products_are_numpys_to_the_bit_with_signed_zeros_and_non_finite_values(shapes, dtype):
    # (an inner size of 1: a sum of one product, which starts from +0.0 in NumPy's loop and the BLAS)
    rng = np.random.default_rng(7)
    values = np.array([0.0, -0.0, 1.5, -2.25, np.inf, -np.inf, np.nan, 1e-30, 3e38], dtype=dtype)
    a, b = (rng.choice(values, size=s).astype(dtype) for s in shapes)
    with np.errstate(all="ignore"):
        want = np.matmul(a, b)
        got = _blas.matmul(a, b)
        buffer = np.full(want.shape, 5, dtype=dtype)
        out = _blas.matmul(a, b, out=buffer)
    assert out is buffer
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got.view(f"u{got.itemsize}"), want.view(f"u{want.itemsize}"))
    np.testing.assert_array_equal(out.view(f"u{out.itemsize}"), want.view(f"u{want.itemsize}"))


def test_mixed_float_outer_products_promote_as_numpy_does():
    a = np.arange(4, dtype=np.float32).reshape(4, 1) - 1.5
    b = np.arange(3, dtype=np.float64).reshape(1, 3) * 1e-3
    got, want = _blas.matmul(a, b), np.matmul(a, b)
    assert got.dtype == want.dtype == np.float64
    np.testing.assert_array_equal(got, want)
