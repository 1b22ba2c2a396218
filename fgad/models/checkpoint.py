"""Safe checkpoints: ``model.safetensors`` + ``config.json``, written atomically, never unpickled.

Layout of a checkpoint directory written by :func:`save_pretrained`::

    model.safetensors   the state dict (parameters and BatchNorm buffers), CPU, contiguous; its
                        header metadata also holds the config, so the file alone is loadable
    config.json         {"format": "fgad", "format_version": 1, "name": ..., "kwargs": {...},
                         "fgad_version": ..., "torch_version": ..., "weights": "model.safetensors",
                         "weights_sha256": ...}

Each file is written to a temporary file in the same directory and moved into place with
:func:`os.replace` (:mod:`fgad._io`), weights first; a reader that finds a ``config.json`` whose
``weights_sha256`` does not match the weights (a torn write, a truncated download, an edited file)
refuses to load.
Only the safetensors format is read: no pickle, so loading an untrusted checkpoint cannot run code.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from fgad._io import atomic_path, atomic_write_text

__all__ = [
    "CONFIG_NAME",
    "FORMAT_VERSION",
    "WEIGHTS_NAME",
    "Checkpoint",
    "apply_checkpoint",
    "read_checkpoint",
    "save_pretrained",
]

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
#: Version of the checkpoint layout; a reader refuses a newer one.
FORMAT_VERSION = 1
_METADATA_KEY = "fgad_config"
_MAX_LISTED = 5


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint read from disk (tensors on the CPU).

    Attributes:
        path: the weights file.
        config: the saved config: at least ``name`` (str) and ``kwargs`` (dict).
        tensors: the state dict.
    """

    path: Path
    config: dict[str, Any]
    tensors: dict[str, torch.Tensor]


