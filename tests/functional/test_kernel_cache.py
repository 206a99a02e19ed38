"""Numba's disk cache of cnnlab's kernels is keyed by every kernel file
(``_kernel_cache.stamp_kernel_caches``): a kernel inlines code from other files, and a change there
alone must not load the kernel compiled before it."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab.functional import _backend, _kernel_cache

pytestmark = pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")

ROOT = Path(__file__).resolve().parents[2]


def test_kernel_sources_are_the_files_kernels_inline_from():
    names = [os.path.basename(f) for f in _kernel_cache.kernel_sources()]
    assert names == sorted(names)
    for name in ("_numba_implicit.py", "_numba_panels.py", "_numba_simd.py", "_numba_kernels.py", "_team.py"):
        assert name in names
    assert all(os.path.isfile(f) for f in _kernel_cache.kernel_sources())
    assert "_backend.py" not in names and "_implicit.py" not in names  # (no kernels there)


def test_the_stamp_follows_every_kernel_files_contents(tmp_path, monkeypatch):
    files = [tmp_path / "_numba_a.py", tmp_path / "_numba_b.py"]
    for i, f in enumerate(files):
        f.write_text(f"x = {i}\n")
    monkeypatch.setattr(_kernel_cache, "kernel_sources", lambda: [str(f) for f in files])
    monkeypatch.setitem(_kernel_cache._state, "stamp_key", None)
    first = _kernel_cache.kernel_sources_stamp()
    assert _kernel_cache.kernel_sources_stamp() == first  # (unchanged: the same)
    files[1].write_text("x = 2\n")  # (one file changed, the same size)
    second = _kernel_cache.kernel_sources_stamp()
    assert second != first
    files[1].write_text("x = 1\n")
    os.utime(files[1], ns=(1, 1))  # (the old contents again, another time: the old stamp)
    assert _kernel_cache.kernel_sources_stamp() == first


def test_kernels_cached_with_every_kernel_files_stamp_and_other_functions_not(tmp_path):
    # in a fresh process with its own cache folder: one kernel compiled and cached; its index on
    # disk holds the stamp of all kernel files (Numba compares it on loading, and compiles anew
    # where it differs), and a cached Numba function outside cnnlab's kernel files keeps Numba's
    # own locator and stamp
    script = f"""
import json, sys, numpy as np
from cnnlab.functional import _kernel_cache, _numba_kernels
assert _numba_kernels.relu(np.arange(-4, 4, dtype=np.float32)).tolist() == [0, 0, 0, 0, 0, 1, 2, 3]
kernel = _numba_kernels._relu
sys.path.insert(0, {str(tmp_path)!r})
open({str(tmp_path / "other.py")!r}, "w").write(
    "import numba\\n@numba.njit(cache=True)\\ndef f(a):\\n    return a + 1\\n")
import other
other.f(1)
print(json.dumps([type(kernel._cache._impl.locator).__name__, type(other.f._cache._impl.locator).__name__,
                  _kernel_cache.kernel_sources_stamp()]))
"""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(ROOT / "src"))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    ours, theirs, stamp = json.loads(out.stdout.strip().splitlines()[-1])
    assert ours.startswith("CnnlabKernels") and not theirs.startswith("CnnlabKernels")
    indexes = {p.name: p for p in (tmp_path / "cache").rglob("*.nbi")}
    relu = [p for name, p in indexes.items() if name.startswith("_numba_kernels._relu-")]
    other = [p for name, p in indexes.items() if name.startswith("other.f-")]
    assert relu and other
    for path, keyed in ((relu[0], True), (other[0], False)):
        with open(path, "rb") as f:
            pickle.load(f)  # (Numba's version)
            source_stamp, _ = pickle.loads(f.read())
        assert (isinstance(source_stamp, tuple) and source_stamp[1] == stamp) is keyed
