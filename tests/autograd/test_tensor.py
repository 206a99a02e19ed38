"""The autograd engine: float64 central-difference checks through every Tensor op, the tape
(tensors used twice, accumulation, deep graphs, no_grad), the functional dispatcher, PyTorch's
choices at ties and kinks, and a small CNN end to end."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

import cnnlab
from cnnlab import Tensor, enable_grad, is_grad_enabled, no_grad
from cnnlab import functional as F
from cnnlab.functional import _loss as loss
from cnnlab.functional._dispatch import differentiable

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch not installed")


def _rand(*shape, seed=0, low=-2.0, high=2.0):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


def gradcheck(fn, *arrays, eps=1e-6, rtol=1e-6, atol=1e-8, seed=1):
    """Compare the engine's gradients of ``<fn(*tensors), g>`` with central differences."""
    tensors = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    out = fn(*tensors)
    assert isinstance(out, Tensor) and out.requires_grad
    g = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(g)
    for k, (a, t) in enumerate(zip(arrays, tensors, strict=True)):
        numeric = np.zeros_like(a)
        for idx in np.ndindex(*a.shape):
            values = []
            for sign in (1, -1):
                moved = [b.copy() for b in arrays]
                moved[k][idx] += sign * eps
                with no_grad():
                    values.append(float(np.sum(fn(*[Tensor(b) for b in moved]).data * g)))
            numeric[idx] = (values[0] - values[1]) / (2 * eps)
        assert t.grad is not None and t.grad.shape == a.shape
        np.testing.assert_allclose(t.grad, numeric, rtol=rtol, atol=atol, err_msg=f"input {k}")


# ---------------------------------------------------------------- arithmetic and broadcasting

BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a**b,
}
SHAPE_PAIRS = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((2, 3, 4), (4,)), ((3,), (2, 3)), ((), (2, 3)), ((2, 3), ())]


@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize("shapes", SHAPE_PAIRS, ids=str)
def test_binary_ops_with_broadcasting(name, shapes):
    a = _rand(*shapes[0], seed=1, low=0.5, high=2.0)  # positive: division and real powers
    b = _rand(*shapes[1], seed=2, low=0.5, high=2.0)
    gradcheck(BINARY[name], a, b)


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: 2.5 + x,
        lambda x: x + 2.5,
        lambda x: 3.0 - x,
        lambda x: x - 3.0,
        lambda x: -1.5 * x,
        lambda x: x * 2,
        lambda x: 2.0 / x,
        lambda x: x / 4,
        lambda x: x**2,
        lambda x: x**3,
        lambda x: x**0.5,
        lambda x: x**-1.5,
        lambda x: 2.0**x,
        lambda x: -x,
        lambda x: +x,
        lambda x: np.full((2, 3), 0.5) * x,  # ndarray on the left defers to the Tensor
        lambda x: np.ones((2, 3)) - x,
    ],
)
def test_ops_with_constants(fn):
    gradcheck(fn, _rand(2, 3, seed=3, low=0.5, high=2.0))


@pytest.mark.parametrize(
    "shapes",
    [((3, 4), (4, 5)), ((4,), (4,)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (2, 4, 5)), ((2, 3, 4), (4,)),
     ((2, 1, 3, 4), (5, 4, 2)), ((3, 4), (2, 4, 5)), ((2, 3, 4), (2, 4, 2))],
    ids=str,
)
def test_matmul_shapes(shapes):
    a, b = _rand(*shapes[0], seed=4), _rand(*shapes[1], seed=5)
    gradcheck(lambda x, y: x @ y, a, b)
    out = Tensor(a) @ Tensor(b)
    np.testing.assert_allclose(out.data, a @ b)


def test_rmatmul_with_an_array():
    a, b = _rand(3, 4, seed=6), _rand(4, 2, seed=7)
    gradcheck(lambda y: a @ y, b)


def test_integer_exponent_of_a_negative_base():
    gradcheck(lambda x: x**3, _rand(4, seed=8))


