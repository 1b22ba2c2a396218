"""fgad.losses against skimage, kornia, torchvision and the paper's / Lin et al.'s equations."""

from __future__ import annotations

import math

import kornia
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.metrics import structural_similarity
from torchvision.ops import sigmoid_focal_loss

from fgad.losses import (
    FGADLoss,
    FocalLoss,
    LossOutput,
    ReconstructionLoss,
    SSIMLoss,
    create_loss,
    focal_loss,
    list_losses,
    register_loss,
    ssim,
)

# ----------------------------------------------------------------------------------------------------------
# references written from the equations


def gaussian_window_2d(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    g = torch.tensor(
        [math.exp(-((i - size // 2) ** 2) / (2 * sigma**2)) for i in range(size)], dtype=torch.float64
    )
    g = g / g.sum()
    return torch.outer(g, g)


def draem_ssim_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """DRAEM's SSIM: one 2-D 11x11 Gaussian convolution per moment with zero padding 5, float64."""
    c = x.shape[1]
    w = gaussian_window_2d().expand(c, 1, 11, 11)
    x, y = x.double(), y.double()

    def conv(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, padding=5, groups=c)

    mx, my = conv(x), conv(y)
    vx, vy, cxy = conv(x * x) - mx**2, conv(y * y) - my**2, conv(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))


def lin_focal(
    probs_true: torch.Tensor, target: torch.Tensor, gamma: float, alpha: float | None
) -> torch.Tensor:
    """FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t) (Lin et al. 2017, Eq. 5); alpha_t = alpha for positives."""
    loss = -((1 - probs_true) ** gamma) * torch.log(probs_true)
    if alpha is not None:
        loss = loss * torch.where(target, torch.tensor(alpha), torch.tensor(1 - alpha)).double()
    return loss


def image_pair(seed: int, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g)
    x = kornia.filters.gaussian_blur2d(x, (5, 5), (1.5, 1.5))  # some structure, not pure noise
    y = (0.7 * x + 0.3 * torch.rand(shape, generator=g)).clamp(0, 1)
    return x, y


# ----------------------------------------------------------------------------------------------------------
# SSIM


@pytest.mark.parametrize("shape", [(1, 1, 32, 32), (1, 3, 40, 29), (1, 3, 11, 11)])
@pytest.mark.parametrize("seed", [0, 1])
def test_ssim_valid_matches_skimage(shape: tuple[int, ...], seed: int) -> None:
    x, y = image_pair(seed, shape)
    ref = structural_similarity(
        x[0].double().numpy(),
        y[0].double().numpy(),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1,
        channel_axis=0,
    )
    assert ssim(x, y, padding="valid").item() == pytest.approx(ref, abs=1e-4)
    assert ssim(x.double(), y.double(), padding="valid").item() == pytest.approx(ref, abs=1e-10)


def test_ssim_zeros_padding_is_draems() -> None:
    x, y = image_pair(2, (2, 3, 24, 30))
    ref = draem_ssim_map(x, y)
    torch.testing.assert_close(ssim(x.double(), y.double(), reduction="none"), ref, atol=1e-10, rtol=0)
    # float32: the variances E[x^2] - E[x]^2 cancel, so the map is good to ~1e-4, its mean much better
    torch.testing.assert_close(ssim(x, y, reduction="none").double(), ref, atol=1e-4, rtol=0)
    assert SSIMLoss()(x, y).item() == pytest.approx(1 - draem_ssim_map(x, y).mean().item(), abs=1e-6)


def test_ssim_reflect_padding_is_kornias() -> None:
    x, y = image_pair(3, (2, 3, 24, 30))
    ours = ssim(x, y, padding="reflect", reduction="none")
    torch.testing.assert_close(ours, kornia.metrics.ssim(x, y, 11, eps=0.0), atol=1e-6, rtol=0)
    # kornia's ssim_loss is (1 - SSIM) / 2: half of ours
    half = kornia.losses.ssim_loss(x, y, 11)
    assert half.item() == pytest.approx(SSIMLoss(padding="reflect")(x, y).item() / 2, abs=1e-6)
    # the paddings differ only within window_size // 2 of the border
    zeros = ssim(x, y, reduction="none")
    torch.testing.assert_close(ours[..., 5:-5, 5:-5], zeros[..., 5:-5, 5:-5])
    assert (ours - zeros).abs().max() > 1e-3


@settings(max_examples=10)
@given(seed=st.integers(0, 2**31 - 1), padding=st.sampled_from(["zeros", "reflect", "valid"]))
def test_ssim_properties(seed: int, padding: str) -> None:
    x, y = image_pair(seed, (2, 1, 16, 16))
    m = ssim(x, y, padding=padding, reduction="none")  # type: ignore[arg-type]
    assert torch.all(m <= 1 + 1e-6) and torch.all(m >= -1 - 1e-6)
    torch.testing.assert_close(m, ssim(y, x, padding=padding, reduction="none"))  # type: ignore[arg-type]
    assert ssim(x, x, padding=padding).item() == pytest.approx(1.0, abs=1e-6)  # type: ignore[arg-type]


def test_ssim_gradcheck_and_constant_images() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 9, 9, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, 1, 9, 9, generator=g, dtype=torch.float64)
    for padding in ("zeros", "reflect", "valid"):
        fn = lambda a, p=padding: ssim(a, y, window_size=7, padding=p)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x,), fast_mode=True)
    flat = torch.full((1, 3, 16, 16), 0.5, requires_grad=True)
    loss = SSIMLoss()(flat, torch.zeros(1, 3, 16, 16))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(flat.grad).all()  # type: ignore[arg-type]


def test_ssim_low_precision_and_autocast() -> None:
    x, y = image_pair(4, (1, 3, 32, 32))
    ref = ssim(x, y)
    for dtype in (torch.float16, torch.bfloat16):
        out = ssim(x.to(dtype), y.to(dtype))
        assert out.dtype == torch.float32
        assert out.item() == pytest.approx(ref.item(), abs=1e-2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = ssim(x, y)
    assert out.dtype == torch.float32 and out.item() == pytest.approx(ref.item(), abs=1e-6)


def test_ssim_bad_arguments() -> None:
    x = torch.rand(1, 1, 16, 16)
    with pytest.raises(ValueError, match="window_size"):
        ssim(x, x, window_size=10)
    with pytest.raises(ValueError, match="padding"):
        ssim(x, x, padding="same")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="same shape"):
        ssim(x, x[..., :8])
    with pytest.raises(ValueError, match="valid"):
        ssim(x[..., :8, :8], x[..., :8, :8], padding="valid")
    with pytest.raises(TypeError, match="floating"):
        ssim(x.to(torch.uint8), x.to(torch.uint8))
    with pytest.raises(ValueError, match="sigma"):
        SSIMLoss(sigma=0)


# ----------------------------------------------------------------------------------------------------------
# Focal loss


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 3.0])
@pytest.mark.parametrize("alpha", [None, 0.25, 0.75])
def test_focal_two_class_matches_lin(gamma: float, alpha: float | None) -> None:
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(3, 2, 8, 9, generator=g, dtype=torch.float64)
    mask = (torch.rand(3, 1, 8, 9, generator=g) > 0.7).float()
    target = mask.bool()
    probs = torch.exp(logits) / torch.exp(logits).sum(dim=1, keepdim=True)
    p_t = torch.where(target, probs[:, 1:2], probs[:, 0:1])
    ref = lin_focal(p_t, target, gamma, alpha)
    torch.testing.assert_close(focal_loss(logits, mask, gamma=gamma, alpha=alpha, reduction="none"), ref)
    assert FocalLoss(gamma, alpha)(logits, mask).item() == pytest.approx(ref.mean().item())
    assert FocalLoss(gamma, alpha, reduction="sum")(logits, mask).item() == pytest.approx(ref.sum().item())


