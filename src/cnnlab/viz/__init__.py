"""Figures with matplotlib (headless, PNG and SVG): see the sliding window, filters, feature maps,
training curves and the mistakes a model makes.

Every figure function takes an optional ``path``; given one, the figure is saved there (PNG or
SVG by the suffix) at ``figsize * 100`` pixels and closed.  Needs matplotlib
(``pip install 'cnnlab[viz]'``).
"""

from cnnlab.viz._data import load_checkpoint, load_test_set, predict_probabilities, prepare_input
from cnnlab.viz._layers import (
    CLASSIC_FILTERS,
    LayerOutput,
    layer_outputs,
    plot_feature_maps,
    plot_filter_bank,
    plot_filters,
)
from cnnlab.viz._runs import (
    most_wrong,
    plot_confusion_matrix,
    plot_most_wrong,
    plot_run,
    plot_training_curves,
    read_metrics,
    write_run_figures,
)
from cnnlab.viz._windows import SlidingWindow, WindowFrame, cell_text, shape_text, sliding_window

__all__ = [
    "CLASSIC_FILTERS",
    "LayerOutput",
    "SlidingWindow",
    "WindowFrame",
    "cell_text",
    "layer_outputs",
    "load_checkpoint",
    "load_test_set",
    "most_wrong",
    "plot_confusion_matrix",
    "plot_feature_maps",
    "plot_filter_bank",
    "plot_filters",
    "plot_most_wrong",
    "plot_run",
    "plot_training_curves",
    "predict_probabilities",
    "prepare_input",
    "read_metrics",
    "shape_text",
    "sliding_window",
    "write_run_figures",
]
