"""Engine: training (``fit``), evaluation, prediction, checkpoints, distributed runs, reports.

``fit`` composes :mod:`fgad.data`, :mod:`fgad.augment`, :mod:`fgad.models`, :mod:`fgad.losses` and
:mod:`fgad.metrics`; the ``fgad`` command (:mod:`fgad.cli`) only parses arguments and calls this
package.
"""

from .benchmarking import benchmark
from .checkpoint import TrainState, load_checkpoint, save_checkpoint
from .config import PRESETS, TrainConfig, get_preset, list_presets
from .evaluation import evaluate
from .prediction import Prediction, predict, run_threshold
from .report import save_synthesis_grid, synthesis_grid
from .trainer import calibrate_threshold, fit, validation_score

__all__ = [
    "PRESETS",
    "Prediction",
    "TrainConfig",
    "TrainState",
    "benchmark",
    "calibrate_threshold",
    "evaluate",
    "fit",
    "get_preset",
    "list_presets",
    "load_checkpoint",
    "predict",
    "run_threshold",
    "save_checkpoint",
    "save_synthesis_grid",
    "synthesis_grid",
    "validation_score",
]
