"""Buffer and bool-word helpers shared by fgad.augment's modules.

Uninitialised output buffers that avoid the page faults of large fresh CPU allocations, per-thread
scratch buffers kept between calls, and per-sample counts / tests of bool tensors read as int64
words (eight bools at a time).
"""

from __future__ import annotations

import math
import threading

import numpy as np
import torch

__all__: list[str] = []


# Per-thread scratch for the int32 level index of the CPU path. A batch of 64 RGB 256x256 images
# needs 50 MB; a fresh allocation that large is mmap-ed by the C allocator and page-faulted on
# every call, which costs more than the op itself, so the buffer is kept between calls.
_SCRATCH = threading.local()
_SCRATCH_MAX_ELEMENTS = 1 << 25


def _scratch(
    name: str, shape: tuple[int, ...] | torch.Size, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """An uninitialised tensor of ``shape``; on the CPU (up to ``_SCRATCH_MAX_ELEMENTS``) a view of the
    calling thread's buffer ``name``, which the next call with that name reuses: the caller must be
    done with it by then."""
    numel = math.prod(shape)
    if device.type != "cpu" or numel > _SCRATCH_MAX_ELEMENTS:
        return torch.empty(shape, dtype=dtype, device=device)
    buffer = getattr(_SCRATCH, name, None)
    if buffer is None or buffer.numel() < numel or buffer.dtype != dtype:
        # A normal tensor, even when first made under inference_mode, so later calls may write it.
        with torch.inference_mode(False):
            buffer = torch.empty(numel, dtype=dtype)
        setattr(_SCRATCH, name, buffer)
    return buffer[:numel].view(shape)


# Fresh CPU buffers at least this large are allocated by numpy, which asks the kernel for huge
# pages (madvise): first-touching a 50 MB buffer then costs ~3 ms instead of ~20 ms of 4 KiB page
# faults. Smaller ones come from torch's allocator (its heap reuses them without faults).
_HUGE_BUFFER_BYTES = 1 << 22


def _new_buffer(
    shape: tuple[int, ...] | torch.Size,
    dtype: torch.dtype,
    device: torch.device,
    *,
    channels_last: bool = False,
) -> torch.Tensor:
    """An uninitialised tensor (``torch.empty``), contiguous or (4-D) channels-last.

    On the CPU a large one is backed by a numpy array (see ``_HUGE_BUFFER_BYTES``); it is an
    ordinary tensor except that its storage cannot be resized.
    """
    shape = tuple(shape)
    order = (0, 2, 3, 1) if channels_last else tuple(range(len(shape)))
    stored = tuple(shape[i] for i in order)
    nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    if torch.device(device).type != "cpu" or nbytes < _HUGE_BUFFER_BYTES:
        buffer = torch.empty(stored, dtype=dtype, device=device)
    else:
        buffer = torch.from_numpy(np.empty(nbytes, dtype=np.uint8)).view(dtype).view(stored)
    return buffer.permute(0, 3, 1, 2) if channels_last else buffer


def _new_like(x: torch.Tensor) -> torch.Tensor:
    """:func:`_new_buffer` shaped like ``x``, channels-last if ``x`` is (and not also contiguous)."""
    channels_last = (
        x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    )
    return _new_buffer(x.shape, x.dtype, x.device, channels_last=channels_last)


# Words summed per chunk by _count_true: each byte lane of the sum then stays below 256 (no carry).
_COUNT_CHUNK = 128


def _count_true(x: torch.Tensor) -> torch.Tensor:
    """(B,) int64 number of true elements of each sample of bool ``x`` (B, ...), exactly.

    A bool sum converts every element to int64 (slow on the CPU); here eight bools are added at a
    time as the bytes of an int64 word, in chunks of 128 words so that no byte overflows into the
    next, and only the per-chunk byte lanes are summed as integers.
    """
    batch = x.shape[0]
    if x.numel() == 0:
        return torch.zeros(batch, dtype=torch.int64, device=x.device)
    flat = x.reshape(batch, -1)
    if not flat.is_contiguous() or flat.storage_offset() % 8:
        flat = flat.clone(memory_format=torch.contiguous_format)
    pad = -flat.shape[1] % (8 * _COUNT_CHUNK)
    if pad:
        flat = torch.cat((flat, flat.new_zeros(batch, pad)), dim=1)
    words = flat.view(torch.int64).view(batch, -1, _COUNT_CHUNK).sum(2)
    return words.view(torch.uint8).view(batch, -1).sum(1)


def _any_true(x: torch.Tensor) -> torch.Tensor:
    """(B,) bool: whether each sample of bool ``x`` (B, ...) has a true element.

    Read as int64 words (eight bools each, every word >= 0) the test is a max over an eighth of the
    elements; a bool ``any`` over the sample is several times slower on the CPU.
    """
    batch = x.shape[0]
    flat = x.reshape(batch, -1)
    if flat.shape[1] == 0 or flat.shape[1] % 8 or not flat.is_contiguous() or flat.storage_offset() % 8:
        return flat.any(dim=1)
    return flat.view(torch.int64).amax(dim=1) > 0
