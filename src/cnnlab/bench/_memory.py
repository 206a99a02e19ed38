"""Peak memory of a training step, per library, each measured in a fresh child process.

The child builds the same model, optimizer and batch as :mod:`cnnlab.bench._training`, first
runs two steps of a copy of the model on a batch of 2 (this loads every kernel, compiled code
included, while needing almost no memory for data), then resets the kernel's record of its peak
resident memory (``VmHWM``, reset by writing ``5`` to ``/proc/self/clear_refs``) and runs a few
steps at the real batch size.  What it reports is the growth of that peak over the resident
memory before those steps: the memory the steps themselves needed (activations, saved tensors,
gradients, optimizer state, scratch), not the size of the imported libraries.  Both libraries
are measured the same way.  Linux only; elsewhere the measurement is skipped.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")


def available() -> bool:
    """Whether this system can reset and read the peak resident memory (Linux ``/proc``)."""
    return Path("/proc/self/clear_refs").exists() and Path("/proc/self/status").exists()


def measure_in_child(model: str, library: str, threads: int, steps: int = 3, timeout: float = 300) -> float | None:
    """Peak memory growth (MiB) of ``steps`` training steps of ``model`` in ``library``
    (``'cnnlab'`` or ``'torch'``), run in a child process; None where it cannot be measured."""
    if not available():
        return None
    cmd = [sys.executable, "-m", "cnnlab.bench._memory", model, library, str(threads), str(steps)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
        return float(json.loads(done.stdout.strip().splitlines()[-1])["peak_growth_mib"])
    except (subprocess.SubprocessError, ValueError, KeyError, IndexError, OSError):
        return None


def _child(model: str, library: str, threads: int, steps: int) -> dict[str, float]:
    import torch

    from cnnlab.bench._training import training_pairs
    from cnnlab.functional import _backend

    _backend.set_num_threads(threads)
    torch.set_num_threads(threads)
    side = 1 if library == "cnnlab" else 2
    warm = training_pairs(torch, only=model, batch_size=2)[0][side]
    step = training_pairs(torch, only=model)[0][side]
    for _ in range(2):
        warm()
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    for _ in range(steps):
        step()
    peak = _status_kib("VmHWM")
    return {"before_mib": before / 1024, "peak_mib": peak / 1024, "peak_growth_mib": max(0, peak - before) / 1024}


if __name__ == "__main__":  # pragma: no cover - run as a child by measure_in_child
    name, lib, n_threads, n_steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    print(json.dumps(_child(name, lib, n_threads, n_steps)))
