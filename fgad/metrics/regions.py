"""Connected regions of ground-truth masks, the unit of the per-region overlap (PRO)."""

from __future__ import annotations

import cv2
import numpy as np

from ._ranking import as_images, check_binary, to_numpy

__all__ = ["label_regions"]

# Images are labelled in stacks of at most this many pixels (cv2 indexes an image with int32).
_CHUNK_PIXELS = 1 << 26


def label_regions(masks: object) -> tuple[np.ndarray, int]:
    """Label the 8-connected regions of a batch of binary masks, with ids unique across the batch.

    Args:
        masks: binary masks, torch tensor or numpy array, (B, 1, H, W), (B, H, W) or (H, W).

    Returns:
        ``(labels, n_regions)``: labels (B, H, W) int32 numpy array, 0 for normal pixels and 1..n_regions
        for the regions, every id in one image only.

    Convention:
        Two anomalous pixels belong to the same region when they touch by an edge or a corner
        (8-connectivity), as in the MVTec AD evaluation code, which uses ``scipy.ndimage.label`` with a
        3 x 3 structure of ones. Regions never span two images. The labelling is OpenCV's
        ``connectedComponents`` run once over each stack of images separated by an empty row, which gives
        the same partition as ``scipy.ndimage.label`` with ``np.ones((3, 3))``; the numbering may differ.

    Raises:
        ValueError: a wrong shape or a value other than 0 and 1.

    Example:
        >>> import numpy as np
        >>> m = np.zeros((2, 4, 4), dtype=np.uint8)
        >>> m[0, 0, 0] = m[0, 1, 1] = 1  # diagonal neighbours: one region
        >>> m[0, 3, 3] = 1
        >>> m[1, 0, :] = 1
        >>> labels, n = label_regions(m)
        >>> n
        3
        >>> bool(labels[0, 0, 0] == labels[0, 1, 1]), len(np.unique(labels))
        (True, 4)
    """
    binary = check_binary(as_images(to_numpy(masks, "masks"), "masks"), "masks")
    labels, sizes = regions_and_sizes(binary)
    return labels, len(sizes) - 1


def regions_and_sizes(binary: np.ndarray, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels (B, H, W) int32 with ids from ``offset + 1`` on, and region sizes (index i: id offset + i).

    ``binary`` is a (B, H, W) bool array. Images without anomalous pixels are not passed to OpenCV.
    """
    b, h, w = binary.shape
    labels = np.zeros((b, h, w), dtype=np.int32)
    if b == 0 or h == 0 or w == 0:
        return labels, np.zeros(1, dtype=np.int64)
    with_regions = np.flatnonzero(binary.reshape(b, -1).any(axis=1))
    per_chunk = max(1, _CHUNK_PIXELS // ((h + 1) * w))
    next_id = offset
    counts = [np.zeros(1, dtype=np.int64)]
    for start in range(0, len(with_regions), per_chunk):
        idx = with_regions[start : start + per_chunk]
        # An empty row under every image keeps corner-touching regions of consecutive images apart.
        stack = np.zeros((len(idx), h + 1, w), dtype=np.uint8)
        for j, i in enumerate(idx):  # per image: no temporary copy of the whole chunk
            stack[j, :h] = binary[i]
        count, stack_labels = cv2.connectedComponents(
            stack.reshape(len(idx) * (h + 1), w), connectivity=8, ltype=cv2.CV_32S
        )
        counts.append(np.bincount(stack_labels.reshape(-1), minlength=count)[1:].astype(np.int64))
        chunk = stack_labels.reshape(len(idx), h + 1, w)[:, :h]
        if next_id:
            np.add(chunk, next_id, out=chunk, where=chunk > 0)
        labels[idx] = chunk
        next_id += count - 1
    sizes = np.concatenate(counts)
    return labels, sizes
