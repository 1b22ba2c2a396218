"""Natural synthetic anomalies (Schlüter et al., ECCV 2022): patches of other normal images, resized
and blended in with Poisson image editing, behind :class:`AnomalySynthesizer`'s contract."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ._params import ParamsMixin
from ._patch import PatchSynthesizer, fresh_copy, pick_pixel, uniform
from ._validate import check_range
from .foreground import ForegroundMask
from .poisson import solve_window
from .registry import register_synthesizer
from .synthesizer import texture_bank

__all__ = ["NSAParams", "NaturalSyntheticAnomaly"]


@dataclass
class NSAParams(ParamsMixin):
    """Random values of one :class:`NaturalSyntheticAnomaly` call, per sample.

    Attributes:
        anomalous: (B,) bool, whether the sample gets a patch.
        size: (B, 2) float32 pasted patch height and width as fractions of the image.
        scale: (B,) float32 resize factor (pasted size / cut size).
        source: (B, 2) float32 in [0, 1): where the patch is cut (fraction of the free rows / columns).
        target: (B,) float32 in [0, 1): the rank of the patch centre among the allowed pixels.
        source_index: (B,) long index of the source image in the bank (``arange(B)`` for one source per
            sample; unused without a bank).
    """

    anomalous: torch.Tensor
    size: torch.Tensor
    scale: torch.Tensor
    source: torch.Tensor
    target: torch.Tensor
    source_index: torch.Tensor


class NaturalSyntheticAnomaly(PatchSynthesizer):
    """NSA: a patch of another normal image, resized and blended in seamlessly (Poisson editing).

    Schlüter, Tan, Hou, Kainz. Natural synthetic anomalies for self-supervised anomaly detection and
    localization. ECCV 2022. A rectangle of a source image is cut, resized by a factor in ``scale``,
    and cloned into the image with Poisson image editing (Pérez et al. 2003): inside the patch the
    source's gradients, on its border the image's own values, so the seam vanishes and the anomaly
    differs from its surroundings in structure rather than in an edge. The equation is solved exactly
    per patch with a batched discrete sine transform (:func:`fgad.augment.poisson.poisson_blend`,
    within one grey level of ``cv2.seamlessClone``).

    Args:
        foreground: where the patch centre may go and what the mask may cover (see
            :class:`~fgad.augment.AnomalySynthesizer`); ``None``: anywhere.
        anomaly_prob: probability that a sample gets a patch.
        patch_size: (lo, hi) pasted height and width, each uniform, as fractions of the image side.
        scale: (lo, hi) resize factor from the cut to the pasted patch (NSA: (0.7, 1.3)).
        polarity, min_fraction, cleanup, fill_holes: passed to :class:`ForegroundMask`.

    Shape:
        images (B, C, H, W) or (C, H, W) floating in [0, 1], C in {1, 3}. ``textures`` is the bank of
        normal images the patches come from: (B, C, H, W) (one source per sample), a bank
        (N, C, h, w) of any size (resized to the images' size once and cached while the bank tensor is
        alive and unchanged) or ``None``: the patch comes from another place of the same image. In
        training, pass the training images (not the sample's own batch, so that a batch stays equal
        to its samples done one by one).

    Convention:
        The contract of :class:`~fgad.augment.AnomalySynthesizer` (sample first, replay with
        ``params=``, a batch equals its samples, pixels outside the mask bitwise the input's, label =
        mask non-empty, dtype kept, (C, H, W) for one image; ``target`` is the input, no input
        rotation). The mask is the patch rectangle on the foreground; the solution is written there
        only (where a foreground edge crosses the patch, the part off the object keeps its pixels, so
        the patch ends at the object's own outline). Source gradients are used on every edge that
        touches the mask, the image's own elsewhere in the rectangle. The NSA paper's continuous
        labels are not used: masks are binary. Each patch is solved in a window around it: on
        accelerators one window size (from ``patch_size``) for the whole batch, no host
        synchronisation; on the CPU one size per class of patch sizes (16 pixels apart), no Python loop
        over the batch. The transforms run in float64 and are rounded once, so the window size does
        not show in the result.

    Example:
        >>> synth = NaturalSyntheticAnomaly(foreground=None, anomaly_prob=1.0)
        >>> images, bank = torch.rand(2, 3, 64, 64), torch.rand(5, 3, 80, 80)
        >>> res = synth(images, bank, generator=torch.Generator().manual_seed(0))
        >>> res.label.tolist(), torch.equal(synth(images, bank, params=res.params).image, res.image)
        ([1.0, 1.0], True)
    """

    params_type = NSAParams

    def __init__(
        self,
        foreground: Literal["auto", "otsu"] | ForegroundMask | None = "auto",
        anomaly_prob: float = 0.5,
        patch_size: tuple[float, float] = (0.1, 0.4),
        scale: tuple[float, float] = (0.7, 1.3),
        **foreground_options: object,
    ) -> None:
        super().__init__(foreground, anomaly_prob, **foreground_options)  # type: ignore[arg-type]
        self.patch_size = check_range("patch_size", patch_size, 1e-6, 1.0)
        self.scale = check_range("scale", scale, 1e-3, 1e3)

    def sample_params(
        self,
        batch_size: int,
        *,
        bank_size: int | None = None,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> NSAParams:
        """Draw every random value for ``batch_size`` samples (``bank_size``: N of a source bank)."""
        where, b = self._where(generator, device), batch_size
        anomalous = self._draw_anomalous(b, self.anomaly_prob, where, generator)
        size = uniform((b, 2), *self.patch_size, where, generator)
        scale = uniform((b,), *self.scale, where, generator)
        source = torch.rand(b, 2, generator=generator, device=where)
        target = torch.rand(b, generator=generator, device=where)
        if bank_size is None:
            index = torch.arange(b, device=where)
        else:
            index = torch.randint(0, bank_size, (b,), generator=generator, device=where)
        params = NSAParams(anomalous, size, scale, source, target, index)
        return params.to(device) if device is not None else params

    def _bank(
        self, textures: torch.Tensor | None, images: torch.Tensor
    ) -> tuple[torch.Tensor | None, int | None]:
        return texture_bank(textures, images)

    def window(self, height: int, width: int) -> tuple[int, int]:
        """The fixed window (rows, columns) that holds every possible patch and its one-pixel ring."""
        hi = self.patch_size[1]
        return min(height, min(max(round(hi * height), 1), max(height - 2, 1)) + 2), min(
            width, min(max(round(hi * width), 1), max(width - 2, 1)) + 2
        )

    @staticmethod
    def _side(fraction: torch.Tensor, n: int) -> torch.Tensor:
        """Pasted sides in pixels: ``round(fraction * n)`` in [1, n - 2] (room for the ring)."""
        return (fraction.to(torch.float64) * n).round().long().clamp(1, max(n - 2, 1))

    _classes_on_cpu = True  # the CPU solves each size class in its own windows (False: one window)
    _class_step = 16  # pixels between the size classes

    def _synthesize(
        self,
        images: torch.Tensor,
        bank: torch.Tensor | None,
        params: NSAParams,
        foreground: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, channels, height, width = images.shape
        device = images.device
        if height < 3 or width < 3:  # no room for a patch inside a one-pixel ring
            return images, torch.zeros(batch, 1, height, width, dtype=torch.bool, device=device)
        dh = self._side(params.size[:, 0], height)
        dw = self._side(params.size[:, 1], width)
        fg = None if foreground is None else foreground[:, 0]
        cy, cx, ok = pick_pixel(fg, params.target, (height, width))
        geometry = _Geometry(
            dh=dh,
            dw=dw,
            ty=torch.minimum((cy - dh // 2).clamp(min=1), height - 1 - dh),
            tx=torch.minimum((cx - dw // 2).clamp(min=1), width - 1 - dw),
            on=params.anomalous & ok,
        )
        # The source: a (dh / scale) x (dw / scale) rectangle of the source image, resized to the patch.
        if bank is None:
            source, pick = images, None
        elif bank.shape[0] == batch and tuple(bank.shape[-2:]) == (height, width):
            source, pick = bank, None  # one source per sample (params.source_index is not read)
        else:
            source, pick = self._bank_cache.resized(bank, (height, width)), params.source_index
        scale = params.scale.to(torch.float64)
        geometry.sh = (dh.to(torch.float64) / scale).round().long().clamp(1, height)
        geometry.sw = (dw.to(torch.float64) / scale).round().long().clamp(1, width)
        geometry.sy = (params.source[:, 0].to(torch.float64) * (height - geometry.sh + 1)).floor().long()
        geometry.sx = (params.source[:, 1].to(torch.float64) * (width - geometry.sw + 1)).floor().long()

        flat = images.contiguous().view(batch, channels, height * width)
        out = fresh_copy(flat)
        mask = torch.zeros(batch, height * width, dtype=torch.bool, device=device)
        lh, lw = self.window(height, width)
        if device.type == "cpu" and self._classes_on_cpu:
            # Patches in size classes of 16 pixels, each solved in windows of its own size: the
            # transforms cost the cube of the window side (reading the classes costs nothing here).
            side = (torch.maximum(dh, dw) + self._class_step - 1) // self._class_step * self._class_step + 2
            for value in side.unique().tolist():
                rows = (side == value).nonzero().squeeze(1)
                self._paste(
                    flat, out, mask, source, pick, fg, geometry, rows, (min(lh, value), min(lw, value))
                )
        else:
            self._paste(flat, out, mask, source, pick, fg, geometry, None, (lh, lw))
        return out.view(batch, channels, height, width), mask.view(batch, 1, height, width)

    @staticmethod
    def _paste(
        flat: torch.Tensor,
        out: torch.Tensor,
        mask: torch.Tensor,
        source: torch.Tensor,
        pick: torch.Tensor | None,
        fg: torch.Tensor | None,
        geometry: _Geometry,
        rows: torch.Tensor | None,
        window: tuple[int, int],
    ) -> None:
        """Solve and write the patches of ``rows`` (None: all) in windows of size ``window``."""
        batch, channels, plane = flat.shape
        height, width = source.shape[-2:]
        device = flat.device
        work = torch.float64 if flat.dtype == torch.float64 else torch.float32
        g = geometry if rows is None else geometry.select(rows)
        sample = torch.arange(batch, device=device) if rows is None else rows
        if pick is not None:
            pick = pick if rows is None else pick[rows]
        else:
            pick = sample
        count = sample.shape[0]
        lh, lw = window
        oy = torch.minimum(g.ty - 1, torch.full_like(g.ty, height - lh))
        ox = torch.minimum(g.tx - 1, torch.full_like(g.tx, width - lw))
        ry, rx = g.ty - oy, g.tx - ox  # the rectangle in window coordinates
        gy = oy.view(-1, 1, 1) + torch.arange(lh, device=device).view(1, -1, 1)
        gx = ox.view(-1, 1, 1) + torch.arange(lw, device=device).view(1, 1, -1)
        index = (gy * width + gx).view(count, -1)  # (R, K) distinct pixels inside the image
        k = index.shape[1]
        wy = torch.arange(lh, device=device).view(1, -1, 1)
        wx = torch.arange(lw, device=device).view(1, 1, -1)
        region = (
            (wy >= ry.view(-1, 1, 1))
            & (wy < (ry + g.dh).view(-1, 1, 1))
            & (wx >= rx.view(-1, 1, 1))
            & (wx < (rx + g.dw).view(-1, 1, 1))
            & g.on.view(-1, 1, 1)
        )
        if fg is not None:
            region &= fg.reshape(batch, -1)[sample].gather(1, index).view(count, lh, lw)
        # source points of the patch and its ring, pixel centres aligned (align_corners=False): the
        # resize is separable, so rows and columns are located once and combined per pixel
        base = (pick.view(-1, 1, 1) * channels + torch.arange(channels, device=device).view(1, -1, 1)) * (
            height * width
        )

        def axis(
            start: torch.Tensor,
            cut: torch.Tensor,
            pasted: torch.Tensor,
            to: torch.Tensor,
            grid: torch.Tensor,
            n: int,
        ) -> tuple[torch.Tensor, ...]:
            step = (cut.to(work) / pasted.to(work)).view(-1, 1)
            where = start.to(work).view(-1, 1) + ((grid - to.view(-1, 1)).to(work) + 0.5) * step - 0.5
            low = where.floor()
            frac = where - low
            a = low.long().clamp_(0, n - 1)
            b = (low.long() + 1).clamp_(0, n - 1)
            return a, b, frac

        ya, yb, fy = axis(g.sy, g.sh, g.dh, g.ty, gy.view(count, lh), height)
        xa, xb, fx = axis(g.sx, g.sw, g.dw, g.tx, gx.view(count, lw), width)
        fy, fx = fy.view(count, 1, lh, 1), fx.view(count, 1, 1, lw)
        flat_source = source.reshape(-1)

        def read(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
            pixel = (rows.view(count, lh, 1) * width + cols.view(count, 1, lw)).view(count, 1, k)
            return flat_source.take(base + pixel).to(work).view(count, channels, lh, lw)

        top = read(ya, xa) * (1 - fx) + read(ya, xb) * fx
        bottom = read(yb, xa) * (1 - fx) + read(yb, xb) * fx
        s_window = top * (1 - fy) + bottom * fy
        linear = sample.view(-1, 1, 1) * channels + torch.arange(channels, device=device).view(1, -1, 1)
        linear = linear * plane + index.view(count, 1, k)  # (R, C, K) into the flat batch
        before = flat.reshape(-1).take(linear)
        d_window = before.to(work).view(count, channels, lh, lw)
        e = solve_window(d_window, s_window, region, ry, rx, g.dh, g.dw)
        solved = (d_window + e).clamp_(0.0, 1.0).to(flat.dtype).view(count, channels, k)
        pasted = torch.where(region.view(count, 1, k), solved, before)
        out.view(-1).index_copy_(0, linear.reshape(-1), pasted.reshape(-1))
        where = (sample.view(-1, 1) * plane + index).reshape(-1)
        mask.view(-1).index_copy_(0, where, region.reshape(-1))


class _Geometry:
    """Per-sample patch geometry (each (B,) long; ``on`` bool)."""

    def __init__(self, **fields: torch.Tensor) -> None:
        self.__dict__.update(fields)

    dh: torch.Tensor
    dw: torch.Tensor
    ty: torch.Tensor
    tx: torch.Tensor
    on: torch.Tensor
    sh: torch.Tensor
    sw: torch.Tensor
    sy: torch.Tensor
    sx: torch.Tensor

    def select(self, rows: torch.Tensor) -> _Geometry:
        return _Geometry(**{name: value[rows] for name, value in self.__dict__.items()})


@register_synthesizer(name="nsa")
def _nsa(**kwargs: object) -> NaturalSyntheticAnomaly:
    """NSA: a resized patch of another normal image, Poisson-blended (Schlüter et al. 2022)."""
    return NaturalSyntheticAnomaly(**kwargs)  # type: ignore[arg-type]
