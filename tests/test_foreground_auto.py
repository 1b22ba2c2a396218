"""ForegroundMask(method="auto") on scenes with a known object; user-given and cached foregrounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fgad.augment import AnomalySynthesizer, ForegroundCache, ForegroundMask
from fgad.augment._cues import otsu_separability
from fgad.augment.foreground import _hull_rows, gray_levels
from fgad.testing import assert_mask_binary, image_batches

SIZE = 128


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.bool(), b.bool()
    return float((a & b).sum()) / max(float((a | b).sum()), 1.0)


def _disc(size: int = SIZE, radius: float = 0.28, centre: tuple[float, float] = (0.5, 0.45)) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    cy, cx = centre[0] * size, centre[1] * size
    return ((ys + 0.5 - cy) ** 2 + (xs + 0.5 - cx) ** 2) <= (radius * size) ** 2


def _polygon(size: int = SIZE) -> torch.Tensor:
    """A convex hexagon (bool (H, W))."""
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    inside = torch.ones(size, size, dtype=torch.bool)
    for k in range(6):
        angle = 2 * math.pi * k / 6 + 0.3
        inside &= (xs - size * 0.52) * math.cos(angle) + (ys - size * 0.5) * math.sin(angle) <= size * 0.27
    return inside


def test_same_grey_level_different_colour() -> None:
    """A disc whose grey level equals the background's, but whose colour differs: Otsu cannot see it."""
    g = torch.Generator().manual_seed(0)
    obj = _disc()
    background = torch.tensor([0.62, 0.62, 0.20])  # yellow paper
    luma = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2]
    # a blue-grey object with the same luma: solve for the blue channel
    red = green = 0.52
    blue = (float(luma) - 0.299 * red - 0.587 * green) / 0.114
    colour = torch.tensor([red, green, blue])
    img = torch.where(obj, colour.view(3, 1, 1), background.view(3, 1, 1))
    img = (img + 0.02 * torch.randn(img.shape, generator=g)).clamp(0, 1).unsqueeze(0)
    levels = gray_levels(img)
    assert abs(float(levels[0, 0][obj].float().mean()) - float(levels[0, 0][~obj].float().mean())) < 1.0
    fm = ForegroundMask("auto")
    assert _iou(fm(img)[0, 0], obj) >= 0.9
    assert not bool(fm.last_texture.any()) and not bool(fm.last_fallback.any())  # type: ignore[union-attr]


def test_dark_object_on_dark_noisy_background() -> None:
    """A smooth dark polygon on an equally dark but grainy background: only texture tells them apart."""
    g = torch.Generator().manual_seed(1)
    obj = _polygon()
    noise = torch.rand(1, 1, SIZE, SIZE, generator=g) * 0.3 + 0.05  # mean 0.2, grainy
    smooth = torch.full((1, 1, SIZE, SIZE), 0.2) + 0.01 * torch.randn(1, 1, SIZE, SIZE, generator=g)
    img = torch.where(obj, smooth, noise).clamp(0, 1).expand(1, 3, SIZE, SIZE).contiguous()
    assert _iou(ForegroundMask("auto")(img)[0, 0], obj) >= 0.9


def test_texture_with_illumination_gradient_is_the_whole_frame() -> None:
    """A surface that fills the frame, lit from one side: grey Otsu splits it, auto takes it all."""
    g = torch.Generator().manual_seed(2)
    xs = torch.linspace(0.25, 0.75, SIZE).view(1, 1, 1, SIZE)
    grain = 0.15 * torch.rand(2, 1, SIZE, SIZE, generator=g)
    img = (xs + grain).clamp(0, 1).expand(2, 3, SIZE, SIZE).contiguous()
    otsu = ForegroundMask("otsu")(img)
    assert float(otsu.mean()) < 0.8  # the paper's Otsu keeps one side of the gradient
    fm = ForegroundMask("auto")
    assert bool(fm(img).bool().all())
    assert bool(fm.last_texture.all()) and bool(fm.last_fallback.all())  # type: ignore[union-attr]