@pytest.mark.parametrize("gamma", [0.0, 2.0])
@pytest.mark.parametrize("alpha", [None, 0.25])
def test_focal_one_logit_matches_torchvision(gamma: float, alpha: float | None) -> None:
    g = torch.Generator().manual_seed(1)
    logit = 4 * torch.randn(2, 1, 10, 10, generator=g)
    mask = (torch.rand(2, 1, 10, 10, generator=g) > 0.5).float()
    ref = sigmoid_focal_loss(logit, mask, alpha=-1 if alpha is None else alpha, gamma=gamma, reduction="mean")
    assert focal_loss(logit, mask, gamma=gamma, alpha=alpha).item() == pytest.approx(ref.item(), rel=1e-5)
    # the two-class form is the one-logit form of the logit difference
    two = torch.cat([torch.zeros_like(logit), logit], dim=1) + torch.randn(2, 1, 10, 10, generator=g)
    diff = two[:, 1:] - two[:, :1]
    torch.testing.assert_close(
        focal_loss(two, mask, gamma=gamma, alpha=alpha, reduction="none"),
        focal_loss(diff, mask, gamma=gamma, alpha=alpha, reduction="none"),
    )


def test_focal_gamma_zero_is_cross_entropy() -> None:
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 2, 6, 6, generator=g)
    mask = (torch.rand(2, 1, 6, 6, generator=g) > 0.5).float()
    ce = F.cross_entropy(logits, mask[:, 0].long())
    assert focal_loss(logits, mask, gamma=0.0).item() == pytest.approx(ce.item(), rel=1e-6)


