"""fgad's networks, a registry to build them by name, and safe checkpoints.

Registered models (``list_models()``):

========================  ===================================================================
``autoencoder``           DRAEM's reconstructive autoencoder (base width 128), no attention
``eca_autoencoder``       the same with ECA after each encoder block (Zhao et al. 2023)
``unet_segmenter``        DRAEM's discriminative U-Net (6 input channels, width 64, 2 classes)
``fgad``                  detector: ``eca_autoencoder`` + ``unet_segmenter`` + mean-filter score
``draem``                 detector with the plain ``autoencoder`` (the ablation baseline)
``fgad_small``            ``fgad`` with widths 32 / 16, for CPUs
``draem_small``           ``draem`` with widths 32 / 16
========================  ===================================================================

Example:
    >>> import torch
    >>> from fgad.models import create_model, list_models
    >>> list_models("*fgad*")
    ['fgad', 'fgad_small']
    >>> model = create_model("fgad_small", base_width=8).eval()
    >>> model(torch.rand(1, 3, 64, 64)).score.shape
    torch.Size([1])
"""

from __future__ import annotations

# Importing the model files registers their variants (autoencoder.py, segmenter.py, detector.py).
from fgad.models._factory import create_model, load_model
from fgad.models._registry import is_model, list_models, register_model
from fgad.models.autoencoder import ReconstructiveAutoencoder
from fgad.models.checkpoint import save_pretrained
from fgad.models.detector import AnomalyDetector, DetectorOutput
from fgad.models.segmenter import UNetSegmenter

__all__ = [
    "AnomalyDetector",
    "DetectorOutput",
    "ReconstructiveAutoencoder",
    "UNetSegmenter",
    "create_model",
    "is_model",
    "list_models",
    "load_model",
    "register_model",
    "save_pretrained",
]
