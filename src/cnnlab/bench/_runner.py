"""Timing loop, report and command line of ``python -m cnnlab.bench``."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from typing import Any

import numpy as np

from cnnlab.functional import _backend

# Child processes per library for the "each alone" columns, cnnlab's and torch's alternating, so
# that a slow spell of the shared machine falls on both (one child each moved single ratios by
# 0.3 between runs minutes apart; with two, LeNet-5 read 0.88-1.11 in four runs of one code).
ALONE_ROUNDS = 3


def _time(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def gemm_rate(size: int = 1024, repeats: int = 11) -> float:
    """The float32 GEMM rate (GFLOP/s) of NumPy's BLAS on this machine, now: the ceiling.

    The fastest of ``repeats`` products: a ceiling is the rate the machine can reach, and on a
    shared machine the slower rounds only measure the neighbours (a median of 5 once read 95
    GFLOP/s where the same command read 148-158 in the runs around it, and put the 56x56 layer
    at 108% of it)."""
    call, flops = gemm_probe(size)
    return flops / float(np.min(_time(call, repeats))) / 1e9


# How long :func:`settle` sleeps between its looks, how much CPU time other threads may use in
# that time for the process to count as quiet, and the longest it waits.
SETTLE_STEP_S = 0.002
SETTLE_BUSY_S = 0.0002
SETTLE_MAX_S = 0.5


def settle(step: float = SETTLE_STEP_S, busy: float = SETTLE_BUSY_S, limit: float = SETTLE_MAX_S) -> float:
    """Wait until no other thread of this process is running; returns the seconds waited.

    With its default settings, torch's OpenMP library (GNU libgomp) keeps its threads spinning
    after a call, waiting for the next parallel region, for about 10 ms of CPU time
    (``GOMP_SPINCOUNT``).  A contender timed right after a torch call then shares the cores with
    that spinning thread: measured on the 2-core machine of docs/BENCHMARKS.md, in a process
    that imported torch without starting cnnlab's threads first, cnnlab's 14x14 layer
    (forward+backward) used 8 ms more CPU time per call, and took 30.7 instead of 26.1 ms, when
    each call followed one of torch's.  So every timed call starts once the process has been quiet
    for ``step`` seconds: no other thread in the running state (on Linux, its state in
    ``/proc/self/task``), and the process's CPU time (``time.process_time``, all of its threads)
    grown by at most ``busy`` seconds while the main thread slept.

    The CPU time alone was not enough: the kernel adds a spinning thread's time to the process's
    only when that thread is next switched out or its core's timer ticks, so the sum can stand
    still for milliseconds while it spins.  Seen on that machine: torch's worker thread ran for
    about 8 ms after each call, a settle by CPU time returned after its first 2 ms every time,
    and a 10x10 layer (N1 C256 -> 256 k5) then took 11.5-11.8 ms instead of 7.7-8.7, with 8 ms
    more CPU time, all of it on torch's thread."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        before = time.process_time()
        time.sleep(step)
        if time.process_time() - before <= busy and not others_running():
            break
    return time.perf_counter() - start


