"""torch.distributed helpers: process-group set-up from ``torchrun``'s environment, rank-0 gating.

``torchrun --nproc_per_node N -m fgad.cli train ...`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``;
:func:`setup` then starts the process group (NCCL when the run is on CUDA, gloo on the CPU) and
returns a :class:`DistInfo`. A plain ``python -m fgad.cli train`` sees no such variables and runs
as a single process (``DistInfo(rank=0, world_size=1)``), with no process group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "DistInfo",
    "all_gather_objects",
    "barrier",
    "broadcast_object",
    "cleanup",
    "env_world_size",
    "resolve_device",
    "setup",
]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the job.

    Attributes:
        rank: global rank (0 writes checkpoints, logs and reports).
        world_size: number of processes.
        local_rank: rank on this node (the CUDA device index under torchrun).
        device: the device this process trains on.
        backend: ``"nccl"``, ``"gloo"`` or None (single process).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether a process group with more than one process is running."""
        return self.world_size > 1


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 when unset)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """Turn a config device string into a :class:`torch.device`.

    Args:
        device: ``"auto"`` (CUDA when available, else the CPU), ``"cpu"``, ``"cuda"`` or
            ``"cuda:N"``.
        local_rank: under torchrun, ``"auto"`` / ``"cuda"`` mean ``cuda:<local_rank>``.

    Raises:
        ValueError: CUDA requested but not available, or an unparseable device string.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available")
        if dev.index is None:
            dev = torch.device("cuda", local_rank)
    return dev


def setup(device: str = "auto") -> DistInfo:
    """Start the process group when launched by torchrun; otherwise describe a single process.

    Args:
        device: the config's device string (see :func:`resolve_device`).

    Returns:
        This process's :class:`DistInfo`. With CUDA the current device is set to ``local_rank``.

    Convention:
        Backend: NCCL for CUDA devices, gloo for the CPU. An already-initialised process group is
        reused (and not destroyed by :func:`cleanup` unless this function created it).
    """
    world_size = env_world_size()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world_size <= 1:
        return DistInfo(0, 1, 0, dev, None)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        _OWNED.append(True)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dev, backend)


_OWNED: list[bool] = []


def cleanup() -> None:
    """Destroy the process group if :func:`setup` created it."""
    if _OWNED and dist.is_initialized():
        dist.destroy_process_group()
        _OWNED.clear()


def barrier(info: DistInfo) -> None:
    """Synchronise all ranks (no-op for a single process)."""
    if info.distributed:
        if info.backend == "nccl":
            dist.barrier(device_ids=[info.device.index or 0])
        else:
            dist.barrier()


def broadcast_object(info: DistInfo, obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (identity for a single process)."""
    if not info.distributed:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src, device=info.device if info.backend == "nccl" else None)
    return holder[0]


def all_gather_objects(info: DistInfo, obj: Any) -> list[Any]:
    """Every rank's ``obj``, indexed by rank (``[obj]`` for a single process)."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out
