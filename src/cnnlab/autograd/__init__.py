"""Reverse-mode automatic differentiation: the :class:`Tensor`, its tape and ``no_grad``.

A :class:`Tensor` wraps a NumPy array.  When an operation runs on Tensors and one of them
``requires_grad``, the result remembers its input Tensors (its *parents*) and a backward
closure: that is the tape.  :meth:`Tensor.backward` visits the recorded graph in reverse
topological order (iteratively, so deep graphs do not hit the recursion limit) and calls each
backward closure with the gradient of its output.  The engine, not the operators, sums the
gradients reaching a Tensor used more than once, and leaves (Tensors created by the user)
accumulate into ``.grad`` across calls, as in PyTorch.  Intermediate Tensors keep no ``.grad``.

Every operation goes through :func:`cnnlab.functional._dispatch.differentiable`: a NumPy
forward and its backward written beside it (the Tensor's arithmetic, reductions and shape ops
in ``cnnlab/autograd/_ops.py``; activations, convolution, pooling and losses in
``cnnlab.functional``).  The engine has no copy of any derivative.

As in PyTorch, ``backward`` frees the graph as it goes (each operation's saved arrays once its
backward has run) unless ``retain_graph=True``; a second ``backward`` through a freed graph raises.

Differences from PyTorch, on purpose: ``Tensor(array)`` shares memory with ``array`` (``cnnlab.tensor`` copies);
dtypes follow NumPy (a Python float list gives float64); ``.numpy()`` works on Tensors that
require grad; modifying ``.data`` in place between forward and backward is not detected.
"""

from cnnlab.autograd._grad_mode import enable_grad, is_grad_enabled, no_grad
from cnnlab.autograd._tensor import Tensor, tensor

__all__ = ["Tensor", "enable_grad", "is_grad_enabled", "no_grad", "tensor"]
