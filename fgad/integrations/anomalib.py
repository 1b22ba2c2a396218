"""fgad as an anomalib model: ``anomalib.engine.Engine().fit(Fgad(), datamodule)``.

:class:`Fgad` is an ``AnomalibModule`` (anomalib 2.x) built from fgad's parts only: a registered
detector (:func:`fgad.create_model`), the :class:`~fgad.augment.AnomalySynthesizer` (run on the
device in ``training_step``) and :class:`~fgad.losses.FGADLoss`. It works with anomalib's data
modules (``Folder``, ``MVTecAD``, ...), its post-processor, evaluator, visualiser and export.

Needs the ``anomalib`` extra: ``pip install "fgad[anomalib]"``; anomalib is imported by this module
only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from anomalib import LearningType
from anomalib.data import Batch, InferenceBatch
from anomalib.metrics import Evaluator
from anomalib.models.components import AnomalibModule
from anomalib.post_processing import PostProcessor
from anomalib.pre_processing import PreProcessor
from anomalib.visualization import Visualizer
from torch import nn
from torchvision.transforms.v2 import Compose, Normalize, Resize

from fgad.augment import AnomalySynthesizer
from fgad.losses import FGADLoss
from fgad.models import AnomalyDetector, create_model
from fgad.models.init import init_weights_

__all__ = ["Fgad", "FgadInference"]


class FgadInference(nn.Module):
    """An fgad detector whose output is anomalib's ``InferenceBatch`` (what ``Fgad.model`` is).

    ``pred_score`` is the detector's ``score`` (B,) and ``anomaly_map`` its ``anomaly_map`` without the
    channel axis (B, H, W), the same values, before anomalib's post-processor normalises them.
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: torch.Tensor) -> InferenceBatch:
        out = self.detector(images)
        return InferenceBatch(pred_score=out.score, anomaly_map=out.anomaly_map[:, 0])


def _images(batch: Batch) -> torch.Tensor:
    if batch.image is None:
        raise ValueError("the batch holds no images")
    return batch.image


def _has_normalize(transform: object) -> bool:
    if isinstance(transform, Normalize):
        return True
    return any(_has_normalize(t) for t in getattr(transform, "transforms", ()) or ())


