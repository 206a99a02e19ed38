"""Every layer, as a pair (cnnlab layer, the equivalent PyTorch layer) with an input shape.

Used by the PyTorch parity tests and by the gradient checks.  The PyTorch constructors are
lambdas, so this module imports without torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cnnlab.nn as nn

from .helpers import torch

tnn = None if torch is None else torch.nn


@dataclass
class LayerCase:
    id: str
    make: Callable[[], nn.Module]
    make_torch: Callable[[], Any]
    shape: tuple[int, ...]
    # numerical gradient checks are slow: skip the biggest cases there
    gradcheck: bool = True


def _case(id: str, make: Callable, make_torch: Callable, shape: tuple, gradcheck: bool = True) -> LayerCase:
    return LayerCase(id, make, make_torch, shape, gradcheck)


CASES = [
    # convolutions
    _case("Conv1d-stride-pad", lambda: nn.Conv1d(3, 4, 3, stride=2, padding=1),
          lambda: tnn.Conv1d(3, 4, 3, stride=2, padding=1), (2, 3, 9)),
    _case("Conv1d-groups-dilation-circular", lambda: nn.Conv1d(4, 4, 3, padding=2, dilation=2, groups=2,
                                                               padding_mode="circular"),
          lambda: tnn.Conv1d(4, 4, 3, padding=2, dilation=2, groups=2, padding_mode="circular"), (2, 4, 10)),
    _case("Conv2d", lambda: nn.Conv2d(3, 4, 3), lambda: tnn.Conv2d(3, 4, 3), (2, 3, 6, 6)),
    _case("Conv2d-rect-nobias", lambda: nn.Conv2d(2, 4, (3, 2), stride=(2, 1), padding=(1, 0), bias=False),
          lambda: tnn.Conv2d(2, 4, (3, 2), stride=(2, 1), padding=(1, 0), bias=False), (2, 2, 7, 5)),
    _case("Conv2d-same-reflect-dilated", lambda: nn.Conv2d(2, 3, 3, padding="same", dilation=2, padding_mode="reflect"),
          lambda: tnn.Conv2d(2, 3, 3, padding="same", dilation=2, padding_mode="reflect"), (2, 2, 6, 6)),
    _case("Conv2d-same-even-depthwise-replicate",
          lambda: nn.Conv2d(4, 4, 4, padding="same", groups=4, padding_mode="replicate"),
          lambda: tnn.Conv2d(4, 4, 4, padding="same", groups=4, padding_mode="replicate"), (1, 4, 5, 5)),
    _case("Conv2d-valid-unbatched", lambda: nn.Conv2d(2, 2, 2, padding="valid"),
          lambda: tnn.Conv2d(2, 2, 2, padding="valid"), (2, 4, 4)),
    _case("Conv3d", lambda: nn.Conv3d(2, 3, 2, stride=2, padding=1), lambda: tnn.Conv3d(2, 3, 2, stride=2, padding=1),
          (1, 2, 4, 4, 4)),
    _case("ConvTranspose1d", lambda: nn.ConvTranspose1d(3, 2, 3, stride=2, padding=1, output_padding=1),
          lambda: tnn.ConvTranspose1d(3, 2, 3, stride=2, padding=1, output_padding=1), (2, 3, 5)),
    _case("ConvTranspose2d-groups",
          lambda: nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1, groups=2),
          lambda: tnn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1, groups=2), (2, 4, 3, 3)),
    _case("ConvTranspose2d-dilated-nobias", lambda: nn.ConvTranspose2d(2, 3, 2, dilation=2, bias=False),
          lambda: tnn.ConvTranspose2d(2, 3, 2, dilation=2, bias=False), (1, 2, 3, 3)),
    _case("ConvTranspose3d", lambda: nn.ConvTranspose3d(2, 2, 2, stride=2),
          lambda: tnn.ConvTranspose3d(2, 2, 2, stride=2), (1, 2, 2, 2, 2)),
    # pooling
    _case("MaxPool1d", lambda: nn.MaxPool1d(3, 2, 1), lambda: tnn.MaxPool1d(3, 2, 1), (2, 3, 9)),
    _case("MaxPool2d", lambda: nn.MaxPool2d(2), lambda: tnn.MaxPool2d(2), (2, 3, 6, 6)),
    _case("MaxPool2d-ceil-dilated", lambda: nn.MaxPool2d(3, stride=2, padding=1, dilation=2, ceil_mode=True),
          lambda: tnn.MaxPool2d(3, stride=2, padding=1, dilation=2, ceil_mode=True), (2, 2, 8, 7)),
    _case("MaxPool3d", lambda: nn.MaxPool3d(2), lambda: tnn.MaxPool3d(2), (1, 2, 4, 4, 4)),
    _case("AvgPool1d-exclude-pad", lambda: nn.AvgPool1d(3, 2, 1, count_include_pad=False),
          lambda: tnn.AvgPool1d(3, 2, 1, count_include_pad=False), (2, 3, 8)),
    _case("AvgPool2d", lambda: nn.AvgPool2d(2), lambda: tnn.AvgPool2d(2), (2, 3, 6, 6)),
    _case("AvgPool2d-ceil-divisor", lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True, divisor_override=5),
          lambda: tnn.AvgPool2d(3, 2, 1, ceil_mode=True, divisor_override=5), (2, 2, 6, 7)),
    _case("AvgPool3d", lambda: nn.AvgPool3d(2, stride=1), lambda: tnn.AvgPool3d(2, stride=1), (1, 2, 3, 3, 3)),
    _case("AdaptiveAvgPool2d-1", lambda: nn.AdaptiveAvgPool2d(1), lambda: tnn.AdaptiveAvgPool2d(1), (2, 3, 5, 4)),
    _case("AdaptiveAvgPool2d-uneven", lambda: nn.AdaptiveAvgPool2d((3, 2)), lambda: tnn.AdaptiveAvgPool2d((3, 2)),
          (2, 3, 7, 5)),
    _case("AdaptiveAvgPool2d-upsample-none", lambda: nn.AdaptiveAvgPool2d((None, 7)),
          lambda: tnn.AdaptiveAvgPool2d((None, 7)), (1, 2, 3, 5)),
    _case("AdaptiveAvgPool2d-unbatched", lambda: nn.AdaptiveAvgPool2d(2), lambda: tnn.AdaptiveAvgPool2d(2), (3, 5, 5)),
    _case("AdaptiveAvgPool1d", lambda: nn.AdaptiveAvgPool1d(3), lambda: tnn.AdaptiveAvgPool1d(3), (2, 3, 8)),
    _case("AdaptiveAvgPool3d", lambda: nn.AdaptiveAvgPool3d((2, 1, 3)), lambda: tnn.AdaptiveAvgPool3d((2, 1, 3)),
          (1, 2, 3, 4, 5)),
    _case("AdaptiveMaxPool2d-1", lambda: nn.AdaptiveMaxPool2d(1), lambda: tnn.AdaptiveMaxPool2d(1), (2, 3, 5, 4)),
    _case("AdaptiveMaxPool2d-uneven", lambda: nn.AdaptiveMaxPool2d((3, 2)), lambda: tnn.AdaptiveMaxPool2d((3, 2)),
          (2, 3, 7, 5)),
    _case("AdaptiveMaxPool2d-upsample-none", lambda: nn.AdaptiveMaxPool2d((None, 7)),
          lambda: tnn.AdaptiveMaxPool2d((None, 7)), (1, 2, 3, 5)),
    _case("AdaptiveMaxPool2d-unbatched", lambda: nn.AdaptiveMaxPool2d(2), lambda: tnn.AdaptiveMaxPool2d(2), (3, 5, 5)),
    _case("AdaptiveMaxPool1d", lambda: nn.AdaptiveMaxPool1d(3), lambda: tnn.AdaptiveMaxPool1d(3), (2, 3, 8)),
    _case("AdaptiveMaxPool3d", lambda: nn.AdaptiveMaxPool3d((2, 1, 3)), lambda: tnn.AdaptiveMaxPool3d((2, 1, 3)),
          (1, 2, 3, 4, 5)),
    # activations
    _case("ReLU", nn.ReLU, lambda: tnn.ReLU(), (2, 3, 4)),
    _case("LeakyReLU", lambda: nn.LeakyReLU(0.2), lambda: tnn.LeakyReLU(0.2), (2, 3, 4)),
    _case("ELU", lambda: nn.ELU(0.7), lambda: tnn.ELU(0.7), (2, 3, 4)),
    _case("GELU", nn.GELU, lambda: tnn.GELU(), (2, 3, 4)),
    _case("GELU-tanh", lambda: nn.GELU("tanh"), lambda: tnn.GELU("tanh"), (2, 3, 4)),
    _case("Sigmoid", nn.Sigmoid, lambda: tnn.Sigmoid(), (2, 3, 4)),
    _case("Tanh", nn.Tanh, lambda: tnn.Tanh(), (2, 3, 4)),
    _case("Softmax", lambda: nn.Softmax(1), lambda: tnn.Softmax(1), (2, 3, 4)),
    _case("LogSoftmax", lambda: nn.LogSoftmax(-1), lambda: tnn.LogSoftmax(-1), (2, 3, 4)),
    # linear, shapes
    _case("Linear", lambda: nn.Linear(5, 3), lambda: tnn.Linear(5, 3), (4, 5)),
    _case("Linear-3d-nobias", lambda: nn.Linear(5, 3, bias=False), lambda: tnn.Linear(5, 3, bias=False), (2, 3, 5)),
    _case("Linear-unbatched", lambda: nn.Linear(4, 2), lambda: tnn.Linear(4, 2), (4,)),
    _case("Flatten", nn.Flatten, lambda: tnn.Flatten(), (2, 3, 2, 2)),
    _case("Flatten-0-1", lambda: nn.Flatten(0, 1), lambda: tnn.Flatten(0, 1), (2, 3, 4)),
    _case("Identity", nn.Identity, lambda: tnn.Identity(), (2, 3)),
    # normalisation (training mode; evaluation mode has its own tests)
    _case("BatchNorm1d-2d-input", lambda: nn.BatchNorm1d(3), lambda: tnn.BatchNorm1d(3), (6, 3)),
    _case("BatchNorm1d-3d-input", lambda: nn.BatchNorm1d(3), lambda: tnn.BatchNorm1d(3), (4, 3, 5)),
    _case("BatchNorm2d", lambda: nn.BatchNorm2d(3), lambda: tnn.BatchNorm2d(3), (4, 3, 3, 3)),
    _case("BatchNorm2d-no-affine-momentum-none", lambda: nn.BatchNorm2d(2, affine=False, momentum=None),
          lambda: tnn.BatchNorm2d(2, affine=False, momentum=None), (3, 2, 2, 3)),
    _case("BatchNorm2d-no-bias", lambda: nn.BatchNorm2d(2, bias=False), lambda: tnn.BatchNorm2d(2, bias=False),
          (3, 2, 2, 2)),
    _case("BatchNorm2d-no-running-stats", lambda: nn.BatchNorm2d(2, track_running_stats=False, eps=1e-3),
          lambda: tnn.BatchNorm2d(2, track_running_stats=False, eps=1e-3), (3, 2, 2, 2)),
    # dropout where it is deterministic
    _case("Dropout-p0", lambda: nn.Dropout(0.0), lambda: tnn.Dropout(0.0), (2, 5)),
    _case("Dropout-p1", lambda: nn.Dropout(1.0), lambda: tnn.Dropout(1.0), (2, 5)),
    # a small model
    _case("Sequential-cnn", lambda: nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(),
                                                  nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 3)),
          lambda: tnn.Sequential(tnn.Conv2d(1, 2, 3, padding=1), tnn.BatchNorm2d(2), tnn.ReLU(), tnn.MaxPool2d(2),
                                 tnn.Flatten(), tnn.Linear(8, 3)), (2, 1, 4, 4)),
]
