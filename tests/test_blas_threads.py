"""The BLAS thread setting ``import cnnlab`` makes (see cnnlab/__init__.py), in fresh interpreters."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _timeout_seen(code: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    environ.update(env, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code + "; import os; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))"],
                         capture_output=True, text=True, env=environ, timeout=120, check=True)
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(("code", "env", "expected"), [
    ("import cnnlab", {}, "4"),  # before NumPy: OpenBLAS threads sleep right after each product
    ("import numpy; import cnnlab", {}, "None"),  # too late to matter: left unset, not pretended
    ("import cnnlab.functional", {}, "4"),  # any submodule import runs the package's __init__ first
    ("import cnnlab", {"OPENBLAS_THREAD_TIMEOUT": "12"}, "12"),  # the user's choice wins
])
def test_blas_thread_timeout_is_set_only_while_it_can_take_effect(code, env, expected):
    assert _timeout_seen(code, **env) == expected
