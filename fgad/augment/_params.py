"""Helpers shared by the params dataclasses of :mod:`fgad.augment` (sample first, apply second)."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import torch

__all__ = ["ParamsMixin", "index_params", "params_to", "sample_device"]

P = TypeVar("P")


def _map_fields(params: Any, fn: Any) -> Any:
    """Apply ``fn`` to every tensor field of a (possibly nested) params dataclass, ``None`` kept."""
    if params is None:
        return None
    if isinstance(params, torch.Tensor):
        return fn(params)
    if dataclasses.is_dataclass(params) and not isinstance(params, type):
        changes = {f.name: _map_fields(getattr(params, f.name), fn) for f in dataclasses.fields(params)}
        return dataclasses.replace(params, **changes)
    return params


def index_params(params: P, index: int | slice | torch.Tensor) -> P:
    """Select samples of a params object (every tensor field is indexed along its first dimension).

    An integer index keeps the batch dimension, so the result replays a batch of one.
    """
    if isinstance(index, int):
        index = slice(index, index + 1 if index != -1 else None)
    return _map_fields(params, lambda t: t[index])


def params_to(params: P, device: torch.device | str) -> P:
    """Move every tensor field of a params object to ``device``."""
    return _map_fields(params, lambda t: t.to(device))


def sample_device(generator: torch.Generator | None, device: torch.device | str | None) -> torch.device:
    """Device random values are drawn on: the generator's device when one is given.

    A CPU generator with CUDA images draws on the CPU (then the values are moved), so the same seed
    gives the same params on every device.
    """
    if generator is not None:
        return torch.device(generator.device)
    return torch.device(device) if device is not None else torch.device("cpu")


class ParamsMixin:
    """Per-sample params: ``params[i]``, ``params[a:b]``, ``params.to(device)``, ``len(params)``."""

    def __getitem__(self: P, index: int | slice | torch.Tensor) -> P:
        return index_params(self, index)

    def to(self: P, device: torch.device | str) -> P:
        return params_to(self, device)

    def __len__(self) -> int:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor) and value.ndim > 0:
                return int(value.shape[0])
            if dataclasses.is_dataclass(value) and isinstance(value, ParamsMixin):
                return len(value)
        raise TypeError(f"{type(self).__name__} holds no per-sample tensor")
