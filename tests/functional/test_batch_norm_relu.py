"""``batch_norm_relu``, the fused ``relu(batch_norm(x))``: against a formula written here, PyTorch,
finite differences and the two unfused operators; and ``nn.Sequential`` fusing BatchNorm + ReLU
only where nothing can see the value between them.  Runs with and without Numba."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab import Tensor, nn
from cnnlab.functional import _backend
from tests.functional.opinfo import torch

RNG = np.random.default_rng(11)
SHAPES = [(6, 3), (4, 3, 5), (5, 4, 6, 7), (2, 3, 2, 3, 4)]


def _oracle(x, mean, var, w, b, eps):
    """max(0, w * (x - mean) / sqrt(var + eps) + b) per channel (axis 1), in float64."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    z = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * w.reshape(shape) + b.reshape(shape)
    return np.maximum(z, 0)


def _case(shape, dtype=np.float64):
    x = RNG.standard_normal(shape).astype(dtype)
    c = shape[1]
    w, b = RNG.standard_normal(c).astype(dtype), RNG.standard_normal(c).astype(dtype)
    rm, rv = RNG.standard_normal(c).astype(dtype), (RNG.random(c) + 0.5).astype(dtype)
    return x, w, b, rm, rv


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
def test_forward_matches_the_formula_and_updates_statistics_like_batch_norm(shape, training):
    x, w, b, rm, rv = _case(shape)
    axes = (0, *range(2, x.ndim))
    r1, r2 = rm.copy(), rv.copy()
    y = F.batch_norm_relu(x, r1, r2, w, b, training, 0.2, 1e-4)
    if training:
        want = _oracle(x, x.mean(axis=axes), x.var(axis=axes), w, b, 1e-4)
        m = x.size // shape[1]
        np.testing.assert_allclose(r1, 0.8 * rm + 0.2 * x.mean(axis=axes), rtol=1e-12)
        np.testing.assert_allclose(r2, 0.8 * rv + 0.2 * x.var(axis=axes) * m / (m - 1), rtol=1e-12)
    else:
        want = _oracle(x, rm, rv, w, b, 1e-4)
        np.testing.assert_array_equal(r1, rm)
        np.testing.assert_array_equal(r2, rv)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    assert y.dtype == np.float64 and (y >= 0).all()


@pytest.mark.parametrize("training", [True, False])
def test_tensor_gradients_match_finite_differences(training):
    x, w, b, rm, rv = _case((3, 2, 4, 3))
    r = RNG.standard_normal(x.shape)

    def loss(xv, wv, bv):
        return float((r * F.batch_norm_relu(xv, rm.copy(), rv.copy(), wv, bv, training)).sum())

    xt, wt, bt = (Tensor(a.copy(), requires_grad=True) for a in (x, w, b))
    F.batch_norm_relu(xt, rm.copy(), rv.copy(), wt, bt, training).backward(r)
    h = 1e-6
    for which, (arr, grad) in enumerate(((x, xt.grad), (w, wt.grad), (b, bt.grad))):
        numeric = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            args = [x.copy(), w.copy(), b.copy()]
            args[which][idx] += h
            up = loss(*args)
            args[which][idx] -= 2 * h
            numeric[idx] = (up - loss(*args)) / (2 * h)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6, err_msg=f"argument {which}")


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_equals_relu_of_batch_norm_and_the_plain_backward(shape, training, dtype):
    x, w, b, rm, rv = _case(shape, dtype)
    x.flat[0] = np.nan  # NaN stays NaN and passes its gradient through, as relu does
    g = RNG.standard_normal(shape).astype(dtype)
    results = []
    for fused in (True, False):
        xt, wt, bt = (Tensor(a.copy(), requires_grad=True) for a in (x, w, b))
        r1, r2 = rm.copy(), rv.copy()
        y = (F.batch_norm_relu(xt, r1, r2, wt, bt, training) if fused
             else F.relu(F.batch_norm(xt, r1, r2, wt, bt, training)))
        y.backward(g)
        results.append((y.data, xt.grad, wt.grad, bt.grad, r1, r2))
    tol = dict(rtol=1e-5, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for got, want in zip(*results, strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, equal_nan=True, **tol)
    plain = F.batch_norm_relu.backward(g, x, rm.copy(), rv.copy(), w, b, training)
    assert plain[1] is None and plain[2] is None
    for got, want in zip((plain[0], plain[3], plain[4]), results[0][1:4], strict=True):
        np.testing.assert_allclose(got, want, equal_nan=True, **tol)


@pytest.mark.skipif(torch is None, reason="needs torch")
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_torch(training, dtype):
    x, w, b, rm, rv = _case((8, 5, 9, 9), dtype)
    g = RNG.standard_normal(x.shape).astype(dtype)
    xt, wt, bt = (Tensor(a.copy(), requires_grad=True) for a in (x, w, b))
    r1, r2 = rm.copy(), rv.copy()
    y = F.batch_norm_relu(xt, r1, r2, wt, bt, training, 0.1, 1e-5)
    y.backward(g)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    t1, t2 = torch.tensor(rm), torch.tensor(rv)
    ty = torch.relu(torch.nn.functional.batch_norm(tx, t1, t2, tw, tb, training, 0.1, 1e-5))
    ty.backward(torch.tensor(g))
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    pairs = [(y.data, ty), (xt.grad, tx.grad), (wt.grad, tw.grad), (bt.grad, tb.grad), (r1, t1), (r2, t2)]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours, theirs.detach().numpy(), **tol)


