"""Otsu foreground masks (the I_m of Zhao et al. 2023), batched and identical to OpenCV's Otsu.

``otsu_threshold`` reproduces OpenCV's reference Otsu loop (``cv::threshold`` with ``THRESH_OTSU``
on ``CV_8UC1``) in float64 operation by operation, so its result is bit-for-bit the one OpenCV's own
C++ code gives, ties and degenerate histograms included.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_image

__all__ = ["ForegroundMask", "gray_levels", "otsu_threshold"]

# ITU-R BT.601 luma weights, the ones cv2.COLOR_RGB2GRAY uses.
_LUMA = (0.299, 0.587, 0.114)
_FLT_EPSILON = float(np.finfo(np.float32).eps)

Polarity = Literal["auto", "bright", "dark"]


def gray_levels(images: torch.Tensor) -> torch.Tensor:
    """Grey levels (B, 1, H, W) uint8 of images in [0, 1]: ``floor(255 * luma + 0.5)``.

    Args:
        images: (B, C, H, W) floating, C = 1 (used as is) or 3 (RGB, ITU-R BT.601 weights
            0.299, 0.587, 0.114 like ``cv2.COLOR_RGB2GRAY``).

    Convention:
        Computed in float32 whatever the input dtype. For C = 1 and images ``u8 / 255`` the levels
        are exactly ``u8``; for RGB they agree with ``cv2.cvtColor(u8, cv2.COLOR_RGB2GRAY)`` within
        one level (OpenCV rounds a 14-bit fixed-point sum).

    Example:
        >>> gray_levels(torch.tensor([[[[0.0, 0.5, 1.0]]]])).flatten().tolist()
        [0, 128, 255]
    """
    if images.shape[1] == 3:
        gray = images[:, 0:1].to(torch.float32) * (255.0 * _LUMA[0])
        gray.add_(images[:, 1:2].to(torch.float32), alpha=255.0 * _LUMA[1])
        gray.add_(images[:, 2:3].to(torch.float32), alpha=255.0 * _LUMA[2])
    else:
        gray = images.to(torch.float32) * 255.0
    # clamp guards against the weights summing to a hair above 1; truncation of x + 0.5 rounds.
    return gray.add_(0.5).clamp_(0.0, 255.0).to(torch.uint8)


def _histograms(levels: torch.Tensor) -> torch.Tensor:
    """(B, 256) int64 counts of the levels of each image, in one pass for the whole batch."""
    batch = levels.shape[0]
    flat = levels.reshape(batch, -1)
    if flat.device.type == "cpu":
        index_dtype = torch.int16 if 256 * batch <= torch.iinfo(torch.int16).max else torch.int32
        offsets = torch.arange(0, 256 * batch, 256, dtype=index_dtype).view(batch, 1)
        counts = torch.bincount(torch.add(flat, offsets).view(-1), minlength=256 * batch)
        return counts.view(batch, 256)
    # bincount sizes its output from the max on the host; scatter_add_ needs no synchronisation.
    hist = torch.zeros(batch, 256, dtype=torch.int64, device=flat.device)
    return hist.scatter_add_(1, flat.long(), torch.ones_like(flat, dtype=torch.int64))


def _otsu_from_histograms(hist: torch.Tensor, *, host_loop: bool | None = None) -> torch.Tensor:
    """OpenCV's Otsu loop on (B, 256) histograms, vectorised over the batch and the levels.

    Only the running class-0 mean is a true recurrence (OpenCV updates it as
    ``mu1 = (mu1 * q1_old + i * p_i) / q1``, with its own rounding at every level), so that is the
    one loop over the 256 levels; the rest is elementwise over (B, 256). Every float64 operation is
    the one OpenCV performs, in the same order, so ties resolve the same way (first maximum).
    """
    batch = hist.shape[0]
    # host_loop: numpy recurrence and torch.cumsum (sequential only on the CPU); else a device loop.
    on_cpu = hist.device.type == "cpu" if host_loop is None else host_loop
    h = hist.to(torch.float64)
    total = hist.sum(dim=1, keepdim=True).to(torch.float64)
    scale = 1.0 / total
    levels = torch.arange(256, dtype=torch.float64, device=hist.device)
    # mu: exact integer sum in float64 (every partial sum is an integer below 2**53), then scaled.
    mu = (h * levels).sum(dim=1, keepdim=True) * scale
    p = h * scale
    ip = levels * p
    if on_cpu:
        q1 = torch.cumsum(p, dim=1)  # sequential on the CPU: the same additions as OpenCV's loop
    else:
        q1 = torch.empty_like(p)
        acc = torch.zeros(batch, dtype=torch.float64, device=hist.device)
        for i in range(256):
            acc = acc + p[:, i]
            q1[:, i] = acc
    q2 = 1.0 - q1
    valid = (torch.minimum(q1, q2) >= _FLT_EPSILON) & (torch.maximum(q1, q2) <= 1.0 - _FLT_EPSILON)
    q1_prev = torch.cat((torch.zeros_like(q1[:, :1]), q1[:, :-1]), dim=1)

    # On invalid levels OpenCV skips the division but keeps ``mu1 *= q1_old``; dividing by 1 and
    # adding 0 there performs exactly that, so one branch-free recurrence covers every level.
    q1_div = torch.where(valid, q1, torch.ones_like(q1))
    ip_add = torch.where(valid, ip, torch.zeros_like(ip))
    if on_cpu:
        mu1 = torch.from_numpy(_class0_means_numpy(q1_prev.numpy(), ip_add.numpy(), q1_div.numpy()))
    else:
        mu1 = torch.empty_like(p)
        run = torch.zeros(batch, dtype=torch.float64, device=hist.device)
        for i in range(256):
            run = (run * q1_prev[:, i] + ip_add[:, i]) / q1_div[:, i]
            mu1[:, i] = run
    mu2 = (mu - q1 * mu1) / q2
    diff = mu1 - mu2
    sigma = q1 * q2 * diff * diff
    sigma = torch.where(valid, sigma, torch.zeros_like(sigma))
    # OpenCV keeps the first level whose sigma beats all before it (strictly) and starts from 0.
    best = sigma.max(dim=1, keepdim=True).values
    first = torch.argmax((sigma == best).to(torch.uint8), dim=1)
    return torch.where(best.squeeze(1) > 0, first, torch.zeros_like(first))


def _class0_means_numpy(q1_prev: np.ndarray, ip_add: np.ndarray, q1_div: np.ndarray) -> np.ndarray:
    """The running class-0 mean of OpenCV's Otsu loop (numpy: far less per-step overhead on the CPU)."""
    q1_prev, ip_add, q1_div = (np.ascontiguousarray(a.T) for a in (q1_prev, ip_add, q1_div))
    out = np.empty_like(q1_prev)
    run = np.zeros(q1_prev.shape[1])
    for i in range(q1_prev.shape[0]):
        np.multiply(run, q1_prev[i], out=run)
        np.add(run, ip_add[i], out=run)
        np.divide(run, q1_div[i], out=run)
        out[i] = run
    return out.T


