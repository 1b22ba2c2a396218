"""The reconstructive autoencoder: DRAEM's encoder-decoder, optionally with ECA after each encoder block."""

from __future__ import annotations

from typing import Any

import torch
from timm.layers import EcaModule
from torch import nn

from fgad._checks import check_positive_int
from fgad.models._layers import PAD_MODES, DoubleConv, UpConv, check_stride_input, pad_to_multiple
from fgad.models._registry import build_model, register_model, set_config

__all__ = ["ATTENTIONS", "ReconstructiveAutoencoder"]

#: Channel-attention modules the encoder can insert after each block (``None``: no attention).
ATTENTIONS: tuple[str, ...] = ("eca",)


class ReconstructiveAutoencoder(nn.Module):
    """DRAEM's reconstructive sub-network; with ``attention="eca"`` the encoder of Zhao et al. (2023).

    Encoder: five blocks of two 3x3 conv-BN-ReLU layers with widths ``w, 2w, 4w, 8w, 8w``
    (``w = base_width``), a 2x2 max-pooling between consecutive blocks (four poolings, stride 16).
    With ``attention="eca"``, a :class:`timm.layers.EcaModule` follows every encoder block; its 1-D
    kernel size is ``k = |log2(C)/2 + 1/2|_odd`` (Eq. 3, gamma = 2, b = 1: truncate, then round an
    even value up), except that timm never goes below 3 (the rule gives 1 only for C < 8).
    Decoder: four stages of bilinear x2 upsampling + conv-BN-ReLU, each followed by two conv-BN-ReLU
    layers (``8w -> 4w -> 2w -> w -> w``), then a 3x3 convolution to ``out_channels``. There are no
    skip connections, so anomalies are not copied through. With ``base_width=128`` and no attention
    the network has 69,048,579 parameters, exactly DRAEM's (69.05 M);
    ECA adds 25 (five 1-D kernels of size 5).

    Args:
        in_channels: image channels C (1 or 3).
        out_channels: reconstruction channels (default ``in_channels``).
        base_width: the width ``w`` of the first block.
        attention: ``None`` (DRAEM) or ``"eca"`` (the paper).
        pad_mode: how inputs whose sides are not multiples of 16 are padded (bottom/right) before
            the network and cropped back after: ``"reflect"``, ``"replicate"`` or ``"constant"``.
        device: where to create the parameters.
        dtype: parameter dtype.

    Shape:
        (B, C, H, W) -> (B, out_channels, H, W), H, W >= 16.

    Convention:
        The output is the last convolution's output, not clamped or squashed (as in DRAEM); the
        reconstruction loss pulls it toward [0, 1]. ``config`` holds the registered name and the
        constructor arguments (JSON-serialisable); :func:`fgad.models.create_model` sets the name.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> ae = ReconstructiveAutoencoder(base_width=16, attention="eca").eval()
        >>> ae(torch.rand(2, 3, 48, 40)).shape
        torch.Size([2, 3, 48, 40])
        >>> [m.conv.kernel_size[0] for m in ae.attention_modules()]  # C = 16, 32, 64, 128, 128
        [3, 3, 3, 5, 5]
    """

    #: Total downsampling factor of the encoder.
    stride = 16
    #: ``{"name": ..., "kwargs": {...}}``: the registered name and the constructor arguments.
    config: dict[str, Any]

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int | None = None,
        base_width: int = 128,
        attention: str | None = None,
        pad_mode: str = "reflect",
        *,
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        check_positive_int(in_channels, "in_channels")
        check_positive_int(out_channels, "out_channels")
        check_positive_int(base_width, "base_width")
        if attention is not None and attention not in ATTENTIONS:
            raise ValueError(f"attention must be None or one of {ATTENTIONS}, got {attention!r}")
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
        dd: dict[str, Any] = {"device": device, "dtype": dtype}
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.pad_mode = pad_mode
        set_config(
            self,
            "autoencoder" if attention is None else f"{attention}_autoencoder",
            {
                "in_channels": in_channels,
                "out_channels": out_channels,
                "base_width": base_width,
                "attention": attention,
                "pad_mode": pad_mode,
            },
        )

        w = base_width
        widths = [w, 2 * w, 4 * w, 8 * w, 8 * w]
        blocks = []
        previous = in_channels
        for width in widths:
            block = nn.Sequential()
            block.add_module("conv", DoubleConv(previous, width, **dd))
            if attention == "eca":
                block.add_module("attn", EcaModule(channels=width, gamma=2, beta=1, **dd))
            blocks.append(block)
            previous = width
        self.encoder = nn.ModuleList(blocks)
        self.pool = nn.MaxPool2d(2)

        # (upsampling width, block output width) for the four decoder stages.
        stages = [(8 * w, 4 * w), (4 * w, 2 * w), (2 * w, w), (w, w)]
        decoder = []
        for up_width, out_width in stages:
            stage = nn.Sequential()
            stage.add_module("up", UpConv(previous, up_width, **dd))
            stage.add_module("conv", DoubleConv(up_width, out_width, mid_channels=up_width, **dd))
            decoder.append(stage)
            previous = out_width
        self.decoder = nn.ModuleList(decoder)
        self.head = nn.Conv2d(previous, out_channels, kernel_size=3, padding=1, **dd)

    def attention_modules(self) -> list[nn.Module]:
        """The attention modules of the encoder, first block first (empty without attention)."""
        found = [getattr(block, "attn", None) for block in self.encoder]
        return [m for m in found if isinstance(m, nn.Module)]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``images``; any H, W >= 16 (padded to a multiple of 16, cropped back)."""
        check_stride_input(images, "images", self.in_channels, self.stride)
        h, w = images.shape[-2], images.shape[-1]
        x = pad_to_multiple(images, self.stride, self.pad_mode)
        for i, block in enumerate(self.encoder):
            if i > 0:
                x = self.pool(x)
            x = block(x)
        for stage in self.decoder:
            x = stage(x)
        return self.head(x)[..., :h, :w]


@register_model
def autoencoder(**kwargs: Any) -> ReconstructiveAutoencoder:
    """DRAEM's reconstructive autoencoder without attention (width 128): the ablation baseline."""
    return build_model(ReconstructiveAutoencoder, "autoencoder", {"attention": None}, kwargs)


@register_model
def eca_autoencoder(**kwargs: Any) -> ReconstructiveAutoencoder:
    """The paper's reconstructive autoencoder: ECA after each of the five encoder blocks (width 128)."""
    return build_model(ReconstructiveAutoencoder, "eca_autoencoder", {"attention": "eca"}, kwargs)
