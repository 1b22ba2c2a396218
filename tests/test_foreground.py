"""Otsu thresholds pinned to OpenCV; foreground masks: polarity, fallback, clean-up, bad input."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings

from fgad.augment import ForegroundMask, gray_levels, otsu_threshold
from fgad.augment.foreground import _histograms, _otsu_from_histograms
from fgad.testing import assert_mask_binary, image_batches, uint8_images

FLAGS = cv2.THRESH_BINARY + cv2.THRESH_OTSU


@contextlib.contextmanager
def opencv_reference() -> Iterator[None]:
    """OpenCV's own C++ Otsu (pip wheels otherwise call Intel IPP, see otsu_threshold's docstring)."""
    previous = cv2.ipp.useIPP()
    cv2.ipp.setUseIPP(False)
    try:
        yield
    finally:
        cv2.ipp.setUseIPP(previous)


def _cv2(u8: np.ndarray) -> int:
    return int(cv2.threshold(np.ascontiguousarray(u8), 0, 255, FLAGS)[0])


@given(u8=uint8_images())
def test_otsu_equals_opencv_on_random_images(u8: torch.Tensor) -> None:
    with opencv_reference():
        expected = _cv2(u8.numpy())
    assert otsu_threshold(u8.view(1, 1, *u8.shape).float() / 255).item() == expected
    assert otsu_threshold(u8.view(1, 1, *u8.shape)).item() == expected  # uint8 levels directly


def test_otsu_equals_opencv_on_ties_and_degenerate_histograms() -> None:
    rng = np.random.default_rng(0)
    images = [np.full((5, 7), v, np.uint8) for v in (0, 1, 128, 255)]
    for _ in range(300):  # symmetric three-level histograms: exact ties of the between-class variance
        a = int(rng.integers(0, 128))
        d = int(rng.integers(1, (255 - a) // 2 + 1))
        c, m = (int(v) for v in rng.integers(1, 40, 2))
        images.append(np.repeat(np.array([a, a + d, a + 2 * d], np.uint8), [c, m, c]).reshape(1, -1))
    for _ in range(100):  # two levels: all thresholds between them tie
        lv = np.sort(rng.choice(256, 2, replace=False)).astype(np.uint8)
        images.append(np.repeat(lv, rng.integers(1, 50, 2)).reshape(1, -1))
    with opencv_reference():
        expected = [_cv2(u8) for u8 in images]
    got = [int(otsu_threshold(torch.from_numpy(u8)[None, None])) for u8 in images]
    assert got == expected


def test_otsu_batched_equals_opencv_on_natural_images() -> None:
    skdata = pytest.importorskip("skimage.data")
    names = ["camera", "coins", "moon", "page", "text", "horse", "brick", "grass", "gravel", "clock"]
    grays = []
    for name in names:
        img = np.asarray(getattr(skdata, name)())
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        grays.append(cv2.resize(img.astype(np.uint8), (128, 128), interpolation=cv2.INTER_AREA))
    for name in ["astronaut", "chelsea", "coffee", "rocket"]:
        rgb = np.asarray(getattr(skdata, name)())
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        grays.append(cv2.resize(gray, (128, 128), interpolation=cv2.INTER_AREA))
    batch = torch.from_numpy(np.stack(grays))[:, None]
    got = otsu_threshold(batch.float() / 255).tolist()
    assert got == [_cv2(g) for g in grays]  # OpenCV as shipped (IPP) agrees away from exact ties
    with opencv_reference():
        assert got == [_cv2(g) for g in grays]


def test_otsu_device_loop_matches_cpu_path() -> None:
    # The loop used on accelerators (no numpy) must give the CPU path's thresholds bit for bit.
    gen = torch.Generator().manual_seed(0)
    levels = torch.randint(0, 256, (6, 1, 20, 20), generator=gen, dtype=torch.uint8)
    levels[0] = 7
    levels[1] = torch.where(levels[1] > 128, 200, 3).to(torch.uint8)
    hist = _histograms(levels)
    on_host = _otsu_from_histograms(hist, host_loop=True)
    assert torch.equal(on_host, _otsu_from_histograms(hist, host_loop=False))


def test_gray_levels_match_opencv_within_one_level() -> None:
    gen = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 256, (2, 3, 16, 16), generator=gen, dtype=torch.uint8)
    ours = gray_levels(u8.float() / 255)
    for b in range(2):
        ref = cv2.cvtColor(np.ascontiguousarray(u8[b].permute(1, 2, 0).numpy()), cv2.COLOR_RGB2GRAY)
        assert int((ours[b, 0].int() - torch.from_numpy(ref).int()).abs().max()) <= 1
    grey = torch.randint(0, 256, (1, 1, 9, 9), generator=gen, dtype=torch.uint8)
    assert torch.equal(gray_levels(grey.float() / 255), grey)


def _object(bright: bool) -> torch.Tensor:
    img = torch.full((1, 3, 32, 32), 0.2 if bright else 0.8)
    img[..., 8:20, 10:24] = 0.8 if bright else 0.2
    return img


@pytest.mark.parametrize("bright", [True, False])
def test_auto_polarity_picks_the_object(bright: bool) -> None:
    fg = ForegroundMask()(_object(bright))
    expected = torch.zeros(1, 1, 32, 32)
    expected[..., 8:20, 10:24] = 1
    assert torch.equal(fg, expected)


def test_fixed_polarity_and_fallbacks() -> None:
    img = _object(True)
    assert float(ForegroundMask("bright")(img).sum()) == 12 * 14
    assert float(ForegroundMask("dark")(img).sum()) == 32 * 32 - 12 * 14
    constant = torch.full((2, 1, 8, 8), 0.4)
    assert bool(ForegroundMask()(constant).all())  # constant image -> whole image
    tiny = torch.zeros(1, 1, 40, 40)
    tiny[..., 5, 5] = 1.0
    fm = ForegroundMask("bright", min_fraction=0.01)
    assert bool(fm(tiny).all()) and fm.last_fallback is not None and bool(fm.last_fallback.all())
    assert float(ForegroundMask("bright", min_fraction=0.0)(tiny).sum()) == 1


def test_cleanup_removes_specks() -> None:
    img = _object(True)
    img[..., 28, 2] = 0.8  # an isolated bright speck on the background
    assert float(ForegroundMask("bright")(img)[..., 28, 2]) == 1
    assert float(ForegroundMask("bright", cleanup=3)(img)[..., 28, 2]) == 0


@settings(max_examples=10)
@given(images=image_batches())
def test_foreground_is_binary_with_input_dtype(images: torch.Tensor) -> None:
    fg = ForegroundMask()(images)
    assert fg.dtype == images.dtype and fg.shape == (images.shape[0], 1, *images.shape[2:])
    assert_mask_binary(fg)
    assert bool(fg.reshape(fg.shape[0], -1).any(1).all())  # never empty thanks to the fallback


@pytest.mark.parametrize(
    "x, error",
    [
        (np.zeros((1, 1, 4, 4)), TypeError),
        (torch.zeros(1, 1, 4, 4, dtype=torch.int32), TypeError),
        (torch.zeros(1, 4, 4), ValueError),
        (torch.zeros(1, 3, 4, 4), ValueError),
        (torch.zeros(1, 1, 0, 4), ValueError),
        (torch.full((1, 1, 4, 4), 2.0), ValueError),
    ],
)
def test_otsu_bad_input(x: object, error: type) -> None:
    with pytest.raises(error, match="must"):
        otsu_threshold(x)  # type: ignore[arg-type]


def test_foreground_bad_config_and_input() -> None:
    with pytest.raises(ValueError, match="polarity"):
        ForegroundMask("light")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_fraction"):
        ForegroundMask(min_fraction=2)
    with pytest.raises(ValueError, match="cleanup"):
        ForegroundMask(cleanup=2)
    with pytest.raises(ValueError, match="channels"):
        ForegroundMask()(torch.zeros(1, 2, 4, 4))
