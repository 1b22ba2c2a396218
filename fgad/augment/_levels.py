"""Kernels on 256 grey levels shared by :mod:`fgad.augment.functional` and
:class:`~fgad.augment.TextureAugment`: the quantiser to a plane-offset int32 level index and PIL's
sharpness filter on int16 levels (see :func:`fgad.augment.functional.sharpen_levels`).
"""

from __future__ import annotations

import torch

from ._buffers import _scratch

__all__: list[str] = []

_LEVELS = 256

# Adding 1.5 * 2**23 to a float32 in [0, 2**22) rounds it to an integer (half to even) and leaves
# that integer in the low mantissa bits: the float's bits are then _MAGIC_BITS + integer.
_MAGIC = 12582912.0
_MAGIC_BITS = 0x4B400000
# Plane offsets up to this many levels keep magic + offset + 255 below 2**24 (see _quantise).
_MAGIC_PLANES = (1 << 24) - int(_MAGIC) - 2 * _LEVELS


def _quantise(images: torch.Tensor, scratch: bool = False) -> torch.Tensor:
    """Plane-offset int32 level index ``round(x * 255) + 256 * (b * C + c)``, contiguous (B, C, H, W).

    The images may have any memory layout (channels-last input is read in place, not copied).

    With ``scratch`` the index lives in a per-thread buffer that the next call reuses: the caller
    must be done with it before returning.
    """
    b, c = images.shape[:2]
    shape = images.shape
    if scratch:
        scaled = _scratch("index", shape, torch.float32, images.device)
    else:
        scaled = torch.empty(shape, dtype=torch.float32, device=images.device)
    if images.dtype == torch.float32 and b * c * _LEVELS <= _MAGIC_PLANES:
        # One pass for 255 x + magic + plane offset: every sum lies in [2**23, 2**24), where float32
        # steps by exactly 1, so it is rounded to the integer nearest 255 x (the offsets are
        # even integers, so half-way cases still round to the even level), whatever the offset.
        bias = torch.arange(b * c, dtype=torch.float32, device=images.device).mul_(_LEVELS).add_(_MAGIC)
        torch.add(bias.view(b, c, 1, 1), images, alpha=255.0, out=scaled)
        return scaled.view(torch.int32).sub_(_MAGIC_BITS)
    if images.dtype == torch.float32:
        torch.mul(images, 255.0, out=scaled)
    else:
        scaled.copy_(images).mul_(255.0)  # multiply in float32, not in the half type
    scaled.add_(_MAGIC)
    index = scaled.view(torch.int32)
    offsets = torch.arange(0, b * c * _LEVELS, _LEVELS, dtype=torch.int32, device=images.device)
    index.add_(offsets.sub_(_MAGIC_BITS).view(b, c, 1, 1))
    return index


def _exact_in_int16(factor: torch.Tensor) -> bool:
    """Whether every factor is k / 64 with 0 <= k <= 128 (checked on the host: CPU only)."""
    if factor.device.type != "cpu" or factor.numel() == 0:
        return False
    k = factor.float() * 64
    return bool(((k == k.round()) & (k >= 0) & (k <= 128)).all())


# Rows of a tile of the sharpness filter: about this many bytes of int16 input per tile, so that
# the dozen elementwise passes of the filter run in the CPU cache instead of main memory.
_TILE_BYTES = 1 << 21


def _sharpen_into(
    levels: torch.Tensor,
    factor: torch.Tensor,
    out: torch.Tensor,
    offset: torch.Tensor | None = None,
    integer: bool | None = None,
) -> torch.Tensor:
    """Sharpen int16 ``levels`` into ``out`` (any real dtype), adding ``offset`` (B, C, 1, 1) if given.

    ``levels`` is left unchanged; on the CPU the image is processed in tiles of rows (each tile is
    a batched computation over every sample, the loop runs over image rows).
    """
    b, c, h, w = levels.shape
    if integer is None:
        integer = _exact_in_int16(factor)
    if h < 3 or w < 3 or b == 0:
        out.copy_(levels)
        return out if offset is None else out.add_(offset)
    out[:, :, 0].copy_(levels[:, :, 0])
    out[:, :, -1].copy_(levels[:, :, -1])
    out[:, :, 1:-1, 0].copy_(levels[:, :, 1:-1, 0])
    out[:, :, 1:-1, -1].copy_(levels[:, :, 1:-1, -1])
    if offset is not None:
        out[:, :, 0].add_(offset.view(b, c, 1))
        out[:, :, -1].add_(offset.view(b, c, 1))
    if integer:
        weight = (factor.float() * 64).to(torch.int16).view(b, 1, 1, 1)
    else:
        weight = factor.to(torch.float32).view(b, 1, 1, 1)
    if levels.device.type == "cpu":
        tile = max(8, _TILE_BYTES // max(1, b * c * w * levels.element_size()) - 2)
    else:
        tile = h - 2
    for y0 in range(1, h - 1, tile):
        y1 = min(y0 + tile, h - 1)
        out[:, :, y0:y1, 1:-1].copy_(_sharpen_rows(levels[:, :, y0 - 1 : y1 + 1], weight, integer))
        if offset is not None:
            out[:, :, y0:y1].add_(offset)
    return out


def _sharpen_rows(src: torch.Tensor, weight: torch.Tensor, integer: bool) -> torch.Tensor:
    """Sharpened interior (B, C, R, W - 2) of int16 rows ``src`` (B, C, R + 2, W)."""
    # A separable box sum in int16 (at most 13 * 255) is exact and much faster than a depthwise conv.
    rows = src[..., :-2] + src[..., 1:-1]
    rows += src[..., 2:]
    total = rows[:, :, :-2] + rows[:, :, 1:-1]
    total += rows[:, :, 2:]
    centre = src[:, :, 1:-1, 1:-1]
    total.add_(centre, alpha=4)
    # (S + 6.5) / 13 is at least 0.5 / 13 away from an integer, so the float rounding cannot move
    # the floor: this is round(S / 13) (S / 13 never ends in .5).
    smooth = total.to(torch.float32).add_(6.5).mul_(1.0 / 13.0).floor_()
    if integer:
        smooth16 = smooth.to(torch.int16)
        value = centre - smooth16
        return value.mul_(weight).bitwise_right_shift_(6).add_(smooth16).clamp_(0, 255)
    blend = centre.to(torch.float32)
    blend.sub_(smooth).mul_(weight).add_(smooth)
    return blend.floor_().clamp_(0.0, 255.0)