def test_grey_images_and_single_image() -> None:
    obj = _disc()
    img = torch.where(obj, 0.8, 0.3).view(1, SIZE, SIZE).float()
    fm = ForegroundMask("auto")
    mask = fm(img)  # (1, H, W) for a single image
    assert mask.shape == (1, SIZE, SIZE)
    assert _iou(mask[0], obj) >= 0.95


@settings(max_examples=10)
@given(images=image_batches(), hull=st.booleans())
def test_auto_mask_is_binary_never_empty(images: torch.Tensor, hull: bool) -> None:
    fm = ForegroundMask("auto", hull=hull)
    fg = fm(images)
    assert fg.dtype == images.dtype and fg.shape == (images.shape[0], 1, *images.shape[2:])
    assert_mask_binary(fg)
    assert bool(fg.reshape(fg.shape[0], -1).any(1).all())
    # a batch is its images one by one
    for i in range(images.shape[0]):
        assert torch.equal(fm(images[i : i + 1]), fg[i : i + 1])


def test_hull_closes_a_bite_and_contains_the_mask() -> None:
    obj = _disc(64, 0.3, (0.5, 0.5))
    bitten = obj & ~_disc(64, 0.12, (0.5, 0.2))  # a bite out of the left side
    hull = _hull_rows(bitten.unsqueeze(0))[0]
    assert bool((hull | ~bitten).all())  # contains the mask
    assert _iou(hull, obj) > 0.93  # and closes the bite (the disc is convex)
    # the hull of a convex polygon is itself, within a pixel along the outline
    poly = _polygon(64)
    assert _iou(_hull_rows(poly.unsqueeze(0))[0], poly) > 0.95
    assert not bool(_hull_rows(torch.zeros(1, 8, 8, dtype=torch.bool)).any())


def test_scaled_cleanup_and_methods() -> None:
    assert ForegroundMask("otsu").cleanup_sizes(128, 128) == (21, 5)  # the paper pipeline, fixed
    assert ForegroundMask("auto").cleanup_sizes(256, 256) == (21, 5)
    assert ForegroundMask("auto").cleanup_sizes(128, 128) == (11, 3)
    assert ForegroundMask("auto", cleanup=(7, 3)).cleanup_sizes(128, 128) == (7, 3)


def test_otsu_separability_against_numpy() -> None:
    rng = np.random.default_rng(0)
    hist = rng.integers(0, 50, size=(4, 256))
    t, eta = otsu_separability(torch.from_numpy(hist))
    levels = np.arange(256, dtype=np.float64)
    for row in range(4):
        h = hist[row].astype(np.float64)
        p = h / h.sum()
        mu = (p * levels).sum()
        total = (p * (levels - mu) ** 2).sum()
        best = -1.0
        for k in range(255):
            w0 = p[: k + 1].sum()
            w1 = 1 - w0
            if w0 <= 0 or w1 <= 0:
                continue
            m0 = (p[: k + 1] * levels[: k + 1]).sum() / w0
            m1 = (p[k + 1 :] * levels[k + 1 :]).sum() / w1
            between = w0 * w1 * (m0 - m1) ** 2
            if between > best:
                best, arg = between, k
        assert int(t[row]) == arg
        assert abs(float(eta[row]) - best / total) < 1e-9


