"""``cnnlab bench``: cnnlab against PyTorch (and SciPy), side by side in one run (see :mod:`cnnlab.bench`)."""

from __future__ import annotations

import argparse
from typing import Any

from cnnlab.cli._common import positive_int


def add_bench(sub: Any) -> None:
    """Declare ``cnnlab bench``; its options are those of ``python -m cnnlab.bench``."""
    p = sub.add_parser(
        "bench", help="speed against PyTorch and SciPy, measured side by side",
        description="Run each workload (conv, pooling, BatchNorm, large-kernel correlation, training steps) with "
                    "cnnlab and PyTorch interleaved in one process: median time, spread, the ratio peer time / "
                    "cnnlab time (higher is better for cnnlab), GFLOP/s and the share of the machine's GEMM rate "
                    "measured in the same run. Needs torch (pip install torch==2.13.0).",
    )
    p.add_argument("--repeats", type=positive_int, default=7, metavar="N", help="timed rounds per workload (median)")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N", help="threads for BLAS, Numba and torch")
    p.add_argument("--only", default=None, metavar="TEXT", help="run the workloads whose name contains TEXT")
    p.add_argument("--no-training", action="store_true", help="skip the end-to-end training steps")
    p.add_argument("--no-memory", action="store_true",
                   help="skip the peak-memory measurement of the training steps (child processes)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(run=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    from cnnlab.bench import main

    argv = ["--repeats", str(args.repeats)]
    argv += [] if args.threads is None else ["--threads", str(args.threads)]
    argv += [] if args.only is None else ["--only", args.only]
    argv += ["--no-training"] * args.no_training + ["--no-memory"] * args.no_memory + ["--json"] * args.json
    return main(argv)
