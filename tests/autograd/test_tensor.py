"""The autograd engine: float64 central-difference checks through every Tensor op, the tape
(tensors used twice, accumulation, deep graphs, no_grad) and PyTorch's choices at ties and kinks
(the functional dispatcher and a small CNN end to end: test_dispatcher.py)."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab
from cnnlab import Tensor, enable_grad, is_grad_enabled, no_grad
from cnnlab import functional as F

from .helpers import gradcheck, needs_torch, torch
from .helpers import rand as _rand

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
