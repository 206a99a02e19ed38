"""``cnnlab serve`` from the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request

from tests.web.conftest import SRC


def test_cli_serve_binds_localhost_and_stops_on_ctrl_c(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.Popen([sys.executable, "-m", "cnnlab", "serve", "--runs", str(tmp_path / "runs")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("cnnlab serve: http://127.0.0.1:"), line
        url = line.split()[2]
        with urllib.request.urlopen(url + "api/runs", timeout=10) as r:
            assert json.loads(r.read())["runs"] == []
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_serve_port_in_use_is_one_line(tmp_path):
    from cnnlab.web import bind

    sock = bind()
    try:
        port = str(sock.getsockname()[1])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p))
        r = subprocess.run([sys.executable, "-m", "cnnlab", "serve", "--port", port, "--runs", str(tmp_path)],
                           capture_output=True, text=True, env=env, timeout=30)
    finally:
        sock.close()
    assert r.returncode != 0 and "cannot listen on 127.0.0.1" in r.stderr and "Traceback" not in r.stderr
