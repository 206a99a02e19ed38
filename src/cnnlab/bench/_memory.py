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


# A child's timed steps run for at least this long (and at least ``timed`` of them): ten LeNet-5
# steps were 70-100 ms, and one slow spell of the shared machine moved their median by a tenth.
MIN_TIMED_SECONDS = 0.6
MAX_TIMED_STEPS = 400


def available() -> bool:
    """Whether this system can reset and read the peak resident memory (Linux ``/proc``)."""
    return Path("/proc/self/clear_refs").exists() and Path("/proc/self/status").exists()


def measure_in_child(model: str, library: str, threads: int, steps: int = 3, timed: int = 10,
                     timeout: float = 300, seconds: float = MIN_TIMED_SECONDS) -> dict[str, float] | None:
    """Run ``model``'s training step in ``library`` (``'cnnlab'`` or ``'torch'``) alone in a child
    process: ``{"peak_growth_mib": ..., "step_s": ...}`` (the memory of ``steps`` steps, then the
    median time of at least ``timed`` more, run until they have taken ``seconds`` in all, at most
    :data:`MAX_TIMED_STEPS`), or None where it cannot be measured.

    Alone means without the other library in the process: in the interleaved run both share one
    OpenMP runtime (torch loads its own, and Numba then uses it), set up as torch wants it.
    """
    if not available():
        return None
    cmd = [sys.executable, "-m", "cnnlab.bench._memory", model, library, str(threads), str(steps), str(timed),
           str(seconds)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        return {"peak_growth_mib": float(result["peak_growth_mib"]), "step_s": float(result["step_s"])}
    except (subprocess.SubprocessError, ValueError, KeyError, IndexError, TypeError, OSError):
        return None


def alternating_children(model: str, threads: int, rounds: int) -> tuple[dict, dict]:
    """``(cnnlab, torch)``: :func:`measure_in_child` run ``rounds`` times for each library,
    alternating, each reading the median of its rounds' step times and the least of their peak
    growths (the reading least disturbed by the machine; the same rule for both); ``{}`` where a
    library's children all failed."""
    readings: dict[str, list[dict]] = {"cnnlab": [], "torch": []}
    for _ in range(rounds):
        for library, found in readings.items():
            found.append(measure_in_child(model, library, threads) or {})
    return _combined(readings["cnnlab"]), _combined(readings["torch"])


def _combined(readings: list[dict]) -> dict:
    import statistics

    steps = [r["step_s"] for r in readings if r.get("step_s")]
    peaks = [r["peak_growth_mib"] for r in readings if r.get("peak_growth_mib") is not None]
    if not steps and not peaks:
        return {}
    return {"step_s": statistics.median(steps) if steps else None, "peak_growth_mib": min(peaks) if peaks else None}


def _child(model: str, library: str, threads: int, steps: int, timed: int, seconds: float) -> dict[str, float]:
    import statistics
    import time

    from cnnlab.bench._training import cnnlab_step, torch_step
    from cnnlab.functional import _backend

    limit = _backend.COMPILE_MIN_WORK
    if library == "cnnlab":
        _backend.set_num_threads(threads)
        warm, step = cnnlab_step(model, 2), cnnlab_step(model)
        _backend.COMPILE_MIN_WORK = 0  # load every kernel while warming, small batch or not
    else:
        import torch

        torch.set_num_threads(threads)
        warm, step = torch_step(torch, model, 2), torch_step(torch, model)
    for _ in range(2):
        warm()
    if library == "cnnlab":
        _backend.start_threads()  # (its helper threads and their compiled watch loop, as torch's pool)
    _backend.COMPILE_MIN_WORK = limit
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    for _ in range(steps):
        step()
    peak = _status_kib("VmHWM")
    times: list[float] = []
    while len(times) < MAX_TIMED_STEPS and (len(times) < timed or sum(times) < seconds):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"before_mib": before / 1024, "peak_mib": peak / 1024, "peak_growth_mib": max(0, peak - before) / 1024,
            "step_s": statistics.median(times) if times else None}


if __name__ == "__main__":  # pragma: no cover - run as a child by measure_in_child
    name, lib = sys.argv[1], sys.argv[2]
    n_threads, n_steps, n_timed = (int(v) for v in sys.argv[3:6])
    print(json.dumps(_child(name, lib, n_threads, n_steps, n_timed, float(sys.argv[6]))))
