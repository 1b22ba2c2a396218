"""Batched, reproducible synthetic-anomaly transforms.

Perlin masks (:class:`PerlinMask`), OpenCV-exact Otsu foregrounds (:func:`otsu_threshold`,
:class:`ForegroundMask`), per-sample texture ops (:class:`TextureAugment`, functional forms in
:mod:`fgad.augment.functional`) and the whole foreground-enhanced synthesis of Zhao et al. 2023
(:class:`AnomalySynthesizer`), and a registry of synthetic-anomaly methods behind that synthesizer's
call contract (:func:`create_synthesizer`, :func:`list_synthesizers`: ``fgad``, ``draem``,
``cutpaste``, ``cutpaste_scar``, ``nsa``, ``mixed``). Every random op samples a params object first
and applies it deterministically; ``op(..., params=op.last_params)`` replays a call. Every transform
that takes images takes a batch (B, C, H, W) or a single image (C, H, W) and returns the rank it was
given.

Adapters to other libraries, imported only when imported themselves (so ``import fgad.augment``
pulls in none of those libraries): :mod:`fgad.augment.kornia` (kornia augmentation classes over
fgad's ops) and :mod:`fgad.augment.transforms` (``SyntheticAnomaly``, a ``torchvision.transforms.v2``
transform).
"""

from . import functional
from .cutpaste import CutPaste, CutPasteParams, CutPasteScar, ScarParams
from .foreground import ForegroundCache, ForegroundMask, fill_holes, gray_levels, otsu_threshold
from .functional import (
    adjust_brightness,
    adjust_sharpness,
    autocontrast,
    equalize,
    posterize,
    solarize,
)
from .mixed import MixedParams, MixedSynthesizer
from .nsa import NaturalSyntheticAnomaly, NSAParams
from .perlin import PerlinMask, PerlinParams, perlin_noise
from .poisson import poisson_blend
from .registry import create_synthesizer, is_synthesizer, list_synthesizers, register_synthesizer
from .synthesizer import AnomalySynthesizer, ProceduralTextureParams, SynthesisParams, SynthesisResult
from .texture import TextureAugment, TextureParams

__all__ = [
    "AnomalySynthesizer",
    "CutPaste",
    "CutPasteParams",
    "CutPasteScar",
    "ForegroundCache",
    "ForegroundMask",
    "MixedParams",
    "MixedSynthesizer",
    "NSAParams",
    "NaturalSyntheticAnomaly",
    "PerlinMask",
    "PerlinParams",
    "ProceduralTextureParams",
    "ScarParams",
    "SynthesisParams",
    "SynthesisResult",
    "TextureAugment",
    "TextureParams",
    "adjust_brightness",
    "adjust_sharpness",
    "autocontrast",
    "create_synthesizer",
    "equalize",
    "fill_holes",
    "functional",
    "gray_levels",
    "is_synthesizer",
    "list_synthesizers",
    "otsu_threshold",
    "perlin_noise",
    "poisson_blend",
    "posterize",
    "register_synthesizer",
    "solarize",
]
