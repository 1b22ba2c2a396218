"""Batched texture ops on 256 grey levels, with per-sample strengths.

Each op takes images (B, C, H, W) float in [0, 1] (C in {1, 3}; float32, float16 or bfloat16) and a
strength that is either a number (the same for every sample) or a tensor of shape (B,) (one per
sample), and returns images of the same shape, dtype and device. No Python loop runs over the batch.
A single image (C, H, W) is a batch of one: its strength is a number or a (1,) tensor, and the result
is (C, H, W) again.

Convention:
    Every op works on 256 levels, as PIL does on ``uint8`` images: the input is quantised once to
    ``levels = round(x * 255)`` (round half to even, computed in float32), the op maps levels to
    levels, and the output is ``levels / 255`` (computed in float32, then cast to the input dtype).
    So the output always lies on the 256-level grid, and an input that already lies on it (``k / 255``)
    is reproduced exactly by an identity strength. RGB images are treated channel by channel, like
    PIL (``equalize`` and ``autocontrast`` use one histogram per channel).

    Five ops (equalize, solarize, posterize, autocontrast, brightness) are lookup tables over the 256
    levels of each (sample, channel); :func:`levels_index`, :func:`levels_histogram` and
    :func:`apply_levels_lut` expose that machinery so that several table ops can be composed on the
    (B, C, 256) tables without touching the image in between (see :class:`fgad.augment.TextureAugment`).
    The ops are not differentiable (quantisation has no useful gradient); the output never requires
    grad. With value checks switched off (``fgad.set_validation(False)``) inputs must still
    lie in [0, 1]: other values map to wrong levels or raise an index error.

    Cost: a table op reads the image once to quantise it (into a per-thread int32 scratch buffer
    that is kept between calls on the CPU, because page-faulting a fresh batch-sized buffer costs
    more than the op), counts the histogram where needed, and writes the output once.

    How the definitions compare with PIL 10+ (``ImageOps`` / ``ImageEnhance`` on ``uint8``), pinned in
    ``tests/test_texture.py``:

    - :func:`adjust_sharpness` (3x3 SMOOTH kernel rounded to levels, border pixels kept, blend),
      :func:`equalize`, :func:`solarize`, :func:`posterize`,
      :func:`autocontrast` (cutoff included, no ``ignore`` / ``preserve_tone``) and
      :func:`adjust_brightness` with ``offset=0`` give exactly PIL's levels, including PIL's truncation
      (not rounding) in ``Image.blend`` for sharpness and brightness and its double-precision
      arithmetic in autocontrast (float32 on devices without float64, where a level may differ by 1).
    - ``solarize`` takes its threshold in levels (0..256, PIL's unit), not in [0, 1] like kornia and
      torchvision; levels ``>= threshold`` are inverted. A fractional threshold ``t`` acts like
      ``ceil(t)``.
    - torchvision's ``adjust_sharpness`` blends in float without re-quantising the smoothed image;
      its ``autocontrast`` stretches each channel's min..max in float (no truncation, no cutoff) and
      kornia's ``equalize`` differs from PIL's step rule; these ops follow PIL, not them.
    - ``adjust_brightness`` adds an optional per-sample ``offset`` in levels after the multiplication
      (PIL's Brightness has none): ``floor(factor * level + offset)`` clamped to 0..255.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch

from fgad._checks import as_batch, check_image

from ._buffers import _new_buffer
from ._levels import _LEVELS, _quantise, _sharpen_into

__all__ = [
    "adjust_brightness",
    "adjust_sharpness",
    "apply_levels_lut",
    "autocontrast",
    "autocontrast_lut",
    "brightness_lut",
    "equalize",
    "equalize_lut",
    "levels_histogram",
    "levels_index",
    "posterize",
    "posterize_lut",
    "sharpen_levels",
    "solarize",
    "solarize_lut",
]

Strength = float | int | torch.Tensor
_Op = TypeVar("_Op", bound=Callable[..., torch.Tensor])


def _per_sample(
    value: Strength, batch_size: int, name: str, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """A strength as a (B,) tensor of ``dtype`` on ``device`` (a number is broadcast)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number or a tensor of shape ({batch_size},), got bool")
    if isinstance(value, (int, float)):
        return torch.full((batch_size,), value, dtype=dtype, device=device)
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{name} must be a number or a tensor of shape ({batch_size},), got {type(value).__name__}"
        )
    if value.ndim == 0:
        value = value.expand(batch_size)
    if value.shape != (batch_size,):
        raise ValueError(
            f"{name} must be a number or a tensor of shape ({batch_size},), got shape {tuple(value.shape)}"
        )
    if value.is_complex() or value.dtype == torch.bool:
        raise TypeError(f"{name} must be a real number tensor, got dtype {value.dtype}")
    if not dtype.is_floating_point and value.is_floating_point():
        raise TypeError(f"{name} must be an integer tensor, got dtype {value.dtype}")
    return value.to(device=device, dtype=dtype)


