"""``create_model`` and ``load_model``: build registered models, optionally from a checkpoint."""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from fgad.models._registry import MODELS, build_model
from fgad.models.checkpoint import Checkpoint, apply_checkpoint, read_checkpoint
from fgad.models.detector import saved_kwargs

__all__ = ["create_model", "load_model"]


def create_model(name: str, *, checkpoint: str | os.PathLike[str] | None = None, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name``; ``kwargs`` override the variant's defaults.

    Args:
        name: a name from :func:`list_models` (``"fgad"``, ``"draem"``, ``"fgad_small"``, ...).
        checkpoint: a directory written by :func:`save_pretrained` or its ``model.safetensors``.
            When the checkpoint was saved from the same ``name``, its saved kwargs become the
            defaults (so ``create_model("fgad", checkpoint=d)`` rebuilds the saved width); explicit
            ``kwargs`` still win, and a shape they change is reported as a mismatch.
        **kwargs: constructor arguments, e.g. ``base_width``, ``in_channels``, ``smoothing_kernel``,
            ``device``, ``dtype``.

    Returns:
        The model, with ``model.config == {"name": name, "kwargs": {...}}``: in training mode (as
        ``nn.Module`` constructors leave it) when built fresh, in eval mode (ready for inference,
        like :func:`load_model`'s) when built from a ``checkpoint``; ``model.train()`` switches.

    Raises:
        KeyError: unknown ``name``; the message lists the closest registered names.
        ValueError: a checkpoint that is corrupted, not safetensors, or does not fit the model.

    Example:
        >>> model = create_model("fgad", base_width=16)
        >>> model.config["name"], model.ae_width, model.seg_width
        ('fgad', 16, 8)
        >>> sum(p.numel() for p in create_model("draem", device="meta").parameters())
        97422725
    """
    ckpt = read_checkpoint(checkpoint) if checkpoint is not None else None
    return _create(name, ckpt, kwargs)


def load_model(path: str | os.PathLike[str], **kwargs: Any) -> nn.Module:
    """Rebuild the model saved at ``path`` by :func:`save_pretrained`, with its weights.

    Args:
        path: checkpoint directory or its ``model.safetensors`` file.
        **kwargs: extra constructor arguments, e.g. ``device``, ``dtype`` or ``smoothing_kernel``
            (an architecture argument that changes a shape is reported as a mismatch).

    Returns:
        The model in eval mode, ready for inference: BatchNorm uses the saved running statistics
        (in training mode it would use each batch's statistics, so scores would differ from the
        saved model's, and update the running statistics). Call ``model.train()`` to fine-tune.

    Example:
        >>> import tempfile
        >>> from fgad.models import save_pretrained
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = save_pretrained(create_model("fgad", base_width=4), tmp)
        ...     load_model(tmp).training
        False

    Raises:
        KeyError: the saved model name is not registered (import the module that registers it).
        ValueError: a corrupted or foreign checkpoint.
    """
    ckpt = read_checkpoint(path)
    return _create(ckpt.config["name"], ckpt, kwargs)


def _create(name: str, ckpt: Checkpoint | None, kwargs: dict[str, Any]) -> nn.Module:
    entry = MODELS.get(name)
    if ckpt is not None and ckpt.config["name"] == name:
        kwargs = {**saved_kwargs(ckpt.config["kwargs"]), **kwargs}
    model = build_model(entry.factory, name, entry.defaults, kwargs)
    if ckpt is not None:
        apply_checkpoint(model, ckpt)
        model.eval()
    return model
