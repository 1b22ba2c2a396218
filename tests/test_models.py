"""fgad.models: registry, architectures (DRAEM's sizes), ECA kernel sizes, the detector's forward."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from timm.layers import EcaModule
from torch import nn

from fgad.models import (
    AnomalyDetector,
    DetectorOutput,
    ReconstructiveAutoencoder,
    UNetSegmenter,
    create_model,
    is_model,
    list_models,
    register_model,
)
from fgad.models._registry import MODELS
from fgad.models.detector import image_score

BUILTIN = ["autoencoder", "draem", "draem_small", "eca_autoencoder", "fgad", "fgad_small", "unet_segmenter"]
DETECTORS = ["draem", "draem_small", "fgad", "fgad_small"]
SMALL_WIDTH = 8

# Parameter counts measured from DRAEM's networks (ReconstructiveSubNetwork(), and
# DiscriminativeSubNetwork(in_channels=6, out_channels=2)): 69.05 M and 28.37 M.
DRAEM_RECONSTRUCTIVE = 69_048_579
DRAEM_DISCRIMINATIVE = 28_374_146


def _input(model: torch.nn.Module, batch: int = 2, size: tuple[int, int] = (32, 64)) -> torch.Tensor:
    return torch.rand(batch, model.in_channels, *size)


def _tensors(out: object) -> list[torch.Tensor]:
    return list(out) if isinstance(out, DetectorOutput) else [out]  # type: ignore[list-item]


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------------------------- registry


def test_list_models_and_patterns() -> None:
    names = list_models()
    assert names == sorted(names)
    assert set(BUILTIN) <= set(names)
    assert list_models("*_small") == ["draem_small", "fgad_small"]
    assert list_models("*autoencoder") == ["autoencoder", "eca_autoencoder"]
    assert list_models("no_such_*") == []
    assert is_model("fgad") and not is_model("fgda")


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(KeyError, match="did you mean 'fgad'"):
        create_model("fgda")


def test_duplicate_name_is_an_error() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model(name="fgad")(lambda **kw: AnomalyDetector(**kw))


def test_kwargs_override_variant_defaults() -> None:
    small = create_model("fgad_small", device="meta")
    assert (small.ae_width, small.seg_width) == (32, 16)
    wide = create_model("fgad", base_width=48, device="meta")
    assert (wide.ae_width, wide.seg_width) == (48, 24)
    explicit = create_model("draem", base_width=48, seg_width=40, device="meta")
    assert (explicit.ae_width, explicit.seg_width) == (48, 40)
    assert explicit.config["kwargs"]["seg_width"] == 40 and explicit.config["kwargs"]["ae_width"] is None
    assert explicit.segmenter.encoder[0][0][0].out_channels == 40
    assert (
        create_model("fgad_small", ae_width=12, device="meta").autoencoder.encoder[0].conv[0][0].out_channels
        == 12
    )
    grey = create_model("fgad", in_channels=1, base_width=8)
    assert grey.segmenter.in_channels == 2 and grey.autoencoder.out_channels == 1
    out = grey(torch.rand(2, 1, 32, 40))
    assert out.reconstruction.shape == (2, 1, 32, 40) and out.anomaly_map.shape == (2, 1, 32, 40)


@pytest.mark.parametrize("name", BUILTIN)
def test_config_holds_name_and_json_kwargs(name: str) -> None:
    model = create_model(name, base_width=SMALL_WIDTH)
    assert model.config["name"] == name
    assert json.loads(json.dumps(model.config)) == model.config
    assert model.config["kwargs"] == create_model(name, **model.config["kwargs"]).config["kwargs"]


@pytest.mark.parametrize("name", BUILTIN)
def test_entrypoint_and_create_model_record_the_same_config(name: str) -> None:
    # The registered function itself (not only create_model) records its registered name.
    entrypoint = MODELS.get(name).factory
    direct = entrypoint(base_width=SMALL_WIDTH, device="meta", dtype=torch.float64)
    assert direct.config == create_model(name, base_width=SMALL_WIDTH, device="meta").config
    assert direct.config["name"] == name and "device" not in direct.config["kwargs"]


def test_constructor_arguments_are_validated() -> None:
    with pytest.raises(ValueError, match="smoothing_kernel"):
        AnomalyDetector(base_width=8, smoothing_kernel=4)
    with pytest.raises(ValueError, match="in_channels must be 1 or 3"):
        AnomalyDetector(base_width=8, in_channels=2)
    with pytest.raises(ValueError, match="attention"):
        ReconstructiveAutoencoder(base_width=8, attention="se-net")
    with pytest.raises(ValueError, match="pad_mode"):
        UNetSegmenter(base_width=4, pad_mode="circular")
    with pytest.raises(ValueError, match="base_width"):
        create_model("fgad", base_width=0)


# ----------------------------------------------------------------------------------- architecture sizes


def _conv_bn(cin: int, cout: int) -> int:
    return 9 * cin * cout + cout + 2 * cout  # 3x3 conv with bias + BatchNorm affine


def _reconstructive_count(c: int, w: int) -> int:
    """DRAEM's reconstructive sub-network, layer by layer (Zavrtanik et al. 2021, Fig. 3)."""
    encoder = [(c, w), (w, w), (w, 2 * w), (2 * w, 2 * w), (2 * w, 4 * w), (4 * w, 4 * w)]
    encoder += [(4 * w, 8 * w), (8 * w, 8 * w), (8 * w, 8 * w), (8 * w, 8 * w)]
    decoder = []
    for a, b in [(8 * w, 4 * w), (4 * w, 2 * w), (2 * w, w), (w, w)]:
        decoder += [(a if not decoder else decoder[-1][1], a), (a, a), (a, b)]
    head = 9 * w * c + c
    return sum(_conv_bn(i, o) for i, o in encoder + decoder) + head