def others_running() -> bool:
    """Whether a thread of this process other than the calling one is running or waiting for a
    core now (state ``R`` in ``/proc/self/task/<id>/stat``); False where that cannot be read
    (not Linux)."""
    me = threading.get_native_id()
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return False
    for task in tasks:
        if task == str(me):
            continue
        try:
            with open(f"/proc/self/task/{task}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # (a thread that ended meanwhile)
        if fields and fields[0] == "R":
            return True
    return False


def _interleaved(fns: dict[str, Any], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Each contender's call times: ``repeats`` rounds of one call of every contender (so that a
    slow spell of a busy machine falls on all), each call started on a settled process
    (:func:`settle`), and each round in another order (round ``r`` starts with the ``r``-th
    contender), so that no contender always runs after the same one, in caches it left."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(repeats):
        first = r % len(names) if names else 0
        for name in names[first:] + names[:first]:
            settle()  # (no contender's call shares the cores with the threads of the one before)
            times[name] += _time(fns[name], 1)
    return times


# The name of the GEMM product timed among each workload's contenders (not a peer): the ceiling
# of the rounds the workload ran in.
PROBE = "gemm ceiling"


def gemm_probe(size: int = 1024) -> tuple[Any, float]:
    """``(call, flops)``: a float32 ``size`` x ``size`` product of NumPy's BLAS (the ceiling's), to
    be timed among a workload's contenders: its median rate is the ceiling of the same rounds, on
    a machine whose load changes from minute to minute (the GEMM rate at the start of a run, the
    fastest of 11, read 358-385 GFLOP/s in runs on this machine whose layers' medians took up to
    twice their quiet times).  :func:`gemm_rate` times the same product."""
    a = np.random.default_rng(0).standard_normal((size, size)).astype(np.float32)
    a @ a
    return (lambda: a @ a), 2.0 * size**3


def _training_workloads(torch):
    from cnnlab.bench._training import training_pairs

    return training_pairs(torch)


def run(repeats: int = 7, threads: int | None = None, only: str | None = None, training: bool = True,
        progress: bool = True, memory: bool = True) -> dict[str, Any]:
    """Run every workload; returns the machine-readable result that ``--json`` prints."""
    # cnnlab's thread pool first, so that Numba binds to its own OpenMP runtime and torch (imported
    # next) keeps its own: see cnnlab.functional._backend._quiet_openmp_threads
    _backend.start_threads()
    import torch

    from cnnlab.bench._workloads import conv_workloads, other_workloads

    threads = threads or _backend.get_num_threads()
    _backend.set_num_threads(threads)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    ceiling = gemm_rate()
    workloads = conv_workloads(torch, rng) + other_workloads(torch, rng)
    if only:
        workloads = [w for w in workloads if only in w.name]
    rows = []
    probe, probe_flops = gemm_probe()
    for i, w in enumerate(workloads):
        if progress:
            print(f"[{i + 1}/{len(workloads)}] {w.name}", file=sys.stderr, flush=True)
        times = _interleaved({"cnnlab": w.ours, **w.peers, PROBE: probe}, repeats)
        ours = float(np.median(times["cnnlab"]))
        peers = {k: float(np.median(v)) for k, v in times.items() if k not in ("cnnlab", PROBE)}
        best_peer = min(peers, key=peers.get)
        rounds_ceiling = probe_flops / float(np.median(times[PROBE])) / 1e9
        gflops = w.flops / ours / 1e9
        rows.append({
            "workload": w.name, "cnnlab_s": ours, "cnnlab_spread_s": float(np.ptp(times["cnnlab"])),
            "peers_s": peers, "best_peer": best_peer, "ratio": peers[best_peer] / ours,
            "gflops": gflops, "cnnlab_best_s": float(np.min(times["cnnlab"])),
            # the median's rate over the median rate of the GEMM timed in the same rounds
            "rounds_ceiling_gflops": rounds_ceiling, "rounds_ceiling_share": gflops / rounds_ceiling,
        })
    # measured again after the layers, the higher of the two readings is the ceiling of the run
    ceiling = max(ceiling, gemm_rate())
    for row in rows:
        # the median's rate, and the fastest round's: the ceiling is a fastest round too
        row["ceiling_share"] = row["gflops"] / ceiling
        row["best_ceiling_share"] = row["gflops"] * row["cnnlab_s"] / row["cnnlab_best_s"] / ceiling
    steps = []
    if training and not only:
        for name, ours_step, peer_step in _training_workloads(torch):
            if progress:
                print(f"[training] {name}", file=sys.stderr, flush=True)
            times = _interleaved({"cnnlab": ours_step, "torch": peer_step}, max(repeats, 10), warmup=2)
            o, t = float(np.median(times["cnnlab"])), float(np.median(times["torch"]))
            row = {"model": name, "cnnlab_steps_per_s": 1 / o, "torch_steps_per_s": 1 / t, "ratio": t / o}
            if memory:
                from cnnlab.bench import _memory

                ours_alone, torch_alone = _memory.alternating_children(name, threads, ALONE_ROUNDS)
                om, tm = ours_alone.get("peak_growth_mib"), torch_alone.get("peak_growth_mib")
                os_, ts_ = ours_alone.get("step_s"), torch_alone.get("step_s")
                row.update({"cnnlab_peak_mib": om, "torch_peak_mib": tm,
                            "memory_ratio": om / tm if om and tm else None,
                            "alone_cnnlab_steps_per_s": 1 / os_ if os_ else None,
                            "alone_torch_steps_per_s": 1 / ts_ if ts_ else None,
                            "alone_ratio": ts_ / os_ if os_ and ts_ else None})
            steps.append(row)
    return {
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "threads": threads,
                    "numpy": np.__version__, "torch": torch.__version__, "numba": _backend.use_numba(),
                    "gemm_gflops": ceiling},
        "workloads": rows, "training": steps,
    }


