"""The functional dispatcher (``differentiable``: arrays in, arrays out; Tensors in, a recorded
node out) and a small CNN end to end: central differences, the loop reference and torch."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

from cnnlab import Tensor
from cnnlab import functional as F
from cnnlab.functional import _loss as loss
from cnnlab.functional._dispatch import differentiable

from .helpers import gradcheck, needs_torch, torch
from .helpers import rand as _rand

# ---------------------------------------------------------------- the dispatcher


def _affine(x, w, b=None, *, scale=1.0):
    """x @ w + b, times scale."""
    out = x @ w if b is None else x @ w + b
    return out * scale


def _affine_backward(grad_out, x, w, b=None, *, scale=1.0):
    g = grad_out * scale
    return g @ w.T, x.T @ g, None if b is None else g.sum(0)


AFFINE = differentiable(_affine, _affine_backward, n_diff=3)


def test_differentiable_keeps_name_signature_and_docstring():
    assert AFFINE.__name__ == "_affine" and AFFINE.__doc__ == _affine.__doc__
    assert inspect.signature(AFFINE) == inspect.signature(_affine)
    assert AFFINE.backward is _affine_backward and AFFINE.__wrapped__ is _affine


def test_differentiable_arrays_in_arrays_out():
    x, w = _rand(2, 3, seed=21), _rand(3, 4, seed=22)
    out = AFFINE(x, w, scale=2.0)
    assert type(out) is np.ndarray
    np.testing.assert_array_equal(out, _affine(x, w, scale=2.0))


def test_differentiable_routes_gradients_by_position_and_keyword():
    x, w, b = _rand(2, 3, seed=23), _rand(3, 4, seed=24), _rand(4, seed=25)
    gradcheck(lambda xt, wt, bt: AFFINE(xt, wt, bt, scale=0.5), x, w, b)
    gradcheck(lambda xt, wt, bt: AFFINE(xt, w=wt, b=bt), x, w, b)  # differentiable inputs by keyword
    wt = Tensor(w, requires_grad=True)
    out = AFFINE(x, wt)  # only one Tensor, the others plain arrays or absent
    out.backward(np.ones((2, 4)))
    np.testing.assert_allclose(wt.grad, x.T @ np.ones((2, 4)))


def test_differentiable_tuple_output_keeps_extra_items_as_arrays():
    def top(x):
        return x.max(axis=1), x.argmax(axis=1)

    def top_backward(grad_out, x):
        grad = np.zeros_like(x)
        np.put_along_axis(grad, x.argmax(axis=1)[:, None], grad_out[:, None], axis=1)
        return grad

    wrapped = differentiable(top, top_backward)
    x = Tensor(_rand(3, 4, seed=26), requires_grad=True)
    values, indices = wrapped(x)
    assert isinstance(values, Tensor) and type(indices) is np.ndarray
    values.sum().backward()
    assert x.grad.sum() == 3


def test_functional_pool_with_indices_on_tensors():
    x = Tensor(_rand(1, 2, 4, 4, seed=27), requires_grad=True)
    out, indices = F.max_pool2d(x, 2, return_indices=True)
    assert isinstance(out, Tensor) and type(indices) is np.ndarray
    out.sum().backward()
    assert x.grad.sum() == out.numel()


def test_differentiable_rejects_bad_arguments():
    with pytest.raises(TypeError, match="differentiable: forward and backward must be callable"):
        differentiable(_affine, None)
    with pytest.raises(TypeError, match="differentiable: n_diff must be a positive int"):
        differentiable(_affine, _affine_backward, n_diff=0)


def test_functional_ops_return_arrays_for_arrays():
    x, w = _rand(1, 2, 5, 5, seed=28), _rand(3, 2, 3, 3, seed=29)
    out = F.conv2d(x, w)
    assert type(out) is np.ndarray
    assert type(F.relu(x)) is np.ndarray


# ---------------------------------------------------------------- a small CNN end to end

cross_entropy = differentiable(loss.cross_entropy, loss.cross_entropy_backward)


def _small_cnn(x, w, b, fc, target):
    h = F.conv2d(x, w, b, padding=1)
    h = F.max_pool2d(F.relu(h), 2)
    logits = h.flatten(1) @ fc
    return cross_entropy(logits, target)


def _cnn_inputs():
    r = np.random.default_rng(30)
    x = r.standard_normal((2, 2, 4, 4))
    w = r.standard_normal((3, 2, 3, 3)) * 0.5
    b = r.standard_normal(3) * 0.1
    fc = r.standard_normal((3 * 2 * 2, 4)) * 0.5
    return x, w, b, fc, np.array([1, 3])


def test_small_cnn_gradients_match_central_differences():
    x, w, b, fc, target = _cnn_inputs()
    gradcheck(lambda *ts: _small_cnn(*ts, target), x, w, b, fc, rtol=1e-5, atol=1e-8)


def test_small_cnn_loss_matches_loops():
    """The forward value by plain loops: padded correlation, ReLU, 2x2 max pool, logits,
    log-sum-exp cross entropy averaged over the batch (the gradients are checked above)."""
    x, w, b, fc, target = _cnn_inputs()
    batch, channels, size, _ = x.shape
    out_ch = w.shape[0]
    xp = np.zeros((batch, channels, size + 2, size + 2))
    xp[:, :, 1:-1, 1:-1] = x
    losses = []
    for n in range(batch):
        conv = [[[float(b[o]) + sum(xp[n, c, i + m, j + q] * w[o, c, m, q] for c in range(channels)
                                    for m in range(3) for q in range(3))
                  for j in range(size)] for i in range(size)] for o in range(out_ch)]
        pooled = [max(max(conv[o][2 * i + m][2 * j + q], 0.0) for m in range(2) for q in range(2))
                  for o in range(out_ch) for i in range(size // 2) for j in range(size // 2)]
        logits = [sum(pooled[k] * fc[k, c] for k in range(len(pooled))) for c in range(fc.shape[1])]
        top = max(logits)
        log_total = top + math.log(sum(math.exp(v - top) for v in logits))
        losses.append(log_total - logits[int(target[n])])
    out = _small_cnn(*(Tensor(a) for a in (x, w, b, fc)), target)
    np.testing.assert_allclose(out.item(), sum(losses) / batch, rtol=1e-12)


@needs_torch
def test_small_cnn_matches_torch():
    x, w, b, fc, target = _cnn_inputs()
    ours = [Tensor(a.copy(), requires_grad=True) for a in (x, w, b, fc)]
    out = _small_cnn(*ours, target)
    out.backward()
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, b, fc)]
    tf = torch.nn.functional
    h = tf.max_pool2d(tf.relu(tf.conv2d(theirs[0], theirs[1], theirs[2], padding=1)), 2)
    expected = tf.cross_entropy(h.flatten(1) @ theirs[3], torch.tensor(target))
    expected.backward()
    np.testing.assert_allclose(out.item(), expected.item(), rtol=1e-12)
    for a, t in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a.grad, t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_an_intermediate_result_nothing_holds_is_freed_after_the_forward():
    # the graph records where inputs came from, not the input Tensors: h's data is not needed by
    # relu's backward (it keeps its own output), so once the user drops h, its array is freed,
    # and the gradient is still right
    import gc
    import weakref

    import cnnlab.functional as F

    x = Tensor(np.array([-1.5, 0.5, 2.0, -0.25]), requires_grad=True)
    h = x * 3.0
    z = F.relu(h)
    freed = weakref.ref(h.data)
    del h
    gc.collect()
    assert freed() is None
    z.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 3.0, 3.0, 0.0])
    assert z.grad_fn is not None and not z.is_leaf and x.is_leaf


def test_a_result_used_twice_still_sums_its_gradients():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * x
    y = (h * h + h).sum()  # h reaches y by two paths
    del h
    y.backward()
    np.testing.assert_allclose(x.grad, 4 * np.array([1.0, 2.0]) ** 3 + 2 * np.array([1.0, 2.0]))
