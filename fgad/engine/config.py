"""Training configuration: one flat, JSON-serialisable dataclass and named presets.

A run is fully described by a :class:`TrainConfig`; :func:`fgad.engine.fit` writes it to
``<output>/config.json`` so that a run directory can be evaluated, resumed or reproduced from it alone.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["PRESETS", "TrainConfig", "get_preset", "list_presets"]

#: Data set layouts with a labelled test split (good and defective images, defect masks).
LABELLED_DATASETS = ("mvtec", "btad")
DATASET_KINDS = (*LABELLED_DATASETS, "folder")
#: ``TrainConfig.foreground`` values: a ForegroundMask method, or None (anomalies anywhere).
FOREGROUND_MODES = ("auto", "otsu", None)
FINAL_WEIGHTS = ("best", "last")
INIT_SCHEMES = ("draem", "torch")


@dataclass
class TrainConfig:
    """Everything a training run needs, as plain JSON-compatible values.

    The defaults are the paper's recipe (Zhao et al. 2023, after DRAEM): Adam, lr 1e-4, 700 epochs,
    lr x 0.2 at 80 % and 90 % of the run, batch 16, 256 x 256 input, lambda = 1, the ``fgad`` model
    with its default widths, initialised as DRAEM's training code does. See :func:`get_preset` for
    the ``cpu`` and ``draem_reference`` budgets.

    Args:
        dataset: ``"mvtec"`` (MVTec AD layout), ``"btad"`` (BTAD layout) or ``"folder"`` (a plain
            folder of good images, recursive; no test split, so no evaluation).
        root: the data set root (the folder that holds the category folders; for ``"folder"``, the
            image folder itself).
        category: the category sub-folder (``"hazelnut"``); ignored for ``"folder"``.
        image_size: square side or ``(H, W)``; images are resized to it when decoded.
        model: a registered model name (``fgad``, ``draem``, ``fgad_small``, ...).
        model_kwargs: keyword arguments that override the model variant's defaults
            (e.g. ``{"base_width": 32}``).
        init: weight initialisation before training: ``"draem"`` (DRAEM's training code:
            convolution weights N(0, 0.02), batch-norm scales N(1, 0.02); see
            :func:`fgad.models.init.init_weights_`) or ``"torch"`` (PyTorch's defaults); the
            README's results compare the two.
        batch_size: images per optimizer step *per process* (DDP multiplies it by the world size).
        lr: Adam learning rate.
        epochs: passes over the training images; used when ``max_steps`` is None.
        max_steps: optimizer-step budget; when set it wins over ``epochs`` (the last epoch is cut).
        lr_milestones: fractions of the run (of the total optimizer steps) where the learning rate is
            multiplied by ``lr_gamma``; (0.8, 0.9) of 700 epochs = epochs 560 and 630.
        lr_gamma: learning-rate factor at each milestone.
        weight_decay: Adam weight decay (0 in the paper).
        ssim_weight: lambda in L_rec = lambda * L_SSIM + L_2.
        focal_gamma: focusing parameter of the focal segmentation loss.
        foreground: where synthetic anomalies go: ``"auto"`` (the object found by colour, contrast
            and grey-level cues; the whole frame for textures; see fgad.augment.ForegroundMask),
            ``"otsu"`` (the paper's grey-level Otsu foreground) or None (plain DRAEM Perlin masks
            anywhere in the image). Foreground masks that come with the training images (a
            ``train/foreground`` folder, see fgad.data.MVTecAD) replace the computed ones.
        cache_foreground: compute each training image's foreground once, on the unrotated image,
            and rotate it with the image when the synthesizer rotates the image (instead of
            computing it on the rotated image at every step).
        anomaly_prob: fraction of training samples that receive a synthetic anomaly.
        synthesizer: the synthetic-anomaly method, a registered name
            (:func:`fgad.augment.list_synthesizers`: ``fgad``, ``draem``, ``cutpaste``,
            ``cutpaste_scar``, ``nsa``, ``mixed``). ``foreground`` and ``anomaly_prob`` apply to every
            method (``draem`` is ``fgad``'s synthesis; with ``foreground=None`` it is DRAEM's).
            ``nsa`` (and an ``nsa`` inside ``mixed``) takes its patches from the training images.
        synthesizer_kwargs: the method's own options (e.g. ``{"area_ratio": [0.02, 0.15]}`` for
            ``cutpaste``, ``{"synthesizers": {"fgad": 0.5, "nsa": 0.5}}`` for ``mixed``); not
            ``foreground`` or ``anomaly_prob``, which are the fields above.
        textures: a folder of anomaly-source textures (DTD layout or any folder), or None for the
            synthesizer's built-in procedural textures.
        val_fraction: fraction of the good *training* images held back for validation (never the
            test split). 0 disables validation: the last weights are final and no threshold is
            calibrated.
        val_copies: synthetic anomalous versions made of every held-back image (with
            ``val_seed``; made once, identical at every validation).
        val_seed: seed of the validation split and of the synthetic validation anomalies.
        val_every: validate every this many epochs; None = about ten validations in the run.
        threshold_quantile: quantile of the held-back good images' image scores used as the
            decision threshold of :func:`fgad.engine.predict` (1.0 = their maximum).
        final_weights: ``"best"`` (the best validation score) or ``"last"`` weights are exported to
            ``<output>/model``.
        seed: global seed (model initialisation, data order, synthesis generators).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        amp: bfloat16 autocast for the network forward on CUDA (ignored on the CPU); losses are
            computed in float32.
        channels_last: channels-last memory format on CUDA (ignored on the CPU).
        num_workers: DataLoader worker processes (decoding + resizing happen there).
        output: run directory (checkpoints, logs, final model, reports).
        checkpoint_every: write ``checkpoints/last.pt`` at an epoch end once at least this many epochs
            have passed since the last write (and always at the end of the run). Resuming is
            exact at any epoch end, so this only trades disk writes against work lost to a crash.
        checkpoint_every_steps: write ``last.pt`` only once at least this many optimizer steps have
            also passed since the last write (both conditions must hold; with the demo's 3 steps
            per epoch, 100 steps means every 34th epoch instead of every epoch). None: no step
            condition, i.e. every ``checkpoint_every`` epochs, the meaning before this field
            existed. A config dict that has ``checkpoint_every`` but not this key (a run's
            ``config.json`` or checkpoint written before the field existed) loads with None, so
            such a run resumes with its old schedule.

    Convention:
        ``to_dict`` / ``from_dict`` round-trip exactly through JSON (tuples become lists and back);
        unknown keys are an error so that a typo in a config file is not silently ignored.

    Example:
        >>> cfg = TrainConfig(root="data", category="bottle", max_steps=10)
        >>> TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
        True
        >>> cfg.replace(lr=1e-3).lr
        0.001
    """

    dataset: str = "mvtec"
    root: str = "."
    category: str | None = None
    image_size: int | tuple[int, int] = 256
    model: str = "fgad"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    init: str = "draem"
    batch_size: int = 16
    lr: float = 1e-4
    epochs: int = 700
    max_steps: int | None = None
    lr_milestones: tuple[float, ...] = (0.8, 0.9)
    lr_gamma: float = 0.2
    weight_decay: float = 0.0
    ssim_weight: float = 1.0
    focal_gamma: float = 2.0
    foreground: str | None = "auto"
    cache_foreground: bool = False
    anomaly_prob: float = 0.5
    synthesizer: str = "fgad"
    synthesizer_kwargs: dict[str, Any] = field(default_factory=dict)
    textures: str | None = None
    val_fraction: float = 0.1
    val_copies: int = 2
    val_seed: int = 1234
    val_every: int | None = None
    threshold_quantile: float = 1.0
    final_weights: str = "best"
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    num_workers: int = 2
    output: str = "runs/fgad"
    checkpoint_every: int = 1
    checkpoint_every_steps: int | None = 100

    def __post_init__(self) -> None:
        if isinstance(self.image_size, list):
            self.image_size = tuple(self.image_size)  # type: ignore[assignment]
        self.lr_milestones = tuple(float(m) for m in self.lr_milestones)
        if isinstance(self.root, os.PathLike):
            self.root = os.fspath(self.root)
        if isinstance(self.output, os.PathLike):
            self.output = os.fspath(self.output)
        if isinstance(self.textures, os.PathLike):
            self.textures = os.fspath(self.textures)
        self.validate()

    def validate(self) -> None:
        """Check every field; raise ValueError/TypeError naming the field and what was expected."""
        if self.dataset not in DATASET_KINDS:
            raise ValueError(f"dataset must be one of {DATASET_KINDS}, got {self.dataset!r}")
        if self.dataset in LABELLED_DATASETS and self.category is not None and not self.category:
            raise ValueError("category must be a non-empty folder name or None")
        size = self.image_size
        if isinstance(size, bool) or not (
            isinstance(size, int)
            or (isinstance(size, tuple) and len(size) == 2 and all(isinstance(s, int) for s in size))
        ):
            raise TypeError(f"image_size must be an int or a pair (H, W) of ints, got {size!r}")
        if min(_pair(size)) < 32:
            raise ValueError(f"image_size must be at least 32 pixels per side, got {size!r}")
        if self.init not in INIT_SCHEMES:
            raise ValueError(f"init must be one of {INIT_SCHEMES}, got {self.init!r}")
        if not isinstance(self.model_kwargs, dict):
            raise TypeError(f"model_kwargs must be a dict, got {type(self.model_kwargs).__name__}")
        _positive_int("batch_size", self.batch_size)
        _positive_int("epochs", self.epochs)
        if self.max_steps is not None:
            _positive_int("max_steps", self.max_steps)
        _positive_int("checkpoint_every", self.checkpoint_every)
        if self.checkpoint_every_steps is not None:
            _positive_int("checkpoint_every_steps", self.checkpoint_every_steps)
        _positive_int("val_copies", self.val_copies)
        if self.val_every is not None:
            _positive_int("val_every", self.val_every)
        if not (isinstance(self.num_workers, int) and self.num_workers >= 0):
            raise ValueError(f"num_workers must be an int >= 0, got {self.num_workers!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not all(0.0 < m <= 1.0 for m in self.lr_milestones) or list(self.lr_milestones) != sorted(
            self.lr_milestones
        ):
            raise ValueError(
                f"lr_milestones must be increasing fractions of the run in (0, 1], got {self.lr_milestones}"
            )
        if not 0.0 < self.lr_gamma <= 1.0:
            raise ValueError(f"lr_gamma must be in (0, 1], got {self.lr_gamma!r}")
        if self.weight_decay < 0 or self.ssim_weight < 0 or self.focal_gamma < 0:
            raise ValueError("weight_decay, ssim_weight and focal_gamma must be >= 0")
        if self.foreground not in FOREGROUND_MODES:
            raise ValueError(f"foreground must be one of {FOREGROUND_MODES}, got {self.foreground!r}")
        if not isinstance(self.cache_foreground, bool):
            raise TypeError(f"cache_foreground must be a bool, got {self.cache_foreground!r}")
        if not 0.0 <= self.anomaly_prob <= 1.0:
            raise ValueError(f"anomaly_prob must be in [0, 1], got {self.anomaly_prob!r}")
        from fgad.augment import is_synthesizer, list_synthesizers

        if not isinstance(self.synthesizer, str) or not is_synthesizer(self.synthesizer):
            raise ValueError(f"synthesizer must be one of {list_synthesizers()}, got {self.synthesizer!r}")
        if not isinstance(self.synthesizer_kwargs, dict):
            kind = type(self.synthesizer_kwargs).__name__
            raise TypeError(f"synthesizer_kwargs must be a dict, got {kind}")
        owned = sorted({"foreground", "anomaly_prob"} & set(self.synthesizer_kwargs))
        if owned:
            raise ValueError(
                f"synthesizer_kwargs must not set {owned}: use the TrainConfig field(s) of that name"
            )
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if not 0.0 <= self.threshold_quantile <= 1.0:
            raise ValueError(f"threshold_quantile must be in [0, 1], got {self.threshold_quantile!r}")
        if self.final_weights not in FINAL_WEIGHTS:
            raise ValueError(f"final_weights must be one of {FINAL_WEIGHTS}, got {self.final_weights!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise TypeError(f"seed must be an int, got {self.seed!r}")
        if not isinstance(self.device, str) or not self.device:
            raise TypeError(f"device must be a string like 'auto', 'cpu' or 'cuda:0', got {self.device!r}")

    # -- serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict (tuples as lists)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dict):
                value = json.loads(json.dumps(value))
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build from :meth:`to_dict` output; unknown keys raise ValueError (listing the known ones).

        Missing keys take their defaults, except ``checkpoint_every_steps`` next to a
        ``checkpoint_every`` (a dict written before that field existed), which is None.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"a TrainConfig dict must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s) {unknown}; known fields: {sorted(known)}")
        values = dict(data)
        if "checkpoint_every" in values and "checkpoint_every_steps" not in values:
            values["checkpoint_every_steps"] = None  # an old run keeps its per-epoch checkpoints
        return cls(**values)

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """The config as indented JSON; written atomically to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"
        if path is not None:
            from fgad._io import atomic_write_text

            atomic_write_text(path, text)
        return text

    @classmethod
    def from_json(cls, path_or_text: str | os.PathLike[str]) -> TrainConfig:
        """Read a JSON file (a TrainConfig dict, or a run's ``config.json`` with a ``"config"`` key)."""
        text = str(path_or_text)
        if not text.lstrip().startswith("{"):
            text = Path(path_or_text).read_text()
        data = json.loads(text)
        if "config" in data and isinstance(data["config"], dict):
            data = data["config"]
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (validated)."""
        return dataclasses.replace(self, **changes)

    # -- derived quantities ----------------------------------------------------------------------
    @property
    def size_hw(self) -> tuple[int, int]:
        """``image_size`` as ``(H, W)``."""
        return _pair(self.image_size)

    def total_steps(self, steps_per_epoch: int) -> int:
        """Optimizer steps in the whole run for a given number of steps per epoch."""
        _positive_int("steps_per_epoch", steps_per_epoch)
        if self.max_steps is not None:
            return self.max_steps
        return self.epochs * steps_per_epoch

    def total_epochs(self, steps_per_epoch: int) -> int:
        """Epochs in the whole run (the last one may be cut short by ``max_steps``)."""
        return math.ceil(self.total_steps(steps_per_epoch) / steps_per_epoch)

    def milestone_steps(self, steps_per_epoch: int) -> list[int]:
        """``lr_milestones`` converted to optimizer-step indices (rounded)."""
        total = self.total_steps(steps_per_epoch)
        return [max(1, round(m * total)) for m in self.lr_milestones]

    def validation_interval(self, steps_per_epoch: int) -> int:
        """Epochs between validations (``val_every`` or about ten validations per run)."""
        if self.val_every is not None:
            return self.val_every
        return max(1, math.ceil(self.total_epochs(steps_per_epoch) / 10))


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    return (int(size[0]), int(size[1]))


def _positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _paper(**overrides: Any) -> TrainConfig:
    """The paper's recipe: fgad (default widths), 256 x 256, batch 16, Adam 1e-4, 700 epochs,
    lr x 0.2 at 80 % / 90 % of the epochs, lambda = 1, and the paper's grey-level Otsu foreground
    (``foreground="otsu"``; the other presets use ``"auto"``), and the image score of the paper's
    evaluation (DRAEM's: the maximum of the mean-filtered map, ``score_method="smoothed_max"``)."""
    return TrainConfig(**{"foreground": "otsu", **overrides, "model_kwargs": _draem_score(overrides)})


def _draem_score(overrides: dict[str, Any]) -> dict[str, Any]:
    """``model_kwargs`` with DRAEM's image-score rule unless the overrides choose one."""
    return {"score_method": "smoothed_max", **dict(overrides.get("model_kwargs") or {})}


def _cpu(**overrides: Any) -> TrainConfig:
    """A CPU budget for small data sets such as the bundled demo (<= 10 min on 2 cores).

    ``fgad_small`` (the paper's architecture at autoencoder width 32 / segmenter width 16), 128 x 128
    input, batch 8, a budget of 400 optimizer steps (two thirds of the DRAEM reference budget,
    which took 13 minutes for 600 steps on 2 cores) at Adam lr 4e-4 with lr x 0.2 at 80 % / 90 %
    of them, a synthetic anomaly on every training sample (``anomaly_prob=1``), validation on 10 %
    of the good training images, one DataLoader worker.

    Why lr and anomaly_prob differ from the paper: the paper's lr 1e-4 and anomaly_prob 0.5 are
    tuned for ~35,000 steps. In 400 steps the segmenter often has not started to find the
    foreground-restricted anomalies (which cover about a third of the area of DRAEM's); the
    README's results section has the comparison.
    """
    base: dict[str, Any] = {
        "model": "fgad_small",
        "image_size": 128,
        "batch_size": 8,
        "max_steps": 400,
        "lr": 4e-4,
        "anomaly_prob": 1.0,
        "device": "cpu",
        "num_workers": 1,
        "output": "runs/fgad-cpu",
    }
    base.update(overrides)
    return TrainConfig(**base)


def _draem_reference(**overrides: Any) -> TrainConfig:
    """The budget of the DRAEM reference measurement: 128 x 128, autoencoder width 32, segmenter
    width 16, batch 8, 600 optimizer steps, Adam 1e-4 x 0.2 at 80 % / 90 % of the steps, seed 0.

    The method is fgad's (``fgad`` with Otsu foreground, an anomaly on every training sample as in
    the ``cpu`` preset); pass ``model="draem"``, ``foreground=None`` and ``anomaly_prob=0.5`` for
    DRAEM itself at the same budget. Images are scored with DRAEM's rule (``score_method=
    "smoothed_max"``), as in that measurement.
    """
    base: dict[str, Any] = {
        "model": "fgad",
        "model_kwargs": {"ae_width": 32, "seg_width": 16, "score_method": "smoothed_max"},
        "image_size": 128,
        "batch_size": 8,
        "max_steps": 600,
        "lr": 1e-4,
        "anomaly_prob": 1.0,
        "lr_milestones": (0.8, 0.9),
        "lr_gamma": 0.2,
        "seed": 0,
        "output": "runs/fgad-draem-reference",
    }
    base.update(overrides)
    return TrainConfig(**base)


PRESETS: dict[str, Callable[..., TrainConfig]] = {
    "cpu": _cpu,
    "draem_reference": _draem_reference,
    "paper": _paper,
}


def list_presets() -> list[str]:
    """Sorted preset names."""
    return sorted(PRESETS)


def get_preset(name: str, **overrides: Any) -> TrainConfig:
    """The preset ``name`` with ``overrides`` applied.

    Args:
        name: ``"paper"``, ``"cpu"`` or ``"draem_reference"`` (see each one's docstring in
            ``fgad.engine.config``).
        **overrides: TrainConfig fields that replace the preset's values.

    Raises:
        KeyError: unknown preset (the message lists the known ones).

    Example:
        >>> get_preset("paper").epochs, get_preset("cpu").image_size
        (700, 128)
    """
    try:
        factory = PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; known presets: {list_presets()}") from None
    return factory(**overrides)
