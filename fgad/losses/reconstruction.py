"""The reconstruction loss L_rec = lambda * L_SSIM + L_2 (Eq. 5-6 of the paper, DRAEM's loss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_image
from ._ssim_args import check_ssim_args
from .ssim import Padding, SSIMLoss

__all__ = ["ReconstructionLoss"]


class ReconstructionLoss(nn.Module):
    """L_rec = ssim_weight * mean(1 - SSIM(I, I_r)) + mean((I - I_r)^2).

    Args:
        ssim_weight: lambda, the weight of the SSIM term (1 in DRAEM and the paper).
        window_size: odd Gaussian window width, 11.
        sigma: Gaussian window standard deviation, 1.5.
        padding: ``"zeros"`` (DRAEM's, default), ``"reflect"`` (kornia's) or ``"valid"`` (skimage's); see
            :func:`fgad.losses.ssim`.
        data_range: dynamic range of the pixel values, 1 for [0, 1] images.

    Shape:
        - image, reconstruction: (B, C, H, W), C in {1, 3}. Output: scalar.

    Convention:
        - Called as ``loss(image, reconstruction)``: ``image`` is the clean target I (values checked to lie
          in [0, 1] while validation is on), ``reconstruction`` the autoencoder output I_r (not range-checked:
          DRAEM's decoder has no output activation).
        - L_2 is the mean squared error over every value (``nn.MSELoss()``), L_SSIM the mean of the SSIM map
          over every pixel and channel, ``1 - SSIM`` (not kornia's ``(1 - SSIM) / 2``).
        - Computed in float32 (float64 for float64 input) with autocast disabled; the result is float32.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> image = torch.rand(2, 3, 32, 32, generator=g)
        >>> loss = ReconstructionLoss(ssim_weight=1.0)
        >>> loss(image, image).item()
        0.0
        >>> ssim_term, l2_term = loss.terms(image, 0.5 * image)
        >>> torch.isclose(loss(image, 0.5 * image), ssim_term + l2_term).item()
        True
    """

    def __init__(
        self,
        ssim_weight: float = 1.0,
        window_size: int = 11,
        sigma: float = 1.5,
        padding: Padding = "zeros",
        data_range: float = 1.0,
    ) -> None:
        super().__init__()
        if not float(ssim_weight) >= 0:
            raise ValueError(f"ssim_weight must be >= 0, got {ssim_weight!r}")
        check_ssim_args(window_size, sigma, padding, data_range)
        self.ssim_weight = float(ssim_weight)
        self.ssim = SSIMLoss(window_size=window_size, sigma=sigma, padding=padding, data_range=data_range)

    def terms(self, image: torch.Tensor, reconstruction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The unweighted ``(L_SSIM, L_2)``, both differentiable scalars."""
        check_image(image, "image")
        check_image(reconstruction, "reconstruction", check_range=False)
        if image.shape != reconstruction.shape:
            raise ValueError(
                f"image and reconstruction must have the same shape, got {tuple(image.shape)} and "
                f"{tuple(reconstruction.shape)}"
            )
        dtype = torch.float64 if torch.float64 in (image.dtype, reconstruction.dtype) else torch.float32
        with torch.autocast(device_type=image.device.type, enabled=False):
            l2 = F.mse_loss(reconstruction.to(dtype), image.to(dtype))
        return self.ssim(image, reconstruction), l2

    def forward(self, image: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
        ssim_term, l2_term = self.terms(image, reconstruction)
        return self.ssim_weight * ssim_term + l2_term

    def extra_repr(self) -> str:
        return f"ssim_weight={self.ssim_weight}"