def _discriminative_count(c_in: int, w: int, classes: int = 2) -> int:
    """DRAEM's discriminative U-Net, layer by layer: skips concatenate at every scale."""
    widths = [w, 2 * w, 4 * w, 8 * w, 8 * w, 8 * w]
    layers = []
    previous = c_in
    for width in widths:
        layers += [(previous, width), (width, width)]
        previous = width
    for up, skip in zip([8 * w, 4 * w, 2 * w, w, w], [8 * w, 8 * w, 4 * w, 2 * w, w], strict=True):
        layers += [(previous, up), (up + skip, up), (up, up)]
        previous = up
    return sum(_conv_bn(i, o) for i, o in layers) + 9 * w * classes + classes


def test_default_parameter_counts_equal_draem() -> None:
    ae = create_model("autoencoder", device="meta")
    seg = create_model("unet_segmenter", device="meta")
    assert _n_params(ae) == DRAEM_RECONSTRUCTIVE == _reconstructive_count(3, 128)
    assert _n_params(seg) == DRAEM_DISCRIMINATIVE == _discriminative_count(6, 64)
    assert round(DRAEM_RECONSTRUCTIVE / 1e6, 2) == 69.05
    assert round(DRAEM_DISCRIMINATIVE / 1e6, 2) == 28.37
    eca = create_model("eca_autoencoder", device="meta")
    # Five ECA modules, each one bias-free 1-D conv of size 5 at C = 128 ... 1024.
    assert _n_params(eca) - _n_params(ae) == 25
    assert _n_params(create_model("draem", device="meta")) == DRAEM_RECONSTRUCTIVE + DRAEM_DISCRIMINATIVE
    assert _n_params(create_model("fgad", device="meta")) == DRAEM_RECONSTRUCTIVE + DRAEM_DISCRIMINATIVE + 25


@pytest.mark.parametrize(("channels", "width"), [(1, 4), (3, 8), (3, 32), (1, 96)])
def test_parameter_counts_follow_draem_layout_at_any_width(channels: int, width: int) -> None:
    ae = ReconstructiveAutoencoder(channels, base_width=width, device="meta")
    seg = UNetSegmenter(2 * channels, 2, base_width=width, device="meta")
    assert _n_params(ae) == _reconstructive_count(channels, width)
    assert _n_params(seg) == _discriminative_count(2 * channels, width)


# ------------------------------------------------------------------------------------------------- ECA


def _eq3_kernel(channels: int, gamma: float = 2.0, b: float = 1.0) -> int:
    """Eq. 3: k = |log2(C) / gamma + b / gamma|_odd (truncate, then an even value goes up by one)."""
    return int(math.floor(abs(math.log2(channels) / gamma + b / gamma))) | 1


