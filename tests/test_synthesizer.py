"""AnomalySynthesizer: Eq. 1-2 invariants, replay, batch semantics, textures, bad input."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fgad.augment import AnomalySynthesizer, SynthesisParams, SynthesisResult
from fgad.testing import (
    assert_batch_equals_samples,
    assert_label_consistent,
    assert_mask_binary,
    assert_mask_inside,
    assert_range_and_dtype,
    assert_replay_exact,
    assert_untouched_outside_mask,
    image_batches,
    texture_banks,
)


def _check_invariants(res: SynthesisResult, images: torch.Tensor) -> None:
    assert_range_and_dtype(res.image, images)
    assert_range_and_dtype(res.target, images)
    assert_mask_binary(res.mask, batch_size=images.shape[0])
    assert res.mask.dtype == images.dtype and res.label.dtype == images.dtype
    assert_label_consistent(res.mask, res.label)
    assert_untouched_outside_mask(res.image, res.target, res.mask)
    if res.foreground is not None:
        assert_mask_inside(res.mask, res.foreground)
    not_rotated = ~res.params.rotate
    assert torch.equal(res.target[not_rotated], images[not_rotated])


@settings(max_examples=12)
@given(
    images=image_batches(),
    texture_kind=st.sampled_from(["per_sample", "bank", "none"]),
    seed=st.integers(0, 2**16),
    prob=st.sampled_from([0.5, 1.0]),
)
def test_invariants_hold(images: torch.Tensor, texture_kind: str, seed: int, prob: float) -> None:
    b, c, h, w = images.shape
    gen = torch.Generator().manual_seed(seed)
    textures = {
        "per_sample": torch.rand(b, c, h, w, generator=gen, dtype=torch.float32).to(images.dtype),
        "bank": torch.rand(3, c, 13, 21, generator=gen).to(images.dtype),
        "none": None,
    }[texture_kind]
    synth = AnomalySynthesizer(anomaly_prob=prob)
    res = synth(images, textures, generator=gen)
    _check_invariants(res, images)
    # Not anomalous -> no anomaly; with anomaly_prob 1 every sample gets one (the foreground is
    # never empty: it falls back to the whole image).
    assert not bool(res.label[~res.params.anomalous].any())
    if prob == 1.0:
        assert bool(res.label.all())


def test_anomaly_prob_zero_is_identity() -> None:
    images = torch.rand(4, 3, 24, 24)
    res = AnomalySynthesizer(anomaly_prob=0.0, image_rotation_prob=0.0)(images, generator=torch.Generator())
    assert torch.equal(res.image, images) and torch.equal(res.target, images)
    assert float(res.mask.sum()) == 0 and float(res.label.sum()) == 0


def test_blend_follows_equation_2() -> None:
    gen = torch.Generator().manual_seed(1)
    images, textures = torch.rand(4, 3, 32, 32, generator=gen), torch.rand(4, 3, 32, 32, generator=gen)
    synth = AnomalySynthesizer(anomaly_prob=1.0, image_rotation_prob=0.0)
    res = synth(images, textures, generator=gen)
    altered = synth.texture_augment(textures, params=res.params.texture).double()
    beta = res.params.texture_opacity.double().view(-1, 1, 1, 1)
    m, i = res.mask.double(), images.double()
    expected = (1 - beta) * (i * m) + beta * (altered * m) + i * (1 - m)
    torch.testing.assert_close(res.image.double(), expected, atol=1e-6, rtol=0)
    assert bool(res.label.all()) and float(res.mask.mean()) > 0


def test_anomalies_land_on_the_object() -> None:
    images = torch.full((8, 3, 48, 48), 0.85)
    images[..., 12:36, 12:36] = 0.25  # dark object on a bright background
    res = AnomalySynthesizer(anomaly_prob=1.0, image_rotation_prob=0.0)(images, generator=torch.Generator())
    outside = torch.ones(1, 1, 48, 48, dtype=torch.bool)
    outside[..., 12:36, 12:36] = False
    assert float(res.mask[outside.expand_as(res.mask)].sum()) == 0 and bool(res.label.all())
    baseline = AnomalySynthesizer(foreground=None, anomaly_prob=1.0, image_rotation_prob=0.0)
    res = baseline(images, generator=torch.Generator().manual_seed(0))
    assert float(res.mask[outside.expand_as(res.mask)].sum()) > 0 and res.foreground is None


def test_rotation_by_90_degrees_is_rot90() -> None:
    images = torch.rand(2, 3, 20, 20)
    synth = AnomalySynthesizer(anomaly_prob=0.0, image_rotation_prob=1.0, image_rotation=(90.0, 90.0))
    res = synth(images, generator=torch.Generator())
    assert any(torch.allclose(res.target, torch.rot90(images, k, dims=(2, 3)), atol=1e-4) for k in (1, -1))


@pytest.mark.parametrize("size", [(20, 20), (27, 33), (1, 5), (64, 17)])
def test_rotation_grid_is_affine_grid(size: tuple[int, int]) -> None:
    from fgad.augment.synthesizer import _rotation_grid

    gen = torch.Generator().manual_seed(3)
    a, b, c, d = (torch.rand(4, generator=gen) * 2 - 1 for _ in range(4))
    theta = torch.stack((torch.stack((a, b, torch.zeros(4)), -1), torch.stack((c, d, torch.zeros(4)), -1)), 1)
    expected = torch.nn.functional.affine_grid(theta, [4, 1, *size], align_corners=False)
    # Bit for bit with torch's CPU BLAS; a BLAS that fuses the products could move the last bit.
    grid = _rotation_grid(a, b, c, d, size, torch.float32)
    torch.testing.assert_close(grid, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("texture_kind", ["per_sample", "bank"])
def test_channels_last_input_gives_the_same_result(texture_kind: str) -> None:
    gen = torch.Generator().manual_seed(4)
    images = torch.rand(6, 3, 40, 36, generator=gen)
    textures = torch.rand(6 if texture_kind == "per_sample" else 3, 3, 40, 36, generator=gen)
    synth = AnomalySynthesizer(anomaly_prob=0.7, image_rotation_prob=0.5)
    res = synth(images, textures, generator=torch.Generator().manual_seed(0))
    cl = synth(images.to(memory_format=torch.channels_last), textures.to(memory_format=torch.channels_last),
               params=res.params)
    for name in ("image", "target", "mask", "label", "foreground"):
        assert torch.equal(getattr(cl, name), getattr(res, name)), name
    with pytest.raises(ValueError, match=r"textures must have values in \[0, 1\]"):
        synth(images, (textures + 1).to(memory_format=torch.channels_last), params=res.params)
    # Unrotated, the target is the caller's tensor itself (the work copy stays internal).
    cl_images = images.to(memory_format=torch.channels_last)
    flat = AnomalySynthesizer(anomaly_prob=0.7, image_rotation_prob=0.0)
    out = flat(cl_images, textures, generator=torch.Generator().manual_seed(1))
    assert out.target is cl_images and bool(out.label.any())
    assert torch.equal(out.image, flat(images, textures, params=out.params).image)


@pytest.mark.parametrize("texture_kind", ["per_sample", "bank", "none"])
def test_replay_and_batch_equals_samples(texture_kind: str, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(2)
    images = torch.rand(5, 3, 27, 33, generator=gen).to(dtype)
    bank = torch.rand(4, 3, 16, 40, generator=gen).to(dtype)
    textures = {"per_sample": torch.rand(5, 3, 27, 33, generator=gen).to(dtype), "bank": bank, "none": None}[
        texture_kind
    ]
    synth = AnomalySynthesizer(image_rotation_prob=0.5)
    res = assert_replay_exact(synth, images, textures, seed=7)
    _check_invariants(res, images)
    if texture_kind == "per_sample":
        assert_batch_equals_samples(synth, [images, textures], res.params)
    else:
        assert_batch_equals_samples(lambda x, params: synth(x, textures, params=params), [images], res.params)


def test_bank_is_resized_once_and_cache_follows_changes() -> None:
    synth = AnomalySynthesizer(anomaly_prob=1.0)
    images, bank = torch.rand(2, 3, 24, 24), torch.rand(3, 3, 40, 40)
    res = synth(images, bank, generator=torch.Generator())
    assert synth._bank_cache._entry is not None
    cached = synth._bank_cache._entry[3]
    synth(images, bank, generator=torch.Generator())
    assert synth._bank_cache._entry[3] is cached
    bank.mul_(0.5)  # in-place change -> resized again
    replay = synth(images, bank, params=res.params)
    assert synth._bank_cache._entry[3] is not cached
    assert not torch.equal(replay.image, res.image)


def test_bank_values_are_checked_once_while_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    import fgad.augment.synthesizer as module

    reads: list[str] = []
    real = module.check_values
    monkeypatch.setattr(module, "check_values", lambda x, name: (reads.append(name), real(x, name)))
    synth = AnomalySynthesizer(anomaly_prob=1.0)
    images, bank = torch.rand(2, 3, 24, 24), torch.rand(3, 3, 40, 40)
    synth(images, bank, generator=torch.Generator())
    synth(images, bank, generator=torch.Generator())
    assert reads.count("textures") == 1 and reads.count("images") == 2
    bank[0, 0, 0, 0] = 2.0  # an in-place write: the bank is read again, and rejected
    with pytest.raises(ValueError, match="textures must have values in"):
        synth(images, bank, generator=torch.Generator())
    per_sample = torch.rand(2, 3, 24, 24)  # one texture per sample: checked on every call
    synth(images, per_sample, generator=torch.Generator())
    synth(images, per_sample, generator=torch.Generator())
    assert reads.count("textures") == 4


def test_inference_mode_bank_gives_the_same_result() -> None:
    synth = AnomalySynthesizer(anomaly_prob=1.0)
    images, bank = torch.rand(2, 3, 24, 24), torch.rand(3, 3, 40, 40)
    res = synth(images, bank, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():  # inference tensors keep no version counter: nothing is cached
        frozen = bank.clone()
        for _ in range(2):
            again = synth(images, frozen, params=res.params)
            assert torch.equal(again.image, res.image)
        frozen.mul_(0.5)
        assert not torch.equal(synth(images, frozen, params=res.params).image, res.image)
        frozen[0, 0, 0, 0] = 2.0
        with pytest.raises(ValueError, match="textures must have values in"):
            synth(images, frozen, params=res.params)


def test_op_choice_differs_between_samples() -> None:
    res = AnomalySynthesizer()(torch.rand(16, 3, 16, 16), generator=torch.Generator().manual_seed(0))
    assert len({tuple(row) for row in res.params.texture.ops.tolist()}) > 1


def test_validation_off_keeps_results() -> None:
    from fgad._checks import validation

    images = torch.rand(2, 1, 16, 16)
    synth = AnomalySynthesizer()
    res = synth(images, generator=torch.Generator())
    with validation(False):
        again = synth(images, params=res.params)
    assert torch.equal(again.image, res.image)


@pytest.mark.parametrize(
    "images, textures, match",
    [
        (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), None, "floating"),
        (torch.zeros(8, 8), None, "shape"),  # a single image (C, H, W) is accepted
        (torch.zeros(2, 2, 8, 8), None, "channels"),
        (torch.full((2, 3, 8, 8), 1.5), None, r"\[0, 1\]"),
        (torch.zeros(2, 3, 0, 8), None, "non-empty"),
        (torch.zeros(2, 3, 8, 8), torch.zeros(2, 1, 8, 8), "channels"),
        (torch.zeros(2, 3, 8, 8), torch.zeros(0, 3, 8, 8), "non-empty"),
        (torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8, dtype=torch.int64), "floating"),
        (torch.zeros(2, 3, 8, 8), "texture.png", "Tensor"),
    ],
)
def test_bad_input(images: torch.Tensor, textures: object, match: str) -> None:
    with pytest.raises((TypeError, ValueError), match=match):
        AnomalySynthesizer()(images, textures)  # type: ignore[arg-type]


def test_bad_params_and_config() -> None:
    synth = AnomalySynthesizer()
    images = torch.rand(3, 3, 8, 8)
    res = synth(images, generator=torch.Generator())
    with pytest.raises(ValueError, match="batch size 2"):
        synth(images[:2], params=res.params)
    with pytest.raises(TypeError, match="SynthesisParams"):
        synth(images, params=res.params.perlin)  # type: ignore[arg-type]
    per_sample = synth(images, torch.rand(3, 3, 8, 8), generator=torch.Generator())
    with pytest.raises(ValueError, match="textures"):
        synth(images, params=per_sample.params)
    with pytest.raises(ValueError, match="bank size"):
        bank_res = synth(images, torch.rand(5, 3, 4, 4), generator=torch.Generator().manual_seed(3))
        params = bank_res.params
        params.texture_index[:] = 4
        synth(images, torch.rand(2, 3, 4, 4), params=params)
    assert isinstance(res.params, SynthesisParams)
    for kwargs, match in [
        ({"foreground": "edges"}, "foreground"),
        ({"anomaly_prob": 1.5}, "anomaly_prob"),
        ({"texture_opacity": (0.5, 0.1)}, "texture_opacity"),
        ({"image_rotation_prob": -0.1}, "image_rotation_prob"),
        ({"perlin": object()}, "PerlinMask"),
    ]:
        with pytest.raises((TypeError, ValueError), match=match):
            AnomalySynthesizer(**kwargs)  # type: ignore[arg-type]


@given(bank=texture_banks(bank_sizes=(1, 3)))
@settings(max_examples=5)
def test_any_bank_size(bank: torch.Tensor) -> None:
    images = torch.rand(2, 3, 20, 28)
    res = AnomalySynthesizer(anomaly_prob=1.0)(images, bank, generator=torch.Generator())
    _check_invariants(res, images)
