"""Numba's thread pool keeps its own OpenMP runtime when PyTorch is imported later in the process
(cnnlab.functional._backend: start_threads and _quiet_openmp_threads), and also when PyTorch came
first (_own_symbols_first), checked in fresh
interpreters from the dynamic linker's own record of where Numba's OpenMP calls were bound."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

numba = pytest.importorskip("numba")
pytest.importorskip("torch")

SRC = str(Path(__file__).resolve().parents[1] / "src")

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="LD_DEBUG is glibc's")


def _gomp_parallel_bound_to(code: str, tmp_path: Path) -> list[str]:
    """The libraries that Numba's ``omppool`` had its ``GOMP_parallel`` calls bound to."""
    environ = {k: v for k, v in os.environ.items() if k not in ("CNNLAB_DISABLE_NUMBA", "CNNLAB_BACKEND")}
    environ.update(PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), LD_DEBUG="bindings",
                   LD_DEBUG_OUTPUT=str(tmp_path / "ld"), NUMBA_THREADING_LAYER="omp")
    subprocess.run([sys.executable, "-c", code], env=environ, timeout=300, check=True, capture_output=True)
    targets = []
    for log in tmp_path.glob("ld.*"):
        for line in log.read_text(errors="replace").splitlines():
            if "omppool" in line.split(" to ")[0] and "`GOMP_parallel'" in line:
                targets.append(line.split(" to ")[1].split(" [")[0])
    return targets


RUN_OP = "import numpy as np; cnnlab.functional.conv2d(np.ones((64, 32, 30, 30), np.float32), " \
         "np.ones((64, 32, 3, 3), np.float32), method='direct')"


@pytest.mark.parametrize("first", ["cnnlab.start_threads()", RUN_OP])
def test_numba_keeps_its_own_openmp_when_torch_comes_after(first, tmp_path):
    targets = _gomp_parallel_bound_to(f"import cnnlab, cnnlab.functional; {first}; import torch; {RUN_OP}", tmp_path)
    assert targets, "Numba's OpenMP pool made no GOMP_parallel call"
    assert all("torch" not in t for t in targets), targets


@pytest.mark.parametrize("first", ["cnnlab.start_threads()", RUN_OP])
def test_numba_keeps_its_own_openmp_when_torch_came_first(first, tmp_path):
    # torch puts its own GNU OpenMP into the global namespace; Numba's pool must still bind to
    # the one loaded for it (whose idle threads do not spin), not to torch's
    code = ("import torch; assert any('torch' in line and 'libgomp' in line for line in open('/proc/self/maps')); "
            f"import cnnlab, cnnlab.functional; {first}; {RUN_OP}")
    targets = _gomp_parallel_bound_to(code, tmp_path)
    assert targets, "Numba's OpenMP pool made no GOMP_parallel call"
    assert all("torch" not in t for t in targets), targets


def test_the_bench_starts_cnnlabs_threads_before_it_imports_torch(tmp_path):
    code = ("from cnnlab.bench._runner import main; main(['--only', 'correlate 512x512 with 5x5', '--repeats', '1', "
            "'--no-training', '--no-memory', '--json'])")
    targets = _gomp_parallel_bound_to(code, tmp_path)
    assert targets and all("torch" not in t for t in targets), targets


def test_start_threads_reports_numba_and_respects_the_numpy_backend():
    import cnnlab

    previous = cnnlab.set_backend("numpy")
    try:
        assert cnnlab.start_threads() is False
    finally:
        cnnlab.set_backend(previous)
    assert cnnlab.start_threads() is True


@pytest.mark.parametrize(("env", "expected"), [({}, "None"), ({"GOMP_SPINCOUNT": "77"}, "77")])
def test_the_spin_setting_is_not_left_for_torch_or_child_processes(env, expected):
    # cnnlab's GOMP_SPINCOUNT is meant for Numba's OpenMP only: set while that library loads, then
    # removed (a user's own value stays), so torch imported later keeps its default
    environ = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY",
                                                                "CNNLAB_DISABLE_NUMBA", "CNNLAB_BACKEND")}
    environ.update(env, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), NUMBA_THREADING_LAYER="omp")
    code = ("import os, cnnlab; assert cnnlab.start_threads(); "
            "assert any('libgomp' in line for line in open('/proc/self/maps')); "
            "print(os.environ.get('GOMP_SPINCOUNT'))")
    out = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=300,
                         check=True)
    assert out.stdout.strip().splitlines()[-1] == expected
