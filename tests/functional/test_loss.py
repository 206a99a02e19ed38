"""Losses: gradient parity with PyTorch for every registry sample, numerical stability, the
all-ignored mean, and Tensors flowing through the losses.

The loop reference, forward parity, dtypes, central differences and bad inputs of every
registry sample are checked by the generic tests over ``ops_loss.OPS``.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab import Tensor
from cnnlab import functional as F
from cnnlab.functional import _loss as loss
from cnnlab.functional import _loss_elementwise as elementwise
from cnnlab.functional._dispatch import differentiable
from tests.functional.opinfo import OpInfo, rng, torch
from tests.functional.ops_loss import OPS

# Tolerances reached against torch (forward and every gradient).
TOL = {np.dtype(np.float64): dict(rtol=1e-12, atol=1e-12), np.dtype(np.float32): dict(rtol=1e-6, atol=1e-6)}

needs_torch = pytest.mark.skipif(torch is None, reason="torch not installed")


def _torch_value(value):
    """NumPy to torch, integers as int64, 0-d arrays kept 0-d."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.array(value, dtype=np.int64 if value.dtype.kind in "iu" else value.dtype))
    return value


def _torch_forward_backward(info: OpInfo, args, kwargs, grad_out):
    """Loss and gradients of the differentiable inputs, computed by torch."""
    tensors = [_torch_value(a).requires_grad_() for a in args]
    kw = {k: _torch_value(v) for k, v in kwargs.items()}
    fn = getattr(torch.nn.functional, info.name)
    if np.ndim(args[0]) == 1 and "target" in kw and np.ndim(kwargs["target"]) == 0:
        # torch 2.13 fails on unbatched class indices with label smoothing and reduction="none";
        # it defines unbatched input as a batch of one.
        batched = tensors[0][None]
        kw["target"] = kw["target"][None]
        out = fn(batched, **kw)
        out = out[0] if kwargs.get("reduction") == "none" else out
    else:
        out = fn(*tensors, **kw)
    out.backward(_torch_value(np.asarray(grad_out)))
    return out.detach().numpy(), [t.grad.numpy() for t in tensors]


@needs_torch
@pytest.mark.filterwarnings("ignore:Using a target size:UserWarning")  # mse_loss broadcasting
@pytest.mark.parametrize("info", OPS, ids=[op.name for op in OPS])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_and_gradients_match_torch(info: OpInfo, dtype):
    r = rng(3)
    tol = TOL[np.dtype(dtype)]
    for s in info.samples(np.dtype(dtype)):
        out = info.op(*s.args, **s.kwargs)
        grad_out = r.standard_normal(out.shape).astype(dtype)
        expected, expected_grads = _torch_forward_backward(info, s.args, s.kwargs, grad_out)
        assert out.shape == expected.shape, s
        assert out.dtype == np.dtype(dtype), s
        np.testing.assert_allclose(out, expected, err_msg=repr(s), **tol)
        grads = info.grads(grad_out, s)
        for i, (g, eg) in enumerate(zip(grads, expected_grads, strict=True)):
            assert g.dtype == np.dtype(dtype), s
            np.testing.assert_allclose(g, eg, err_msg=f"{s} grad {i}", **tol)


# ---------------------------------------------------------------- numerical stability


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_is_stable_for_huge_logits(dtype):
    x = np.array([[1e4, 0.0, -1e4], [-3e4, 2e4, 2e4]], dtype=dtype)
    t = np.array([1, 2])
    out = loss.cross_entropy(x, t, reduction="none")
    # log-softmax by hand: row 0 is dominated by 1e4, row 1 shares its mass between two classes
    np.testing.assert_allclose(out, [1e4, np.log(2.0)], rtol=1e-6)
    grad = loss.cross_entropy_backward(np.ones(2, dtype=dtype), x, t, reduction="none")
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, [[1, -1, 0], [0, 0.5, -0.5]], atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bce_with_logits_is_stable_for_huge_logits(dtype):
    x = np.array([1e4, -1e4, 800.0, -800.0], dtype=dtype)
    y = np.array([0.0, 1.0, 1.0, 0.0], dtype=dtype)
    out = elementwise.binary_cross_entropy_with_logits(x, y, reduction="none")
    np.testing.assert_allclose(out, [1e4, 1e4, 0.0, 0.0], rtol=1e-6, atol=1e-30)
    ones = np.ones(4, dtype=dtype)
    grad_x, grad_y = elementwise.binary_cross_entropy_with_logits_backward(ones, x, y, reduction="none")
    np.testing.assert_allclose(grad_x, [1.0, -1.0, 0.0, 0.0], atol=1e-30)
    np.testing.assert_allclose(grad_y, -x)


