"""The :class:`Tensor`: reverse-mode automatic differentiation: the :class:`Tensor`, its tape and ``no_grad``.

A :class:`Tensor` wraps a NumPy array.  When an operation runs on Tensors and one of them
``requires_grad``, the result gets a node that remembers where its inputs came from (their nodes,
or the leaf Tensors: its *parents*) and a backward closure: that is the tape.  The node does not
hold the input Tensors' data, so an intermediate result nothing else refers to is freed after the
forward, as in PyTorch.  :meth:`Tensor.backward` visits the recorded graph in reverse
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

from __future__ import annotations

import math
from collections import namedtuple
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from cnnlab import functional as F
from cnnlab.autograd import _ops as ops
from cnnlab.autograd._grad_mode import is_grad_enabled
from cnnlab.autograd._tape import Node, run_backward
from cnnlab.functional._args import check_dim
from cnnlab.functional._dispatch import differentiable, register_engine

ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])


def _data(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


class Tensor:
    """An n-dimensional array that can record operations for reverse-mode differentiation.

    Parameters
    ----------
    data : array_like or Tensor
        The values; an ndarray is wrapped without copying.
    requires_grad : bool, default False
        Whether gradients with respect to this Tensor are wanted (floating dtypes only).

    Attributes
    ----------
    data : numpy.ndarray
        The values.
    grad : numpy.ndarray or None
        The accumulated gradient of a leaf that requires grad, after :meth:`backward`.

    Raises
    ------
    TypeError
        If ``data`` is not numeric, or ``requires_grad`` is set on a non-floating dtype.

    Examples
    --------
    >>> x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    array([2., 4., 6.])
    """

    __array_ufunc__ = None  # ``ndarray op Tensor`` defers to the Tensor's reflected operator

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        array = np.asarray(_data(data))
        if array.dtype.kind not in "biuf":
            raise TypeError(
                f"Tensor: data must be boolean, integer or floating, got dtype {array.dtype}"
            )
        self.data = array
        self.grad: np.ndarray | None = None
        self._parents: tuple[Tensor | None, ...] = ()  # a leaf's, for the tape's walk: none
        self._backward_fn: Callable[[np.ndarray], tuple] | None = None  # a leaf has none
        self._node: Node | None = None  # the operation that produced this Tensor (None: a leaf)
        self._requires_grad = False
        self.requires_grad = requires_grad

    # ------------------------------------------------------------ autograd state

    @property
    def requires_grad(self) -> bool:
        """Whether this Tensor takes part in differentiation."""
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"Tensor: requires_grad must be a bool, got {flag!r}")
        if not self.is_leaf:
            raise RuntimeError(
                "Tensor: requires_grad can only be changed on a leaf tensor; use detach()"
            )
        if flag and self.data.dtype.kind != "f":
            raise TypeError(
                f"Tensor: only floating point tensors can require grad, got dtype {self.dtype}"
            )
        self._requires_grad = bool(flag)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set :attr:`requires_grad` in place and return ``self``."""
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self) -> bool:
        """True for Tensors not produced by a recorded operation."""
        return self._node is None

    @property
    def grad_fn(self) -> str | None:
        """Name of the backward function that produced this Tensor (None for a leaf)."""
        return None if self._node is None else self._node.grad_fn

    def detach(self) -> Tensor:
        """A new leaf sharing the data, cut from the graph."""
        return Tensor(self.data)

    def backward(self, grad: Any = None, retain_graph: bool | None = None) -> None:
        """Accumulate into ``.grad`` of every leaf the gradient of this Tensor.

        Parameters
        ----------
        grad : array_like or Tensor, optional
            The gradient of some scalar with respect to this Tensor (same shape).  May be
            omitted only for a one-element Tensor, where it defaults to 1.
        retain_graph : bool, optional
            Keep the graph, and what its operations saved for their backward, so that a later
            ``backward`` can go through it again.  By default (None or False) the graph is freed
            as the backward goes (each operation's saved arrays as soon as its backward has run),
            as in PyTorch: a training step then needs less memory.

        Raises
        ------
        RuntimeError
            If this Tensor does not require grad, ``grad`` is omitted for a Tensor with more
            than one element, or the graph was freed by an earlier backward.
        TypeError
            If ``retain_graph`` is not a bool or None.
        ValueError
            If ``grad`` does not have this Tensor's shape.
        """
        if retain_graph is not None and not isinstance(retain_graph, (bool, np.bool_)):
            raise TypeError(f"backward: retain_graph must be a bool or None, got {type(retain_graph).__name__}")
        if not self.requires_grad:
            raise RuntimeError(
                "backward: this tensor does not require grad and has no grad_fn "
                "(no input of the computation had requires_grad=True, or it ran in no_grad)"
            )
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    "backward: grad can be implicitly created only for scalar outputs; "
                    f"this tensor has shape {self.shape}, pass grad= of that shape"
                )
            seed = np.ones_like(self.data)
        else:
            seed = np.asarray(_data(grad))
            if seed.shape != self.shape:
                raise ValueError(
                    f"backward: grad must have the tensor's shape {self.shape}, got {seed.shape}"
                )
            seed = seed.astype(self.dtype, copy=False)
        run_backward(self, seed, retain_graph=bool(retain_graph))

    # ------------------------------------------------------------ array-like facts

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def size(self, dim: int | None = None) -> tuple[int, ...] | int:
        """The shape, or the length of axis ``dim`` (as ``torch.Tensor.size``)."""
        if dim is None:
            return self.data.shape
        return self.data.shape[check_dim("size", dim, self.ndim)]

    def numel(self) -> int:
        """Number of elements."""
        return int(self.data.size)

    def dim(self) -> int:
        """Number of dimensions (as ``torch.Tensor.dim``)."""
        return self.data.ndim

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (shared, not copied)."""
        return self.data

    def item(self) -> Any:
        """The single element as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item: tensor must have one element, got shape {self.shape}")
        return self.data.item()

    def tolist(self) -> Any:
        return self.data.tolist()

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return self.data if dtype is None else self.data.astype(dtype)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __iter__(self) -> Any:
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self.data)))

    def __bool__(self) -> bool:
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="Tensor(")
        extra = ""
        if self.dtype not in (np.float64, np.int64, np.bool_):
            extra += f", dtype={self.dtype}"
        if self._node is not None:
            extra += f", grad_fn=<{self.grad_fn}>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"Tensor({body}{extra})"

    __hash__ = object.__hash__  # identity, so Tensors can key dicts (==/!= are elementwise)

    # ------------------------------------------------------------ arithmetic

    def __add__(self, other: Any) -> Tensor:
        return _add(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return _add(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return _sub(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return _sub(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return _mul(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return _mul(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return _div(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return _div(other, self)

    def __pow__(self, exponent: Any) -> Tensor:
        return _power(self, exponent)

    def __rpow__(self, base: Any) -> Tensor:
        return _power(base, self)

    def __matmul__(self, other: Any) -> Tensor:
        return _matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return _matmul(other, self)

    def __neg__(self) -> Tensor:
        return _neg(self)

    def __pos__(self) -> Tensor:
        return self

    # Comparisons give boolean Tensors that never require grad.
    def __lt__(self, other: Any) -> Tensor:
        return Tensor(self.data < _data(other))

    def __le__(self, other: Any) -> Tensor:
        return Tensor(self.data <= _data(other))

    def __gt__(self, other: Any) -> Tensor:
        return Tensor(self.data > _data(other))

    def __ge__(self, other: Any) -> Tensor:
        return Tensor(self.data >= _data(other))

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return Tensor(self.data == _data(other))

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return Tensor(self.data != _data(other))

    # ------------------------------------------------------------ reductions

    def sum(self, dim: ops.Dims = None, keepdim: bool = False) -> Tensor:
        """Sum over ``dim`` (None: all axes; an int or a tuple of ints)."""
        return _sum(self, dim, keepdim)

    def mean(self, dim: ops.Dims = None, keepdim: bool = False) -> Tensor:
        """Mean over ``dim`` (None: all axes; an int or a tuple of ints)."""
        return _mean(self, dim, keepdim)

    def amax(self, dim: ops.Dims = None, keepdim: bool = False) -> Tensor:
        """Maximum over ``dim``; tied maxima share the gradient evenly (as ``torch.amax``)."""
        return _amax(self, dim, keepdim)

    def amin(self, dim: ops.Dims = None, keepdim: bool = False) -> Tensor:
        """Minimum over ``dim``; tied minima share the gradient evenly (as ``torch.amin``)."""
        return _amin(self, dim, keepdim)

    def max(self, dim: int | None = None, keepdim: bool = False) -> Any:
        """Maximum, as ``torch.max``.

        Without ``dim``: a 0-d Tensor, the gradient shared evenly among tied maxima.  With an
        int ``dim``: ``(values, indices)``, the gradient going wholly to the first maximum
        (the index returned).  For several axes use :meth:`amax`.
        """
        return self._extreme("max", dim, keepdim, _amax, _max_dim)

    def min(self, dim: int | None = None, keepdim: bool = False) -> Any:
        """Minimum, as ``torch.min`` (see :meth:`max` for ties and the ``dim`` form)."""
        return self._extreme("min", dim, keepdim, _amin, _min_dim)

    def _extreme(self, name: str, dim: Any, keepdim: bool, whole: Any, along: Any) -> Any:
        if dim is None:
            return whole(self, None, keepdim)
        if isinstance(dim, (tuple, list)):
            raise TypeError(f"{name}: dim must be an int, got {dim!r}; use a{name} for several")
        values, indices = along(self, dim, keepdim)
        return ValuesIndices(values, Tensor(indices))

    def argmax(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        """Index of the first maximum (of the flattened Tensor when ``dim`` is None)."""
        if dim is None:
            return Tensor(np.argmax(self.data))
        return Tensor(ops.max_dim(self.data, dim, keepdim)[1])

    def argmin(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        """Index of the first minimum (of the flattened Tensor when ``dim`` is None)."""
        if dim is None:
            return Tensor(np.argmin(self.data))
        return Tensor(ops.min_dim(self.data, dim, keepdim)[1])

    # ------------------------------------------------------------ shapes and indexing

    def reshape(self, *shape: Any) -> Tensor:
        """Same data in a new shape; one entry may be -1.  ``reshape(2, 3)`` or ``((2, 3))``."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _reshape(self, tuple(int(n) for n in shape))

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        """Merge axes ``start_dim`` to ``end_dim`` (inclusive) into one."""
        if self.ndim == 0:
            return self.reshape(1)
        start = check_dim("flatten", start_dim, self.ndim)
        end = check_dim("flatten", end_dim, self.ndim)
        if start > end:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
        shape = self.shape
        merged = int(math.prod(shape[start : end + 1]))  # explicit, so an empty batch flattens too
        return self.reshape(shape[:start] + (merged,) + shape[end + 1 :])

    def unsqueeze(self, dim: int) -> Tensor:
        """Insert an axis of length 1 at ``dim``."""
        axis = check_dim("unsqueeze", dim, self.ndim + 1)
        return self.reshape(self.shape[:axis] + (1,) + self.shape[axis:])

    def squeeze(self, dim: int | None = None) -> Tensor:
        """Remove axes of length 1 (only ``dim``, if given and of length 1)."""
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        if self.ndim == 0:
            return self.reshape(())
        axis = check_dim("squeeze", dim, self.ndim)
        if self.shape[axis] != 1:
            return self
        return self.reshape(self.shape[:axis] + self.shape[axis + 1 :])

    def permute(self, *dims: Any) -> Tensor:
        """Reorder the axes: ``permute(2, 0, 1)`` or ``permute((2, 0, 1))``."""
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        order = tuple(check_dim("permute", d, self.ndim) for d in dims)
        if sorted(order) != list(range(self.ndim)):
            raise ValueError(
                f"permute: dims must be a permutation of the {self.ndim} axes, got {dims}"
            )
        return _permute(self, order)

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        """Swap two axes."""
        order = list(range(self.ndim))
        a, b = check_dim("transpose", dim0, self.ndim), check_dim("transpose", dim1, self.ndim)
        order[a], order[b] = order[b], order[a]
        return _permute(self, tuple(order))

    @property
    def T(self) -> Tensor:  # noqa: N802
        """Axes reversed (the matrix transpose for a 2-D Tensor)."""
        return _permute(self, tuple(range(self.ndim))[::-1])

    def __getitem__(self, index: Any) -> Tensor:
        """NumPy indexing; repeated advanced indices accumulate their gradients."""
        if isinstance(index, tuple):
            index = tuple(_data(i) for i in index)
        else:
            index = _data(index)
        return _getitem(self, index)

    def astype(self, dtype: Any) -> Tensor:
        """Cast to ``dtype``; the gradient is cast back."""
        return _astype(self, np.dtype(dtype))

    def float(self) -> Tensor:
        """Cast to float32 (as ``torch.Tensor.float``)."""
        return self.astype(np.float32)

    def double(self) -> Tensor:
        """Cast to float64."""
        return self.astype(np.float64)

    # ------------------------------------------------------------ elementwise functions

    def exp(self) -> Tensor:
        return _exp(self)

    def log(self) -> Tensor:
        return _log(self)

    def sqrt(self) -> Tensor:
        return _sqrt(self)

    def abs(self) -> Tensor:
        """Absolute value; the subgradient at 0 is 0."""
        return _abs(self)

    def clamp(self, min: float | None = None, max: float | None = None) -> Tensor:  # noqa: A002
        """Limit to ``[min, max]``; the gradient passes where ``min <= x <= max``."""
        if min is None and max is None:
            raise ValueError("clamp: at least one of min and max must be given")
        return _clamp(self, min, max)

    def relu(self) -> Tensor:
        return F.relu(self)

    def sigmoid(self) -> Tensor:
        return F.sigmoid(self)

    def tanh(self) -> Tensor:
        return F.tanh(self)

    def softmax(self, dim: int) -> Tensor:
        return F.softmax(self, dim)

    def log_softmax(self, dim: int) -> Tensor:
        return F.log_softmax(self, dim)


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A new leaf Tensor holding a copy of ``data`` (as ``torch.tensor``).

    Examples
    --------
    >>> tensor([[1, 2], [3, 4]], dtype="float32")
    Tensor([[1., 2.],
            [3., 4.]], dtype=float32)
    """
    return Tensor(np.array(_data(data), dtype=dtype, copy=True), requires_grad=requires_grad)


# ---------------------------------------------------------------- the tape


def _result(data: Any) -> Tensor:
    """A new leaf Tensor of an operation's result: as ``Tensor(data)``, with the checks that an
    operation's own result passes anyway skipped for a numeric ndarray (a few microseconds of each
    operation on a Tensor)."""
    if type(data) is not np.ndarray or data.dtype.kind not in "biuf":
        return Tensor(data)
    out = Tensor.__new__(Tensor)
    out.data = data
    out.grad = None
    out._parents = ()
    out._backward_fn = None
    out._node = None
    out._requires_grad = False
    return out


def _record(
    data: Any, parents: Sequence[Tensor | None], backward_fn: Callable[[np.ndarray], tuple]
) -> Tensor:
    """Wrap an operation's result; link it into the graph if any parent requires grad (and
    the result is floating point: an integer or boolean result has no gradient)."""
    out = _result(data)
    array = out.data
    if array.dtype.kind != "f" or not is_grad_enabled():
        return out
    # (each parent's edge, as cnnlab.autograd._tape.edge gives it, written out: one call less per input)
    edges = [None if p is None or not p._requires_grad else p if p._node is None else p._node for p in parents]
    if any([e is not None for e in edges]):
        out._requires_grad = True
        # the node records where the inputs came from, not the input Tensors: their data is freed
        # once nothing else holds it (what the backward needs, its closure keeps)
        out._node = Node(tuple(edges), backward_fn, array.shape, array.dtype)
    return out


def _needs(parents: Sequence[Tensor | None]) -> tuple[bool, ...]:
    """PyTorch's ``needs_input_grad``: which parents want a gradient from this operation."""
    if not is_grad_enabled():
        return (False,) * len(parents)
    return tuple([p is not None and p._requires_grad for p in parents])


register_engine(Tensor, _record, _needs)

# ---------------------------------------------------------------- Tensor-aware ops

_add = differentiable(ops.add, ops.add_backward, 2)
_sub = differentiable(ops.sub, ops.sub_backward, 2)
_mul = differentiable(ops.mul, ops.mul_backward, 2)
_div = differentiable(ops.div, ops.div_backward, 2)
_power = differentiable(ops.power, ops.power_backward, 2)
_matmul = differentiable(ops.matmul, ops.matmul_backward, 2)
_neg = differentiable(ops.neg, ops.neg_backward)
_sum = differentiable(ops.sum_, ops.sum_backward)
_mean = differentiable(ops.mean, ops.mean_backward)
_amax = differentiable(ops.amax, ops.amax_backward)
_amin = differentiable(ops.amin, ops.amin_backward)
_max_dim = differentiable(ops.max_dim, ops.max_dim_backward)
_min_dim = differentiable(ops.min_dim, ops.min_dim_backward)
_reshape = differentiable(ops.reshape, ops.reshape_backward)
_permute = differentiable(ops.permute, ops.permute_backward)
_getitem = differentiable(ops.getitem, ops.getitem_backward)
_astype = differentiable(ops.astype, ops.astype_backward)
_exp = differentiable(ops.exp, ops.exp_backward)
_log = differentiable(ops.log, ops.log_backward)
_sqrt = differentiable(ops.sqrt, ops.sqrt_backward)
_abs = differentiable(ops.abs_, ops.abs_backward)
_clamp = differentiable(ops.clamp, ops.clamp_backward)
