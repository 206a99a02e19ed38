"""A tiny expression language for the equations of a solution, and the blocks of a document.

The document builder (:mod:`cnnlab.explain._document`) describes a solution as a list of blocks
holding raw numbers and expression tokens; each writer (:mod:`cnnlab.explain._writers`) decides
how a number, a product, a fraction or a floor looks in its format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# ---------------------------------------------------------------------------------------------
# expression tokens


@dataclass(frozen=True)
class Num:
    """A number; ``factor`` asks for parentheses around a negative number or a fraction in a
    product or sum."""

    value: Any
    factor: bool = False


@dataclass(frozen=True)
class Sym:
    """A name such as ``Conv(I)`` or ``out``."""

    text: str


@dataclass(frozen=True)
class Idx:
    """An indexed name: ``I[i+m, j+n]`` (a subscript in LaTeX)."""

    name: str
    indices: tuple[str, ...]


@dataclass(frozen=True)
class Op:
    """``+ - * / = ,`` and ``->``."""

    op: str


@dataclass(frozen=True)
class Txt:
    """Words inside an equation."""

    text: str


@dataclass(frozen=True)
class Call:
    """``name(arg, arg, ...)``; each argument is a list of tokens."""

    name: str
    args: tuple[tuple, ...]


@dataclass(frozen=True)
class Frac:
    num: tuple
    den: tuple


@dataclass(frozen=True)
class Floor:
    body: tuple


@dataclass(frozen=True)
class Ceil:
    body: tuple


@dataclass(frozen=True)
class Paren:
    body: tuple


@dataclass(frozen=True)
class Sum:
    """``sum_{var = lo..hi} body`` for each ``(var, lo, hi)`` in ``ranges``."""

    ranges: tuple[tuple[str, str, str], ...]
    body: tuple


def joined(parts: list[list], op: str = "+") -> list:
    """``parts[0] op parts[1] op ...`` as one token list."""
    out: list = []
    for i, part in enumerate(parts):
        if i:
            out.append(Op(op))
        out.extend(part)
    return out


# ---------------------------------------------------------------------------------------------
# blocks


@dataclass
class Heading:
    text: str
    level: int


@dataclass
class Para:
    text: str


@dataclass
class Items:
    lines: list[str]


@dataclass
class Grid:
    """A matrix: ``values`` is 2-D (numbers, or ``None`` for a cell outside any input);
    ``highlight`` marks the current window, ``faded`` padding cells."""

    label: str
    values: np.ndarray
    highlight: np.ndarray | None = None
    faded: np.ndarray | None = None
    caption: str = ""


@dataclass
class Row:
    """Matrices side by side."""

    grids: list[Grid] = field(default_factory=list)


@dataclass
class Math:
    """One displayed equation."""

    items: list


# ---------------------------------------------------------------------------------------------
# names in LaTeX

_WORD = re.compile(r"[A-Za-z][A-Za-z_]+")


def tex_name(label: str) -> str:
    """``ReLU(Conv(I))`` -> ``\\mathrm{ReLU}(\\mathrm{Conv}(I))``; one-letter names stay italic."""
    return _WORD.sub(lambda m: "\\mathrm{" + m.group(0).replace("_", "\\_") + "}", label)