@needs_torch
def test_all_ignored_mean_is_nan_as_torch():
    x = rng(0).standard_normal((3, 4))
    t = np.full(3, -100)
    for fn in (loss.cross_entropy, loss.nll_loss):
        ours = fn(x, t)
        theirs = getattr(torch.nn.functional, fn.__name__)(_torch_value(x), _torch_value(t)).item()
        assert np.isnan(ours) and np.isnan(theirs)
    assert loss.cross_entropy(x, t, reduction="sum") == 0.0


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_all_ignored_mean_has_zero_gradient(smoothing):
    """Every target ignored: the mean is 0 / 0 = nan, but no entry reaches the loss, so every
    gradient is 0 (PyTorch's), not ``0 * (grad_out / 0)`` = nan."""
    x = rng(1).standard_normal((3, 4))
    t = np.full(3, 2)
    ce = loss.cross_entropy_backward(np.float64(1.0), x, t, label_smoothing=smoothing, ignore_index=2)
    np.testing.assert_array_equal(ce, np.zeros_like(x))
    if smoothing == 0.0:
        nll = loss.nll_loss_backward(np.float64(1.0), x, t, ignore_index=2)
        np.testing.assert_array_equal(nll, np.zeros_like(x))
    xt = Tensor(x, requires_grad=True)
    out = F.cross_entropy(xt, t, label_smoothing=smoothing, ignore_index=2)
    assert np.isnan(out.data)
    out.backward()
    np.testing.assert_array_equal(xt.grad, np.zeros_like(x))


def test_ignored_entry_loss_is_zero_whatever_its_scores():
    """An ignored entry's scores never reach the loss: a NaN or infinite score there gives a loss
    of 0 for it, and the kept entries' mean is unchanged (their own weight over their count)."""
    x = np.array([[0.5, -1.0, 2.0], [np.nan, np.inf, -np.inf]])
    t = np.array([2, 1])
    # row 0 by hand: -log softmax(x0)[2]
    row0 = -(2.0 - np.log(np.exp(0.5) + np.exp(-1.0) + np.exp(2.0)))
    for smoothing in (0.0, 0.3):
        out = loss.cross_entropy(x, t, reduction="none", label_smoothing=smoothing, ignore_index=1)
        assert out[1] == 0.0
        mean = loss.cross_entropy(x, t, label_smoothing=smoothing, ignore_index=1)
        np.testing.assert_allclose(mean, out[0], rtol=1e-15)
    np.testing.assert_allclose(loss.cross_entropy(x, t, reduction="none", ignore_index=1)[0], row0, rtol=1e-14)
    nll = loss.nll_loss(x, t, reduction="none", ignore_index=1)
    np.testing.assert_array_equal(nll, [-2.0, 0.0])
    assert loss.nll_loss(x, t, ignore_index=1) == -2.0
    grad = loss.nll_loss_backward(np.ones(2), x, t, reduction="none", ignore_index=1)
    np.testing.assert_array_equal(grad, [[0.0, 0.0, -1.0], [0.0, 0.0, 0.0]])


def test_mean_over_zero_total_weight_is_nan_with_smoothing():
    """Kept targets whose classes all weigh 0: the mean divides by a total weight of 0, nan (as
    PyTorch, whose smoothed loss divides each of its parts by that total), not +-inf."""
    x = rng(2).standard_normal((2, 3))
    t = np.array([0, 1])
    w = np.array([0.0, 0.0, 1.0])
    for smoothing in (0.0, 0.25):
        assert np.isnan(loss.cross_entropy(x, t, weight=w, label_smoothing=smoothing))
    assert loss.cross_entropy(x, t, weight=w, label_smoothing=0.25, reduction="sum") != 0.0


