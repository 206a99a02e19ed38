"""Describe an architecture as JSON-able data and rebuild it: ``to_config`` / ``from_config``.

A config is ``{"class": "Conv2d", "args": {"in_channels": 1, ...}}``; a container adds
``"modules": {name: config, ...}``.  :func:`from_config` looks the class name up in a registry
(every built-in layer, plus classes added with :func:`register_module`) and calls the constructor
with ``args``; it never imports or evaluates anything named in the config, so a config read from
a file cannot run code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cnnlab.nn.module import Module

__all__ = ["from_config", "register_module", "registered_modules"]

_REGISTRY: dict[str, type[Module]] = {}
_CONFIG_KEYS = {"class", "args", "modules"}


def register_module(cls: type[Module]) -> type[Module]:
    """Make ``cls`` buildable by :func:`from_config` under its class name (usable as a decorator).

    The class must define ``config_args()`` returning its constructor arguments; a container
    (holding submodules) may instead override ``to_config`` and the classmethod
    ``from_config_dict``, as :class:`~cnnlab.nn.Sequential` does.

    Raises
    ------
    TypeError
        If ``cls`` is not a Module subclass.
    ValueError
        If another class is already registered under the same name.
    """
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise TypeError(f"register_module: expected a Module subclass, got {cls!r}")
    name = cls.__name__
    if _REGISTRY.get(name, cls) is not cls:
        raise ValueError(f"register_module: another class is already registered as {name!r}: {_REGISTRY[name]!r}")
    _REGISTRY[name] = cls
    return cls


def registered_modules() -> list[str]:
    """Names :func:`from_config` knows, sorted."""
    return sorted(_REGISTRY)


def _tuples(value: Any) -> Any:
    """JSON turns tuples into lists; turn them back (constructor arguments are tuples)."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def check_config(config: Any) -> tuple[type[Module], dict[str, Any]]:
    """Validate the outer shape of a config; return the class and its arguments."""
    if not isinstance(config, Mapping):
        raise TypeError(f"from_config: config must be a dict, got {type(config).__name__}")
    if "class" not in config:
        raise ValueError(f"from_config: config has no 'class' entry, got keys {sorted(config)}")
    extra = set(config) - _CONFIG_KEYS
    if extra:
        raise ValueError(f"from_config: unknown config entries {sorted(extra)} (allowed: {sorted(_CONFIG_KEYS)})")
    name = config["class"]
    if not isinstance(name, str):
        raise TypeError(f"from_config: 'class' must be a str, got {type(name).__name__}")
    if name not in _REGISTRY:
        raise ValueError(
            f"from_config: unknown module class {name!r}; known classes: {', '.join(registered_modules())} "
            "(register custom classes with cnnlab.nn.register_module)"
        )
    args = config.get("args", {})
    if not isinstance(args, Mapping) or not all(isinstance(k, str) for k in args):
        raise TypeError(f"from_config: 'args' of {name} must be a dict with str keys, got {args!r}")
    return _REGISTRY[name], {key: _tuples(value) for key, value in args.items()}


def from_config(config: Mapping[str, Any]) -> Module:
    """Build the module a :meth:`Module.to_config` dict describes (with fresh weights).

    Parameters
    ----------
    config : dict
        ``{"class": name, "args": {...}}``, plus ``"modules"`` for containers.

    Returns
    -------
    Module

    Raises
    ------
    TypeError
        A config that is not a dict, a non-str class name, arguments the constructor rejects.
    ValueError
        An unknown class name, a missing 'class' entry, unknown entries.

    Examples
    --------
    >>> from cnnlab.nn import Conv2d, ReLU, Sequential
    >>> model = Sequential(Conv2d(1, 4, 3), ReLU())
    >>> from_config(model.to_config())
    Sequential(
      (0): Conv2d(1, 4, kernel_size=(3, 3), stride=(1, 1))
      (1): ReLU()
    )
    """
    cls, args = check_config(config)
    return cls.from_config_dict(config, args)
