"""Batched Perlin noise and thresholded, rotated Perlin masks (the P_m of Zhao et al. 2023 / DRAEM).

The noise lives on a *periodic* lattice of ``scale_y x scale_x`` cells (one period spans the image
once). Rotating the noise is evaluating it at rotated coordinates, so a rotated mask has no empty
corners and needs no resampling of the noise image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ._params import ParamsMixin, sample_device
from ._perlin_lattice import _evaluate, _sample_gradients
from ._validate import check_number, check_range

__all__ = ["PerlinMask", "PerlinParams", "perlin_noise"]


@dataclass
class PerlinParams(ParamsMixin):
    """Random values of one :class:`PerlinMask` (or :func:`perlin_noise`) call, per sample.

    Attributes:
        scales: (B, 2) long, lattice cells along (y, x); DRAEM draws ``2**k``, k uniform in 0..5.
        gradients: (B, G, G, 2) float32 unit gradient vectors of the periodic lattice; sample b uses
            the top-left ``scales[b, 0] x scales[b, 1]`` block (G >= every scale).
        angle: (B,) float32 rotation of the noise in degrees (counter-clockwise in image coordinates).
    """

    scales: torch.Tensor
    gradients: torch.Tensor
    angle: torch.Tensor


def _check_size(size: int | tuple[int, int] | torch.Size) -> tuple[int, int]:
    pair = (size, size) if isinstance(size, int) else tuple(int(s) for s in size)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"size must be a positive int or a pair (H, W) of positive ints, got {pair}")
    return pair[0], pair[1]


def _sample_params(
    batch_size: int,
    *,
    exponents: tuple[int, int],
    rotation: tuple[float, float],
    cells: int,
    scales: torch.Tensor | None,
    device: torch.device | str | None,
    generator: torch.Generator | None,
) -> PerlinParams:
    where = sample_device(generator, device)
    if scales is None:
        k = torch.randint(exponents[0], exponents[1] + 1, (batch_size, 2), generator=generator, device=where)
        scales = torch.pow(2, k)
    gradients = _sample_gradients(batch_size, cells, where, generator)
    lo, hi = rotation
    angle = torch.rand(batch_size, generator=generator, device=where, dtype=torch.float64) * (hi - lo) + lo
    out = PerlinParams(scales=scales.to(where, torch.long), gradients=gradients, angle=angle.float())
    return out.to(device) if device is not None else out


def _check_scales(scales: object, batch_size: int) -> torch.Tensor:
    if not isinstance(scales, torch.Tensor) or scales.is_floating_point() or scales.is_complex():
        raise TypeError("scales must be an integer tensor of shape (B, 2) (cells along y and x)")
    if scales.shape != (batch_size, 2):
        raise ValueError(f"scales must have shape ({batch_size}, 2), got {tuple(scales.shape)}")
    if bool((scales < 1).any()):
        raise ValueError("scales must be >= 1 cell along each axis")
    return scales.long()


def perlin_noise(
    batch_size: int,
    size: int | tuple[int, int],
    *,
    scales: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Unrotated 2-D Perlin noise for a batch, evaluated exactly at every pixel centre.

    Args:
        batch_size: B.
        size: H or (H, W); any positive sizes (not only powers of two).
        scales: optional (B, 2) integer tensor of lattice cells along (y, x). Default: per sample
            and per axis ``2**k`` with k uniform in {0, ..., 5}, as in DRAEM.
        generator: random source; the values are drawn on its device (then moved to ``device``).
        device: output device (default: the generator's device, else the CPU).
        dtype: output floating dtype.

    Shape:
        Output (B, 1, H, W), values in [-1, 1].

    Convention:
        Unit gradients at random angles on a periodic lattice (period = the image), quintic fade,
        the sum scaled by sqrt(2) so that its range is [-1, 1] (as in DRAEM's ``rand_perlin_2d``).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> noise = perlin_noise(2, (48, 40), generator=g)
        >>> noise.shape, bool(noise.abs().max() <= 1)
        (torch.Size([2, 1, 48, 40]), True)
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    height, width = _check_size(size)
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")
    cells = 32
    if scales is not None:
        scales = _check_scales(scales, batch_size)
        cells = max(cells, int(scales.max()))
    params = _sample_params(
        batch_size,
        exponents=(0, 5),
        rotation=(0.0, 0.0),
        cells=cells,
        scales=scales,
        device=device if device is not None else (scales.device if scales is not None else None),
        generator=generator,
    )
    return _evaluate(params, (height, width), (height, width)).to(dtype)


class PerlinMask(nn.Module):
    """Binary Perlin masks: noise > ``threshold``, rotated uniformly in ``rotation`` degrees.

    Args:
        threshold: noise level above which a pixel is in the mask (0.5 in DRAEM).
        scale_exponents: inclusive range (lo, hi) of k; cells per axis are ``2**k``, drawn per sample
            and per axis (DRAEM: (0, 5)).
        rotation: range (lo, hi) of the rotation angle in degrees (DRAEM: (-90, 90)).
        subsample: the noise is evaluated on a grid ``subsample`` times coarser than the image (but
            with at least 2 points per cell of the finest lattice) and bilinearly upsampled before
            thresholding; 1 evaluates every pixel exactly. The noise is smooth, so this moves the
            mask boundaries only slightly against exact evaluation.

    Shape:
        Output (B, 1, H, W) in {0, 1}, dtype ``dtype``.

    Convention:
        All random values are drawn first (:meth:`sample_params`, a :class:`PerlinParams`), then the
        mask is computed from them deterministically; ``last_params`` replays a call. With a
        ``generator`` the global RNG is never read. The lattice is periodic, so a rotated mask covers
        the whole image (DRAEM rotates the thresholded image and leaves the corners empty).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> masks = PerlinMask()(4, (64, 64), generator=g)
        >>> masks.shape, sorted(masks.unique().tolist()) in ([0.0, 1.0], [0.0], [1.0])
        (torch.Size([4, 1, 64, 64]), True)
    """

    def __init__(
        self,
        threshold: float = 0.5,
        scale_exponents: tuple[int, int] = (0, 5),
        rotation: tuple[float, float] = (-90.0, 90.0),
        subsample: int = 4,
    ) -> None:
        super().__init__()
        self.threshold = check_number("threshold", threshold, -1.0, 1.0, below_hi=True)
        lo, hi = check_range("scale_exponents", scale_exponents, 0, 10, integer=True)
        self.scale_exponents = (int(lo), int(hi))
        self.rotation = check_range("rotation", rotation)
        if not isinstance(subsample, int) or subsample < 1:
            raise ValueError(f"subsample must be a positive int, got {subsample!r}")
        self.subsample = subsample
        self.last_params: PerlinParams | None = None

    def sample_params(
        self,
        batch_size: int,
        *,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> PerlinParams:
        """Draw the scales, lattice gradients and rotation of ``batch_size`` masks."""
        return _sample_params(
            batch_size,
            exponents=self.scale_exponents,
            rotation=self.rotation,
            cells=2 ** self.scale_exponents[1],
            scales=None,
            device=device,
            generator=generator,
        )

    def grid_size(self, params: PerlinParams, size: tuple[int, int]) -> tuple[int, int]:
        """The (h, w) evaluation grid for an image ``size``: depends only on the configuration."""
        height, width = size
        if self.subsample == 1:
            return height, width
        cells = params.gradients.shape[1]
        h = min(height, max(math.ceil(height / self.subsample), 2 * cells))
        w = min(width, max(math.ceil(width / self.subsample), 2 * cells))
        return h, w

    def noise(self, params: PerlinParams, size: tuple[int, int]) -> torch.Tensor:
        """The rotated noise (B, 1, H, W) float32 in [-1, 1] that :meth:`above_threshold` thresholds."""
        size = _check_size(size)
        grid = self.grid_size(params, size)
        noise = _evaluate(params, grid, size)
        if grid != size:
            noise = F.interpolate(noise, size=size, mode="bilinear", align_corners=False)
        return noise

    def above_threshold(
        self, params: PerlinParams, size: tuple[int, int], *, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Boolean masks (B, 1, H, W) for given params (the deterministic apply step).

        ``keep`` (B,) bool empties the masks of the samples where it is false (in the same pass).
        """
        noise = self.noise(params, size)
        if keep is None:
            return noise > self.threshold
        threshold = torch.full(keep.shape, self.threshold, dtype=noise.dtype, device=noise.device)
        threshold = threshold.masked_fill(~keep.to(noise.device), math.inf)
        return noise > threshold.view(-1, 1, 1, 1)

    def forward(
        self,
        batch_size: int,
        size: int | tuple[int, int],
        *,
        generator: torch.Generator | None = None,
        params: PerlinParams | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Masks (B, 1, H, W) in {0, 1}; ``params`` replays a call (``generator`` is then unused)."""
        size = _check_size(size)
        if params is None:
            params = self.sample_params(batch_size, device=device, generator=generator)
        elif len(params) != batch_size:
            raise ValueError(f"params hold {len(params)} samples, expected batch_size {batch_size}")
        if device is not None:
            params = params.to(device)
        self.last_params = params
        return self.above_threshold(params, size).to(dtype)