@needs_torch
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_ignored_entries_match_torch(reduction, smoothing):
    """Ignored entries among kept ones, some ignored rows holding NaN and infinite scores, every
    target ignored, and zero class weights: losses and gradients as torch gives them (NaN where
    torch gives NaN)."""
    r = rng(4)
    x = r.standard_normal((5, 4))
    x[3] = [np.nan, 1.0, np.inf, 0.0]
    cases = [(np.array([0, 3, 1, 3, 2]), None), (np.full(5, 3), None),
             (np.array([0, 1, 3, 3, 0]), np.array([0.0, 0.0, 1.0, 2.0]))]
    for t, w in cases:
        kwargs = dict(ignore_index=3, reduction=reduction)
        fns = [("cross_entropy", dict(kwargs, label_smoothing=smoothing))]
        if smoothing == 0.0:
            fns.append(("nll_loss", kwargs))
        for name, kw in fns:
            xt = Tensor(x, requires_grad=True)
            out = getattr(F, name)(xt, t, weight=w, **kw)
            grad_out = np.arange(1.0, 1.0 + out.data.size).reshape(out.data.shape)
            (out * Tensor(grad_out)).sum().backward()
            tx = torch.tensor(x, requires_grad=True)
            tout = getattr(torch.nn.functional, name)(tx, _torch_value(t), weight=_torch_value(w), **kw)
            tout.backward(torch.from_numpy(grad_out))
            np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=1e-12, atol=1e-15,
                                       err_msg=f"{name} {t} {w} {kw}")
            np.testing.assert_allclose(xt.grad, tx.grad.numpy(), rtol=1e-12, atol=1e-15,
                                       err_msg=f"{name} grad {t} {w} {kw}")


def test_integer_scores_compute_in_float64():
    t = np.array([0, 2])
    ints = np.array([[1, 2, 3], [3, 0, -1]])
    out = loss.cross_entropy(ints, t)
    assert out.dtype == np.float64
    assert out == loss.cross_entropy(ints.astype(np.float64), t)


def test_unbatched_none_gives_a_0d_loss():
    out = loss.cross_entropy(np.array([0.5, 1.0, -1.0]), np.array(1), reduction="none")
    assert out.shape == ()
    grad = loss.cross_entropy_backward(np.array(1.0), np.array([0.5, 1.0, -1.0]), np.array(1), reduction="none")
    assert grad.shape == (3,)


# ---------------------------------------------------------------- Tensors through the losses

WRAPPED = {
    "cross_entropy": differentiable(loss.cross_entropy, loss.cross_entropy_backward),
    "nll_loss": differentiable(loss.nll_loss, loss.nll_loss_backward),
    "mse_loss": differentiable(elementwise.mse_loss, elementwise.mse_loss_backward, n_diff=2),
    "binary_cross_entropy_with_logits": differentiable(
        elementwise.binary_cross_entropy_with_logits, elementwise.binary_cross_entropy_with_logits_backward, n_diff=2
    ),
}


@pytest.mark.parametrize("info", OPS, ids=[op.name for op in OPS])
def test_tensor_inputs_give_the_backward_gradients(info: OpInfo):
    op = WRAPPED[info.name]
    for s in list(info.samples(np.dtype(np.float64)))[:8]:
        tensors = [Tensor(a.copy(), requires_grad=True) for a in s.args]
        kwargs = dict(s.kwargs)
        if "target" in kwargs:  # a non-differentiable Tensor argument is used as data
            kwargs["target"] = Tensor(kwargs["target"])
        out = op(*tensors, **kwargs)
        assert isinstance(out, Tensor) and out.requires_grad
        np.testing.assert_array_equal(out.data, info.op(*s.args, **s.kwargs))
        grad_out = rng(5).standard_normal(out.shape)
        out.backward(grad_out)
        for t, expected in zip(tensors, info.grads(grad_out, s), strict=True):
            np.testing.assert_allclose(t.grad, expected, rtol=1e-14, atol=1e-14)


def test_log_softmax_then_nll_equals_cross_entropy_on_tensors():
    r = rng(7)
    x, t, w = r.standard_normal((5, 4)), r.integers(0, 4, 5), r.random(4) + 0.5
    a = Tensor(x.copy(), requires_grad=True)
    b = Tensor(x.copy(), requires_grad=True)
    ce = WRAPPED["cross_entropy"](a, t, weight=w)
    nll = WRAPPED["nll_loss"](F.log_softmax(b, 1), t, weight=w)
    np.testing.assert_allclose(ce.item(), nll.item(), rtol=1e-14)
    ce.backward()
    nll.backward()
    np.testing.assert_allclose(a.grad, b.grad, rtol=1e-12, atol=1e-15)


def test_arrays_in_give_arrays_out_through_the_wrapper():
    x, t = rng(8).standard_normal((3, 4)), np.array([0, 3, 1])
    out = WRAPPED["cross_entropy"](x, t)
    assert type(out) is np.ndarray
    assert out == loss.cross_entropy(x, t)
