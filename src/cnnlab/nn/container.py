"""``Sequential``: modules applied one after another."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

from cnnlab.nn.activation import ReLU
from cnnlab.nn.config import check_config, register_module
from cnnlab.nn.module import Module
from cnnlab.nn.norm import _BatchNorm


@register_module
class Sequential(Module):
    """A chain of modules: the output of each is the input of the next.

    Parameters
    ----------
    *modules : Module
        Named ``"0"``, ``"1"``, ... as in PyTorch; or a single ``OrderedDict`` of
        ``name -> Module`` to choose the names.

    Raises
    ------
    TypeError
        If an entry is not a Module.

    Examples
    --------
    >>> from cnnlab.nn import Linear, ReLU
    >>> model = Sequential(Linear(4, 3), ReLU(), Linear(3, 2))
    >>> [name for name, _ in model.named_parameters()]
    ['0.weight', '0.bias', '2.weight', '2.bias']
    >>> model[1]
    ReLU()
    """

    def __init__(self, *modules: Module | Mapping[str, Module]) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], Mapping):
            for name, module in modules[0].items():
                self._add("Sequential", name, module)
        else:
            for index, module in enumerate(modules):
                self._add("Sequential", str(index), module)

    def _add(self, op: str, name: str, module: Any) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"{op}: entry {name!r} must be a Module, got {type(module).__name__}")
        self.add_module(name, module)

    def forward(self, x: Any) -> Any:
        modules = list(self._modules.values())
        i = 0
        while i < len(modules):
            if i + 1 < len(modules) and _fuses_with_relu(modules[i], modules[i + 1]):
                x = modules[i].forward_relu(x)  # BatchNorm then ReLU, one operator
                i += 2
            else:
                x = modules[i](x)
                i += 1
        return x

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return Sequential(OrderedDict(list(self._modules.items())[index]))
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"Sequential: index must be an int or a slice, got {type(index).__name__}")
        size = len(self._modules)
        if not -size <= index < size:
            raise IndexError(f"Sequential: index {index} is out of range for {size} modules")
        return list(self._modules.values())[index % size]

    def append(self, module: Module) -> Sequential:
        """Add ``module`` at the end (named by its position); returns self."""
        self._add("Sequential.append", str(len(self._modules)), module)
        return self

    def to_config(self) -> dict[str, Any]:
        return {
            "class": "Sequential",
            "args": {},
            "modules": {name: module.to_config() for name, module in self._modules.items()},
        }

    @classmethod
    def from_config_dict(cls, config: Mapping[str, Any], args: dict[str, Any]) -> Sequential:
        if args:
            raise ValueError(f"from_config: Sequential takes no args, got {sorted(args)}")
        children = config.get("modules", {})
        if not isinstance(children, Mapping):
            raise TypeError(
                f"from_config: Sequential's 'modules' must be a dict of name -> config, got {type(children).__name__}"
            )
        built = OrderedDict()
        for name, child in children.items():
            child_cls, child_args = check_config(child)
            built[name] = child_cls.from_config_dict(child, child_args)
        return cls(built)


@register_module
class Residual(Module):
    """A residual block: ``x + body(x)`` (the body must keep the shape).

    Parameters
    ----------
    body : Module

    Examples
    --------
    >>> import numpy as np
    >>> from cnnlab import nn
    >>> block = nn.Residual(nn.Sequential(nn.Linear(4, 4), nn.ReLU()))
    >>> block(np.zeros((2, 4), dtype=np.float32)).shape
    (2, 4)
    >>> [name for name, _ in block.named_parameters()]
    ['body.0.weight', 'body.0.bias']
    """

    def __init__(self, body: Module) -> None:
        super().__init__()
        if not isinstance(body, Module):
            raise TypeError(f"Residual: body must be a Module, got {type(body).__name__}")
        self.body = body

    def forward(self, x: Any) -> Any:
        return x + self.body(x)

    def to_config(self) -> dict[str, Any]:
        return {"class": "Residual", "args": {}, "modules": {"body": self.body.to_config()}}

    @classmethod
    def from_config_dict(cls, config: Mapping[str, Any], args: dict[str, Any]) -> Residual:
        if args:
            raise ValueError(f"from_config: Residual takes no args, got {sorted(args)}")
        children = config.get("modules", {})
        if not isinstance(children, Mapping) or set(children) != {"body"}:
            raise ValueError("from_config: Residual's 'modules' must be {'body': config}")
        body_cls, body_args = check_config(children["body"])
        return cls(body_cls.from_config_dict(children["body"], body_args))


def _fuses_with_relu(first: Module, second: Module) -> bool:
    """A BatchNorm layer followed by a ReLU, both as the library defines them (no subclass that
    changes ``forward``) and without forward hooks, which would need the value between them."""
    return (isinstance(first, _BatchNorm) and type(first).forward is _BatchNorm.forward
            and type(second).forward is ReLU.forward and isinstance(second, ReLU)
            and not first._forward_hooks and not second._forward_hooks)

