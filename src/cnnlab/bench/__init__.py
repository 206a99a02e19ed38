"""Side-by-side benchmark of cnnlab against PyTorch (and SciPy where it has the op).

``python -m cnnlab.bench`` (or :func:`main`) runs each workload of issue 9 with both libraries in
one process, interleaved, float32, the same thread count, and prints per workload the median
time, the spread, the ratio ``peer time / cnnlab time`` (higher is better for cnnlab), cnnlab's
GFLOP/s and its share of the machine's float32 GEMM rate measured in the same run (the fastest
of its products), for the median round and for cnnlab's fastest round.  GFLOP/s counts the
defining sum's multiply-adds (twice): a 3x3 layer that the Winograd method computes with 2.25
times fewer products (``method='winograd'``) can read more than 100% of the ceiling.
"""

from cnnlab.bench._runner import main, run

__all__ = ["main", "run"]
