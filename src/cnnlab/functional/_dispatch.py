"""Let a NumPy operator accept :class:`cnnlab.Tensor` arguments and record its backward.

How to use it
-------------
Every public operator in :mod:`cnnlab.functional` is a pair of plain NumPy functions::

    def op(x, w, b=None, *, stride=1): ...                 # arrays in -> array out
    def op_backward(grad_out, x, w, b=None, *, stride=1):   # -> (grad_x, grad_w, grad_b)

``backward`` takes ``grad_out`` followed by exactly the arguments of the forward call, and returns
one gradient per differentiable input: a tuple with one entry per input (``None`` where that input
was ``None``), or a bare array when there is a single differentiable input.  The differentiable
inputs are the first ``n_diff`` parameters of ``op`` (positional or passed by keyword).

The package ``__init__`` exports the Tensor-aware version::

    from cnnlab.functional._dispatch import differentiable
    from cnnlab.functional import _conv
    conv = differentiable(_conv.conv, _conv.conv_backward, n_diff=3)   # x, weight, bias
    relu = differentiable(_activation.relu, _activation.relu_backward)  # n_diff=1

The wrapped function keeps the name, signature and docstring of ``op`` (``functools.wraps``)
and behaves as follows:

- No argument is a Tensor: it calls ``op`` directly (arrays in, arrays out; the only cost is a
  type check of each argument).
- Some argument is a Tensor: every Tensor argument (positional or keyword) is replaced by its
  NumPy data, ``op`` runs on the arrays, and the result comes back as a Tensor.  If that result
  needs a gradient, its backward calls ``op_backward(grad_out, *arrays, **kwargs)`` and hands
  gradient ``i`` to the Tensor given as differentiable input ``i``; Tensors passed as
  non-differentiable arguments (a class-index target, say) are used as data only.
- If ``op`` returns a tuple (``max_pool(..., return_indices=True)``), only its first element
  becomes a Tensor; the rest are returned as NumPy arrays.

Saving for backward
-------------------
An op may also give a pair that keeps what its backward needs instead of recomputing it::

    def op_forward_saving(needs, x, w, b=None, *, stride=1):   # -> (out, saved)
    def op_backward_saved(grad_out, saved, needs):             # -> (grad_x, grad_w, grad_b)

    conv = differentiable(_conv.conv, _conv.conv_backward, n_diff=3,
                          saving=(_conv.conv_forward_saving, _conv.conv_backward_saved))

``needs`` has one bool per differentiable input (PyTorch's ``needs_input_grad``): whether that
input is a Tensor that requires grad while grad mode is on.  The pair is used only on Tensors
when some input needs a gradient; plain arrays, and Tensors under ``no_grad``, run ``op``.  The
plain ``op_backward`` stays the public, array-level backward.

Dependencies point one way: this module never imports :mod:`cnnlab.autograd`.  Instead the
autograd module, when imported, calls :func:`register_engine` with its Tensor class and a
``record(data, parents, backward_fn)`` function that builds the result Tensor and its tape entry.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


class _NoTensor:
    """Placeholder Tensor type before the engine is registered: nothing is an instance of it."""


def _no_grad_needed(parents: Sequence[Any]) -> tuple[bool, ...]:
    return tuple(False for _ in parents)


_engine: dict[str, Any] = {"tensor": _NoTensor, "record": None, "needs": _no_grad_needed}


def register_engine(
    tensor_type: type, record: Callable[..., Any], needs: Callable[[Sequence[Any]], tuple[bool, ...]] | None = None
) -> None:
    """Tell the dispatcher which class is the Tensor and how to record an operation.

    Called once by :mod:`cnnlab.autograd` at import.  ``record(data, parents, backward_fn)``
    must return a Tensor wrapping ``data``; ``parents`` is a sequence with one entry per
    differentiable input (a Tensor or ``None``) and ``backward_fn(grad_out)`` returns a tuple
    with one gradient (or ``None``) per parent.  ``needs(parents)`` says which parents will want
    a gradient (a requires-grad Tensor while grad mode is on).
    """
    _engine["tensor"] = tensor_type
    _engine["record"] = record
    if needs is not None:
        _engine["needs"] = needs


def _diff_names(forward: Callable[..., Any], n_diff: int) -> tuple[str, ...]:
    """Names of the first ``n_diff`` parameters of ``forward`` (empty if not introspectable)."""
    try:
        params = list(inspect.signature(forward).parameters.values())
    except (TypeError, ValueError):
        return ()
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(p.name for p in params[:n_diff] if p.kind in kinds)


def _takes_release(backward_saved: Callable[..., Any]) -> bool:
    """Whether ``backward_saved`` has a ``release`` parameter: told ``release=True`` on the
    engine's last use of what it saved (a backward without ``retain_graph``), it may overwrite
    those arrays as scratch space (the conv's column matrix becomes its column gradient)."""
    try:
        return "release" in inspect.signature(backward_saved).parameters
    except (TypeError, ValueError):  # no signature to read (a builtin): called without it
        return False


def differentiable(
    forward: Callable[..., Any], backward: Callable[..., Any], n_diff: int = 1,
    saving: tuple[Callable[..., Any], Callable[..., Any]] | None = None,
) -> Callable[..., Any]:
    """Wrap a NumPy operator so that it also accepts Tensors and records its backward.

    Parameters
    ----------
    forward : callable
        The NumPy operator, ``forward(*args, **kwargs)``.
    backward : callable
        Its vector-Jacobian product, ``backward(grad_out, *args, **kwargs)``; returns a bare
        array if ``n_diff == 1`` else a tuple of ``n_diff`` gradients (or ``None``).
    n_diff : int, default 1
        How many leading parameters of ``forward`` are differentiable.
    saving : (callable, callable), optional
        ``(forward_saving, backward_saved)``: the forward that also returns what backward needs,
        ``forward_saving(needs, *args, **kwargs) -> (out, saved)``, and the backward that uses
        it, ``backward_saved(grad_out, saved, needs)``; used on Tensors instead of the pair above.
        A ``backward_saved`` with a ``release`` keyword is passed ``release=True`` when the
        engine will not run it again (a backward without ``retain_graph``): it may then reuse
        the arrays of ``saved`` as scratch space.

    Returns
    -------
    callable
        Same name, signature and docstring as ``forward``.  The pair is available as its
        ``__wrapped__`` and ``backward`` attributes.

    Raises
    ------
    TypeError
        If ``forward`` or ``backward`` is not callable, or ``n_diff`` is not a positive int.

    Examples
    --------
    >>> import numpy as np
    >>> def square(x):
    ...     return x * x
    >>> def square_backward(grad_out, x):
    ...     return 2 * x * grad_out
    >>> sq = differentiable(square, square_backward)
    >>> sq(np.array([3.0]))
    array([9.])
    """
    if not callable(forward) or not callable(backward):
        raise TypeError(
            "differentiable: forward and backward must be callable, got "
            f"{type(forward).__name__} and {type(backward).__name__}"
        )
    if isinstance(n_diff, bool) or not isinstance(n_diff, int) or n_diff < 1:
        raise TypeError(f"differentiable: n_diff must be a positive int, got {n_diff!r}")
    names = _diff_names(forward, n_diff)
    releases = saving is not None and _takes_release(saving[1])
    backward_name = getattr(forward, "__name__", "op") + "_backward"

    @functools.wraps(forward)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        tensor = _engine["tensor"]
        for value in args:
            if isinstance(value, tensor):
                break
        else:
            for value in kwargs.values():
                if isinstance(value, tensor):
                    break
            else:
                return forward(*args, **kwargs)
        return _call_on_tensors(forward, backward, n_diff, names, args, kwargs, saving, releases, backward_name)

    wrapper.backward = backward  # type: ignore[attr-defined]
    wrapper.saving = saving  # type: ignore[attr-defined]
    return wrapper


def _call_on_tensors(
    forward: Callable[..., Any],
    backward: Callable[..., Any],
    n_diff: int,
    names: Sequence[str],
    args: tuple,
    kwargs: dict,
    saving: tuple[Callable[..., Any], Callable[..., Any]] | None = None,
    releases: bool = False,
    backward_name: str = "op_backward",
) -> Any:
    tensor, record = _engine["tensor"], _engine["record"]
    # The differentiable inputs as given (Tensor, array or None), by position or by keyword.
    given = args[:n_diff] if len(args) >= n_diff else args + tuple(
        [kwargs.get(names[i]) if i < len(names) else None for i in range(len(args), n_diff)])
    parents = [v if isinstance(v, tensor) else None for v in given]
    arr_args = tuple([v.data if isinstance(v, tensor) else v for v in args])
    arr_kwargs = {k: (v.data if isinstance(v, tensor) else v) for k, v in kwargs.items()} if kwargs else kwargs

    needs = _engine["needs"](parents)
    if saving is not None and any(needs):
        forward_saving, backward_saved = saving
        result, saved = forward_saving(needs, *arr_args, **arr_kwargs)

        if releases:
            def backward_fn(grad_out: np.ndarray, last_use: bool = False) -> tuple:
                grads = backward_saved(grad_out, saved, needs, release=last_use)
                return (grads,) if n_diff == 1 else tuple(grads)

            backward_fn.takes_last_use = True  # type: ignore[attr-defined]
        else:
            def backward_fn(grad_out: np.ndarray) -> tuple:
                grads = backward_saved(grad_out, saved, needs)
                return (grads,) if n_diff == 1 else tuple(grads)
    else:
        result = forward(*arr_args, **arr_kwargs)

        def backward_fn(grad_out: np.ndarray) -> tuple:
            grads = backward(grad_out, *arr_args, **arr_kwargs)
            return (grads,) if n_diff == 1 else tuple(grads)

    is_tuple = isinstance(result, tuple)
    if is_tuple:
        result, rest = result[0], tuple(result[1:])

    backward_fn.__name__ = backward_name
    out = record(result, parents, backward_fn)
    return (out, *rest) if is_tuple else out
