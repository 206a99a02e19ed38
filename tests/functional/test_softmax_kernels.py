"""softmax, log_softmax and cross_entropy on the compiled kernels (and on NumPy when Numba is off):
values, edge values and gradients against float64 oracles written here, not the library's code.

With Numba available the tests run under ``set_backend('numba')``, so even small inputs take the
kernels; under ``CNNLAB_DISABLE_NUMBA=1`` the same checks run on the NumPy path.
"""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab
import cnnlab.functional as F
from cnnlab.functional import _backend

NUMBA = _backend.numba_available()
# (shape, dim): the reduced axis last (rows, more rows than row tasks), first, in the middle, and
# a middle axis long enough to be split into several column blocks of unequal count
CASES = [
    ((4, 7), 1), ((130, 3), -1), ((1, 300), 1), ((3, 5, 6), 0), ((3, 5, 6), 1), ((3, 5, 6), -1),
    ((2, 40, 3, 3), 1), ((2, 5000, 20), 1), ((9,), 0),
]
DTYPES = [np.float32, np.float64]
# The kernels compute in float64 and round once; NumPy's float32 path computes in float32, so
# its exp, long sums and log_softmax near 0 (a difference of values near 1) are float32-accurate.
TOL = {np.float32: {"rtol": 2e-6, "atol": 1e-7} if NUMBA else {"rtol": 1e-4, "atol": 1e-5},
       np.float64: {"rtol": 1e-12, "atol": 1e-14}}


@pytest.fixture(autouse=True)
def _kernels():
    """Every test runs on the kernels when Numba is there (whatever the input size)."""
    with _backend.using("numba" if NUMBA else "numpy"):
        yield


def _ref_softmax(x: np.ndarray, dim: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    moved = np.moveaxis(x, dim, -1)
    dst = np.moveaxis(out, dim, -1)
    for idx in np.ndindex(moved.shape[:-1]):  # one slice at a time, the textbook formula
        row = moved[idx]
        top = max(row) if not np.isnan(row).any() else np.nan
        e = np.array([np.exp(v - top) for v in row])
        dst[idx] = e / e.sum()
    return out


def _ref_log_softmax(x: np.ndarray, dim: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    top = np.max(x, axis=dim, keepdims=True)
    return (x - top) - np.log(np.sum(np.exp(x - top), axis=dim, keepdims=True))


def _sample(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 4).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("shape", "dim"), CASES)
def test_forward_values(shape, dim, dtype):
    x = _sample(shape, dtype)
    y = F.softmax(x, dim)
    lp = F.log_softmax(x, dim)
    assert y.dtype == dtype and lp.dtype == dtype and y.shape == shape == lp.shape
    np.testing.assert_allclose(y, _ref_softmax(x, dim), **TOL[dtype])
    np.testing.assert_allclose(lp, _ref_log_softmax(x, dim), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("shape", "dim"), CASES)
def test_gradients_through_autograd_and_plain_backward(shape, dim, dtype):
    x = _sample(shape, dtype)
    g = _sample(shape, dtype, seed=1)
    p = _ref_softmax(x, dim)
    g64 = g.astype(np.float64)
    want_soft = p * (g64 - np.sum(g64 * p, axis=dim, keepdims=True))  # d softmax: p (g - <g, p>)
    want_log = g64 - p * np.sum(g64, axis=dim, keepdims=True)  # d log_softmax: g - p sum(g)
    for fn, back, want in ((F.softmax, F.softmax_backward, want_soft),
                           (F.log_softmax, F.log_softmax_backward, want_log)):
        xt = cnnlab.Tensor(x.copy(), requires_grad=True)
        fn(xt, dim).backward(g)
        assert xt.grad.dtype == dtype
        np.testing.assert_allclose(xt.grad, want, rtol=TOL[dtype]["rtol"] * 10, atol=TOL[dtype]["atol"] * 20)
        plain = back(g, x, dim)
        assert plain.dtype == dtype
        np.testing.assert_allclose(plain, want, rtol=TOL[dtype]["rtol"] * 10, atol=TOL[dtype]["atol"] * 20)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [1, 0])
