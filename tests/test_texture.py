"""TextureAugment and the functional texture ops: PIL references and batch properties."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageEnhance, ImageOps

from fgad.augment import _buffers, _levels
from fgad.augment import functional as TF
from fgad.augment.texture import TextureAugment, TextureParams, _apply

# ---------------------------------------------------------------------------------------------- helpers


def _natural(name: str) -> np.ndarray:
    image = getattr(skimage.data, name)()
    return image[:200, :240]  # a crop keeps the tests quick; the statistics stay natural


def _random_u8(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


IMAGES = {
    "astronaut": lambda: _natural("astronaut"),
    "camera_L": lambda: _natural("camera"),
    "coffee": lambda: _natural("coffee"),
    "chelsea": lambda: _natural("chelsea"),
    "random_rgb": lambda: _random_u8((37, 53, 3), 0),
    "random_L": lambda: _random_u8((41, 29), 1),
    "low_contrast_rgb": lambda: _random_u8((40, 41, 3), 2) // 4 + 90,
}


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """uint8 (H, W) or (H, W, 3) -> float (1, C, H, W) in [0, 1]."""
    t = torch.from_numpy(np.array(array, copy=True)).float() / 255
    return t[None, None] if array.ndim == 2 else t.permute(2, 0, 1)[None]


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (1, C, H, W) on the 256-level grid -> uint8 (H, W) or (H, W, 3)."""
    a = (x[0].float() * 255).round().to(torch.uint8)
    return a[0].numpy() if a.shape[0] == 1 else a.permute(1, 2, 0).numpy()


def pil_op(image: Image.Image, name: str, p: TextureParams, i: int) -> Image.Image:
    """Sample i's strength of op ``name`` applied with PIL."""
    if name == "sharpness":
        return ImageEnhance.Sharpness(image).enhance(float(p.sharpness[i]))
    if name == "equalize":
        return ImageOps.equalize(image)
    if name == "solarize":
        return ImageOps.solarize(image, float(p.solarize[i]))
    if name == "posterize":
        return ImageOps.posterize(image, int(p.posterize[i]))
    if name == "autocontrast":
        return ImageOps.autocontrast(image, cutoff=float(p.autocontrast[i]))
    assert name == "brightness" and float(p.brightness_offset[i]) == 0.0
    return ImageEnhance.Brightness(image).enhance(float(p.brightness[i]))


def _functional_op(y: torch.Tensor, name: str, q: TextureParams) -> torch.Tensor:
    if name == "sharpness":
        return TF.adjust_sharpness(y, q.sharpness)
    if name == "equalize":
        return TF.equalize(y)
    if name == "solarize":
        return TF.solarize(y, q.solarize)
    if name == "posterize":
        return TF.posterize(y, q.posterize)
    if name == "autocontrast":
        return TF.autocontrast(y, q.autocontrast)
    return TF.adjust_brightness(y, q.brightness, q.brightness_offset)