def test_normal_pixels_get_loss_and_gradient_unlike_kornia_alpha_one() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 16, 16, generator=g, requires_grad=True)
    normal = torch.zeros(2, 1, 16, 16)
    loss = FocalLoss()(logits, normal)
    loss.backward()
    assert loss.item() > 0
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    # The bug avoided: kornia's FocalLoss(alpha=1), as anomalib's DRAEM loss uses it, weights class 0 by
    # 1 - alpha = 0 (kornia >= 0.7.2), so an all-normal mask gives no loss and no gradient at all.
    if tuple(int(p) for p in kornia.__version__.split(".")[:3] if p.isdigit()) >= (0, 7, 2):
        kornia_logits = logits.detach().clone().requires_grad_(True)
        bad = kornia.losses.FocalLoss(alpha=1.0, gamma=2.0, reduction="mean")(
            kornia_logits, normal[:, 0].long()
        )
        bad.backward()
        assert bad.item() == 0.0
        assert kornia_logits.grad is not None and kornia_logits.grad.abs().sum() == 0
    with pytest.raises(ValueError, match="no loss"):
        FocalLoss(alpha=1.0)


def test_focal_extreme_logits_are_finite() -> None:
    logits = torch.tensor([[100.0, -100.0], [-100.0, 100.0]]).view(2, 2, 1, 1).requires_grad_(True)
    mask = torch.tensor([1.0, 0.0]).view(2, 1, 1, 1)  # both confidently wrong
    loss = focal_loss(logits, mask)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() == pytest.approx(200.0, rel=1e-4)
    assert torch.isfinite(logits.grad).all()  # type: ignore[arg-type]
    one = torch.tensor([80.0, -80.0]).view(2, 1, 1, 1)
    assert torch.isfinite(focal_loss(one, torch.tensor([0.0, 1.0]).view(2, 1, 1, 1)))


