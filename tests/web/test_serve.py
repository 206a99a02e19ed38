"""``serve``: 127.0.0.1 and a free port by default, the URL printed, a clean stop on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request

from cnnlab.web import bind
from tests.web.conftest import SRC


def test_bind_defaults_to_localhost_and_a_free_port():
    a, b = bind(), bind()
    try:
        assert a.getsockname()[0] == "127.0.0.1" and a.getsockname()[1] > 0
        assert a.getsockname()[1] != b.getsockname()[1]
    finally:
        a.close()
        b.close()


def test_serve_prints_its_url_answers_and_stops_on_ctrl_c(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p))
    code = f"from cnnlab.web import serve; serve({str(tmp_path / 'runs')!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("cnnlab serve: http://127.0.0.1:"), line
        url = line.split()[2]
        with urllib.request.urlopen(url + "api/explain", data=b"{}", timeout=10) as r:
            assert json.loads(r.read())["answer"] == 5
        with urllib.request.urlopen(url, timeout=10) as r:
            page = r.read().decode()
        assert "<title>cnnlab</title>" in page and "http" not in page.replace('"/static', "")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
