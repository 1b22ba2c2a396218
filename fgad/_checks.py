"""Input validation shared by fgad's packages.

Every public entry point validates its tensors with these helpers so that a wrong input fails early
with a message that says what was expected. The value-range check (``[0, 1]``) needs one reduction and
one host synchronisation; it can be switched off for production loops with
:func:`fgad.set_validation` (or the :func:`fgad.validation` context manager), which are this module's
:func:`set_validation` and :func:`validation`. Structural checks (type, rank, dtype, shape) never
synchronise and are always on.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator, Sequence

import torch

__all__ = [
    "as_batch",
    "check_binary_mask",
    "check_image",
    "check_positive_int",
    "is_validating",
    "set_validation",
    "validation",
]

_VALIDATE_RANGE = True
# validation(...) overrides the global switch for the calling thread only, so a library call that
# turns checks off around its internals does not turn them off for other threads.
_LOCAL = threading.local()


def set_validation(enabled: bool) -> None:
    """Turn the value checks (range, binary masks) on or off globally. Structural checks stay on."""
    global _VALIDATE_RANGE
    _VALIDATE_RANGE = bool(enabled)


def is_validating() -> bool:
    """Whether host-synchronising value checks are on (never while compiling, tracing or exporting)."""
    enabled = getattr(_LOCAL, "enabled", None)
    if not (_VALIDATE_RANGE if enabled is None else enabled):
        return False
    return not _capturing()


def _capturing() -> bool:
    """Whether torch is compiling, tracing or exporting the current call (no value can be read then)."""
    compiler = getattr(torch, "compiler", None)
    if compiler is not None:
        if compiler.is_compiling():
            return True
        is_exporting = getattr(compiler, "is_exporting", None)
        if is_exporting is not None and is_exporting():
            return True
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return True
    # torch.onnx is imported by whoever exports; when it is not imported, nothing is exporting.
    onnx = sys.modules.get("torch.onnx")
    return onnx is not None and bool(onnx.is_in_onnx_export())


@contextlib.contextmanager
def validation(enabled: bool) -> Iterator[None]:
    """Turn the value checks on or off inside a ``with`` block, for the calling thread only."""
    previous = getattr(_LOCAL, "enabled", None)
    _LOCAL.enabled = bool(enabled)
    try:
        yield
    finally:
        _LOCAL.enabled = previous


def as_batch(x: object, name: str = "images") -> tuple[torch.Tensor, bool]:
    """A single image (C, H, W) as a batch of one; a batch (B, C, H, W) as it is.

    Returns ``(batch, single)``: ``single`` says whether a batch dimension was added, so that the caller
    can return the rank it was given (``out[0] if single else out``). Other ranks are rejected here
    with a message that names both accepted shapes; the rest is :func:`check_image`'s.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (B, C, H, W) or (C, H, W), got {type(x).__name__}"
        )
    if x.ndim == 3:
        return x.unsqueeze(0), True
    if x.ndim != 4:
        raise ValueError(
            f"{name} must have shape (B, C, H, W) or a single image (C, H, W), got {x.ndim} dimensions "
            f"{tuple(x.shape)}"
        )
    return x, False


def check_image(
    x: object,
    name: str = "images",
    *,
    channels: Sequence[int] = (1, 3),
    check_range: bool = True,
) -> torch.Tensor:
    """Validate an image batch: a floating tensor (B, C, H, W), C in ``channels``, values in [0, 1].

    Raises:
        TypeError: not a tensor, or not a floating dtype.
        ValueError: wrong rank, channel count, an empty dimension, or values outside [0, 1].
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating tensor with values in [0, 1] (float32, float16 or bfloat16), "
            f"got dtype {x.dtype}; convert uint8 images with x.float() / 255"
        )
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got {x.ndim} dimensions {tuple(x.shape)}")
    if x.shape[1] not in tuple(channels):
        raise ValueError(
            f"{name} must have C in {tuple(channels)} channels (B, C, H, W), got shape {tuple(x.shape)}"
        )
    if min(x.shape) == 0:
        raise ValueError(f"{name} must be non-empty in every dimension, got shape {tuple(x.shape)}")
    if check_range and is_validating() and x.device.type != "meta":  # meta tensors hold no values
        lo, hi = torch.aminmax(x)
        if bool(lo < 0) or bool(hi > 1) or bool(torch.isnan(lo) | torch.isnan(hi)):
            raise ValueError(
                f"{name} must have values in [0, 1], got min {float(lo):.4g} and max {float(hi):.4g}"
            )
    return x


def check_positive_int(value: object, name: str) -> None:
    """Validate a size argument (a width, a channel count): an ``int`` >= 1, not a ``bool``.

    Raises:
        ValueError: anything else; the message names the argument and the value.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_binary_mask(x: object, name: str = "mask", *, batch_size: int | None = None) -> torch.Tensor:
    """Validate a mask batch: a tensor (B, 1, H, W) whose values are all 0 or 1.

    Raises:
        TypeError: not a tensor.
        ValueError: wrong shape, wrong batch size, or a value other than 0 and 1.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, 1, H, W), got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"{name} must have shape (B, 1, H, W), got {tuple(x.shape)}")
    if batch_size is not None and x.shape[0] != batch_size:
        raise ValueError(f"{name} must have batch size {batch_size}, got {x.shape[0]}")
    if is_validating() and x.numel() > 0 and bool(((x != 0) & (x != 1)).any()):
        raise ValueError(f"{name} must be binary (values 0 and 1 only)")
    return x
