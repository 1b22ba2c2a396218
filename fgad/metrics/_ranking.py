"""Input checks, the one sort, and the cumulative counts every ranking metric is derived from.

All of fgad's ranking metrics (ROC, PR, AUROC, AP, F1-max, PRO / AUPRO) are functions of one table: the
scores sorted in decreasing order, cut into blocks of tied scores, with, at the end of every block, the
number of positives and negatives scored at least that high (and, for PRO, the summed region weights).
This module builds that table with a single sort.

Sorting fast: a float32 score and a 32-bit group id (0 = negative, k > 0 = positive, for PRO the ground
truth region) are packed into one int64 whose order is "score decreasing, then group": the high word is
an order-preserving integer image of the float, the low word the group. Sorting the packed keys is a plain
integer *value* sort, which numpy runs with SIMD (several times faster than an argsort, and faster than
torch's CPU sort); the groups travel with their scores for free. Scores that are not exactly representable
in float32 (float64 data) fall back to an argsort, so every result stays exact.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["UndefinedMetricWarning"]


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for the data given (e.g. only one class); the result is NaN."""


_LITTLE_ENDIAN = sys.byteorder == "little"
_LOW_WORD = np.int64(0xFFFFFFFF)


def warn_undefined(metric: str, why: str) -> float:
    """Warn that ``metric`` is undefined and return NaN."""
    warnings.warn(f"{metric} is undefined: {why}; returning NaN", UndefinedMetricWarning, stacklevel=3)
    return float("nan")


# ---------------------------------------------------------------------------------------------------------
# Input conversion and checks


def to_numpy(x: object, name: str) -> np.ndarray:
    """A torch tensor (any device, detached) or array-like as a numpy array, without copying when possible."""
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.device.type != "cpu":
            x = x.cpu()
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()  # exact: both embed in float32
        return x.numpy()
    if isinstance(x, np.ndarray):
        return x
    try:
        return np.asarray(x)
    except Exception as exc:  # pragma: no cover - depends on the object
        raise TypeError(f"{name} must be a torch.Tensor or a numpy array, got {type(x).__name__}") from exc


def check_scores(x: np.ndarray, name: str) -> np.ndarray:
    """Real, finite, non-empty scores. Returns them unchanged (bool/int scores as float64)."""
    if x.dtype == np.bool_ or np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float64)
    elif not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name} must hold real numbers (float, int or bool), got dtype {x.dtype}")
    if x.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {x.shape}")
    if not np.isfinite(x).all():
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise ValueError(f"{name} must be finite, got {bad} NaN or infinite value(s)")
    return x


def check_binary(x: np.ndarray, name: str) -> np.ndarray:
    """Labels / masks with values 0 and 1 only, as a bool array (no copy for bool input)."""
    if x.dtype == np.bool_:
        return x
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise TypeError(f"{name} must be binary (0/1, bool, int or float), got dtype {x.dtype}")
    if np.issubdtype(x.dtype, np.unsignedinteger):
        bad = bool((x > 1).any())
    else:
        bad = bool(((x != 0) & (x != 1)).any())
    if bad:
        values = np.unique(x)[:6]
        raise ValueError(f"{name} must be binary (values 0 and 1 only), got values such as {values.tolist()}")
    return x != 0


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(s for s in shape if s != 1)


def check_same_shape(a: tuple[int, ...], b: tuple[int, ...], names: tuple[str, str]) -> None:
    """Equal shapes, up to axes of size 1 (so (B, 1, H, W) maps go with (B, H, W) masks)."""
    if tuple(a) != tuple(b) and _squeezed(tuple(a)) != _squeezed(tuple(b)):
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got {tuple(a)} and {tuple(b)}")


def as_images(x: np.ndarray, name: str) -> np.ndarray:
    """View maps/masks (H, W), (B, H, W) or (B, 1, H, W) as (B, H, W)."""
    if x.ndim == 2:
        return x[None]
    if x.ndim == 3:
        return x
    if x.ndim == 4 and x.shape[1] == 1:
        return x[:, 0]
    raise ValueError(f"{name} must have shape (B, 1, H, W), (B, H, W) or (H, W), got {tuple(x.shape)}")


# ---------------------------------------------------------------------------------------------------------
# Packed keys


