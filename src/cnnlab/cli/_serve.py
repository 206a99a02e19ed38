"""``cnnlab serve``: the local web app (explorer, model viewer, training monitor)."""

from __future__ import annotations

import argparse
from typing import Any

from cnnlab.cli._common import CommandError, count


def add_serve(sub: Any) -> None:
    """Declare ``cnnlab serve``."""
    p = sub.add_parser("serve", help="the local web app: explorer, model viewer, training monitor",
                       description="Serve the web app on this machine only (127.0.0.1, a free port) and print "
                                   "its URL; give --host explicitly to expose it on a network. Ctrl-C stops it.")
    p.add_argument("--runs", default="runs", metavar="DIR", help="the runs folder (default ./runs)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=count, default=0, help="port (default 0: a free one)")
    p.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """Run ``cnnlab serve``."""
    try:
        from cnnlab.web import serve
    except ImportError as exc:
        raise CommandError(f"cnnlab serve: {exc.name or exc} is not installed; install the web app with: "
                    "pip install 'cnnlab[web]'") from None
    if not 0 <= args.port <= 65535:
        raise CommandError(f"cnnlab serve: --port must be in [0, 65535], got {args.port}")
    try:
        serve(args.runs, host=args.host, port=args.port)
    except OSError as exc:
        raise CommandError(f"cnnlab serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    return 0