def test_focal_gradcheck_and_dtypes() -> None:
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(1, 2, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    mask = (torch.rand(1, 1, 4, 4, generator=g) > 0.5).double()
    assert torch.autograd.gradcheck(lambda z: focal_loss(z, mask, alpha=0.3), (logits,), fast_mode=True)
    ref = focal_loss(logits.float(), mask)
    for dtype in (torch.float16, torch.bfloat16):
        out = focal_loss(logits.to(dtype), mask)
        assert out.dtype == torch.float32 and out.item() == pytest.approx(ref.item(), rel=2e-2)


def test_focal_bad_input() -> None:
    logits = torch.randn(2, 2, 4, 4)
    with pytest.raises(ValueError, match="binary"):
        focal_loss(logits, torch.full((2, 1, 4, 4), 0.5))
    with pytest.raises(ValueError, match="batch size"):
        focal_loss(logits, torch.zeros(3, 1, 4, 4))
    with pytest.raises(ValueError, match="H, W"):
        focal_loss(logits, torch.zeros(2, 1, 4, 5))
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\)"):
        focal_loss(torch.randn(2, 3, 4, 4), torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match="gamma"):
        FocalLoss(gamma=-1)
    with pytest.raises(ValueError, match="reduction"):
        FocalLoss(reduction="max")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------------------
# Reconstruction and total losses, registry


def test_reconstruction_loss_is_eq6() -> None:
    x, y = image_pair(5, (2, 3, 32, 32))
    for weight in (0.0, 1.0, 2.5):
        loss = ReconstructionLoss(ssim_weight=weight)(x, y)
        expected = weight * (1 - draem_ssim_map(x, y).mean()) + F.mse_loss(y.double(), x.double())
        assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    with pytest.raises(TypeError, match="floating"):
        ReconstructionLoss()((x * 255).to(torch.uint8), y)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ReconstructionLoss()(x * 2, y)
    ReconstructionLoss()(x, y * 2 - 0.5)  # the reconstruction is not range-checked
    with pytest.raises(ValueError, match="ssim_weight"):
        ReconstructionLoss(ssim_weight=-1)


def test_fgad_loss_total_and_parts() -> None:
    x, y = image_pair(6, (2, 3, 32, 32))
    rec = y.clone().requires_grad_(True)
    g = torch.Generator().manual_seed(6)
    logits = torch.randn(2, 2, 32, 32, generator=g, requires_grad=True)
    mask = (torch.rand(2, 1, 32, 32, generator=g) > 0.8).float()
    out = FGADLoss(ssim_weight=2.0)(x, rec, logits, mask)
    assert isinstance(out, LossOutput)
    assert set(out.parts) == {"reconstruction", "ssim", "l2", "segmentation"}
    assert all(not v.requires_grad and v.ndim == 0 for v in out.parts.values())
    p = {k: v.item() for k, v in out.parts.items()}
    assert p["ssim"] == pytest.approx(1 - draem_ssim_map(x, y).mean().item(), abs=1e-5)
    assert p["l2"] == pytest.approx(F.mse_loss(y, x).item(), rel=1e-5)
    assert p["reconstruction"] == pytest.approx(2.0 * p["ssim"] + p["l2"], rel=1e-6)
    assert p["segmentation"] == pytest.approx(FocalLoss()(logits, mask).item(), rel=1e-6)
    assert out.total.item() == pytest.approx(p["reconstruction"] + p["segmentation"], rel=1e-6)
    out.total.backward()
    assert rec.grad is not None and rec.grad.abs().sum() > 0
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_registry() -> None:
    assert list_losses() == ["draem", "fgad", "focal", "reconstruction", "ssim"]
    assert list_losses("f*") == ["fgad", "focal"]
    loss = create_loss("fgad", ssim_weight=3.0, focal_gamma=1.0)
    assert isinstance(loss, FGADLoss)
    assert loss.reconstruction.ssim_weight == 3.0 and loss.segmentation.gamma == 1.0
    assert isinstance(create_loss("draem"), FGADLoss)
    assert isinstance(create_loss("focal", gamma=0.0), FocalLoss)
    assert isinstance(create_loss("ssim", padding="valid"), SSIMLoss)
    with pytest.raises(KeyError, match="fgad"):
        create_loss("fgda")
    with pytest.raises(ValueError, match="already registered"):
        register_loss(name="focal")(FocalLoss)