def otsu_threshold(gray: torch.Tensor) -> torch.Tensor:
    """Otsu's threshold of each image, on 256 grey levels, exactly as OpenCV computes it.

    Args:
        gray: (B, 1, H, W) floating in [0, 1] (quantised to ``floor(255 * x + 0.5)``), or
            (B, 1, H, W) uint8 levels.

    Returns:
        (B,) int64 thresholds t in 0..255; the foreground is ``level > t``.

    Convention:
        Equals ``cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[0]`` of OpenCV's
        reference implementation for every uint8 image (``u8 / 255`` as input), including ties
        (the first maximum of the between-class variance wins) and constant images (t = 0).
        OpenCV builds that use Intel IPP (the pip wheels) call IPP's own Otsu instead, which breaks
        exact ties of the between-class variance (e.g. symmetric three-level histograms)
        differently; on every other image the two agree. kornia's ``otsu_threshold`` bins each
        image over its own min..max and differs from both on many natural images.

    Example:
        >>> u8 = torch.tensor([[[[10, 10, 200, 200, 90]]]], dtype=torch.uint8)
        >>> otsu_threshold(u8.float() / 255).tolist()
        [90]
    """
    if not isinstance(gray, torch.Tensor):
        raise TypeError(f"gray must be a torch.Tensor of shape (B, 1, H, W), got {type(gray).__name__}")
    if gray.dtype == torch.uint8:
        if gray.ndim != 4 or gray.shape[1] != 1 or gray.numel() == 0:
            raise ValueError(f"gray must have shape (B, 1, H, W) and be non-empty, got {tuple(gray.shape)}")
        levels = gray
    else:
        check_image(gray, "gray", channels=(1,))
        levels = gray_levels(gray)
    return _otsu_from_histograms(_histograms(levels))


def _border_counts(fg: torch.Tensor) -> torch.Tensor:
    """(B,) number of border pixels (each counted once) where ``fg`` is true."""
    height, width = fg.shape[-2:]
    flat = fg.reshape(fg.shape[0], height, width)
    count = flat[:, 0, :].sum(1) + flat[:, :, 0].sum(1)
    if height > 1:
        count = count + flat[:, -1, :].sum(1) - flat[:, -1, 0].long()
    if width > 1:
        count = count + flat[:, :, -1].sum(1) - flat[:, 0, -1].long()
    if height > 1 and width > 1:
        count = count - flat[:, -1, -1].long()
    return count


