"""Focal loss (Lin et al., ICCV 2017) for the anomaly segmenter's logits against a binary mask."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_binary_mask

__all__ = ["FocalLoss", "focal_loss"]

Reduction = Literal["mean", "sum", "none"]


def _check_params(gamma: float, alpha: float | None, reduction: str) -> None:
    if not float(gamma) >= 0:
        raise ValueError(f"gamma must be >= 0, got {gamma!r}")
    if alpha is not None and not 0.0 < float(alpha) < 1.0:
        raise ValueError(
            f"alpha must be None or in (0, 1), got {alpha!r}: alpha weights the anomalous class and "
            "1 - alpha the normal one, so alpha = 1 (or 0) would give one class no loss at all"
        )
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def focal_loss(
    logits: torch.Tensor,
    mask: torch.Tensor,
    *,
    gamma: float = 2.0,
    alpha: float | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    r"""Per-pixel focal loss :math:`-\alpha_t (1 - p_t)^\gamma \log p_t`, reduced.

    Args:
        logits: (B, 2, H, W) two-class logits (softmax over dim 1; class 1 = anomalous, DRAEM's segmenter)
            or (B, 1, H, W) one logit of the anomalous class (sigmoid).
        mask: (B, 1, H, W) ground truth, values 0 (normal) and 1 (anomalous), any dtype.
        gamma: focusing parameter (2 in the paper); 0 gives the cross entropy.
        alpha: ``None`` weights both classes by 1 (DRAEM, the paper); a value in (0, 1) weights anomalous
            pixels by ``alpha`` and normal pixels by ``1 - alpha`` (Lin et al.).
        reduction: ``"mean"`` over the B * H * W pixels, ``"sum"``, or ``"none"`` for the (B, 1, H, W) map.

    Shape:
        - logits: (B, 2, H, W) or (B, 1, H, W); mask: (B, 1, H, W). Output: scalar, or (B, 1, H, W).

    Convention:
        - :math:`p_t` is the predicted probability of the pixel's true class, computed from log-softmax /
          log-sigmoid (no clamping, no smoothing epsilon: finite for any finite logits).
        - ``"mean"`` divides by the number of pixels, not by ``C`` times it (kornia's ``focal_loss``
          divides by ``C * H * W * B``, i.e. half of this for two classes).
        - The one-logit form equals ``torchvision.ops.sigmoid_focal_loss`` (whose ``alpha=-1`` means no
          weighting, our ``None``); the two-class form equals it applied to the logit difference
          ``logits[:, 1] - logits[:, 0]``.
        - Normal pixels always get a loss and a gradient. kornia's ``FocalLoss(alpha=1)``, used by anomalib's
          DRAEM, weights class 0 by ``1 - alpha = 0`` since kornia 0.7.2 and so stops learning the background;
          ``alpha`` outside (0, 1) is refused here.
        - Computed in float32 (float64 for float64 logits) with autocast disabled.

    Example:
        >>> logits = torch.tensor([2.0, -1.0]).view(1, 2, 1, 1)
        >>> mask = torch.zeros(1, 1, 1, 1)
        >>> p0 = torch.softmax(torch.tensor([2.0, -1.0]), 0)[0]
        >>> torch.allclose(focal_loss(logits, mask), -(1 - p0) ** 2 * p0.log())
        True
    """
    _check_params(gamma, alpha, reduction)
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError("logits must be a floating torch.Tensor of shape (B, 2, H, W) or (B, 1, H, W)")
    if logits.ndim != 4 or logits.shape[1] not in (1, 2):
        raise ValueError(f"logits must have shape (B, 2, H, W) or (B, 1, H, W), got {tuple(logits.shape)}")
    check_binary_mask(mask, "mask", batch_size=logits.shape[0])
    if mask.shape[-2:] != logits.shape[-2:]:
        raise ValueError(
            f"mask and logits must have the same H, W, got {tuple(mask.shape)} and {tuple(logits.shape)}"
        )

    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=logits.device.type, enabled=False):
        logits = logits.to(dtype)
        target = mask.to(device=logits.device, dtype=torch.bool)
        if logits.shape[1] == 2:
            log_probs = F.log_softmax(logits, dim=1)
            log_pt = torch.where(target, log_probs[:, 1:2], log_probs[:, 0:1])
        else:
            # log sigmoid(z) for anomalous pixels, log sigmoid(-z) for normal ones
            log_pt = F.logsigmoid(torch.where(target, logits, -logits))
        pt = log_pt.exp()
        loss = -((1.0 - pt) ** gamma) * log_pt if gamma != 0 else -log_pt
        if alpha is not None:
            loss = loss * torch.where(target, alpha, 1.0 - alpha).to(dtype)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


class FocalLoss(nn.Module):
    """Focal loss module, ``loss(logits, mask)``; see :func:`focal_loss` for shapes and conventions.

    Args:
        gamma: focusing parameter, 2 in the paper.
        alpha: ``None`` (no class weighting, DRAEM) or the weight of anomalous pixels in (0, 1).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> logits = torch.randn(2, 2, 8, 8, generator=g, requires_grad=True)
        >>> loss = FocalLoss()(logits, torch.zeros(2, 1, 8, 8))  # an all-normal mask still teaches
        >>> loss.backward()
        >>> bool(loss > 0), bool(logits.grad.abs().sum() > 0)
        (True, True)
    """

    def __init__(self, gamma: float = 2.0, alpha: float | None = None, reduction: Reduction = "mean") -> None:
        super().__init__()
        _check_params(gamma, alpha, reduction)
        self.gamma = float(gamma)
        self.alpha = None if alpha is None else float(alpha)
        self.reduction: Reduction = reduction

    def forward(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return focal_loss(logits, mask, gamma=self.gamma, alpha=self.alpha, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, alpha={self.alpha}, reduction={self.reduction!r}"