def test_edge_values(dtype, dim):
    rows = np.array([
        [0.0, -np.inf, 1.0, 2.0],  # -inf gets probability 0
        [-np.inf] * 4,  # all -inf: NaN
        [1.0, np.inf, 0.0, 0.0],  # +inf: NaN
        [1.0, np.nan, 0.0, 2.0],  # NaN: NaN
        [1e4, -1e4, 0.0, 1e4],  # large magnitudes: no overflow
        [-1e4, -1e4 + 1, -1e4 + 2, -1e4],
    ], dtype=dtype)
    x = rows if dim == 1 else np.ascontiguousarray(rows.T)
    y = F.softmax(x, dim)
    lp = F.log_softmax(x, dim)
    line = (lambda a, i: a[i]) if dim == 1 else (lambda a, i: a[:, i])
    for i in (1, 2, 3):
        assert np.isnan(line(y, i)).all() and np.isnan(line(lp, i)).all()
    for i in (0, 4, 5):
        np.testing.assert_allclose(line(y, i), _ref_softmax(rows[i], 0), **TOL[dtype])
        np.testing.assert_allclose(line(lp, i), _ref_log_softmax(rows[i], 0), **TOL[dtype])
    assert line(y, 0)[1] == 0 and line(lp, 0)[1] == -np.inf
    np.testing.assert_array_equal(line(y, 4), np.array([0.5, 0, 0, 0.5], dtype=dtype))


def _torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("shape", "kwargs"), [
    ((64, 10), {}),
    ((130, 7), {"reduction": "sum", "weight": np.linspace(0.5, 2, 7)}),
    ((5, 6, 4, 3), {}),
    ((5, 6, 4, 3), {"reduction": "none", "label_smoothing": 0.1}),
    ((40, 5), {"ignore_index": 2}),
    ((3, 700, 20), {"weight": np.linspace(0.5, 2, 700)}),
])
def test_cross_entropy_against_torch(shape, kwargs, dtype):
    torch = _torch()
    x = _sample(shape, dtype)
    t = np.random.default_rng(2).integers(0, shape[1], (shape[0],) + shape[2:])
    xt = cnnlab.Tensor(x.copy(), requires_grad=True)
    loss = F.cross_entropy(xt, t, **kwargs)
    g = np.random.default_rng(3).standard_normal(loss.shape).astype(dtype)
    loss.backward(g)
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    tk = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    tloss = torch.nn.functional.cross_entropy(tx, torch.tensor(t), **tk)
    tloss.backward(torch.tensor(g, dtype=torch.float64))
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-14}
    assert loss.data.dtype == dtype and xt.grad.dtype == dtype
    np.testing.assert_allclose(loss.data, tloss.detach().numpy(), **tol)
    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), **tol)
    plain = F.cross_entropy_backward(g, x, t, **kwargs)
    np.testing.assert_allclose(plain, tx.grad.numpy(), **tol)


def test_cross_entropy_probability_targets_against_torch():
    torch = _torch()
    x = _sample((6, 5, 3), np.float64)
    q = np.random.default_rng(4).dirichlet(np.ones(5), size=(6, 3)).transpose(0, 2, 1).copy()
    xt, qt = cnnlab.Tensor(x.copy(), requires_grad=True), cnnlab.Tensor(q.copy(), requires_grad=True)
    F.cross_entropy(xt, qt, label_smoothing=0.2).backward()
    tx, tq = torch.tensor(x, requires_grad=True), torch.tensor(q, requires_grad=True)
    torch.nn.functional.cross_entropy(tx, tq, label_smoothing=0.2).backward()
    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(qt.grad, tq.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_cross_entropy_edge_values():
    x = np.array([[0.0, -np.inf, 1.0], [np.nan, 0.0, 1.0], [1e4, -1e4, 0.0]], dtype=np.float32)
    loss = F.cross_entropy(x, np.array([0, 1, 0]), reduction="none")
    np.testing.assert_allclose(loss[0], np.log(1 + np.e) - 0.0, rtol=1e-6)
    assert np.isnan(loss[1]) and loss[2] == 0
    assert F.cross_entropy(x[:1], np.array([1]), reduction="none")[0] == np.inf


@pytest.mark.skipif(not NUMBA, reason="Numba is not available (or CNNLAB_DISABLE_NUMBA is set)")
def test_the_kernels_run(monkeypatch):
    from cnnlab.functional import _numba_softmax as ns

    calls = []
    for name in ("_forward_rows", "_backward_rows", "_forward_columns", "_backward_columns"):
        kernel = getattr(ns, name)

        def spy(*args, _kernel=kernel, _name=name):
            calls.append(_name)
            return _kernel(*args)
        monkeypatch.setattr(ns, name, spy)
    x = cnnlab.Tensor(_sample((8, 5), np.float32), requires_grad=True)
    F.softmax(x, 1).sum().backward()
    assert calls == ["_forward_rows", "_backward_rows"]
    calls.clear()
    x = cnnlab.Tensor(_sample((2, 5, 3), np.float64), requires_grad=True)
    F.log_softmax(x, 1).sum().backward()
    assert calls == ["_forward_columns", "_backward_columns"]
    calls.clear()
    F.cross_entropy(cnnlab.Tensor(_sample((8, 5), np.float32), requires_grad=True), np.arange(8) % 5).backward()
    assert calls == ["_forward_rows"]  # its backward reads the saved softmax: no kernel needed
