"""Shared plumbing of the figures: the headless matplotlib backend, saving, argument checks."""

from __future__ import annotations

import os
from fractions import Fraction
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np

FORMATS = ("png", "svg")
DPI = 100


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed), or a clear ImportError."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("cnnlab.viz needs matplotlib; install it with: pip install 'cnnlab[viz]'") from None
    if matplotlib.get_backend().lower() not in ("agg", "svg", "pdf", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def figure(width: float, height: float) -> Any:
    """A new figure of ``width`` x ``height`` inches (``DPI`` pixels per inch when saved as PNG)."""
    plt = pyplot()
    return plt.figure(figsize=(width, height), dpi=DPI)


def format_of(op: str, path: str | os.PathLike[str]) -> str:
    """The image format named by a path's suffix: ``'png'`` or ``'svg'``."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise ValueError(f"{op}: path must end in .png or .svg, got {str(path)!r}")
    return suffix


def finish(op: str, fig: Any, path: str | os.PathLike[str] | None) -> Any:
    """Save ``fig`` to ``path`` (PNG or SVG by suffix) and close it; return the figure.

    The figure is saved at its own size (no tight bounding box), so a PNG has exactly
    ``figsize * DPI`` pixels.
    """
    if path is not None:
        fmt = format_of(op, path)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format=fmt, dpi=DPI)
        pyplot().close(fig)
    return fig


def as_matrix(op: str, name: str, value: Any, ndim: int | tuple[int, ...]) -> np.ndarray:
    """``value`` as a float array with ``ndim`` dims (one of them when a tuple), or a clear error."""
    try:
        a = np.asarray(getattr(value, "data", value), dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: {name} must be an array of numbers, got {type(value).__name__}") from None
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if a.ndim not in dims:
        expected = " or ".join(f"{d}-D" for d in dims)
        raise ValueError(f"{op}: {name} must be {expected}, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{op}: {name} is empty (shape {a.shape})")
    return a


def number_text(v: Any, precision: int = 4) -> str:
    """A number for a figure or an arithmetic line: ``5``, ``-4/3``, ``0.3333``."""
    if isinstance(v, (bool, np.bool_)):
        return str(int(v))
    if isinstance(v, Fraction):
        return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"
    if isinstance(v, Integral):
        return str(int(v))
    f = float(v)
    if f.is_integer() and abs(f) < 1e15:
        return str(int(f))
    return f"{f:.{precision}g}"
