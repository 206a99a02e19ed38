"""What every command group of the ``cnnlab`` command line shares: the one-line error, the parser
that raises it, the stdout writer, and the argparse types (each a thin wrapper over the library's
validation helpers in :mod:`cnnlab.functional._args`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cnnlab.functional._args import check_int, check_nonnegative, check_positive_int

FORMAT_CHOICES = ("text", "md", "latex", "html")


class CommandError(Exception):
    """A user error: printed as one line on stderr, exit code 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors become one line instead of usage + exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CommandError(f"{self.prog}: {message}")


def write(text: str) -> None:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. `cnnlab demo | head`
        pass


def color(choice: str) -> bool:
    if choice == "always":
        return True
    if choice == "never":
        return False
    return bool(getattr(sys.stdout, "isatty", lambda: False)())


def add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FORMAT_CHOICES, default="text",
                   help="output format: plain text (default), Markdown, LaTeX or HTML")
    p.add_argument("--cells", type=count, default=None, metavar="N",
                   help="show at most N worked cells per stage (every matrix is still shown)")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="bold the current window in text output (auto: only on a terminal)")


def _number(kind: type, text: str, expected: str) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None


def _checked(check: Any, value: Any, expected: str, *args: Any) -> Any:
    """Apply one of the library's argument checks (one home for them all) and say it argparse's way."""
    try:
        return check("cnnlab", "value", value, *args)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value}") from None


def count(text: str) -> int:
    """A whole number >= 0."""
    return _checked(check_int, _number(int, text, "a whole number >= 0"), "a whole number >= 0", 0)


def ints(text: str) -> Any:
    """``2`` -> 2, ``2,1`` -> (2, 1), ``0,1;1,0`` or ``[[0,1],[1,0]]`` -> ((0, 1), (1, 0))."""
    from cnnlab.explain import MatrixError, parse_matrix

    expected = "an int, two ints like 2,1, or (lo, hi) pairs like 0,1;1,0"
    try:
        a = parse_matrix(text)
    except MatrixError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if a.dtype.kind not in "iu":
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    if a.size == 1:
        return int(a.ravel()[0])
    if a.size == 2 and (a.ndim == 1 or a.shape[0] == 1):
        return tuple(int(v) for v in a.ravel())
    if a.shape == (2, 2):
        return tuple((int(lo), int(hi)) for lo, hi in a)
    raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")


def padding(text: str) -> Any:
    if text in ("same", "valid", "full"):
        return text
    return ints(text)


def real(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def retag(exc: Exception, command: str) -> CommandError:
    """A library error as this command's one-line message: the library's op name at the start
    (``explain (conv stage 1): ...``, ``matrix_view: ...``) becomes the command's."""
    text = str(exc)
    for op in ("explain", "backprop", "matrix_view", "problems"):
        if text.startswith(op):
            text = command + text[len(op):]
            break
    return CommandError(f"cnnlab {text}")


def positive_int(text: str) -> int:
    """A whole number >= 1."""
    return _checked(check_positive_int, _number(int, text, "a whole number >= 1"), "a whole number >= 1")


def nonnegative(text: str) -> float:
    """A finite number >= 0."""
    value = _number(float, text, "a number >= 0")
    if value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return _checked(check_nonnegative, value, "a finite number >= 0")


def fraction(text: str) -> float:
    """A number in [0, 1)."""
    value = nonnegative(text)
    if not value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text}")
    return value