def test_pow_at_zero_by_hand():
    """d(a**b)/da = b * a**(b-1), taken as 0 where b == 0; d(a**b)/db = a**b * log(a), taken as 0
    where a == 0 and b >= 0 (PyTorch's convention, written out)."""
    base = np.array([0.0, 0.0, 2.0, 0.0])
    exponent = np.array([0.0, 2.0, 0.0, 0.5])
    a, b = Tensor(base, requires_grad=True), Tensor(exponent, requires_grad=True)
    (a**b).sum().backward()
    np.testing.assert_array_equal(a.grad, [0.0, 0.0, 0.0, np.inf])  # 0.5 * 0**-0.5
    np.testing.assert_array_equal(b.grad, [0.0, 0.0, np.log(2.0), 0.0])


@needs_torch
def test_pow_at_zero_follows_torch():
    base = np.array([0.0, 0.0, 2.0, 0.0])
    exponent = np.array([0.0, 2.0, 0.0, 0.5])
    a, b = Tensor(base, requires_grad=True), Tensor(exponent, requires_grad=True)
    (a**b).sum().backward()
    ta = torch.tensor(base, requires_grad=True)
    tb = torch.tensor(exponent, requires_grad=True)
    (ta**tb).sum().backward()
    np.testing.assert_array_equal(a.grad, ta.grad.numpy())
    np.testing.assert_array_equal(b.grad, tb.grad.numpy())
    z = Tensor(np.zeros(2), requires_grad=True)
    (z**0).sum().backward()
    np.testing.assert_array_equal(z.grad, [0.0, 0.0])


# ---------------------------------------------------------------- reductions

DIMS = [None, 0, 1, -1, (0, 2), (-1, 0, 1)]


@pytest.mark.parametrize("dim", DIMS, ids=str)
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin"])
def test_reductions(name, dim, keepdim):
    x = _rand(2, 3, 4, seed=9)
    gradcheck(lambda t: getattr(t, name)(dim=dim, keepdim=keepdim), x)
    expected = getattr(np, {"amax": "max", "amin": "min"}.get(name, name))(
        x, axis=dim if not isinstance(dim, list) else tuple(dim), keepdims=keepdim
    )
    np.testing.assert_allclose(getattr(Tensor(x), name)(dim=dim, keepdim=keepdim).data, expected)


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_and_min_along_a_dim(dim, keepdim):
    x = _rand(3, 4, seed=10)
    gradcheck(lambda t: t.max(dim, keepdim).values, x)
    gradcheck(lambda t: t.min(dim=dim, keepdim=keepdim)[0], x)
    values, indices = Tensor(x).max(dim, keepdim)
    np.testing.assert_array_equal(values.data, np.max(x, axis=dim, keepdims=keepdim))
    np.testing.assert_array_equal(indices.data.reshape(-1), np.argmax(x, axis=dim).reshape(-1))
    assert indices.dtype == np.int64 and not indices.requires_grad


def test_ties_share_the_gradient_by_hand():
    """A full or per-dim max/min splits the gradient evenly among tied maxima (PyTorch's rule)."""
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    cases = [
        (lambda t: t.max(), [[0, 0.5, 0.5], [0, 0, 0]]),
        (lambda t: t.amax(dim=1), [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]]),
        (lambda t: t.amin(dim=0), [[1, 0, 0], [0, 1, 1]]),
        (lambda t: t.min(), [[1, 0, 0], [0, 0, 0]]),
    ]
    for fn, expected in cases:
        ours = Tensor(x, requires_grad=True)
        fn(ours).sum().backward()
        np.testing.assert_allclose(ours.grad, expected, rtol=0, atol=1e-15)


@needs_torch
def test_ties_share_the_gradient_as_torch():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    for fn in (lambda t: t.max(), lambda t: t.amax(dim=1), lambda t: t.amin(dim=0), lambda t: t.min()):
        ours, theirs = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        fn(ours).sum().backward()
        fn(theirs).sum().backward()
        np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=0, atol=1e-15)


