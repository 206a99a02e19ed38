"""cnnlab: convolutional neural networks from first principles, exact, explained and fast."""

from cnnlab import functional

__version__ = "0.1.0"

__all__ = ["functional", "__version__"]