def _print(result: dict[str, Any]) -> None:
    m = result["machine"]
    print(f"machine: {m['platform']}, {m['threads']} threads, numba={m['numba']}, "
          f"float32 GEMM {m['gemm_gflops']:.1f} GFLOP/s (the ceiling; a workload's GFLOP/s counts its "
          f"defining sum, which Winograd layers compute with fewer products)")
    print("(ceil%: the median's rate over the ceiling; best%: the fastest round's; rounds%: the median's over "
          "the median rate of a GEMM timed in the same rounds)")
    print(f"{'workload':58s} {'cnnlab ms':>10s} {'spread':>8s} {'best peer':>18s} {'ratio':>6s} "
          f"{'GFLOP/s':>8s} {'ceil%':>6s} {'best%':>6s} {'rounds%':>7s}")
    for r in result["workloads"]:
        print(f"{r['workload'][:58]:58s} {r['cnnlab_s'] * 1e3:10.2f} {r['cnnlab_spread_s'] * 1e3:8.2f} "
              f"{r['best_peer'][:18]:>18s} {r['ratio']:6.2f} {r['gflops']:8.1f} {100 * r['ceiling_share']:5.0f}% "
              f"{100 * r['best_ceiling_share']:5.0f}% {100 * r['rounds_ceiling_share']:6.0f}%")
    for s in result["training"]:
        line = (f"training {s['model']:14s} cnnlab {s['cnnlab_steps_per_s']:7.1f} steps/s   "
                f"torch {s['torch_steps_per_s']:7.1f} steps/s   ratio {s['ratio']:.2f}")
        if s.get("alone_ratio") is not None:
            line += f"   each alone: ratio {s['alone_ratio']:.2f}"
        if s.get("memory_ratio") is not None:
            line += (f"   peak memory of the steps: cnnlab {s['cnnlab_peak_mib']:.0f} MiB, torch "
                     f"{s['torch_peak_mib']:.0f} MiB ({s['memory_ratio']:.2f}x)")
        print(line)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m cnnlab.bench [--repeats N] [--threads N] [--only TEXT] [--json]``."""
    parser = argparse.ArgumentParser(prog="cnnlab bench", description=__doc__)
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds per workload (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="threads for BLAS, Numba and torch")
    parser.add_argument("--only", default=None, help="run the workloads whose name contains this text")
    parser.add_argument("--no-training", action="store_true", help="skip the end-to-end training steps")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the peak-memory measurement of the training steps (child processes)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    args = parser.parse_args(argv)
    _backend.start_threads()  # before torch is imported (see run)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("cnnlab bench: the peer library torch is not installed (pip install torch)", file=sys.stderr)
        return 2
    result = run(args.repeats, args.threads, args.only, not args.no_training, progress=True,
                 memory=not args.no_memory)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print(result)
    return 0