def test_max_along_a_dim_sends_the_gradient_to_the_first_maximum():
    x = Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]]), requires_grad=True)
    values, indices = x.max(dim=1)
    values.sum().backward()
    np.testing.assert_array_equal(indices.data, [1, 0])
    np.testing.assert_array_equal(x.grad, [[0, 1, 0], [1, 0, 0]])


def test_argmax_and_argmin():
    x = _rand(3, 5, seed=11)
    np.testing.assert_array_equal(Tensor(x).argmax(1).data, np.argmax(x, 1))
    np.testing.assert_array_equal(Tensor(x).argmin().data, np.argmin(x))
    assert Tensor(x).argmax(dim=0, keepdim=True).shape == (1, 5)


def test_max_with_several_dims_points_to_amax():
    with pytest.raises(TypeError, match="max: dim must be an int.*amax"):
        Tensor(np.ones((2, 2))).max(dim=(0, 1))


def test_reduction_dim_errors():
    x = Tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"sum: dim must be in \[-2, 1\]"):
        x.sum(dim=2)
    with pytest.raises(ValueError, match="mean: dim must not repeat"):
        x.mean(dim=(0, -2))
    with pytest.raises(TypeError, match="sum: dim must be an int"):
        x.sum(dim=1.0)


# ---------------------------------------------------------------- shapes and indexing


@pytest.mark.parametrize(
    "fn",
    [
        lambda t: t.reshape(6, 4),
        lambda t: t.reshape((4, -1)),
        lambda t: t.view(-1),
        lambda t: t.flatten(),
        lambda t: t.flatten(1),
        lambda t: t.flatten(0, 1),
        lambda t: t.flatten(start_dim=-2, end_dim=-1),
        lambda t: t.transpose(0, 2),
        lambda t: t.transpose(-1, 1),
        lambda t: t.permute(2, 0, 1),
        lambda t: t.permute((1, 2, 0)),
        lambda t: t.T,
        lambda t: t.unsqueeze(1),
        lambda t: t.unsqueeze(-1),
        lambda t: t[:, :1].squeeze(),
        lambda t: t[:, :1].squeeze(1),
    ],
)
def test_shape_ops(fn):
    gradcheck(fn, _rand(2, 3, 4, seed=12))


def test_astype_casts_the_gradient_back():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    y = x.float()
    assert y.dtype == np.float32
    (y * 2).sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad, np.full((2, 3), 2.0))
    gradcheck(lambda t: t.double() * t, _rand(3, seed=31))


def test_integer_results_do_not_require_grad():
    x = Tensor(np.array([1.5, -2.5]), requires_grad=True)
    assert not x.astype(np.int64).requires_grad


def test_shape_op_values():
    x = _rand(2, 3, 4, seed=13)
    t = Tensor(x)
    np.testing.assert_array_equal(t.permute(2, 0, 1).data, np.transpose(x, (2, 0, 1)))
    np.testing.assert_array_equal(t.transpose(0, 2).data, np.swapaxes(x, 0, 2))
    np.testing.assert_array_equal(t.flatten(1).data, x.reshape(2, 12))
    np.testing.assert_array_equal(Tensor(x[0]).T.data, x[0].T)
    assert t.unsqueeze(3).shape == (2, 3, 4, 1) and t.squeeze(0).shape == (2, 3, 4)


def test_shape_op_errors():
    t = Tensor(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="permute: dims must be a permutation"):
        t.permute(0, 0, 1)
    with pytest.raises(ValueError, match="flatten: start_dim 2 comes after end_dim 1"):
        t.flatten(2, 1)
    with pytest.raises(ValueError, match="transpose: dim must be in"):
        t.transpose(0, 3)