# -- the synthesizer with given foregrounds ---------------------------------------------------------
def _scene(batch: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return torch.rand(batch, 3, 64, 64, generator=g)


def test_given_masks_are_used_as_given_and_rotated_with_the_image() -> None:
    images = _scene()
    masks = torch.zeros(4, 1, 64, 64, dtype=torch.bool)
    masks[..., 8:40, 20:56] = True
    synth = AnomalySynthesizer(anomaly_prob=1.0, image_rotation_prob=0.0)
    res = synth(images, generator=torch.Generator().manual_seed(0), foreground=masks)
    assert torch.equal(res.foreground, masks)
    assert bool((res.mask.bool() <= masks).all()) and bool(res.label.all())
    # Rotated by exactly 90 degrees the mask turns like the image (a square grid maps onto itself).
    turn = AnomalySynthesizer(anomaly_prob=1.0, image_rotation_prob=1.0, image_rotation=(90.0, 90.0))
    res = turn(images, generator=torch.Generator().manual_seed(0), foreground=masks)
    assert torch.equal(res.foreground, torch.rot90(masks, 1, dims=(2, 3))) or torch.equal(
        res.foreground, torch.rot90(masks, -1, dims=(2, 3))
    )
    turned_image = res.target
    assert torch.allclose(turned_image, torch.rot90(images, 1, dims=(2, 3)), atol=1e-5) or torch.allclose(
        turned_image, torch.rot90(images, -1, dims=(2, 3)), atol=1e-5
    )
    direction = 1 if torch.allclose(turned_image, torch.rot90(images, 1, dims=(2, 3)), atol=1e-5) else -1
    assert torch.equal(res.foreground, torch.rot90(masks, direction, dims=(2, 3)))
    assert bool((res.mask.bool() <= res.foreground).all())


def test_callable_and_float_masks_and_replay() -> None:
    images = _scene()
    masks = torch.zeros(4, 1, 64, 64)
    masks[..., 10:50, 10:50] = 1.0
    synth = AnomalySynthesizer(anomaly_prob=1.0)
    a = synth(images, generator=torch.Generator().manual_seed(5), foreground=masks)
    b = synth(images, params=a.params, foreground=lambda x: masks.clone())
    assert torch.equal(a.image, b.image) and torch.equal(a.mask, b.mask)
    one = synth(images[1], params=a.params[1:2], foreground=masks[1])
    assert torch.equal(one.image, a.image[1]) and torch.equal(one.mask, a.mask[1])


def test_cache_equals_computing_per_step() -> None:
    images = _scene()
    images[:, :, 16:48, 16:48] *= 0.3  # a dark object
    synth = AnomalySynthesizer(anomaly_prob=1.0, image_rotation_prob=0.0)
    cache = ForegroundCache(synth.foreground_mask)  # type: ignore[arg-type]
    keys = [f"img{i}.png" for i in range(4)]
    direct = synth(images, generator=torch.Generator().manual_seed(9))
    cached = synth(images, params=direct.params, foreground=cache(keys, images))
    assert torch.equal(direct.image, cached.image) and torch.equal(direct.foreground, cached.foreground)
    # second epoch, other order: read from the cache, same masks
    order = [2, 0, 3, 1]
    again = cache([keys[i] for i in order], images[order])
    assert torch.equal(again, direct.foreground[order]) and len(cache) == 4


def test_bad_given_foregrounds() -> None:
    images = _scene(2)
    synth = AnomalySynthesizer()
    with pytest.raises(ValueError, match="shape"):
        synth(images, foreground=torch.ones(2, 1, 32, 32))
    with pytest.raises(ValueError, match="binary"):
        synth(images, foreground=torch.full((2, 1, 64, 64), 0.5))
    with pytest.raises(ValueError, match="callable's result must have shape"):
        synth(images, foreground=lambda x: torch.ones(2, 64, 64))
    with pytest.raises(TypeError, match="callable's result must be a torch.Tensor"):
        synth(images, foreground=lambda x: np.ones((2, 1, 64, 64)))
    with pytest.raises(TypeError, match="foreground must be"):
        synth(images, foreground="otsu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="foreground must be one of"):
        AnomalySynthesizer(foreground="grey")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="keys"):
        ForegroundCache()(["a"], images)


def test_data_sets_read_foreground_masks_and_training_uses_them(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    import cv2

    from fgad.data import ImageFolder, MVTecAD, demo_root
    from fgad.data.base import DatasetLayoutError
    from fgad.engine import TrainConfig, fit

    shutil.copytree(demo_root(), tmp_path / "nut")
    folder = tmp_path / "nut" / "train" / "foreground"
    folder.mkdir()
    for path in sorted((tmp_path / "nut" / "train" / "good").glob("*.png")):
        mask = np.zeros((256, 256), np.uint8)
        mask[64:192, 64:192] = 255
        cv2.imwrite(str(folder / f"{path.stem}_mask.png"), mask)
    train = MVTecAD(tmp_path, "nut", image_size=32)
    item = train[3]
    expected = torch.zeros(1, 32, 32, dtype=torch.uint8)
    expected[:, 8:24, 8:24] = 1
    assert torch.equal(item["foreground"], expected)
    assert "foreground" not in MVTecAD(tmp_path, "nut", image_size=32, foreground=False)[0]
    assert "foreground" not in MVTecAD(tmp_path, "nut", split="test", image_size=32)[0]
    # an ImageFolder over the training images does not read the masks as images
    images = ImageFolder(tmp_path / "nut" / "train", image_size=32, foreground=folder)
    assert len(images) == len(train) and torch.equal(images[3]["foreground"], expected)
    # training: every anomaly lies inside the given foreground (the synthesizer sees the masks)
    seen = []
    original = AnomalySynthesizer.forward

    def spy(self, images, textures=None, **kwargs):  # type: ignore[no-untyped-def]
        result = original(self, images, textures, **kwargs)
        if kwargs.get("foreground") is not None:
            seen.append((kwargs["foreground"], result))
        return result

    AnomalySynthesizer.forward = spy  # type: ignore[method-assign]
    try:
        config = TrainConfig(
            dataset="mvtec",
            root=str(tmp_path),
            category="nut",
            image_size=32,
            model="fgad",
            model_kwargs={"ae_width": 4, "seg_width": 4},
            batch_size=4,
            max_steps=2,
            val_fraction=0.0,
            num_workers=0,
            device="cpu",
            output=str(tmp_path / "run"),
            anomaly_prob=1.0,
        )
        fit(config, progress=False)
    finally:
        AnomalySynthesizer.forward = original  # type: ignore[method-assign]
    assert len(seen) == 2
    for masks, result in seen:
        assert masks.shape == (4, 1, 32, 32) and bool((masks == expected.bool()).all())
        assert bool((result.mask.bool() <= result.foreground).all()) and bool(result.label.all())
    (folder / "003_mask.png").unlink()
    with pytest.raises(DatasetLayoutError, match="without a foreground mask"):
        MVTecAD(tmp_path, "nut", image_size=32)


@pytest.mark.parametrize("size", [256, 320])
def test_auto_outline_is_pixel_accurate_after_the_grid(size: int) -> None:
    """ "auto" decides and cleans up on the ~64 px analysis grid and brings the mask to full size once:
    the outline must still follow the object within a grid cell, at sizes that are and are not
    multiples of the grid."""
    g = torch.Generator().manual_seed(1)
    obj = _disc(size, radius=0.3, centre=(0.47, 0.53))
    img = torch.where(
        obj, torch.tensor([0.75, 0.45, 0.2]).view(3, 1, 1), torch.tensor([0.2, 0.3, 0.5]).view(3, 1, 1)
    )
    img = (img + 0.03 * torch.randn(img.shape, generator=g)).clamp(0, 1).unsqueeze(0)
    mask = ForegroundMask("auto")(img)[0, 0].bool()
    cell = size // 64
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    dist = ((ys - 0.47 * size) ** 2 + (xs - 0.53 * size) ** 2).sqrt() - 0.3 * size
    assert bool(mask[dist < -cell].all())  # everything a cell inside the outline is foreground
    assert not bool(mask[dist > cell].any())  # nothing a cell outside it
    assert _iou(mask, obj) > 0.97


def test_auto_is_consistent_across_image_sizes() -> None:
    """The same photo at 128 and 256 px gets the same foreground (up to the outline)."""
    g = torch.Generator().manual_seed(2)
    big = torch.where(
        _polygon(256),
        torch.tensor([0.8, 0.7, 0.4]).view(3, 1, 1),
        torch.tensor([0.3, 0.3, 0.3]).view(3, 1, 1),
    )
    big = (big + 0.04 * torch.randn(big.shape, generator=g)).clamp(0, 1).unsqueeze(0)
    small = torch.nn.functional.avg_pool2d(big, 2)
    fm = ForegroundMask("auto")
    at_256 = torch.nn.functional.avg_pool2d(fm(big), 2)[0, 0] > 0.5
    assert _iou(at_256, fm(small)[0, 0]) > 0.97