def _eca_inputs(model: torch.nn.Module, x: torch.Tensor) -> list[tuple[EcaModule, int]]:
    seen: list[tuple[EcaModule, int]] = []
    handles = [
        m.register_forward_hook(lambda mod, args, out: seen.append((mod, args[0].shape[1])))
        for m in model.modules()
        if isinstance(m, EcaModule)
    ]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return seen


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("eca_autoencoder", {}), ("fgad", {}), ("fgad_small", {}), ("fgad", {"base_width": 8})],
)
def test_eca_kernel_sizes_follow_eq3(name: str, kwargs: dict[str, int]) -> None:
    model = create_model(name, device="meta", **kwargs).eval()
    seen = _eca_inputs(model, torch.empty(1, 3, 64, 64, device="meta"))
    ae = model.autoencoder if isinstance(model, AnomalyDetector) else model
    w = ae.config["kwargs"]["base_width"]
    assert [c for _, c in seen] == [w, 2 * w, 4 * w, 8 * w, 8 * w], "ECA after each of the 5 encoder blocks"
    for module, channels in seen:
        assert module.conv.kernel_size[0] == _eq3_kernel(channels), channels


def test_eca_eq3_reference_values() -> None:
    # Table from the rule with gamma = 2, b = 1: C = 8..64 -> 3; 128..1024 -> 5; 4096 -> 7.
    assert [_eq3_kernel(c) for c in (8, 16, 32, 64, 128, 256, 512, 1024, 4096)] == [3, 3, 3, 3, 5, 5, 5, 5, 7]
    assert [EcaModule(channels=c).conv.kernel_size[0] for c in (8, 64, 128, 1024, 4096)] == [3, 3, 5, 5, 7]


@pytest.mark.parametrize("name", ["autoencoder", "draem", "draem_small", "unet_segmenter"])
def test_no_attention_in_the_ablation_networks(name: str) -> None:
    assert not any(isinstance(m, EcaModule) for m in create_model(name, device="meta").modules())


# ---------------------------------------------------------------------------- every model: forward etc.


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_every_model(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, base_width=SMALL_WIDTH)
    x = _input(model)
    out = model(x)
    if isinstance(model, AnomalyDetector):
        assert isinstance(out, DetectorOutput)
        b, c, h, w = x.shape
        assert out.reconstruction.shape == (b, c, h, w)
        assert out.logits.shape == (b, 2, h, w)
        assert out.anomaly_map.shape == (b, 1, h, w)
        assert out.score.shape == out.score_raw.shape == (b,)
        target = (torch.rand(b, h, w) > 0.9).long()
        loss = F.mse_loss(out.reconstruction, x) + F.cross_entropy(out.logits, target)
    else:
        assert out.shape == (x.shape[0], model.out_channels, *x.shape[-2:])
        loss = F.mse_loss(out, torch.rand_like(out))
    assert all(torch.isfinite(t).all() for t in _tensors(out))
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        if pname.endswith("weight"):
            assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", list_models())
