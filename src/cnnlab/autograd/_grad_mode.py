"""Grad mode: whether operations are recorded for backward (``no_grad``, ``enable_grad``)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

_mode = threading.local()


def is_grad_enabled() -> bool:
    """Whether operations are being recorded for backward (False inside ``no_grad``)."""
    return getattr(_mode, "enabled", True)


class no_grad:  # noqa: N801 - named as in PyTorch
    """Context manager and decorator that records no operations (results need no grad).

    Examples
    --------
    >>> from cnnlab import Tensor
    >>> w = Tensor([1.0, 2.0], requires_grad=True)
    >>> with no_grad():
    ...     y = w * 2
    >>> y.requires_grad
    False
    """

    _enabled = False

    def __new__(cls, func: Callable[..., Any] | None = None) -> Any:
        self = super().__new__(cls)
        if func is None:
            return self
        return self(func)  # used bare, as ``@no_grad``

    def __enter__(self) -> None:
        self._previous = is_grad_enabled()
        _mode.enabled = self._enabled

    def __exit__(self, *exc_info: object) -> None:
        _mode.enabled = self._previous

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        cls = type(self)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with cls():
                return func(*args, **kwargs)

        return wrapper


class enable_grad(no_grad):  # noqa: N801
    """Context manager and decorator that turns recording back on inside ``no_grad``."""

    _enabled = True


# ---------------------------------------------------------------- the Tensor
