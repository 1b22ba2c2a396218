"""Glue shared by fit / evaluate / predict: data sets from a config, model loading, autocast."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "autocast",
    "module_to",
    "find_run_dir",
    "load_detector",
    "make_dataset",
    "read_run_file",
]

RUN_FILE = "config.json"
MODEL_DIR = "model"
CHECKPOINT_DIR = "checkpoints"


def make_dataset(
    kind: str, root: str | os.PathLike[str], category: str | None, split: str, image_size: Any
) -> Any:
    """An fgad dataset from a config's ``dataset`` / ``root`` / ``category`` fields.

    Raises:
        ValueError: unknown kind, a missing category, or a test split of a plain folder.
    """
    from fgad.data import BTAD, ImageFolder, MVTecAD
    from fgad.engine.config import LABELLED_DATASETS

    if kind in LABELLED_DATASETS:
        if not category:
            raise ValueError(f"dataset {kind!r} needs a category (the sub-folder of root, e.g. 'bottle')")
        cls = MVTecAD if kind == "mvtec" else BTAD
        return cls(os.fspath(root), category, split=split, image_size=image_size)
    if kind == "folder":
        if split != "train":
            raise ValueError(
                "a 'folder' data set holds good images only (no test split with labels and masks); "
                "evaluate needs dataset 'mvtec' or 'btad'"
            )
        return ImageFolder(os.fspath(root), image_size=image_size)
    raise ValueError(f"dataset must be 'mvtec', 'btad' or 'folder', got {kind!r}")


def module_to(module: nn.Module, device: torch.device) -> nn.Module:
    """Move ``module`` to ``device`` when it holds parameters or buffers (stateless ones are left alone:
    they create their tensors on their input's device)."""
    if any(True for _ in module.parameters()) or any(True for _ in module.buffers()):
        return module.to(device)
    return module


@contextlib.contextmanager
def autocast(device: torch.device, enabled: bool) -> Iterator[None]:
    """bfloat16 autocast on CUDA when ``enabled``; nothing on other devices."""
    if enabled and device.type == "cuda":
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
            yield
    else:
        yield


def read_run_file(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The run's ``config.json`` (``{"config": ..., "calibration": ...}``) or None."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or "config" not in data:
        return None
    return data


def find_run_dir(path: str | os.PathLike[str]) -> Path | None:
    """The run directory that ``path`` (a run dir, its ``model`` dir or a checkpoint) belongs to."""
    p = Path(path)
    for candidate in (p, p.parent, p.parent.parent):
        if read_run_file(candidate) is not None:
            return candidate
    return None


def load_detector(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> nn.Module:
    """Load a detector from a run directory, a ``save_pretrained`` folder or a checkpoint file.

    Args:
        path: a run directory (uses ``<run>/model`` when the run finished, else
            ``<run>/checkpoints/last.pt``), a folder written by :func:`fgad.models.save_pretrained`,
            or a training checkpoint ``.pt`` (:func:`fgad.engine.checkpoint.save_checkpoint`).
        device: where to put the model.

    Returns:
        The model in eval mode.

    Raises:
        FileNotFoundError: nothing loadable at ``path`` (the message lists what was looked for).
    """
    from fgad.engine.checkpoint import load_checkpoint
    from fgad.models import create_model, load_model
    from fgad.models.detector import saved_kwargs

    p = Path(path)
    if p.is_dir() and read_run_file(p) is not None:
        if (p / MODEL_DIR).is_dir():
            p = p / MODEL_DIR
        elif (p / CHECKPOINT_DIR / "last.pt").is_file():
            p = p / CHECKPOINT_DIR / "last.pt"
    if p.is_file():
        state = load_checkpoint(p)
        config = dict(state.model_config)
        name = config.pop("name", None)
        if name is None:
            raise ValueError(f"checkpoint {p} has no model name in its model_config")
        kwargs = saved_kwargs(config.pop("kwargs", config))
        model = create_model(name, **kwargs)
        model.load_state_dict(state.model)
    elif p.is_dir():
        model = load_model(p)
    else:
        raise FileNotFoundError(
            f"no model at {os.fspath(path)!r}: expected a run directory (with config.json and model/ or "
            "checkpoints/last.pt), a save_pretrained folder, or a .pt checkpoint"
        )
    return model.to(device).eval()
