"""The model registry: fgad's one :class:`fgad._registry.Registry` of network factories."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from fgad._registry import Registry

__all__ = ["MODELS", "is_model", "list_models", "register_model"]

#: Every registered model factory; populated when :mod:`fgad.models` is imported.
MODELS: Registry[nn.Module] = Registry("model")


def register_model(
    factory: Callable[..., nn.Module] | None = None, /, *, name: str | None = None, **defaults: Any
) -> Any:
    """Register a model factory under ``name`` (default: the function's name); usable as a decorator.

    ``defaults`` are keyword arguments applied before the caller's in :func:`create_model`. A factory
    should return an ``nn.Module`` whose constructor takes ``device=None, dtype=None``; to be saved
    with :func:`save_pretrained` the model needs a JSON-serialisable ``config`` (``create_model``
    fills ``config`` from the keyword arguments when the model does not set it).

    Usage::

        @register_model
        def my_detector(**kwargs):
            return AnomalyDetector(**{"ae_width": 48, "seg_width": 24, **kwargs})

        @register_model(name="wide_fgad", base_width=192)
        def _wide(**kwargs):
            return AnomalyDetector(**kwargs)

    Raises:
        ValueError: the name is already registered.
    """
    if factory is None:
        return MODELS.register(name=name, **defaults)
    return MODELS.register(name=name, **defaults)(factory)


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of the registered models that match the fnmatch ``pattern``.

    Example:
        >>> list_models("*autoencoder")
        ['autoencoder', 'eca_autoencoder']
    """
    return MODELS.list(pattern)


def is_model(name: str) -> bool:
    """Whether ``name`` is a registered model.

    Example:
        >>> is_model("fgad"), is_model("resnet50")
        (True, False)
    """
    return name in MODELS


def named(model: nn.Module, name: str) -> nn.Module:
    """Set ``model.config["name"]`` to the registered ``name`` (used by the built-in factories)."""
    config = getattr(model, "config", None)
    if isinstance(config, dict):
        config["name"] = name
    return model
