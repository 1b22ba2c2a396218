"""fgad: self-supervised industrial anomaly detection.

Foreground-enhanced anomaly synthesis (Otsu foreground x Perlin mask) and a reconstructive
autoencoder with efficient channel attention, after Zhao et al. 2023, built on DRAEM.

The subpackages stand alone and are imported lazily, so ``from fgad.augment import
AnomalySynthesizer`` does not import the networks, and ``import fgad`` costs nothing until a name is
used::

    fgad.augment    synthetic anomalies (Perlin noise, Otsu foreground, texture ops)
    fgad.models     registry, autoencoders, U-Net segmenter, detectors, checkpoints
    fgad.losses     SSIM + L2 reconstruction loss, focal loss, the total loss
    fgad.metrics    exact AUROC, AP, AUPRO, F1-max and a batch Evaluator
    fgad.data       MVTec AD, BTAD, image folders, texture banks, the bundled demo data
    fgad.engine     fit / evaluate / predict
    fgad.export     ONNX export
    fgad.testing    hypothesis strategies and invariant checks for augmentations

Input checks: every entry point checks its tensors' structure; the value checks (images in [0, 1],
binary masks) cost one host synchronisation and can be switched off with ``fgad.set_validation(False)``
or, for one thread and one block, ``with fgad.validation(False): ...``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_SUBMODULES = ("augment", "data", "engine", "export", "losses", "metrics", "models", "testing")
_ATTRIBUTES = {
    "create_model": "models",
    "is_model": "models",
    "list_models": "models",
    "load_model": "models",
    "register_model": "models",
    "save_pretrained": "models",
    "AnomalySynthesizer": "augment",
    "FGADLoss": "losses",
    "Evaluator": "metrics",
    "TrainConfig": "engine",
    "evaluate": "engine",
    "fit": "engine",
    "predict": "engine",
    "set_validation": "_checks",
    "validation": "_checks",
}

__all__ = [
    "AnomalySynthesizer",
    "Evaluator",
    "FGADLoss",
    "TrainConfig",
    "__version__",
    "augment",
    "create_model",
    "data",
    "engine",
    "evaluate",
    "export",
    "fit",
    "is_model",
    "list_models",
    "load_model",
    "losses",
    "metrics",
    "models",
    "predict",
    "register_model",
    "save_pretrained",
    "set_validation",
    "testing",
    "validation",
]

if TYPE_CHECKING:  # pragma: no cover
    from fgad import augment, data, engine, export, losses, metrics, models, testing
    from fgad._checks import set_validation, validation
    from fgad.augment import AnomalySynthesizer
    from fgad.engine import TrainConfig, evaluate, fit, predict
    from fgad.losses import FGADLoss
    from fgad.metrics import Evaluator
    from fgad.models import create_model, is_model, list_models, load_model, register_model, save_pretrained


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f"fgad.{name}")
    elif name in _ATTRIBUTES:
        module = getattr(importlib.import_module(f"fgad.{_ATTRIBUTES[name]}"), name)
    else:
        raise AttributeError(f"module 'fgad' has no attribute {name!r}")
    globals()[name] = module
    return module


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