def model_config(model: nn.Module) -> dict[str, Any]:
    """Return ``model.config`` checked to be ``{"name": str, "kwargs": dict}`` and JSON-serialisable.

    Raises:
        ValueError: the model has no such config.
    """
    config = getattr(model, "config", None)
    if not (
        isinstance(config, Mapping)
        and isinstance(config.get("name"), str)
        and isinstance(config.get("kwargs"), Mapping)
    ):
        raise ValueError(
            f"{type(model).__name__} has no config {{'name': str, 'kwargs': dict}}; build it with "
            "fgad.models.create_model (or set model.config) before saving"
        )
    try:
        json.dumps(config["kwargs"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"model.config['kwargs'] must be JSON-serialisable: {exc}") from None
    return {"name": config["name"], "kwargs": dict(config["kwargs"])}


def save_pretrained(model: nn.Module, directory: str | os.PathLike[str]) -> Path:
    """Write ``model`` to ``directory`` as ``model.safetensors`` + ``config.json``, atomically.

    The directory is created if needed; existing checkpoint files in it are replaced. Tensors are
    saved in the model's dtype, moved to the CPU and made contiguous (a ``channels_last`` model
    loads back in the default memory format).

    Args:
        model: a model from :func:`fgad.models.create_model` (anything with a ``config`` dict
            holding the registered ``name`` and JSON-serialisable ``kwargs``).
        directory: the checkpoint directory.

    Returns:
        The directory as a :class:`pathlib.Path`.

    Raises:
        ValueError: the model has no usable ``config``.

    Example:
        >>> import tempfile
        >>> from fgad.models import create_model, load_model
        >>> _ = torch.manual_seed(0)
        >>> model = create_model("unet_segmenter", base_width=2).eval()
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = save_pretrained(model, tmp)
        ...     sorted(p.name for p in path.iterdir())
        ...     restored = load_model(tmp).eval()
        ['config.json', 'model.safetensors']
        >>> x = torch.rand(1, 6, 32, 32)
        >>> torch.equal(model(x), restored(x))
        True
    """
    config = model_config(model)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    full_config: dict[str, Any] = {
        "format": "fgad",
        "format_version": FORMAT_VERSION,
        "name": config["name"],
        "kwargs": config["kwargs"],
        "fgad_version": _fgad_version(),
        "torch_version": torch.__version__,
    }
    weights = directory / WEIGHTS_NAME
    with atomic_path(weights) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt", _METADATA_KEY: json.dumps(full_config)})
        digest = _sha256(tmp)
    full_config.update(weights=WEIGHTS_NAME, weights_sha256=digest)
    atomic_write_text(directory / CONFIG_NAME, json.dumps(full_config, indent=2, sort_keys=True) + "\n")
    return directory


def read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and verify a checkpoint: a directory from :func:`save_pretrained` or its weights file.

    For a directory, ``config.json`` gives the config and the weights' SHA-256 is checked against
    it. For a ``.safetensors`` file, the config comes from the file's own metadata (and a
    ``config.json`` next to it, if it names this file, is checked too).

    Raises:
        FileNotFoundError: nothing at ``path``.
        ValueError: not a safetensors file (fgad never unpickles ``.pt``/``.pth``/``.ckpt``), a
            corrupted file, a checksum mismatch, or a config without ``name``/``kwargs``.
    """
    path = Path(path)
    if path.is_dir():
        weights = path / WEIGHTS_NAME
        config_path: Path | None = path / CONFIG_NAME
        if not weights.is_file():
            raise FileNotFoundError(f"no {WEIGHTS_NAME} in checkpoint directory {path}")
    elif path.is_file():
        weights = path
        config_path = path.parent / CONFIG_NAME
    else:
        raise FileNotFoundError(f"no checkpoint at {path}")
    _sniff(weights)

    config: dict[str, Any] | None = None
    if config_path is not None and config_path.is_file():
        try:
            candidate = json.loads(config_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(
                f"{config_path} is not valid JSON ({exc}); the checkpoint is corrupted"
            ) from None
        if not isinstance(candidate, dict):
            raise ValueError(f"{config_path} must hold a JSON object, got {type(candidate).__name__}")
        if path.is_dir() or candidate.get("weights") == weights.name:
            config = candidate
    if config is not None and "weights_sha256" in config:
        digest = _sha256(weights)
        if digest != config["weights_sha256"]:
            raise ValueError(
                f"{weights} has SHA-256 {digest} but {config_path} records {config['weights_sha256']}: "
                "the weights are corrupted, truncated or were replaced"
            )

    try:
        with safe_open(str(weights), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{weights} is not a readable safetensors checkpoint: {exc}") from None
    if config is None:
        raw = metadata.get(_METADATA_KEY)
        if raw is None:
            raise ValueError(
                f"{weights} holds no fgad config (no {CONFIG_NAME} beside it and no "
                f"'{_METADATA_KEY}' metadata); it was not written by fgad.models.save_pretrained"
            )
        try:
            config = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{weights} has corrupted '{_METADATA_KEY}' metadata: {exc}") from None
    _check_config(config, config_path if path.is_dir() else weights)
    return Checkpoint(weights, config, tensors)


def apply_checkpoint(model: nn.Module, checkpoint: Checkpoint) -> nn.Module:
    """Copy ``checkpoint``'s tensors into ``model`` after checking every name and shape.

    Tensors are cast to the dtype of the model's tensors and copied to its device.

    Raises:
        ValueError: a missing or unexpected tensor name, or a shape that differs; the message names
            them, with the checkpoint's model name and kwargs next to the model's.
    """
    expected = model.state_dict()
    tensors = checkpoint.tensors
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    shapes = [
        f"{k}: checkpoint {tuple(tensors[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in tensors and tensors[k].shape != expected[k].shape
    ]
    if missing or unexpected or shapes:
        problems = []
        if shapes:
            problems.append(f"{len(shapes)} shape mismatch(es): " + "; ".join(shapes[:_MAX_LISTED]))
        if missing:
            problems.append(f"{len(missing)} tensor(s) missing from the checkpoint: {_listed(missing)}")
        if unexpected:
            problems.append(
                f"{len(unexpected)} unexpected tensor(s) in the checkpoint: {_listed(unexpected)}"
            )
        mine = getattr(model, "config", None)
        mine_desc = (
            f"{mine.get('name')!r} {mine.get('kwargs')}"
            if isinstance(mine, Mapping)
            else type(model).__name__
        )
        raise ValueError(
            f"checkpoint {checkpoint.path} holds model {checkpoint.config['name']!r} "
            f"{checkpoint.config['kwargs']} and does not fit model {mine_desc}: " + ". ".join(problems)
        )
    model.load_state_dict(tensors, strict=True)
    return model


def _check_config(config: object, source: Path | None) -> None:
    if not (
        isinstance(config, dict)
        and isinstance(config.get("name"), str)
        and isinstance(config.get("kwargs"), dict)
    ):
        raise ValueError(f"{source}: checkpoint config must hold 'name' (str) and 'kwargs' (object)")
    version = config.get("format_version", FORMAT_VERSION)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{source}: checkpoint format_version {version!r} is newer than this fgad reads "
            f"({FORMAT_VERSION}); upgrade fgad"
        )


def _sniff(weights: Path) -> None:
    """Reject anything but a safetensors file before parsing; name the problem for pickles."""
    size = weights.stat().st_size
    with open(weights, "rb") as f:
        head = f.read(9)
    if head[:2] == b"PK" or head[:1] == b"\x80":
        raise ValueError(
            f"{weights} is a torch.save/pickle file; fgad only loads safetensors checkpoints (loading a "
            "pickle can run arbitrary code). Convert trusted weights with "
            "safetensors.torch.save_file(torch.load(path, weights_only=True), 'model.safetensors')"
        )
    header_len = int.from_bytes(head[:8], "little") if len(head) >= 8 else -1
    if len(head) < 9 or head[8:9] != b"{" or header_len + 8 > size:
        raise ValueError(
            f"{weights} is not a safetensors file (bad or truncated header); the checkpoint is corrupted "
            "or was not written by fgad.models.save_pretrained"
        )


def _listed(names: list[str]) -> str:
    more = f" (+{len(names) - _MAX_LISTED} more)" if len(names) > _MAX_LISTED else ""
    return ", ".join(names[:_MAX_LISTED]) + more


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fgad_version() -> str:
    package = sys.modules.get("fgad")
    version = getattr(package, "__version__", None)
    if isinstance(version, str):
        return version
    try:
        from importlib.metadata import version as dist_version

        return dist_version("fgad")
    except Exception:
        return "unknown"
