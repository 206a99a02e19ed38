"""The tape's walk: reverse topological order and gradient accumulation.

Nodes are the :class:`Node` of each recorded operation and the leaf Tensors (duck-typed here:
``_parents``, ``_backward_fn``, ``requires_grad``, ``grad``, ``shape``, ``dtype``, ``grad_fn``); the
engine sums the gradients reaching a node used twice.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np


class Node:
    """One recorded operation: its backward closure, the nodes (or leaf Tensors) its inputs came
    from, and the shape and dtype of its output, but not the output's data.

    The result Tensor holds its node; the node never holds a Tensor other than a leaf.  So an
    intermediate result that nothing else refers to (a conv's output once the ReLU after it has run)
    is freed after the forward pass, as in PyTorch, instead of living until the graph is dropped;
    what a backward needs is what its closure saved.
    """

    __slots__ = ("_parents", "_backward_fn", "shape", "dtype")
    requires_grad = True

    def __init__(self, parents: tuple[Any, ...], backward_fn: Any, shape: tuple[int, ...], dtype: Any) -> None:
        self._parents = parents
        self._backward_fn = backward_fn
        self.shape = shape
        self.dtype = dtype

    @property
    def grad_fn(self) -> str:
        return self._backward_fn.__name__


def edge(tensor: Any) -> Any:
    """What a node records for one input: its node, the leaf Tensor itself, or None when it wants
    no gradient."""
    if tensor is None or not tensor.requires_grad:
        return None
    return tensor._node if tensor._node is not None else tensor


def _sole_owner(grad: Any, dtype: Any) -> bool:
    """Whether ``grad`` is a writeable array of ``dtype`` that owns its memory, or is the whole of
    an array that owns it and that nothing else refers to (a kernel's output reshaped): with no
    other reference to ``grad`` (checked by the caller), a leaf may keep it as its ``.grad``."""
    if type(grad) is not np.ndarray or grad.dtype != dtype or not grad.flags.writeable:
        return False
    base = grad.base
    if base is None:
        return True
    return (type(base) is np.ndarray and base.base is None and base.nbytes == grad.nbytes
            and grad.flags.c_contiguous and base.flags.c_contiguous
            and sys.getrefcount(base) == 3)  # (grad's reference, this name and the call's)


class Released:
    """A node's backward after the engine ran it without ``retain_graph``: the closure, and with
    it what the forward saved for it, is gone; calling this raises.  It keeps the closure's name,
    so ``grad_fn`` still reads as before."""

    __slots__ = ("__name__",)

    def __init__(self, name: str) -> None:
        self.__name__ = name

    def __call__(self, grad: Any) -> Any:
        raise RuntimeError(
            f"backward: {self.__name__} was already run and what its forward saved was freed "
            "(a backward without retain_graph=True frees the graph it goes through, as in PyTorch); "
            "to go back through a graph twice, pass retain_graph=True to every backward but the last"
        )


def topological_order(root: Any) -> list[Any]:
    """Tensors that require grad and lead to ``root``, each after all of its parents
    (iterative depth-first search)."""
    order: list[Any] = []
    seen = {id(root)}
    stack = [(root, iter(root._parents))]
    while stack:
        node, parents = stack[-1]
        for parent in parents:
            if parent is not None and parent.requires_grad and id(parent) not in seen:
                seen.add(id(parent))
                stack.append((parent, iter(parent._parents)))
                break
        else:
            stack.pop()
            order.append(node)
    return order


def run_backward(root: Any, seed: np.ndarray, retain_graph: bool = False) -> None:
    """Send ``seed``, the gradient of the Tensor ``root``, back through the recorded graph.

    Without ``retain_graph`` each node's backward closure is dropped once it has run (a
    :class:`Released` takes its place), so what its forward saved is freed as the walk goes on, as
    in PyTorch; a closure with a true ``takes_last_use`` attribute is also told, by ``last_use=True``,
    that it runs for the last time and may reuse what it saved as scratch space.
    """
    root = edge(root)
    pending = {id(root): seed}  # summed gradient of each node not yet processed
    for node in reversed(topological_order(root)):
        grad = pending.pop(id(node), None)
        if grad is None:
            continue
        if node._backward_fn is None:  # a leaf: accumulate across backward calls
            if node.grad is not None:
                node.grad = node.grad + np.asarray(grad, dtype=node.dtype)
            elif _sole_owner(grad, node.dtype) and sys.getrefcount(grad) == 2:  # (this name and the call's)
                node.grad = grad  # an array nothing else can see: kept, not copied (PyTorch does the same)
            else:
                node.grad = np.array(grad, dtype=node.dtype, copy=True)
            continue
        backward_fn = node._backward_fn
        if retain_graph:
            grads = backward_fn(grad)
        else:
            node._backward_fn = Released(backward_fn.__name__)
            last = getattr(backward_fn, "takes_last_use", False)
            grads = backward_fn(grad, last_use=True) if last else backward_fn(grad)
            backward_fn = None
        for parent, parent_grad in zip(node._parents, grads, strict=True):
            if parent is None or parent_grad is None or not parent.requires_grad:
                continue
            parent_grad = np.asarray(parent_grad)
            if parent_grad.shape != parent.shape:
                raise RuntimeError(
                    f"backward: {node.grad_fn} returned a gradient of shape "
                    f"{parent_grad.shape} for an input of shape {parent.shape}"
                )
            parent_grad = parent_grad.astype(parent.dtype, copy=False)
            key = id(parent)
            pending[key] = pending[key] + parent_grad if key in pending else parent_grad
        grads = parent_grad = None  # (so that a leaf's gradient is referenced by ``pending`` alone)
