"""The default random number generator behind weight initialisation and dropout.

cnnlab draws every random number (``cnnlab.nn.init``, the layers' default initialisation,
``Dropout``) from a NumPy :class:`numpy.random.Generator`.  Functions that draw take an optional
``generator`` argument; when it is ``None`` they use the module-level default returned by
:func:`default_generator`.  :func:`manual_seed` replaces that default with a freshly seeded one,
so a script that calls ``cnnlab.manual_seed(0)`` first builds the same model and drops the same
units on every run (as ``torch.manual_seed`` does for PyTorch; the numbers themselves differ from
PyTorch's, which uses another generator).

Until :func:`manual_seed` is called the default generator is seeded from the operating system's
entropy (NumPy's convention), so unseeded runs differ.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np

__all__ = ["default_generator", "manual_seed"]

_state: dict[str, np.random.Generator] = {"generator": np.random.default_rng()}


def manual_seed(seed: int) -> np.random.Generator:
    """Seed the default generator: every later draw without a ``generator`` argument repeats.

    Parameters
    ----------
    seed : int
        A non-negative integer.

    Returns
    -------
    numpy.random.Generator
        The new default generator.

    Raises
    ------
    TypeError
        If ``seed`` is not an int.
    ValueError
        If ``seed`` is negative.

    Examples
    --------
    >>> _ = manual_seed(0)
    >>> a = default_generator().random()
    >>> _ = manual_seed(0)
    >>> a == default_generator().random()
    True
    """
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, Integral):
        raise TypeError(f"manual_seed: seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"manual_seed: seed must be non-negative, got {seed}")
    _state["generator"] = np.random.default_rng(int(seed))
    return _state["generator"]


def default_generator() -> np.random.Generator:
    """The generator used when a function's ``generator`` argument is ``None``."""
    return _state["generator"]


def resolve_generator(op: str, generator: Any) -> np.random.Generator:
    """``generator`` itself, or the default one when it is ``None``.

    Raises
    ------
    TypeError
        If ``generator`` is neither ``None`` nor a :class:`numpy.random.Generator`.
    """
    if generator is None:
        return _state["generator"]
    if not isinstance(generator, np.random.Generator):
        raise TypeError(
            f"{op}: generator must be a numpy.random.Generator or None, got {type(generator).__name__}"
        )
    return generator
