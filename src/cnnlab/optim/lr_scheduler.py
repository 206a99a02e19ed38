"""Learning-rate schedulers: StepLR, CosineAnnealingLR and OneCycleLR, as in ``torch.optim``.

A scheduler writes the learning rate of each of its optimizer's parameter groups.  Creating it
sets the rates for step 0; call ``scheduler.step()`` once after each ``optimizer.step()``
(per epoch or per batch, as the schedule is meant).  The formulas, including PyTorch's
recursive form of cosine annealing, are evaluated as PyTorch evaluates them, so the learning-rate
sequences agree with ``torch.optim.lr_scheduler`` to the last bits.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

from cnnlab.functional._args import check_positive_int, check_real
from cnnlab.optim.optimizer import Optimizer

__all__ = ["LRScheduler", "StepLR", "CosineAnnealingLR", "OneCycleLR"]


class LRScheduler:
    """Base class: keeps ``last_epoch`` and writes ``get_lr()`` into the optimizer's groups.

    Subclasses implement ``get_lr``, the learning rates for step ``last_epoch``.  Creating a
    scheduler records each group's current ``"lr"`` as its ``"initial_lr"`` (unless already
    set) and takes step 0.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer whose learning rates are scheduled.

    Raises
    ------
    TypeError
        If ``optimizer`` is not a ``cnnlab.optim.Optimizer``.
    """

    _transient = ("optimizer", "_is_initial")

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"{type(self).__name__}: optimizer must be a cnnlab.optim.Optimizer, "
                f"got {type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs: list[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = -1
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[float]:
        """The learning rate of each group at step ``last_epoch``."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance the schedule by one step and write the new rates into the optimizer."""
        self.last_epoch += 1
        values = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The learning rates the last ``step`` (or the constructor) set, one per group."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Copies of the scheduler's attributes (everything but the optimizer)."""
        return {
            key: copy.deepcopy(value)
            for key, value in vars(self).items()
            if key not in self._transient
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore the attributes saved by ``state_dict`` of the same kind of scheduler.

        Raises
        ------
        TypeError
            If ``state_dict`` is not a mapping.
        ValueError
            If its keys differ from this scheduler's (a state dict of another scheduler).
        """
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"{name}: state_dict must be a dict, got {type(state_dict).__name__}")
        expected = set(self.state_dict())
        missing = sorted(expected - set(state_dict))
        unexpected = sorted(set(state_dict) - expected)
        if missing or unexpected:
            raise ValueError(
                f"{name}: the state dict does not fit {type(self).__name__}: "
                f"missing keys {missing}, unexpected keys {unexpected}"
            )
        for key, value in state_dict.items():
            setattr(self, key, copy.deepcopy(value))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, lr={self._last_lr})"


class StepLR(LRScheduler):
    r"""Multiply the learning rate by ``gamma`` every ``step_size`` steps.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer whose learning rates are scheduled.
    step_size : int
        Period of the decay, in steps.
    gamma : float, default 0.1
        Multiplicative factor of the decay.

    Raises
    ------
    TypeError
        If ``step_size`` is not an int or ``gamma`` not a real number.
    ValueError
        If ``step_size`` is not positive.

    Notes
    -----
    :math:`\eta_t = \eta_0\,\gamma^{\lfloor t / s \rfloor}`, applied as a multiplication of the
    current rate at each multiple of :math:`s`, as PyTorch does.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnlab.optim import SGD, StepLR
    >>> class P:
    ...     data, grad = np.zeros(1), None
    >>> opt = SGD([P()], lr=1.0)
    >>> sched = StepLR(opt, step_size=2, gamma=0.5)
    >>> lrs = []
    >>> for _ in range(5):
    ...     lrs.append(sched.get_last_lr()[0])
    ...     opt.step()
    ...     sched.step()
    >>> lrs
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        self.step_size = check_positive_int("StepLR", "step_size", step_size)
        self.gamma = check_real("StepLR", "gamma", gamma)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        groups = self.optimizer.param_groups
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return [group["lr"] for group in groups]
        return [group["lr"] * self.gamma for group in groups]


class CosineAnnealingLR(LRScheduler):
    r"""Anneal the learning rate from its initial value to ``eta_min`` along a half cosine.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer whose learning rates are scheduled.
    T_max : int
        Number of steps from the initial rate to ``eta_min`` (half a period).
    eta_min : float, default 0
        The minimum learning rate.

    Raises
    ------
    TypeError
        If ``T_max`` is not an int or ``eta_min`` not a real number.
    ValueError
        If ``T_max`` is not positive.

    Notes
    -----
    The closed form is
    :math:`\eta_t = \eta_{min} + \tfrac12(\eta_0 - \eta_{min})(1 + \cos(\pi t / T_{max}))`.
    Like PyTorch, each step computes the new rate from the current one,

    .. math::

        \eta_{t} = \eta_{min} + (\eta_{t-1} - \eta_{min})
        \frac{1 + \cos(\pi t / T_{max})}{1 + \cos(\pi (t - 1) / T_{max})},

    adding :math:`\tfrac12(\eta_0 - \eta_{min})(1 - \cos(\pi / T_{max}))` instead when
    :math:`t - 1 - T_{max}` is a multiple of :math:`2 T_{max}` (where the ratio would be 0/0),
    so the rate rises again after :math:`T_{max}` and follows any change made to it by hand.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnlab.optim import SGD, CosineAnnealingLR
    >>> class P:
    ...     data, grad = np.zeros(1), None
    >>> opt = SGD([P()], lr=1.0)
    >>> sched = CosineAnnealingLR(opt, T_max=4)
    >>> lrs = []
    >>> for _ in range(5):
    ...     lrs.append(round(sched.get_last_lr()[0], 6))
    ...     opt.step()
    ...     sched.step()
    >>> lrs
    [1.0, 0.853553, 0.5, 0.146447, 0.0]
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:  # noqa: N803
        self.T_max = check_positive_int("CosineAnnealingLR", "T_max", T_max)
        self.eta_min = check_real("CosineAnnealingLR", "eta_min", eta_min)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        groups = self.optimizer.param_groups
        t, t_max, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return [group["lr"] for group in groups]
        if (t - 1 - t_max) % (2 * t_max) == 0:
            return [
                group["lr"] + (base_lr - eta_min) * (1 - math.cos(math.pi / t_max)) / 2
                for base_lr, group in zip(self.base_lrs, groups, strict=True)
            ]
        return [
            (1 + math.cos(math.pi * t / t_max))
            / (1 + math.cos(math.pi * (t - 1) / t_max))
            * (group["lr"] - eta_min)
            + eta_min
            for group in groups
        ]


def _per_group(owner: str, name: str, value: Any, optimizer: Optimizer) -> list[float]:
    n_groups = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != n_groups:
            raise ValueError(
                f"{owner}: {name} has {len(value)} values but the optimizer has "
                f"{n_groups} parameter groups"
            )
        return [check_real(owner, name, v) for v in value]
    return [check_real(owner, name, value)] * n_groups


def _phase(end_step: float, lr_from: str, lr_to: str, m_from: str, m_to: str) -> dict[str, Any]:
    """One phase of the 1cycle policy: where it ends and which group entries it moves between."""
    return {"end_step": end_step, "lr": (lr_from, lr_to), "momentum": (m_from, m_to)}


class OneCycleLR(LRScheduler):
    r"""The 1cycle policy: warm the learning rate up to ``max_lr``, then anneal it far below.

    Meant to be stepped after every batch, ``total_steps`` times in all.  With
    ``cycle_momentum`` the momentum (SGD's ``momentum``, Adam's ``betas[0]``) moves the
    opposite way, between ``max_momentum`` and ``base_momentum``.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer whose learning rates are scheduled.
    max_lr : float or sequence of float
        Peak learning rate, for all groups or one per group.
    total_steps : int, optional
        Length of the cycle; if omitted, ``epochs * steps_per_epoch``.
    epochs, steps_per_epoch : int, optional
        Used together when ``total_steps`` is not given.
    pct_start : float, default 0.3
        Fraction of the cycle spent warming up.
    anneal_strategy : {"cos", "linear"}, default "cos"
        Shape of each phase.
    cycle_momentum : bool, default True
        Cycle the momentum inversely to the learning rate.
    base_momentum, max_momentum : float or sequence of float, default 0.85 and 0.95
        Momentum at the peak and at the ends of the cycle.
    div_factor : float, default 25
        The initial rate is ``max_lr / div_factor``.
    final_div_factor : float, default 1e4
        The final rate is ``initial_lr / final_div_factor``.
    three_phase : bool, default False
        Anneal back to the initial rate first (symmetric to the warm-up), then down to the
        final rate, instead of annealing straight to the final rate.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If neither ``total_steps`` nor both ``epochs`` and ``steps_per_epoch`` are positive
        ints, ``pct_start`` is outside [0, 1], ``anneal_strategy`` is unknown, a per-group
        list has the wrong length, ``cycle_momentum`` is set for an optimizer with neither
        ``momentum`` nor ``betas``, or ``step`` is called more than ``total_steps`` times.

    Notes
    -----
    Phases end at steps :math:`p T - 1` and :math:`T - 1` (three phases: :math:`p T - 1`,
    :math:`2 p T - 2`, :math:`T - 1`).  Within a phase from step :math:`s_0` to :math:`s_1` the
    fraction done is :math:`\rho = (t - s_0) / (s_1 - s_0)` and the value goes from
    :math:`a` to :math:`b` as :math:`b + \tfrac12 (a - b)(1 + \cos \pi \rho)` ("cos") or
    :math:`a + (b - a) \rho` ("linear").  Where a phase has no length (:math:`s_1 = s_0`, for
    instance ``pct_start * total_steps == 1``) PyTorch divides by zero; here that step counts
    as the end of the phase (:math:`\rho = 1`).

    Examples
    --------
    >>> import numpy as np
    >>> from cnnlab.optim import SGD, OneCycleLR
    >>> class P:
    ...     data, grad = np.zeros(1), None
    >>> opt = SGD([P()], lr=0.1, momentum=0.9)
    >>> sched = OneCycleLR(opt, max_lr=1.0, total_steps=6, pct_start=0.5, anneal_strategy="linear")
    >>> lrs, momenta = [], []
    >>> for _ in range(6):
    ...     lrs.append(round(sched.get_last_lr()[0], 6))
    ...     momenta.append(round(opt.param_groups[0]["momentum"], 6))
    ...     opt.step()
    ...     sched.step()
    >>> lrs  # up from 1.0 / 25 to 1.0 in steps 0..2, then down to 1.0 / 25 / 1e4 at step 5
    [0.04, 0.52, 1.0, 0.666668, 0.333336, 4e-06]
    >>> momenta
    [0.95, 0.9, 0.85, 0.883333, 0.916667, 0.95]
    """

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float | Sequence[float],
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float | Sequence[float] = 0.85,
        max_momentum: float | Sequence[float] = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
    ) -> None:
        owner = "OneCycleLR"
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"{owner}: optimizer must be a cnnlab.optim.Optimizer, "
                f"got {type(optimizer).__name__}"
            )
        if total_steps is not None:
            self.total_steps = check_positive_int(owner, "total_steps", total_steps)
        elif epochs is not None and steps_per_epoch is not None:
            epochs = check_positive_int(owner, "epochs", epochs)
            steps_per_epoch = check_positive_int(owner, "steps_per_epoch", steps_per_epoch)
            self.total_steps = epochs * steps_per_epoch
        else:
            raise ValueError(f"{owner}: give total_steps, or both epochs and steps_per_epoch")
        pct = check_real(owner, "pct_start", pct_start)
        if not 0.0 <= pct <= 1.0:
            raise ValueError(f"{owner}: pct_start must be in [0, 1], got {pct_start!r}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(
                f"{owner}: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}"
            )
        self.anneal_strategy = anneal_strategy
        div = check_real(owner, "div_factor", div_factor)
        final_div = check_real(owner, "final_div_factor", final_div_factor)
        if not isinstance(cycle_momentum, bool) or not isinstance(three_phase, bool):
            raise TypeError(f"{owner}: cycle_momentum and three_phase must be bools")

        total = self.total_steps
        warmup_end = float(pct * total) - 1
        if three_phase:
            self._phases = [
                _phase(warmup_end, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                _phase(float(2 * pct * total) - 2, "max_lr", "initial_lr", "base_momentum",
                       "max_momentum"),
                _phase(total - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
            ]
        else:
            self._phases = [
                _phase(warmup_end, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                _phase(total - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"),
            ]

        max_lrs = _per_group(owner, "max_lr", max_lr, optimizer)
        for group, peak in zip(optimizer.param_groups, max_lrs, strict=True):
            group["initial_lr"] = peak / div
            group["max_lr"] = peak
            group["min_lr"] = group["initial_lr"] / final_div

        self.cycle_momentum = cycle_momentum
        self.use_beta1 = "betas" in optimizer.defaults
        if cycle_momentum:
            if "momentum" not in optimizer.defaults and not self.use_beta1:
                raise ValueError(
                    f"{owner}: cycle_momentum=True needs an optimizer with 'momentum' or "
                    f"'betas', got {type(optimizer).__name__}"
                )
            highs = _per_group(owner, "max_momentum", max_momentum, optimizer)
            lows = _per_group(owner, "base_momentum", base_momentum, optimizer)
            for group, high, low in zip(optimizer.param_groups, highs, lows, strict=True):
                self._set_momentum(group, high)
                group["max_momentum"] = high
                group["base_momentum"] = low
        super().__init__(optimizer)

    def _set_momentum(self, group: dict[str, Any], value: float) -> None:
        if self.use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list[float]:
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(
                f"OneCycleLR: tried to step {step} times, but total_steps is {self.total_steps}"
            )
        lrs = []
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for i, phase in enumerate(self._phases):
                end_step = phase["end_step"]
                if step <= end_step or i == len(self._phases) - 1:
                    span = end_step - start_step
                    pct = (step - start_step) / span if span != 0 else 1.0
                    lr_from, lr_to = phase["lr"]
                    lrs.append(self._anneal(group[lr_from], group[lr_to], pct))
                    if self.cycle_momentum:
                        m_from, m_to = phase["momentum"]
                        self._set_momentum(group, self._anneal(group[m_from], group[m_to], pct))
                    break
                start_step = end_step
        return lrs
