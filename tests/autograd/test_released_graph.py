"""A backward without ``retain_graph`` frees the graph as it goes, as in PyTorch: each operation's
closure, with what its forward saved, is dropped once it has run, and an operation whose saved
backward takes ``release`` is told it runs for the last time (the conv then writes its column
gradient over its kept column matrix).  With ``retain_graph=True`` nothing is freed or reused.

The conv oracle is a loop over the definition, written here; it shares no code with cnnlab."""

from __future__ import annotations

import tracemalloc
import weakref

import numpy as np
import pytest

from cnnlab import functional as F
from cnnlab.autograd import Tensor
from cnnlab.functional._dispatch import differentiable


class _Saved:
    """Something a forward keeps, that a weak reference can watch."""

    def __init__(self, x):
        self.x = x


def _doubling_op(calls, with_release):
    def forward(x):
        return 2 * x

    def backward(grad_out, x):
        return 2 * grad_out

    def forward_saving(needs, x):
        saved = _Saved(np.array(x))
        calls.append(("saved", weakref.ref(saved)))
        return 2 * x, saved

    if with_release:
        def backward_saved(grad_out, saved, needs, release=False):
            calls.append(("release", release))
            return 2 * grad_out
    else:
        def backward_saved(grad_out, saved, needs):
            calls.append(("plain", None))
            return 2 * grad_out

    return differentiable(forward, backward, saving=(forward_saving, backward_saved))


def _graph(with_release):
    """``(calls, x, y)``: the doubling op's record, a leaf and ``y = sum(op(x))``."""
    calls = []
    x = Tensor(np.arange(3.0), requires_grad=True)
    return calls, x, _doubling_op(calls, with_release)(x).sum()


@pytest.mark.parametrize("retain", [False, True])
def test_release_is_passed_only_when_the_graph_is_freed(retain):
    calls, x, y = _graph(with_release=True)
    y.backward(retain_graph=retain)
    assert ("release", not retain) in calls and ("release", retain) not in calls
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 2.0])


def test_a_saved_backward_without_release_is_called_as_before():
    calls, x, y = _graph(with_release=False)
    y.backward()
    assert ("plain", None) in calls
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 2.0])


@pytest.mark.parametrize("retain", [False, True])
def test_what_a_forward_saved_is_freed_after_its_backward_unless_retained(retain):
    calls, _, y = _graph(with_release=True)
    saved_ref = next(ref for kind, ref in calls if kind == "saved")
    assert saved_ref() is not None
    y.backward(retain_graph=retain)
    # y is still alive, so only the engine's freeing can drop the saved object
    assert (saved_ref() is not None) == retain


def _conv_oracle(x, w, stride, padding, groups):
    """``(y, grad_x, grad_w)`` of ``sum(y * g)`` for ``g`` = 1, 2, 3, ... by loops over the
    definition of a grouped, strided, zero-padded 2-d cross-correlation."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    og = o // groups
    xp = np.zeros((n, c, h + 2 * padding, wd + 2 * padding), dtype=x.dtype)
    xp[:, :, padding:padding + h, padding:padding + wd] = x
    oh = (h + 2 * padding - kh) // stride + 1
    ow = (wd + 2 * padding - kw) // stride + 1
    g = np.arange(1, n * o * oh * ow + 1, dtype=x.dtype).reshape(n, o, oh, ow) % 7 - 3
    gxp = np.zeros_like(xp)
    gw = np.zeros_like(w)
    for b in range(n):
        for oc in range(o):
            grp = oc // og
            for a in range(oh):
                for e in range(ow):
                    for ci in range(cg):
                        for i in range(kh):
                            for j in range(kw):
                                cin = grp * cg + ci
                                r, s = a * stride + i, e * stride + j
                                gxp[b, cin, r, s] += g[b, oc, a, e] * w[oc, ci, i, j]
                                gw[oc, ci, i, j] += g[b, oc, a, e] * xp[b, cin, r, s]
    return g, gxp[:, :, padding:padding + h, padding:padding + wd], gw


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("stride", "padding", "groups"), [(1, 1, 1), (2, 1, 1), (1, 0, 2), (2, 2, 2)])
@pytest.mark.parametrize("method", ["gemm", "auto"])
def test_conv_gradients_are_exact_whether_the_columns_are_reused_or_kept(dtype, stride, padding, groups, method):
    rng = np.random.default_rng(7)
    x_np = rng.integers(-3, 4, size=(3, 4, 7, 6)).astype(dtype)
    w_np = rng.integers(-2, 3, size=(6, 4 // groups, 3, 3)).astype(dtype)
    g, gx_ref, gw_ref = _conv_oracle(x_np, w_np, stride, padding, groups)
    grads = {}
    for retain in (False, True):
        x, w = Tensor(x_np.copy(), requires_grad=True), Tensor(w_np.copy(), requires_grad=True)
        y = F.conv2d(x, w, stride=stride, padding=padding, groups=groups, method=method)
        (y * Tensor(g)).sum().backward(retain_graph=retain)
        grads[retain] = (x.grad, w.grad)
        if retain:  # the kept graph gives the same gradients a second time
            x.grad = w.grad = None
            (y * Tensor(g)).sum().backward()
            np.testing.assert_array_equal(x.grad, grads[True][0])
            np.testing.assert_array_equal(w.grad, grads[True][1])
    for retain in (False, True):  # small integers: every path is exact
        np.testing.assert_array_equal(grads[retain][0], gx_ref)
        np.testing.assert_array_equal(grads[retain][1], gw_ref)


def _backward_peak(retain):
    rng = np.random.default_rng(3)
    x = Tensor(rng.standard_normal((8, 8, 24, 24)).astype(np.float32), requires_grad=True)
    w = Tensor(rng.standard_normal((4, 8, 5, 5)).astype(np.float32), requires_grad=True)
    y = F.conv2d(x, w, padding=2, method="gemm").sum()
    tracemalloc.start()
    try:
        y.backward(retain_graph=retain)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_released_conv_writes_its_column_gradient_over_its_columns():
    # the columns: 8 channels x 25 taps x 8 samples x 576 positions x 4 bytes = 3.7 MB
    columns = 8 * 25 * 8 * 576 * 4
    kept, released = _backward_peak(True), _backward_peak(False)
    assert released <= kept - 0.9 * columns


@pytest.mark.parametrize(("op", "x_shape", "w_shape"), [
    ("conv1d", (3, 4, 11), (6, 2, 3)),
    ("conv3d", (2, 4, 5, 6, 4), (6, 2, 3, 2, 3)),
])
def test_1d_and_3d_convs_give_the_same_gradients_with_the_columns_reused(op, x_shape, w_shape):
    # the kept path (retain_graph=True) is the one the loop-reference suites check; the reused
    # columns of 1-d (viewed as 2-d) and 3-d layers must give the same bits
    rng = np.random.default_rng(11)
    x_np = rng.standard_normal(x_shape).astype(np.float32)
    w_np = rng.standard_normal(w_shape).astype(np.float32)
    grads = []
    for retain in (True, False):
        x, w = Tensor(x_np.copy(), requires_grad=True), Tensor(w_np.copy(), requires_grad=True)
        y = getattr(F, op)(x, w, padding=1, groups=2, method="gemm")
        g = Tensor(np.arange(y.data.size, dtype=np.float32).reshape(y.shape) % 5 - 2)
        (y * g).sum().backward(retain_graph=retain)
        grads.append((x.grad, w.grad))
    np.testing.assert_array_equal(grads[0][0], grads[1][0])
    np.testing.assert_array_equal(grads[0][1], grads[1][1])
