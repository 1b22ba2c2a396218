"""The paper's total training objective L = L_rec + L_seg (Eq. 7)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .focal import FocalLoss
from .reconstruction import ReconstructionLoss
from .ssim import Padding

__all__ = ["FGADLoss", "LossOutput"]


@dataclass
class LossOutput:
    """A total loss and its parts.

    Attributes:
        total: the scalar to call ``backward()`` on.
        parts: detached scalar tensors for logging, by name.
    """

    total: torch.Tensor
    parts: dict[str, torch.Tensor] = field(default_factory=dict)


class FGADLoss(nn.Module):
    """Total loss of FGAD / DRAEM: ``ssim_weight * L_SSIM + L_2 + segmentation_weight * L_focal``.

    Args:
        ssim_weight: lambda of the reconstruction loss (Eq. 6), 1 in the paper.
        focal_gamma: gamma of the focal segmentation loss, 2 in the paper.
        focal_alpha: ``None`` (paper, DRAEM) or the weight of anomalous pixels in (0, 1).
        segmentation_weight: weight of the segmentation term, 1 in the paper (Eq. 7).
        window_size: SSIM window, 11.
        sigma: SSIM Gaussian sigma, 1.5.
        padding: SSIM padding, ``"zeros"`` (DRAEM) by default; see :func:`fgad.losses.ssim`.

    Shape:
        - image, reconstruction: (B, C, H, W), C in {1, 3}; logits: (B, 2, H, W) or (B, 1, H, W);
          mask: (B, 1, H, W) in {0, 1}.

    Convention:
        Called as ``loss(image, reconstruction, logits, mask)`` with ``image`` the clean target I (the
        synthesiser's ``.target``), ``reconstruction`` the autoencoder's I_r, ``logits`` the segmenter output
        and ``mask`` the synthetic anomaly mask M_a. Returns a :class:`LossOutput` whose ``parts`` are the
        detached scalars ``"reconstruction"`` (``ssim_weight * ssim + l2``), ``"ssim"`` (mean 1 - SSIM),
        ``"l2"`` (MSE) and ``"segmentation"`` (focal). The paper changes the synthesis and the network, not
        DRAEM's loss, so ``create_loss("draem")`` builds the same object.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> image = torch.rand(2, 3, 32, 32, generator=g)
        >>> logits = torch.randn(2, 2, 32, 32, generator=g, requires_grad=True)
        >>> out = FGADLoss()(image, image.clone(), logits, torch.zeros(2, 1, 32, 32))
        >>> sorted(out.parts)
        ['l2', 'reconstruction', 'segmentation', 'ssim']
        >>> torch.isclose(out.total, out.parts["reconstruction"] + out.parts["segmentation"]).item()
        True
    """

    def __init__(
        self,
        ssim_weight: float = 1.0,
        focal_gamma: float = 2.0,
        focal_alpha: float | None = None,
        segmentation_weight: float = 1.0,
        window_size: int = 11,
        sigma: float = 1.5,
        padding: Padding = "zeros",
    ) -> None:
        super().__init__()
        if not float(segmentation_weight) >= 0:
            raise ValueError(f"segmentation_weight must be >= 0, got {segmentation_weight!r}")
        self.segmentation_weight = float(segmentation_weight)
        self.reconstruction = ReconstructionLoss(
            ssim_weight=ssim_weight, window_size=window_size, sigma=sigma, padding=padding
        )
        self.segmentation = FocalLoss(gamma=focal_gamma, alpha=focal_alpha, reduction="mean")

    def forward(
        self, image: torch.Tensor, reconstruction: torch.Tensor, logits: torch.Tensor, mask: torch.Tensor
    ) -> LossOutput:
        ssim_term, l2_term = self.reconstruction.terms(image, reconstruction)
        rec = self.reconstruction.ssim_weight * ssim_term + l2_term
        seg = self.segmentation(logits, mask)
        total = rec + self.segmentation_weight * seg
        parts = {
            "reconstruction": rec.detach(),
            "ssim": ssim_term.detach(),
            "l2": l2_term.detach(),
            "segmentation": seg.detach(),
        }
        return LossOutput(total=total, parts=parts)
