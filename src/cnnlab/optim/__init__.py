"""Optimizers and learning-rate schedulers with PyTorch's update rules, on NumPy arrays.

A parameter is any object with a floating-point NumPy array in ``.data`` (updated in place) and
a gradient array or ``None`` in ``.grad``.
"""

from cnnlab.optim.adam import Adam, AdamW
from cnnlab.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, OneCycleLR, StepLR
from cnnlab.optim.optimizer import Optimizer
from cnnlab.optim.sgd import SGD

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "LRScheduler",
    "StepLR",
    "CosineAnnealingLR",
    "OneCycleLR",
]
