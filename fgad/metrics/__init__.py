"""Exact, fast evaluation metrics: image/pixel AUROC, pixel AP, AUPRO, F1-max, ROC/PR/PRO curves.

See :mod:`fgad.metrics.functional` for the conventions (sklearn-exact tie handling, MVTec AD's AUPRO,
NaN with :class:`UndefinedMetricWarning` for undefined metrics) and :class:`Evaluator` for accumulating
batches.
"""

from ._ranking import UndefinedMetricWarning
from .evaluator import Evaluator
from .functional import (
    aupro,
    auroc,
    average_precision,
    f1_max,
    image_auroc,
    pixel_ap,
    pixel_auroc,
    precision_recall_curve,
    pro_curve,
    roc_curve,
)
from .regions import label_regions

__all__ = [
    "Evaluator",
    "UndefinedMetricWarning",
    "aupro",
    "auroc",
    "average_precision",
    "f1_max",
    "image_auroc",
    "label_regions",
    "pixel_ap",
    "pixel_auroc",
    "precision_recall_curve",
    "pro_curve",
    "roc_curve",
]
