"""Read matrices typed by a person: ``[[1, 0, 2], [3, 1, 0]]``, ``1 0 2; 3 1 0``, CSV lines, JSON,
``.npy`` files.  Entries may be integers, decimals or fractions such as ``1/3``.

Every problem raises :class:`MatrixError` with a message that completes a sentence starting with
the option's name: ``--input row 2 has 2 entries, expected 3``.
"""

from __future__ import annotations

import os
import re
from fractions import Fraction
from typing import Any, TextIO

import numpy as np

from cnnlab.explain._limits import MAX_TEXT_VALUES, MAX_VALUES

_INT = re.compile(r"[+-]?\d+")
_FRACTION = re.compile(r"([+-]?\d+)\s*/\s*([+-]?\d+)")
_SEPARATORS = re.compile(r"[\s,;\[\]]+")
_FILE_SUFFIXES = (".json", ".csv", ".npy", ".txt", ".tsv")


class MatrixError(ValueError):
    """A matrix that cannot be read; the message names the place (row, column) and the problem."""


# ---------------------------------------------------------------------------------------------
# text to a nested list of entries (strings)


def _tokens(text: str) -> list[str]:
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "[],":
            out.append(ch)
            i += 1
        elif ch == '"':
            end = text.find('"', i + 1)
            if end < 0:
                raise MatrixError("has an unclosed quote")
            out.append(text[i + 1 : end].strip())
            i = end + 1
        else:
            j = i
            while j < len(text) and not text[j].isspace() and text[j] not in '[],"':
                j += 1
            out.append(text[i:j])
            i = j
    return out


def _nested(tokens: list[str]) -> list:
    """Parse ``[a, b, [c, d]]`` (commas or spaces between entries)."""
    pos = 0

    def value() -> Any:
        nonlocal pos
        if pos >= len(tokens):
            raise MatrixError("has unbalanced brackets: a '[' is never closed")
        tok = tokens[pos]
        if tok == "]":
            raise MatrixError("has an unexpected ']'")
        if tok == ",":
            raise MatrixError("has an unexpected ','")
        pos += 1
        if tok != "[":
            return tok
        items: list = []
        while True:
            if pos >= len(tokens):
                raise MatrixError("has unbalanced brackets: a '[' is never closed")
            if tokens[pos] == "]":
                pos += 1
                return items
            items.append(value())
            if pos < len(tokens) and tokens[pos] == ",":
                pos += 1

    result = value()
    if pos != len(tokens):
        raise MatrixError(f"has unexpected text after the matrix: {' '.join(tokens[pos:])!r}")
    return result


def _rows(text: str) -> list:
    """``1 0 2; 3 1 0`` or CSV lines: rows split by ';' or newlines, entries by ',' or spaces."""
    rows = []
    for line in re.split(r"[;\n]", text):
        line = line.strip()
        if not line:
            continue
        rows.append([e for e in re.split(r"[,\s]+", line) if e])
    return rows


def read_entries(text: str) -> list:
    """The nested list of entry strings in ``text``."""
    text = text.strip()
    if not text:
        raise MatrixError("is empty")
    if text.startswith("["):
        return _nested(_tokens(text))
    if "[" in text or "]" in text:
        raise MatrixError("has unbalanced brackets")
    return _rows(text)


# ---------------------------------------------------------------------------------------------
# shape checks with positions


def _place(path: tuple[int, ...], depth: int) -> str:
    """``row 2, column 3`` (1-based) for a position in a matrix of ``depth`` dims."""
    names = {1: ["entry"], 2: ["row", "column"], 3: ["channel", "row", "column"],
             4: ["filter", "channel", "row", "column"]}.get(depth, [f"axis {k}" for k in range(depth)])
    return ", ".join(f"{names[k]} {i + 1}" for k, i in enumerate(path))


def _depth(tree: Any) -> int:
    d = 0
    while isinstance(tree, list) and tree:
        tree = tree[0]
        d += 1
    return d


def _check(tree: Any, path: tuple[int, ...], shape: list[int], depth: int) -> None:
    level = len(path)
    if level == depth:
        if isinstance(tree, list):
            raise MatrixError(f"{_place(path, depth)} is a list, expected a number")
        return
    if not isinstance(tree, list):
        raise MatrixError(f"{_place(path, depth)} is the number {tree!r}, expected a list")
    if not tree:
        raise MatrixError("is empty" if not path else f"{_place(path, depth)} is empty")
    if len(tree) != shape[level]:
        what = {depth - 1: "entr", depth - 2: "row", depth - 3: "channel"}.get(level, "item")
        count = len(tree)
        noun = (what + ("y" if count == 1 else "ies")) if what == "entr" else (
            what + ("" if count == 1 else "s"))
        where = _place(path, depth) if path else "it"
        raise MatrixError(f"{where} has {count} {noun}, expected {shape[level]}")
    for i, sub in enumerate(tree):
        _check(sub, (*path, i), shape, depth)