def test_errors_name_the_fused_operator():
    with pytest.raises(ValueError, match="batch_norm_relu: x must be"):
        F.batch_norm_relu(np.ones(3), training=True)
    with pytest.raises(ValueError, match="batch_norm_relu_backward: grad_out must have the input's shape"):
        F.batch_norm_relu.backward(np.ones((2, 2)), np.ones((2, 3)), training=True)


def _model(hook=None):
    rng = np.random.default_rng(3)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(3 * 5 * 5, 2))
    for p in model.parameters():
        p.data[...] = rng.standard_normal(p.data.shape)
    if hook is not None:
        model[1].register_forward_hook(hook)
    return model


def test_sequential_fuses_batch_norm_and_relu_with_the_same_results():
    x = np.random.default_rng(4).standard_normal((4, 2, 5, 5))
    fused, plain = _model(), _model()
    seen = []
    plain[1].register_forward_hook(lambda m, args, out: seen.append(out.data.copy()))  # a hook stops fusion
    for model in (fused, plain):
        model(Tensor(x)).sum().backward()
    assert len(seen) == 1 and (seen[0] < 0).any()  # the hook saw the value before the ReLU
    for (name, p), q in zip(fused.named_parameters(), plain.parameters(), strict=True):
        np.testing.assert_allclose(p.grad, q.grad, rtol=1e-12, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(fused[1].running_var.data, plain[1].running_var.data, rtol=1e-12)
    assert int(fused[1].num_batches_tracked.data) == 1
    fused.eval(), plain.eval()
    np.testing.assert_allclose(fused(x).data, plain(x).data, rtol=1e-12, atol=1e-12)


def test_sequential_uses_the_fused_operator_only_where_it_may():
    calls = []

    class Counting(nn.BatchNorm2d):
        def forward_relu(self, x):
            calls.append("fused")
            return super().forward_relu(x)

    class Shifted(nn.BatchNorm2d):  # a subclass with its own forward is always called as written
        def forward(self, x):
            return super().forward(x) + 1.0

    x = np.random.default_rng(5).standard_normal((3, 2, 4, 4))
    nn.Sequential(Counting(2), nn.ReLU())(x)
    assert calls == ["fused"]
    shifted = nn.Sequential(Shifted(2), nn.ReLU())(x)
    np.testing.assert_array_equal(shifted.data, F.relu(Shifted(2)(x).data))
    hooked = Counting(2)
    hooked.register_forward_hook(lambda m, args, out: None)
    nn.Sequential(hooked, nn.ReLU())(x)
    relu_hooked = nn.ReLU()
    relu_hooked.register_forward_hook(lambda m, args, out: None)
    nn.Sequential(Counting(2), relu_hooked)(x)
    nn.Sequential(Counting(2), nn.LeakyReLU())(x)
    assert calls == ["fused"]


@pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")
def test_compiled_backward_recomputes_the_forward_mask_to_the_bit():
    # the compiled backward takes ReLU's mask from x (the value before the clamp, recomputed) rather
    # than from the output: a value the forward rounded to exactly 0 (clamped: gradient 0) must be 0
    # in the backward too.  The bias puts one element per channel exactly on the kink (64 channels:
    # a formula rounded differently misses some), and a large upstream gradient there would show
    # in every gradient if the backward let it through.
    from cnnlab.functional import _norm

    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 64, 5, 5)).astype(np.float32)
    w = rng.standard_normal(64).astype(np.float32)
    previous = _backend.set_backend("numba")
    try:
        _, saved = _norm.batch_norm_relu_forward_saving((True, False, False, True, True), x, None, None, w,
                                                        np.zeros(64, np.float32), True)
        kink = (rng.integers(0, 6, 64), np.arange(64), rng.integers(0, 5, 64), rng.integers(0, 5, 64))
        xhat = (x[kink] - saved.mean) * saved.inv_std  # float32, in the forward's order
        b = -(xhat * w)
        y, saved = _norm.batch_norm_relu_forward_saving((True, False, False, True, True), x, None, None, w, b, True)
        g = np.ones_like(x)
        g[kink] = 1e4
        gx, _, _, gw, gb = _norm.batch_norm_backward_saved(g, saved, (True, False, False, True, True))
    finally:
        _backend.set_backend(previous)
    assert np.all(y[kink] == 0)  # exactly on the kink, clamped
    ex, _, _, ew, eb = F.batch_norm_backward_all(np.where(y <= 0, 0, g).astype(np.float32), x, None, None, w, b,
                                                 training=True)
    np.testing.assert_allclose(gb, eb, rtol=1e-5)
    np.testing.assert_allclose(gw, ew, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(gx, ex, rtol=1e-4, atol=1e-4)
