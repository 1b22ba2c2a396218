"""Otsu foreground masks (the I_m of Zhao et al. 2023), batched and identical to OpenCV's Otsu.

``otsu_threshold`` gives the threshold OpenCV's reference Otsu loop (``cv::threshold`` with
``THRESH_OTSU`` on ``CV_8UC1``) gives: the between-class variance of all 256 levels at once from
exact integer sums, and, for the rare histograms where two partitions tie, a float64 replay of
OpenCV's loop operation by operation. :class:`ForegroundMask` turns it into an object mask (closing,
hole filling, opening, fallback), batched and without host synchronisation.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._checks import as_batch, check_image
from ._buffers import _count_true
from ._cues import CUES, GRAY_CUES
from ._morph_cv import clean_masks

__all__ = [
    "CUES",
    "FOREGROUND_METHODS",
    "GRAY_CUES",
    "ForegroundCache",
    "ForegroundMask",
    "fill_holes",
    "gray_levels",
    "otsu_threshold",
    "scaled_odd",
]

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


def _otsu_exact(hist: torch.Tensor, *, host_loop: bool | None = None) -> torch.Tensor:
    """OpenCV's Otsu loop on (B, 256) histograms, replayed operation by operation (vectorised over B).

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


# Relative gap under which two thresholds with different partitions count as tied: far above the
# rounding of OpenCV's float64 loop (a few hundred ulps at most), far below real differences.
_TIE_TOLERANCE = 1e-9


