"""Perlin noise on a periodic gradient lattice, the arithmetic behind :mod:`fgad.augment.perlin`.

Used by :class:`~fgad.augment.PerlinMask` / :func:`~fgad.augment.perlin_noise` and by the built-in
texture source of :class:`~fgad.augment.AnomalySynthesizer` (fractal noise from the same lattice).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from .perlin import PerlinParams

__all__: list[str] = []

_SQRT2 = math.sqrt(2.0)


def _sample_gradients(
    batch_size: int, cells: int, device: torch.device, generator: torch.Generator | None
) -> torch.Tensor:
    """(B, cells, cells, 2) float32 unit gradient vectors at uniformly random angles."""
    angles = torch.rand(batch_size, cells, cells, generator=generator, device=device, dtype=torch.float64)
    angles = angles * (2.0 * math.pi)
    # float64 trig rounded to float32: the stored vectors are what replay uses, so apply never calls
    # a transcendental whose SIMD and scalar paths could differ by an ulp between batch sizes.
    return torch.stack((torch.cos(angles), torch.sin(angles)), dim=-1).to(torch.float32)


def _corner_table(gradients: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """(B, G, G, 8): the four corner gradients of every cell of each sample's periodic lattice."""
    batch, cells = gradients.shape[:2]
    device = gradients.device
    grid = torch.arange(cells, device=device)
    rows = grid.view(1, cells)
    rows_next = (rows + 1) % scales[:, 0:1]  # (B, G): the lattice wraps after scales cells
    cols_next = (rows + 1) % scales[:, 1:2]
    base = (torch.arange(batch, device=device) * (cells * cells)).view(batch, 1, 1)
    r0 = rows.view(1, cells, 1) * cells
    r1 = rows_next.view(batch, cells, 1) * cells
    c0 = grid.view(1, 1, cells)
    c1 = cols_next.view(batch, 1, cells)
    index = torch.stack((r0 + c0 + base, r0 + c1 + base, r1 + c0 + base, r1 + c1 + base), dim=-1)
    return F.embedding(index, gradients.reshape(batch * cells * cells, 2)).reshape(batch, cells, cells, 8)


def _fade(t: torch.Tensor) -> torch.Tensor:
    """Perlin's quintic fade 6t^5 - 15t^4 + 10t^3 (in place on temporaries: it runs per point)."""
    out = t * 6.0
    out.sub_(15.0).mul_(t).add_(10.0).mul_(t).mul_(t).mul_(t)
    return out


def _evaluate(params: PerlinParams, grid: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """Noise (B, 1, h, w) float32 at the centres of an (h, w) grid laid over an image of ``size``.

    Grid point (i, j) sits at image position ((i + 0.5) H / h, (j + 0.5) W / w), which is where an
    ``align_corners=False`` bilinear upsampling from (h, w) to (H, W) expects it.
    """
    (h, w), (height, width) = grid, size
    scales, gradients = params.scales, params.gradients
    batch, cells = gradients.shape[:2]
    device = gradients.device
    table = _corner_table(gradients, scales).reshape(batch * cells * cells, 8)

    theta = params.angle.to(torch.float64) * (math.pi / 180.0)
    cos, sin = torch.cos(theta).to(torch.float32), torch.sin(theta).to(torch.float32)
    sy = scales[:, 0].to(torch.float32) / height  # cells per pixel
    sx = scales[:, 1].to(torch.float32) / width
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * (width / w) - width / 2
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * (height / h) - height / 2
    xs, ys = xs.view(1, 1, w), ys.view(1, h, 1)
    # Rotate about the image centre, then map pixels to lattice units.
    per = (batch, 1, 1)
    u = (cos * sx).view(per) * xs - (sin * sx).view(per) * ys + (sx * width / 2).view(per)
    v = (sin * sy).view(per) * xs + (cos * sy).view(per) * ys + (sy * height / 2).view(per)
    iu, iv = torch.floor(u), torch.floor(v)
    fu, fv = u - iu, v - iv
    col = iu.long().remainder(scales[:, 1].view(batch, 1, 1))
    row = iv.long().remainder(scales[:, 0].view(batch, 1, 1))
    base = (torch.arange(batch, device=device) * (cells * cells)).view(batch, 1, 1)
    g = F.embedding(base + row * cells + col, table)  # (B, h, w, 8): corners 00, 01, 10, 11 as (x, y)

    fu4, fv4 = fu.unsqueeze(-1), fv.unsqueeze(-1)
    dx = torch.tensor([0.0, 1.0, 0.0, 1.0], device=device)
    dy = torch.tensor([0.0, 0.0, 1.0, 1.0], device=device)
    dots = g[..., 0::2] * (fu4 - dx) + g[..., 1::2] * (fv4 - dy)  # (B, h, w, 4)
    su, sv = _fade(fu), _fade(fv)
    top = torch.lerp(dots[..., 0], dots[..., 1], su)
    bottom = torch.lerp(dots[..., 2], dots[..., 3], su)
    noise = torch.lerp(top, bottom, sv) * _SQRT2
    return noise.clamp_(-1.0, 1.0).unsqueeze(1)