def _number(entry: str, place: str, exact: bool) -> Any:
    m = _FRACTION.fullmatch(entry)
    if m:
        den = int(m.group(2))
        if den == 0:
            raise MatrixError(f"entry {entry!r} at {place} divides by zero")
        return Fraction(int(m.group(1)), den)
    if _INT.fullmatch(entry):
        return int(entry)
    try:
        value = float(entry)
    except ValueError:
        raise MatrixError(f"entry {entry!r} at {place} is not a number") from None
    if exact:
        try:
            return Fraction(entry)
        except ValueError:
            raise MatrixError(f"entry {entry!r} at {place} has no exact value") from None
    return value


def has_fraction(tree: Any) -> bool:
    """Whether any entry is written as a fraction ``p/q``."""
    if isinstance(tree, list):
        return any(has_fraction(t) for t in tree)
    return isinstance(tree, str) and "/" in tree


def to_array(tree: Any, exact: bool = False) -> np.ndarray:
    """Check that ``tree`` is rectangular and turn its entries into numbers.

    Integers become ``int64``; decimals ``float64``; with a fraction anywhere (or ``exact``) the
    array holds exact :class:`~fractions.Fraction` values (decimals read exactly: ``0.1`` is
    1/10).
    """
    if not isinstance(tree, list):
        tree = [tree]
    depth = _depth(tree)
    if depth == 0:
        raise MatrixError("is empty")
    shape, node = [], tree
    for _ in range(depth):
        shape.append(len(node))
        node = node[0]
    _check(tree, (), shape, depth)
    exact = exact or has_fraction(tree)
    flat = np.empty(shape, dtype=object)
    for index in np.ndindex(*shape):
        entry = tree
        for i in index:
            entry = entry[i]
        flat[index] = _number(entry, _place(index, depth), exact)
    if exact:
        return flat
    if all(isinstance(v, int) for v in flat.ravel()):
        return flat.astype(np.int64)
    return flat.astype(np.float64)


def parse_matrix(text: str, exact: bool = False) -> np.ndarray:
    """A matrix (or stack of matrices) from text.

    Examples
    --------
    >>> parse_matrix("[[1, 0, 2], [3, 1, 0]]").tolist()
    [[1, 0, 2], [3, 1, 0]]
    >>> parse_matrix("1/2 1; 0 -1/3").tolist()
    [[Fraction(1, 2), 1], [0, Fraction(-1, 3)]]
    >>> parse_matrix("[[1, 2], [3]]")
    Traceback (most recent call last):
    ...
    cnnlab.explain._parse.MatrixError: row 2 has 1 entry, expected 2
    """
    return to_array(read_entries(text), exact)


# ---------------------------------------------------------------------------------------------
# files and stdin


def looks_like_file(arg: str) -> bool:
    return arg == "-" or os.path.exists(arg) or arg.lower().endswith(_FILE_SUFFIXES)


def _sized(text: str) -> str:
    """``text`` if it holds at most ``MAX_TEXT_VALUES`` entries (counted before parsing them)."""
    if len(text) > 2 * MAX_TEXT_VALUES and len(_SEPARATORS.split(text)) > MAX_TEXT_VALUES + 1:
        raise MatrixError(
            f"holds more than {MAX_TEXT_VALUES:,} entries (MAX_TEXT_VALUES); give a .npy file for "
            f"a larger matrix"
        )
    return text


def read_source(arg: str, stdin: TextIO) -> Any:
    """Entries (nested list of strings) or, for ``.npy``, an array, from a literal, file or ``-``.

    Text holding more than ``MAX_TEXT_VALUES`` entries and ``.npy`` arrays of more than
    ``MAX_VALUES`` values are refused before they are parsed or loaded.
    """
    if arg == "-":
        text = stdin.read(8 * MAX_TEXT_VALUES + 1)
        if len(text) > 8 * MAX_TEXT_VALUES:
            raise MatrixError(f"from stdin is larger than {8 * MAX_TEXT_VALUES:,} characters, the limit for "
                              f"text; give a .npy file for a larger matrix")
        return read_entries(_sized(text))
    if not looks_like_file(arg) or arg.lstrip().startswith("["):
        return read_entries(_sized(arg))
    if not os.path.isfile(arg):
        raise MatrixError(f"names no readable file: {arg!r}")
    if arg.lower().endswith(".npy"):
        try:
            head = np.load(arg, allow_pickle=False, mmap_mode="r")
            if head.size > MAX_VALUES:
                raise MatrixError(
                    f"file {arg!r} holds {head.size:,} values (shape {head.shape}); the limit is "
                    f"{MAX_VALUES:,} (MAX_VALUES)"
                )
            arr = np.array(head)
        except MatrixError:
            raise
        except (OSError, ValueError) as exc:
            raise MatrixError(f"file {arg!r} is not a readable .npy array ({exc})") from None
        if arr.dtype.kind not in "biuf":
            raise MatrixError(f"file {arg!r} holds dtype {arr.dtype}, expected numbers")
        if arr.size == 0:
            raise MatrixError(f"file {arg!r} holds an empty array")
        return arr
    try:
        with open(arg, encoding="utf-8") as f:
            text = f.read(8 * MAX_TEXT_VALUES + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise MatrixError(f"file {arg!r} cannot be read ({exc})") from None
    if len(text) > 8 * MAX_TEXT_VALUES:
        raise MatrixError(f"file {arg!r} is larger than {8 * MAX_TEXT_VALUES:,} characters, the limit for "
                          f"text; give a .npy file for a larger matrix")
    return read_entries(_sized(text))
