"""Losses by name, through fgad's shared :class:`~fgad._registry.Registry` (the one models use)."""

from __future__ import annotations

from typing import Any

from torch import nn

from .._registry import Registry
from .focal import FocalLoss
from .reconstruction import ReconstructionLoss
from .ssim import SSIMLoss
from .total import FGADLoss

__all__ = ["create_loss", "is_loss", "list_losses", "register_loss"]

_LOSSES: Registry[nn.Module] = Registry("loss")

register_loss = _LOSSES.register
"""Register a loss factory (decorator, optional ``name=`` and default keyword arguments)."""


def create_loss(name: str, **kwargs: Any) -> nn.Module:
    """Build the loss registered as ``name``; ``kwargs`` override its defaults.

    Raises:
        KeyError: unknown name (the message lists close matches).

    Example:
        >>> create_loss("fgad", ssim_weight=2.0).reconstruction.ssim_weight
        2.0
    """
    return _LOSSES.create(name, **kwargs)


def list_losses(pattern: str = "*") -> list[str]:
    """Sorted names of the registered losses matching the fnmatch ``pattern``.

    Example:
        >>> list_losses()
        ['draem', 'fgad', 'focal', 'reconstruction', 'ssim']
    """
    return _LOSSES.list(pattern)


def is_loss(name: str) -> bool:
    """Whether ``name`` is a registered loss."""
    return name in _LOSSES


register_loss(name="fgad")(FGADLoss)
register_loss(name="draem")(FGADLoss)
register_loss(name="reconstruction")(ReconstructionLoss)
register_loss(name="ssim")(SSIMLoss)
register_loss(name="focal")(FocalLoss)
