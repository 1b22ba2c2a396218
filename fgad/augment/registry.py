"""The synthesizer registry: every synthetic-anomaly method by name, timm style.

Every registered synthesizer is an ``nn.Module`` with :class:`~fgad.augment.AnomalySynthesizer`'s call
contract: ``synth(images, textures=None, *, generator=None, params=None, foreground=None)`` returns a
:class:`~fgad.augment.SynthesisResult` (``image``, ``target``, ``mask``, ``label``, ``params``,
``foreground``); each takes ``foreground`` (``"auto"``, ``"otsu"``, a ``ForegroundMask`` or ``None``)
and ``anomaly_prob`` as keyword arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from .._registry import Registry
from .synthesizer import AnomalySynthesizer

__all__ = [
    "SYNTHESIZERS",
    "create_synthesizer",
    "is_synthesizer",
    "list_synthesizers",
    "register_synthesizer",
]

#: Every registered synthesizer factory; populated when :mod:`fgad.augment` is imported.
SYNTHESIZERS: Registry[nn.Module] = Registry("synthesizer")


def register_synthesizer(
    factory: Callable[..., nn.Module] | None = None, /, *, name: str | None = None, **defaults: Any
) -> Any:
    """Register a synthesizer factory under ``name`` (default: the function's name); a decorator.

    ``defaults`` are keyword arguments applied before the caller's in :func:`create_synthesizer`. The
    factory must return an ``nn.Module`` with :class:`~fgad.augment.AnomalySynthesizer`'s call
    contract and accept ``foreground`` and ``anomaly_prob``.

    Raises:
        ValueError: the name is already registered.
    """
    if factory is None:
        return SYNTHESIZERS.register(name=name, **defaults)
    return SYNTHESIZERS.register(name=name, **defaults)(factory)


def create_synthesizer(name: str, **kwargs: Any) -> nn.Module:
    """Build the synthesizer registered as ``name``; ``kwargs`` override its defaults.

    Example:
        >>> synth = create_synthesizer("cutpaste", foreground=None, anomaly_prob=1.0)
        >>> type(synth).__name__
        'CutPaste'

    Raises:
        KeyError: unknown name (the message lists the closest registered names).
    """
    return SYNTHESIZERS.create(name, **kwargs)


def list_synthesizers(pattern: str = "*") -> list[str]:
    """Sorted names of the registered synthesizers that match the fnmatch ``pattern``.

    Example:
        >>> list_synthesizers("cutpaste*")
        ['cutpaste', 'cutpaste_scar']
    """
    return SYNTHESIZERS.list(pattern)


def is_synthesizer(name: str) -> bool:
    """Whether ``name`` is a registered synthesizer."""
    return name in SYNTHESIZERS


@register_synthesizer(name="fgad")
def _fgad(**kwargs: Any) -> nn.Module:
    """Perlin mask on the foreground, filled with an altered texture (Zhao et al. 2023)."""
    return AnomalySynthesizer(**kwargs)


@register_synthesizer(name="draem", foreground=None)
def _draem(**kwargs: Any) -> nn.Module:
    """DRAEM's Perlin + texture synthesis, anomalies anywhere (Zavrtanik et al. 2021)."""
    return AnomalySynthesizer(**kwargs)
