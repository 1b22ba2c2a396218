"""The CPU path of the foreground clean-up: closing, hole filling and opening of a batch of binary
masks with OpenCV, each operation one call on the whole batch.

The masks are laid out one below the other in a single image, each inside its own margin: wide
enough that a square window of the closing or the opening never reaches from one mask into the next,
and at least one pixel, so that a flood fill from the corner reaches every mask's border through the
margins. The results equal :func:`fgad.augment.foreground._close`, ``_erode`` / ``_dilate`` and
``scipy.ndimage.binary_fill_holes`` bit for bit (pinned in the tests).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

__all__: list[str] = []


def _square(size: int) -> np.ndarray:
    return np.ones((size, size), dtype=np.uint8)


def _set_margins(blocks: np.ndarray, margin: int, height: int, width: int, value: int) -> None:
    """Set every pixel of (B, H + 2m, W + 2m) ``blocks`` outside the masks to ``value``."""
    blocks[:, :margin] = value
    blocks[:, margin + height :] = value
    blocks[:, :, :margin] = value
    blocks[:, :, margin + width :] = value


def clean_masks(masks: torch.Tensor, close: int, open_: int, fill: bool) -> torch.Tensor:
    """Closing by a ``close`` square on a background margin, hole filling (4-connected background not
    reaching the border) and opening by an ``open_`` square (erosion sees foreground past the edge,
    dilation ignores it) of (B, H, W) bool CPU masks; 0 skips a step. Returns (B, H, W) bool."""
    batch, height, width = masks.shape
    if batch == 0 or height == 0 or width == 0 or (not close and not open_ and not fill):
        return masks
    margin = max(close // 2, open_ // 2, 1)
    tall = batch * (height + 2 * margin)
    stack = np.zeros((tall, width + 2 * margin), dtype=np.uint8)
    blocks = stack.reshape(batch, height + 2 * margin, width + 2 * margin)
    inner = (slice(None), slice(margin, margin + height), slice(margin, margin + width))
    blocks[inner] = masks.numpy().view(np.uint8)
    spare = np.empty_like(stack)
    if close:
        # The margins are background: the dilation sees nothing past the edge, and the erosion
        # sees what the dilation put into the margin (as a closing on a zero-padded image).
        kernel = _square(close)
        cv2.dilate(stack, kernel, dst=spare)
        cv2.erode(spare, kernel, dst=stack)
    if fill:
        # Background margins of at least one pixel join every mask's border to the corner, and
        # keep the background of one mask from touching another's.
        _set_margins(blocks, margin, height, width, 0)
        cv2.floodFill(stack, None, (0, 0), 2)
        np.not_equal(stack, 2, out=stack.view(bool))
    if open_:
        kernel = _square(open_)
        _set_margins(blocks, margin, height, width, 1)  # the erosion sees foreground past the edge
        cv2.erode(stack, kernel, dst=spare)
        _set_margins(spare.reshape(blocks.shape), margin, height, width, 0)  # the dilation nothing
        cv2.dilate(spare, kernel, dst=stack)
    out = torch.from_numpy(np.ascontiguousarray(blocks[inner]))
    return out.view(torch.bool)
