"""``Module``, the base class of every layer and model, and ``Parameter``, a trainable Tensor.

A Module owns three kinds of named state, registered by plain attribute assignment
(``self.weight = Parameter(...)``, ``self.conv = Conv2d(...)``) or explicitly:

- *parameters*: :class:`Parameter` Tensors the optimiser updates,
- *buffers*: Tensors that are state but not trained (BatchNorm's running statistics), registered
  with :meth:`Module.register_buffer`,
- *submodules*, whose state is named with a dotted prefix (``"features.3.bias"``).

The names, the order and the contents of :meth:`Module.state_dict` are PyTorch's, so a state dict
moves between cnnlab and PyTorch unchanged.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from cnnlab.autograd import Tensor

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_dtype(op: str, dtype: Any) -> np.dtype:
    """A layer's ``dtype`` argument: None means float32 (PyTorch's default); float64 is allowed."""
    if dtype is None:
        return np.dtype(np.float32)
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{op}: dtype must be float32 or float64, got {dtype!r}") from None
    if resolved not in _FLOAT_DTYPES:
        raise TypeError(f"{op}: dtype must be float32 or float64, got {resolved}")
    return resolved


class Parameter(Tensor):
    """A Tensor that is a trainable weight: it requires grad, and assigning it to an attribute
    of a :class:`Module` registers it there.

    Parameters
    ----------
    data : array_like or Tensor
        Floating values; an ndarray (or a Tensor's data) is shared, not copied.
    requires_grad : bool, default True
        Set False to freeze the parameter.

    Raises
    ------
    TypeError
        If ``data`` is not floating point.

    Examples
    --------
    >>> import numpy as np
    >>> w = Parameter(np.zeros(2))
    >>> w.requires_grad, w.is_leaf
    (True, True)
    """

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        array = data.data if isinstance(data, Tensor) else np.asarray(data)
        if array.dtype.kind != "f":
            raise TypeError(f"Parameter: data must be floating point, got dtype {array.dtype}")
        super().__init__(array, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class IncompatibleKeys(NamedTuple):
    """What :meth:`Module.load_state_dict` returns: the keys that did not match."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class RemovableHandle:
    """Returned by :meth:`Module.register_forward_hook`; ``remove()`` unregisters the hook."""

    _ids = itertools.count()

    def __init__(self, hooks: dict[int, Callable[..., Any]]) -> None:
        self._hooks = hooks
        self.id = next(self._ids)

    def remove(self) -> None:
        self._hooks.pop(self.id, None)


def _check_name(op: str, name: Any) -> str:
    if not isinstance(name, str):
        raise TypeError(f"{op}: name must be a str, got {type(name).__name__}")
    if not name or "." in name:
        raise ValueError(f"{op}: name must be a non-empty string without '.', got {name!r}")
    return name


def _as_array(key: str, value: Any) -> np.ndarray:
    """A state-dict entry (ndarray, Tensor, or anything NumPy can read, e.g. a torch tensor)."""
    if isinstance(value, Tensor):
        return value.data
    if hasattr(value, "detach") and not isinstance(value, np.ndarray):
        value = value.detach()  # a torch tensor that requires grad
    try:
        array = np.asarray(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(f"load_state_dict: value of {key!r} is not an array ({exc})") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"load_state_dict: value of {key!r} must be numeric, got dtype {array.dtype}")
    return array


class Module:
    """Base class of layers and models.

    Subclasses call ``super().__init__()`` first, assign parameters, buffers and submodules as
    attributes, and define :meth:`forward`; calling the module runs ``forward`` (and any forward
    hooks).

    Attributes
    ----------
    training : bool
        True in training mode (the default), False after :meth:`eval`.  Dropout and BatchNorm
        behave differently in the two modes.

    Examples
    --------
    >>> import numpy as np
    >>> class Scale(Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.factor = Parameter(np.ones(1))
    ...     def forward(self, x):
    ...         return x * self.factor
    >>> m = Scale()
    >>> [name for name, _ in m.named_parameters()]
    ['factor']
    >>> m(Tensor([2.0, 3.0])).data
    array([2., 3.])
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())

    # ------------------------------------------------------------ registration

    def _registries(self, what: str) -> tuple[dict, dict, dict]:
        try:
            return self.__dict__["_parameters"], self.__dict__["_buffers"], self.__dict__["_modules"]
        except KeyError:
            raise AttributeError(
                f"cannot assign {what} before Module.__init__() call "
                f"(call super().__init__() first in {type(self).__name__}.__init__)"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            self._registries("parameters")
            self.__dict__.pop(name, None)
            self._buffers.pop(name, None)
            self._modules.pop(name, None)
            self._parameters[name] = value
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as parameter {name!r} of "
                    f"{type(self).__name__} (Parameter or None expected)"
                )
            params[name] = None
        elif isinstance(value, Module):
            self._registries("submodules")
            self.__dict__.pop(name, None)
            self._parameters.pop(name, None)
            self._buffers.pop(name, None)
            self._modules[name] = value
        elif name in self.__dict__.get("_modules", {}):
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as submodule {name!r} of "
                    f"{type(self).__name__} (Module or None expected)"
                )
            self._modules[name] = None
        elif name in self.__dict__.get("_buffers", {}):
            if value is not None and not isinstance(value, (Tensor, np.ndarray)):
                raise TypeError(
                    f"cannot assign {type(value).__name__} as buffer {name!r} of "
                    f"{type(self).__name__} (Tensor, ndarray or None expected)"
                )
            self._buffers[name] = value if value is None or isinstance(value, Tensor) else Tensor(value)
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Only called when ordinary lookup fails: look in the registries.
        for registry in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(registry)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for registry in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(registry)
            if entries is not None and name in entries:
                del entries[name]
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self) -> list[str]:
        names = set(super().__dir__())
        names.update(self._parameters, self._buffers, self._modules)
        return sorted(names)

    def _check_new(self, op: str, name: Any, registry: dict) -> str:
        name = _check_name(op, name)
        self._registries("state")
        if name not in registry and hasattr(self, name):
            raise ValueError(f"{op}: attribute {name!r} already exists on {type(self).__name__}")
        return name

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter (or a ``None`` placeholder, e.g. an absent bias) under ``name``."""
        name = self._check_new("register_parameter", name, self.__dict__.get("_parameters", {}))
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None, got {type(param).__name__}")
        self._buffers.pop(name, None)
        self._modules.pop(name, None)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | np.ndarray | None, persistent: bool = True) -> None:
        """Add a buffer: state that is saved in :meth:`state_dict` (if ``persistent``) but not
        trained.  An ndarray is wrapped in a Tensor that does not require grad."""
        name = self._check_new("register_buffer", name, self.__dict__.get("_buffers", {}))
        if tensor is not None and not isinstance(tensor, (Tensor, np.ndarray)):
            raise TypeError(
                f"register_buffer: {name!r} must be a Tensor, an ndarray or None, got {type(tensor).__name__}"
            )
        if isinstance(tensor, Parameter):
            raise TypeError(f"register_buffer: {name!r} is a Parameter; use register_parameter")
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        self._buffers[name] = tensor if tensor is None or isinstance(tensor, Tensor) else Tensor(tensor)
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Add a submodule under ``name`` (what attribute assignment does)."""
        name = self._check_new("add_module", name, self.__dict__.get("_modules", {}))
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module or None, got {type(module).__name__}")
        self._parameters.pop(name, None)
        self._buffers.pop(name, None)
        self._modules[name] = module

    register_module = add_module

    # ------------------------------------------------------------ traversal

    def named_modules(self, prefix: str = "", remove_duplicate: bool = True) -> Iterator[tuple[str, Module]]:
        """This module and all below it, depth first, with their dotted names ('' for self)."""
        seen: set[int] = set()

        def walk(module: Module, name: str) -> Iterator[tuple[str, Module]]:
            if remove_duplicate:
                if id(module) in seen:
                    return
                seen.add(id(module))
            yield name, module
            for child_name, child in module._modules.items():
                if child is not None:
                    yield from walk(child, f"{name}.{child_name}" if name else child_name)

        yield from walk(self, prefix)

    def modules(self) -> Iterator[Module]:
        """This module and all below it."""
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """The direct submodules with their names."""
        seen: set[int] = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self) -> Iterator[Module]:
        """The direct submodules."""
        for _, child in self.named_children():
            yield child

    def _named_members(self, registry: str, prefix: str, recurse: bool, remove_duplicate: bool) -> Iterator:
        seen: set[int] = set()
        modules = self.named_modules(prefix, remove_duplicate) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, value in getattr(module, registry).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield (f"{module_name}.{name}" if module_name else name), value

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """Parameters with PyTorch's dotted names (``"0.weight"``, ``"features.3.bias"``); a
        parameter shared by two modules is listed once."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """All parameters (of submodules too, unless ``recurse`` is False)."""
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Tensor]]:
        """Buffers with their dotted names."""
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        """All buffers."""
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    # ------------------------------------------------------------ modes and gradients

    def train(self, mode: bool = True) -> Module:
        """Set training mode (``mode=False``: evaluation mode) here and below; returns self."""
        if not isinstance(mode, (bool, np.bool_)):
            raise TypeError(f"train: mode must be a bool, got {mode!r}")
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Set evaluation mode (``train(False)``); returns self."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of all parameters (to None, or to zeros)."""
        for param in self.parameters():
            if set_to_none or param.grad is None:
                param.grad = None
            else:
                param.grad = np.zeros_like(param.data)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Set ``requires_grad`` of every parameter (False freezes the module); returns self."""
        for param in self.parameters():
            param.requires_grad = requires_grad
        return self

    def to(self, dtype: Any) -> Module:
        """Cast every floating parameter and buffer (and gradient) to ``dtype`` in place (the
        Parameter objects stay the same, so an optimiser holding them keeps working)."""
        target = check_dtype("to", dtype)
        for tensor in itertools.chain(self.parameters(), self.buffers()):
            if tensor.data.dtype.kind == "f":
                tensor.data = tensor.data.astype(target)
                if tensor.grad is not None:
                    tensor.grad = tensor.grad.astype(target)
        return self

    def double(self) -> Module:
        """Cast floating parameters and buffers to float64; returns self."""
        return self.to(np.float64)

    def float(self) -> Module:
        """Cast floating parameters and buffers to float32; returns self."""
        return self.to(np.float32)

    # ------------------------------------------------------------ state dict

    def _state_items(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """Every saved tensor, in PyTorch's order: own parameters, own persistent buffers, then
        each child's, recursively (a shared tensor appears under each of its names)."""
        for name, param in self._parameters.items():
            if param is not None:
                yield prefix + name, param
        for name, buffer in self._buffers.items():
            if buffer is not None and name not in self._non_persistent_buffers:
                yield prefix + name, buffer
        for name, child in self._modules.items():
            if child is not None:
                yield from child._state_items(f"{prefix}{name}.")

    def state_dict(self, prefix: str = "", keep_vars: bool = False) -> OrderedDict[str, Any]:
        """Parameters and persistent buffers by dotted name, as NumPy copies.

        With ``keep_vars=True`` the values are the Tensors themselves.  The keys and order are
        PyTorch's, e.g. ``conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean,
        bn.running_var, bn.num_batches_tracked``.
        """
        return OrderedDict(
            (name, tensor if keep_vars else np.array(tensor.data, copy=True))
            for name, tensor in self._state_items(prefix)
        )

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy values into the parameters and buffers, in place.

        Parameters
        ----------
        state_dict : mapping of str to array_like
            Arrays, Tensors or anything NumPy reads (a PyTorch state dict works as it is).
        strict : bool, default True
            Require exactly this module's keys.

        Returns
        -------
        IncompatibleKeys
            ``(missing_keys, unexpected_keys)`` (both empty when ``strict`` succeeded).

        Raises
        ------
        TypeError
            If ``state_dict`` is not a mapping or a value is not a numeric array.
        ValueError
            Listing every problem: with ``strict``, the missing and the unexpected keys; always,
            every shape mismatch.  Nothing is loaded when an error is raised.

        Notes
        -----
        Values are cast to the dtype of the parameter or buffer they replace.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict: state_dict must be a mapping, got {type(state_dict).__name__}")
        targets = OrderedDict(self._state_items())
        missing = [key for key in targets if key not in state_dict]
        unexpected = [key for key in state_dict if key not in targets]
        arrays, mismatched = {}, []
        for key, target in targets.items():
            if key not in state_dict:
                continue
            array = _as_array(key, state_dict[key])
            if array.shape != target.shape:
                mismatched.append(
                    f"size mismatch for {key}: the checkpoint has shape {array.shape}, "
                    f"this model has shape {target.shape}"
                )
            arrays[key] = array
        problems = []
        if strict and missing:
            problems.append("missing key(s): " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected key(s): " + ", ".join(unexpected))
        problems.extend(mismatched)
        if problems:
            raise ValueError(
                f"load_state_dict: error(s) in loading state_dict for {type(self).__name__} "
                "(nothing was loaded):\n  " + "\n  ".join(problems)
            )
        for key, array in arrays.items():
            target = targets[key]
            target.data[...] = array.astype(target.dtype, copy=False)
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------ calling

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation; every subclass defines it."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        output = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, output)
            if result is not None:
                output = result
        return output

    def register_forward_hook(self, hook: Callable[[Module, tuple, Any], Any]) -> RemovableHandle:
        """Call ``hook(module, inputs, output)`` after every forward; a non-None return value
        replaces the output.  Returns a handle whose ``remove()`` unregisters the hook."""
        if not callable(hook):
            raise TypeError(f"register_forward_hook: hook must be callable, got {type(hook).__name__}")
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    # ------------------------------------------------------------ description

    def extra_repr(self) -> str:
        """The layer's arguments as shown inside its repr (subclasses override)."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        children = []
        for name, child in self._modules.items():
            text = repr(child).replace("\n", "\n  ")
            children.append(f"({name}): {text}")
        if not children and len(lines) <= 1:
            return f"{type(self).__name__}({extra})"
        body = "\n  ".join(lines + children)
        return f"{type(self).__name__}(\n  {body}\n)"

    def config_args(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this module, JSON-able (used by
        :meth:`to_config`).  Built-in layers define it; a custom module defines it (and is
        registered with :func:`cnnlab.nn.register_module`) to be rebuilt by
        :func:`cnnlab.nn.from_config`."""
        raise NotImplementedError(
            f"{type(self).__name__} does not define config_args(); define it (returning the "
            "constructor arguments) and register the class with cnnlab.nn.register_module"
        )

    def to_config(self) -> dict[str, Any]:
        """A JSON-able description of the architecture: ``{"class": name, "args": {...}}``
        (containers add their children's configs).  :func:`cnnlab.nn.from_config` rebuilds it
        with fresh weights; the weights themselves travel in :meth:`state_dict`.

        Examples
        --------
        >>> from cnnlab.nn import Linear
        >>> Linear(3, 2).to_config()
        {'class': 'Linear', 'args': {'in_features': 3, 'out_features': 2, 'bias': True, 'dtype': 'float32'}}
        """
        return {"class": type(self).__name__, "args": self.config_args()}

    @classmethod
    def from_config_dict(cls, config: Mapping[str, Any], args: dict[str, Any]) -> Module:
        """Build an instance from its config (called by :func:`cnnlab.nn.from_config` with the
        validated ``args``); containers override it to build their children."""
        if "modules" in config:
            raise ValueError(f"from_config: {cls.__name__} is not a container, but its config has 'modules'")
        try:
            return cls(**args)
        except TypeError as exc:
            raise TypeError(f"from_config: cannot build {cls.__name__} from args {args}: {exc}") from None

    def _dtype_name(self) -> str:
        """Name of the dtype of this module's first floating parameter or buffer (float32 if none)."""
        for tensor in itertools.chain(self.parameters(recurse=False), self.buffers(recurse=False)):
            if tensor.data.dtype.kind == "f":
                return str(tensor.data.dtype)
        return getattr(self, "_dtype", np.dtype(np.float32)).name
