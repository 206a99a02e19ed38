"""Keep freed memory for reuse: glibc's ``malloc`` settings for a process that trains CNNs.

A training step allocates and frees the same large arrays (im2col columns, activations,
gradients: 1-30 MB each) every step.  With glibc's default settings, arrays above its mmap
threshold are mapped fresh from the kernel on each allocation, and a freed heap top above its
trim threshold is handed back; either way the next step touches new pages, and the kernel
zero-fills every one of them on its first write (a page fault, a few microseconds each).  On the
2-core machine of docs/BENCHMARKS.md the ``convnet`` training step took 9,000-10,000 page faults
per step, about a third of its time (122-130 ms per step; 84-92 ms with the settings below).
glibc raises both thresholds by itself as it sees large frees, but only up to the largest array
freed so far and with the trim threshold at twice that, which a step's mix of sizes keeps
crossing.

:func:`tune` fixes both thresholds, as the environment variables ``MALLOC_MMAP_THRESHOLD_`` and
``MALLOC_TRIM_THRESHOLD_`` would: arrays up to :data:`MMAP_THRESHOLD` come from the heap, and up
to :data:`TRIM_THRESHOLD` of free heap top is kept for reuse instead of being returned.  The
process then keeps the memory of its largest step (its peak is unchanged).  ``import cnnlab``
calls it, on glibc systems only, unless either variable is set (the user's choice wins) or
``CNNLAB_MALLOC=default`` asks for glibc's own behaviour.
"""

from __future__ import annotations

import ctypes
import os
import sys

# glibc's largest allowed mmap threshold on 64-bit systems (HEAP_MAX_SIZE / 2)
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 256 << 20
# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_tuned = False


def tuned() -> bool:
    """Whether :func:`tune` changed this process's ``malloc`` settings."""
    return _tuned


def wanted(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Whether ``import cnnlab`` should tune ``malloc``: not when the user set either glibc
    variable or ``CNNLAB_MALLOC=default``."""
    if environ.get("CNNLAB_MALLOC", "").strip().lower() in ("default", "0", "off", "no"):
        return False
    return "MALLOC_MMAP_THRESHOLD_" not in environ and "MALLOC_TRIM_THRESHOLD_" not in environ


def tune() -> bool:
    """Set glibc's mmap and trim thresholds (see the module docstring); True when both were set.

    Does nothing (False) on systems whose C library is not glibc.
    """
    global _tuned
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    ok = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    _tuned = _tuned or ok
    return ok
