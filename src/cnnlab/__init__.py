"""cnnlab: convolutional neural networks from first principles, exact, explained and fast."""

from cnnlab import functional, nn, optim  # noqa: E402
from cnnlab._version import __version__
from cnnlab.autograd import Tensor, enable_grad, is_grad_enabled, no_grad, tensor  # noqa: E402
from cnnlab.checkpoint import (  # noqa: E402
    CheckpointError,
    load,
    load_metadata,
    load_model,
    load_weights,
    save,
)
from cnnlab.functional import get_backend, get_num_threads, set_backend, set_num_threads  # noqa: E402
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
    "tensor",
]