def grid_images(
    b: int, c: int, h: int, w: int, seed: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Images on the 256-level grid (k / 255), as decoded uint8 images are."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (b, c, h, w), generator=g).float() / 255).to(dtype)


# ---------------------------------------------------------------------------------- PIL references


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_functional_ops_equal_pil(name: str) -> None:
    array = IMAGES[name]()
    image, x = Image.fromarray(array), to_tensor(array)
    cases = (
        [
            (lambda f=f: TF.adjust_sharpness(x, f), ImageEnhance.Sharpness(image).enhance(f))
            for f in (0.0, 0.37, 1.0, 1.6, 2.0)
        ]
        + [(lambda: TF.equalize(x), ImageOps.equalize(image))]
        + [(lambda t=t: TF.solarize(x, t), ImageOps.solarize(image, t)) for t in (0, 32, 77, 128, 256)]
        + [(lambda n=n: TF.posterize(x, n), ImageOps.posterize(image, n)) for n in range(1, 9)]
        + [
            (lambda c=c: TF.autocontrast(x, c), ImageOps.autocontrast(image, cutoff=c))
            for c in (0, 1, 5, 13, 20)
        ]
        + [
            (lambda f=f: TF.adjust_brightness(x, f), ImageEnhance.Brightness(image).enhance(f))
            for f in (0.5, 0.8, 1.0, 1.13, 1.9)
        ]
    )
    for ours, theirs in cases:
        np.testing.assert_array_equal(to_uint8(ours()), np.asarray(theirs))


def test_functional_per_sample_strengths_equal_pil() -> None:
    arrays = [_natural(n) for n in ("astronaut", "coffee", "chelsea")]
    x = torch.cat([to_tensor(a) for a in arrays])
    images = [Image.fromarray(a) for a in arrays]
    factor = torch.tensor([0.2, 1.0, 1.8])
    bits = torch.tensor([1, 4, 7])
    threshold = torch.tensor([40.0, 128.0, 200.0])
    cutoff = torch.tensor([0.0, 3.0, 17.0])
    outs = {
        "sharpness": TF.adjust_sharpness(x, factor),
        "posterize": TF.posterize(x, bits),
        "solarize": TF.solarize(x, threshold),
        "autocontrast": TF.autocontrast(x, cutoff),
        "brightness": TF.adjust_brightness(x, factor),
    }
    for i, image in enumerate(images):
        refs = {
            "sharpness": ImageEnhance.Sharpness(image).enhance(float(factor[i])),
            "posterize": ImageOps.posterize(image, int(bits[i])),
            "solarize": ImageOps.solarize(image, int(threshold[i])),
            "autocontrast": ImageOps.autocontrast(image, cutoff=float(cutoff[i])),
            "brightness": ImageEnhance.Brightness(image).enhance(float(factor[i])),
        }
        for op, ref in refs.items():
            np.testing.assert_array_equal(to_uint8(outs[op][i : i + 1]), np.asarray(ref), err_msg=op)


def test_sharpen_integer_path_equals_float_path(monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(8)
    levels = torch.randint(0, 256, (6, 3, 33, 40), generator=g, dtype=torch.int16)
    levels[0] = 0
    levels[1] = 255
    factor = torch.randint(0, 129, (6,), generator=g).float() / 64
    factor[:2] = torch.tensor([2.0, 2.0])
    fast = TF.sharpen_levels(levels, factor, integer=True)
    slow = TF.sharpen_levels(levels, factor, integer=False)
    assert torch.equal(fast, slow)
    assert torch.equal(fast[..., 0, :], levels[..., 0, :]) and torch.equal(fast[..., -1], levels[..., -1])
    # tiles of rows (the CPU path) give what one pass over the whole image gives
    for tile_bytes in (1, 6 * 3 * 40 * 2 * 12):
        monkeypatch.setattr(_levels, "_TILE_BYTES", tile_bytes)
        assert torch.equal(TF.sharpen_levels(levels, factor, integer=False), slow)
    with pytest.raises(TypeError, match="int16"):
        TF.sharpen_levels(levels.float(), factor)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_levels_index_is_the_rounded_level_plus_the_plane_offset(dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 256, (5, 3, 7, 11), generator=gen)
    index = TF.levels_index((u8.float() / 255).to(dtype))
    offsets = (torch.arange(15, dtype=torch.int32) * 256).view(5, 3, 1, 1)
    assert index.dtype == torch.int32 and torch.equal(index, u8.to(torch.int32) + offsets)
    # Off the 1/255 grid: every sample gets the levels it gets alone (the offset never changes the
    # rounding), and the levels are 255 x rounded (within one level at float32 half-way cases).
    x = torch.rand(5, 3, 7, 11, generator=gen).to(dtype)
    index = TF.levels_index(x)
    for i in range(5):
        assert torch.equal(index[i : i + 1] - i * 3 * 256, TF.levels_index(x[i : i + 1]))
    exact = torch.round(x.double() * 255).to(torch.int32) + offsets
    assert int((index - exact).abs().max()) <= 1 and float((index == exact).float().mean()) > 0.999


def test_histogram_without_host_sync_equals_bincount() -> None:
    index = TF.levels_index(torch.rand(3, 3, 17, 9, generator=torch.Generator().manual_seed(0)))
    flat = index.reshape(-1)
    assert torch.equal(TF._scatter_histogram(flat, 3 * 3 * 256), torch.bincount(flat, minlength=3 * 3 * 256))
    assert torch.equal(TF.levels_histogram(index).sum(-1), torch.full((3, 3), 17 * 9))


def test_brightness_offset_adds_levels() -> None:
    x = grid_images(2, 3, 8, 9, seed=3)
    out = TF.adjust_brightness(x, torch.tensor([1.1, 0.9]), torch.tensor([-30.0, 12.5]))
    levels = (x * 255).round()
    expected = torch.stack(
        [
            torch.floor(levels[0] * torch.tensor(1.1) + -30.0),
            torch.floor(levels[1] * torch.tensor(0.9) + 12.5),
        ]
    ).clamp(0, 255)
    torch.testing.assert_close((out * 255).round(), expected, rtol=0, atol=0)


@pytest.mark.parametrize("channels", [1, 3])
def test_texture_augment_equals_pil_chain(channels: int) -> None:
    """Each sample's output is its PIL ops applied one after the other (the composed tables agree)."""
    arrays = [_natural(n) for n in ("astronaut", "coffee", "chelsea", "rocket")] + [
        _random_u8((200, 240, 3), s) for s in range(4)
    ]
    if channels == 1:
        arrays = [np.asarray(Image.fromarray(a).convert("L")) for a in arrays]
    x = torch.cat([to_tensor(a) for a in arrays])
    aug = TextureAugment(num_ops=4, brightness_offset=(0.0, 0.0))
    out = aug(x, generator=torch.Generator().manual_seed(7))
    p = aug.last_params
    assert len({row for row in p.op_names()}) > 1
    for i, array in enumerate(arrays):
        image = Image.fromarray(array)
        for name in p.op_names()[i]:
            image = pil_op(image, name, p, i)
        np.testing.assert_array_equal(
            to_uint8(out[i : i + 1]), np.asarray(image), err_msg=str(p.op_names()[i])
        )


def test_texture_augment_equals_functional_chain() -> None:
    x = torch.rand(24, 3, 19, 23)
    aug = TextureAugment(num_ops=6)
    out = aug(x, generator=torch.Generator().manual_seed(11))
    p = aug.last_params
    for i in range(x.shape[0]):
        y = x[i : i + 1]
        for name in p.op_names()[i]:
            y = _functional_op(y, name, p[i])
        torch.testing.assert_close(out[i : i + 1], y, rtol=0, atol=0)


# ------------------------------------------------------------------------------------------ properties

shapes = st.tuples(st.integers(1, 6), st.sampled_from([1, 3]), st.integers(1, 19), st.integers(1, 19))


@settings(max_examples=15)
@given(
    shape=shapes,
    seed=st.integers(0, 2**31 - 1),
    num_ops=st.integers(0, 6),
    dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16]),
)
def test_shape_dtype_range_replay_and_batch(
    shape: tuple[int, int, int, int], seed: int, num_ops: int, dtype: torch.dtype
) -> None:
    x = torch.rand(shape, generator=torch.Generator().manual_seed(seed)).to(dtype)
    aug = TextureAugment(num_ops=num_ops)
    out = aug(x, generator=torch.Generator().manual_seed(seed))
    p = aug.last_params
    assert out.shape == x.shape and out.dtype == dtype
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert p.ops.shape == (shape[0], num_ops)
    again = aug(x, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(again, out)
    assert torch.equal(aug(x, params=p), out)
    one_by_one = torch.cat([aug(x[i : i + 1], params=p[i]) for i in range(shape[0])])
    assert torch.equal(one_by_one, out)
    # the branch used on GPUs (sharpness on every row, factor 1 where unused) gives the same result
    assert torch.equal(_apply(x, p, compact=False), out)
    for row in p.ops.tolist():
        assert len(set(row)) == len(row)


@settings(max_examples=10)
@given(shape=shapes, seed=st.integers(0, 2**31 - 1))
def test_identity_strengths_and_zero_ops(shape: tuple[int, int, int, int], seed: int) -> None:
    x = grid_images(*shape, seed=seed)
    identity = TextureAugment(
        num_ops=4,
        ops=("sharpness", "solarize", "posterize", "brightness"),
        sharpness=(1.0, 1.0),
        solarize=(256.0, 256.0),
        posterize=(8, 8),
        brightness=(1.0, 1.0),
        brightness_offset=(0.0, 0.0),
    )
    assert torch.equal(identity(x, generator=torch.Generator().manual_seed(seed)), x)
    off_grid = torch.rand(shape, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(TextureAugment(num_ops=0)(off_grid), off_grid)


@pytest.mark.parametrize("channels", [1, 3])
def test_low_precision_dtypes_match_float32(dtype: torch.dtype, channels: int) -> None:
    x = grid_images(5, channels, 16, 17, seed=4)
    aug = TextureAugment()
    ref = aug(x, generator=torch.Generator().manual_seed(0))
    out = aug(x.to(dtype), params=aug.last_params)
    assert out.dtype == dtype
    assert torch.equal(out, ref.to(dtype))


def test_devices_agree(device: torch.device) -> None:
    x = grid_images(6, 3, 20, 21, seed=5)
    aug = TextureAugment(num_ops=4)
    ref = aug(x, generator=torch.Generator().manual_seed(2))
    out = aug(x.to(device), params=aug.last_params)
    assert out.device.type == device.type
    assert torch.equal(out.cpu(), ref)


def test_inference_mode_and_grad_modes_mix() -> None:
    aug = TextureAugment()
    x = torch.rand(3, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    vars(_buffers._SCRATCH).clear()  # the scratch buffer is then first made under inference_mode
    with torch.inference_mode():
        first = aug(x, generator=torch.Generator().manual_seed(1))
        TF.equalize(x)
    again = aug(x, params=aug.last_params)
    assert torch.equal(first, again)
    x.requires_grad_(True)
    assert not aug(x).requires_grad


@pytest.mark.parametrize("num_ops", [0, 3, 6])
def test_out_buffer_and_in_place(num_ops: int) -> None:
    x = grid_images(7, 3, 15, 16, seed=9)
    aug = TextureAugment(num_ops=num_ops)
    ref = aug(x, generator=torch.Generator().manual_seed(3))
    buffer = torch.empty_like(x)
    assert aug(x, params=aug.last_params, out=buffer) is buffer
    assert torch.equal(buffer, ref)
    for compact in (True, False):
        y = x.clone()
        _apply(y, aug.last_params, compact=compact, out=y)
        assert torch.equal(y, ref)
    with pytest.raises(ValueError, match="out must have"):
        aug(x, out=torch.empty(7, 3, 15, 15))
    with pytest.raises(ValueError, match="contiguous"):
        aug(x, out=torch.empty(7, 3, 16, 15).transpose(2, 3))


def test_generator_leaves_global_rng_alone() -> None:
    state = torch.get_rng_state()
    TextureAugment()(
        torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0)),
        generator=torch.Generator().manual_seed(1),
    )
    assert torch.equal(torch.get_rng_state(), state)


def test_op_choice_is_per_sample_distinct_and_uniform() -> None:
    n, k = 6000, 3
    p = TextureAugment(num_ops=k).sample_params(n, generator=torch.Generator().manual_seed(0))
    ops = p.ops
    assert ((ops.unsqueeze(1) == ops.unsqueeze(2)).sum((1, 2)) == k).all()  # distinct per row
    assert len({tuple(r) for r in ops.tolist()}) == 120  # every ordered triple of six ops occurs
    counts = torch.bincount(ops.flatten(), minlength=6).float()
    expected = n * k / 6
    assert ((counts - expected).abs() < 5 * (expected * (1 - 1 / 6)) ** 0.5).all()
    for position in range(k):
        per_position = torch.bincount(ops[:, position], minlength=6).float()
        assert ((per_position - n / 6).abs() < 5 * (n / 6) ** 0.5).all()


def test_strengths_are_sampled_in_their_ranges() -> None:
    aug = TextureAugment(
        sharpness=(0.5, 0.7),
        solarize=(10, 20),
        posterize=(2, 3),
        autocontrast=(1, 2),
        brightness=(0.9, 0.95),
        brightness_offset=(-5, 5),
    )
    p = aug.sample_params(2000, generator=torch.Generator().manual_seed(0))
    for value, (lo, hi) in [
        (p.sharpness, (0.5, 0.7)),
        (p.solarize, (10, 20)),
        (p.autocontrast, (1, 2)),
        (p.brightness, (0.9, 0.95)),
        (p.brightness_offset, (-5, 5)),
    ]:
        assert float(value.min()) >= lo and float(value.max()) <= hi
        assert float(value.max() - value.min()) > 0.9 * (hi - lo)
    assert set(p.posterize.tolist()) == {2, 3}
    steps = p.sharpness * 64
    assert torch.equal(steps, steps.round())  # drawn on the 1/64 grid
    off_grid = TextureAugment(sharpness=(0.501, 0.505)).sample_params(50, generator=torch.Generator())
    assert float(off_grid.sharpness.min()) >= 0.501 and float(off_grid.sharpness.max()) <= 0.505


def test_params_select_cat_to() -> None:
    aug = TextureAugment()
    p = aug.sample_params(5, generator=torch.Generator().manual_seed(0))
    assert p.batch_size == len(p) == 5 and p.num_ops == 3
    whole = TextureParams.cat([p[0], p[1:3], p[[3, 4]]])
    assert all(torch.equal(getattr(whole, f), getattr(p, f)) for f in ("ops", "sharpness", "posterize"))
    picked = p[torch.tensor([4, 0])]
    assert torch.equal(picked.solarize, p.solarize[[4, 0]])
    assert p[-1].ops.tolist() == p.ops[-1:].tolist()
    assert p.to("cpu").device.type == "cpu"
    with pytest.raises(IndexError):
        p[5]
    assert aug.sample_params(0).ops.shape == (0, 3)


def test_sample_params_device_and_generator() -> None:
    aug = TextureAugment()
    a = aug.sample_params(4, generator=torch.Generator().manual_seed(3))
    b = aug.sample_params(4, generator=torch.Generator().manual_seed(3), device="cpu")
    assert torch.equal(a.ops, b.ops) and torch.equal(a.sharpness, b.sharpness)
    c = aug.sample_params(4, generator=torch.Generator().manual_seed(4))
    assert not torch.equal(a.sharpness, c.sharpness)


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("images", "error", "match"),
    [
        (torch.zeros(1, 3, 4, 4, dtype=torch.uint8), TypeError, "floating"),
        (torch.zeros(4, 4), ValueError, "shape"),  # a single image (C, H, W) is accepted
        (torch.zeros(1, 2, 4, 4), ValueError, "C in"),
        (torch.full((1, 3, 4, 4), 1.5), ValueError, r"\[0, 1\]"),
        (torch.full((1, 1, 4, 4), -0.1), ValueError, r"\[0, 1\]"),
        (torch.zeros(0, 3, 4, 4), ValueError, "non-empty"),
        (np.zeros((1, 3, 4, 4)), TypeError, "torch.Tensor"),
    ],
)
def test_bad_images(images: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        TextureAugment()(images)  # type: ignore[arg-type]
    with pytest.raises(error, match=match):
        TF.solarize(images, 128)  # type: ignore[arg-type]
    with pytest.raises(error, match=match):
        TF.adjust_sharpness(images, 1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_ops": 7}, ValueError, "num_ops"),
        ({"num_ops": -1}, ValueError, "num_ops"),
        ({"num_ops": 2.0}, TypeError, "num_ops"),
        ({"num_ops": 3, "ops": ("sharpness", "equalize")}, ValueError, "num_ops"),
        ({"ops": ("sharpness", "blur")}, ValueError, "ops"),
        ({"ops": "sharpness"}, TypeError, "ops"),
        ({"sharpness": (1.0, 0.5)}, ValueError, "sharpness"),
        ({"sharpness": (-0.1, 0.5)}, ValueError, "sharpness"),
        ({"sharpness": 1.0}, TypeError, "sharpness"),
        ({"solarize": (32, 300)}, ValueError, "solarize"),
        ({"posterize": (0, 9)}, ValueError, "posterize"),
        ({"posterize": (1.5, 8)}, TypeError, "posterize"),
        ({"autocontrast": (0, 60)}, ValueError, "autocontrast"),
        ({"autocontrast": (0, 50)}, ValueError, "autocontrast"),
        ({"brightness": (0.8, float("nan"))}, ValueError, "brightness"),
        ({"brightness_offset": (-300, 0)}, ValueError, "brightness_offset"),
    ],
)
def test_bad_constructor_arguments(kwargs: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        TextureAugment(**kwargs)


def test_bad_params_and_strengths() -> None:
    x = torch.rand(2, 3, 8, 8)
    aug = TextureAugment()
    p = aug.sample_params(3)
    with pytest.raises(ValueError, match=r"params.ops must have shape \(2, K\)"):
        aug(x, params=p)
    with pytest.raises(TypeError, match="TextureParams"):
        aug(x, params={"ops": p.ops})  # type: ignore[arg-type]
    bad = p[:2]
    bad.sharpness = torch.ones(3)
    with pytest.raises(ValueError, match="params.sharpness"):
        aug(x, params=bad)
    with pytest.raises(ValueError, match=r"factor must be a number or a tensor of shape \(2,\)"):
        TF.adjust_sharpness(x, torch.ones(3))
    with pytest.raises(TypeError, match="bits must be an integer tensor"):
        TF.posterize(x, torch.tensor([2.0, 3.0]))
    with pytest.raises(ValueError, match="batch_size"):
        aug.sample_params(-1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.bool, torch.int32])
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (8, 3, 256, 256)])
def test_new_buffer_is_an_ordinary_tensor(dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    from fgad.augment._buffers import _new_buffer, _new_like

    big = _new_buffer(shape, dtype, torch.device("cpu"))  # the larger one is numpy-backed
    assert big.shape == shape and big.dtype == dtype and big.is_contiguous()
    big.fill_(1)
    assert bool((big == 1).all())
    x = torch.rand(shape).to(dtype=dtype, memory_format=torch.channels_last)
    like = _new_like(x)
    assert like.shape == x.shape and like.dtype == dtype and like.stride() == x.stride()
    assert torch.equal(like.copy_(x), x)