def _descending_words(x32: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """int32 words whose ascending order is the decreasing order of the float32 scores, ties equal.

    Non-negative floats order like their bit patterns, negative ones in reverse; flipping the magnitude bits
    of the negative ones gives an increasing integer image, and its bitwise NOT a decreasing one. ``out``
    (int32, possibly strided) receives the words; the work is done in place to keep memory traffic low.
    """
    if out is None:
        out = np.empty(x32.shape, dtype=np.int32)
    np.add(x32, np.float32(0.0), out=out.view(np.float32))  # adding +0.0 turns -0.0 into +0.0 (they tie)
    flip = out >> 31
    flip &= np.int32(0x7FFFFFFF)
    out ^= flip
    np.invert(out, out=out)
    return out


def _words_to_float(words: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_descending_words`, as float64."""
    ascending = ~words.astype(np.int32)
    bits = ascending ^ ((ascending >> 31) & np.int32(0x7FFFFFFF))
    return bits.view(np.float32).astype(np.float64)


def float32_exact(x: np.ndarray) -> np.ndarray | None:
    """``x`` as float32 when that loses nothing (always for float32/16 input), else None."""
    if x.dtype == np.float32:
        return np.ascontiguousarray(x).reshape(-1)
    if x.dtype == np.float16:
        return x.astype(np.float32).reshape(-1)
    x32 = x.astype(np.float32).reshape(-1)
    with np.errstate(over="ignore"):
        if np.array_equal(x32.astype(x.dtype), x.reshape(-1)):
            return x32
    return None


def pack_keys(x32: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """int64 keys: decreasing-score word in the high half, the group id (0 <= g < 2**31) in the low half."""
    n = x32.shape[0]
    keys = np.empty(n, dtype=np.int64)
    if _LITTLE_ENDIAN:
        halves = keys.view(np.int32)
        _descending_words(x32, out=halves[1::2])
        halves[0::2] = groups.reshape(-1)
    else:  # pragma: no cover - no big-endian CI
        keys[:] = _descending_words(x32)
        keys <<= 32
        keys |= groups.reshape(-1).astype(np.int64)
    return keys


def pack_keys_torch(x: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """:func:`pack_keys` on the tensors' device (used to sort CUDA maps where they are)."""
    bits = (x.float().reshape(-1) + 0.0).view(torch.int32)
    words = ~(bits ^ ((bits >> 31) & 0x7FFFFFFF))
    return (words.to(torch.int64) << 32) | groups.reshape(-1).to(torch.int64)


# ---------------------------------------------------------------------------------------------------------
# The ranking table


@dataclass
class Ranking:
    """Scores sorted in decreasing order, cut into blocks of ties.

    Attributes:
        ends: (K,) exclusive end (in sorted order) of each block of tied scores.
        tps: (K,) positives scored >= the block's threshold.
        fps: (K,) negatives scored >= the block's threshold.
        (int32 below 2**31 samples, else int64; cast before multiplying.)
        groups: (N,) group id of every sorted element (0 = negative), for per-region weights.
        threshold_at: maps block-end positions (sorted order) to their scores (float64).
    """

    ends: np.ndarray
    tps: np.ndarray
    fps: np.ndarray
    groups: np.ndarray
    threshold_at: Callable[[np.ndarray], np.ndarray]

    @property
    def thresholds(self) -> np.ndarray:
        """(K,) float64 score of each block, strictly decreasing (decoded on demand)."""
        return self.threshold_at(self.ends - 1)

    @property
    def n_pos(self) -> int:
        return int(self.tps[-1])

    @property
    def n_neg(self) -> int:
        return int(self.fps[-1])


def ranking_from_sorted_keys(keys: np.ndarray) -> Ranking:
    """Build the :class:`Ranking` from keys sorted ascending (made by :func:`pack_keys`)."""
    if _LITTLE_ENDIAN:
        halves = keys.view(np.int32)
        high, groups = halves[1::2], halves[0::2]
    else:  # pragma: no cover - no big-endian CI
        high, groups = (keys >> 32).astype(np.int32), (keys & _LOW_WORD).astype(np.int32)
    return _ranking(high, groups, lambda idx: _words_to_float(high[idx]))


def ranking_from_scores(scores: np.ndarray, groups: np.ndarray) -> Ranking:
    """Build the :class:`Ranking` from raw scores and group ids (0 = negative), flattened."""
    scores = scores.reshape(-1)
    groups = groups.reshape(-1)
    x32 = float32_exact(scores)
    if x32 is not None:
        keys = pack_keys(x32, groups)
        keys.sort()
        return ranking_from_sorted_keys(keys)
    # float64 scores that float32 would merge: an exact (slower) argsort.
    order = np.argsort(-scores.astype(np.float64), kind="stable")
    ordered = scores[order].astype(np.float64)
    return _ranking(ordered, groups[order], lambda idx: ordered[idx])


def _ranking(
    order_values: np.ndarray, groups: np.ndarray, threshold_at: Callable[[np.ndarray], np.ndarray]
) -> Ranking:
    n = order_values.shape[0]
    # int32 counts while they fit: the per-block arrays are nearly as long as the data, and halving their
    # size is most of what is left to save once the sort is done.
    count_dtype = np.int32 if n < 2**31 else np.int64
    starts = np.flatnonzero(order_values[1:] != order_values[:-1])  # last index of every block but the last
    ends = np.empty(len(starts) + 1, dtype=count_dtype)
    np.add(starts, 1, out=ends[:-1], casting="unsafe")
    ends[-1] = n
    positive_count = np.cumsum(groups != 0, dtype=count_dtype)
    tps = np.empty_like(ends)
    np.take(positive_count, starts, out=tps[:-1])
    tps[-1] = positive_count[-1]
    del positive_count, starts
    fps = ends - tps
    return Ranking(ends=ends, tps=tps, fps=fps, groups=groups, threshold_at=threshold_at)


# ---------------------------------------------------------------------------------------------------------
# Metrics from the table


def auroc_from(r: Ranking, metric: str) -> float:
    """Trapezoidal area under ROC (ties as a diagonal step), i.e. sklearn's roc_auc_score."""
    p, n = r.n_pos, r.n_neg
    if p == 0 or n == 0:
        return warn_undefined(metric, f"the data has {p} positive and {n} negative sample(s), need both")
    # 2 * area * P * N = sum_k (FP_k - FP_{k-1}) (TP_k + TP_{k-1}): an exact integer (< 2**63 while the
    # sample count is below 2**31), so the only rounding is the final division.
    dfp = np.diff(r.fps.astype(np.int64), prepend=0)
    tp_sum = r.tps.astype(np.int64)
    tp_sum[1:] += r.tps[:-1]
    if p + n < 2**31:
        twice_area = float(int(np.dot(dfp, tp_sum)))
    else:
        twice_area = float(np.dot(dfp.astype(np.float64), tp_sum.astype(np.float64)))
    return twice_area / (2.0 * p * n)


def roc_from(r: Ranking, drop_intermediate: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """sklearn's ``roc_curve``: (fpr, tpr, thresholds) from (0, 0) at ``inf``, collinear points dropped."""
    fps, tps, thresholds = r.fps, r.tps, r.thresholds
    if drop_intermediate and len(fps) > 2:
        keep = np.concatenate(([True], (np.diff(fps, 2) != 0) | (np.diff(tps, 2) != 0), [True]))
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    fps = np.concatenate(([0], fps)).astype(np.float64)
    tps = np.concatenate(([0], tps)).astype(np.float64)
    thresholds = np.concatenate(([np.inf], thresholds))
    if fps[-1] > 0:
        fpr = fps / fps[-1]
    else:
        fpr = np.full(fps.shape, warn_undefined("false-positive rate", "no negative sample"))
    if tps[-1] > 0:
        tpr = tps / tps[-1]
    else:
        tpr = np.full(tps.shape, warn_undefined("true-positive rate", "no positive sample"))
    return fpr, tpr, thresholds


def pr_from(r: Ranking, drop_intermediate: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """sklearn's ``precision_recall_curve``: increasing thresholds, then the point (1, 0)."""
    fps, tps, thresholds = r.fps, r.tps, r.thresholds
    if drop_intermediate and len(fps) > 2:
        keep = np.concatenate(([True], (np.diff(tps[:-1]) != 0) | (np.diff(tps[1:]) != 0), [True]))
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    precision = tps / (tps + fps)
    if tps[-1] == 0:
        warn_undefined("recall", "no positive sample; recall is set to 1 for all thresholds as in sklearn")
        recall = np.ones(len(tps))
    else:
        recall = tps / tps[-1]
    return (
        np.concatenate((precision[::-1], [1.0])),
        np.concatenate((recall[::-1], [0.0])),
        thresholds[::-1].copy(),
    )


def average_precision_from(r: Ranking, metric: str) -> float:
    """sum_k (R_k - R_{k-1}) P_k over decreasing thresholds: sklearn's average_precision_score."""
    p = r.n_pos
    if p == 0:
        return warn_undefined(metric, "the data has no positive sample")
    dtp = np.diff(r.tps, prepend=0)
    hit = dtp > 0
    precision = r.tps[hit] / r.ends[hit]
    return float(max(0.0, np.dot(dtp[hit].astype(np.float64), precision) / p))


def f1_max_from(r: Ranking, metric: str) -> tuple[float, float]:
    """Largest F1 = 2 TP / (TP + FP + P) over all thresholds, and the threshold (score >= t is positive)."""
    p = r.n_pos
    if p == 0:
        return warn_undefined(metric, "the data has no positive sample"), float("nan")
    f1 = 2.0 * r.tps / (r.ends + float(p))
    best = int(np.argmax(f1))
    return float(f1[best]), float(r.threshold_at(r.ends[best : best + 1] - 1)[0])


def pro_curve_from(
    r: Ranking, region_sizes: np.ndarray, fpr_limit: float | None, metric: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(fpr, pro, thresholds) at every distinct threshold, up to the first point with fpr >= fpr_limit.

    ``region_sizes[g]`` is the pixel count of region ``g`` (index 0 unused). Each ground-truth pixel carries
    the weight 1 / (n_regions * |its region|), so the cumulative weight above a threshold is the mean
    per-region overlap. Returns None (after a warning) when PRO is undefined.
    """
    n_regions = int(np.count_nonzero(region_sizes[1:]))
    if n_regions == 0:
        warn_undefined(metric, "the ground truth has no anomalous region")
        return None
    if r.n_neg == 0:
        warn_undefined(metric, "the ground truth has no normal pixel")
        return None
    k = len(r.ends)
    if fpr_limit is not None:
        # One point past the limit is needed to interpolate there; a second guards against the rounding of
        # fpr_limit * n_neg versus fps / n_neg (points past the limit do not change the area).
        k = min(k, int(np.searchsorted(r.fps, fpr_limit * r.n_neg, side="left")) + 2)
    stop = int(r.ends[k - 1])
    weights = np.zeros(len(region_sizes), dtype=np.float64)
    nz = region_sizes > 0
    nz[0] = False
    weights[nz] = 1.0 / (n_regions * region_sizes[nz].astype(np.float64))
    # Only anomalous pixels carry weight: accumulate over them (in score order) and read the sum after the
    # first TP_k of them, TP_k being the anomalous pixels scored >= the k-th threshold.
    head = r.groups[:stop]
    cumulative = np.zeros(r.tps[k - 1] + 1, dtype=np.float64)
    np.cumsum(weights[head[head != 0]], out=cumulative[1:])
    pro = np.minimum(cumulative[r.tps[:k]], 1.0)
    fpr = r.fps[:k] / r.n_neg
    return fpr, pro, r.threshold_at(r.ends[:k] - 1)


def area_up_to(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Trapezoidal area under y(x) for x in [0, x_max], interpolating linearly at x_max (x non-decreasing)."""
    j = int(np.searchsorted(x, x_max, side="right"))  # points with x <= x_max
    xs, ys = x[:j], y[:j]
    area = float(np.dot(np.diff(xs), (ys[1:] + ys[:-1]) * 0.5)) if j > 1 else 0.0
    if j < len(x) and xs[-1] < x_max:
        x0, y0, x1, y1 = xs[-1], ys[-1], x[j], y[j]
        y_at = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0)
        area += float(0.5 * (y0 + y_at) * (x_max - x0))
    return area


def aupro_from(r: Ranking, region_sizes: np.ndarray, fpr_limit: float, metric: str = "AUPRO") -> float:
    """Area under PRO(FPR) for FPR in [0, fpr_limit], divided by fpr_limit."""
    curve = pro_curve_from(r, region_sizes, fpr_limit, metric)
    if curve is None:
        return float("nan")
    fpr, pro, _ = curve
    x = np.concatenate(([0.0], fpr))
    y = np.concatenate(([0.0], pro))
    return float(area_up_to(x, y, fpr_limit) / fpr_limit)
