"""Every registered synthesizer keeps AnomalySynthesizer's contract; method-specific references."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fgad.augment import (
    CutPaste,
    CutPasteScar,
    MixedSynthesizer,
    NaturalSyntheticAnomaly,
    SynthesisResult,
    create_synthesizer,
    is_synthesizer,
    list_synthesizers,
    poisson_blend,
    register_synthesizer,
)
from fgad.testing import (
    assert_batch_equals_samples,
    assert_label_consistent,
    assert_mask_binary,
    assert_mask_inside,
    assert_range_and_dtype,
    assert_replay_exact,
    assert_untouched_outside_mask,
    image_batches,
)

DEMO = Path(__file__).resolve().parents[1] / "fgad" / "data" / "demo" / "hazelnut_toy" / "train" / "good"


def _demo(count: int, size: int) -> np.ndarray:
    files = sorted(DEMO.glob("*.png"))[:count]
    return np.stack([cv2.resize(cv2.imread(str(f)), (size, size), interpolation=cv2.INTER_AREA)
                     for f in files])


# ------------------------------------------------------------------------------------------- contract
@pytest.mark.parametrize("name", list_synthesizers())
@settings(max_examples=6)
@given(
    images=image_batches(batch_sizes=(1, 3), heights=(12, 40), widths=(12, 40), devices=("cpu",)),
    seed=st.integers(0, 2**31 - 1),
    prob=st.sampled_from([0.0, 0.5, 1.0]),
    bank=st.sampled_from(["none", "bank"]),
    foreground=st.sampled_from(["default", None, "otsu"]),
)
def test_contract(
    name: str, images: torch.Tensor, seed: int, prob: float, bank: str, foreground: object
) -> None:
    options = {} if foreground == "default" else {"foreground": foreground}
    synth = create_synthesizer(name, anomaly_prob=prob, **options)
    gen = torch.Generator().manual_seed(seed)
    textures = None
    if bank == "bank":
        textures = torch.rand(3, images.shape[1], 20, 24, generator=gen).to(images.dtype)
    res = assert_replay_exact(synth, images, textures=textures, seed=seed)
    assert isinstance(res, SynthesisResult)
    assert_range_and_dtype(res.image, images)
    assert_range_and_dtype(res.target, images)
    assert_mask_binary(res.mask, images.shape[0])
    assert res.mask.dtype == images.dtype and res.label.dtype == images.dtype
    assert_label_consistent(res.mask, res.label)
    assert_untouched_outside_mask(res.image, res.target, res.mask)
    if res.foreground is not None:
        assert_mask_inside(res.mask, res.foreground)
    if prob == 0.0:
        assert torch.equal(res.image, res.target) and not bool(res.label.any())
    assert_batch_equals_samples(synth, [images], res.params, textures=textures)
    one = synth(images[0], textures=textures, params=res.params[0])
    assert one.image.shape == images.shape[1:] and one.mask.shape == (1, *images.shape[2:])
    assert one.label.ndim == 0 and torch.equal(one.image, res.image[0])


@pytest.mark.parametrize("name", list_synthesizers())
def test_foreground_given_per_call(name: str) -> None:
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    masks = torch.zeros(4, 1, 32, 32, dtype=torch.bool)
    masks[:, :, 8:24, 4:20] = True
    synth = create_synthesizer(name, anomaly_prob=1.0, foreground=None)
    for call_fg in (masks, masks.float(), lambda x: masks):
        res = synth(images, generator=torch.Generator().manual_seed(0), foreground=call_fg)
        region = res.foreground if res.foreground is not None else masks
        assert_mask_inside(res.mask, region)
        assert_untouched_outside_mask(res.image, res.target, res.mask)
        assert bool(res.label.all())
    empty = synth(images, generator=torch.Generator().manual_seed(0), foreground=torch.zeros_like(masks))
    assert not bool(empty.mask.any()) and torch.equal(empty.image, empty.target)


def test_registry() -> None:
    assert {"fgad", "draem", "cutpaste", "cutpaste_scar", "nsa", "mixed"} <= set(list_synthesizers())
    assert list_synthesizers("cutpaste*") == ["cutpaste", "cutpaste_scar"]
    assert is_synthesizer("nsa") and not is_synthesizer("nope")
    assert create_synthesizer("draem").foreground_mask is None
    assert create_synthesizer("fgad").foreground_mask is not None
    assert create_synthesizer("cutpaste", area_ratio=(0.1, 0.2)).area_ratio == (0.1, 0.2)
    with pytest.raises(KeyError, match="cutpaste"):
        create_synthesizer("cutpast")
    with pytest.raises(ValueError, match="already registered"):
        register_synthesizer(lambda **kw: CutPaste(**kw), name="cutpaste")
    mixed = create_synthesizer("mixed", synthesizers={"fgad": 0.5, "cutpaste_scar": 0.25, "nsa": 0.25})
    assert mixed.names == ("fgad", "cutpaste_scar", "nsa") and mixed.weights == (0.5, 0.25, 0.25)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="aspect_ratio"):
        CutPaste(aspect_ratio=(1.5, 3.0))
    with pytest.raises(ValueError, match="color_jitter"):
        CutPaste(color_jitter=2.0)
    with pytest.raises(ValueError, match="foreground"):
        CutPasteScar(foreground="nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="anomaly_prob"):
        NaturalSyntheticAnomaly(anomaly_prob=1.5)
    with pytest.raises(ValueError, match="weight"):
        MixedSynthesizer({"fgad": 0.0})
    with pytest.raises(TypeError, match="CutPasteParams"):
        CutPaste()(torch.rand(1, 3, 16, 16), params=NaturalSyntheticAnomaly().sample_params(1))
    with pytest.raises(ValueError, match="batch size"):
        CutPaste()(torch.rand(2, 3, 16, 16), params=CutPaste().sample_params(1))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        CutPaste()(torch.rand(1, 3, 16, 16) * 2)


# ------------------------------------------------------------------------------------------- CutPaste
def test_cutpaste_cuts_from_the_same_image() -> None:
    images = torch.rand(6, 3, 48, 40, generator=torch.Generator().manual_seed(3))
    synth = CutPaste(foreground=None, anomaly_prob=1.0, color_jitter=0.0)
    res = synth(images, generator=torch.Generator().manual_seed(0))
    p = res.params
    for i in range(6):
        area = float(p.area[i]) * 48 * 40
        h = min(max(round(math.sqrt(area * float(p.aspect[i]))), 1), 48)
        w = min(max(round(math.sqrt(area / float(p.aspect[i]))), 1), 40)
        assert 0.02 <= float(p.area[i]) <= 0.15 and 0.3 <= float(p.aspect[i]) <= 3.3
        sy = math.floor(float(p.source[i, 0]) * (48 - h + 1))
        sx = math.floor(float(p.source[i, 1]) * (40 - w + 1))
        ys, xs = res.mask[i, 0].nonzero(as_tuple=True)
        ty, tx = int(ys.min()), int(xs.min())
        assert int(res.mask[i].sum()) == h * w and int(ys.max()) - ty + 1 == h and int(xs.max()) - tx + 1 == w
        assert torch.equal(res.image[i, :, ty : ty + h, tx : tx + w], images[i, :, sy : sy + h, sx : sx + w])


@pytest.mark.parametrize("foreground", ["otsu", None])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("prob", [0.0, 0.7, 1.0])
def test_cutpaste_sparse_and_dense_paths_agree(
    foreground: str | None, dtype: torch.dtype, prob: float
) -> None:
    images = torch.rand(5, 3, 40, 40, generator=torch.Generator().manual_seed(4)).to(dtype)
    for cls in (CutPaste, CutPasteScar):
        sparse = cls(foreground=foreground, anomaly_prob=prob)
        dense = cls(foreground=foreground, anomaly_prob=prob)
        dense._sparse_on_cpu = False
        a = sparse(images, generator=torch.Generator().manual_seed(2))
        b = dense(images, params=a.params)
        assert torch.equal(a.image, b.image) and torch.equal(a.mask, b.mask)
        assert torch.equal(a.label, b.label) and a.label.dtype == dtype
        assert bool(a.label.any()) == (prob > 0)


def test_colour_jitter_changes_the_patch_within_its_range() -> None:
    from fgad.augment._patch import colour_map

    factors = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.1, 0.9, 1.1, 0.1]])
    matrix, offset = colour_map(factors, torch.tensor([0.5, 0.5]), 3)
    assert torch.allclose(matrix[0], torch.eye(3)) and float(offset[0]) == 0.0
    grey = torch.full((3,), 0.4)
    # a hue rotation and saturation keep grey pixels grey; brightness and contrast move them together
    out = matrix[1] @ grey + offset[1]
    assert torch.allclose(out, out.mean().expand(3), atol=1e-6)
    assert abs(float(out[0]) - (0.9 * 1.1 * 0.4 + 0.1 * 1.1 * 0.5)) < 1e-6


def test_scar_geometry() -> None:
    images = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(5))
    synth = CutPasteScar(foreground=None, anomaly_prob=1.0, width=(6, 6), height=(24, 24), color_jitter=0.0)
    for angle in (-40.0, 0.0, 30.0):
        params = synth.sample_params(1, generator=torch.Generator().manual_seed(7))
        params.angle.fill_(angle)
        params.target.fill_((48 * 96 + 48 + 0.5) / (96 * 96))  # rank of pixel (48, 48), row-major
        res = synth(images, params=params)
        ys, xs = res.mask[0, 0].nonzero(as_tuple=True)
        assert abs(len(ys) - 24 * 6) <= 0.15 * 24 * 6
        assert abs(float(ys.float().mean()) - 48.0) <= 1.0 and abs(float(xs.float().mean()) - 48.0) <= 1.0
        # the long axis of the mask (second moments) points along the rotated scar
        cov = torch.cov(torch.stack((xs.float(), ys.float())))
        evals, evecs = torch.linalg.eigh(cov)
        long_axis = evecs[:, 1]
        measured = math.degrees(math.atan2(float(long_axis[0]), float(long_axis[1])))
        diff = (measured - angle + 90.0) % 180.0 - 90.0  # positive: counter-clockwise on screen
        assert abs(diff) <= 3.0, (angle, measured)
        assert float(evals[1] / evals[0]) > 8.0  # thin: (24 / 6)**2 = 16
    params.angle.fill_(0.0)
    res = synth(images, params=params)
    ys, xs = res.mask[0, 0].nonzero(as_tuple=True)
    ty, tx = int(ys.min()), int(xs.min())
    sy = math.floor(float(params.source[0, 0]) * (96 - 24 + 1))
    sx = math.floor(float(params.source[0, 1]) * (96 - 6 + 1))
    assert torch.equal(res.image[0, :, ty : ty + 24, tx : tx + 6], images[0, :, sy : sy + 24, sx : sx + 6])


# ------------------------------------------------------------------------------------------- Poisson / NSA
def test_poisson_blend_matches_cv2_seamless_clone() -> None:
    """Against cv2.seamlessClone (NORMAL_CLONE) on the demo photos and the texture-like noise.

    cv2 solves on the bounding box of the mask (its outer pixels are the boundary), clones the
    source's forward differences where the mask eroded 3 times by a 3 x 3 square is set, and
    truncates the float solution to uint8. The same equation here (``edges="forward"``, that eroded
    region), truncated the same way: within one grey level on every interior pixel, equal on >= 99%.
    """
    dest = _demo(3, 96)
    rng = np.random.default_rng(0)
    for i in range(3):
        src = cv2.GaussianBlur(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8), (0, 0), 2.0)
        top, left = int(rng.integers(4, 30)), int(rng.integers(4, 30))
        h, w = int(rng.integers(20, 50)), int(rng.integers(20, 50))
        mask = np.zeros((96, 96), np.uint8)
        mask[top - 1 : top + h + 1, left - 1 : left + w + 1] = 255  # box of unknowns + its ring
        centre = (left - 1 + (w + 2) // 2, top - 1 + (h + 2) // 2)
        ref = cv2.seamlessClone(src, dest[i], mask, centre, cv2.NORMAL_CLONE).astype(np.float64)
        region = torch.zeros(1, 1, 96, 96, dtype=torch.bool)
        region[..., top + 2 : top + h - 2, left + 2 : left + w - 2] = True  # the mask eroded 3 times
        d = torch.from_numpy(dest[i]).permute(2, 0, 1)[None].double() / 255
        s = torch.from_numpy(src).permute(2, 0, 1)[None].double() / 255
        out = poisson_blend(d.float(), s.float(), torch.tensor([[top, left, h, w]]), region, edges="forward")
        ours = np.floor(out[0].permute(1, 2, 0).double().numpy() * 255 + 1e-3)
        inner = np.abs(ours - ref)[top + 1 : top + h - 1, left + 1 : left + w - 1]
        assert inner.max() <= 1.0 and (inner == 0).mean() >= 0.99, (inner.max(), (inner == 0).mean())
        outside = np.ones((96, 96), bool)
        outside[top : top + h, left : left + w] = False
        assert np.array_equal(ours[outside], ref[outside])


def test_poisson_blend_keeps_a_constant_offset_out_and_interpolates_a_flat_source() -> None:
    dest = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25
    box = torch.tensor([[3, 4, 12, 10], [6, 2, 16, 20]])
    same = poisson_blend(dest, (dest + 0.1).clamp(0, 1), box)
    assert torch.allclose(same, dest, atol=1e-5)
    flat = poisson_blend(dest, torch.zeros_like(dest), box)  # no source gradient: a harmonic patch
    inner = flat[0, :, 4:14, 5:13]
    lap = 4 * inner - flat[0, :, 3:13, 5:13] - flat[0, :, 5:15, 5:13]
    lap = lap - flat[0, :, 4:14, 4:12] - flat[0, :, 4:14, 6:14]
    assert float(lap.abs().max()) < 1e-4


def test_nsa_blends_patches_of_the_bank_seamlessly() -> None:
    images = torch.from_numpy(_demo(4, 64)).permute(0, 3, 1, 2).float() / 255
    synth = NaturalSyntheticAnomaly(foreground=None, anomaly_prob=1.0)
    flat = torch.full_like(images, 0.5)  # no gradient to clone: the patch is the harmonic fill
    res = synth(images, flat, generator=torch.Generator().manual_seed(0))
    assert bool(res.label.all())
    out = res.image.double()
    lap = 4 * out[..., 1:-1, 1:-1] - out[..., :-2, 1:-1] - out[..., 2:, 1:-1]
    lap = lap - out[..., 1:-1, :-2] - out[..., 1:-1, 2:]
    inside = res.mask[..., 1:-1, 1:-1].bool().expand_as(lap)
    assert float(lap[inside].abs().max()) < 1e-4
    other = synth(images, images.flip(0), params=res.params)
    assert float((other.image - images).abs().amax()) > 0.1  # another photo's structure went in
    # the seam: on the patch's border pixels the change is smaller than inside the patch
    inside = res.mask[:, 0].bool()
    border = inside & torch.nn.functional.max_pool2d((~inside).float().unsqueeze(1), 3, 1, 1)[:, 0].bool()
    change = (other.image - images).abs().amax(1)
    assert float(change[border].mean()) < 0.5 * float(change[inside & ~border].mean())


def test_nsa_without_a_bank_uses_the_image_itself() -> None:
    images = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    synth = create_synthesizer("nsa", foreground=None, anomaly_prob=1.0)
    a = synth(images, generator=torch.Generator().manual_seed(0))
    b = synth(images, images, params=a.params)  # one source per sample: the image itself
    assert torch.equal(a.image, b.image)


def test_nsa_checks_a_bank_once_and_takes_inference_tensors(monkeypatch: pytest.MonkeyPatch) -> None:
    import fgad.augment._patch as patch_module
    import fgad.augment.synthesizer as synth_module

    reads: list[str] = []
    for module in (patch_module, synth_module):
        real = module.check_values
        monkeypatch.setattr(
            module, "check_values", lambda x, name, real=real: (reads.append(name), real(x, name))
        )
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    bank = torch.rand(5, 3, 48, 48, generator=torch.Generator().manual_seed(2))
    synth = create_synthesizer("nsa", foreground=None, anomaly_prob=1.0)
    res = synth(images, bank, generator=torch.Generator().manual_seed(0))
    assert torch.equal(synth(images, bank, params=res.params).image, res.image)
    assert reads.count("textures") == 1 and reads.count("images") == 2
    bank[1, 0, 0, 0] = -1.0
    with pytest.raises(ValueError, match="textures must have values in"):
        synth(images, bank, params=res.params)
    bank[1, 0, 0, 0] = 0.5
    with torch.inference_mode():
        frozen = bank.clone()
        first = synth(images, frozen, params=res.params)
        assert torch.equal(synth(images, frozen, params=res.params).image, first.image)


# ------------------------------------------------------------------------------------------- mixed
def test_mixed_choice_follows_the_weights_and_paths_agree() -> None:
    synth = create_synthesizer(
        "mixed", synthesizers={"fgad": 0.5, "cutpaste_scar": 0.25, "nsa": 0.25}, anomaly_prob=0.8
    )
    params = synth.sample_params(4000, generator=torch.Generator().manual_seed(0))
    share = torch.bincount(params.choice, minlength=3).double() / 4000
    assert torch.allclose(share, torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64), atol=0.03)
    images = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    rows = synth(images, generator=torch.Generator().manual_seed(3))
    synth._rows_on_cpu = False
    whole = synth(images, params=rows.params)
    for field in ("image", "target", "mask", "label", "foreground"):
        assert torch.equal(getattr(rows, field), getattr(whole, field)), field
    for k in range(len(synth.names)):
        chosen = rows.params.choice == k
        alone = synth.synthesizers[k](images[chosen], params=rows.params.children[k][chosen])
        hit = rows.params.anomalous[chosen]  # the synthesizers were built with anomaly_prob=1
        assert torch.equal(alone.image[hit], rows.image[chosen][hit])


def test_mixed_keeps_draem_unrestricted_unless_told() -> None:
    # draem is the method without a foreground: the mixture's foreground does not turn it into fgad
    mixed = create_synthesizer("mixed", synthesizers={"draem": 0.5, "fgad": 0.5}, foreground="otsu")
    draem, fgad = mixed.synthesizers
    assert draem.foreground_mask is None and fgad.foreground_mask is not None
    assert fgad.foreground_mask.method == "otsu"
    told = create_synthesizer(
        "mixed", synthesizers={"draem": 1.0}, foreground="otsu", options={"draem": {"foreground": "auto"}}
    )
    assert told.synthesizers[0].foreground_mask.method == "auto"
    # a dark object on a bright frame: draem's anomalies reach the frame, fgad's stay on the object
    images = torch.full((16, 3, 64, 64), 0.9)
    images[:, :, 16:48, 16:48] = 0.1
    res = create_synthesizer("mixed", synthesizers={"draem": 0.5, "fgad": 0.5}, anomaly_prob=1.0)(
        images, generator=torch.Generator().manual_seed(0)
    )
    frame = torch.ones(64, 64, dtype=torch.bool)
    frame[16:48, 16:48] = False
    outside = (res.mask[:, 0] > 0) & frame
    chose_draem = res.params.choice == 0
    assert bool(outside[chose_draem].any()) and not bool(outside[~chose_draem].any())


def test_nsa_size_classes_and_one_window_agree() -> None:
    images = torch.rand(6, 3, 72, 64, generator=torch.Generator().manual_seed(6))
    bank = torch.rand(4, 3, 40, 50, generator=torch.Generator().manual_seed(7))
    classes = NaturalSyntheticAnomaly(foreground="otsu", anomaly_prob=0.8)
    single = NaturalSyntheticAnomaly(foreground="otsu", anomaly_prob=0.8)
    single._classes_on_cpu = False
    a = classes(images, bank, generator=torch.Generator().manual_seed(8))
    b = single(images, bank, params=a.params)
    assert torch.equal(a.image, b.image) and torch.equal(a.mask, b.mask)


def test_zoo_example_draws_one_row_per_method(tmp_path: Path) -> None:
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "examples" / "synthesizer_zoo.py"
    spec = importlib.util.spec_from_file_location("synthesizer_zoo", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(["--output", str(tmp_path / "zoo.png"), "--count", "2", "--size", "48"])
    grid = cv2.imread(str(out))
    assert grid.shape == (48 * len(list_synthesizers()), 96, 3)