@pytest.mark.parametrize(
    "index",
    [
        1,
        -1,
        (slice(None), 2),
        (slice(1, None), slice(None, None, -2)),
        (Ellipsis, 1),
        (None, 0),
        ([0, 2, 2, 0],),
        (np.array([2, 2, 2]), slice(None)),
        (np.array([[0, 1], [1, 1]]), np.array([[3, 3], [0, 3]])),
        (slice(None), [1, 1, 0]),
        (np.array([True, False, True]),),
    ],
    ids=str,
)
def test_indexing(index):
    x = _rand(3, 4, seed=14)
    gradcheck(lambda t: t[index], x)
    np.testing.assert_array_equal(Tensor(x)[index].data, x[index])


def test_repeated_indices_accumulate():
    x = Tensor(np.arange(4.0), requires_grad=True)
    x[np.array([1, 1, 3, 1])].sum().backward()
    np.testing.assert_array_equal(x.grad, [0, 3, 0, 1])


def test_tensor_indices_and_masks():
    x = Tensor(_rand(5, seed=15), requires_grad=True)
    mask = x > 0
    x[mask].sum().backward()
    np.testing.assert_array_equal(x.grad, (x.data > 0).astype(float))
    y = Tensor(_rand(3, 4, seed=16), requires_grad=True)
    y[Tensor(np.array([0, 0])), 1].sum().backward()
    expected = np.zeros((3, 4))
    expected[0, 1] = 2
    np.testing.assert_array_equal(y.grad, expected)


# ---------------------------------------------------------------- elementwise functions


@pytest.mark.parametrize(
    "fn",
    [
        lambda t: t.exp(),
        lambda t: t.log(),
        lambda t: t.sqrt(),
        lambda t: (t - 1.2).abs(),
        lambda t: t.clamp(0.8, 1.5),
        lambda t: t.clamp(min=1.0),
        lambda t: t.clamp(max=1.0),
        lambda t: (t - 1).relu(),
        lambda t: t.sigmoid(),
        lambda t: t.tanh(),
        lambda t: t.softmax(1),
        lambda t: t.log_softmax(dim=-1),
    ],
)
def test_elementwise_functions(fn):
    x = _rand(3, 4, seed=17, low=0.3, high=2.0)
    x[np.abs(x - 1.2) < 0.05] += 0.1  # keep away from the kink of abs
    x[np.abs(x - 1.0) < 0.05] += 0.1  # of relu and clamp
    x[np.abs(x - 0.8) < 0.05] += 0.1
    x[np.abs(x - 1.5) < 0.05] += 0.1
    gradcheck(fn, x)


def test_subgradients_at_kinks_by_hand():
    """abs'(0) = 0; relu'(0) = 0; clamp passes the gradient on its closed interval [min, max]."""
    x = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])
    cases = [
        (lambda t: t.abs(), [-1, 0, 1, 1, 1]),
        (lambda t: t.clamp(0.0, 1.0), [0, 1, 1, 1, 0]),
        (lambda t: t.relu(), [0, 0, 1, 1, 1]),
        (lambda t: t.clamp(min=0.5), [0, 0, 1, 1, 1]),
    ]
    for fn, expected in cases:
        ours = Tensor(x, requires_grad=True)
        fn(ours).sum().backward()
        np.testing.assert_array_equal(ours.grad, expected)


@needs_torch
def test_subgradients_at_kinks_follow_torch():
    x = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])
    for fn in (lambda t: t.abs(), lambda t: t.clamp(0.0, 1.0), lambda t: t.relu(), lambda t: t.clamp(min=0.5)):
        ours, theirs = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        fn(ours).sum().backward()
        fn(theirs).sum().backward()
        np.testing.assert_array_equal(ours.grad, theirs.grad.numpy())


def test_activation_methods_match_functional():
    x = _rand(2, 5, seed=18)
    t = Tensor(x)
    np.testing.assert_array_equal(t.relu().data, F.relu(x))
    np.testing.assert_array_equal(t.softmax(1).data, F.softmax(x, 1))
    np.testing.assert_array_equal(t.log_softmax(0).data, F.log_softmax(x, 0))


