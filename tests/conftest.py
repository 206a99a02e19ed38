"""Shared test configuration: hypothesis profiles, and a seed for every random generator.

No test may depend on unseeded randomness.  Before every test, :func:`seed_every_generator`
seeds Python's ``random``, NumPy's global generator, cnnlab's default generator (the one layers
and dropout draw from) and, if a test already imported it, torch's, with a seed derived from
the test's id: a test sees the same numbers whatever runs before it (pytest-randomly's random
order included) and whichever process runs it.

Hypothesis is derandomized by default (its examples are a function of the test), so a property
test cannot fail on one run and pass on the next.  ``HYPOTHESIS_PROFILE=explore`` turns on random
exploration with more examples, for a search by hand; a failure found there is then pinned with
``@example``.
"""

from __future__ import annotations

import os
import random
import sys
import zlib

import numpy as np
import pytest
from hypothesis import settings

import cnnlab

settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True, print_blob=True)
settings.register_profile("dev", max_examples=30, deadline=None, derandomize=True, print_blob=True)
settings.register_profile("explore", max_examples=500, deadline=None, derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


def _seed_for(nodeid: str) -> int:
    return zlib.crc32(nodeid.encode())


@pytest.fixture(autouse=True)
def seed_every_generator(request):
    """Seed every generator a test might draw from (see the module docstring)."""
    seed = _seed_for(request.node.nodeid)
    random.seed(seed)
    np.random.seed(seed)
    cnnlab.manual_seed(seed)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)
    return seed


@pytest.fixture(autouse=True)
def compiled_kernels_on_small_arrays(monkeypatch):
    """Let the compiled kernels run on the suite's small arrays too.

    By default the 'auto' backend keeps tiny calls on NumPy (``_backend.COMPILE_MIN_WORK``) so
    that nobody waits for a compiler on a 3 x 3 example; the tests' arrays are mostly tiny, and
    without this every Numba kernel would go untested.  ``test_backend_threshold.py`` checks the
    threshold itself.
    """
    from cnnlab.functional import _backend

    monkeypatch.setattr(_backend, "COMPILE_MIN_WORK", 0)


@pytest.fixture(autouse=True)
def no_compile_helpers(monkeypatch):
    """No ``cnnlab train`` in a test starts the process that compiles kernels ahead
    (:mod:`cnnlab.training._warmup`): dozens of tiny runs would each start one.
    ``tests/training/test_warmup.py`` turns it back on where it tests it."""
    monkeypatch.setenv("CNNLAB_WARMUP", "0")
