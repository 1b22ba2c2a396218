"""The model registry (fgad's one :class:`fgad._registry.Registry` of network factories) and its builder.

:func:`build_model` builds every registered model and :func:`set_config` is the one writer of a
model's ``config``, ``{"name": registered name, "kwargs": constructor arguments}``, the record that
:func:`fgad.models.save_pretrained` saves and :func:`fgad.models.load_model` rebuilds from.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast, overload

from torch import nn

from fgad._registry import Registry

__all__ = ["MODELS", "PLACEMENT", "build_model", "is_model", "list_models", "register_model", "set_config"]

ModelT = TypeVar("ModelT", bound=nn.Module)
FactoryT = TypeVar("FactoryT", bound=Callable[..., nn.Module])

#: Every registered model factory; populated when :mod:`fgad.models` is imported.
MODELS: Registry[nn.Module] = Registry("model")

#: Constructor arguments that place a model (where, in which dtype); never part of its config.
PLACEMENT = ("device", "dtype")


@overload
def register_model(factory: FactoryT, /) -> FactoryT: ...


@overload
def register_model(
    factory: None = None, /, *, name: str | None = None, **defaults: Any
) -> Callable[[FactoryT], FactoryT]: ...


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


def build_model(
    factory: Callable[..., ModelT], name: str, defaults: Mapping[str, Any], kwargs: Mapping[str, Any]
) -> ModelT:
    """Build ``factory(**{**defaults, **kwargs})`` and record its config under ``name``.

    The built-in entrypoints call it with their class and variant defaults, and
    :func:`fgad.models.create_model` with the registered factory, so the config of a registered model
    is written here only. The recorded kwargs are the model's own (``model.config["kwargs"]``, the
    arguments its constructor records), or for a model without them the merged keyword arguments less
    the placement ones (``device``, ``dtype``); when those are not JSON-serialisable nothing is
    recorded (:func:`fgad.models.save_pretrained` then says why the model cannot be saved).

    Example:
        >>> from fgad.models import AnomalyDetector
        >>> defaults = {"attention": "eca", "base_width": 32}
        >>> model = build_model(AnomalyDetector, "fgad_small", defaults, {"device": "meta"})
        >>> model.config["name"], model.config["kwargs"]["base_width"]
        ('fgad_small', 32)
    """
    merged = {**defaults, **kwargs}
    model = factory(**merged)
    own = getattr(model, "config", None)
    if isinstance(own, dict) and isinstance(own.get("kwargs"), dict):
        set_config(model, name, own["kwargs"])
        return model
    plain = {k: v for k, v in merged.items() if k not in PLACEMENT}
    try:
        json.dumps(plain)
    except (TypeError, ValueError):
        return model
    set_config(model, name, plain)
    return model


def set_config(model: nn.Module, name: str, kwargs: Mapping[str, Any]) -> None:
    """Set ``model.config = {"name": name, "kwargs": {...}}``; a model that refuses it is left as it is.

    The one writer of a model's config: fgad's constructors record their default name and their
    arguments with it, and :func:`build_model` the registered name.
    """
    try:
        cast(Any, model).config = {"name": name, "kwargs": dict(kwargs)}
    except (AttributeError, TypeError):
        return
