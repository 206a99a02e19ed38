"""The optimizer base class: parameter groups, per-parameter state and PyTorch-style state dicts.

A *parameter* is any object with a ``.data`` attribute holding a floating-point NumPy array and a
``.grad`` attribute holding an array of the same shape or ``None`` (``cnnlab.nn.Parameter`` is
one).  Optimizers update ``.data`` **in place**, so every module that holds the parameter sees the
new values, and they keep its dtype.  Parameters whose ``.grad`` is ``None`` are skipped.

State dicts follow PyTorch's layout so that code written for ``torch.optim`` reads naturally::

    {"state": {0: {"momentum_buffer": array}, ...},
     "param_groups": [{"lr": 0.1, ..., "params": [0, 1]}, ...]}

Parameters are numbered in the order they appear across the groups; buffers are NumPy arrays.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from numbers import Integral
from typing import Any

import numpy as np

__all__ = ["Optimizer"]


class _ParamState(MutableMapping):
    """Mapping from parameter objects to their state dicts, keyed by identity.

    Tensors compare elementwise, which makes them unhashable, so the state cannot be a plain dict
    keyed by the parameter; what matters is which object it is, and ``id`` says that.  The mapping
    keeps a reference to each key so an id is never reused while its entry exists.
    """

    def __init__(self) -> None:
        self._items: dict[int, tuple[Any, dict[str, Any]]] = {}

    def __getitem__(self, param: Any) -> dict[str, Any]:
        try:
            return self._items[id(param)][1]
        except KeyError:
            raise KeyError(f"no state for parameter of type {type(param).__name__}") from None

    def __setitem__(self, param: Any, value: dict[str, Any]) -> None:
        self._items[id(param)] = (param, value)

    def __delitem__(self, param: Any) -> None:
        del self._items[id(param)]

    def __contains__(self, param: object) -> bool:
        return id(param) in self._items

    def __iter__(self) -> Iterator[Any]:
        return (param for param, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"<optimizer state for {len(self)} parameters>"


def _is_param(obj: Any) -> bool:
    """True for objects that look like a single parameter (a ``.data`` array and a ``.grad``)."""
    return isinstance(getattr(obj, "data", None), np.ndarray) and hasattr(obj, "grad")


def _check_param(opt: str, param: Any, where: str) -> None:
    data = getattr(param, "data", None)
    if not isinstance(data, np.ndarray) or not hasattr(param, "grad"):
        raise TypeError(
            f"{opt}: {where} must be a parameter with a NumPy array in .data and a .grad "
            f"attribute, got {type(param).__name__}"
        )
    if data.dtype.kind != "f":
        raise TypeError(
            f"{opt}: {where} must hold a floating-point array to be optimized, "
            f"got dtype {data.dtype}"
        )


def _copy_value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.copy()
    return copy.deepcopy(value)


def _state_index(opt: str, key: Any) -> int:
    """A state-dict key as a parameter index; digit strings are accepted (JSON turns ints to str)."""
    if isinstance(key, Integral) and not isinstance(key, (bool, np.bool_)):
        return int(key)
    if isinstance(key, str) and key.isdigit():
        return int(key)
    raise ValueError(f"{opt}: state keys must be integer parameter indices, got {key!r}")


class Optimizer:
    """Base class for optimizers.

    Subclasses pass their default hyperparameters, check a group's options in ``_check_group``,
    name the state each parameter carries in ``_state_keys`` and update one parameter in
    ``_update``.

    Parameters
    ----------
    params : iterable of parameters or of dicts
        The parameters to optimize, or parameter groups: dicts with a ``"params"`` entry and
        options that override ``defaults`` for that group (as in ``torch.optim``).
    defaults : dict
        Default hyperparameters, used for every option a group does not set.

    Attributes
    ----------
    param_groups : list of dict
        Each group's ``"params"`` list and options; schedulers change ``"lr"`` here.
    state : mapping
        Per-parameter state (momentum buffers, moment estimates), indexed by the parameter object.
    defaults : dict
        The default hyperparameters.
    """

    def __init__(self, params: Iterable[Any], defaults: Mapping[str, Any]) -> None:
        self.defaults: dict[str, Any] = dict(defaults)
        self._check_group(self.defaults, "")
        self.state: _ParamState = _ParamState()
        self.param_groups: list[dict[str, Any]] = []
        for group in self._as_groups(params):
            self.add_param_group(group)

    # -- construction -----------------------------------------------------------------------

    @property
    def _name(self) -> str:
        return type(self).__name__

    def _as_groups(self, params: Any) -> list[dict[str, Any]]:
        hint = "an iterable of parameters or of dicts with a 'params' entry"
        if isinstance(params, (np.ndarray, str, bytes, Mapping)) or _is_param(params):
            raise TypeError(f"{self._name}: params must be {hint}, got {type(params).__name__}")
        try:
            items = list(params)
        except TypeError:
            raise TypeError(
                f"{self._name}: params must be {hint}, got {type(params).__name__}"
            ) from None
        if not items:
            raise ValueError(f"{self._name}: params is an empty list; nothing to optimize")
        n_dicts = sum(isinstance(item, dict) for item in items)
        if n_dicts == len(items):
            return items
        if n_dicts:
            raise TypeError(f"{self._name}: params mixes parameters and dicts; give {hint}")
        return [{"params": items}]

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own options (missing options take the defaults).

        Raises
        ------
        TypeError
            If the group is not a dict or an entry is not a floating-point parameter.
        ValueError
            If ``"params"`` is missing, a parameter is repeated, a parameter already belongs to
            another group, or an option is invalid.
        """
        index = len(self.param_groups)
        where = f" (param_groups[{index}])"
        if not isinstance(param_group, dict):
            raise TypeError(
                f"{self._name}: a parameter group must be a dict, got {type(param_group).__name__}"
            )
        if "params" not in param_group:
            raise ValueError(f"{self._name}: param_groups[{index}] has no 'params' entry")
        params = param_group["params"]
        if _is_param(params):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(
                f"{self._name}: params of param_groups[{index}] must be an ordered sequence, "
                "got a set (its order changes between runs)"
            )
        else:
            params = list(params)
        for position, param in enumerate(params):
            _check_param(self._name, param, f"param_groups[{index}]['params'][{position}]")
        ids = [id(param) for param in params]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{self._name}: param_groups[{index}] lists a parameter twice")
        taken = {id(p) for group in self.param_groups for p in group["params"]}
        if taken.intersection(ids):
            raise ValueError(
                f"{self._name}: param_groups[{index}] shares parameters with an earlier group; "
                "each parameter may appear in only one group"
            )
        group = dict(param_group)
        group["params"] = params
        for key, value in self.defaults.items():
            group.setdefault(key, copy.deepcopy(value))
        self._check_group(group, where)
        self.param_groups.append(group)

    # -- hooks for subclasses -----------------------------------------------------------------

    def _check_group(self, group: Mapping[str, Any], where: str) -> None:
        """Validate a group's options; ``where`` is appended to error messages."""

    def _state_keys(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        """The state entries a parameter of ``group`` carries once it has been stepped."""
        return ()

    def _update(
        self, param: Any, grad: np.ndarray, state: dict[str, Any], group: Mapping[str, Any]
    ) -> None:
        """Update ``param.data`` in place from ``grad``; never modify ``grad``."""
        raise NotImplementedError

    # -- the training loop ----------------------------------------------------------------------

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of all optimized parameters.

        Parameters
        ----------
        set_to_none : bool, default True
            Set ``.grad`` to ``None`` (the parameter is then skipped by ``step`` until a new
            gradient arrives); if False, fill the existing gradient arrays with zeros in place.
        """
        for group in self.param_groups:
            for param in group["params"]:
                grad = param.grad
                if grad is None:
                    continue
                if set_to_none:
                    param.grad = None
                elif isinstance(grad, np.ndarray) and grad.flags.writeable:
                    grad.fill(0)
                else:
                    param.grad = np.zeros_like(param.data)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient, in place.

        Parameters
        ----------
        closure : callable, optional
            Called first (it should recompute the loss and gradients); its result is returned.

        Returns
        -------
        The closure's result, or None.

        Raises
        ------
        ValueError
            If a gradient's shape differs from its parameter's.
        """
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = np.asarray(param.grad)
                if grad.shape != param.data.shape:
                    raise ValueError(
                        f"{self._name}.step: a gradient has shape {grad.shape} but its "
                        f"parameter has shape {param.data.shape}"
                    )
                grad = grad.astype(param.data.dtype, copy=False)
                state = self.state[param] if param in self.state else {}
                self._update(param, grad, state, group)
                if state:
                    self.state[param] = state
        return loss

    # -- state dicts ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state in PyTorch's layout, as copies.

        Returns
        -------
        dict
            ``"state"`` maps each parameter's index (counted across groups in order) to its
            buffers (NumPy arrays) and counters; ``"param_groups"`` lists each group's options
            with ``"params"`` replaced by the indices of its parameters.
        """
        index_of: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {key: _copy_value(value) for key, value in group.items() if key != "params"}
            packed["params"] = []
            for param in group["params"]:
                index_of[id(param)] = len(index_of)
                packed["params"].append(index_of[id(param)])
            groups.append(packed)
        state = {
            index_of[id(param)]: {key: _copy_value(value) for key, value in entry.items()}
            for param, entry in self.state.items()
        }
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore the state saved by ``state_dict`` (of an optimizer over the same parameters).

        The parameters stay this optimizer's own; their options and state come from
        ``state_dict``.  Buffers are copied and cast to each parameter's dtype.  Everything is
        checked before anything changes.

        Raises
        ------
        TypeError
            If ``state_dict`` is not a mapping.
        ValueError
            If the number of groups or of parameters per group differs, a group lacks an option
            this optimizer needs, a parameter's state misses or adds entries, or a buffer's
            shape differs from its parameter's.
        """
        name = f"{self._name}.load_state_dict"
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"{name}: state_dict must be a dict, got {type(state_dict).__name__}")
        missing = [key for key in ("state", "param_groups") if key not in state_dict]
        if missing:
            raise ValueError(f"{name}: state_dict has no {' or '.join(map(repr, missing))} entry")
        saved_groups = state_dict["param_groups"]
        if not isinstance(saved_groups, (list, tuple)) or not all(
            isinstance(group, Mapping) and "params" in group for group in saved_groups
        ):
            raise ValueError(f"{name}: 'param_groups' must be a list of dicts with 'params'")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}: the state dict has {len(saved_groups)} parameter groups but this "
                f"optimizer has {len(self.param_groups)}"
            )
        param_at: dict[int, tuple[Any, int]] = {}
        new_groups = []
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups, strict=True)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"{name}: param_groups[{i}] has {len(saved['params'])} parameters in the "
                    f"state dict but {len(group['params'])} in this optimizer"
                )
            for saved_index, param in zip(saved["params"], group["params"], strict=True):
                index = _state_index(name, saved_index)
                if index in param_at:
                    raise ValueError(f"{name}: parameter index {index} appears twice")
                param_at[index] = (param, i)
            absent = [key for key in self.defaults if key not in saved]
            if absent:
                raise ValueError(
                    f"{name}: param_groups[{i}] has no {', '.join(map(repr, absent))}; "
                    f"was it saved by a different optimizer than {self._name}?"
                )
            new_group = {key: _copy_value(value) for key, value in saved.items() if key != "params"}
            new_group["params"] = group["params"]
            self._check_group(new_group, f" (param_groups[{i}])")
            new_groups.append(new_group)

        saved_state = state_dict["state"]
        if not isinstance(saved_state, Mapping):
            raise ValueError(f"{name}: 'state' must be a dict, got {type(saved_state).__name__}")
        new_state = _ParamState()
        for key, entry in saved_state.items():
            index = _state_index(name, key)
            if index not in param_at:
                raise ValueError(
                    f"{name}: the state dict has state for parameter {index} but this "
                    f"optimizer's parameters are numbered 0..{len(param_at) - 1}"
                )
            if not isinstance(entry, Mapping):
                raise ValueError(f"{name}: state for parameter {index} must be a dict")
            param, group_index = param_at[index]
            new_state[param] = self._load_param_state(
                name, index, param, entry, new_groups[group_index]
            )
        self.param_groups = new_groups
        self.state = new_state

    def _load_param_state(
        self, name: str, index: int, param: Any, entry: Mapping[str, Any], group: Mapping[str, Any]
    ) -> dict[str, Any]:
        expected = set(self._state_keys(group))
        missing = sorted(expected - set(entry))
        unexpected = sorted(set(entry) - expected)
        if missing or unexpected:
            details = []
            if missing:
                details.append(f"missing {missing}")
            if unexpected:
                details.append(f"unexpected {unexpected}")
            raise ValueError(
                f"{name}: state for parameter {index} has {' and '.join(details)} entries for "
                f"{self._name} with these options"
            )
        loaded: dict[str, Any] = {}
        for key, value in entry.items():
            if key == "step":
                loaded[key] = int(np.asarray(value).item())
                continue
            array = np.array(np.asarray(value), dtype=param.data.dtype, copy=True)
            if array.shape != param.data.shape:
                raise ValueError(
                    f"{name}: state {key!r} of parameter {index} has shape {array.shape} but "
                    f"the parameter has shape {param.data.shape}"
                )
            loaded[key] = array
        return loaded

    def __repr__(self) -> str:
        lines = [f"{self._name} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)