def _binary_cleanup(mask: torch.Tensor, kernel: int) -> torch.Tensor:
    """Opening then closing with a ``kernel`` x ``kernel`` square (removes specks, fills pinholes)."""
    x = mask.to(torch.float32)
    pad = kernel // 2

    def dilate(t: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.pad(t, (pad, pad, pad, pad), mode="replicate"), kernel, stride=1)

    def erode(t: torch.Tensor) -> torch.Tensor:
        return 1.0 - dilate(1.0 - t)

    opened = dilate(erode(x))
    return erode(dilate(opened)) > 0.5


class ForegroundMask(nn.Module):
    """The Otsu foreground of each image as a binary mask.

    Args:
        polarity: which Otsu class is the object: ``"bright"`` (level > t), ``"dark"``
            (level <= t) or ``"auto"``: per image, the class with fewer pixels on the image border
            (the object rarely fills the frame edge; ties go to bright).
        min_fraction: an image whose foreground covers less than this fraction of its pixels, or a
            constant image (no threshold separates anything), falls back to the whole image, so
            anomalies can still be placed (DRAEM behaviour for that image).
        cleanup: odd kernel size of a binary opening followed by a closing that removes specks and
            fills pinholes; 0 (default) skips it.

    Shape:
        Input (B, C, H, W) floating in [0, 1], C in {1, 3}; output (B, 1, H, W) in {0, 1} with the
        input's dtype.

    Convention:
        Grey levels are ``floor(255 * luma + 0.5)`` with ITU-R BT.601 weights (see
        :func:`gray_levels`), thresholded with :func:`otsu_threshold` (OpenCV's Otsu). Deterministic:
        no random values. ``last_threshold`` and ``last_bright`` hold the (B,) thresholds and chosen
        polarities of the last call, ``last_fallback`` which images fell back to the whole image.

    Example:
        >>> img = torch.zeros(1, 1, 8, 8)
        >>> img[..., 2:6, 2:6] = 0.8
        >>> ForegroundMask()(img)[0, 0].sum().item()
        16.0
    """

    def __init__(self, polarity: Polarity = "auto", min_fraction: float = 0.01, cleanup: int = 0) -> None:
        super().__init__()
        if polarity not in ("auto", "bright", "dark"):
            raise ValueError(f"polarity must be 'auto', 'bright' or 'dark', got {polarity!r}")
        if not 0.0 <= float(min_fraction) <= 1.0:
            raise ValueError(f"min_fraction must be in [0, 1], got {min_fraction}")
        if not isinstance(cleanup, int) or cleanup < 0 or (cleanup > 0 and cleanup % 2 == 0):
            raise ValueError(f"cleanup must be 0 (off) or an odd positive kernel size, got {cleanup!r}")
        self.polarity = polarity
        self.min_fraction = float(min_fraction)
        self.cleanup = cleanup
        self.last_threshold: torch.Tensor | None = None
        self.last_bright: torch.Tensor | None = None
        self.last_fallback: torch.Tensor | None = None

    def foreground(self, images: torch.Tensor) -> torch.Tensor:
        """Boolean foreground (B, 1, H, W); the structural checks are the caller's."""
        levels = gray_levels(images)
        hist = _histograms(levels)
        threshold = _otsu_from_histograms(hist)
        batch = levels.shape[0]
        device = levels.device
        n_total = hist.sum(dim=1)
        n_above = n_total - hist.cumsum(dim=1).gather(1, threshold.view(batch, 1)).squeeze(1)
        if self.polarity == "auto":
            height, width = levels.shape[-2:]
            n_border = 2 * (height + width) - 4 if height > 1 and width > 1 else height * width
            above_border = _border_counts(levels > threshold.to(torch.uint8).view(batch, 1, 1, 1))
            bright = above_border * 2 <= n_border
        else:
            bright = torch.full((batch,), self.polarity == "bright", dtype=torch.bool, device=device)
        fg_count = torch.where(bright, n_above, n_total - n_above)
        constant = (hist > 0).sum(dim=1) <= 1
        fallback = constant | (fg_count.to(torch.float64) < self.min_fraction * n_total.to(torch.float64))
        self.last_threshold, self.last_bright, self.last_fallback = threshold, bright, fallback
        # One comparison and one flip cover all three cases: bright is level > t, dark is
        # not (level > t), and the whole-image fallback is not (level > 255).
        t = torch.where(fallback, torch.full_like(threshold, 255), threshold).to(torch.uint8)
        flip = fallback | ~bright
        fg = levels > t.view(batch, 1, 1, 1)
        if device.type != "cpu" or bool(flip.any()):
            fg ^= flip.view(batch, 1, 1, 1)
        if self.cleanup:
            fg = _binary_cleanup(fg, self.cleanup) | fallback.view(batch, 1, 1, 1)
        return fg

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Foreground masks (B, 1, H, W) in {0, 1}, in the dtype of ``images``."""
        check_image(images, "images")
        return self.foreground(images).to(images.dtype)
