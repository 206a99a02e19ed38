"""PyTorch's semantics at the edges: empty batches, one-element tuples, pooling's default stride, a
negative divisor, and gradients with respect to probability targets.

Every check runs without PyTorch against the definition (shapes, hand-worked values, central
differences); where torch is installed it is compared as well.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import cnnlab
import cnnlab.functional as F

try:
    import torch
    import torch.nn.functional as T
except ImportError:  # pragma: no cover - torch only adds an oracle
    torch = None
    T = None

DTYPES = [np.float32, np.float64]


def rng(seed=0):
    return np.random.default_rng(seed)


def forward_backward(fn, *arrays):
    """cnnlab output and the gradient of its sum with respect to every float input (None for others)."""
    tensors = [cnnlab.Tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    out = fn(*tensors)
    if out.requires_grad:
        out.sum().backward()
    return out.data, [t.grad for t in tensors]


def torch_forward_backward(fn, *arrays):
    tensors = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    out = fn(*tensors)
    if out.requires_grad:
        out.sum().backward()
    return out.detach().numpy(), [None if t.grad is None else t.grad.numpy() for t in tensors]


# ---------------------------------------------------------------------------------------------
# empty batches: (cnnlab op, torch op, input shapes, expected output shape)

EMPTY_CASES = [
    ("conv1d", lambda x, w: F.conv1d(x, w, padding=1), lambda x, w: T.conv1d(x, w, padding=1),
     [(0, 3, 7), (4, 3, 3)], (0, 4, 7)),
    ("conv2d", lambda x, w: F.conv2d(x, w, stride=2), lambda x, w: T.conv2d(x, w, stride=2),
     [(0, 3, 6, 6), (4, 3, 3, 3)], (0, 4, 2, 2)),
    ("conv3d", lambda x, w: F.conv3d(x, w), lambda x, w: T.conv3d(x, w), [(0, 2, 4, 4, 4), (3, 2, 2, 2, 2)],
     (0, 3, 3, 3, 3)),
    ("conv_transpose2d", lambda x, w: F.conv_transpose2d(x, w, stride=2),
     lambda x, w: T.conv_transpose2d(x, w, stride=2), [(0, 3, 5, 5), (3, 4, 3, 3)], (0, 4, 11, 11)),
    ("max_pool2d", lambda x: F.max_pool2d(x, 2), lambda x: T.max_pool2d(x, 2), [(0, 3, 6, 6)], (0, 3, 3, 3)),
    ("avg_pool1d", lambda x: F.avg_pool1d(x, 3, 1, 1), lambda x: T.avg_pool1d(x, 3, 1, 1), [(0, 2, 5)], (0, 2, 5)),
    ("adaptive_avg_pool2d", lambda x: F.adaptive_avg_pool2d(x, (2, 3)), lambda x: T.adaptive_avg_pool2d(x, (2, 3)),
     [(0, 3, 6, 6)], (0, 3, 2, 3)),
    ("linear", lambda x, w, b: F.linear(x, w, b), lambda x, w, b: T.linear(x, w, b), [(0, 4), (3, 4), (3,)], (0, 3)),
    ("relu", F.relu, lambda x: T.relu(x), [(0, 3)], (0, 3)),
    ("elu", F.elu, lambda x: T.elu(x), [(0, 3)], (0, 3)),
    ("gelu", F.gelu, lambda x: T.gelu(x), [(0, 3)], (0, 3)),
    ("sigmoid", F.sigmoid, torch.sigmoid if torch else None, [(0, 3)], (0, 3)),
    ("tanh", F.tanh, torch.tanh if torch else None, [(0, 3)], (0, 3)),
    ("softmax", lambda x: F.softmax(x, 1), lambda x: T.softmax(x, 1), [(0, 3)], (0, 3)),
    ("log_softmax", lambda x: F.log_softmax(x, 1), lambda x: T.log_softmax(x, 1), [(0, 3)], (0, 3)),
    ("softmax over no classes", lambda x: F.softmax(x, 1), lambda x: T.softmax(x, 1), [(2, 0)], (2, 0)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "fn", "torch_fn", "shapes", "expected"), EMPTY_CASES,
                         ids=[c[0] for c in EMPTY_CASES])
def test_empty_batches_give_empty_results_and_gradients(name, fn, torch_fn, shapes, expected, dtype):
    arrays = [rng().normal(size=s).astype(dtype) for s in shapes]
    out, grads = forward_backward(fn, *arrays)
    assert out.shape == expected and out.dtype == dtype
    for a, g in zip(arrays, grads, strict=True):
        # the input's gradient is empty; a weight that met no sample gets zeros
        assert g is not None and g.shape == a.shape and g.dtype == dtype
        assert not np.any(g)
    if torch is not None:
        t_out, t_grads = torch_forward_backward(torch_fn, *arrays)
        assert t_out.shape == out.shape
        for g, tg in zip(grads, t_grads, strict=True):
            np.testing.assert_array_equal(g, tg)


@pytest.mark.parametrize("training", [False, True])
def test_batch_norm_of_an_empty_batch_leaves_the_running_statistics(training):
    x = np.zeros((0, 3, 4, 4), dtype=np.float32)
    mean, var = np.array([0.5, 1.0, -1.0]), np.array([2.0, 3.0, 4.0])
    weight, bias = np.ones(3, dtype=np.float32), np.zeros(3, dtype=np.float32)
    out = F.batch_norm(x, mean, var, weight, bias, training=training)
    assert out.shape == x.shape
    np.testing.assert_array_equal(mean, [0.5, 1.0, -1.0])
    np.testing.assert_array_equal(var, [2.0, 3.0, 4.0])
    gx, gw, gb = F.batch_norm_backward(np.zeros_like(x), x, mean, var, weight, bias, training=training)
    assert gx.shape == x.shape and not gw.any() and not gb.any()
    if torch is not None:
        tm, tv = torch.tensor(mean), torch.tensor(var)
        assert tuple(T.batch_norm(torch.tensor(x), tm, tv, training=training).shape) == x.shape
        np.testing.assert_array_equal(tm.numpy(), mean)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_losses_of_an_empty_batch(reduction):
    x = np.zeros((0, 3))
    classes = np.zeros(0, dtype=np.int64)
    cases = [  # (loss, arguments, the shape of reduction="none")
        (F.cross_entropy, (x, classes), (0,)),
        (F.nll_loss, (x, classes), (0,)),
        (F.mse_loss, (x, np.zeros((0, 3))), (0, 3)),
        (F.binary_cross_entropy_with_logits, (x, np.zeros((0, 3))), (0, 3)),
        (F.cross_entropy, (x, np.zeros((0, 3))), (0,)),
    ]
    for fn, args, none_shape in cases:
        value = fn(*args, reduction=reduction)
        if reduction == "none":
            assert value.shape == none_shape
        elif reduction == "sum":
            assert value.shape == () and value == 0  # an empty sum
        else:
            assert value.shape == () and np.isnan(value)  # 0 / 0, as in PyTorch
        if torch is not None:
            expected = getattr(T, fn.__name__)(*map(torch.tensor, args), reduction=reduction).numpy()
            np.testing.assert_array_equal(value, expected)


def test_only_the_batch_dim_of_a_pooling_input_may_be_empty():
    with pytest.raises(ValueError, match=r"max_pool2d: x must not be empty in dim 1 \(only the batch dim may be 0\), "
                                         r"got shape \(2, 0, 6, 6\)"):
        F.max_pool2d(np.zeros((2, 0, 6, 6)), 2)


@given(n=st.integers(0, 3), c=st.integers(1, 3), size=st.integers(3, 7), k=st.integers(1, 3),
       stride=st.integers(1, 3), padding=st.integers(0, 1))
def test_conv_output_shape_formula_holds_for_batch_size_zero_too(n, c, size, k, stride, padding):
    x = np.ones((n, c, size, size))
    w = np.ones((2, c, k, k))
    out = F.conv2d(x, w, stride=stride, padding=padding)
    side = (size + 2 * padding - k) // stride + 1
    assert out.shape == (n, 2, side, side)
    gx, gw, _ = F.conv_backward(np.ones(out.shape), x, w, None, stride, padding)
    assert gx.shape == x.shape and gw.shape == w.shape
    if n == 0:  # no sample contributed to the weight
        assert not gw.any()


# ---------------------------------------------------------------------------------------------
# argument forms PyTorch accepts


def test_a_one_element_tuple_stands_for_every_spatial_dim():
    x = rng().normal(size=(2, 3, 9, 9))
    w = rng(1).normal(size=(4, 3, 3, 3))
    np.testing.assert_array_equal(F.conv2d(x, w, stride=(2,), padding=(1,), dilation=(2,)),
                                  F.conv2d(x, w, stride=2, padding=1, dilation=2))
    np.testing.assert_array_equal(F.max_pool2d(x, (3,), stride=(2,), padding=(1,)), F.max_pool2d(x, 3, 2, 1))
    np.testing.assert_array_equal(F.avg_pool2d(x, (2,), (2,)), F.avg_pool2d(x, 2, 2))
    x3 = rng(2).normal(size=(1, 2, 4, 4, 4))
    np.testing.assert_array_equal(F.max_pool3d(x3, (2,)), F.max_pool3d(x3, 2))
    if torch is not None:
        np.testing.assert_allclose(F.conv2d(x, w, stride=(2,), padding=(1,), dilation=(2,)),
                                   T.conv2d(torch.tensor(x), torch.tensor(w), stride=(2,), padding=(1,),
                                            dilation=(2,)).numpy(), rtol=1e-12)


@pytest.mark.parametrize("stride", [None, (), []])
def test_pooling_without_a_stride_steps_by_the_kernel(stride):
    x = rng().normal(size=(2, 3, 6, 6))
    np.testing.assert_array_equal(F.max_pool2d(x, 2, stride=stride), F.max_pool2d(x, 2, stride=2))
    np.testing.assert_array_equal(F.avg_pool2d(x, 3, stride=stride), F.avg_pool2d(x, 3, stride=3))
    if torch is not None:
        np.testing.assert_allclose(F.avg_pool2d(x, 3, stride=stride),
                                   T.avg_pool2d(torch.tensor(x), 3, stride=stride).numpy(), rtol=1e-12)


def test_a_negative_divisor_override_divides_as_given():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    out = F.avg_pool2d(x, 2, divisor_override=-2)
    expected = np.array([[0 + 1 + 4 + 5, 2 + 3 + 6 + 7], [8 + 9 + 12 + 13, 10 + 11 + 14 + 15]]) / -2
    np.testing.assert_array_equal(out[0, 0], expected)
    grad = F.avg_pool_backward(np.ones_like(out), x, 2, divisor_override=-2)
    np.testing.assert_array_equal(grad, np.full_like(x, -0.5))
    with pytest.raises(ValueError, match="avg_pool2d: divisor_override must be a non-zero int, got 0"):
        F.avg_pool2d(x, 2, divisor_override=0)
    if torch is not None:
        np.testing.assert_array_equal(out, T.avg_pool2d(torch.tensor(x), 2, divisor_override=-2).numpy())


# ---------------------------------------------------------------------------------------------
# gradients with respect to float targets


def central_difference(f, a, eps=1e-6):
    grad = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        up, down = a.copy(), a.copy()
        up[i] += eps
        down[i] -= eps
        grad[i] = (f(up) - f(down)) / (2 * eps)
    return grad


LOSSES_WITH_FLOAT_TARGETS = [
    ("cross_entropy probabilities", lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1)),
    ("cross_entropy weighted, per position", lambda x, t: F.cross_entropy(x, t, weight=np.array([1.0, 2.0, 0.5]),
                                                                           reduction="sum")),
    ("binary_cross_entropy_with_logits", lambda x, t: F.binary_cross_entropy_with_logits(
        x, t, pos_weight=np.array([0.5, 1.0, 2.0]))),
    ("mse_loss", lambda x, t: F.mse_loss(x, t)),
]


@pytest.mark.parametrize(("name", "loss"), LOSSES_WITH_FLOAT_TARGETS, ids=[c[0] for c in LOSSES_WITH_FLOAT_TARGETS])
def test_float_targets_get_gradients(name, loss):
    r = rng(3)
    x = r.normal(size=(4, 3))
    t = r.random(size=(4, 3))
    t = t / t.sum(axis=1, keepdims=True)
    xt, tt = cnnlab.Tensor(x, requires_grad=True), cnnlab.Tensor(t, requires_grad=True)
    loss(xt, tt).backward()
    np.testing.assert_allclose(tt.grad, central_difference(lambda a: float(loss(x, a)), t), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(xt.grad, central_difference(lambda a: float(loss(a, t)), x), rtol=1e-6, atol=1e-8)


@pytest.mark.skipif(torch is None, reason="torch adds an oracle")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_probability_target_gradients_match_torch(dtype, reduction):
    r = rng(4)
    x = r.normal(size=(3, 4, 2)).astype(dtype)
    t = r.random(size=(3, 4, 2)).astype(dtype)
    g = r.normal(size=(3, 2) if reduction == "none" else ()).astype(dtype)
    xt, tt = cnnlab.Tensor(x, requires_grad=True), cnnlab.Tensor(t, requires_grad=True)
    F.cross_entropy(xt, tt, reduction=reduction, label_smoothing=0.2).backward(g)
    tx, ttt = torch.tensor(x, requires_grad=True), torch.tensor(t, requires_grad=True)
    T.cross_entropy(tx, ttt, reduction=reduction, label_smoothing=0.2).backward(torch.tensor(g))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(tt.grad, ttt.grad.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), rtol=tol, atol=tol)


def test_class_index_targets_stay_without_gradient():
    x = cnnlab.Tensor(np.zeros((2, 3)), requires_grad=True)
    t = cnnlab.Tensor(np.array([0, 2]))
    F.cross_entropy(x, t).backward()
    assert t.grad is None and x.grad.shape == (2, 3)
