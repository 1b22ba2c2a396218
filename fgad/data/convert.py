"""From ``uint8`` batches (as the DataLoader delivers them) to float tensors on the device.

Samples travel from the workers as ``uint8`` (four times less to copy than float32); the division
by 255 happens after the transfer, on the device.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["batch_to_device", "to_float"]


def to_float(
    images: torch.Tensor,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    *,
    non_blocking: bool = False,
) -> torch.Tensor:
    """Move a ``uint8`` image tensor to ``device`` and scale it to float [0, 1] there.

    Args:
        images: ``uint8`` tensor of any shape, typically ``(B, C, H, W)``.
        device: target device; ``None`` keeps the tensor where it is.
        dtype: floating result dtype (float32, float16, bfloat16, float64).
        non_blocking: passed to ``Tensor.to`` (useful with ``pin_memory=True`` loaders).

    Returns:
        ``images / 255`` as ``dtype`` on ``device``, same shape; 0 -> 0.0 and 255 -> 1.0 exactly.

    Raises:
        TypeError: ``images`` is not a ``uint8`` tensor or ``dtype`` is not floating.

    Convention:
        Only for images. Masks (values {0, 1}) are converted with ``mask.to(device, dtype)``,
        not divided by 255; :func:`batch_to_device` does both.

    Example:
        >>> import torch
        >>> to_float(torch.tensor([[0, 51, 255]], dtype=torch.uint8))
        tensor([[0.0000, 0.2000, 1.0000]])
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a uint8 torch.Tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise TypeError(
            f"images must be a uint8 tensor with values 0..255, got dtype {images.dtype}; "
            "float images are expected to be in [0, 1] already"
        )
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    if device is not None:
        images = images.to(device=device, non_blocking=non_blocking)
    return images.to(dtype).div_(255)


def batch_to_device(
    batch: Mapping[str, Any],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    *,
    non_blocking: bool = False,
) -> dict[str, Any]:
    """Convert a collated dataset batch to fgad's float conventions on ``device``.

    Args:
        batch: a dict as the default ``collate_fn`` builds it from fgad dataset items:
            ``"image"`` ``uint8`` (B, C, H, W), ``"mask"`` ``uint8`` (B, 1, H, W) in {0, 1},
            ``"label"`` integer (B,), ``"path"`` list of str.
        device: target device (``None`` keeps the tensors where they are).
        dtype: floating dtype of images, masks and labels.
        non_blocking: passed to ``Tensor.to``.

    Returns:
        A new dict: ``"image"`` float [0, 1], ``"mask"`` float {0, 1}, ``"label"`` float (B,)
        {0, 1}; other keys are passed through unchanged.

    Example:
        >>> import torch
        >>> batch = {"image": torch.full((2, 3, 4, 4), 255, dtype=torch.uint8),
        ...          "mask": torch.ones(2, 1, 4, 4, dtype=torch.uint8),
        ...          "label": torch.tensor([0, 1]), "path": ["a.png", "b.png"]}
        >>> out = batch_to_device(batch)
        >>> out["image"].max().item(), out["mask"].max().item(), out["label"].tolist(), out["path"]
        (1.0, 1.0, [0.0, 1.0], ['a.png', 'b.png'])
    """
    if not isinstance(batch, Mapping) or "image" not in batch:
        raise TypeError("batch must be a dict with at least an 'image' key (a collated fgad dataset batch)")
    out = dict(batch)
    out["image"] = to_float(batch["image"], device, dtype, non_blocking=non_blocking)
    for key in ("mask", "label"):
        if key in batch:
            value = batch[key]
            if not isinstance(value, torch.Tensor):
                value = torch.as_tensor(value)
            out[key] = value.to(
                device=device if device is not None else value.device, dtype=dtype, non_blocking=non_blocking
            )
    return out
