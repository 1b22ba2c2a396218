"""A single image (C, H, W) is a batch of one everywhere in fgad.augment, returned at the rank it came in."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given

import fgad.augment as A
from fgad.augment import functional as TF
from fgad.testing import generators, image_batches

OPS = {
    "solarize": lambda x: TF.solarize(x, 100),
    "posterize": lambda x: TF.posterize(x, 3),
    "adjust_brightness": lambda x: TF.adjust_brightness(x, 1.3, 5.0),
    "equalize": TF.equalize,
    "autocontrast": lambda x: TF.autocontrast(x, 2.0),
    "adjust_sharpness": lambda x: TF.adjust_sharpness(x, 1.7),
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_functional_ops_take_one_image(name: str) -> None:
    op = OPS[name]
    image = torch.rand(3, 20, 24, generator=torch.Generator().manual_seed(0))
    out = op(image)
    assert out.shape == image.shape
    assert torch.equal(out, op(image.unsqueeze(0))[0])


@given(images=image_batches(batch_sizes=(1, 3), devices=["cpu"]), gen=generators())
def test_texture_augment_samples_one_by_one(images: torch.Tensor, gen: torch.Generator) -> None:
    aug = A.TextureAugment()
    batch = aug(images, generator=gen)
    params = aug.last_params
    for i in range(images.shape[0]):
        single = aug(images[i], params=params[i])
        assert single.shape == images[i].shape
        assert torch.equal(single, batch[i])


def test_texture_augment_one_image_with_out_buffer() -> None:
    image = torch.rand(3, 16, 16)
    aug = A.TextureAugment()
    out = torch.empty_like(image)
    y = aug(image, generator=torch.Generator().manual_seed(1), out=out)
    assert y.shape == (3, 16, 16) and torch.equal(y, out)
    assert aug.last_params is not None and aug.last_params.batch_size == 1


def test_foreground_mask_of_one_image_is_1hw() -> None:
    image = torch.zeros(3, 32, 32)
    image[:, 8:24, 8:24] = 0.8
    mask = A.ForegroundMask()(image)
    assert mask.shape == (1, 32, 32)
    assert torch.equal(mask, A.ForegroundMask()(image.unsqueeze(0))[0])


@given(images=image_batches(batch_sizes=(2, 3), heights=(16, 40), widths=(16, 40), devices=["cpu"]),
       gen=generators())
def test_synthesizer_batch_equals_single_images(images: torch.Tensor, gen: torch.Generator) -> None:
    synth = A.AnomalySynthesizer(anomaly_prob=1.0)
    batch = synth(images, generator=gen)
    for i in range(images.shape[0]):
        one = synth(images[i], params=batch.params[i])
        assert one.image.shape == images[i].shape and one.target.shape == images[i].shape
        assert one.mask.shape == (1, *images.shape[-2:]) and one.label.shape == ()
        assert torch.equal(one.image, batch.image[i])
        assert torch.equal(one.mask, batch.mask[i])
        assert torch.equal(one.label, batch.label[i])


def test_synthesizer_one_image_with_its_texture_and_replay() -> None:
    g = torch.Generator().manual_seed(3)
    image, texture = torch.rand(3, 32, 32, generator=g), torch.rand(3, 32, 32, generator=g)
    synth = A.AnomalySynthesizer(anomaly_prob=1.0)
    result = synth(image, texture, generator=g)
    assert result.foreground is not None and result.foreground.shape == (1, 32, 32)
    again = synth(image, texture, params=result.params)
    assert torch.equal(again.image, result.image)
    assert torch.equal(result.image, synth(image[None], texture[None], params=result.params).image[0])


@pytest.mark.parametrize("bad", [torch.zeros(8, 8), torch.zeros(1, 1, 3, 8, 8)])
def test_other_ranks_are_rejected_with_both_shapes_named(bad: torch.Tensor) -> None:
    for op in (A.TextureAugment(), A.ForegroundMask(), A.AnomalySynthesizer(), TF.equalize):
        with pytest.raises(ValueError, match=r"\(B, C, H, W\) or a single image \(C, H, W\)"):
            op(bad)


def test_perlin_mask_keeps_batch_size_and_size() -> None:
    mask = A.PerlinMask()(2, (16, 16), generator=torch.Generator().manual_seed(0))
    assert mask.shape == (2, 1, 16, 16)
