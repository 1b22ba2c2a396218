"""Building blocks shared by fgad's networks: conv-BN-ReLU stacks, upsampling stages, stride padding."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PAD_MODES", "ConvBNReLU", "DoubleConv", "UpConv", "check_stride_input", "pad_to_multiple"]

#: Padding modes accepted by :func:`pad_to_multiple` (``"constant"`` pads with zeros).
PAD_MODES = ("reflect", "replicate", "constant")


class ConvBNReLU(nn.Sequential):
    """3x3 convolution (padding 1, with bias, as in DRAEM), batch norm, ReLU.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        device: where to create the parameters.
        dtype: parameter dtype.

    Shape:
        (B, in_channels, H, W) -> (B, out_channels, H, W).
    """

    def __init__(
        self, in_channels: int, out_channels: int, *, device: Any = None, dtype: torch.dtype | None = None
    ) -> None:
        dd: dict[str, Any] = {"device": device, "dtype": dtype}
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, **dd),
            nn.BatchNorm2d(out_channels, **dd),
            nn.ReLU(inplace=True),
        )


class DoubleConv(nn.Sequential):
    """Two :class:`ConvBNReLU`: ``in_channels -> mid_channels -> out_channels``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        mid_channels: channels between the two convolutions (default ``out_channels``).
        device: where to create the parameters.
        dtype: parameter dtype.

    Shape:
        (B, in_channels, H, W) -> (B, out_channels, H, W).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        mid_channels: int | None = None,
        *,
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        mid = out_channels if mid_channels is None else mid_channels
        super().__init__(
            ConvBNReLU(in_channels, mid, device=device, dtype=dtype),
            ConvBNReLU(mid, out_channels, device=device, dtype=dtype),
        )


class UpConv(nn.Sequential):
    """Bilinear x2 upsampling (``align_corners=True``, as in DRAEM) followed by :class:`ConvBNReLU`.

    Shape:
        (B, in_channels, H, W) -> (B, out_channels, 2H, 2W).
    """

    def __init__(
        self, in_channels: int, out_channels: int, *, device: Any = None, dtype: torch.dtype | None = None
    ) -> None:
        super().__init__(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
            ConvBNReLU(in_channels, out_channels, device=device, dtype=dtype),
        )


def check_stride_input(x: torch.Tensor, name: str, channels: int, min_size: int) -> None:
    """Structural checks for a network input (no host synchronisation).

    Raises:
        TypeError: not a floating tensor.
        ValueError: wrong rank or channel count, or a side shorter than ``min_size``.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got dtype {x.dtype}")
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{name} must have shape (B, {channels}, H, W), got {tuple(x.shape)}")
    if x.shape[-2] < min_size or x.shape[-1] < min_size:
        raise ValueError(
            f"{name} must be at least {min_size}x{min_size} pixels (H, W >= {min_size}), "
            f"got {x.shape[-2]}x{x.shape[-1]}"
        )


def pad_to_multiple(x: torch.Tensor, multiple: int, mode: str = "reflect") -> torch.Tensor:
    """Pad the bottom and right edges of ``x`` so that H and W are multiples of ``multiple``.

    Padding goes to the bottom/right only, so cropping ``[..., :H, :W]`` restores the original grid.
    ``"reflect"`` mirrors without repeating the edge pixel and needs ``H, W > pad`` (always true when
    H, W >= ``multiple``); ``"replicate"`` repeats the edge; ``"constant"`` pads with zeros.

    Args:
        x: (B, C, H, W) tensor.
        multiple: the network stride.
        mode: one of :data:`PAD_MODES`.

    Returns:
        ``x`` itself when no padding is needed, else the padded tensor (B, C, H', W').

    Example:
        >>> pad_to_multiple(torch.zeros(1, 3, 33, 64), 32).shape
        torch.Size([1, 3, 64, 64])
    """
    h, w = x.shape[-2], x.shape[-1]
    pad_h = (-h) % multiple
    pad_w = (-w) % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
