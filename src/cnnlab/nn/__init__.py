"""Layers, containers, losses, initialisation and model summaries (``cnnlab.nn``).

Class names, constructor arguments, parameter names, default initialisation and state-dict keys
are PyTorch's, so a model written for ``torch.nn`` reads the same here and its state dict moves
between the two unchanged.
"""

from cnnlab.nn import init
from cnnlab.nn._summary import LayerSummary, ModelSummary, summary
from cnnlab.nn.activation import ELU, GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from cnnlab.nn.config import from_config, register_module, registered_modules
from cnnlab.nn.container import Residual, Sequential
from cnnlab.nn.conv import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from cnnlab.nn.dropout import Dropout
from cnnlab.nn.linear import Flatten, Identity, Linear
from cnnlab.nn.loss import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss
from cnnlab.nn.module import IncompatibleKeys, Module, Parameter, RemovableHandle
from cnnlab.nn.norm import BatchNorm1d, BatchNorm2d
from cnnlab.nn.pooling import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveAvgPool3d,
    AdaptiveMaxPool1d,
    AdaptiveMaxPool2d,
    AdaptiveMaxPool3d,
    AvgPool1d,
    AvgPool2d,
    AvgPool3d,
    MaxPool1d,
    MaxPool2d,
    MaxPool3d,
)

__all__ = [
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d", "AdaptiveMaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
    "BCEWithLogitsLoss", "BatchNorm1d", "BatchNorm2d", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d",
    "ConvTranspose2d", "ConvTranspose3d", "CrossEntropyLoss", "Dropout", "ELU", "Flatten", "GELU", "Identity",
    "IncompatibleKeys", "LayerSummary", "LeakyReLU", "Linear", "LogSoftmax", "MSELoss", "MaxPool1d", "MaxPool2d",
    "MaxPool3d", "ModelSummary", "Module", "NLLLoss", "Parameter", "ReLU", "RemovableHandle", "Residual", "Sequential",
    "Sigmoid", "Softmax", "Tanh", "from_config", "init", "register_module", "registered_modules", "summary",
]
