"""Exact ranking metrics for anomaly detection: ROC / PR curves, AUROC, AP, F1-max, PRO curve, AUPRO.

Every function takes torch tensors (any device, any float dtype) or numpy arrays and returns Python floats
(curves: float64 numpy arrays). Tensors on an accelerator are copied to the host, where the sort runs;
:class:`~fgad.metrics.Evaluator` sorts CUDA maps on their device.

Convention:
    - Exact: no binning of the scores. Every distinct score is a threshold, and a sample is called
      anomalous at threshold ``t`` when ``score >= t``. Tied scores move together, so a tie between a
      positive and a negative is a diagonal step of the ROC curve, exactly as in scikit-learn.
    - ``auroc`` / ``image_auroc`` / ``pixel_auroc`` equal ``sklearn.metrics.roc_auc_score``;
      ``average_precision`` / ``pixel_ap`` equal ``sklearn.metrics.average_precision_score`` (the step-wise
      sum of precision times recall increments, not the trapezoid); ``roc_curve`` and
      ``precision_recall_curve`` return what scikit-learn's functions of the same name return.
    - ``f1_max`` is the largest F1 = 2 TP / (2 TP + FP + FN) over all thresholds (the precision-recall point
      (1, 0) scores 0), computed from counts without an epsilon.
    - ``aupro`` follows the MVTec AD evaluation (Bergmann et al., IJCV 2021): ground-truth regions are the
      8-connected components of each mask; at each threshold the per-region overlap (PRO) is the mean over
      all regions of all images of the fraction of the region scored >= t, and the false-positive rate is
      taken over all normal pixels of all images; the curve starts at (0, 0), is integrated with the
      trapezoid rule up to ``fpr_limit`` (linearly interpolated there) and divided by ``fpr_limit``.
    - Inputs are checked: equal shapes (axes of size 1 aside), binary labels/masks (0/1, bool, int or
      float), finite scores; otherwise ``ValueError`` / ``TypeError``.
    - A metric that is undefined for the data (AUROC with one class only; AP, F1 or PRO without any
      positive; AUPRO without normal pixels) returns ``nan`` and warns with
      :class:`UndefinedMetricWarning`; it never returns a made-up number.
    - Speed: one int64 value sort of packed (score, group) keys per call (see
      ``fgad.metrics._ranking``); :class:`~fgad.metrics.Evaluator` shares that sort between all pixel
      metrics.
"""

from __future__ import annotations

from typing import Literal, overload

import numpy as np

from ._ranking import (
    Ranking,
    as_images,
    aupro_from,
    auroc_from,
    average_precision_from,
    check_binary,
    check_same_shape,
    check_scores,
    f1_max_from,
    pr_from,
    pro_curve_from,
    ranking_from_scores,
    roc_from,
    to_numpy,
)
from .regions import regions_and_sizes

__all__ = [
    "aupro",
    "auroc",
    "average_precision",
    "f1_max",
    "image_auroc",
    "pixel_ap",
    "pixel_auroc",
    "precision_recall_curve",
    "pro_curve",
    "roc_curve",
]


def _rank(scores: object, labels: object, names: tuple[str, str]) -> Ranking:
    s = check_scores(to_numpy(scores, names[0]), names[0])
    y = check_binary(to_numpy(labels, names[1]), names[1])
    check_same_shape(s.shape, y.shape, names)
    return ranking_from_scores(s, y)


def _rank_regions(maps: object, masks: object, offset: int = 0) -> tuple[Ranking, np.ndarray]:
    s = check_scores(to_numpy(maps, "maps"), "maps")
    y = check_binary(to_numpy(masks, "masks"), "masks")
    check_same_shape(s.shape, y.shape, ("maps", "masks"))
    regions, sizes = regions_and_sizes(as_images(y.reshape(s.shape), "masks"), offset)
    return ranking_from_scores(s, regions), sizes


