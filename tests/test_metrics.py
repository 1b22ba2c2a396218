"""fgad.metrics against scikit-learn, scipy and a slow, literal AUPRO; hand-computed cases; bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from sklearn import metrics as skm

from fgad.metrics import (
    Evaluator,
    UndefinedMetricWarning,
    aupro,
    auroc,
    average_precision,
    f1_max,
    image_auroc,
    label_regions,
    pixel_ap,
    pixel_auroc,
    precision_recall_curve,
    pro_curve,
    roc_curve,
)
from fgad.metrics._ranking import pack_keys, ranking_from_scores, ranking_from_sorted_keys
from fgad.metrics.evaluator import sorted_keys_torch

# ----------------------------------------------------------------------------------------------------------
# helpers


def tied_data(seed: int, n: int, levels: int, dtype: np.dtype = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Scores on a coarse grid (many ties between positives and negatives), both classes present."""
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < rng.uniform(0.1, 0.9)
    labels[:2] = [False, True]
    scores = np.floor(rng.random(n) * levels + 2.0 * labels) / levels - 0.5  # negatives too
    return scores.astype(dtype), labels


def blob_masks(seed: int, b: int, h: int, w: int, normal: int = 1) -> np.ndarray:
    """(b, h, w) masks with rectangles and diagonal-touching pixels; the first ``normal`` images empty."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((b, h, w), dtype=np.uint8)
    for i in range(normal, b):
        for _ in range(rng.integers(1, 4)):
            y, x = rng.integers(0, h - 2), rng.integers(0, w - 2)
            masks[i, y : y + rng.integers(1, h // 2), x : x + rng.integers(1, w // 2)] = 1
        y, x = rng.integers(0, h - 1), rng.integers(0, w - 1)
        masks[i, y, x] = masks[i, y + 1, x + 1] = 1  # corner neighbours: one region under 8-connectivity
    return masks


def slow_aupro(
    maps: list[np.ndarray] | np.ndarray, masks: list[np.ndarray] | np.ndarray, fpr_limit: float
) -> float:
    """AUPRO literally, for images of any sizes: scipy regions, a loop over every distinct threshold, the
    trapezoid up to the limit with linear interpolation there (MVTec AD's evaluation)."""
    structure = np.ones((3, 3), dtype=int)
    regions = []
    for m, k in zip(maps, masks, strict=True):
        labelled, n = ndimage.label(k, structure=structure)
        regions += [(m, labelled == r) for r in range(1, n + 1)]
    all_scores = np.concatenate([m.ravel() for m in maps])
    normal = np.concatenate([k.ravel() == 0 for k in masks])
    fprs, pros = [0.0], [0.0]
    for t in np.unique(all_scores)[::-1]:
        fprs.append(np.mean(all_scores[normal] >= t))
        pros.append(np.mean([np.mean(m[r] >= t) for m, r in regions]))
    x, y = np.array(fprs), np.array(pros)
    keep = x <= fpr_limit
    area = np.trapezoid(y[keep], x[keep])
    j = np.count_nonzero(keep)
    if x[j - 1] < fpr_limit:
        y_lim = y[j - 1] + (y[j] - y[j - 1]) * (fpr_limit - x[j - 1]) / (x[j] - x[j - 1])
        area += 0.5 * (y[j - 1] + y_lim) * (fpr_limit - x[j - 1])
    return float(area / fpr_limit)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Two labellings (0 = background) define the same regions, whatever the numbering."""
    if not np.array_equal(a == 0, b == 0):
        return False
    fg = a != 0
    pairs = np.unique(np.stack([a[fg], b[fg]]), axis=1)
    return len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))


# ----------------------------------------------------------------------------------------------------------
# scikit-learn parity, with ties


@settings(max_examples=15)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(2, 400),
    levels=st.integers(1, 30),
    dtype=st.sampled_from([np.float32, np.float64, np.int64]),
)
def test_matches_sklearn_with_ties(seed: int, n: int, levels: int, dtype: np.dtype) -> None:
    scores, labels = tied_data(seed, n, levels)
    scores = (scores * levels).astype(dtype) if dtype == np.int64 else scores.astype(dtype)
    assert auroc(scores, labels) == pytest.approx(skm.roc_auc_score(labels, scores), abs=1e-6)
    assert average_precision(scores, labels) == pytest.approx(
        skm.average_precision_score(labels, scores), abs=1e-6
    )
    for drop in (True, False):
        for ours, ref in zip(
            roc_curve(scores, labels, drop_intermediate=drop),
            skm.roc_curve(labels, scores, drop_intermediate=drop),
            strict=True,
        ):
            np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)
        for ours, ref in zip(
            precision_recall_curve(scores, labels, drop_intermediate=drop),
            skm.precision_recall_curve(labels, scores, drop_intermediate=drop),
            strict=True,
        ):
            np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("torch_dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_torch_inputs_match_sklearn(torch_dtype: torch.dtype) -> None:
    scores, labels = tied_data(3, 500, 12)
    s = torch.from_numpy(scores).to(torch_dtype)
    ref_scores = s.double().numpy()  # what the tensor holds after rounding to its dtype
    y = torch.from_numpy(labels).float()
    assert image_auroc(s, y) == pytest.approx(skm.roc_auc_score(labels, ref_scores), abs=1e-6)
    assert pixel_auroc(s.view(1, 1, 20, 25), y.view(1, 1, 20, 25)) == pytest.approx(
        skm.roc_auc_score(labels, ref_scores), abs=1e-6
    )
    assert pixel_ap(s.view(5, 100), y.view(5, 100)) == pytest.approx(
        skm.average_precision_score(labels, ref_scores), abs=1e-6
    )


def test_float64_scores_are_not_merged_by_float32() -> None:
    # 1 and 1 + 1e-12 are one float32 but two float64 values: the float64 path must keep them apart.
    scores = np.array([1.0, 1.0 + 1e-12, 0.3, 0.3 + 1e-13])
    labels = np.array([0, 1, 1, 0])
    assert auroc(scores, labels) == skm.roc_auc_score(labels, scores) == 0.5
    np.testing.assert_array_equal(roc_curve(scores, labels)[2], skm.roc_curve(labels, scores)[2])
    assert average_precision(scores, labels) == pytest.approx(skm.average_precision_score(labels, scores))


def test_signed_zero_and_negative_scores_tie_correctly() -> None:
    scores = np.array([-0.0, 0.0, -1e-30, -3.5, 7.0, -3.5], dtype=np.float32)
    labels = np.array([0, 1, 1, 0, 1, 1])
    assert auroc(scores, labels) == pytest.approx(skm.roc_auc_score(labels, scores), abs=1e-12)
    assert average_precision(scores, labels) == pytest.approx(skm.average_precision_score(labels, scores))


@settings(max_examples=15)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 300), levels=st.integers(1, 20))
def test_f1_max_matches_sklearn_pr_curve(seed: int, n: int, levels: int) -> None:
    scores, labels = tied_data(seed, n, levels)
    p, r, _ = skm.precision_recall_curve(labels, scores)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = np.nan_to_num(2 * p * r / (p + r)).max()
    best, threshold = f1_max(scores, labels, return_threshold=True)
    assert best == pytest.approx(ref, abs=1e-12)
    assert skm.f1_score(labels, scores >= threshold) == pytest.approx(best, abs=1e-12)


# ----------------------------------------------------------------------------------------------------------
# hand-computed cases and invariants


def test_hand_computed_auroc_ap_f1() -> None:
    scores = [0.1, 0.4, 0.35, 0.8]
    labels = [0, 0, 1, 1]
    # positive 0.35 beats 1 of 2 negatives, positive 0.8 beats both: (1 + 2) / 4
    assert auroc(scores, labels) == 0.75
    # thresholds 0.8 (P=1, R=1/2), 0.4 (P=1/2, R=1/2), 0.35 (P=2/3, R=1): 1/2 * 1 + 1/2 * 2/3
    assert average_precision(scores, labels) == pytest.approx(5 / 6)
    # at 0.35: TP=2, FP=1, FN=0 -> 4 / 5
    assert f1_max(scores, labels) == pytest.approx(0.8)
    # a positive tied with a negative counts one half
    assert auroc([0.5, 0.5], [0, 1]) == 0.5
    assert auroc([1, 2, 2, 3], [0, 0, 1, 1]) == pytest.approx((1.5 + 2) / 4)


def test_hand_computed_aupro() -> None:
    # One image, one 2-pixel region (scores 0.9 and 0.5), normal pixels 0.8, 0.4, 0.3, 0.2.
    maps = np.array([[[0.9, 0.5, 0.8], [0.4, 0.3, 0.2]]])
    masks = np.array([[[1, 1, 0], [0, 0, 0]]])
    # points (fpr, pro): (0,0) (0,.5)@.9 (.25,.5)@.8 (.25,1)@.5 (.5,1)@.4 ...
    fpr, pro, thr = pro_curve(maps, masks)
    np.testing.assert_allclose(fpr, [0, 0.25, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(pro, [0.5, 0.5, 1, 1, 1, 1])
    np.testing.assert_allclose(thr, [0.9, 0.8, 0.5, 0.4, 0.3, 0.2])
    # area to fpr 0.3: 0.25 * 0.5 + 0.05 * 1 = 0.175; / 0.3
    assert aupro(maps, masks, fpr_limit=0.3) == pytest.approx(0.175 / 0.3)
    # area to fpr 0.1: interpolated on the flat segment: 0.1 * 0.5
    assert aupro(maps, masks, fpr_limit=0.1) == pytest.approx(0.5)
    # Two regions in two images: a region counts once whatever its size.
    maps2 = np.array([[[0.9, 0.9, 0.9, 0.1]], [[0.2, 0.7, 0.0, 0.0]]])
    masks2 = np.array([[[1, 1, 1, 0]], [[1, 0, 0, 0]]])
    # 4 normal pixels (0.1; 0.7, 0, 0). t=.9: pro 1/2 (the big region), fpr 0; t=.7: fpr 1/4;
    # t=.2: pro 1 (the small region), fpr 1/4; t=.1: fpr 2/4; t=0: fpr 1
    fpr2, pro2, _ = pro_curve(maps2, masks2)
    np.testing.assert_allclose(fpr2, [0, 0.25, 0.25, 0.5, 1.0])
    np.testing.assert_allclose(pro2, [0.5, 0.5, 1, 1, 1])
    assert aupro(maps2, masks2, fpr_limit=0.3) == pytest.approx((0.25 * 0.5 + 0.05 * 1) / 0.3)


def test_eight_connectivity_in_aupro() -> None:
    # Two diagonal pixels are ONE region: finding one of them gives PRO 1/2, not (1 + 0) / 2 regions.
    masks = np.zeros((1, 3, 3), dtype=np.uint8)
    masks[0, 0, 0] = masks[0, 1, 1] = 1
    maps = np.zeros((1, 3, 3))
    maps[0, 0, 0] = 1.0
    fpr, pro, _ = pro_curve(maps, masks)
    np.testing.assert_allclose(pro[0], 0.5)
    assert label_regions(masks)[1] == 1


@settings(max_examples=10)
@given(seed=st.integers(0, 2**31 - 1), levels=st.integers(2, 50))
def test_auroc_invariants(seed: int, levels: int) -> None:
    scores, labels = tied_data(seed, 200, levels)
    a = auroc(scores, labels)
    assert auroc(-scores, labels) == pytest.approx(1 - a, abs=1e-12)  # ties stay ties
    assert auroc(np.exp(3 * scores), labels) == pytest.approx(a, abs=1e-12)  # monotone map
    assert pixel_ap(labels.astype(np.float32), labels) == 1.0
    assert aupro(labels.reshape(1, 10, 20) + 0.0, labels.reshape(1, 10, 20)) == pytest.approx(1.0)


# ----------------------------------------------------------------------------------------------------------
# AUPRO against the slow reference; connected components against scipy


@pytest.mark.parametrize("fpr_limit", [0.3, 0.05, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_aupro_matches_slow_reference(seed: int, fpr_limit: float) -> None:
    rng = np.random.default_rng(seed)
    masks = blob_masks(seed, 5, 24, 20, normal=2)
    # coarse scores -> heavy ties between normal and anomalous pixels
    maps = np.round(rng.random(masks.shape) * 0.6 + 0.4 * masks * rng.random(masks.shape), 2)
    ours = aupro(torch.from_numpy(maps).unsqueeze(1), torch.from_numpy(masks).unsqueeze(1), fpr_limit)
    assert ours == pytest.approx(slow_aupro(maps, masks, fpr_limit), abs=1e-3)
    assert ours == pytest.approx(slow_aupro(maps, masks, fpr_limit), abs=1e-9)  # in fact exact


@settings(max_examples=15)
@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 4), h=st.integers(1, 12), w=st.integers(1, 12))
def test_label_regions_matches_scipy(seed: int, b: int, h: int, w: int) -> None:
    rng = np.random.default_rng(seed)
    masks = rng.random((b, h, w)) < rng.uniform(0.1, 0.7)
    masks[:, -1, :] |= rng.random() < 0.5  # last row of image i above first row of image i + 1
    masks[:, 0, :] |= rng.random() < 0.5
    labels, n = label_regions(masks)
    total = 0
    for i in range(b):
        ref, count = ndimage.label(masks[i], structure=np.ones((3, 3), dtype=int))
        assert same_partition(labels[i], ref)
        total += count
    assert n == total
    ids = [set(np.unique(labels[i])) - {0} for i in range(b)]
    assert sum(len(s) for s in ids) == len(set().union(*ids)) == n  # no region spans two images


# ----------------------------------------------------------------------------------------------------------
# the packed-key sort


@settings(max_examples=10)
@given(seed=st.integers(0, 2**31 - 1))
def test_packed_keys_order_like_floats(seed: int) -> None:
    rng = np.random.default_rng(seed)
    special = np.array([0.0, -0.0, 1e-45, -1e-45, np.finfo(np.float32).max, -np.finfo(np.float32).max])
    x = np.concatenate([rng.standard_normal(50) * 10.0 ** rng.integers(-30, 30), special]).astype(np.float32)
    groups = rng.integers(0, 2**31 - 1, size=x.shape)
    keys = np.sort(pack_keys(x, groups))
    r = ranking_from_sorted_keys(keys)
    distinct = np.unique(x)[::-1]  # -0.0 and 0.0 are one value
    np.testing.assert_array_equal(r.thresholds, distinct.astype(np.float64))
    sorted_groups = keys & 0xFFFFFFFF
    assert sorted(sorted_groups.tolist()) == sorted(groups.tolist())


def test_torch_key_path_equals_numpy_path() -> None:
    scores, labels = tied_data(7, 3000, 40)
    groups = labels.astype(np.int32) * np.arange(3000, dtype=np.int32)
    keys = sorted_keys_torch(torch.from_numpy(scores), torch.from_numpy(groups))
    assert keys is not None
    a, b = ranking_from_sorted_keys(keys), ranking_from_scores(scores, groups)
    for name in ("ends", "tps", "fps", "thresholds"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    precise = torch.tensor([1.0, 1.0 + 1e-12], dtype=torch.float64)
    assert sorted_keys_torch(precise, torch.zeros(2, dtype=torch.int32)) is None  # would merge a tie


# ----------------------------------------------------------------------------------------------------------
# Evaluator


def test_evaluator_equals_functional(device: torch.device) -> None:
    g = torch.Generator().manual_seed(0)
    ev = Evaluator(fpr_limit=0.3)
    maps_all, masks_all, scores_all, labels_all = [], [], [], []
    for i, size in enumerate([(3, 16, 16), (2, 16, 16), (4, 12, 20)]):
        masks = torch.from_numpy(blob_masks(i, *size, normal=1)).unsqueeze(1).float()
        maps = torch.round(torch.rand(masks.shape, generator=g) * 20 + 8 * masks) / 20
        scores, labels = maps.amax(dim=(1, 2, 3)), masks.amax(dim=(1, 2, 3))
        ev.update(scores.to(device), labels.to(device), maps.to(device), masks.to(device))
        maps_all.append(maps)
        masks_all.append(masks)
        scores_all.append(scores)
        labels_all.append(labels)
    out = ev.compute()
    maps_c = torch.cat([m.flatten() for m in maps_all])
    masks_c = torch.cat([m.flatten() for m in masks_all])
    assert out["pixel_auroc"] == pytest.approx(pixel_auroc(maps_c, masks_c), abs=1e-12)
    assert out["pixel_ap"] == pytest.approx(pixel_ap(maps_c, masks_c), abs=1e-12)
    assert out["pixel_f1_max"] == pytest.approx(f1_max(maps_c, masks_c), abs=1e-12)
    assert out["image_auroc"] == pytest.approx(image_auroc(torch.cat(scores_all), torch.cat(labels_all)))
    assert out["image_f1_max"] == pytest.approx(f1_max(torch.cat(scores_all), torch.cat(labels_all)))
    assert out["pixel_auroc"] == pytest.approx(skm.roc_auc_score(masks_c.numpy(), maps_c.numpy()), abs=1e-6)
    # AUPRO over images of different sizes: the slow reference on the list of images
    images = [
        (m.numpy(), k.numpy())
        for mb, kb in zip(maps_all, masks_all, strict=True)
        for m, k in zip(mb, kb, strict=True)
    ]
    ref = slow_aupro([m[0] for m, _ in images], [k[0] for _, k in images], 0.3)
    assert out["aupro"] == pytest.approx(ref, abs=1e-9)
    assert set(ev.f1_thresholds) == {"image", "pixel"}
    assert all(isinstance(v, float) for v in out.values())
    ev.reset()
    assert ev.num_images == 0


def test_evaluator_curves_equal_functional() -> None:
    masks = torch.from_numpy(blob_masks(3, 6, 16, 16, normal=2)).unsqueeze(1)
    maps = torch.round(torch.rand(masks.shape, generator=torch.Generator().manual_seed(3)) * 30) / 30
    scores, labels = maps.amax(dim=(1, 2, 3)) + 0.1 * masks.amax(dim=(1, 2, 3)), masks.amax(dim=(1, 2, 3))
    ev = Evaluator()
    ev.update(scores[:3], labels[:3], maps[:3], masks[:3])
    ev.update(scores[3:], labels[3:], maps[3:], masks[3:])
    curves = ev.curves(max_points=None)
    expected = {
        "image_roc": roc_curve(scores, labels),
        "image_pr": precision_recall_curve(scores, labels, drop_intermediate=True),
        "pixel_roc": roc_curve(maps, masks),
        "pixel_pr": precision_recall_curve(maps, masks, drop_intermediate=True),
        "pro": pro_curve(maps, masks, fpr_limit=0.3),
    }
    assert set(curves) == set(expected)
    for key, ref in expected.items():
        for a, b in zip(curves[key], ref, strict=True):
            np.testing.assert_array_equal(a, b)
    thin = ev.curves(max_points=5)["pixel_pr"]
    full = curves["pixel_pr"]
    assert len(thin[2]) <= 5 < len(full[2])
    assert len(thin[0]) == len(thin[2]) + 1
    for a, b in zip(thin, full, strict=True):
        assert a[0] == b[0] and a[-1] == b[-1]


def test_evaluator_without_maps_and_errors() -> None:
    ev = Evaluator()
    with pytest.raises(ValueError, match="before any update"):
        ev.compute()
    ev.update(torch.tensor([0.1, 0.9]), torch.tensor([0, 1]))
    assert set(ev.compute()) == {"image_auroc", "image_f1_max"}
    with pytest.raises(ValueError, match="every batch"):
        ev.update(torch.tensor([0.1]), torch.tensor([0]), torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="together"):
        ev.update(torch.tensor([0.1]), torch.tensor([0]), maps=torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        ev.update(torch.tensor([0.1, 0.2]), torch.tensor([0]))
    ev2 = Evaluator()
    with pytest.raises(ValueError, match="one map per score"):
        ev2.update(torch.tensor([0.1]), torch.tensor([0]), torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match="fpr_limit"):
        Evaluator(fpr_limit=0.0)


def test_evaluator_copies_its_input() -> None:
    maps = torch.rand(2, 1, 8, 8)
    masks = torch.zeros(2, 1, 8, 8)
    masks[1, 0, 2:4, 2:4] = 1
    ev = Evaluator()
    ev.update(torch.tensor([0.1, 0.9]), torch.tensor([0, 1]), maps, masks)
    before = ev.compute()
    maps.zero_()  # the caller reuses its buffer
    assert ev.compute() == before


# ----------------------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("fn", [pixel_auroc, pixel_ap, aupro, f1_max])
def test_bad_input_raises(fn) -> None:  # type: ignore[no-untyped-def]
    maps = np.random.default_rng(0).random((2, 1, 8, 8)).astype(np.float32)
    masks = np.zeros((2, 1, 8, 8), dtype=np.uint8)
    masks[0, 0, :2, :2] = 1
    with pytest.raises(ValueError, match="same shape"):
        fn(maps, masks[:, :, :4])
    with pytest.raises(ValueError, match="binary"):
        fn(maps, masks * 2)
    with pytest.raises(ValueError, match="binary"):
        fn(maps, masks * 0.5)
    for bad in (np.nan, np.inf, -np.inf):
        broken = maps.copy()
        broken[1, 0, 3, 3] = bad
        with pytest.raises(ValueError, match="finite"):
            fn(broken, masks)
    with pytest.raises(ValueError, match="empty"):
        fn(maps[:0], masks[:0])
    with pytest.raises(TypeError):
        fn(maps.astype(np.complex64), masks)


def test_one_class_is_nan_with_warning() -> None:
    maps = np.random.default_rng(0).random((2, 1, 8, 8))
    normal = np.zeros((2, 1, 8, 8))
    for fn in (pixel_auroc, pixel_ap, aupro, f1_max):
        with pytest.warns(UndefinedMetricWarning, match="undefined"):
            assert np.isnan(fn(maps, normal))
    with pytest.warns(UndefinedMetricWarning):
        assert np.isnan(image_auroc([0.1, 0.2], [1, 1]))
    with pytest.warns(UndefinedMetricWarning):
        assert np.isnan(aupro(maps, np.ones_like(normal)))  # no normal pixel
    with pytest.warns(UndefinedMetricWarning):
        fpr, tpr, _ = roc_curve([0.1, 0.2], [1, 1])
    assert np.isnan(fpr).all() and not np.isnan(tpr).any()
    with pytest.raises(ValueError, match="PRO curve"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        pro_curve(maps, normal)
    with pytest.raises(ValueError, match="fpr_limit"):
        aupro(maps, normal, fpr_limit=1.5)
