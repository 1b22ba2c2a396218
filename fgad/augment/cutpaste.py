"""CutPaste and CutPaste-Scar (Li et al., CVPR 2021) behind :class:`AnomalySynthesizer`'s contract."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from ._params import ParamsMixin
from ._patch import (
    PatchSynthesizer,
    apply_colour,
    bilinear,
    coefficients,
    colour_map,
    fresh_copy,
    jitter_factors,
    patch_mean,
    pick_pixel,
    uniform,
)
from ._validate import check_range
from .foreground import ForegroundMask
from .registry import register_synthesizer

__all__ = ["CutPaste", "CutPasteParams", "CutPasteScar", "ScarParams"]


def _jitter_strength(value: object) -> tuple[float, float, float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = (value,) * 4
    try:
        out = tuple(float(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise TypeError(f"color_jitter must be a number or 4 numbers, got {value!r}") from None
    if len(out) != 4 or not all(0.0 <= v <= 1.0 for v in out) or out[3] > 0.5:
        raise ValueError(
            "color_jitter must be (brightness, contrast, saturation, hue) in [0, 1] (hue <= 0.5), "
            f"got {value!r}"
        )
    return out  # type: ignore[return-value]


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


@dataclass
class CutPasteParams(ParamsMixin):
    """Random values of one :class:`CutPaste` call, per sample.

    Attributes:
        anomalous: (B,) bool, whether the sample gets a patch.
        area: (B,) float32 patch area as a fraction of the image.
        aspect: (B,) float32 patch height / width.
        source: (B, 2) float32 in [0, 1): where the patch is cut (fraction of the free rows / columns).
        target: (B,) float32 in [0, 1): the rank of the patch centre among the allowed pixels.
        jitter: (B, 4) float32 brightness, contrast, saturation factors and hue shift.
    """

    anomalous: torch.Tensor
    area: torch.Tensor
    aspect: torch.Tensor
    source: torch.Tensor
    target: torch.Tensor
    jitter: torch.Tensor


@dataclass
class ScarParams(ParamsMixin):
    """Random values of one :class:`CutPasteScar` call, per sample.

    Attributes:
        anomalous: (B,) bool.
        size: (B, 2) long scar height (its long side) and width in pixels.
        angle: (B,) float32 rotation in degrees.
        source: (B, 2) float32 in [0, 1): where the scar is cut.
        target: (B,) float32 in [0, 1): the rank of the scar centre among the allowed pixels.
        jitter: (B, 4) float32 colour jitter values.
    """

    anomalous: torch.Tensor
    size: torch.Tensor
    angle: torch.Tensor
    source: torch.Tensor
    target: torch.Tensor
    jitter: torch.Tensor


class CutPaste(PatchSynthesizer):
    """CutPaste: a rectangle cut from the image, colour-jittered and pasted elsewhere in it.

    Li, Sohn, Yoon, Pfister. CutPaste: self-supervised learning for anomaly detection and localization.
    CVPR 2021: area ratio in (0.02, 0.15), aspect ratio (height / width) uniform in (0.3, 1) or in
    (1, 3.3) with equal probability, colour jitter 0.1 (brightness, contrast, saturation, hue).

    Args:
        foreground: where the patch may go (see :class:`~fgad.augment.AnomalySynthesizer`); ``None``:
            anywhere, as in the paper.
        anomaly_prob: probability that a sample gets a patch.
        area_ratio: (lo, hi) patch area as a fraction of the image.
        aspect_ratio: (lo, hi) with lo <= 1 <= hi: height / width, uniform on (lo, 1) or (1, hi).
        color_jitter: brightness, contrast, saturation and hue strengths (one number: all four).
        polarity, min_fraction, cleanup, fill_holes: passed to :class:`ForegroundMask`.

    Shape:
        images (B, C, H, W) or (C, H, W) floating in [0, 1], C in {1, 3}.

    Convention:
        The contract of :class:`~fgad.augment.AnomalySynthesizer`: sample first (a params object,
        drawn with ``generator`` on its device), apply second; ``params=`` replays a call bit for bit;
        a batch equals its samples done one by one; pixels outside the mask are bitwise the input's;
        label = mask non-empty; the images' dtype is kept; (C, H, W) gives a single result. The
        patch comes from the image itself: ``textures`` is accepted and ignored, and ``target`` is the
        input (no input rotation). The patch centre is a pixel of the foreground (uniform over it;
        ``foreground=None``: over the image, the paper's placement) and the mask is the pasted
        region on the foreground. The colour jitter is one affine colour map per sample (see
        ``fgad.augment._patch.colour_map``), clamped to [0, 1]; the contrast reference is the patch's
        mean grey level read on an 8 x 8 lattice of its pixels. No Python loop over the batch and
        no host synchronisation (on the CPU only the pasted pixels are computed).
    Example:
        >>> synth = CutPaste(foreground=None, anomaly_prob=1.0)
        >>> res = synth(torch.rand(2, 3, 64, 64), generator=torch.Generator().manual_seed(0))
        >>> res.label.tolist()
        [1.0, 1.0]
    """

    params_type = CutPasteParams
    _sparse_on_cpu = True  # the CPU computes the pasted pixels only (False: the accelerator path)

    def __init__(
        self,
        foreground: Literal["auto", "otsu"] | ForegroundMask | None = "auto",
        anomaly_prob: float = 0.5,
        area_ratio: tuple[float, float] = (0.02, 0.15),
        aspect_ratio: tuple[float, float] = (0.3, 3.3),
        color_jitter: float | tuple[float, float, float, float] = 0.1,
        **foreground_options: object,
    ) -> None:
        super().__init__(foreground, anomaly_prob, **foreground_options)  # type: ignore[arg-type]
        self.area_ratio = check_range("area_ratio", area_ratio, 1e-6, 1.0)
        self.aspect_ratio = check_range("aspect_ratio", aspect_ratio, 1e-3, 1e3)
        if not self.aspect_ratio[0] <= 1.0 <= self.aspect_ratio[1]:
            raise ValueError(f"aspect_ratio must hold 1 (lo <= 1 <= hi), got {aspect_ratio!r}")
        self.color_jitter = _jitter_strength(color_jitter)

    def sample_params(
        self,
        batch_size: int,
        *,
        bank_size: int | None = None,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> CutPasteParams:
        """Draw every random value for ``batch_size`` samples."""
        where, b = self._where(generator, device), batch_size
        anomalous = self._draw_anomalous(b, self.anomaly_prob, where, generator)
        area = uniform((b,), *self.area_ratio, where, generator)
        tall = torch.rand(b, generator=generator, device=where) < 0.5
        lo, hi = self.aspect_ratio
        aspect = torch.where(
            tall, uniform((b,), 1.0, hi, where, generator), uniform((b,), lo, 1.0, where, generator)
        )
        source = torch.rand(b, 2, generator=generator, device=where)
        target = torch.rand(b, generator=generator, device=where)
        jitter = jitter_factors(b, self.color_jitter, where, generator)
        params = CutPasteParams(anomalous, area, aspect, source, target, jitter)
        return params.to(device) if device is not None else params

    def _synthesize(
        self,
        images: torch.Tensor,
        bank: torch.Tensor | None,
        params: CutPasteParams,
        foreground: torch.Tensor | None,
    ) -> tuple[torch.Tensor, ...]:
        batch, channels, height, width = images.shape
        work = _compute_dtype(images.dtype)
        area = params.area.to(torch.float64) * (height * width)
        aspect = params.aspect.to(torch.float64)
        h = (area * aspect).sqrt().round().long().clamp(1, height)
        w = (area / aspect).sqrt().round().long().clamp(1, width)
        sy = (params.source[:, 0].to(torch.float64) * (height - h + 1)).floor().long()
        sx = (params.source[:, 1].to(torch.float64) * (width - w + 1)).floor().long()
        fg = None if foreground is None else foreground[:, 0]
        cy, cx, ok = pick_pixel(fg, params.target, (height, width))
        ty = torch.minimum((cy - h // 2).clamp(min=0), height - h)
        tx = torch.minimum((cx - w // 2).clamp(min=0), width - w)
        on = params.anomalous & ok
        matrix, offset = colour_map(params.jitter, patch_mean(images, sy, sx, h, w), channels)
        matrix, offset = matrix.to(work), offset.to(work)
        flat = images.contiguous().view(batch, channels, height * width)
        if images.device.type == "cpu" and self._sparse_on_cpu:
            return self._sparse(images, flat, fg, h, w, sy, sx, ty, tx, on, matrix, offset, work)
        ys = torch.arange(height, device=images.device).view(1, -1)
        xs = torch.arange(width, device=images.device).view(1, -1)
        rows = (ys >= ty.view(-1, 1)) & (ys < (ty + h).view(-1, 1)) & on.view(-1, 1)
        cols = (xs >= tx.view(-1, 1)) & (xs < (tx + w).view(-1, 1))
        mask = rows.unsqueeze(2) & cols.unsqueeze(1)
        if fg is not None:
            mask &= fg
        src_y = (sy.view(-1, 1) + ys - ty.view(-1, 1)).clamp_(0, height - 1)
        src_x = (sx.view(-1, 1) + xs - tx.view(-1, 1)).clamp_(0, width - 1)
        index = (src_y.unsqueeze(2) * width + src_x.unsqueeze(1)).view(batch, 1, -1)
        read = flat.gather(2, index.expand(batch, channels, height * width)).to(work)
        new = apply_colour(
            [read[:, c] for c in range(channels)], coefficients(matrix, (-1, 1)), offset.view(-1, 1)
        )
        pasted = torch.stack(new, 1).to(images.dtype)
        out = torch.where(mask.view(batch, 1, -1), pasted, flat)
        return out.view(batch, channels, height, width), mask.unsqueeze(1)

    @staticmethod
    def _sparse(
        images: torch.Tensor,
        flat: torch.Tensor,
        fg: torch.Tensor | None,
        h: torch.Tensor,
        w: torch.Tensor,
        sy: torch.Tensor,
        sx: torch.Tensor,
        ty: torch.Tensor,
        tx: torch.Tensor,
        on: torch.Tensor,
        matrix: torch.Tensor,
        offset: torch.Tensor,
        work: torch.dtype,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """CPU: the pasted pixels listed row by row of the rectangles (the list's length costs
        nothing to read here), and only those computed; the same values as the dense path."""
        batch, channels, plane = flat.shape
        width = images.shape[-1]
        device = flat.device
        # int32 pixel indices where every index fits (half the memory traffic of int64)
        index_type = torch.int32 if flat.numel() < 2**31 else torch.int64
        # Per row of the pasted rectangles (a few hundred per batch) everything is cheap: the sample,
        # the index of the row's first pixel in channel 0 of the (B, C, H * W) images, of its source
        # and in the (B, H * W) masks, each minus the row's first position in the pixel list; a
        # pixel's index is then its row's value plus its own list position.
        tall = h * on
        rows_total = int(tall.sum())
        row_sample = torch.repeat_interleave(tall, output_size=rows_total)
        first_row = (tall.cumsum(0) - tall).index_select(0, row_sample)
        row_in_rect = torch.arange(rows_total, device=device) - first_row
        row_w = w.index_select(0, row_sample)
        row_start = row_w.cumsum(0) - row_w
        total = int(row_w.sum())
        dst_row = (
            row_sample * (channels * plane)
            + (ty.index_select(0, row_sample) + row_in_rect) * width
            + tx.index_select(0, row_sample)
            - row_start
        )
        src_row = dst_row + ((sy - ty) * width + (sx - tx)).index_select(0, row_sample)
        mask_row = dst_row - row_sample * ((channels - 1) * plane)
        row_id = torch.repeat_interleave(row_w, output_size=total)  # the row of each pasted pixel
        position = torch.arange(total, device=device, dtype=index_type)

        def per_pixel(values: torch.Tensor) -> torch.Tensor:
            return values.to(index_type).index_select(0, row_id).add_(position)

        dst, src, pixel = per_pixel(dst_row), per_pixel(src_row), per_pixel(mask_row)
        # the colour map's C * C coefficients and its offset, per row
        coef_row = torch.cat((matrix.reshape(batch, channels * channels), offset.view(batch, 1)), 1)
        coef_row = coef_row.index_select(0, row_sample).t().contiguous()
        mask = torch.zeros(batch * plane, dtype=images.dtype, device=device)
        if fg is not None:
            keep = fg.reshape(-1).index_select(0, pixel)
            src, pixel, dst, row_id = src[keep], pixel[keep], dst[keep], row_id[keep]
            kept = torch.zeros(batch, dtype=torch.int64, device=device)
            label = kept.index_add_(0, row_sample.index_select(0, row_id), torch.ones_like(row_id)) > 0
        else:
            label = tall > 0
        coef = coef_row.index_select(1, row_id)
        mask.index_fill_(0, pixel.long(), 1)  # index_fill_ and index_copy_ take int64 indices only
        # one read and one write of the contiguous images for all channels at once (channel c of a
        # pixel is plane elements after channel 0)
        by_channel = torch.arange(channels, device=device, dtype=index_type).mul_(plane).view(channels, 1)
        src_all = src.unsqueeze(0) + by_channel
        read = flat.reshape(-1).index_select(0, src_all.view(-1)).view(src_all.shape).to(work)
        rows_coef = [[coef[i * channels + j] for j in range(channels)] for i in range(channels)]
        new = torch.empty_like(read)
        apply_colour(read.unbind(0), rows_coef, coef[channels * channels], out=new)
        out = fresh_copy(flat)
        dst_all = (dst.unsqueeze(0) + by_channel).view(-1).long()
        out.view(-1).index_copy_(0, dst_all, new.to(images.dtype).view(-1))
        return out.view(images.shape), mask.view(batch, 1, *images.shape[2:]), label


class CutPasteScar(PatchSynthesizer):
    """CutPaste-Scar: a thin rectangle cut from the image, colour-jittered, rotated and pasted.

    Li et al. CVPR 2021: width (2, 16) and height (10, 25) pixels, rotation (-45, 45) degrees, colour
    jitter 0.1. The rotated scar is read from the cut rectangle bilinearly (neighbours clamped to it,
    so nothing outside the cut bleeds in) and centred on the chosen pixel; parts that leave the image
    are dropped.

    Args:
        foreground: where the scar may go; ``None``: anywhere, as in the paper.
        anomaly_prob: probability that a sample gets a scar.
        width: (lo, hi) integer scar width in pixels (the short side).
        height: (lo, hi) integer scar length in pixels.
        rotation: (lo, hi) rotation in degrees.
        color_jitter: as :class:`CutPaste`.
        polarity, min_fraction, cleanup, fill_holes: passed to :class:`ForegroundMask`.

    Shape:
        images (B, C, H, W) or (C, H, W) floating in [0, 1], C in {1, 3}.

    Convention:
        The contract of :class:`~fgad.augment.AnomalySynthesizer`: sample first (a params object,
        drawn with ``generator`` on its device), apply second; ``params=`` replays a call bit for bit;
        a batch equals its samples done one by one; pixels outside the mask are bitwise the input's;
        label = mask non-empty; the images' dtype is kept; (C, H, W) gives a single result. The
        patch comes from the image itself: ``textures`` is accepted and ignored, and ``target`` is the
        input (no input rotation). The patch centre is a pixel of the foreground (uniform over it;
        ``foreground=None``: over the image, the paper's placement) and the mask is the pasted
        region on the foreground. The colour jitter is one affine colour map per sample (see
        ``fgad.augment._patch.colour_map``), clamped to [0, 1]; the contrast reference is the patch's
        mean grey level read on an 8 x 8 lattice of its pixels. No Python loop over the batch and
        no host synchronisation (on the CPU only the pasted pixels are computed).
    Example:
        >>> synth = CutPasteScar(foreground=None, anomaly_prob=1.0)
        >>> res = synth(torch.rand(3, 64, 64), generator=torch.Generator().manual_seed(0))
        >>> res.image.shape, res.mask.shape, float(res.label)
        (torch.Size([3, 64, 64]), torch.Size([1, 64, 64]), 1.0)
    """

    params_type = ScarParams

    def __init__(
        self,
        foreground: Literal["auto", "otsu"] | ForegroundMask | None = "auto",
        anomaly_prob: float = 0.5,
        width: tuple[int, int] = (2, 16),
        height: tuple[int, int] = (10, 25),
        rotation: tuple[float, float] = (-45.0, 45.0),
        color_jitter: float | tuple[float, float, float, float] = 0.1,
        **foreground_options: object,
    ) -> None:
        super().__init__(foreground, anomaly_prob, **foreground_options)  # type: ignore[arg-type]
        self.width = tuple(int(v) for v in check_range("width", width, 1, 4096))
        self.height = tuple(int(v) for v in check_range("height", height, 1, 4096))
        self.rotation = check_range("rotation", rotation, -360.0, 360.0)
        self.color_jitter = _jitter_strength(color_jitter)

    def sample_params(
        self,
        batch_size: int,
        *,
        bank_size: int | None = None,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> ScarParams:
        """Draw every random value for ``batch_size`` samples."""
        where, b = self._where(generator, device), batch_size
        anomalous = self._draw_anomalous(b, self.anomaly_prob, where, generator)
        h = torch.randint(self.height[0], self.height[1] + 1, (b,), generator=generator, device=where)
        w = torch.randint(self.width[0], self.width[1] + 1, (b,), generator=generator, device=where)
        angle = uniform((b,), *self.rotation, where, generator)
        source = torch.rand(b, 2, generator=generator, device=where)
        target = torch.rand(b, generator=generator, device=where)
        jitter = jitter_factors(b, self.color_jitter, where, generator)
        params = ScarParams(anomalous, torch.stack((h, w), 1), angle, source, target, jitter)
        return params.to(device) if device is not None else params

    def window(self, height: int, width: int) -> tuple[int, int]:
        """The fixed window (rows, columns) that holds every possible scar, whatever its angle."""
        side = math.ceil(math.hypot(self.height[1], self.width[1])) + 3
        return min(side, height), min(side, width)

    def _synthesize(
        self,
        images: torch.Tensor,
        bank: torch.Tensor | None,
        params: ScarParams,
        foreground: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, channels, height, width = images.shape
        work = _compute_dtype(images.dtype)
        device = images.device
        h = params.size[:, 0].clamp(1, height)
        w = params.size[:, 1].clamp(1, width)
        sy = (params.source[:, 0].to(torch.float64) * (height - h + 1)).floor().long()
        sx = (params.source[:, 1].to(torch.float64) * (width - w + 1)).floor().long()
        fg = None if foreground is None else foreground[:, 0]
        cy, cx, ok = pick_pixel(fg, params.target, (height, width))
        on = params.anomalous & ok
        lh, lw = self.window(height, width)
        oy = torch.minimum((cy - lh // 2).clamp(min=0), torch.full_like(cy, height - lh))
        ox = torch.minimum((cx - lw // 2).clamp(min=0), torch.full_like(cx, width - lw))
        gy = oy.view(-1, 1, 1) + torch.arange(lh, device=device).view(1, -1, 1)  # (B, lh, 1)
        gx = ox.view(-1, 1, 1) + torch.arange(lw, device=device).view(1, 1, -1)  # (B, 1, lw)
        theta = params.angle.to(torch.float64) * (math.pi / 180.0)
        cos = torch.cos(theta).to(work).view(-1, 1, 1)
        sin = torch.sin(theta).to(work).view(-1, 1, 1)
        half_h = ((h - 1).to(work) / 2).view(-1, 1, 1)
        half_w = ((w - 1).to(work) / 2).view(-1, 1, 1)
        # the scar's centre: its top-left pixel at (cy - h // 2, cx - w // 2) before the rotation, so
        # that at 0 degrees every pixel is a pixel of the cut (no resampling)
        dy = (gy - (cy - h // 2).view(-1, 1, 1)).to(work) - half_h
        dx = (gx - (cx - w // 2).view(-1, 1, 1)).to(work) - half_w
        # the scar's own coordinates of each window pixel (the inverse rotation about its centre)
        qy = cos * dy + sin * dx + half_h
        qx = cos * dx - sin * dy + half_w
        inside = (
            (qy >= -0.5)
            & (qy < h.to(work).view(-1, 1, 1) - 0.5)
            & (qx >= -0.5)
            & (qx < w.to(work).view(-1, 1, 1) - 0.5)
            & on.view(-1, 1, 1)
        )
        index = (gy * width + gx).view(batch, -1)  # (B, K), distinct pixels inside the image
        if fg is not None:
            inside &= fg.reshape(batch, -1).gather(1, index).view_as(inside)
        k = index.shape[1]
        values = bilinear(
            images,
            (sy.view(-1, 1, 1) + qy).view(batch, k),
            (sx.view(-1, 1, 1) + qx).view(batch, k),
            (sy, sx),
            (sy + h - 1, sx + w - 1),
        )
        values = [v.to(work) for v in values]
        matrix, offset = colour_map(params.jitter, patch_mean(images, sy, sx, h, w), channels)
        new = apply_colour(values, coefficients(matrix.to(work), (-1, 1)), offset.to(work).view(-1, 1))
        flat = images.contiguous().view(batch, channels, height * width)
        where = index.view(batch, 1, k).expand(batch, channels, k)
        before = flat.gather(2, where)
        pasted = torch.where(inside.view(batch, 1, k), torch.stack(new, 1).to(images.dtype), before)
        out = fresh_copy(flat).scatter_(2, where, pasted)
        mask = torch.zeros(batch, height * width, dtype=torch.bool, device=device)
        mask.scatter_(1, index, inside.view(batch, k))
        return out.view(batch, channels, height, width), mask.view(batch, 1, height, width)


@register_synthesizer(name="cutpaste")
def _cutpaste(**kwargs: object) -> CutPaste:
    """CutPaste: a jittered rectangle of the image pasted elsewhere (Li et al. 2021)."""
    return CutPaste(**kwargs)  # type: ignore[arg-type]


@register_synthesizer(name="cutpaste_scar")
def _cutpaste_scar(**kwargs: object) -> CutPasteScar:
    """CutPaste-Scar: a thin rotated scar of the image pasted elsewhere (Li et al. 2021)."""
    return CutPasteScar(**kwargs)  # type: ignore[arg-type]