def _otsu_closed_form(hist: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Otsu's threshold from exact integer cumulative sums, all 256 levels at once.

    Returns ``(threshold, tied)``: (B,) int64 first maximum of the between-class variance, and (B,)
    bool, true where another partition comes within ``_TIE_TOLERANCE`` of the maximum (there
    OpenCV's choice is decided by the rounding of its loop, see :func:`otsu_threshold`).
    """
    n = hist.sum(dim=1, keepdim=True)
    levels = torch.arange(256, dtype=torch.int64, device=hist.device)
    w0 = hist.cumsum(dim=1)
    s0 = (hist * levels).cumsum(dim=1)
    # N * S0(t) - W0(t) * S is exact in int64 (below 2**63 up to about 1.9e8 pixels); the
    # between-class variance is that squared over N**2 W0 (N - W0), the constant N**2 dropped.
    diff = (n * s0 - w0 * s0[:, -1:]).to(torch.float64)
    den = (w0 * (n - w0)).to(torch.float64)
    q1 = w0.to(torch.float64) / n.to(torch.float64)
    q2 = 1.0 - q1
    low, high = torch.minimum(q1, q2), torch.maximum(q1, q2)
    valid = (low >= _FLT_EPSILON) & (high <= 1.0 - _FLT_EPSILON)
    sigma = torch.where(valid, diff * diff / den.clamp_min(1.0), torch.zeros_like(diff))
    best = sigma.max(dim=1, keepdim=True).values
    # The first maximum is OpenCV's pick wherever the maximum is one partition. Inside a run of
    # empty levels OpenCV's loop keeps the same partition and, as its running class mean is a
    # quotient by an unchanged class weight (``(x * q) / q == x`` holds for every quotient
    # ``x = y / q`` in IEEE round-to-nearest), the same variance bit for bit, so its strict ``>``
    # keeps the run's first level, exactly as argmax's first maximum here. What no vectorised
    # formula reproduces is a tie between two different partitions: there OpenCV's pick is decided
    # by the rounding its sequential recurrence accumulates, so such ties are flagged (``tied``).
    first = torch.argmax((sigma == best).to(torch.uint8), dim=1, keepdim=True)
    threshold = torch.where(best > 0, first, torch.zeros_like(first)).squeeze(1)
    other = w0 != w0.gather(1, first)
    tied = ((sigma >= best * (1.0 - _TIE_TOLERANCE)) & other & valid).any(dim=1)
    # OpenCV tests validity on its rounded running sum: a level right at the float32 epsilon
    # could go either way (only possible beyond 1 / FLT_EPSILON, about 8.4e6 pixels).
    edge = ((low - _FLT_EPSILON).abs() <= 1e-12).any(dim=1)
    return threshold, (tied | edge) & (best.squeeze(1) > 0)


def _otsu_from_histograms(hist: torch.Tensor, *, exact: bool | None = None) -> torch.Tensor:
    """Otsu thresholds of (B, 256) int64 histograms, equal to OpenCV's (see :func:`otsu_threshold`)."""
    threshold, tied = _otsu_closed_form(hist)
    on_cpu = hist.device.type == "cpu"
    if on_cpu and exact is not False:
        # Ties are rare; reading the flag costs nothing on the CPU, so only they take the loop.
        rows = tied.nonzero().squeeze(1)
        if rows.numel():
            threshold[rows] = _otsu_exact(hist[rows], host_loop=True)
    elif exact:
        threshold = torch.where(tied, _otsu_exact(hist, host_loop=False), threshold)
    return threshold


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


def otsu_threshold(gray: torch.Tensor, *, exact: bool | None = None) -> torch.Tensor:
    """Otsu's threshold of each image, on 256 grey levels, exactly as OpenCV computes it.

    Args:
        gray: (B, 1, H, W) floating in [0, 1] (quantised to ``floor(255 * x + 0.5)``), or
            (B, 1, H, W) uint8 levels.
        exact: how ties between partitions are settled (see Convention). ``None`` (default):
            exactly like OpenCV on the CPU, the first maximum on accelerators; ``True``: exactly
            like OpenCV everywhere; ``False``: the first maximum everywhere.

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

        The between-class variance of every level is computed at once from exact integer
        cumulative sums, and the first maximum wins. Where two *different* partitions tie
        (mathematically equal variances, e.g. symmetric three-level histograms), OpenCV's pick
        depends on the rounding of its sequential float64 loop; such images are detected, and
        ``exact`` replays that loop for them (on the CPU only for the tied images; on accelerators
        as a 256-step loop of small kernels over the whole batch, which is why it is off by
        default there: the first tied maximum is as valid an Otsu threshold, just not OpenCV's).

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
    return _otsu_from_histograms(_histograms(levels), exact=exact)


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


def _window_any(x: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """OR of ``x`` over a centred window of odd ``size`` along ``dim``; pixels past the edge are ignored.

    Windows of length 2n are ORs of two windows of length n (log2(size) passes over bool memory, far
    cheaper on the CPU than ``max_pool2d``).
    """
    if size == 1:
        return x
    radius = size // 2
    pad_shape = list(x.shape)
    pad_shape[dim] = radius
    pad = x.new_zeros(pad_shape)
    y = torch.cat((pad, x, pad), dim=dim)
    n = 1
    while 2 * n <= size:
        length = y.shape[dim]
        y = y.narrow(dim, 0, length - n) | y.narrow(dim, n, length - n)
        n *= 2
    if n < size:
        length = y.shape[dim]
        y = y.narrow(dim, 0, length - (size - n)) | y.narrow(dim, size - n, length - (size - n))
    return y


def _dilate(x: torch.Tensor, size: int) -> torch.Tensor:
    """Binary dilation of (B, H, W) bool by a ``size`` x ``size`` square (outside the image: ignored)."""
    return _window_any(_window_any(x, size, 1), size, 2)


def _erode(x: torch.Tensor, size: int) -> torch.Tensor:
    """Binary erosion by a square; pixels outside the image count as foreground (no erosion from it)."""
    return ~_dilate(~x, size)


def _close(x: torch.Tensor, size: int) -> torch.Tensor:
    """Binary closing of (B, H, W) bool by a square, on a background margin of the kernel radius.

    The margin (rather than replicated borders) keeps an object near the image edge from being
    glued to it; the closing is extensive: it never removes a foreground pixel.
    """
    radius = size // 2
    batch, height, width = x.shape
    padded = x.new_zeros(batch, height + 2 * radius, width + 2 * radius)
    padded[:, radius : radius + height, radius : radius + width] = x
    closed = _erode(_dilate(padded, size), size)
    return closed[:, radius : radius + height, radius : radius + width]


def _growth_views(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The flat views of a (B, H, W) bool buffer that one growth step reads and writes."""
    width = x.shape[-1]
    flat = x.view(-1)
    return flat, flat[:-2], flat[2:], flat[:-width], flat[width:], flat[1:-1]


def _propagate(seed: torch.Tensor, passable: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``steps`` rounds of 4-connected geodesic growth of ``seed`` (frame included) inside ``passable``.

    Returns ``(reached, before)``: the region after the last round and after the one before it
    (the same tensor when ``steps`` is 0).

    Each round works on the flattened batch: a shift by one column wraps from the last column of a
    row to the first of the next (and a shift by one row across images), but those are frame
    pixels, which are set in ``seed`` and passable, so the wrap adds nothing. Two buffers are used
    in turn and their shifted views are made once, so a round is five in-place passes over bool
    memory and no other op (on small grids the per-op overhead is most of the cost).
    """
    reached = torch.bitwise_and(seed, passable)
    if steps == 0:
        return reached, reached
    # Both buffers start as the seed: the first and last flat pixels (frame corners, never
    # written by the horizontal pass) are then already right in each.
    spare = reached.clone()
    gate = passable.reshape(-1)
    src, dst = _growth_views(reached), _growth_views(spare)
    for _ in range(steps):
        flat, left, right, up, down, _ = src
        out, _, _, out_up, out_down, out_mid = dst
        torch.bitwise_or(left, right, out=out_mid)
        out.bitwise_or_(flat)
        out_down.bitwise_or_(up)  # pixel i gets i - W: down the rows (out[W:] |= in[:-W])
        out_up.bitwise_or_(down)  # pixel i gets i + W
        out.bitwise_and_(gate)
        src, dst = dst, src
    reached, before = (reached, spare) if steps % 2 == 0 else (spare, reached)
    return reached, before


def _any_blocks(x: torch.Tensor) -> torch.Tensor:
    """(B, H / 4, W / 4) bool: any of each 4 x 4 block of (B, H, W) bool (H, W multiples of 4).

    Four bools side by side read as one int32 are non-zero iff one of them is set: one pass for
    the rows of a block, three ORs for its columns (a reduction over tiny dimensions is slow).
    """
    batch, height, width = x.shape
    rows = x.contiguous().view(torch.uint8).view(torch.int32) != 0  # (B, H, W / 4)
    rows = rows.view(batch, height // 4, 4, width // 4)
    return rows[:, :, 0] | rows[:, :, 1] | rows[:, :, 2] | rows[:, :, 3]


def _frame(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """(H, W) bool, true on the outermost rows and columns."""
    frame = torch.ones(shape[-2:], dtype=torch.bool, device=device)
    frame[1:-1, 1:-1] = False
    return frame


# Pyramid of the hole filling: cell sizes (coarse to fine; each 4 x 4 of the next) and the growth
# steps at the two finer levels; the coarsest level gets as many steps as its grid is long.
_FILL_CELLS = (16, 4, 1)
_FILL_STEPS = 12


_SEED_CACHE: dict[tuple[int, int, int, int, torch.device], tuple[torch.Tensor, ...]] = {}


def _fill_seeds(height: int, width: int, hp: int, wp: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Per pyramid level, the (h, w) bool seed of the search: the frame and the cells wholly outside
    the image. They depend only on the sizes, so they are made once per size and device."""
    key = (height, width, hp, wp, device)
    seeds = _SEED_CACHE.get(key)
    if seeds is None:
        beyond = torch.ones(hp, wp, dtype=torch.bool, device=device)
        beyond[1 : height + 1, 1 : width + 1] = False
        levels = []
        for cell in _FILL_CELLS:
            hc, wc = hp // cell, wp // cell
            margin = beyond.view(hc, cell, wc, cell).all(3).all(1)
            levels.append(_frame((hc, wc), device) | margin)
        seeds = tuple(levels)
        if len(_SEED_CACHE) >= 32:  # a few sizes in practice; never grow without bound
            _SEED_CACHE.clear()
        _SEED_CACHE[key] = seeds
    return seeds


def _repeat4(x: torch.Tensor) -> torch.Tensor:
    """(B, 4h, 4w) bool: every element of (B, h, w) bool repeated over a 4 x 4 block.

    The columns by one integer multiply (a bool 0/1 times 0x01010101 is four bool bytes side by
    side), the rows by copying whole rows: no gather over the fine grid.
    """
    batch, height, width = x.shape
    wide = x.contiguous().view(torch.uint8).to(torch.int32).mul_(0x01010101).view(torch.bool)
    rows = wide.unsqueeze(2).expand(batch, height, 4, 4 * width).contiguous()
    return rows.view(batch, 4 * height, 4 * width)


def fill_holes(fg: torch.Tensor, *, steps: int = _FILL_STEPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Fill the holes of binary masks: background not 4-connected to the image border.

    Args:
        fg: (B, H, W) or (B, 1, H, W) bool masks.
        steps: accelerators only: growth steps at each of the two finer pyramid levels (the budget
            of the search).

    Returns:
        ``(filled, complete)``: the masks with their holes filled (same shape, bool) and (B,) bool,
        true where the search for the border-connected background finished within the budget.

    Convention:
        On the CPU the border-connected background is one OpenCV flood fill over the whole batch
        (the masks stacked, each in a background frame): always complete, exactly
        ``scipy.ndimage.binary_fill_holes``.
        On other devices it is grown from the image frame by geodesic 4-connected
        reconstruction on a pyramid (cells of 16, 4 and 1 pixels; a cell is passable when all its
        pixels are background, so everything a coarse level reaches is truly border-connected,
        and the finer levels only extend it). With a fixed number of steps per level it cannot
        always finish (long winding background channels); an image whose search did not finish
        (``complete`` false) is returned unfilled, so filling never adds a pixel that is not an
        enclosed background pixel, and never removes one. Where ``complete`` is true the result is
        exactly ``scipy.ndimage.binary_fill_holes``. No host synchronisation, no loop over the batch.

    Example:
        >>> ring = torch.ones(1, 5, 5, dtype=torch.bool)
        >>> ring[:, 2, 2] = False
        >>> filled, complete = fill_holes(ring)
        >>> bool(filled.all()), complete.tolist()
        (True, [True])
    """
    if fg.device.type == "cpu":
        squeeze = fg.ndim == 4
        masks = fg[:, 0] if squeeze else fg
        filled = clean_masks(masks, 0, 0, True)
        complete = torch.ones(masks.shape[0], dtype=torch.bool)
        return (filled.unsqueeze(1) if squeeze else filled), complete
    return _fill_holes_grow(fg, steps=steps)


def _fill_holes_grow(fg: torch.Tensor, *, steps: int = _FILL_STEPS) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`fill_holes` by bounded geodesic growth on a pyramid (the path of accelerators)."""
    squeeze = fg.ndim == 4
    masks = fg[:, 0] if squeeze else fg
    batch, height, width = masks.shape
    device = masks.device
    coarse = _FILL_CELLS[0]
    # A one-pixel background frame around the image, then up to whole coarse cells: that margin
    # is border-connected by construction (it seeds the search), and every image border pixel
    # touches it.
    hp = -(-(height + 2) // coarse) * coarse
    wp = -(-(width + 2) // coarse) * coarse
    padded = torch.zeros(batch, hp, wp, dtype=torch.bool, device=device)
    padded[:, 1 : height + 1, 1 : width + 1] = masks
    seeds = _fill_seeds(height, width, hp, wp, device)
    reached: torch.Tensor | None = None
    complete = torch.ones(batch, dtype=torch.bool, device=device)
    # Occupancy (any foreground) of every cell, built coarse from fine: 1 -> 4 -> 16 pixels.
    occupancy = {1: padded}
    occupancy[4] = _any_blocks(padded)
    occupancy[16] = _any_blocks(occupancy[4])
    for level, cell in enumerate(_FILL_CELLS):
        passable = torch.bitwise_not(occupancy[cell])
        if reached is None:
            seed = seeds[level].expand_as(passable)
        else:
            assert _FILL_CELLS[level - 1] == 4 * cell
            seed = _repeat4(reached).bitwise_or_(seeds[level])
        steps_here = max(passable.shape[1:]) if level == 0 else max(steps, 1)
        reached, before = _propagate(seed, passable, steps_here)
        if cell == 1:
            # Finished where the last step added nothing (reached only grows: compare 8 at a time).
            complete = torch.eq(
                reached.view(batch, -1).view(torch.int64), before.view(batch, -1).view(torch.int64)
            ).all(1)
    assert reached is not None
    # The foreground is never reached, so "not reached" is the foreground with its holes filled.
    outside = torch.bitwise_not(reached[:, 1 : height + 1, 1 : width + 1])
    if device.type == "cpu" and bool(complete.all()):
        filled = outside
    else:
        filled = torch.where(complete.view(batch, 1, 1), outside, masks)
    return (filled.unsqueeze(1) if squeeze else filled), complete


def _cleanup_sizes(cleanup: object) -> tuple[int, int]:
    pair = (cleanup, cleanup) if isinstance(cleanup, int) else cleanup
    ok = (
        isinstance(pair, tuple)
        and len(pair) == 2
        and all(
            isinstance(k, int) and not isinstance(k, bool) and k >= 0 and (k == 0 or k % 2 == 1) for k in pair
        )
    )
    if not ok:
        raise ValueError(
            "cleanup must be 0 (off), an odd kernel size, or a (close, open) pair of odd sizes / 0, "
            f"got {cleanup!r}"
        )
    return pair  # type: ignore[return-value]


def _flip_rows(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Negate the samples of bool ``x`` (B, ...) where ``flip`` (B,) is true, in place.

    A per-sample constant broadcast over a bool tensor is slow on the CPU; read as int64 words
    (eight bools each) the XOR with 0x0101010101010101 or 0 covers eight pixels per element.
    """
    batch = x.shape[0]
    per_sample = x[0].numel() if batch else 0
    if per_sample % 8 or not x.is_contiguous():
        return x.bitwise_xor_(flip.view(batch, *([1] * (x.ndim - 1))))
    words = x.view(batch, -1).view(torch.int64)
    words.bitwise_xor_(flip.to(torch.int64).mul_(0x0101010101010101).view(batch, 1))
    return x


#: Foreground methods of :class:`ForegroundMask`.
FOREGROUND_METHODS = ("auto", "otsu")
ForegroundMethod = Literal["auto", "otsu"]

# Clean-up kernels of the paper's Otsu pipeline (pixels, fixed) and the sizes that "auto" scales with
# the image: these at 256 x 256.
_OTSU_CLEANUP = (21, 5)
_REFERENCE_SIZE = 256


def scaled_odd(size: int, height: int, width: int) -> int:
    """The odd integer nearest ``size * min(H, W) / 256`` (at least 1): a kernel scaled with the image.

    Example:
        >>> [scaled_odd(21, s, s) for s in (64, 128, 256, 512)]
        [5, 11, 21, 43]
    """
    return _nearest_odd(size * min(int(height), int(width)) / _REFERENCE_SIZE)


def _grid_kernel(size: int, grid: int, full: int) -> int:
    """A kernel of ``size`` pixels at side ``full`` as the odd number of cells nearest it on a grid of
    side ``grid`` (0 stays 0: off)."""
    if size == 0 or grid == full:
        return size
    return _nearest_odd(size * grid / full)


def _nearest_odd(target: float) -> int:
    """The odd integer nearest ``target``, at least 1."""
    return max(1, 2 * math.floor((target - 1.0) / 2.0 + 0.5) + 1)


def _hull_rows(masks: torch.Tensor, directions: int = 16) -> torch.Tensor:
    """A convex polygon around each mask of (B, H, W) bool: the intersection of its ``2 * directions``
    supporting half-planes (the convex hull, enlarged by at most a pixel or so between the directions).

    Per row only the leftmost and rightmost pixels of the mask matter, so the projections are taken
    over (B, 2H) points and the result is one interval of columns per row: no loop over the batch and
    no host synchronisation.
    """
    batch, height, width = masks.shape
    device = masks.device
    cols = torch.arange(width, device=device, dtype=torch.float32)
    rows = torch.arange(height, device=device, dtype=torch.float32)
    occupied = masks.any(dim=2)  # (B, H)
    big = float(width + height) * 4.0
    left = torch.where(masks, cols, big).amin(dim=2)
    right = torch.where(masks, cols, -big).amax(dim=2)
    angles = torch.arange(directions, device=device, dtype=torch.float32) * (math.pi / directions)
    cos, sin = torch.cos(angles), torch.sin(angles)  # (K,)
    # projections of the 2H extreme points on every direction: (B, 2H, K)
    xs = torch.cat((left, right), dim=1).unsqueeze(2)
    ys = torch.cat((rows, rows)).view(1, -1, 1)
    proj = xs * cos + ys * sin
    valid = torch.cat((occupied, occupied), dim=1).unsqueeze(2)
    lo = torch.where(valid, proj, big * 4).amin(dim=1)  # (B, K)
    hi = torch.where(valid, proj, -big * 4).amax(dim=1)
    # per row y and direction k: lo_k <= x cos_k + y sin_k <= hi_k -> an interval of x (or all / none)
    y = rows.view(1, height, 1)
    a, b = lo.unsqueeze(1) - y * sin, hi.unsqueeze(1) - y * sin  # (B, H, K)
    c = cos.view(1, 1, -1)
    vertical = c.abs() < 1e-6
    safe = torch.where(vertical, torch.ones_like(c), c)
    x0 = torch.where(c > 0, a / safe, b / safe)
    x1 = torch.where(c > 0, b / safe, a / safe)
    inside_all = (a <= 0) & (b >= 0)  # a direction along y: the row passes iff 0 is within [a, b]
    x0 = torch.where(vertical, torch.where(inside_all, -big, big), x0)
    x1 = torch.where(vertical, torch.where(inside_all, big, -big), x1)
    start = x0.amax(dim=2) - 0.5  # (B, H); half a pixel of slack for the rounding of the projections
    stop = x1.amin(dim=2) + 0.5
    grid = cols.view(1, 1, width)
    hull = (grid >= start.unsqueeze(2)) & (grid <= stop.unsqueeze(2))
    any_fg = occupied.any(dim=1).view(batch, 1, 1)
    return (hull & any_fg) | masks


class ForegroundMask(nn.Module):
    """The foreground (the object) of each image as a binary mask.

    Two methods find the object, then one clean-up makes it whole:

    - ``"auto"`` (default): per image, several cues, each thresholded with Otsu, and the one that
      separates an object from its background best: grey level, saturation, red-green and
      yellow-blue opponent colour, the colour distance to the image border's median colour, the
      chromaticity distance to it (blind to shadows) and local contrast (a textured object on a flat
      background, or the reverse). For each cue the object is the Otsu class that covers less of the
      image border; a cue qualifies when that class covers at most ``max_border`` of the border and
      between ``min_fraction`` and ``max_area`` of the image, and among those the cue with the
      largest Otsu separability (between-class / total variance) minus its border share wins. An
      image where no cue qualifies, or where the best separability is below ``min_separability``, is
      a texture or a surface that fills the frame: its foreground is the whole image
      (``last_texture``).
    - ``"otsu"``: the paper's grey-level Otsu (:func:`otsu_threshold`, identical to OpenCV's), with
      the object side chosen by ``polarity``; kept for reproducing the paper.

    Clean-up, per image: a binary closing (bridges gaps in the object's outline), hole filling
    (background not connected to the image border becomes foreground), a binary opening (removes
    specks), optionally the convex hull (``hull``), and the whole-image fallback.

    Args:
        method: ``"auto"`` or ``"otsu"`` (see above).
        polarity: ``"otsu"`` only: which Otsu class is the object: ``"bright"`` (level > t),
            ``"dark"`` (level <= t) or ``"auto"``: per image, the class with fewer pixels on the image
            border (the object rarely fills the frame edge; ties go to bright).
        min_fraction: an image whose final mask covers less than this fraction of its pixels (or
            nothing), or a constant image, falls back to the whole image, so anomalies can still be
            placed (DRAEM behaviour for that image).
        cleanup: ``(close, open)`` odd square kernel sizes in pixels, 0 to skip one; an int k means
            ``(k, k)``, 0 no clean-up at all; ``None`` (default): the method's own, ``(21, 5)`` for
            ``"otsu"`` at every image size (the paper pipeline, bit for bit), and for ``"auto"`` the
            same sizes scaled with the image (:func:`scaled_odd`: ``(21, 5)`` at 256 px, ``(11, 3)``
            at 128 px), applied on the cue-analysis grid at its scale (``"auto"`` decides and
            cleans up on that grid and brings the mask to full size once, with bilinear outlines).
            The closing runs before hole filling, the opening after it. The closing sees
            background past the image edge (an object is not glued to the edge), the opening
            foreground (an object cut by the edge is not eroded from it).
        fill_holes: fill the holes of the (closed) mask: background regions not 4-connected to the
            image border become foreground (:func:`fill_holes`; it only adds enclosed background
            pixels and never removes foreground). On the CPU the fill is exact; on accelerators an
            image on which the bounded search does not finish stays unfilled (``last_filled``
            false).
        hull: add the convex hull of the object (after the opening): closes cracks that open an
            object to the background and bites that a shadow or a highlight takes out of its side
            (industrial objects are mostly compact). The hull is taken of the components that do not
            touch the image border (clutter cut by the frame is dropped) or, when all do, of all of
            them, on the cue-analysis grid. ``None`` (default): on for ``"auto"``, off for ``"otsu"``.
        max_border: ``"auto"`` only: the largest share of the image border an object class may cover.
        max_area: ``"auto"`` only: the largest share of the image an object class may cover.
        min_separability: ``"auto"`` only: below this Otsu separability no cue separates an object.

    Shape:
        Input (B, C, H, W) or (C, H, W) floating in [0, 1], C in {1, 3}; output (B, 1, H, W)
        (or (1, H, W)) in {0, 1} with the input's dtype.

    Convention:
        Deterministic: no random values; batched, no host synchronisation (on accelerators). On the
        CPU the closing, hole filling and opening are OpenCV calls on the whole batch (the masks
        stacked, each in its own margin), equal to the accelerator path wherever its hole filling
        completes.
        Diagnostics of the last call, each (B,): ``last_threshold`` (Otsu level of the chosen cue),
        ``last_bright`` (the object is the upper Otsu class), ``last_filled`` (hole filling
        completed; always true on the CPU and when ``fill_holes`` is off), ``last_fallback`` (the
        returned mask is the whole image, for any reason), and for ``"auto"`` ``last_cue`` (index into
        :data:`fgad.augment.foreground.CUES`, of the grey cues :data:`GRAY_CUES` for C = 1),
        ``last_separability`` and ``last_texture`` (no cue separated an object).
        ``"otsu"`` grey levels are ``floor(255 * luma + 0.5)`` with ITU-R BT.601 weights
        (:func:`gray_levels`). With ``cleanup=0`` and ``fill_holes=False`` the ``"otsu"`` mask is
        exactly Otsu's class (or the fallback); with ``fill_holes=True`` it is
        ``scipy.ndimage.binary_fill_holes`` of that class where ``last_filled``.

    Example:
        >>> img = torch.zeros(1, 1, 32, 32)
        >>> img[..., 8:24, 8:24] = 0.8
        >>> img[..., 14:18, 14:18] = 0.0  # a dark spot inside the object
        >>> ForegroundMask("otsu")(img)[0, 0].sum().item()  # filled: the whole 16 x 16 square
        256.0
        >>> ForegroundMask("otsu", cleanup=0, fill_holes=False)(img)[0, 0].sum().item()
        240.0
    """

    def __init__(
        self,
        method: ForegroundMethod = "auto",
        polarity: Polarity = "auto",
        min_fraction: float = 0.01,
        cleanup: int | tuple[int, int] | None = None,
        fill_holes: bool = True,
        hull: bool | None = None,
        *,
        max_border: float = 0.1,
        max_area: float = 0.95,
        min_separability: float = 0.5,
        vote_margin: float = 0.15,
    ) -> None:
        super().__init__()
        if method not in FOREGROUND_METHODS:
            raise ValueError(f"method must be one of {FOREGROUND_METHODS}, got {method!r}")
        if polarity not in ("auto", "bright", "dark"):
            raise ValueError(f"polarity must be 'auto', 'bright' or 'dark', got {polarity!r}")
        for name, value in (
            ("min_fraction", min_fraction),
            ("max_border", max_border),
            ("max_area", max_area),
            ("min_separability", min_separability),
        ):
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        if hull is None:
            hull = method == "auto"
        for name, flag in (("fill_holes", fill_holes), ("hull", hull)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, got {flag!r}")
        self.method = method
        self.polarity = polarity
        self.min_fraction = float(min_fraction)
        self.cleanup = None if cleanup is None else _cleanup_sizes(cleanup)
        self.fill_holes = fill_holes
        self.hull = hull
        self.max_border = float(max_border)
        self.max_area = float(max_area)
        self.min_separability = float(min_separability)
        self.vote_margin = float(vote_margin)
        self.last_threshold: torch.Tensor | None = None
        self.last_bright: torch.Tensor | None = None
        self.last_filled: torch.Tensor | None = None
        self.last_fallback: torch.Tensor | None = None
        self.last_cue: torch.Tensor | None = None
        self.last_separability: torch.Tensor | None = None
        self.last_texture: torch.Tensor | None = None

    def cleanup_sizes(self, height: int, width: int) -> tuple[int, int]:
        """The ``(close, open)`` kernel sizes used for images of ``height`` x ``width``."""
        if self.cleanup is not None:
            return self.cleanup
        if self.method == "otsu":
            return _OTSU_CLEANUP
        return scaled_odd(_OTSU_CLEANUP[0], height, width), scaled_odd(_OTSU_CLEANUP[1], height, width)

    def _otsu_split(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        levels = gray_levels(images)
        hist = _histograms(levels)
        threshold = _otsu_from_histograms(hist)
        batch = levels.shape[0]
        # bright is level > t; dark is not (level > t): one comparison and one flip.
        fg = levels > threshold.to(torch.uint8).view(batch, 1, 1, 1)
        if self.polarity == "auto":
            height, width = levels.shape[-2:]
            n_border = 2 * (height + width) - 4 if height > 1 and width > 1 else height * width
            bright = _border_counts(fg) * 2 <= n_border
        else:
            bright = torch.full((batch,), self.polarity == "bright", dtype=torch.bool, device=levels.device)
        if levels.device.type != "cpu" or not bool(bright.all()):
            fg = _flip_rows(fg, ~bright)
        constant = (hist > 0).sum(dim=1) <= 1
        return fg[:, 0], threshold, bright, constant

    def _auto_split(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        from ._cues import cue_levels, otsu_separability

        batch = images.shape[0]
        levels = cue_levels(images)
        cues, height, width = levels.shape[1:]
        flat = levels.view(batch * cues, 1, height, width)
        threshold, eta = otsu_separability(_histograms(flat))
        threshold, eta = threshold.view(batch, cues), eta.view(batch, cues)
        upper = levels > threshold.to(torch.uint8).view(batch, cues, 1, 1)
        n_border = 2 * (height + width) - 4 if height > 1 and width > 1 else height * width
        border_upper = _border_counts(upper.view(batch * cues, height, width)).view(batch, cues)
        bright = border_upper * 2 <= n_border
        object_border = torch.where(bright, border_upper, n_border - border_upper).double() / n_border
        area_upper = _count_true(upper.view(batch * cues, -1)).view(batch, cues).double() / (height * width)
        object_area = torch.where(bright, area_upper, 1.0 - area_upper)
        ok = (
            (object_border <= self.max_border)
            & (object_area >= max(self.min_fraction, 1e-9))
            & (object_area <= self.max_area)
            & (eta > 0)
        )
        rating = torch.where(ok, eta - object_border, torch.full_like(eta, -math.inf))
        best = rating.argmax(dim=1, keepdim=True)  # (B, 1)
        best_eta = eta.gather(1, best).squeeze(1)
        texture = ~ok.any(dim=1) | (best_eta < self.min_separability)
        chosen_bright = bright.gather(1, best).squeeze(1)
        # Every cue that separates nearly as well as the best one votes; a pixel is the object where
        # more than half of them say so (a tie: the best cue decides). Each cue tends to miss a
        # different part of an object (a shaded side, a highlight, a pale patch) and to take in a
        # different part of the background (a shadow), so the vote is steadier than any single cue.
        voters = ok & (eta >= (best_eta - self.vote_margin).unsqueeze(1))
        objects = upper ^ ~bright.view(batch, cues, 1, 1)
        votes = (objects & voters.view(batch, cues, 1, 1)).sum(dim=1, keepdim=True, dtype=torch.int16) * 2
        n_voters = voters.sum(dim=1, dtype=torch.int16).view(batch, 1, 1, 1)
        index = best.view(batch, 1, 1, 1).expand(batch, 1, height, width)
        fg = (votes > n_voters) | ((votes == n_voters) & objects.gather(1, index))
        fg = fg[:, 0].contiguous()
        self.last_cue, self.last_separability, self.last_texture = best.squeeze(1), best_eta, texture
        return fg, threshold.gather(1, best).squeeze(1), chosen_bright, texture

    def _hull(self, masks: torch.Tensor) -> torch.Tensor:
        """The convex hull of the components that do not touch the image border (the object without
        clutter cut by the frame), or of all of them when every component touches it.

        Worked out on the grid of the cue analysis (a cell is set where any of its pixels is), then
        brought back to full size; the full-size pixels of the kept components stay as they are.
        """
        from ._cues import analysis_size

        batch, height, width = masks.shape
        size = analysis_size(height, width)
        coarse = masks
        if size != (height, width):
            grid = masks.view(batch, 1, height, width).to(torch.float32)
            if height % size[0] == 0 and width % size[1] == 0:  # the usual case: whole cells
                coarse = F.max_pool2d(grid, (height // size[0], width // size[1]))
            else:
                coarse = F.adaptive_max_pool2d(grid, size)
            coarse = coarse.view(batch, *size) > 0.5
        enclosed, _ = fill_holes(~coarse)
        interior = enclosed & coarse
        big = _count_true(interior).to(torch.float64) >= max(self.min_fraction, 1e-9) * size[0] * size[1]
        keep = torch.where(big.view(batch, 1, 1), interior, coarse)
        hull = _hull_rows(keep)
        if size != (height, width):
            up = torch.stack((keep, hull), dim=1).to(torch.uint8)
            if height % size[0] == 0 and width % size[1] == 0:
                fh, fw = height // size[0], width // size[1]
                up = up.repeat_interleave(fh, dim=2).repeat_interleave(fw, dim=3)
            else:
                up = F.interpolate(up, (height, width), mode="nearest")
            keep, hull = up.bool().unbind(1)
            return (masks & keep) | hull
        return hull

    def foreground(self, images: torch.Tensor) -> torch.Tensor:
        """Boolean foreground (B, 1, H, W) of (B, C, H, W) images; the structural checks are the caller's.

        ``"otsu"`` works at full size. ``"auto"`` decides on the cue-analysis grid and cleans up there
        (its kernels scaled to the grid), then brings the mask to full size once, with bilinear
        (smooth) outlines: every step after the cues costs a sixteenth of the full-size work at 256 px.
        """
        height, width = images.shape[-2:]
        close, open_ = self.cleanup_sizes(height, width)
        if self.method == "otsu":
            self.last_cue = self.last_separability = self.last_texture = None
            masks, threshold, bright, whole = self._otsu_split(images)
        else:
            masks, threshold, bright, whole = self._auto_split(images)
            grid_h, grid_w = masks.shape[-2:]
            close, open_ = (_grid_kernel(k, grid_h, height) for k in (close, open_))
        masks, filled = self._clean(masks, close, open_)
        batch, grid_h, grid_w = masks.shape
        count = _count_true(masks)
        fallback = whole | (count == 0) | (count.to(torch.float64) < self.min_fraction * (grid_h * grid_w))
        self.last_threshold, self.last_bright = threshold, bright
        self.last_filled, self.last_fallback = filled, fallback
        masks = masks | fallback.view(batch, 1, 1)
        if (grid_h, grid_w) != (height, width):
            # a 3 x 3 mean on the grid first, so that the outline follows the object's slope instead
            # of the grid's staircase (a straight side stays where it is; corners round by a cell)
            soft = F.avg_pool2d(masks.unsqueeze(1).float(), 3, stride=1, padding=1, count_include_pad=False)
            smooth = F.interpolate(soft, (height, width), mode="bilinear", align_corners=False)
            return smooth > 0.5
        return masks.unsqueeze(1)

    def _clean(self, masks: torch.Tensor, close: int, open_: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Closing, hole filling, opening and hull of (B, H, W) masks; also whether filling finished."""
        filled = torch.ones(masks.shape[0], dtype=torch.bool, device=masks.device)
        if masks.device.type == "cpu":
            masks = clean_masks(masks, close, open_, self.fill_holes)  # the fill always completes
        else:
            if close:
                masks = _close(masks, close)
            if self.fill_holes:
                masks, filled = fill_holes(masks)
            if open_:
                masks = _dilate(_erode(masks, open_), open_)
        if self.hull:
            masks = self._hull(masks)
        return masks, filled

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Foreground masks (B, 1, H, W) in {0, 1} ((1, H, W) for one image) in the dtype of ``images``."""
        batch, single = as_batch(images, "images")
        check_image(batch, "images")
        out = self.foreground(batch).to(images.dtype)
        return out[0] if single else out


class ForegroundCache:
    """Foregrounds computed once per image and reused: a training image's object does not move.

    ``cache(keys, images)`` returns the (B, 1, H, W) bool foreground of each image, computing it (in one
    batched call of ``foreground``) only for keys it has not seen; pass the masks to
    ``AnomalySynthesizer(...)(images, foreground=masks)``, which rotates them with the images it
    rotates. Keys are any hashable per-image identifiers (file paths, data set indices).

    Args:
        foreground: a :class:`ForegroundMask` or a method name (``"auto"``, ``"otsu"``).

    Convention:
        The cached mask is exactly ``foreground`` of the image as first seen (same size); an image
        that comes back with another size is computed again. Masks stay on the images' device.

    Example:
        >>> cache = ForegroundCache("otsu")
        >>> images = torch.rand(2, 3, 32, 32)
        >>> masks = cache(["a.png", "b.png"], images)
        >>> torch.equal(masks, ForegroundMask("otsu").foreground(images)), len(cache)
        (True, 2)
    """

    def __init__(self, foreground: ForegroundMask | str = "auto") -> None:
        self.foreground = foreground if isinstance(foreground, ForegroundMask) else ForegroundMask(foreground)
        self._masks: dict[object, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._masks)

    def clear(self) -> None:
        """Forget every cached mask."""
        self._masks.clear()

    def __call__(self, keys: list | tuple, images: torch.Tensor) -> torch.Tensor:
        images, single = as_batch(images, "images")
        check_image(images, "images", check_range=False)
        keys = list(keys)
        if len(keys) != images.shape[0]:
            raise ValueError(f"got {len(keys)} keys for {images.shape[0]} images")
        size = tuple(images.shape[-2:])
        missing = [i for i, k in enumerate(keys) if k not in self._masks or self._masks[k].shape[-2:] != size]
        if missing:
            rows = torch.tensor(missing, device=images.device)
            fresh = self.foreground.foreground(images.index_select(0, rows))
            for j, i in enumerate(missing):
                self._masks[keys[i]] = fresh[j]
        masks = torch.stack([self._masks[k] for k in keys])
        return masks[0] if single else masks
