"""Batched, reproducible synthetic-anomaly transforms.

Perlin masks (:class:`PerlinMask`), OpenCV-exact Otsu foregrounds (:func:`otsu_threshold`,
:class:`ForegroundMask`), per-sample texture ops (:class:`TextureAugment`, functional forms in
:mod:`fgad.augment.functional`) and the whole foreground-enhanced synthesis of Zhao et al. 2023
(:class:`AnomalySynthesizer`). Every random op samples a params object first and applies it
deterministically; ``op(..., params=op.last_params)`` replays a call. Every transform that takes
images takes a batch (B, C, H, W) or a single image (C, H, W) and returns the rank it was given.

Adapters to other libraries, imported only when imported themselves (so ``import fgad.augment``
pulls in none of those libraries): :mod:`fgad.augment.kornia` (kornia augmentation classes over
fgad's ops) and :mod:`fgad.augment.transforms` (``SyntheticAnomaly``, a ``torchvision.transforms.v2``
transform).
"""

from . import functional
from .foreground import ForegroundCache, ForegroundMask, fill_holes, gray_levels, otsu_threshold
from .functional import (
    adjust_brightness,
    adjust_sharpness,
    autocontrast,
    equalize,
    posterize,
    solarize,
)
from .perlin import PerlinMask, PerlinParams, perlin_noise
from .synthesizer import AnomalySynthesizer, ProceduralTextureParams, SynthesisParams, SynthesisResult
from .texture import TextureAugment, TextureParams

__all__ = [
    "AnomalySynthesizer",
    "ForegroundCache",
    "ForegroundMask",
    "PerlinMask",
    "PerlinParams",
    "ProceduralTextureParams",
    "SynthesisParams",
    "SynthesisResult",
    "TextureAugment",
    "TextureParams",
    "adjust_brightness",
    "adjust_sharpness",
    "autocontrast",
    "equalize",
    "fill_holes",
    "functional",
    "gray_levels",
    "otsu_threshold",
    "perlin_noise",
    "posterize",
    "solarize",
]
