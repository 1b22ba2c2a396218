"""Candidate foreground cues of ``ForegroundMask(method="auto")`` and how well each one separates.

Every cue is a per-pixel map in which an object and its background may differ where grey levels do
not: colour, chromaticity (blind to shadows), distance to the border's colour, local contrast. Each is
stretched to 256 levels per image, thresholded with Otsu, and rated by Otsu's separability
(between-class / total variance) and by how much of the image border its object class covers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["CUES", "GRAY_CUES", "analysis_size", "cue_levels", "otsu_separability"]

#: Cue names, in the order of the channels of :func:`cue_levels` (RGB input; grey input has the
#: grey and contrast cues only).
CUES = ("gray", "saturation", "red_green", "yellow_blue", "border_distance", "border_chroma", "contrast")
GRAY_CUES = ("gray", "contrast")
_LUMA = (0.299, 0.587, 0.114)
_MIN_RANGE = 0.02


def _border_median(x: torch.Tensor) -> torch.Tensor:
    """(B, C, 1, 1) per-channel median of the border pixels of (B, C, H, W)."""
    ring = torch.cat((x[..., 0, :], x[..., -1, :], x[..., 1:-1, 0], x[..., 1:-1, -1]), dim=-1)
    return ring.median(dim=-1).values[..., None, None]


def _pool(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Mean over the cells of an integer grid (sums of strided slices when the sides divide, else
    adaptive pooling)."""
    height, width = x.shape[-2:]
    if (height, width) == size:
        return x
    if height % size[0] or width % size[1]:
        return F.adaptive_avg_pool2d(x, size)
    fh, fw = height // size[0], width // size[1]
    # A sum of fh row-strided slices, then of fw column-strided ones: on the CPU an order of magnitude
    # cheaper than avg_pool2d with a (fh, fw) window (same means up to float rounding).
    rows = x[..., 0::fh, :].clone() if fh > 1 else x
    for i in range(1, fh):
        rows += x[..., i::fh, :]
    cells = rows[..., 0::fw].clone() if fw > 1 else rows
    for j in range(1, fw):
        cells += rows[..., j::fw]
    return cells * (1.0 / (fh * fw))


def _texture_energy(gray: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Mean absolute grey-level gradient (horizontal + vertical neighbours) over each analysis cell,
    then over its 3 x 3 neighbourhood of cells: how textured the image is around each place."""
    energy = torch.zeros_like(gray)
    torch.sub(gray[..., :, 1:], gray[..., :, :-1], out=energy[..., :, 1:]).abs_()
    dy = (gray[..., 1:, :] - gray[..., :-1, :]).abs_()
    energy[..., 1:, :] += dy
    energy = _pool(energy, size)
    return F.avg_pool2d(F.pad(energy, (1, 1, 1, 1), mode="replicate"), 3, stride=1)


def _stretch(x: torch.Tensor) -> torch.Tensor:
    """(B, K, H, W) float -> uint8 levels, each (image, cue) stretched over its own min..max."""
    flat = x.flatten(2)
    lo = flat.amin(dim=2, keepdim=True)
    hi = flat.amax(dim=2, keepdim=True)
    # A cue that varies by less than 2 % of its scale is flat (float noise is not stretched to 256 levels).
    scale = torch.where(hi - lo > _MIN_RANGE, 255.0 / (hi - lo), torch.zeros_like(hi))
    levels = (flat - lo).mul_(scale).add_(0.5).clamp_(0.0, 255.0)
    return levels.to(torch.uint8).view(x.shape)


def analysis_size(height: int, width: int) -> tuple[int, int]:
    """The size the cues are compared at: the image shrunk by an integer factor to >= 64 px a side.

    The choice of a cue and its threshold is a global decision; at this size it costs a sixteenth of
    the full-size work at 256 px and the averaging calms noisy backgrounds.
    """
    factor = max(1, min(height, width) // 64)
    return max(1, height // factor), max(1, width // factor)


def cue_levels(images: torch.Tensor) -> torch.Tensor:
    """(B, K, h, w) uint8 levels of the cues of images (B, C, H, W) in [0, 1] (see :data:`CUES`),
    at :func:`analysis_size` (h, w).

    Computed in float32 whatever the input dtype. The contrast cue (texture energy) is measured on
    the full-size grey levels (fine texture), the others on the image averaged down to (h, w).
    """
    full = images.to(torch.float32)
    size = analysis_size(full.shape[-2], full.shape[-1])
    if full.shape[1] == 1:
        full_gray = full
    else:
        full_gray = (full * full.new_tensor(_LUMA).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
    contrast = _texture_energy(full_gray, size)
    x = _pool(full, size)
    if x.shape[1] == 1:
        return _stretch(torch.cat((x, contrast), dim=1))
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    gray = r * _LUMA[0] + g * _LUMA[1] + b * _LUMA[2]
    top = x.amax(dim=1, keepdim=True)
    low = x.amin(dim=1, keepdim=True)
    saturation = (top - low) / top.clamp_min(1e-3)
    red_green = r - g
    yellow_blue = (r + g) * 0.5 - b
    distance = (x - _border_median(x)).square_().sum(dim=1, keepdim=True).sqrt_()
    # Chromaticity (r, g, b) / (r + g + b) is the same in a shadow as in the lit surface around it.
    total = x.sum(dim=1, keepdim=True)
    chroma = x / total.clamp_min(0.05)
    chroma_distance = (chroma - _border_median(chroma)).square_().sum(dim=1, keepdim=True).sqrt_()
    # the chromaticity of nearly black pixels is noise: fade it out below a tenth of full brightness
    chroma_distance.mul_((total * (1.0 / 0.3)).clamp_(max=1.0))
    maps = [gray, saturation, red_green, yellow_blue, distance, chroma_distance, contrast]
    return _stretch(torch.cat(maps, dim=1))


def otsu_separability(hist: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Otsu's threshold and separability of (N, 256) int64 histograms.

    Returns:
        ``(threshold, eta)``: (N,) int64 the first level that maximises the between-class variance
        (the upper class is ``level > threshold``), and (N,) float64 that maximum divided by the
        total variance, in [0, 1] (0 for a constant image).

    Example:
        >>> hist = torch.zeros(1, 256, dtype=torch.int64)
        >>> hist[0, 10], hist[0, 200] = 50, 50   # two spikes: perfectly separable
        >>> t, eta = otsu_separability(hist)
        >>> 10 <= int(t) < 200, float(eta)
        (True, 1.0)
    """
    levels = torch.arange(256, dtype=torch.float64, device=hist.device)
    h = hist.to(torch.float64)
    n = h.sum(dim=1, keepdim=True)
    w0 = h.cumsum(dim=1)
    s0 = (h * levels).cumsum(dim=1)
    total = s0[:, -1:]
    den = w0 * (n - w0)
    between = torch.where(den > 0, (n * s0 - w0 * total).square() / den.clamp_min(1.0), torch.zeros_like(den))
    best, threshold = between.max(dim=1)
    variance = (h * levels.square()).sum(dim=1) * n.squeeze(1) - total.squeeze(1).square()
    eta = torch.where(variance > 0, best / variance.clamp_min(1e-12), torch.zeros_like(best))
    return threshold, eta.clamp_(0.0, 1.0)
