"""Training losses of FGAD / DRAEM: SSIM + L2 reconstruction loss, focal segmentation loss, their total.

Create them directly or by name (``create_loss("fgad", ssim_weight=1.0)``, ``list_losses()``).
"""

from .factory import create_loss, is_loss, list_losses, register_loss
from .focal import FocalLoss, focal_loss
from .reconstruction import ReconstructionLoss
from .ssim import SSIMLoss, ssim
from .total import FGADLoss, LossOutput

__all__ = [
    "FGADLoss",
    "FocalLoss",
    "LossOutput",
    "ReconstructionLoss",
    "SSIMLoss",
    "create_loss",
    "focal_loss",
    "is_loss",
    "list_losses",
    "register_loss",
    "ssim",
]
