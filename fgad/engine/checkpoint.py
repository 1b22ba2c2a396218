"""Training-state checkpoints: model, optimizer, scheduler, counters and every random state.

One checkpoint is one file written with :func:`torch.save` to a temporary name and renamed into
place (:func:`os.replace`), so ``last.pt`` is always either the previous or the new complete state.
Loading uses ``torch.load(weights_only=True)``: a checkpoint holds tensors, numbers, strings, lists
and dicts only (the numpy random state is stored as a tensor), so loading never unpickles code.
"""

from __future__ import annotations

import io
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fgad._io import atomic_write_bytes

__all__ = [
    "CHECKPOINT_VERSION",
    "TrainState",
    "capture_rng_state",
    "load_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
]

CHECKPOINT_VERSION = 1


@dataclass
class TrainState:
    """The contents of a training checkpoint.

    Attributes:
        model: the bare model's ``state_dict`` (not DDP-wrapped: keys have no ``module.`` prefix).
        optimizer: ``optimizer.state_dict()``.
        scheduler: ``scheduler.state_dict()``.
        epoch: number of *completed* epochs (training resumes at this epoch index).
        step: number of completed optimizer steps.
        rng: random states from :func:`capture_rng_state`.
        synthesis_rng: the synthesis generator state of every rank (index = rank).
        best_score: best validation score so far (None before the first validation).
        config: the run's ``TrainConfig.to_dict()``.
        model_config: the model's ``config`` dict (name + kwargs) so the model can be rebuilt.
        extra: free-form JSON-like values (validation metrics of the checkpoint...).
    """

    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    epoch: int
    step: int
    rng: dict[str, Any] = field(default_factory=dict)
    synthesis_rng: list[torch.Tensor] = field(default_factory=list)
    best_score: float | None = None
    config: dict[str, Any] = field(default_factory=dict)
    model_config: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def capture_rng_state() -> dict[str, Any]:
    """Torch CPU, every CUDA device, numpy's global and Python's ``random`` states.

    Returns:
        A dict that :func:`torch.save` stores and ``torch.load(weights_only=True)`` reads back.
    """
    # The legacy global numpy RNG is what third-party code (and user hooks) draw from.
    np_state: tuple[Any, ...] = tuple(np.random.get_state(legacy=True))  # noqa: NPY002
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_version, "internal": list(py_internal), "gauss": py_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state` (CUDA states only when CUDA is available)."""
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu())
    if "numpy" in state:
        s = state["numpy"]
        np.random.set_state(  # noqa: NPY002
            (
                s["kind"],
                s["keys"].numpy().astype(np.uint32),
                int(s["pos"]),
                int(s["has_gauss"]),
                float(s["cached_gaussian"]),
            )
        )
    if "python" in state:
        p = state["python"]
        random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        states = state["cuda"]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in states])


def save_checkpoint(path: str | os.PathLike[str], state: TrainState) -> Path:
    """Write ``state`` to ``path`` atomically.

    Args:
        path: target file (``.pt``); parent folders are created.
        state: what to save; tensors are moved to the CPU.

    Returns:
        The written path.

    Example:
        >>> import tempfile, pathlib
        >>> net = torch.nn.Linear(2, 1)
        >>> opt = torch.optim.Adam(net.parameters())
        >>> sch = torch.optim.lr_scheduler.MultiStepLR(opt, [5])
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "last.pt"
        >>> _ = save_checkpoint(p, TrainState(net.state_dict(), opt.state_dict(), sch.state_dict(), 1, 3))
        >>> load_checkpoint(p).step
        3
    """
    payload = {
        "version": CHECKPOINT_VERSION,
        "model": {k: v.detach().cpu() for k, v in state.model.items()},
        "optimizer": _to_cpu(state.optimizer),
        "scheduler": state.scheduler,
        "epoch": int(state.epoch),
        "step": int(state.step),
        "rng": state.rng,
        "synthesis_rng": [s.cpu() for s in state.synthesis_rng],
        "best_score": None if state.best_score is None else float(state.best_score),
        "config": state.config,
        "model_config": state.model_config,
        "extra": state.extra,
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> TrainState:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not an fgad checkpoint, or its format version is newer.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or "version" not in payload or "model" not in payload:
        raise ValueError(f"{path} is not an fgad training checkpoint (expected keys 'version', 'model')")
    if int(payload["version"]) > CHECKPOINT_VERSION:
        raise ValueError(
            f"{path} has checkpoint format {payload['version']}, this fgad reads <= {CHECKPOINT_VERSION}"
        )
    return TrainState(
        model=payload["model"],
        optimizer=payload["optimizer"],
        scheduler=payload["scheduler"],
        epoch=int(payload["epoch"]),
        step=int(payload["step"]),
        rng=payload.get("rng", {}),
        synthesis_rng=list(payload.get("synthesis_rng", [])),
        best_score=payload.get("best_score"),
        config=payload.get("config", {}),
        model_config=payload.get("model_config", {}),
        extra=payload.get("extra", {}),
    )


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_to_cpu(v) for v in obj)
    return obj