def auroc(scores: object, labels: object) -> float:
    """Area under the ROC curve of ``scores`` against binary ``labels`` (flattened), exactly.

    Args:
        scores: anomaly scores, any shape; higher means more anomalous.
        labels: 0 (normal) / 1 (anomalous), the same shape.

    Returns:
        The AUROC, equal to ``sklearn.metrics.roc_auc_score(labels, scores)``; ``nan`` with an
        :class:`UndefinedMetricWarning` when only one class is present.

    Convention:
        Exact (no binning): every distinct score is a threshold, ``score >= t`` is anomalous, and a tie
        between a positive and a negative counts one half (the ROC's diagonal step), as in scikit-learn.
        Computed from integer counts after one sort of packed (score, label) keys.

    Example:
        >>> auroc([0.1, 0.4, 0.4, 0.8], [0, 0, 1, 1])  # the tie counts one half
        0.875
    """
    return auroc_from(_rank(scores, labels, ("scores", "labels")), "AUROC")


def image_auroc(scores: object, labels: object) -> float:
    """Image-level AUROC: :func:`auroc` of image scores (B,) against image labels (B,).

    Example:
        >>> import torch
        >>> image_auroc(torch.tensor([0.2, 0.9, 0.4]), torch.tensor([0, 1, 1]))
        1.0
    """
    return auroc_from(_rank(scores, labels, ("scores", "labels")), "image AUROC")


def pixel_auroc(maps: object, masks: object) -> float:
    """Pixel-level AUROC: :func:`auroc` over every pixel of ``maps`` (B, 1, H, W) against ``masks``.

    Example:
        >>> import numpy as np
        >>> maps = np.array([[[0.1, 0.7], [0.2, 0.9]]], dtype=np.float32)
        >>> masks = np.array([[[0, 1], [0, 0]]])
        >>> pixel_auroc(maps, masks)
        0.6666666666666666
    """
    return auroc_from(_rank(maps, masks, ("maps", "masks")), "pixel AUROC")


def average_precision(scores: object, labels: object) -> float:
    """Average precision, ``sum_k (R_k - R_{k-1}) P_k`` over decreasing thresholds (sklearn's definition).

    Returns ``nan`` with an :class:`UndefinedMetricWarning` when there is no positive.

    Example:
        >>> average_precision([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        0.8333333333333333
    """
    return average_precision_from(_rank(scores, labels, ("scores", "labels")), "average precision")


def pixel_ap(maps: object, masks: object) -> float:
    """Pixel-level average precision of anomaly ``maps`` against ground-truth ``masks``.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> masks = rng.random((2, 1, 8, 8)) < 0.2
        >>> round(pixel_ap(masks + 0.0, masks), 6)  # a perfect map
        1.0
    """
    return average_precision_from(_rank(maps, masks, ("maps", "masks")), "pixel AP")


@overload
def f1_max(scores: object, labels: object, *, return_threshold: Literal[False] = False) -> float: ...


@overload
def f1_max(scores: object, labels: object, *, return_threshold: Literal[True]) -> tuple[float, float]: ...


def f1_max(scores: object, labels: object, *, return_threshold: bool = False) -> float | tuple[float, float]:
    """The largest F1 score over all thresholds (image scores or pixel maps, flattened).

    Args:
        scores: scores, any shape.
        labels: binary labels, the same shape.
        return_threshold: also return the threshold ``t`` that attains it (``score >= t`` is anomalous;
            the highest such threshold when several attain the maximum).

    Example:
        >>> f1_max([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], return_threshold=True)
        (0.8, 0.35)
    """
    best, threshold = f1_max_from(_rank(scores, labels, ("scores", "labels")), "F1-max")
    return (best, threshold) if return_threshold else best


