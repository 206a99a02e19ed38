"""Loss layers: values and gradients (input, and target where it has one) against references
written from the definitions (always) and against PyTorch's (where installed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import cnnlab.nn as nn
from cnnlab import Tensor

from .helpers import close, needs_torch, numerical_grad, to_numpy, torch

W3 = [0.5, 2.0, 1.0]


def _class_target(rng, shape, classes):
    return rng.integers(0, classes, shape)


LOSS_CASES = [
    # (id, cnnlab loss, torch loss, input shape, target maker, target differentiable)
    ("ce", lambda: nn.CrossEntropyLoss(), lambda: torch.nn.CrossEntropyLoss(), (4, 3),
     lambda rng, dt: _class_target(rng, (4,), 3), False),
    ("ce-weight-smoothing-sum", lambda: nn.CrossEntropyLoss(weight=W3, label_smoothing=0.2, reduction="sum"),
     lambda: torch.nn.CrossEntropyLoss(weight=torch.tensor(W3), label_smoothing=0.2, reduction="sum"), (5, 3),
     lambda rng, dt: _class_target(rng, (5,), 3), False),
    ("ce-ignore-spatial", lambda: nn.CrossEntropyLoss(ignore_index=1),
     lambda: torch.nn.CrossEntropyLoss(ignore_index=1), (2, 3, 2, 2),
     lambda rng, dt: _class_target(rng, (2, 2, 2), 3), False),
    ("ce-spatial-weight-smoothing", lambda: nn.CrossEntropyLoss(weight=W3, label_smoothing=0.1, ignore_index=2),
     lambda: torch.nn.CrossEntropyLoss(weight=torch.tensor(W3), label_smoothing=0.1, ignore_index=2), (2, 3, 2, 3),
     lambda rng, dt: _class_target(rng, (2, 2, 3), 3), False),
    ("ce-probabilities-none", lambda: nn.CrossEntropyLoss(reduction="none"),
     lambda: torch.nn.CrossEntropyLoss(reduction="none"), (4, 3),
     lambda rng, dt: rng.dirichlet(np.ones(3), 4).astype(dt), False),
    ("nll-weight", lambda: nn.NLLLoss(weight=W3), lambda: torch.nn.NLLLoss(weight=torch.tensor(W3)), (6, 3),
     lambda rng, dt: _class_target(rng, (6,), 3), False),
    ("mse", lambda: nn.MSELoss(), lambda: torch.nn.MSELoss(), (3, 4),
     lambda rng, dt: rng.standard_normal((3, 4)).astype(dt), True),
    ("mse-sum", lambda: nn.MSELoss(reduction="sum"), lambda: torch.nn.MSELoss(reduction="sum"), (2, 3, 2),
     lambda rng, dt: rng.standard_normal((2, 3, 2)).astype(dt), True),
    ("bce", lambda: nn.BCEWithLogitsLoss(), lambda: torch.nn.BCEWithLogitsLoss(), (4, 3),
     lambda rng, dt: rng.uniform(0, 1, (4, 3)).astype(dt), True),
    ("bce-weights",
     lambda: nn.BCEWithLogitsLoss(weight=np.array([1.0, 0.5, 2.0]), pos_weight=np.array([3.0, 1.0, 0.5])),
     lambda: torch.nn.BCEWithLogitsLoss(weight=torch.tensor([1.0, 0.5, 2.0]), pos_weight=torch.tensor([3.0, 1.0, 0.5])),
     (4, 3), lambda rng, dt: (rng.uniform(0, 1, (4, 3)) > 0.5).astype(dt), True),
]


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", LOSS_CASES, ids=[c[0] for c in LOSS_CASES])
def test_loss_matches_torch(case, dtype):
    _, make, make_torch, shape, make_target, target_grad = case
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    if "nll" in case[0]:
        x = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    target = make_target(rng, dtype)
    loss, reference = make(), make_torch()
    reference = reference.to(torch.float64 if dtype == np.float64 else torch.float32)  # class weights
    xc, xt = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    tc = Tensor(target, requires_grad=target_grad)
    tt = torch.tensor(target, requires_grad=target_grad)
    yc, yt = loss(xc, tc), reference(xt, tt)
    close(yc.data, to_numpy(yt), dtype, "loss")
    grad = rng.standard_normal(tuple(yt.shape)).astype(dtype)
    yc.backward(grad)
    yt.backward(torch.tensor(grad))
    close(xc.grad, to_numpy(xt.grad), dtype, "grad of input")
    if target_grad:
        close(tc.grad, to_numpy(tt.grad), dtype, "grad of target")
    assert list(loss.state_dict()) == list(reference.state_dict())  # class weights are buffers


# -- the definitions, without torch ---------------------------------------------------------------
# Each loss written from its definition with plain loops over Python floats (log-sum-exp and the
# log-sigmoid spelled out), so it shares nothing with cnnlab.functional.  Options follow PyTorch's
# documented conventions: a weighted mean divides by the sum of the weights of the counted
# targets; ignore_index drops a position from the sum and from the divisor; label smoothing
# mixes the target with the uniform distribution, ``(1 - eps) * onehot + eps / C``.


def _log_softmax_row(row):
    top = max(row)
    log_total = top + math.log(sum(math.exp(v - top) for v in row))
    return [v - log_total for v in row]


def _log_sigmoid(v):
    # log(1 / (1 + exp(-v))) = -log(1 + exp(-v)), without overflow for either sign of v
    return -(max(-v, 0.0) + math.log1p(math.exp(-abs(v))))


def _positions(x):
    """(row of class scores, index of the position) for a (N, C, *spatial) input."""
    x = np.asarray(x, dtype=np.float64)
    moved = np.moveaxis(x, 1, -1)
    return [([float(v) for v in moved[idx]], idx) for idx in np.ndindex(*moved.shape[:-1])]


def _reduce(values, divisor, reduction, shape):
    if reduction == "none":
        return np.array(values, dtype=np.float64).reshape(shape)
    total = sum(values)
    return total / divisor if reduction == "mean" else total


def reference_cross_entropy(x, target, weight=None, ignore_index=-100, label_smoothing=0.0,
                            reduction="mean", log_probabilities=False):
    rows = _positions(x)
    classes = len(rows[0][0])
    w = [1.0] * classes if weight is None else [float(v) for v in weight]
    target = np.asarray(target)
    eps = label_smoothing
    values, divisor = [], 0.0
    for row, idx in rows:
        logp = row if log_probabilities else _log_softmax_row(row)
        if target.ndim == np.asarray(x).ndim:  # class probabilities, class axis 1
            p = [float(v) for v in np.moveaxis(target, 1, -1)[idx]]
            p = [(1 - eps) * v + eps / classes for v in p]
            values.append(-sum(w[c] * p[c] * logp[c] for c in range(classes)))
            divisor += 1.0
            continue
        y = int(target[idx])
        if y == ignore_index:
            values.append(0.0)
            continue
        smooth = -sum(w[c] * logp[c] for c in range(classes)) / classes
        values.append((1 - eps) * -w[y] * logp[y] + eps * smooth)
        divisor += w[y]
    return _reduce(values, divisor, reduction, target.shape if target.ndim < np.asarray(x).ndim
                   else target.shape[:1] + target.shape[2:])


def reference_mse(x, target, reduction="mean"):
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    b = np.asarray(target, dtype=np.float64).reshape(-1)
    values = [(float(u) - float(v)) ** 2 for u, v in zip(a, b, strict=True)]
    return _reduce(values, len(values), reduction, np.shape(x))


def reference_bce_with_logits(x, target, weight=None, pos_weight=None, reduction="mean"):
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    w = np.broadcast_to(1.0 if weight is None else np.asarray(weight, dtype=np.float64), x.shape)
    pw = np.broadcast_to(1.0 if pos_weight is None else np.asarray(pos_weight, dtype=np.float64), x.shape)
    values = [-float(w[i]) * (float(pw[i]) * float(t[i]) * _log_sigmoid(float(x[i]))
                              + (1 - float(t[i])) * _log_sigmoid(-float(x[i])))
              for i in np.ndindex(*x.shape)]
    return _reduce(values, len(values), reduction, x.shape)


REFERENCES = {
    "ce": lambda x, t: reference_cross_entropy(x, t),
    "ce-weight-smoothing-sum": lambda x, t: reference_cross_entropy(x, t, W3, label_smoothing=0.2,
                                                                    reduction="sum"),
    "ce-ignore-spatial": lambda x, t: reference_cross_entropy(x, t, ignore_index=1),
    "ce-spatial-weight-smoothing": lambda x, t: reference_cross_entropy(x, t, W3, ignore_index=2,
                                                                        label_smoothing=0.1),
    "ce-probabilities-none": lambda x, t: reference_cross_entropy(x, t, reduction="none"),
    "nll-weight": lambda x, t: reference_cross_entropy(x, t, W3, log_probabilities=True),
    "mse": lambda x, t: reference_mse(x, t),
    "mse-sum": lambda x, t: reference_mse(x, t, "sum"),
    "bce": lambda x, t: reference_bce_with_logits(x, t),
    "bce-weights": lambda x, t: reference_bce_with_logits(x, t, [1.0, 0.5, 2.0], [3.0, 1.0, 0.5]),
}


def test_reference_losses_on_hand_worked_values():
    # two classes, scores (0, log 3): softmax (1/4, 3/4)
    assert reference_cross_entropy([[0.0, math.log(3)]], [1]) == pytest.approx(-math.log(0.75))
    # weights (1, 2): mean divides by the weights of the targets: (1*log4 + 2*log(4/3)) / 3
    value = reference_cross_entropy([[0.0, math.log(3)], [0.0, math.log(3)]], [0, 1], [1.0, 2.0])
    assert value == pytest.approx((math.log(4) + 2 * math.log(4 / 3)) / 3)
    # ignore_index drops the position from the sum and the divisor
    assert reference_cross_entropy([[0.0, math.log(3)], [5.0, 0.0]], [1, 0], ignore_index=0) == pytest.approx(
        -math.log(0.75))
    # label smoothing 0.5 on two classes: target (1/4, 3/4)
    assert reference_cross_entropy([[0.0, math.log(3)]], [1], label_smoothing=0.5) == pytest.approx(
        -(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))
    assert _log_sigmoid(0.0) == pytest.approx(-math.log(2))
    assert _log_sigmoid(-800.0) == pytest.approx(-800.0) and _log_sigmoid(800.0) == 0.0
    assert reference_bce_with_logits([0.0], [1.0], pos_weight=[3.0]) == pytest.approx(3 * math.log(2))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", LOSS_CASES, ids=[c[0] for c in LOSS_CASES])
def test_loss_follows_its_definition(case, dtype):
    """Values against the definition; gradients against float64 central differences of it."""
    name, make, _, shape, make_target, target_grad = case
    reference = REFERENCES[name]
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    if "nll" in name:
        x = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    target = make_target(rng, dtype)
    if name == "ce-ignore-spatial":
        assert (target == 1).any() and (target != 1).any()  # the case ignores some positions, not all
    loss = make()
    xc, tc = Tensor(x, requires_grad=True), Tensor(target, requires_grad=target_grad)
    yc = loss(xc, tc)
    expected = reference(x, target)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(yc.data, expected, **tol, err_msg="loss")
    grad = rng.standard_normal(np.shape(expected))
    yc.backward(grad.astype(dtype))
    x64, t64 = x.astype(np.float64), np.asarray(target, dtype=np.float64 if target_grad else target.dtype)
    gtol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-6, atol=1e-8)
    expected_gx = numerical_grad(lambda: float((np.asarray(reference(x64, t64)) * grad).sum()), x64)
    np.testing.assert_allclose(xc.grad, expected_gx, **gtol, err_msg="grad of input")
    if target_grad:
        expected_gt = numerical_grad(lambda: float((np.asarray(reference(x64, t64)) * grad).sum()), t64)
        np.testing.assert_allclose(tc.grad, expected_gt, **gtol, err_msg="grad of target")
    expected_keys = ["weight"] if name in ("ce-weight-smoothing-sum", "ce-spatial-weight-smoothing",
                                           "nll-weight") else (
        ["weight", "pos_weight"] if name == "bce-weights" else [])
    assert list(loss.state_dict()) == expected_keys  # class weights are buffers, as in PyTorch


def test_loss_layers_validate_arguments():
    with pytest.raises(ValueError, match="reduction must be one of"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        nn.NLLLoss(ignore_index=1.5)
    with pytest.raises(TypeError, match="label_smoothing must be a real number"):
        nn.CrossEntropyLoss(label_smoothing="x")
