"""Issue 13: PyTorch's semantics at the edges, checked against torch where it is installed."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab import Tensor

torch = pytest.importorskip("torch")
TF = torch.nn.functional

def _ones(module, shape, dtype):
    return np.ones(shape, dtype) if module is F else torch.ones(shape, dtype=dtype)


EMPTY_CASES = [
    ("conv2d", lambda m, x: m.conv2d(x, _ones(m, (3, 2, 3, 3), x.dtype), padding=1), (0, 2, 5, 5)),
    ("max_pool2d", lambda m, x: m.max_pool2d(x, 3, 2, 1), (0, 2, 5, 5)),
    ("avg_pool2d", lambda m, x: m.avg_pool2d(x, 2), (0, 2, 5, 5)),
    ("adaptive_avg_pool2d", lambda m, x: m.adaptive_avg_pool2d(x, 2), (0, 2, 5, 5)),
    ("relu", lambda m, x: m.relu(x), (0, 4)),
    ("softmax", lambda m, x: m.softmax(x, 1), (0, 4)),
    ("log_softmax", lambda m, x: m.log_softmax(x, 1), (0, 4)),
    ("sigmoid", lambda m, x: m.sigmoid(x), (0, 4)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,call,shape", EMPTY_CASES, ids=[c[0] for c in EMPTY_CASES])
def test_empty_batch_matches_torch(name, call, shape, dtype):
    x = np.zeros(shape, dtype)
    ours = call(F, x)
    theirs = call(TF, torch.from_numpy(x))
    assert ours.shape == tuple(theirs.shape) and ours.dtype == dtype
    xt = Tensor(x.copy(), requires_grad=True)
    call(F, xt).sum().backward()
    assert xt.grad.shape == shape and xt.grad.dtype == dtype


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_empty_losses_match_torch(reduction):
    x, t = np.zeros((0, 3)), np.zeros(0, np.int64)
    ours = F.cross_entropy(x, t, reduction=reduction)
    theirs = TF.cross_entropy(torch.from_numpy(x), torch.from_numpy(t), reduction=reduction).numpy()
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(F.mse_loss(np.zeros(0), np.zeros(0), reduction=reduction),
                                  TF.mse_loss(torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.float64),
                                              reduction=reduction).numpy())


def test_zero_spatial_size_still_errors():
    with pytest.raises(ValueError, match="conv2d: x must not be empty in dim 2"):
        F.conv2d(np.zeros((1, 2, 0, 5)), np.ones((3, 2, 3, 3)))


def test_one_element_tuples_broadcast_and_pool_stride_forms():
    x = np.random.default_rng(0).standard_normal((1, 2, 6, 6))
    w = np.random.default_rng(1).standard_normal((3, 2, 3, 3))
    want = TF.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=(1,), stride=(2,), dilation=(1,)).numpy()
    np.testing.assert_allclose(F.conv2d(x, w, padding=(1,), stride=(2,), dilation=(1,)), want, rtol=1e-12)
    for stride in (None, ()):
        np.testing.assert_allclose(F.avg_pool2d(x, (2,), stride=stride),
                                   TF.avg_pool2d(torch.from_numpy(x), (2,), stride=stride).numpy())
    np.testing.assert_allclose(F.avg_pool2d(x, 2, divisor_override=-3),
                               TF.avg_pool2d(torch.from_numpy(x), 2, divisor_override=-3).numpy(), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_probability_targets_get_gradients(dtype):
    rng = np.random.default_rng(3)
    x, t = rng.standard_normal((4, 5)).astype(dtype), rng.random((4, 5)).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-10
    for loss, tloss in ((F.cross_entropy, TF.cross_entropy), (F.mse_loss, TF.mse_loss),
                        (F.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits)):
        xt, tt = Tensor(x.copy(), requires_grad=True), Tensor(t.copy(), requires_grad=True)
        loss(xt, tt).backward()
        px, pt = torch.tensor(x, requires_grad=True), torch.tensor(t, requires_grad=True)
        tloss(px, pt).backward()
        np.testing.assert_allclose(xt.grad, px.grad.numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(tt.grad, pt.grad.numpy(), rtol=tol, atol=tol)
