"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from cnnlab.functional._args import check_bool, check_nonnegative, check_real
from cnnlab.optim.optimizer import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent, with PyTorch's update rule.

    Parameters
    ----------
    params : iterable of parameters or of dicts
        Parameters to optimize, or parameter groups with their own options.
    lr : float, default 1e-3
        Learning rate :math:`\gamma`.
    momentum : float, default 0
        Momentum factor :math:`\mu`.
    dampening : float, default 0
        Dampening :math:`\tau` of the gradient added to the momentum buffer.
    weight_decay : float, default 0
        L2 penalty :math:`\lambda` (added to the gradient).
    nesterov : bool, default False
        Use Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
    maximize : bool, default False
        Ascend the objective instead of descending it.

    Raises
    ------
    TypeError
        If an option has the wrong type or a parameter has no floating-point ``.data``.
    ValueError
        If ``lr``, ``momentum`` or ``weight_decay`` is negative, or ``nesterov`` is set without
        momentum or with dampening.

    Notes
    -----
    For each parameter :math:`\theta` with gradient :math:`g_t` at step :math:`t`:

    .. math::

        g_t &\leftarrow -g_t \text{ if maximize}, \qquad
        g_t \leftarrow g_t + \lambda \theta_{t-1} \text{ if } \lambda \ne 0 \\
        b_t &= g_t \text{ at the first step, else } \mu b_{t-1} + (1 - \tau) g_t \\
        g_t &\leftarrow g_t + \mu b_t \text{ (Nesterov), else } g_t \leftarrow b_t
        \qquad (\text{only if } \mu \ne 0) \\
        \theta_t &= \theta_{t-1} - \gamma g_t

    The state of each parameter is its ``"momentum_buffer"`` :math:`b` (only when
    :math:`\mu \ne 0`).  The operations run in PyTorch's order, so float64 results agree with
    ``torch.optim.SGD`` to rounding.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnlab.optim import SGD
    >>> class P:
    ...     def __init__(self, data):
    ...         self.data, self.grad = np.asarray(data, dtype=float), None
    >>> w = P([1.0, 2.0])
    >>> opt = SGD([w], lr=0.1, momentum=0.9)
    >>> for _ in range(2):
    ...     w.grad = np.array([1.0, -1.0])
    ...     opt.step()
    >>> w.data  # 1 - 0.1 * 1, then - 0.1 * (0.9 + 1)
    array([0.71, 2.29])
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _check_group(self, group: Mapping[str, Any], where: str) -> None:
        for key in ("lr", "momentum", "weight_decay"):
            check_nonnegative("SGD", key, group[key], where)
        check_real("SGD", "dampening", group["dampening"], where)
        check_bool("SGD", "nesterov", group["nesterov"], where)
        check_bool("SGD", "maximize", group["maximize"], where)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                f"SGD: nesterov=True requires momentum > 0 and dampening == 0{where}, "
                f"got momentum={group['momentum']!r} and dampening={group['dampening']!r}"
            )

    def _state_keys(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        return ("momentum_buffer",) if group["momentum"] != 0 else ()

    def _update(
        self, param: Any, grad: np.ndarray, state: dict[str, Any], group: Mapping[str, Any]
    ) -> None:
        # Hyperparameters as Python floats: NumPy then computes in the parameter's dtype, as
        # PyTorch does when it casts a scalar to the tensor's type.
        lr = float(group["lr"])
        momentum = float(group["momentum"])
        dampening = float(group["dampening"])
        weight_decay = float(group["weight_decay"])
        if group["maximize"]:
            grad = -grad
        if weight_decay != 0:
            grad = grad + weight_decay * param.data
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = grad.copy()  # grad may be the caller's .grad array: never alias it
                state["momentum_buffer"] = buf
            else:
                buf *= momentum
                buf += (1 - dampening) * grad
            if group["nesterov"]:
                grad = grad + momentum * buf
            else:
                grad = buf
        param.data += -lr * grad