def _float64_ok(device: torch.device) -> bool:
    return device.type != "mps"


def levels_index(images: torch.Tensor) -> torch.Tensor:
    """Quantise images to levels and add each (sample, channel) plane's offset into a flat table.

    Args:
        images: float images in [0, 1] (validated by the caller).

    Returns:
        int32 tensor (B, C, H, W): ``round(x * 255) + 256 * (b * C + c)``; an index into a flattened
        (B, C, 256) table, as used by :func:`levels_histogram` and :func:`apply_levels_lut`.

    Shape:
        (B, C, H, W) -> (B, C, H, W)

    Example:
        >>> levels_index(torch.tensor([[[[0.0, 1.0]], [[0.5, 0.2]]]])).tolist()
        [[[[0, 255]], [[384, 307]]]]
    """
    return _quantise(images)


def levels_histogram(index: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """256-bin histogram of each (sample, channel) plane from :func:`levels_index`'s output.

    ``batch_size`` (default: the index's own) is the number of samples the plane offsets address,
    for an index holding a subset of a larger batch's planes.

    Shape:
        (B, C, H, W) int32 -> (B, C, 256) int64

    Example:
        >>> index = levels_index(torch.tensor([[[[0.0, 1.0, 1.0]]]]))
        >>> h = levels_histogram(index)
        >>> h.shape, int(h[0, 0, 0]), int(h[0, 0, 255])
        (torch.Size([1, 1, 256]), 1, 2)
    """
    b, c = index.shape[:2]
    b = b if batch_size is None else batch_size
    flat = index.reshape(-1)
    if index.device.type == "cpu":
        counts = torch.bincount(flat, minlength=b * c * _LEVELS)
    else:
        counts = _scatter_histogram(flat, b * c * _LEVELS)
    return counts.view(b, c, _LEVELS)


def _scatter_histogram(flat: torch.Tensor, bins: int) -> torch.Tensor:
    """Counts of ``flat`` in ``bins`` bins without a host sync (CUDA's bincount reads the max)."""
    ones = torch.ones(1, dtype=torch.int64, device=flat.device).expand(flat.numel())
    return torch.zeros(bins, dtype=torch.int64, device=flat.device).index_add_(0, flat, ones)


def apply_levels_lut(
    index: torch.Tensor, lut: torch.Tensor, dtype: torch.dtype, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Map every pixel through its plane's table of levels and return ``level / 255`` in ``dtype``.

    Args:
        index: int32 (B, C, H, W) from :func:`levels_index`.
        lut: integer (B, C, 256) table of output levels in 0..255.
        dtype: floating dtype of the result.
        out: optional float tensor (B, C, H, W) of ``dtype`` to write into.

    Shape:
        (B, C, H, W), (B, C, 256) -> (B, C, H, W)

    Example:
        >>> x = torch.tensor([[[[0.0, 1.0]]]])
        >>> apply_levels_lut(levels_index(x), 255 - torch.arange(256).view(1, 1, 256), x.dtype).tolist()
        [[[[1.0, 0.0]]]]
    """
    table = (lut.to(torch.float32) / 255.0).to(dtype).reshape(-1)
    flat = index.reshape(-1)
    if out is None:
        return torch.index_select(table, 0, flat).view(index.shape)
    torch.index_select(table, 0, flat, out=out.view(-1))
    return out


def solarize_lut(threshold: torch.Tensor, channels: int) -> torch.Tensor:
    """(B, C, 256) table inverting levels ``>= threshold`` (threshold (B,) in levels)."""
    levels = torch.arange(_LEVELS, device=threshold.device)
    lut = torch.where(levels >= threshold.view(-1, 1), 255 - levels, levels)
    return lut.unsqueeze(1).expand(-1, channels, -1)


def posterize_lut(bits: torch.Tensor, channels: int) -> torch.Tensor:
    """(B, C, 256) table keeping the ``bits`` (B,) high bits of each level (PIL's bit mask)."""
    levels = torch.arange(_LEVELS, device=bits.device)
    mask = _LEVELS - torch.bitwise_left_shift(torch.ones_like(bits), 8 - bits)
    lut = torch.bitwise_and(levels, mask.view(-1, 1))
    return lut.unsqueeze(1).expand(-1, channels, -1)


def brightness_lut(factor: torch.Tensor, offset: torch.Tensor, channels: int) -> torch.Tensor:
    """(B, C, 256) table ``floor(factor * level + offset)`` clamped to 0..255 (float32 arithmetic)."""
    levels = torch.arange(_LEVELS, device=factor.device, dtype=torch.float32)
    value = levels * factor.view(-1, 1).float()
    value = value + offset.view(-1, 1).float()
    lut = value.floor_().clamp_(0, 255).long()
    return lut.unsqueeze(1).expand(-1, channels, -1)


def equalize_lut(hist: torch.Tensor) -> torch.Tensor:
    """(B, C, 256) table of PIL's ``ImageOps.equalize`` for each plane's histogram (B, C, 256).

    ``step = (N - count of the highest present level) // 255``; the table is
    ``(step // 2 + number of pixels below the level) // step``, clamped to 255, or the identity when
    ``step`` is 0 (fewer than two distinct levels, or too few pixels).
    """
    hist = hist.long()
    levels = torch.arange(_LEVELS, device=hist.device)
    total = hist.sum(-1, keepdim=True)
    top = torch.where(hist > 0, levels, -1).amax(-1, keepdim=True).clamp_(min=0)
    step = (total - hist.gather(-1, top)) // 255
    below = torch.cumsum(hist, -1) - hist
    lut = ((step // 2 + below) // step.clamp(min=1)).clamp_(max=255)
    return torch.where(step > 0, lut, levels)


def autocontrast_lut(hist: torch.Tensor, cutoff: torch.Tensor) -> torch.Tensor:
    """(B, C, 256) table of PIL's ``ImageOps.autocontrast(cutoff=cutoff)`` per plane.

    ``cutoff`` (B,) is the percentage of pixels cut from each end of the histogram; the kept range
    lo..hi is stretched to 0..255 with PIL's ``int(level * scale + offset)`` (double precision where
    the device has it); a plane with ``hi <= lo`` keeps its levels.
    """
    hist = hist.long()
    device = hist.device
    levels = torch.arange(_LEVELS, device=device)
    total = hist.sum(-1)
    ftype = torch.float64 if _float64_ok(device) else torch.float32
    cut = torch.floor(total.to(ftype) * cutoff.to(ftype).view(-1, 1) / 100.0).long().unsqueeze(-1)
    from_low = torch.cumsum(hist, -1)
    from_high = total.unsqueeze(-1) - from_low + hist
    lo = torch.where(from_low > cut, levels, _LEVELS).amin(-1, keepdim=True)
    hi = torch.where(from_high > cut, levels, -1).amax(-1, keepdim=True)
    span = (hi - lo).clamp(min=1).to(ftype)
    # torch's ``255.0 / span`` is ``reciprocal(span) * 255``, which rounds differently from PIL.
    scale = torch.full_like(span, 255.0).div_(span)
    offset = -lo.to(ftype) * scale
    value = levels.to(ftype) * scale + offset
    lut = value.trunc().clamp_(0, 255).long()
    return torch.where(hi > lo, lut, levels)


def sharpen_levels(
    levels: torch.Tensor, factor: torch.Tensor, *, integer: bool | None = None
) -> torch.Tensor:
    """PIL's ``ImageEnhance.Sharpness`` on int16 level images (B, C, H, W) with factors (B,).

    The smoothed image is the 3x3 kernel [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 rounded to levels
    (PIL's ``ImageFilter.SMOOTH``); interior pixels become ``floor(s + factor * (level - s))`` with
    PIL's float32 arithmetic, clamped to 0..255 (PIL's ``Image.blend`` truncates); the one-pixel
    border is kept, as in PIL. Factor 1 is the identity, 0 the smoothed image, 2 a sharpened one.

    Factors on the grid k / 64 (0 <= k <= 128, which :class:`~fgad.augment.TextureAugment` draws)
    make that float arithmetic exact, and on the CPU the blend then runs in 16-bit integers
    (``s + ((64 * factor * (level - s)) >> 6)``), with the same result. ``integer`` forces that
    path (True; factors must then be on the grid) or the float32 one (False); None chooses.

    Shape:
        (B, C, H, W), (B,) -> (B, C, H, W) int16

    Example:
        >>> levels = torch.zeros(1, 1, 3, 3, dtype=torch.int16)
        >>> levels[0, 0, 1, 1] = 130
        >>> sharpen_levels(levels, torch.tensor([2.0]))[0, 0, 1].tolist()
        [0, 210, 0]
    """
    if levels.dtype != torch.int16:
        raise TypeError(f"levels must be an int16 tensor, got {levels.dtype}")
    return _sharpen_into(
        levels, factor, torch.empty_like(levels, memory_format=torch.contiguous_format), integer=integer
    )


def _single_image(op: _Op) -> _Op:
    """Let a batched op take one image (C, H, W) too, and return the rank it was given."""

    @functools.wraps(op)
    def wrapper(images: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        batch, single = as_batch(images)
        out = op(batch, *args, **kwargs)
        return out[0] if single else out

    return wrapper  # type: ignore[return-value]


def _lut_op(images: torch.Tensor, make_lut) -> torch.Tensor:  # type: ignore[no-untyped-def]
    index = _quantise(images, scratch=True)
    out = _new_buffer(images.shape, images.dtype, images.device)
    return apply_levels_lut(index, make_lut(index), images.dtype, out=out)


@_single_image
def solarize(images: torch.Tensor, threshold: Strength = 128) -> torch.Tensor:
    """Invert every level ``>= threshold`` (``ImageOps.solarize``), per sample.

    Args:
        images: (B, C, H, W) float in [0, 1].
        threshold: levels (0..256), a number or a (B,) tensor. 256 is the identity, 0 inverts all.

    Shape:
        (B, C, H, W) -> (B, C, H, W)

    Example:
        >>> x = torch.tensor([[[[0.0, 100 / 255, 200 / 255]]]])
        >>> (solarize(x, 128) * 255).round().tolist()
        [[[[0.0, 100.0, 55.0]]]]
    """
    check_image(images)
    t = _per_sample(threshold, images.shape[0], "threshold", images.device, torch.float32)
    return _lut_op(images, lambda _: solarize_lut(t, images.shape[1]))


@_single_image
def posterize(images: torch.Tensor, bits: Strength) -> torch.Tensor:
    """Keep the ``bits`` high bits of every level (``ImageOps.posterize``), per sample.

    Args:
        images: (B, C, H, W) float in [0, 1].
        bits: integer 0..8, a number or a (B,) integer tensor. 8 is the identity, 0 gives black.

    Shape:
        (B, C, H, W) -> (B, C, H, W)

    Example:
        >>> x = torch.tensor([[[[0.0, 100 / 255, 200 / 255]]], [[[0.0, 100 / 255, 200 / 255]]]])
        >>> (posterize(x, torch.tensor([2, 8])) * 255).round().flatten().tolist()
        [0.0, 64.0, 192.0, 0.0, 100.0, 200.0]
    """
    check_image(images)
    n = _per_sample(bits, images.shape[0], "bits", images.device, torch.long)
    return _lut_op(images, lambda _: posterize_lut(n, images.shape[1]))


@_single_image
def adjust_brightness(images: torch.Tensor, factor: Strength, offset: Strength = 0.0) -> torch.Tensor:
    """Scale levels by ``factor`` and add ``offset`` levels: ``floor(factor * level + offset)``.

    With ``offset=0`` this is ``ImageEnhance.Brightness(image).enhance(factor)`` exactly.

    Args:
        images: (B, C, H, W) float in [0, 1].
        factor: multiplier >= 0, a number or a (B,) tensor. 1 is the identity.
        offset: added levels (e.g. -30..30), a number or a (B,) tensor.

    Shape:
        (B, C, H, W) -> (B, C, H, W)

    Example:
        >>> x = torch.tensor([[[[10 / 255, 100 / 255, 250 / 255]]]])
        >>> (adjust_brightness(x, 1.5) * 255).round().tolist()
        [[[[15.0, 150.0, 255.0]]]]
    """
    check_image(images)
    f = _per_sample(factor, images.shape[0], "factor", images.device, torch.float32)
    a = _per_sample(offset, images.shape[0], "offset", images.device, torch.float32)
    return _lut_op(images, lambda _: brightness_lut(f, a, images.shape[1]))


@_single_image
def equalize(images: torch.Tensor) -> torch.Tensor:
    """Equalise each (sample, channel) histogram like ``ImageOps.equalize``.

    Shape:
        (B, C, H, W) -> (B, C, H, W)

    Example:
        >>> x = torch.zeros(1, 1, 2, 300)
        >>> x[0, 0, 1] = 10 / 255
        >>> (equalize(x) * 255).round().unique().tolist()
        [0.0, 255.0]
    """
    check_image(images)
    return _lut_op(images, lambda index: equalize_lut(levels_histogram(index)))


@_single_image
def autocontrast(images: torch.Tensor, cutoff: Strength = 0.0) -> torch.Tensor:
    """Stretch each (sample, channel) range of levels to 0..255 like ``ImageOps.autocontrast``.

    Args:
        images: (B, C, H, W) float in [0, 1].
        cutoff: percent of pixels ignored at each end of the histogram (0 <= cutoff < 50), a number
            or a (B,) tensor.

    Shape:
        (B, C, H, W) -> (B, C, H, W)

    Example:
        >>> x = torch.tensor([[[[50 / 255, 100 / 255, 150 / 255]]]])
        >>> (autocontrast(x) * 255).round().tolist()
        [[[[0.0, 127.0, 255.0]]]]
    """
    check_image(images)
    c = _per_sample(cutoff, images.shape[0], "cutoff", images.device, torch.float32)
    return _lut_op(images, lambda index: autocontrast_lut(levels_histogram(index), c))


@_single_image
def adjust_sharpness(images: torch.Tensor, factor: Strength) -> torch.Tensor:
    """Blend with the smoothed image like ``ImageEnhance.Sharpness(image).enhance(factor)``.

    Args:
        images: (B, C, H, W) float in [0, 1].
        factor: a number or a (B,) tensor; 0 smooths, 1 is the identity, 2 sharpens.

    Shape:
        (B, C, H, W) -> (B, C, H, W)

    Example:
        >>> x = torch.zeros(1, 1, 3, 3)
        >>> x[0, 0, 1, 1] = 130 / 255
        >>> (adjust_sharpness(x, 0.0) * 255).round()[0, 0].tolist()
        [[0.0, 0.0, 0.0], [0.0, 50.0, 0.0], [0.0, 0.0, 0.0]]
    """
    check_image(images)
    f = _per_sample(factor, images.shape[0], "factor", images.device, torch.float32)
    levels = sharpen_levels(images.float().mul(255.0).round_().to(torch.int16), f)
    return levels.to(torch.float32).div_(255.0).to(images.dtype)
