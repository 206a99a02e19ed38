"""Fixtures for cnnlab.data: an isolated data directory and a local HTTP file server."""

from __future__ import annotations

import functools
import socket
import threading
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_data_dirs(tmp_path, monkeypatch):
    """Point CNNLAB_DATA and the user cache at fresh folders; never touch the real ones."""
    data = tmp_path / "cnnlab-data"
    cache = tmp_path / "xdg-cache"
    monkeypatch.setenv("CNNLAB_DATA", str(data))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("CNNLAB_MIRROR", raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return data, cache / "cnnlab"


class _QuietHandler(SimpleHTTPRequestHandler):
    requests: list[str]

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.requests.append(self.path)
        super().do_GET()

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        pass


@dataclass
class FileServer:
    root: Path
    url: str
    requests: list[str] = field(default_factory=list)

    def put(self, name: str, data: bytes) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path


@pytest.fixture
def file_server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www, in a thread, for one test."""
    root = tmp_path / "www"
    root.mkdir()
    requests: list[str] = []
    handler_cls = type("Handler", (_QuietHandler,), {"requests": requests})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler_cls, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield FileServer(root, f"http://127.0.0.1:{server.server_port}/", requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def closed_port_url():
    """A URL on 127.0.0.1 where nothing listens (connection refused): an offline mirror."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"
