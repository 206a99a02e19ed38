"""The ``malloc`` settings ``import cnnlab`` makes (cnnlab/functional/_malloc.py), checked in fresh interpreters
by what they are for: a freed array's memory is reused, not faulted in again."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab.functional import _malloc

SRC = str(Path(__file__).resolve().parents[1] / "src")
GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# A "step" holds two 24 MiB arrays at once and then frees them; report the page faults of the
# third step.  With glibc's own dynamic thresholds (raised to 24 MiB, the trim threshold to twice
# that, by the first step's frees) the 48 MiB freed at the heap's top is handed back to the kernel
# after every step and faulted in again by the next; with cnnlab's settings the third step reuses
# the memory of the second.
_PROBE = """
import resource, json
{imports}
import numpy as np
def round_():
    a = np.ones(24 << 18, dtype=np.float32)
    b = np.ones(24 << 18, dtype=np.float32)
    del a, b
round_()
round_()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
round_()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
import cnnlab.functional._malloc as m
print(json.dumps({{"faults": faults, "tuned": m.tuned()}}))
"""


def _probe(imports: str, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("CNNLAB_MALLOC", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
    environ.update(env, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", _PROBE.format(imports=imports)], capture_output=True,
                         text=True, env=environ, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="the settings are glibc's")
def test_import_cnnlab_keeps_freed_arrays_for_reuse():
    tuned = _probe("import cnnlab")
    assert tuned["tuned"] is True
    pages = (48 << 20) // 4096
    # the third step reuses memory: far fewer faults than the 12,288 pages it touches
    assert tuned["faults"] < pages // 10


@pytest.mark.skipif(not GLIBC, reason="the settings are glibc's")
@pytest.mark.parametrize("env", [{"CNNLAB_MALLOC": "default"}, {"MALLOC_TRIM_THRESHOLD_": "131072"},
                                 {"MALLOC_MMAP_THRESHOLD_": "131072"}])
def test_the_users_choice_wins(env):
    # opting out, or setting either glibc variable, leaves malloc as glibc and the user set it up
    assert _probe("import cnnlab", **env)["tuned"] is False


@pytest.mark.skipif(not GLIBC, reason="the settings are glibc's")
def test_opting_out_keeps_glibcs_behaviour():
    # the measurement the setting is for: without it the step's memory is faulted in again (fewer
    # faults than pages where the kernel backs the arrays with 2 MiB pages)
    default = _probe("import cnnlab", CNNLAB_MALLOC="default")
    assert default["faults"] >= 10 * max(1, _probe("import cnnlab")["faults"])


@pytest.mark.parametrize(("env", "expected"), [
    ({}, True),
    ({"CNNLAB_MALLOC": "default"}, False),
    ({"CNNLAB_MALLOC": "off"}, False),
    ({"CNNLAB_MALLOC": "on"}, True),
    ({"MALLOC_MMAP_THRESHOLD_": "65536"}, False),
    ({"MALLOC_TRIM_THRESHOLD_": "65536"}, False),
])
def test_wanted_reads_the_environment(env, expected):
    assert _malloc.wanted(env) is expected
