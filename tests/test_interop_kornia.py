"""fgad.augment.kornia: real kornia augmentations over fgad's PIL-exact ops."""

from __future__ import annotations

import kornia.augmentation as K
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import fgad.augment.kornia as fk
from fgad.augment import functional as TF
from fgad.testing import image_batches

# fgad class, kornia's class of the same name (None: no counterpart), constructor arguments
CASES = {
    "RandomSharpness": (fk.RandomSharpness, K.RandomSharpness, {"sharpness": (0.0, 2.0)}),
    "RandomEqualize": (fk.RandomEqualize, K.RandomEqualize, {}),
    "RandomSolarize": (fk.RandomSolarize, K.RandomSolarize, {"thresholds": 0.2, "additions": 0.1}),
    "RandomPosterize": (fk.RandomPosterize, K.RandomPosterize, {"bits": 2}),
    "RandomAutoContrast": (fk.RandomAutoContrast, K.RandomAutoContrast, {}),
    "RandomBrightness": (fk.RandomBrightness, K.RandomBrightness, {"brightness": 0.3}),
    "RandomTexture": (fk.RandomTexture, None, {}),
}
NAMES = sorted(CASES)


def _images(b: int = 4, c: int = 3, size: int = 24, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, c, size, size), generator=g).float() / 255


def _make(name: str, **kwargs: object) -> K.IntensityAugmentationBase2D:
    cls, _, defaults = CASES[name]
    return cls(**{**defaults, **kwargs})


def test_every_class_is_a_kornia_intensity_augmentation() -> None:
    assert sorted(fk.__all__) == NAMES
    for name in NAMES:
        assert isinstance(_make(name), K.IntensityAugmentationBase2D)


@pytest.mark.parametrize("name", NAMES)
def test_replay_through_params_is_exact(name: str) -> None:
    aug = _make(name, p=0.6)
    x = _images()
    torch.manual_seed(0)
    y = aug(x)
    assert torch.equal(aug(x, params=aug._params), y)


@pytest.mark.parametrize("name", NAMES)
def test_p_zero_is_the_identity(name: str) -> None:
    x = torch.rand(3, 3, 16, 16)
    assert torch.equal(_make(name, p=0.0)(x), x)


@pytest.mark.parametrize("name", NAMES)
def test_keepdim_keeps_a_single_image(name: str) -> None:
    x = torch.rand(3, 16, 16)
    assert _make(name, p=1.0, keepdim=True)(x).shape == (3, 16, 16)
    assert _make(name, p=1.0)(x).shape == (1, 3, 16, 16)


@pytest.mark.parametrize("name", NAMES)
def test_same_on_batch_gives_one_transform(name: str) -> None:
    x = _images(1).expand(4, -1, -1, -1).contiguous()
    y = _make(name, p=1.0, same_on_batch=True)(x)
    assert all(torch.equal(y[0], y[i]) for i in range(1, 4))


