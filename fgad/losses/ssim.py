"""Structural similarity (SSIM) with a Gaussian window, and the SSIM loss mean(1 - SSIM)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from kornia.filters import get_gaussian_kernel1d
from torch import nn

from ._ssim_args import Padding, check_ssim_args

__all__ = ["SSIMLoss", "ssim"]


def _compute_dtype(x: torch.Tensor, y: torch.Tensor) -> torch.dtype:
    # Variances are differences of second moments: half precision cancels catastrophically.
    return torch.float64 if torch.float64 in (x.dtype, y.dtype) else torch.float32


def _blur(x: torch.Tensor, kernel: torch.Tensor, padding: str) -> torch.Tensor:
    """Separable Gaussian filter of every channel of ``x`` (B, C, H, W)."""
    channels = x.shape[1]
    radius = kernel.shape[0] // 2
    kx = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    ky = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    pad = radius if padding == "zeros" else 0  # zero padding row-wise then column-wise = 2-D zero padding
    if padding == "reflect":
        x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kx, padding=(0, pad), groups=channels)
    return F.conv2d(x, ky, padding=(pad, 0), groups=channels)


def _check_pair(x: object, y: object) -> None:
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating tensor, got dtype {t.dtype}")
        if t.ndim != 4 or t.numel() == 0:
            raise ValueError(f"{name} must be a non-empty (B, C, H, W) tensor, got shape {tuple(t.shape)}")
    assert isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    window_size: int = 11,
    sigma: float = 1.5,
    padding: Padding = "zeros",
    data_range: float = 1.0,
    reduction: Literal["mean", "none"] = "mean",
) -> torch.Tensor:
    r"""Structural similarity of two image batches, as a map or its mean.

    .. math::
        \mathrm{SSIM} = \frac{(2\mu_x\mu_y + C_1)(2\sigma_{xy} + C_2)}
        {(\mu_x^2 + \mu_y^2 + C_1)(\sigma_x^2 + \sigma_y^2 + C_2)},\quad
        C_1 = (0.01 L)^2,\ C_2 = (0.03 L)^2

    with the local moments taken under a normalised ``window_size`` x ``window_size`` Gaussian window of
    standard deviation ``sigma`` (the window of kornia's ``get_gaussian_kernel1d``) and ``L = data_range``.

    Args:
        x: images (B, C, H, W), floating.
        y: images of the same shape.
        window_size: odd window width (11 in the paper).
        sigma: standard deviation of the Gaussian window (1.5 in the paper).
        padding: how the window sees the border, see Convention.
        data_range: dynamic range ``L`` of the pixel values (1 for images in [0, 1]).
        reduction: ``"mean"`` for the mean over every value of the map (a scalar), ``"none"`` for the map.

    Returns:
        The SSIM map (B, C, H, W), or (B, C, H - w + 1, W - w + 1) with ``padding="valid"``, or its mean.

    Shape:
        - x, y: (B, C, H, W), any C.

    Convention:
        - ``padding="zeros"`` (default): the images are padded with zeros, so the moments near the border
          are those of a zero-extended image (the window is not renormalised). This is DRAEM's SSIM
          (``F.conv2d(..., padding=window_size // 2)``), the one the paper trains with.
        - ``padding="reflect"``: torch's reflect padding (edge not repeated), kornia's
          ``kornia.metrics.ssim`` default. It differs from ``"zeros"`` only within ``window_size // 2``
          pixels of the border.
        - ``padding="valid"``: only the windows that lie inside the image; the map shrinks by
          ``window_size - 1``. With the defaults its mean equals
          ``skimage.metrics.structural_similarity(x, y, gaussian_weights=True, sigma=1.5,
          use_sample_covariance=False, data_range=1)`` (skimage's window is 11 x 11 for sigma 1.5 with its
          truncate=3.5, and it averages over the same cropped region).
        - Population (biased) variances, no epsilon in the denominator (``C_1, C_2 > 0`` suffice). Values
          are not clamped; the map is in [-1, 1].
        - Computed in float32 (float64 if an input is float64) with autocast disabled; half-precision
          inputs are upcast. ``x`` and ``y`` are symmetric.
        - kornia's ``ssim_loss`` returns ``mean((1 - SSIM) / 2)``; :class:`SSIMLoss` returns
          ``mean(1 - SSIM)``, DRAEM's and the paper's L_SSIM.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.rand(1, 3, 32, 32, generator=g)
        >>> ssim(x, x).item()
        1.0
        >>> y = 0.5 * x + 0.25
        >>> round(ssim(x, y, padding="valid").item(), 4)
        0.8009
        >>> inner = ssim(x, y, reduction="none")[..., 5:-5, 5:-5]  # windows that do not see the padding
        >>> torch.allclose(inner, ssim(x, y, padding="valid", reduction="none"))
        True
    """
    check_ssim_args(window_size, sigma, padding, data_range)
    _check_pair(x, y)
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    h, w = x.shape[-2:]
    if padding == "valid" and min(h, w) < window_size:
        raise ValueError(f"padding='valid' needs H, W >= window_size={window_size}, got {h}x{w}")
    if padding == "reflect" and min(h, w) <= window_size // 2:
        raise ValueError(f"padding='reflect' needs H, W > window_size // 2 = {window_size // 2}, got {h}x{w}")

    dtype = _compute_dtype(x, y)
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = x.to(dtype)
        y = y.to(dtype)
        kernel = get_gaussian_kernel1d(window_size, float(sigma), device=x.device, dtype=dtype).reshape(-1)
        c1 = (0.01 * data_range) ** 2
        c2 = (0.03 * data_range) ** 2
        channels = x.shape[1]
        # One grouped filtering of the five moment images.
        moments = _blur(torch.cat([x, y, x * x, y * y, x * y], dim=1), kernel, padding)
        mu_x, mu_y, xx, yy, xy = moments.split(channels, dim=1)
        mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
        var_x, var_y, cov = xx - mu_xx, yy - mu_yy, xy - mu_xy
        num = (2 * mu_xy + c1) * (2 * cov + c2)
        den = (mu_xx + mu_yy + c1) * (var_x + var_y + c2)
        ssim_map = num / den
    return ssim_map.mean() if reduction == "mean" else ssim_map


class SSIMLoss(nn.Module):
    """L_SSIM = mean(1 - SSIM(x, y)) with a Gaussian window; see :func:`ssim` for the conventions.

    Args:
        window_size: odd window width, 11 in the paper.
        sigma: Gaussian standard deviation, 1.5 in the paper.
        padding: ``"zeros"`` (DRAEM, default), ``"reflect"`` (kornia) or ``"valid"`` (skimage).
        data_range: dynamic range of the pixel values.

    Shape:
        - x, y: (B, C, H, W). Output: scalar.

    Convention:
        Not kornia's ``ssim_loss``, which is ``mean((1 - SSIM) / 2)`` with reflect padding: for the same
        images that is half of ``SSIMLoss(padding="reflect")``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.rand(2, 1, 16, 16, generator=g)
        >>> SSIMLoss()(x, x).item()
        0.0
    """

    def __init__(
        self, window_size: int = 11, sigma: float = 1.5, padding: Padding = "zeros", data_range: float = 1.0
    ) -> None:
        super().__init__()
        check_ssim_args(window_size, sigma, padding, data_range)
        self.window_size = window_size
        self.sigma = float(sigma)
        self.padding: Padding = padding
        self.data_range = float(data_range)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        value = ssim(
            x,
            y,
            window_size=self.window_size,
            sigma=self.sigma,
            padding=self.padding,
            data_range=self.data_range,
        )
        return 1.0 - value

    def extra_repr(self) -> str:
        return f"window_size={self.window_size}, sigma={self.sigma}, padding={self.padding!r}"
