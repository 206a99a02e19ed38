"""Adam and AdamW (Adam with decoupled weight decay), with PyTorch's update rules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from cnnlab.functional._args import check_bool, check_nonnegative, check_real
from cnnlab.optim.optimizer import Optimizer

__all__ = ["Adam", "AdamW"]


def _lerp_(start: np.ndarray, end: np.ndarray, weight: float, scratch: np.ndarray) -> None:
    """``start += weight * (end - start)`` in place, computed the way PyTorch's ``lerp_`` is, with
    ``scratch`` (an array of ``start``'s shape and dtype) overwritten by the intermediate values.

    For a weight of 0.5 or more PyTorch computes from the far end,
    ``end - (end - start) * (1 - weight)``, which is more accurate there; with the weight in
    the array's dtype both branches round as PyTorch's do.
    """
    w = start.dtype.type(weight)
    diff = np.subtract(end, start, out=scratch)
    if abs(w) < 0.5:
        diff *= w
        start += diff
    else:
        diff *= start.dtype.type(1) - w
        np.subtract(end, diff, out=start)


class Adam(Optimizer):
    r"""Adam, with optional AMSGrad, as ``torch.optim.Adam`` computes it.

    Parameters
    ----------
    params : iterable of parameters or of dicts
        Parameters to optimize, or parameter groups with their own options.
    lr : float, default 1e-3
        Learning rate :math:`\gamma`.
    betas : tuple of two floats, default (0.9, 0.999)
        Decay rates :math:`(\beta_1, \beta_2)` of the first and second moment estimates,
        each in [0, 1).
    eps : float, default 1e-8
        Added to the denominator for numerical stability.
    weight_decay : float, default 0
        Weight decay :math:`\lambda`: an L2 penalty added to the gradient, or, with
        ``decoupled_weight_decay=True``, a shrinking of the weights by :math:`1 - \gamma\lambda`.
    amsgrad : bool, default False
        Normalise by the running maximum of the second moment (AMSGrad).
    maximize : bool, default False
        Ascend the objective instead of descending it.
    decoupled_weight_decay : bool, default False
        Decouple the weight decay from the gradient (this makes Adam into AdamW).

    Raises
    ------
    TypeError
        If an option has the wrong type or a parameter has no floating-point ``.data``.
    ValueError
        If ``lr``, ``eps`` or ``weight_decay`` is negative or a beta is outside [0, 1).

    Notes
    -----
    For each parameter :math:`\theta` with gradient :math:`g_t` at step :math:`t = 1, 2, \dots`:

    .. math::

        g_t &\leftarrow -g_t \text{ if maximize} \\
        \theta_{t-1} &\leftarrow (1 - \gamma\lambda)\,\theta_{t-1} \text{ (decoupled), else }
        g_t \leftarrow g_t + \lambda \theta_{t-1} \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        \hat v_t &= \max(\hat v_{t-1}, v_t) \text{ (AMSGrad), else } \hat v_t = v_t \\
        \theta_t &= \theta_{t-1} - \frac{\gamma}{1 - \beta_1^t}\,
        \frac{m_t}{\sqrt{\hat v_t} / \sqrt{1 - \beta_2^t} + \epsilon}

    The state of each parameter is ``"step"`` (an int), ``"exp_avg"`` :math:`m`,
    ``"exp_avg_sq"`` :math:`v` and, with AMSGrad, ``"max_exp_avg_sq"`` :math:`\hat v`.
    The operations run in PyTorch's order (the first moment through ``lerp``), so float64
    results agree with ``torch.optim.Adam`` to rounding.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnlab.optim import Adam
    >>> class P:
    ...     def __init__(self, data):
    ...         self.data, self.grad = np.asarray(data, dtype=float), None
    >>> w = P([1.0, -1.0])
    >>> opt = Adam([w], lr=0.1)
    >>> w.grad = np.array([0.5, -2.0])
    >>> opt.step()
    >>> w.data.round(6)  # the first step moves each weight by about lr, against the gradient
    array([ 0.9, -0.9])
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _check_group(self, group: Mapping[str, Any], where: str) -> None:
        name = self._name
        for key in ("lr", "eps", "weight_decay"):
            check_nonnegative(name, key, group[key], where)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"{name}: betas must be a pair of floats{where}, got {betas!r}")
        for i, beta in enumerate(betas):
            value = check_real(name, f"betas[{i}]", beta, where)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name}: betas[{i}] must be in [0, 1){where}, got {beta!r}")
        for key in ("amsgrad", "maximize", "decoupled_weight_decay"):
            check_bool(name, key, group[key], where)

    def _state_keys(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        keys = ("step", "exp_avg", "exp_avg_sq")
        return keys + ("max_exp_avg_sq",) if group["amsgrad"] else keys

    def _update(
        self, param: Any, grad: np.ndarray, state: dict[str, Any], group: Mapping[str, Any]
    ) -> None:
        lr = float(group["lr"])
        beta1, beta2 = (float(beta) for beta in group["betas"])
        eps = float(group["eps"])
        weight_decay = float(group["weight_decay"])
        amsgrad = group["amsgrad"]
        data = param.data
        if group["maximize"]:
            grad = -grad
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(data)
            state["exp_avg_sq"] = np.zeros_like(data)
            if amsgrad:
                state["max_exp_avg_sq"] = np.zeros_like(data)
        state["step"] += 1
        step = state["step"]

        if weight_decay != 0:
            if group["decoupled_weight_decay"]:
                data *= 1 - lr * weight_decay
            else:
                grad = grad + weight_decay * data

        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        # (the update's dozen NumPy operations, in the order of PyTorch's single-tensor Adam, written
        # into two arrays allocated here, the scratch and the square root's, not one each)
        scratch = np.empty_like(data)
        _lerp_(exp_avg, grad, 1 - beta1, scratch)
        exp_avg_sq *= beta2
        np.multiply(grad, 1 - beta2, out=scratch)
        scratch *= grad
        exp_avg_sq += scratch

        bias_correction1 = 1 - beta1**step
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        step_size = lr / bias_correction1
        if amsgrad:
            max_exp_avg_sq = state["max_exp_avg_sq"]
            np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
            denom = np.sqrt(max_exp_avg_sq)
        else:
            denom = np.sqrt(exp_avg_sq)
        denom /= bias_correction2_sqrt
        denom += eps
        np.multiply(exp_avg, -step_size, out=scratch)
        scratch /= denom
        data += scratch


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov and Hutter), as ``torch.optim.AdamW``.

    The same as :class:`Adam` with ``decoupled_weight_decay=True`` and a default
    ``weight_decay`` of 0.01: before each step the weights shrink by the factor
    :math:`1 - \gamma\lambda` instead of the penalty being added to the gradient.

    Parameters
    ----------
    params : iterable of parameters or of dicts
        Parameters to optimize, or parameter groups with their own options.
    lr : float, default 1e-3
        Learning rate :math:`\gamma`.
    betas : tuple of two floats, default (0.9, 0.999)
        Decay rates of the first and second moment estimates, each in [0, 1).
    eps : float, default 1e-8
        Added to the denominator for numerical stability.
    weight_decay : float, default 1e-2
        Decoupled weight decay :math:`\lambda`.
    amsgrad : bool, default False
        Normalise by the running maximum of the second moment (AMSGrad).
    maximize : bool, default False
        Ascend the objective instead of descending it.

    Raises
    ------
    TypeError
        If an option has the wrong type or a parameter has no floating-point ``.data``.
    ValueError
        If ``lr``, ``eps`` or ``weight_decay`` is negative or a beta is outside [0, 1).

    Examples
    --------
    >>> import numpy as np
    >>> from cnnlab.optim import AdamW
    >>> class P:
    ...     def __init__(self, data):
    ...         self.data, self.grad = np.asarray(data, dtype=float), None
    >>> w = P([2.0])
    >>> opt = AdamW([w], lr=0.1, weight_decay=0.5)
    >>> w.grad = np.zeros(1)  # no gradient signal: only the decay acts
    >>> opt.step()
    >>> w.data  # 2 * (1 - 0.1 * 0.5)
    array([1.9])
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            decoupled_weight_decay=True,
        )
