"""The 'auto' backend keeps tiny calls on NumPy: the lecture's example never compiles a kernel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab.functional import _backend

DEFAULT = _backend.COMPILE_MIN_WORK  # (read at import, before the autouse fixture of tests/conftest.py sets 0)
SRC = str(Path(__file__).resolve().parents[2] / "src")


def test_threshold_decides_auto_but_not_an_explicit_numba_backend(monkeypatch):
    monkeypatch.setattr(_backend, "COMPILE_MIN_WORK", DEFAULT)
    previous = _backend.set_backend("auto")
    try:
        assert not _backend.use_numba(DEFAULT - 1)
        assert _backend.use_numba(DEFAULT) == _backend.numba_available()
        assert _backend.use_numba() == _backend.numba_available()
        if _backend.numba_available():
            _backend.set_backend("numba")
            assert _backend.use_numba(1)
        _backend.set_backend("numpy")
        assert not _backend.use_numba(10**9)
    finally:
        _backend.set_backend(previous)


def test_the_default_threshold_compiles_small_training_layers():
    """The default keeps tiny calls (the lecture's example, under 1,000) on NumPy but runs the
    compiled kernels for the MNIST-1D CNN's smallest layers (12,500-25,000 values or
    multiply-adds), where NumPy's many small calls cost more than the kernels."""
    assert 1_000 < DEFAULT <= 12_500  # (the module's value at import: the suite's fixture sets 0)


CHILD = """
import json, numpy as np
import cnnlab.functional as F
from cnnlab import Tensor
from cnnlab.functional import _numba_correlate, _numba_direct, _numba_direct_grad_w, _numba_kernels, _numba_norm
from cnnlab.functional import _numba_pool
I = np.array([[1, 0, 2], [3, 1, 0], [0, 0, 4]]); K = np.array([[1, 0], [0, 1]])
c = F.correlate(I, K)
y = F.max_pool2d(F.relu(F.conv2d(I[None, None], K[None, None])), 2, 1)
x = Tensor(np.ones((2, 1, 6, 6)), requires_grad=True)
F.relu(F.batch_norm(F.conv2d(x, Tensor(np.ones((2, 1, 3, 3)))), None, None, training=True)).sum().backward()
from cnnlab.functional import _backend
compiled = _backend.compiled_kernels(_numba_kernels, _numba_direct, _numba_direct_grad_w, _numba_norm, _numba_pool,
                                     _numba_correlate)
print(json.dumps({"c": c.tolist(), "pool": y.tolist(), "compiled": compiled}))
"""


def test_lecture_example_compiles_nothing():
    if not _backend.numba_available():
        pytest.skip("needs numba: without it nothing is ever compiled")
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("CNNLAB_BACKEND", None)
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, check=True,
                          timeout=120)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["c"] == [[2, 0], [3, 5]]
    assert result["pool"] == [[[[5]]]]
    assert result["compiled"] == []


@pytest.mark.parametrize("value, disabled", [(None, False), ("1", True), ("yes", True), ("0", False),
                                             ("false", False), (" No ", False), ("", False)])
def test_the_environment_switch_is_read_as_it_is_now(monkeypatch, value, disabled):
    """CNNLAB_DISABLE_NUMBA is read on every call (through os.environ's own mapping), so a change
    made while the process runs takes effect at once."""
    monkeypatch.delenv("CNNLAB_DISABLE_NUMBA", raising=False)
    assert not _backend._disabled_by_env()
    if value is not None:
        monkeypatch.setenv("CNNLAB_DISABLE_NUMBA", value)
    assert _backend._disabled_by_env() is disabled
    assert (_backend.get_backend() == "numpy") if disabled else True
    monkeypatch.delenv("CNNLAB_DISABLE_NUMBA", raising=False)
    assert not _backend._disabled_by_env()