def roc_curve(
    scores: object, labels: object, *, drop_intermediate: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve ``(fpr, tpr, thresholds)`` as ``sklearn.metrics.roc_curve`` returns it.

    The first point is (0, 0) at threshold ``inf``; ``drop_intermediate`` drops collinear points as
    scikit-learn does (the area is unchanged). Arrays are float64. With one class only, the undefined rate
    is all ``nan`` (with an :class:`UndefinedMetricWarning`), as in scikit-learn.

    Example:
        >>> fpr, tpr, thr = roc_curve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        >>> fpr.tolist(), tpr.tolist(), thr.tolist()
        ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0], [inf, 0.8, 0.4, 0.35, 0.1])
    """
    return roc_from(_rank(scores, labels, ("scores", "labels")), drop_intermediate)


def precision_recall_curve(
    scores: object, labels: object, *, drop_intermediate: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision-recall curve ``(precision, recall, thresholds)`` as in ``sklearn.metrics``.

    Thresholds increase; precision and recall have one more entry, the point (1, 0) without a threshold.
    With no positive, recall is 1 everywhere and an :class:`UndefinedMetricWarning` is raised (scikit-learn
    warns the same way).

    Example:
        >>> p, r, t = precision_recall_curve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        >>> [round(v, 4) for v in p.tolist()], r.tolist(), t.tolist()
        ([0.5, 0.6667, 0.5, 1.0, 1.0], [1.0, 1.0, 0.5, 0.5, 0.0], [0.1, 0.35, 0.4, 0.8])
    """
    return pr_from(_rank(scores, labels, ("scores", "labels")), drop_intermediate)


def pro_curve(
    maps: object, masks: object, *, fpr_limit: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-region overlap curve ``(fpr, pro, thresholds)`` at every distinct threshold, decreasing.

    Starts at the highest threshold (the point (0, 0) is not included). With ``fpr_limit``, the curve stops
    at the first points at or past the limit. Raises ``ValueError`` when PRO is undefined (no anomalous or
    no normal pixel).

    Example:
        >>> import numpy as np
        >>> maps = np.array([[[0.9, 0.8], [0.1, 0.3]]])
        >>> masks = np.array([[[1, 0], [0, 0]]])
        >>> fpr, pro, thr = pro_curve(maps, masks)
        >>> [round(v, 4) for v in fpr.tolist()], pro.tolist()
        ([0.0, 0.3333, 0.6667, 1.0], [1.0, 1.0, 1.0, 1.0])
    """
    r, sizes = _rank_regions(maps, masks)
    curve = pro_curve_from(r, sizes, fpr_limit, "PRO curve")
    if curve is None:
        raise ValueError("the PRO curve needs masks with at least one anomalous and one normal pixel")
    return curve


def aupro(maps: object, masks: object, fpr_limit: float = 0.3) -> float:
    """Normalised area under the per-region-overlap curve up to ``fpr_limit`` (MVTec AD's AUPRO).

    Args:
        maps: anomaly maps (B, 1, H, W), (B, H, W) or (H, W).
        masks: binary ground truth of the same shape.
        fpr_limit: integration limit on the false-positive rate, in (0, 1].

    Returns:
        The AUPRO in [0, 1]; ``nan`` with an :class:`UndefinedMetricWarning` when there is no anomalous
        region or no normal pixel.

    Convention:
        MVTec AD's definition (Bergmann et al., IJCV 2021): regions are the 8-connected components of each
        mask (:func:`~fgad.metrics.label_regions`); PRO(t) is the mean over all regions of all images of the
        fraction of the region with ``score >= t``; FPR(t) is over the normal pixels of all images. The
        curve, one point per distinct score plus (0, 0), is integrated with the trapezoid rule up to
        ``fpr_limit`` (interpolated linearly there) and divided by ``fpr_limit``. Exact: each anomalous
        pixel carries the weight 1 / (n_regions * |its region|), so PRO(t) is a cumulative sum over the
        pixels sorted once by score.

    Example:
        >>> import numpy as np
        >>> masks = np.zeros((1, 4, 4), dtype=np.uint8)
        >>> masks[0, :2, :2] = 1
        >>> aupro(masks * 0.5 + 0.25, masks)  # every region found before any false positive
        1.0
    """
    if not 0.0 < float(fpr_limit) <= 1.0:
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
    r, sizes = _rank_regions(maps, masks)
    return aupro_from(r, sizes, float(fpr_limit))