def test_clamp_needs_a_bound():
    with pytest.raises(ValueError, match="clamp: at least one of min and max"):
        Tensor(np.ones(2)).clamp()


def test_comparisons_give_boolean_tensors_without_grad():
    a = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    b = np.array([2.0, 2.0, 2.0])
    for result, expected in [
        (a < b, [True, False, False]),
        (a <= 2, [True, True, False]),
        (a > Tensor(b), [False, False, True]),
        (a >= b, [False, True, True]),
        (a == 2.0, [False, True, False]),
        (a != b, [True, False, True]),
    ]:
        assert isinstance(result, Tensor) and result.dtype == np.bool_
        assert not result.requires_grad
        np.testing.assert_array_equal(result.data, expected)
    assert ((a > 1).sum()).item() == 2


# ---------------------------------------------------------------- the tape


def test_tensor_used_twice_accumulates():
    x = _rand(3, seed=19)
    gradcheck(lambda t: t * t + t, x)
    gradcheck(lambda t: (t.exp() * t + t.exp()).sum(), x)
    t = Tensor(x, requires_grad=True)
    (t * t).sum().backward()
    np.testing.assert_allclose(t.grad, 2 * x)


def test_shared_subexpression_diamond():
    x = _rand(2, 3, seed=20)
    gradcheck(lambda t: ((h := t * 2) + 1) * (h - 1) + h.sum(1, keepdim=True), x)


def test_leaf_grad_accumulates_across_backward_calls():
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (w * 3).sum().backward()
    (w * w).sum().backward()
    np.testing.assert_array_equal(w.grad, [3 + 2, 3 + 4])
    w.grad = None
    (w * 3).sum().backward()
    np.testing.assert_array_equal(w.grad, [3, 3])


def test_retain_graph_keeps_the_graph_for_a_second_backward():
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (w * w).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(w.grad, [4, 8])


def test_a_second_backward_through_a_freed_graph_raises():
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (w * w).sum()
    y.backward()
    np.testing.assert_array_equal(w.grad, [2, 4])
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()
    np.testing.assert_array_equal(w.grad, [2, 4])  # nothing added by the refused call
    assert y.grad_fn == "sum__backward"  # the node keeps its name


@pytest.mark.parametrize("bad", [1, "yes", 0.0])
def test_retain_graph_must_be_a_bool(bad):
    y = (Tensor(np.ones(2), requires_grad=True) * 2).sum()
    with pytest.raises(TypeError, match="retain_graph must be a bool"):
        y.backward(retain_graph=bad)


def test_intermediate_tensors_keep_no_grad():
    w = Tensor(np.ones(3), requires_grad=True)
    h = w * 2
    h.sum().backward()
    assert h.grad is None and not h.is_leaf and w.is_leaf
    assert h.grad_fn == "mul_backward" and w.grad_fn is None


def test_inputs_without_requires_grad_get_no_grad():
    a = Tensor(np.ones(3))
    b = Tensor(np.ones(3), requires_grad=True)
    (a * b).sum().backward()
    assert a.grad is None
    np.testing.assert_array_equal(b.grad, np.ones(3))
    c = a * 2
    assert not c.requires_grad and c.is_leaf


def test_deep_graph_needs_no_recursion():
    x = Tensor(np.array(1.0), requires_grad=True)
    y = x
    for _ in range(20000):
        y = y * 1.0 + 0.0
    y.backward()
    assert x.grad == 1.0
    del y  # freeing a long chain must not overflow either