def test_eval_output_does_not_depend_on_the_batch(name: str) -> None:
    # In eval mode an image's outputs (reconstruction, logits, map, scores) are a function of that image
    # alone: the same in its batch, alone, and at another position among other images. BatchNorm left in
    # training mode (batch statistics) or anything that mixes samples of a batch breaks this.
    torch.manual_seed(1)
    model = create_model(name, base_width=SMALL_WIDTH)
    model(_input(model, batch=4, size=(32, 32)))  # a training pass moves BatchNorm's statistics off init
    model.eval()
    x = _input(model, batch=4, size=(32, 32))
    others = _input(model, batch=3, size=(32, 32))
    with torch.no_grad():
        batch = _tensors(model(x))
        for i in range(4):
            alone = _tensors(model(x[i : i + 1]))
            j = 3 - i  # another position, among other images
            mixed = _tensors(model(torch.cat((others[:j], x[i : i + 1], others[j:]))))
            for in_batch, single, among in zip(batch, alone, mixed, strict=True):
                torch.testing.assert_close(single[0], in_batch[i], rtol=1e-5, atol=1e-5)
                torch.testing.assert_close(among[j], in_batch[i], rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------ the detector


@pytest.fixture(scope="module")
def detector() -> AnomalyDetector:
    torch.manual_seed(0)
    model = create_model("fgad", base_width=SMALL_WIDTH)
    model(torch.rand(4, 3, 64, 64))
    return model.eval()


def test_probabilities_and_scores(detector: AnomalyDetector) -> None:
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        out = detector(x)
    expected = torch.softmax(out.logits, dim=1)[:, 1:2]
    torch.testing.assert_close(out.anomaly_map, expected)
    assert ((out.anomaly_map >= 0) & (out.anomaly_map <= 1)).all()
    torch.testing.assert_close(out.score_raw, out.anomaly_map.flatten(1).max(dim=1).values)
    torch.testing.assert_close(out.score, image_score(out.anomaly_map))  # the default rule
    assert (out.score <= out.score_raw + 1e-6).all()
    smoothed, score = detector.postprocess(out.anomaly_map)
    assert smoothed.shape == out.anomaly_map.shape
    draem_rule = AnomalyDetector(base_width=SMALL_WIDTH, score_method="smoothed_max").eval()
    draem_rule.load_state_dict(detector.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(draem_rule(x).score, score)


@pytest.mark.parametrize(("kernel", "include_pad"), [(21, False), (21, True), (5, False), (1, False)])
def test_postprocess_matches_scipy_uniform_filter(kernel: int, include_pad: bool) -> None:
    gen = torch.Generator().manual_seed(kernel)
    amap = torch.rand(2, 1, 37, 50, generator=gen, dtype=torch.float64)
    model = AnomalyDetector(base_width=4, smoothing_kernel=kernel, smoothing_include_pad=include_pad)
    smoothed, score = model.postprocess(amap)
    ref = []
    for image in amap[:, 0].numpy():
        total = ndimage.uniform_filter(image, size=kernel, mode="constant", cval=0.0)
        if not include_pad:  # divide by the number of window pixels inside the image
            total = total / ndimage.uniform_filter(
                np.ones_like(image), size=kernel, mode="constant", cval=0.0
            )
        ref.append(total)
    ref_map = torch.from_numpy(np.stack(ref))[:, None]
    torch.testing.assert_close(smoothed, ref_map, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(score, ref_map.flatten(1).max(dim=1).values, rtol=1e-10, atol=1e-12)


def test_postprocess_rejects_bad_maps(detector: AnomalyDetector) -> None:
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        detector.postprocess(torch.rand(1, 2, 8, 8))
    with pytest.raises(TypeError, match="floating"):
        detector.postprocess(torch.zeros(1, 1, 8, 8, dtype=torch.long))


def test_odd_size_is_padded_by_reflection_and_cropped(detector: AnomalyDetector) -> None:
    x = torch.rand(1, 3, 250, 300)
    with torch.no_grad():
        out = detector(x)
        assert [t.shape[-2:] for t in out[:3]] == [(250, 300)] * 3
        padded = F.pad(x, (0, 20, 0, 6), mode="reflect")  # 256 x 320: multiples of 32
        ref = detector(padded)
    torch.testing.assert_close(out.reconstruction, ref.reconstruction[..., :250, :300])
    torch.testing.assert_close(out.logits, ref.logits[..., :250, :300])
    assert torch.isfinite(out.score).all()


@settings(max_examples=10)
@given(h=st.integers(32, 100), w=st.integers(32, 100), seed=st.integers(0, 2**16))
def test_any_size_from_32_works_and_samples_are_independent(
    detector: AnomalyDetector, h: int, w: int, seed: int
) -> None:
    x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        out = detector(x)
        single = detector(x[1:])
    assert out.anomaly_map.shape == (2, 1, h, w) and out.reconstruction.shape == (2, 3, h, w)
    assert torch.isfinite(out.logits).all()
    assert (out.score <= out.score_raw + 1e-6).all()
    for a, b in zip(out, single, strict=True):  # eval mode: no coupling between samples of a batch
        torch.testing.assert_close(a[1:], b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("images", "error", "match"),
    [
        (torch.rand(1, 3, 31, 64), ValueError, "at least 32x32"),
        (torch.rand(1, 3, 64, 20), ValueError, "at least 32x32"),
        (torch.rand(1, 1, 64, 64), ValueError, "channels"),
        (torch.rand(3, 64, 64), ValueError, r"\(B, C, H, W\)"),
        (torch.zeros(1, 3, 64, 64, dtype=torch.uint8), TypeError, "floating"),
        (torch.rand(1, 3, 64, 64, dtype=torch.float64), TypeError, "torch.float32"),
        (np.zeros((1, 3, 64, 64), dtype=np.float32), TypeError, "torch.Tensor"),
    ],
)
def test_bad_input_is_a_clear_error(
    detector: AnomalyDetector, images: object, error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        detector(images)


def test_subnetworks_reject_too_small_input() -> None:
    with pytest.raises(ValueError, match="at least 16x16"):
        ReconstructiveAutoencoder(base_width=4)(torch.rand(1, 3, 15, 32))
    with pytest.raises(ValueError, match=r"\(B, 6, H, W\)"):
        UNetSegmenter(base_width=4)(torch.rand(1, 3, 32, 32))


def test_channels_last_matches_contiguous(detector: AnomalyDetector) -> None:
    x = torch.rand(2, 3, 64, 96)
    cl = create_model("fgad", base_width=SMALL_WIDTH).eval()
    cl.load_state_dict(detector.state_dict())
    cl = cl.to(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = detector(x)
        out = cl(x.to(memory_format=torch.channels_last))
    for a, b in zip(out, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_torch_compile_fullgraph_without_host_syncs(detector: AnomalyDetector) -> None:
    # fullgraph=True fails on any graph break, which a host synchronisation (.item(), bool(tensor),
    # data-dependent control flow) in forward would cause. aot_eager traces forward without the
    # inductor C++ build (inductor takes minutes on CPU).
    torch._dynamo.reset()
    compiled = torch.compile(detector, backend="aot_eager", fullgraph=True)
    x = torch.rand(2, 3, 48, 80)
    with torch.no_grad():
        out, ref = compiled(x), detector(x)
    assert isinstance(out, DetectorOutput)
    for a, b in zip(out, ref, strict=True):
        torch.testing.assert_close(a, b)
    torch._dynamo.reset()


def test_bfloat16_autocast_and_float64_parameters() -> None:
    torch.manual_seed(0)
    model = create_model("draem", base_width=4).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.logits.dtype == torch.bfloat16 and torch.isfinite(out.score.float()).all()
    double = create_model("draem", base_width=4, dtype=torch.float64).eval()
    double.load_state_dict(model.state_dict())
    with torch.no_grad():
        out64, out32 = double(x.double()), model(x)
    assert out64.anomaly_map.dtype == torch.float64
    torch.testing.assert_close(out64.anomaly_map.float(), out32.anomaly_map, rtol=1e-4, atol=1e-5)


def test_meta_device_forward_gives_shapes() -> None:
    model = create_model("fgad", device="meta")
    out = model(torch.empty(2, 3, 256, 256, device="meta"))
    assert out.anomaly_map.shape == (2, 1, 256, 256) and out.anomaly_map.device.type == "meta"


def test_draem_init_scheme_and_torch_noop() -> None:
    from fgad.models.init import init_weights_

    torch.manual_seed(0)
    model = create_model("fgad_small")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert init_weights_(model, "torch") is model
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    init_weights_(model, "draem", generator=torch.Generator().manual_seed(0))
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d))]
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert convs and norms
    weights = torch.cat([m.weight.detach().flatten() for m in convs])
    assert abs(float(weights.mean())) < 1e-3 and abs(float(weights.std()) - 0.02) < 1e-3
    scales = torch.cat([m.weight.detach() for m in norms])
    assert abs(float(scales.mean()) - 1.0) < 0.01 and float(scales.std()) < 0.03
    assert all(bool((m.bias == 0).all()) for m in norms)
    # convolution biases keep their (PyTorch default) values, as in DRAEM's code
    biased = [
        (name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.bias is not None
    ]
    assert biased and all(torch.equal(m.bias, before[name + ".bias"]) for name, m in biased)
    with pytest.raises(ValueError, match="scheme must be one of"):
        init_weights_(model, "xavier")
    from fgad.engine.config import INIT_SCHEMES as CONFIG_SCHEMES
    from fgad.models.init import INIT_SCHEMES

    assert CONFIG_SCHEMES == INIT_SCHEMES  # the config validates without importing the models