class Fgad(AnomalibModule):
    """fgad (DRAEM + ECA + foreground-restricted synthesis) as an anomalib model.

    Args:
        model: a registered fgad detector (``fgad.list_models()``: ``"fgad"``, ``"fgad_small"``,
            ``"draem"``, ...).
        model_kwargs: keyword arguments of the detector (e.g. ``{"base_width": 32}``).
        init: weight initialisation, ``"draem"`` (DRAEM's, fgad's default) or ``"torch"``.
        textures: anomaly-source textures: ``None`` (fgad's built-in procedural textures), a bank
            tensor (N, 3, h, w) in [0, 1], or a folder (e.g. DTD's ``images``) read once with
            :class:`fgad.data.TextureFolder` at the training image size.
        lr: Adam's learning rate (1e-4 in the paper).
        lr_milestones: fractions of the training steps at which the learning rate is multiplied by
            ``lr_gamma`` (the paper: 0.8 and 0.9, gamma 0.2).
        lr_gamma: that factor.
        ssim_weight: lambda of the reconstruction loss (Eq. 6).
        pre_processor, post_processor, evaluator, visualizer: anomalib's components (``True``:
            the defaults; the default pre-processor only resizes to 256 x 256: no ImageNet
            normalisation, which would move the images out of the [0, 1] that the synthesis and the
            detector need).
        **synthesizer_kwargs: :class:`~fgad.augment.AnomalySynthesizer`'s options (``foreground``,
            ``anomaly_prob``, ``texture_opacity``, ...).

    Convention:
        ``training_step`` draws synthetic anomalies on the batch's device from the global RNG (seed it
        with ``lightning.seed_everything``), runs the detector on them and returns fgad's total loss.
        Validation and test return ``InferenceBatch(pred_score, anomaly_map)`` through
        :class:`FgadInference`: exactly fgad's ``score`` and ``anomaly_map`` for the same weights
        (anomalib's post-processor normalises them afterwards). ``self.model.detector`` (or
        :attr:`detector`) is a plain fgad detector: ``fgad.save_pretrained(module.detector, path)``.

    Example:
        >>> module = Fgad(model="fgad_small", anomaly_prob=1.0)
        >>> module.learning_type.value, type(module.detector).__name__
        ('one_class', 'AnomalyDetector')
    """

    def __init__(
        self,
        model: str = "fgad",
        *,
        model_kwargs: dict[str, Any] | None = None,
        init: str = "draem",
        textures: torch.Tensor | str | os.PathLike[str] | None = None,
        lr: float = 1e-4,
        lr_milestones: Sequence[float] = (0.8, 0.9),
        lr_gamma: float = 0.2,
        ssim_weight: float = 1.0,
        pre_processor: PreProcessor | bool = True,
        post_processor: PostProcessor | bool = True,
        evaluator: Evaluator | bool = True,
        visualizer: Visualizer | bool = True,
        **synthesizer_kwargs: Any,
    ) -> None:
        super().__init__(
            pre_processor=pre_processor,
            post_processor=post_processor,
            evaluator=evaluator,
            visualizer=visualizer,
        )
        ignore = ["pre_processor", "post_processor", "evaluator", "visualizer"]
        if isinstance(textures, torch.Tensor):
            ignore.append("textures")
        self.save_hyperparameters(ignore=ignore)
        if any(not 0.0 < float(m) <= 1.0 for m in lr_milestones):
            raise ValueError(f"lr_milestones must be fractions of the steps in (0, 1], got {lr_milestones!r}")
        detector = init_weights_(create_model(model, **(model_kwargs or {})), init)
        if not isinstance(detector, AnomalyDetector):
            raise ValueError(f"model must name an fgad detector (e.g. 'fgad', 'draem'), got {model!r}")
        self.model = FgadInference(detector)
        self.synthesizer = AnomalySynthesizer(**synthesizer_kwargs)
        self.loss = FGADLoss(ssim_weight=ssim_weight)
        self.lr = float(lr)
        self.lr_milestones = tuple(float(m) for m in lr_milestones)
        self.lr_gamma = float(lr_gamma)
        self._textures = textures
        self._texture_bank: torch.Tensor | None = None

    @property
    def detector(self) -> AnomalyDetector:
        """The fgad detector being trained (a plain ``AnomalyDetector``)."""
        return self.model.detector  # type: ignore[return-value]

    @classmethod
    def configure_pre_processor(cls, image_size: tuple[int, int] | None = None) -> PreProcessor:
        """Resize to ``image_size`` (default 256 x 256) with antialiasing; no normalisation."""
        return PreProcessor(transform=Compose([Resize(image_size or (256, 256), antialias=True)]))

    @property
    def learning_type(self) -> LearningType:
        """One-class: trained on normal images only."""
        return LearningType.ONE_CLASS

    @property
    def trainer_arguments(self) -> dict[str, Any]:
        """No gradient clipping, no sanity validation (its scores would be of untrained weights)."""
        return {"gradient_clip_val": 0, "num_sanity_val_steps": 0}

    def on_train_start(self) -> None:
        """Refuse a pre-processor that normalises: synthesis and detector need images in [0, 1]."""
        if self.pre_processor and _has_normalize(getattr(self.pre_processor, "transform", None)):
            raise ValueError(
                "Fgad needs images in [0, 1]: remove Normalize from the pre-processor's transform"
            )

    def _bank(self, images: torch.Tensor) -> torch.Tensor | None:
        if self._textures is None:
            return None
        if self._texture_bank is None or self._texture_bank.device != images.device:
            if isinstance(self._textures, torch.Tensor):
                bank = self._textures
            else:
                from fgad.data import TextureFolder

                size = (int(images.shape[-2]), int(images.shape[-1]))
                bank = TextureFolder(os.fspath(self._textures), image_size=size).load(images.device)
            self._texture_bank = bank.to(images.device, images.dtype)
        return self._texture_bank

    def training_step(self, batch: Batch, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Synthesise anomalies on the batch, reconstruct and segment them, return fgad's loss."""
        del args, kwargs
        images = _images(batch)
        synth = self.synthesizer(images, self._bank(images))
        out = self.detector(synth.image)
        loss = self.loss(synth.target, out.reconstruction, out.logits, synth.mask).total
        self.log("train_loss", loss.detach(), on_epoch=True, prog_bar=True, logger=True,
                 batch_size=images.shape[0])
        return {"loss": loss}

    def validation_step(self, batch: Batch, *args: Any, **kwargs: Any) -> Batch:  # type: ignore[override]
        """Scores and anomaly maps of the batch (fgad's, before anomalib's post-processing)."""
        del args, kwargs
        return batch.update(**self.model(_images(batch))._asdict())

    def configure_optimizers(self) -> Any:
        """Adam at ``lr``; the learning rate times ``lr_gamma`` at each milestone fraction of the steps."""
        optimizer = torch.optim.Adam(self.model.parameters(), lr=self.lr)
        total = int(self.trainer.estimated_stepping_batches)
        milestones = sorted({max(1, int(round(m * total))) for m in self.lr_milestones})
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=self.lr_gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
