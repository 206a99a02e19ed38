"""Run the web app on uvicorn: 127.0.0.1 and a free port unless told otherwise."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import TextIO

from cnnlab.web._app import Limits, create_app

LOCAL = "127.0.0.1"


def bind(host: str = LOCAL, port: int = 0) -> socket.socket:
    """A listening socket on ``host``:``port`` (port 0: a free one chosen by the system).

    Raises
    ------
    OSError
        When the address cannot be bound (in use, or not an address of this machine).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(runs_dir: str | Path = "runs", *, host: str = LOCAL, port: int = 0, limits: Limits | None = None,
          out: TextIO | None = None, log_level: str = "warning") -> None:
    """Serve the explorer, model viewer and training monitor until Ctrl-C.

    Parameters
    ----------
    runs_dir : str or Path, default 'runs'
        The runs folder: checkpoints are only read from it, new runs are written to it.
    host : str, default '127.0.0.1'
        Only this machine can connect; give another address (``0.0.0.0``) explicitly to expose
        the app on a network.
    port : int, default 0
        0 picks a free port.
    limits : Limits, optional
    out : text stream, optional
        Where the URL is printed (default stdout).
    log_level : str, default 'warning'
    """
    import uvicorn

    out = out or sys.stdout
    Path(runs_dir).mkdir(parents=True, exist_ok=True)
    app = create_app(runs_dir, limits)
    sock = bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{sock.getsockname()[1]}/"
    print(f"cnnlab serve: {url}  (runs folder {Path(runs_dir).resolve()}; Ctrl-C to stop)", file=out, flush=True)
    if host not in (LOCAL, "localhost", "::1"):
        print(f"cnnlab serve: listening on {host}: other machines can reach this app", file=out, flush=True)
    config = uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=3, lifespan="on")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the Ctrl-C it handled, after shutting down cleanly
    finally:
        sock.close()
    print("cnnlab serve: stopped", file=out, flush=True)
