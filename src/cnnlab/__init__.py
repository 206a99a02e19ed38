"""cnnlab: convolutional neural networks from first principles, exact, explained and fast."""

from cnnlab import functional
from cnnlab.autograd import Tensor, enable_grad, is_grad_enabled, no_grad, tensor

__version__ = "0.1.0"

__all__ = [
    "Tensor",
    "__version__",
    "enable_grad",
    "functional",
    "is_grad_enabled",
    "no_grad",
    "tensor",
]
