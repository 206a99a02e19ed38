"""cnnlab: convolutional neural networks from first principles, exact, explained and fast."""

import os as _os
import sys as _sys

# OpenBLAS, NumPy's BLAS, keeps its worker threads spinning for a long while after every matrix
# product (OPENBLAS_THREAD_TIMEOUT, default 2**28 cycles, about a tenth of a second).  On a machine
# with few cores they take the cores the next operator needs: a compiled pooling kernel run right
# after a GEMM took 4.0 ms instead of 2.2 ms on 2 cores, and PyTorch run in the same process after
# cnnlab 150 ms per convnet step instead of 85 ms.  OpenBLAS reads the timeout once, when it loads,
# so it is set here (2**4 cycles, its smallest: the threads sleep at once) only while NumPy is not
# loaded yet and the user has not set it; docs/BENCHMARKS.md says how to get it in every case.
if "numpy" not in _sys.modules:
    _os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

# Freed arrays are kept for the next training step instead of being handed back to the kernel and
# faulted in again (a third of a convnet step's time on 2 cores): see cnnlab/functional/_malloc.py.
from cnnlab.functional import _malloc  # noqa: E402

if _malloc.wanted():
    _malloc.tune()

from cnnlab import functional, nn, optim  # noqa: E402
from cnnlab._version import __version__  # noqa: E402
from cnnlab.autograd import Tensor, enable_grad, is_grad_enabled, no_grad, tensor  # noqa: E402
from cnnlab.checkpoint import (  # noqa: E402
    CheckpointError,
    load,
    load_metadata,
    load_model,
    load_weights,
    save,
)
from cnnlab.functional import (  # noqa: E402
    get_backend,
    get_num_threads,
    set_backend,
    set_num_threads,
    start_threads,
)
from cnnlab.random import default_generator, manual_seed  # noqa: E402

__all__ = [
    "CheckpointError",
    "Tensor",
    "__version__",
    "default_generator",
    "enable_grad",
    "functional",
    "get_backend",
    "get_num_threads",
    "is_grad_enabled",
    "load",
    "load_metadata",
    "load_model",
    "load_weights",
    "manual_seed",
    "nn",
    "no_grad",
    "optim",
    "save",
    "set_backend",
    "set_num_threads",
    "start_threads",
    "tensor",
]
