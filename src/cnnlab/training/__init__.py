"""Training: the fit loop, checkpointed run state, progress, metrics, built-in models and recipes.

- :func:`fit`, :func:`evaluate`, :func:`predict`: train and measure any :class:`cnnlab.nn.Module`;
- :func:`run` with :func:`resolve_settings`: what ``cnnlab train`` does, from settings to test accuracy,
  with a validation split of the training data (:mod:`cnnlab.training.recipes`);
- :func:`load_trained`: a model and its metadata from any cnnlab checkpoint;
- :mod:`cnnlab.training.models` (built-in models and spec strings) and :mod:`cnnlab.training.metrics`.
"""

from cnnlab.training import metrics, models, recipes
from cnnlab.training._fit import EvalResult, FitResult, evaluate, fit, predict
from cnnlab.training._progress import Terminated, sigterm_as_interrupt, sigterm_deferred
from cnnlab.training._rundir import RunFolder, RunFolderError
from cnnlab.training._state import load_trained
from cnnlab.training.recipes import RECIPES, RunError, RunResult, resolve_settings, resume_settings, run

__all__ = [
    "RECIPES",
    "EvalResult",
    "FitResult",
    "RunError",
    "RunFolder",
    "RunFolderError",
    "Terminated",
    "RunResult",
    "evaluate",
    "fit",
    "load_trained",
    "metrics",
    "models",
    "predict",
    "recipes",
    "resolve_settings",
    "resume_settings",
    "run",
    "sigterm_as_interrupt",
    "sigterm_deferred",
]