def test_backward_of_a_non_scalar():
    x = Tensor(np.arange(3.0), requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar outputs"):
        y.backward()
    with pytest.raises(ValueError, match=r"backward: grad must have the tensor's shape \(3,\)"):
        y.backward(np.ones(2))
    y.backward(np.array([1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(x.grad, [2, 0, 4])
    z = Tensor(np.ones((1, 1)), requires_grad=True)
    (z * 5).backward()  # one element: no grad argument needed
    np.testing.assert_array_equal(z.grad, [[5.0]])


def test_backward_without_requires_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        (Tensor(np.ones(2)) * 2).sum().backward()


def test_float32_graph_gives_float32_grads():
    x = Tensor(np.ones((2, 2), dtype=np.float32), requires_grad=True)
    y = (x * 2.5 + x @ x).sum()
    assert y.dtype == np.float32
    y.backward()
    assert x.grad.dtype == np.float32


def test_mixed_dtypes_give_each_input_its_own_dtype():
    a = Tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    b = Tensor(np.ones(2, dtype=np.float64), requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64


# ---------------------------------------------------------------- no_grad


def test_no_grad_records_nothing():
    w = Tensor(np.ones(2), requires_grad=True)
    assert is_grad_enabled()
    with no_grad():
        assert not is_grad_enabled()
        y = w * 2
        with enable_grad():
            z = w * 3
        assert not is_grad_enabled()
    assert is_grad_enabled()
    assert not y.requires_grad and y.is_leaf
    assert z.requires_grad


def test_no_grad_as_decorator_with_and_without_call():
    w = Tensor(np.ones(2), requires_grad=True)

    @no_grad()
    def double(t):
        return t * 2

    @no_grad
    def triple(t):
        return t * 3

    assert not double(w).requires_grad and not triple(w).requires_grad
    assert triple.__name__ == "triple" and is_grad_enabled()


def test_no_grad_restores_the_mode_after_an_exception():
    with pytest.raises(KeyError), no_grad():
        raise KeyError("x")
    assert is_grad_enabled()


# ---------------------------------------------------------------- the Tensor object


def test_tensor_basics():
    data = np.arange(6.0).reshape(2, 3)
    t = Tensor(data)
    assert t.data is data and t.numpy() is data  # no copy
    assert t.shape == (2, 3) and t.ndim == 2 and t.dtype == np.float64
    assert t.size() == (2, 3) and t.size(-1) == 3 and t.numel() == 6 and t.dim() == 2 and len(t) == 2
    assert Tensor(np.array([2.5])).item() == 2.5 and float(Tensor(3.0)) == 3.0
    assert [row.tolist() for row in t] == data.tolist()
    np.testing.assert_array_equal(np.asarray(t), data)
    c = cnnlab.tensor(data, requires_grad=True)
    assert c.data is not data and c.requires_grad
    d = c.detach()
    assert not d.requires_grad and d.data is c.data and d.is_leaf
    assert {t: 1}[t] == 1  # hashable by identity


def test_tensor_repr():
    assert repr(Tensor([1.0, 2.0])) == "Tensor([1., 2.])"
    assert repr(Tensor(np.ones(2, dtype=np.float32), requires_grad=True)) == (
        "Tensor([1., 1.], dtype=float32, requires_grad=True)"
    )
    assert repr(Tensor([1.0], requires_grad=True) * 2) == "Tensor([2.], grad_fn=<mul_backward>)"


def test_tensor_errors():
    with pytest.raises(TypeError, match="only floating point tensors can require grad"):
        Tensor(np.arange(3), requires_grad=True)
    with pytest.raises(TypeError, match="Tensor: data must be boolean, integer or floating"):
        Tensor(np.array(["a"]))
    with pytest.raises(TypeError, match="requires_grad must be a bool"):
        Tensor(np.ones(2), requires_grad=1)
    with pytest.raises(RuntimeError, match="only be changed on a leaf"):
        (Tensor(np.ones(2), requires_grad=True) * 2).requires_grad = False
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
        len(Tensor(1.0))
    with pytest.raises(ValueError, match="item: tensor must have one element"):
        Tensor(np.ones(2)).item()


def test_numpy_ufuncs_refuse_tensors():
    with pytest.raises(TypeError):
        np.exp(Tensor(np.ones(2)))


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
