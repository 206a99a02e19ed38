"""Worked, exact, step-by-step solutions of CNN pipelines, in text, Markdown, LaTeX and HTML.

>>> from cnnlab.explain import Conv, Pool, explain
>>> sol = explain([[1, 0, 2], [3, 1, 0], [0, 0, 4]], [Conv([[1, 0], [0, 1]]), "relu", Pool("max", 2, stride=1)])
>>> sol.answer
5
"""

from cnnlab.explain._backprop import Backprop, backprop
from cnnlab.explain._continuous_report import ContinuousReport, continuous_report
from cnnlab.explain._engine import compare, explain
from cnnlab.explain._filter_bank import FILTERS, FilterBank, filter_bank, synthetic_image
from cnnlab.explain._flip_experiment import FlipExperiment, flip_experiment
from cnnlab.explain._lecture import LECTURE_FILTER, LECTURE_INPUT, lecture_example
from cnnlab.explain._limits import MAX_EXACT_WORK, MAX_MATRIX_ENTRIES, MAX_TEXT_VALUES, MAX_VALUES, MAX_WORK
from cnnlab.explain._matrix_view import MatrixView, matrix_view
from cnnlab.explain._model_field import ModelField, model_field
from cnnlab.explain._parse import MatrixError, has_fraction, parse_matrix, read_source, to_array
from cnnlab.explain._render import FORMATS, render
from cnnlab.explain._scale_experiment import ScaleExperiment, rescale, scale_experiment
from cnnlab.explain._signal_text import parse_signal
from cnnlab.explain._solution import (
    ActivationCell,
    ActivationStage,
    Comparison,
    ConvCell,
    ConvStage,
    DimShape,
    PoolCell,
    PoolStage,
    Solution,
)
from cnnlab.explain._spec import ACTIVATIONS, Activation, Conv, Pool
from cnnlab.explain._volume import VolumeCell, VolumeSolution, VolumeStage
from cnnlab.explain._volume_backprop import VolumeBackprop, VolumeGradStep
from cnnlab.explain._volume_matrix import VolumeMatrixView

__all__ = [
    "ACTIVATIONS",
    "FILTERS",
    "FORMATS",
    "MAX_EXACT_WORK",
    "MAX_MATRIX_ENTRIES",
    "MAX_TEXT_VALUES",
    "MAX_VALUES",
    "MAX_WORK",
    "ContinuousReport",
    "FilterBank",
    "FlipExperiment",
    "ModelField",
    "ScaleExperiment",
    "continuous_report",
    "filter_bank",
    "flip_experiment",
    "model_field",
    "parse_signal",
    "rescale",
    "scale_experiment",
    "synthetic_image",
    "LECTURE_FILTER",
    "LECTURE_INPUT",
    "Activation",
    "ActivationCell",
    "ActivationStage",
    "Backprop",
    "Comparison",
    "Conv",
    "ConvCell",
    "ConvStage",
    "DimShape",
    "MatrixError",
    "MatrixView",
    "Pool",
    "PoolCell",
    "PoolStage",
    "Solution",
    "VolumeBackprop",
    "VolumeCell",
    "VolumeGradStep",
    "VolumeMatrixView",
    "VolumeSolution",
    "VolumeStage",
    "backprop",
    "compare",
    "explain",
    "has_fraction",
    "lecture_example",
    "matrix_view",
    "parse_matrix",
    "read_source",
    "render",
    "to_array",
]