@pytest.mark.parametrize("name", NAMES)
def test_sequential_with_masks_replays(name: str) -> None:
    x = _images()
    mask = (torch.rand(4, 1, 24, 24, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    seq = K.AugmentationSequential(_make(name, p=0.7), K.RandomHorizontalFlip(), K.RandomAffine(15.0),
                                   data_keys=["input", "mask"])
    torch.manual_seed(0)
    image, out_mask = seq(x, mask)
    assert out_mask.shape == mask.shape
    image2, out_mask2 = seq(x, mask, params=seq._params)
    assert torch.equal(image, image2) and torch.equal(out_mask, out_mask2)


@pytest.mark.parametrize("name", [n for n in NAMES if CASES[n][1] is not None])
def test_draws_the_same_values_as_kornia(name: str) -> None:
    ours, theirs = _make(name, p=0.5), CASES[name][1](**{**CASES[name][2], "p": 0.5})
    x = _images()
    torch.manual_seed(5)
    ours(x)
    torch.manual_seed(5)
    theirs(x)
    for key, value in theirs._params.items():
        assert torch.equal(ours._params[key].float(), value.float()), key


def test_results_are_fgads_functional_ops() -> None:
    x = _images()
    cases = [
        (fk.RandomSharpness(p=1.0), lambda p: TF.adjust_sharpness(x, p["sharpness"])),
        (fk.RandomEqualize(p=1.0), lambda p: TF.equalize(x)),
        (fk.RandomPosterize(p=1.0), lambda p: TF.posterize(x, p["bits_factor"].long())),
        (fk.RandomAutoContrast(), lambda p: TF.autocontrast(x)),
        (fk.RandomBrightness(brightness=0.4), lambda p: TF.adjust_brightness(x, p["brightness_factor"])),
        (fk.RandomSolarize(additions=0.0, p=1.0), None),
    ]
    for aug, expected in cases:
        y = aug(x)
        if expected is None:  # solarize: kornia's threshold in [0, 1] is PIL's level threshold * 255
            threshold = aug._params["thresholds"]
            levels = torch.ceil(threshold * 255 - 1e-4)
            assert torch.equal(y, TF.solarize(x, levels))
        else:
            assert torch.equal(y, expected(aug._params)), type(aug).__name__


def test_solarize_and_posterize_agree_with_kornia_on_the_level_grid() -> None:
    x = _images(8)
    for ours, theirs in [
        (fk.RandomSolarize(thresholds=0.3, additions=0.0, p=1.0), K.RandomSolarize(0.3, 0.0, p=1.0)),
        (fk.RandomPosterize(bits=1, p=1.0), K.RandomPosterize(bits=1, p=1.0)),
    ]:
        torch.manual_seed(2)
        a = ours(x)
        torch.manual_seed(2)
        b = theirs(x)
        assert torch.allclose(a, b, atol=1e-6)
    # an addition moves the levels by round(255 * addition): less than half a level from kornia's
    torch.manual_seed(3)
    a = fk.RandomSolarize(p=1.0)(x)
    torch.manual_seed(3)
    b = K.RandomSolarize(p=1.0)(x)
    assert float((a - b).abs().max()) <= 0.5 / 255 + 1e-6


def test_texture_params_are_texture_augments() -> None:
    aug = fk.RandomTexture(num_ops=2, ops=("solarize", "posterize", "equalize"), solarize=(64, 64))
    x = _images()
    y = aug(x)
    params = aug._params
    assert params["ops"].shape == (4, 2)
    assert set(params["ops"].flatten().tolist()) <= {1, 2, 3}
    assert torch.equal(y, aug.texture(x, params=aug.texture.last_params))


def test_bad_inputs_and_arguments() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fk.RandomEqualize(p=1.0)(torch.full((1, 3, 8, 8), 2.0))
    with pytest.raises(ValueError, match="clip_output"):
        fk.RandomBrightness(clip_output=False)
    with pytest.raises(ValueError, match="brightness"):
        fk.RandomBrightness(brightness=(1.2, 0.8))
    with pytest.raises(ValueError, match="RandomTexture params"):
        fk.RandomTexture()(torch.rand(1, 3, 8, 8), params={"batch_prob": torch.ones(1)})


@given(images=image_batches(batch_sizes=(1, 4), devices=["cpu"], on_level_grid=True),
       name=st.sampled_from(NAMES), seed=st.integers(0, 2**16))
def test_batch_equals_samples_one_by_one(images: torch.Tensor, name: str, seed: int) -> None:
    aug = _make(name, p=0.5)
    torch.manual_seed(seed)
    batch = aug(images)
    assert batch.shape == images.shape and batch.dtype == images.dtype
    params = aug._params
    for i in range(images.shape[0]):
        one = {k: (v[i : i + 1] if k != "forward_input_shape" else v) for k, v in params.items()}
        assert torch.equal(aug(images[i : i + 1], params=one), batch[i : i + 1])

