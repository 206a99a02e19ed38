"""The ``cnnlab`` command line.

Each command group is a module here (``_explain``: demo, explain, backprop, matrix, problem;
``_teach``: size, filters, flip, scale, continuous; ``_train``: train; ``_evaluate``: evaluate, predict;
``_plot``: plot; ``_serve``: serve; ``_bench``: bench).
A subcommand is two functions:
``add_<name>(subparsers)`` declares its options and sets ``run``, a function of the parsed
arguments that does the work by calling the library and returns the exit code.  To add one, write
the pair and list ``add_<name>`` in :data:`COMMANDS`.

Exit codes: 0 success; 2 bad usage or bad input (one line on stderr, no traceback), including a file
that cannot be read or written; 1 an internal error (one line naming it and pointing to ``--debug``,
which shows the traceback); 130 after Ctrl-C and 143 after SIGTERM.  A closed output pipe
(``cnnlab evaluate ... | head``) ends the command quietly.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from cnnlab._version import __version__
from cnnlab.cli._bench import add_bench
from cnnlab.cli._common import CommandError, Parser
from cnnlab.cli._evaluate import add_evaluate, add_predict
from cnnlab.cli._explain import add_backprop, add_demo, add_explain, add_matrix, add_problem
from cnnlab.cli._plot import add_plot
from cnnlab.cli._serve import add_serve
from cnnlab.cli._teach import add_continuous, add_filters, add_flip, add_scale, add_size
from cnnlab.cli._train import add_train

__all__ = ["COMMANDS", "CommandError", "build_parser", "main"]

# ---------------------------------------------------------------------------------------------
# the parser and main

COMMANDS: list[Callable[[Any], None]] = [add_demo, add_explain, add_backprop, add_matrix, add_problem,
                                          add_size, add_filters, add_flip, add_scale, add_continuous,
                                          add_train, add_evaluate, add_predict, add_plot, add_serve, add_bench]


def build_parser() -> argparse.ArgumentParser:
    """The ``cnnlab`` parser with every subcommand of :data:`COMMANDS`."""
    parser = Parser(
        prog="cnnlab",
        description="Convolutional neural networks from first principles: exact, explained, "
                    "and fast (NumPy only).",
    )
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    for command in sub.choices.values():  # `cnnlab CMD --debug` works too
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show the traceback of an error")
    return parser


def one_line(text: str) -> str:
    """A message as one line: its lines joined, whitespace runs collapsed (nothing is cut off).

    Examples
    --------
    >>> one_line("does not fit:" + chr(10) + "  size mismatch for w")
    'does not fit: size mismatch for w'
    """
    return " ".join(text.split())


def _os_error(exc: OSError) -> str:
    where = f" {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{':' if where else ''}{where}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``cnnlab`` with ``argv`` (default ``sys.argv[1:]``) and return the exit code.

    Every error is one line on stderr: exit 2 for bad usage or input (and files that cannot be read or
    written), exit 1 for an internal error, with a pointer to ``--debug``, which re-raises it instead.
    """
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    command = "cnnlab"
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 0
        command = f"cnnlab {args.command}"
        return int(args.run(args))
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except CommandError as exc:
        print(one_line(str(exc)) or f"{command}: error", file=sys.stderr)
        return 2
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{command}: interrupted", file=sys.stderr)
        return 130
    except RecursionError as exc:  # before OSError/MemoryError: input nested too deeply for Python
        if debug:
            raise
        print(f"{command}: input nested too deeply to process ({one_line(str(exc))})", file=sys.stderr)
        return 2
    except OSError as exc:  # a file or folder that cannot be read or written, a full disk
        if debug:
            raise
        print(f"{command}: {one_line(_os_error(exc))}", file=sys.stderr)
        return 2
    except MemoryError:
        if debug:
            raise
        print(f"{command}: not enough memory for this (run again with --debug for the traceback)", file=sys.stderr)
        return 1
    except Exception as exc:
        if debug:
            raise
        detail = one_line(str(exc))
        print(f"{command}: internal error: {type(exc).__name__}{': ' if detail else ''}{detail[:300]} "
              "(run again with --debug for the traceback)", file=sys.stderr)
        return 1


def entry() -> int:
    """The ``cnnlab`` command and ``python -m cnnlab``: :func:`main`, then a quiet exit.

    Once the command has finished, a SIGTERM can only cut the interpreter's exit short (a run's
    files are all written by then), so it is ignored: the exit code stays the command's own
    instead of a death by signal halfway through shutting down.
    """
    code = main()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return code


def _quiet_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(entry())
