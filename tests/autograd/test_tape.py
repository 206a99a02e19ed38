"""The tape's gradient hand-over to leaves: a gradient array nothing else refers to becomes the
leaf's ``.grad`` as it is (no copy, as in PyTorch); any gradient another holder can see is copied,
so no two ``.grad`` arrays, and no array of the caller's, ever share memory."""

from __future__ import annotations

import weakref

import numpy as np

from cnnlab.autograd import Tensor
from cnnlab.autograd._tape import Node, run_backward


def _root(parents, backward_fn, shape=(3,)):
    root = Tensor(np.zeros(shape, np.float32), requires_grad=True)
    root._node = Node(tuple(parents), backward_fn, shape, np.dtype(np.float32))
    return root


def test_a_gradient_only_the_tape_holds_is_kept_without_a_copy():
    x = Tensor(np.zeros(3, np.float32), requires_grad=True)
    made = []

    def backward(grad):
        out = grad * 2  # a fresh array, held by nothing but the tape
        made.append(weakref.ref(out))
        return (out,)

    run_backward(_root([x], backward), np.ones(3, np.float32))
    assert made[0]() is x.grad
    np.testing.assert_array_equal(x.grad, [2, 2, 2])


def test_a_gradient_sent_to_two_leaves_is_copied_for_one_of_them():
    a = Tensor(np.zeros(3, np.float32), requires_grad=True)
    b = Tensor(np.zeros(3, np.float32), requires_grad=True)
    run_backward(_root([a, b], lambda grad: (grad * 1, None)), np.ones(3, np.float32))  # (b gets none)
    assert b.grad is None
    (a + b).sum().backward()  # add's backward hands the same array to both
    assert not np.shares_memory(a.grad, b.grad)
    a.grad[0] = 100
    assert b.grad[0] == 1


def test_a_gradient_the_backward_keeps_or_the_caller_holds_is_copied():
    x = Tensor(np.zeros(3, np.float32), requires_grad=True)
    kept = []

    def backward(grad):
        out = grad * 3
        kept.append(out)  # still referenced after the backward
        return (out,)

    run_backward(_root([x], backward), np.ones(3, np.float32))
    assert not np.shares_memory(x.grad, kept[0])
    seed = np.full(3, 5, np.float32)
    leaf = Tensor(np.zeros(3, np.float32), requires_grad=True)
    leaf.backward(seed)  # the root is the leaf: its gradient is the caller's array
    assert not np.shares_memory(leaf.grad, seed)
    view_source = np.ones(6, np.float32)
    y = Tensor(np.zeros(3, np.float32), requires_grad=True)
    run_backward(_root([y], lambda grad: (view_source[:3],)), np.ones(3, np.float32))
    assert not np.shares_memory(y.grad, view_source)  # a view of another array


def test_gradients_accumulate_into_a_new_array():
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    (x * 2).sum().backward()
    first = x.grad
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [5, 5, 5])
    np.testing.assert_array_equal(first, [2, 2, 2])  # the first backward's array is left as it was
    assert x.grad.dtype == np.float32


def test_a_whole_reshaped_array_nothing_else_holds_is_kept_without_a_copy():
    """Kernels write into an array of their own layout and return it reshaped: that view is the
    whole of an array only the view refers to, so it is kept as it is."""
    x = Tensor(np.zeros((2, 3), np.float32), requires_grad=True)
    made = []

    def backward(grad):
        flat = np.empty(6, np.float32)
        flat[:] = np.arange(6)
        out = flat.reshape(2, 3)
        made.append(weakref.ref(flat))
        return (out,)

    run_backward(_root([x], backward, (2, 3)), np.ones((2, 3), np.float32))
    assert made[0]() is not None and x.grad.base is made[0]()
    np.testing.assert_array_equal(x.grad, np.arange(6).reshape(2, 3))


def test_a_reshaped_array_someone_else_holds_or_part_of_one_is_copied():
    held = np.arange(6, dtype=np.float32)
    cases = [
        lambda: held.reshape(2, 3),  # its array is still the caller's
        lambda: np.arange(12, dtype=np.float32)[:6].reshape(2, 3),  # part of a larger array
        lambda: np.arange(6, dtype=np.float32).reshape(3, 2).T,  # not in the array's order
    ]
    for make in cases:
        x = Tensor(np.zeros((2, 3), np.float32), requires_grad=True)

        def backward(grad, make=make):
            return (make(),)

        run_backward(_root([x], backward, (2, 3)), np.ones((2, 3), np.float32))
        assert x.grad.base is None
        assert not np.shares_memory(x.grad, held)


def test_a_second_view_of_the_same_array_makes_a_copy():
    x = Tensor(np.zeros((2, 3), np.float32), requires_grad=True)
    other = []

    def backward(grad):
        flat = np.arange(6, dtype=np.float32)
        other.append(flat.reshape(3, 2))  # another holder of the same memory
        return (flat.reshape(2, 3),)

    run_backward(_root([x], backward, (2, 3)), np.ones((2, 3), np.float32))
    assert not np.shares_memory(x.grad, other[0])
