"""The ``cnnlab`` command line.

Each command group is a module here (``_explain``: demo, explain, backprop, matrix, problem;
``_train``: train; ``_evaluate``: evaluate, predict).  A subcommand is two functions:
``add_<name>(subparsers)`` declares its options and sets ``run``, a function of the parsed
arguments that does the work by calling the library and returns the exit code.  To add one, write
the pair and list ``add_<name>`` in :data:`COMMANDS`.

Exit codes: 0 success, 2 bad usage or bad input (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from cnnlab._version import __version__
from cnnlab.cli._common import CommandError, Parser
from cnnlab.cli._evaluate import add_evaluate, add_predict
from cnnlab.cli._explain import add_backprop, add_demo, add_explain, add_matrix, add_problem
from cnnlab.cli._teach import add_continuous, add_filters, add_flip, add_scale, add_size
from cnnlab.cli._train import add_train

__all__ = ["COMMANDS", "CommandError", "build_parser", "main"]

# ---------------------------------------------------------------------------------------------
# the parser and main

COMMANDS: list[Callable[[Any], None]] = [add_demo, add_explain, add_backprop, add_matrix, add_problem,
                                          add_size, add_filters, add_flip, add_scale, add_continuous,
                                          add_train, add_evaluate, add_predict]


def build_parser() -> argparse.ArgumentParser:
    """The ``cnnlab`` parser with every subcommand of :data:`COMMANDS`."""
    parser = Parser(
        prog="cnnlab",
        description="Convolutional neural networks from first principles: exact, explained, "
                    "and fast (NumPy only).",
    )
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``cnnlab`` with ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 0
        return int(args.run(args))
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except CommandError as exc:
        print(str(exc).splitlines()[0] if str(exc) else "cnnlab: error", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
