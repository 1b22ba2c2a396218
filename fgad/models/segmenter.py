"""The discriminative network: DRAEM's U-Net-like segmenter over ``cat(image, reconstruction)``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fgad._checks import check_positive_int
from fgad.models._layers import PAD_MODES, DoubleConv, UpConv, check_stride_input, pad_to_multiple
from fgad.models._registry import build_model, register_model, set_config

__all__ = ["UNetSegmenter"]


class UNetSegmenter(nn.Module):
    """DRAEM's discriminative sub-network: a U-Net with six scales and a skip at every scale.

    Encoder: six blocks of two 3x3 conv-BN-ReLU layers with widths ``w, 2w, 4w, 8w, 8w, 8w``
    (``w = base_width``) and a 2x2 max-pooling between consecutive blocks (five poolings, stride
    32). Decoder: five stages, each a bilinear x2 upsampling + conv-BN-ReLU to widths
    ``8w, 4w, 2w, w, w``, concatenated with the encoder activation of the same scale (the skip),
    then two conv-BN-ReLU layers back to that width; a final 3x3 convolution gives
    ``out_channels`` logits. With ``in_channels=6, base_width=64, out_channels=2`` it has
    28,374,146 parameters, exactly DRAEM's (28.37 M).

    Args:
        in_channels: input channels, ``2C`` for ``cat(image, reconstruction)``.
        out_channels: output logits per pixel (2: normal / anomalous, as in DRAEM).
        base_width: the width ``w`` of the first block.
        pad_mode: padding of inputs whose sides are not multiples of 32 (bottom/right, cropped back
            after): ``"reflect"``, ``"replicate"`` or ``"constant"``.
        device: where to create the parameters.
        dtype: parameter dtype.

    Shape:
        (B, in_channels, H, W) -> (B, out_channels, H, W), H, W >= 32.

    Convention:
        Returns raw logits; the anomaly probability is ``softmax(logits, 1)[:, 1:2]``.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> seg = UNetSegmenter(in_channels=6, base_width=4).eval()
        >>> seg(torch.rand(1, 6, 64, 96)).shape
        torch.Size([1, 2, 64, 96])
    """

    #: Total downsampling factor of the encoder.
    stride = 32
    #: ``{"name": ..., "kwargs": {...}}``: the registered name and the constructor arguments.
    config: dict[str, Any]

    def __init__(
        self,
        in_channels: int = 6,
        out_channels: int = 2,
        base_width: int = 64,
        pad_mode: str = "reflect",
        *,
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_positive_int(in_channels, "in_channels")
        check_positive_int(out_channels, "out_channels")
        check_positive_int(base_width, "base_width")
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
        dd: dict[str, Any] = {"device": device, "dtype": dtype}
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.pad_mode = pad_mode
        set_config(
            self,
            "unet_segmenter",
            {
                "in_channels": in_channels,
                "out_channels": out_channels,
                "base_width": base_width,
                "pad_mode": pad_mode,
            },
        )

        w = base_width
        widths = [w, 2 * w, 4 * w, 8 * w, 8 * w, 8 * w]
        encoder = []
        previous = in_channels
        for width in widths:
            encoder.append(DoubleConv(previous, width, **dd))
            previous = width
        self.encoder = nn.ModuleList(encoder)
        self.pool = nn.MaxPool2d(2)

        # Stage i upsamples to up_widths[i], concatenates the encoder activation of the same scale
        # (widths 8w, 8w, 4w, 2w, w) and fuses back to up_widths[i], as DRAEM does.
        up_widths = [8 * w, 4 * w, 2 * w, w, w]
        decoder = []
        for up_width, skip_width in zip(up_widths, reversed(widths[:-1]), strict=True):
            decoder.append(_DecoderStage(previous, skip_width, up_width, **dd))
            previous = up_width
        self.decoder = nn.ModuleList(decoder)
        self.head = nn.Conv2d(previous, out_channels, kernel_size=3, padding=1, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Segmentation logits; any H, W >= 32 (padded to a multiple of 32, cropped back)."""
        check_stride_input(x, "segmenter input", self.in_channels, self.stride)
        h, w = x.shape[-2], x.shape[-1]
        x = pad_to_multiple(x, self.stride, self.pad_mode)
        skips = []
        for i, block in enumerate(self.encoder):
            if i > 0:
                x = self.pool(x)
            x = block(x)
            skips.append(x)
        for stage, skip in zip(self.decoder, reversed(skips[:-1]), strict=True):
            x = stage(x, skip)
        return self.head(x)[..., :h, :w]


class _DecoderStage(nn.Module):
    """Upsample x2 to ``out_channels``, concatenate the skip, fuse with two conv-BN-ReLU layers."""

    def __init__(
        self,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        *,
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.up = UpConv(in_channels, out_channels, device=device, dtype=dtype)
        self.conv = DoubleConv(out_channels + skip_channels, out_channels, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat((self.up(x), skip), dim=1))


@register_model
def unet_segmenter(**kwargs: Any) -> UNetSegmenter:
    """DRAEM's discriminative U-Net over cat(image, reconstruction): 6 input channels, width 64, 2 classes."""
    return build_model(UNetSegmenter, "unet_segmenter", {}, kwargs)
