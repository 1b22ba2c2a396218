"""``fit``: train a detector from a :class:`TrainConfig`, with checkpoints, validation and resume.

Run directory layout (``config.output``)::

    config.json            {"config": TrainConfig dict, "calibration": {...} | null, "validation": ...}
    log.csv                one row per epoch: losses, learning rate, validation metrics
    tensorboard/           TensorBoard events (only when the tensorboard package is installed)
    checkpoints/last.pt    full training state: at epoch ends as TrainConfig.checkpoint_every(_steps) say,
                           and at the end
    checkpoints/best.pt    weights with the best validation score
    model/                 final weights (fgad.models.save_pretrained: model.safetensors + config.json)
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import shutil
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from fgad._io import atomic_directory, atomic_write_text
from fgad.engine import distributed as dist_utils
from fgad.engine._common import (
    CHECKPOINT_DIR,
    MODEL_DIR,
    RUN_FILE,
    autocast,
    make_dataset,
    module_to,
)
from fgad.engine.checkpoint import (
    TrainState,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from fgad.engine.config import TrainConfig
from fgad.engine.logging import EpochLogger, format_summary

__all__ = [
    "ValidationSet",
    "calibrate_threshold",
    "fit",
    "predict_batches",
    "synthesis_seed",
    "validation_score",
]

LOSS_PARTS = ("reconstruction", "ssim", "l2", "segmentation")


def synthesis_seed(seed: int, rank: int) -> int:
    """Seed of rank ``rank``'s synthesis generator (distinct per rank, fixed per run seed).

    Example:
        >>> synthesis_seed(0, 0) != synthesis_seed(0, 1)
        True
    """
    return (int(seed) * 1_000_003 + 7919 * (int(rank) + 1)) % (2**63 - 1)


def validation_score(metrics: dict[str, float]) -> float:
    """The number that picks the best checkpoint: pixel AP + image AUROC (NaN counts as 0).

    Both are measured on the validation set (held-back good training images and synthetic
    anomalies made from them), never on the test split.

    Example:
        >>> validation_score({"pixel_ap": 0.5, "image_auroc": 0.75})
        1.25
    """
    total = 0.0
    for key in ("pixel_ap", "image_auroc"):
        value = float(metrics.get(key, float("nan")))
        total += 0.0 if math.isnan(value) else value
    return total


@dataclass
class ValidationSet:
    """Fixed validation tensors on the training device.

    Attributes:
        good: (N, C, H, W) float [0, 1] held-back good training images (threshold calibration).
        images: (M, C, H, W) the good images followed by ``val_copies`` synthetic versions of each.
        masks: (M, 1, H, W) {0, 1} synthetic anomaly masks (zeros for the good images).
        labels: (M,) {0, 1}.
    """

    good: torch.Tensor
    images: torch.Tensor
    masks: torch.Tensor
    labels: torch.Tensor

    @classmethod
    def build(
        cls,
        dataset: Any,
        config: TrainConfig,
        device: torch.device,
        textures: torch.Tensor | None,
        sources: torch.Tensor | None = None,
    ) -> ValidationSet:
        """Decode the held-back images and synthesise their anomalies once, with ``val_seed``
        (``sources``: the training images that ``nsa`` takes its patches from)."""
        from fgad.data import to_float

        good = to_float(torch.stack([dataset[i]["image"] for i in range(len(dataset))]), device)
        synth = module_to(make_synthesizer(config, anomaly_prob=1.0), device)
        textures = synthesis_textures(synth, textures, sources)
        gen = torch.Generator(device=device)
        gen.manual_seed(int(config.val_seed))
        images, masks = [good], [torch.zeros_like(good[:, :1])]
        labels = [torch.zeros(len(good), device=device)]
        with torch.no_grad():
            for _ in range(config.val_copies):
                res = synth(good, textures, generator=gen)
                images.append(res.image)
                masks.append(res.mask.to(good.dtype))
                labels.append(res.label.to(good.dtype))
        return cls(good, torch.cat(images), torch.cat(masks), torch.cat(labels))


@torch.no_grad()
def predict_batches(
    model: nn.Module, images: torch.Tensor, batch_size: int, amp: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Image scores (N,) and raw anomaly maps (N, 1, H, W) of a tensor of images, in eval mode."""
    was_training = model.training
    model.eval()
    scores, maps = [], []
    try:
        for start in range(0, len(images), batch_size):
            with autocast(images.device, amp):
                out = model(images[start : start + batch_size])
            scores.append(out.score.float())
            maps.append(out.anomaly_map.float())
    finally:
        model.train(was_training)
    return torch.cat(scores), torch.cat(maps)


def _validate(model: nn.Module, val: ValidationSet, batch_size: int, amp: bool) -> dict[str, float]:
    from fgad.metrics import Evaluator

    scores, maps = predict_batches(model, val.images, batch_size, amp)
    evaluator = Evaluator()
    evaluator.update(scores=scores.cpu(), labels=val.labels.cpu(), maps=maps.cpu(), masks=val.masks.cpu())
    metrics = {k: float(v) for k, v in evaluator.compute().items()}
    metrics["score"] = validation_score(metrics)
    return metrics


def calibrate_threshold(scores: torch.Tensor, quantile: float) -> float:
    """Decision threshold from held-back good images' scores: their ``quantile`` (1.0 = the max).

    An image whose score is strictly greater than the threshold is called anomalous, so with the
    default quantile 1.0 every held-back good image is called good.

    Example:
        >>> calibrate_threshold(torch.tensor([0.1, 0.4, 0.2]), 1.0)
        0.4000000059604645
    """
    return float(torch.quantile(scores.detach().double().cpu(), float(quantile)).float())


#: At most this many training images (evenly spaced) form the source bank of ``nsa``.
SOURCE_BANK_SIZE = 256


def make_synthesizer(config: TrainConfig, *, anomaly_prob: float | None = None) -> torch.nn.Module:
    """The config's synthetic-anomaly method (``synthesizer``, ``synthesizer_kwargs``) with its
    ``foreground`` and ``anomaly_prob`` (or the given ``anomaly_prob``)."""
    from fgad.augment import create_synthesizer

    prob = config.anomaly_prob if anomaly_prob is None else anomaly_prob
    return create_synthesizer(
        config.synthesizer, foreground=config.foreground, anomaly_prob=prob, **config.synthesizer_kwargs
    )


def reads_sources(synth: torch.nn.Module) -> bool:
    """Whether ``synth`` takes patches from a bank of normal images (``nsa``, or a mixture with it)."""
    from fgad.augment import MixedSynthesizer, NaturalSyntheticAnomaly

    if isinstance(synth, MixedSynthesizer):
        return any(isinstance(m, NaturalSyntheticAnomaly) for m in synth.synthesizers)
    return isinstance(synth, NaturalSyntheticAnomaly)


def synthesis_textures(
    synth: torch.nn.Module, textures: torch.Tensor | None, sources: torch.Tensor | None
) -> Any:
    """What ``synth`` takes as ``textures``: the texture bank, the source bank of normal images for
    ``nsa``, or one of them per synthesizer of a mixture."""
    from fgad.augment import MixedSynthesizer, NaturalSyntheticAnomaly

    if isinstance(synth, MixedSynthesizer):
        return {
            name: sources if isinstance(module, NaturalSyntheticAnomaly) else textures
            for name, module in zip(synth.names, synth.synthesizers, strict=True)
        }
    return sources if isinstance(synth, NaturalSyntheticAnomaly) else textures


def source_bank(dataset: Any, device: torch.device, limit: int = SOURCE_BANK_SIZE) -> torch.Tensor:
    """Up to ``limit`` training images (evenly spaced, decoded once) as a float bank on ``device``."""
    from fgad.data import to_float

    count = len(dataset)
    picks = sorted({round(i * (count - 1) / max(limit - 1, 1)) for i in range(min(limit, count))})
    return to_float(torch.stack([dataset[i]["image"] for i in picks]), device)


def _known_foreground(
    batch: dict[str, Any], images: torch.Tensor, synth: Any, cache: Any
) -> torch.Tensor | None:
    """The batch's foreground when it is known before synthesis: the data set's own masks (when the
    synthesizer restricts anomalies at all), else the per-image cache, else None (computed per step)."""
    if synth.foreground_mask is None:
        return None
    if "foreground" in batch:
        return batch["foreground"].to(images.device, non_blocking=True).bool()
    if cache is not None:
        return cache(batch["path"], images)
    return None


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002  (seeds third-party users of the global RNG)
    torch.manual_seed(seed)


def _bare(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _save_pretrained_atomic(model: nn.Module, target: Path) -> None:
    """save_pretrained into a temporary folder, then swap it into place."""
    from fgad.models import save_pretrained

    with atomic_directory(target) as tmp:
        save_pretrained(model, tmp)


def _write_run_file(run_dir: Path, config: TrainConfig, **sections: Any) -> None:
    import json

    from fgad import __version__

    payload = {"config": config.to_dict(), "fgad_version": __version__, **sections}
    atomic_write_text(run_dir / RUN_FILE, json.dumps(payload, indent=2) + "\n")


def _progress(total: int, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="train", unit="step", disable=not enabled)


@contextlib.contextmanager
def _range_checks(device: torch.device) -> Iterator[None]:
    """Switch off host-synchronising range checks in the hot loop on accelerators."""
    from fgad._checks import validation

    if device.type == "cpu":
        yield
    else:
        with validation(False):
            yield


def fit(
    config: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Train a detector; returns the run directory.

    Args:
        config: the run (see :class:`TrainConfig`; :func:`fgad.engine.get_preset` for recipes).
        resume: continue from ``<output>/checkpoints/last.pt`` when it exists (model, optimizer,
            scheduler, epoch, step, best score and random states); the run's saved config is used
            (differences from ``config`` other than device / num_workers are warned about).
            Without a checkpoint the run starts from scratch.
        overwrite: start from scratch even if ``<output>`` holds a checkpoint (its checkpoints,
            log and model are replaced). Without ``resume`` or ``overwrite`` such a folder is an
            error, so a finished run is never clobbered by accident.
        progress: show a tqdm progress bar and print a summary table (rank 0 only).

    Returns:
        ``Path(config.output)``, holding ``config.json`` (with the calibrated decision threshold),
        ``log.csv``, ``checkpoints/`` and the final ``model/`` (loadable with
        ``fgad.models.load_model``).

    Raises:
        FileExistsError: ``output`` holds a checkpoint and neither ``resume`` nor ``overwrite``.
        ValueError: empty training set, or a batch size larger than the training images per process.

    Convention:
        Training step: uint8 batch -> device -> float [0, 1] (``fgad.data.to_float``) ->
        the config's synthesizer on the device with a seeded ``torch.Generator`` on that device (one
        per rank, :func:`synthesis_seed`) -> ``model(I_A)`` -> ``FGADLoss(I, I_r, logits, M)`` ->
        Adam -> ``MultiStepLR`` stepped every optimizer step (milestones = fractions of all steps).
        Data order: ``DistributedSampler(shuffle=True, seed=config.seed)`` with ``set_epoch`` (also
        for one process), so epoch ``e``'s order depends only on the seed and ``e``. On the CPU
        two runs with the same config and the same number of torch threads give the same losses
        and weights, and a run resumed from a checkpoint ends with the same weights as an
        uninterrupted one (another thread count changes the order of floating-point sums, so its
        run differs after a few steps).
        ``checkpoints/last.pt`` is written at epoch ends (see ``TrainConfig.checkpoint_every`` and
        ``checkpoint_every_steps``) and after the last epoch; a resumed run continues exactly.
        Validation (rank 0, every ``validation_interval`` epochs and after the last one) uses only
        the held-back good training images and their synthetic anomalies; the checkpoint with the
        best :func:`validation_score` is ``checkpoints/best.pt``.
        The decision threshold is :func:`calibrate_threshold` of the final model's image scores on
        the held-back good images, stored in ``config.json`` under ``calibration``.
        Distributed (torchrun): DDP, each rank trains on its shard with ``batch_size`` images per
        step; only rank 0 validates and writes files.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    info = dist_utils.setup(config.device)
    try:
        return _fit(config, info, resume=resume, overwrite=overwrite, progress=progress)
    finally:
        dist_utils.cleanup()


@dataclass
class _Run:
    """The run being trained: its config (the saved one when resuming), processes, folder and the
    checkpoint it resumes from (None for a fresh start)."""

    config: TrainConfig
    info: dist_utils.DistInfo
    dir: Path
    state: TrainState | None

    @property
    def last_path(self) -> Path:
        return self.dir / CHECKPOINT_DIR / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.dir / CHECKPOINT_DIR / "best.pt"


@dataclass
class _Data:
    """The training data and the run's length in optimizer steps and epochs."""

    train_set: Any
    val_set: Any
    sampler: DistributedSampler[Any]
    loader: DataLoader[Any]
    textures: torch.Tensor | None
    steps_per_epoch: int
    total_steps: int
    total_epochs: int
    val_interval: int


@dataclass
class _Parts:
    """What a training step uses: the model (bare and as trained, e.g. DDP-wrapped), the anomaly
    synthesizer with its textures / sources and its generator, the loss and the optimisation."""

    model: nn.Module
    train_model: nn.Module
    synth: Any
    synth_textures: Any
    generator: torch.Generator
    foreground_cache: Any
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.MultiStepLR
    validation: ValidationSet | None
    device: torch.device
    amp: bool
    channels_last: bool

    @torch.no_grad()
    def synthesize(self, batch: dict[str, Any], images: torch.Tensor) -> Any:
        """The batch with synthetic anomalies (``image``, ``mask``, ``target``)."""
        known = _known_foreground(batch, images, self.synth, self.foreground_cache)
        return self.synth(images, self.synth_textures, generator=self.generator, foreground=known)

    def forward(self, inputs: torch.Tensor) -> Any:
        """The model's output for a training batch (memory format and autocast as configured)."""
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.amp):
            return self.train_model(inputs)


@dataclass
class _Loop:
    """The epoch loop's counters: what a checkpoint restores, and when ``last.pt`` was last written."""

    epoch: int = 0  # completed epochs
    step: int = 0  # completed optimizer steps
    best_score: float | None = None
    saved_epoch: int = 0  # epoch and step of the last ``last.pt`` (or of the run's start)
    saved_step: int = 0
    losses: dict[str, float] = field(default_factory=dict)  # mean losses of the last epoch


class _EpochLosses:
    """The loss terms summed over an epoch on the device (no host sync per step) and the progress bar."""

    def __init__(self, info: dist_utils.DistInfo, bar: Any, show: bool, epoch: int) -> None:
        self.sums = torch.zeros(1 + len(LOSS_PARTS), device=info.device, dtype=torch.float64)
        self.count = 0
        self.info, self.bar, self.show, self.epoch = info, bar, show, epoch

    def log(self, loss: Any, step: int) -> None:
        values = torch.stack([loss.total.detach(), *(loss.parts[k].detach() for k in LOSS_PARTS)])
        self.sums += values.to(torch.float64)
        self.count += 1
        self.bar.update(1)
        if self.show and (self.count == 1 or step % 10 == 0):
            self.bar.set_postfix(epoch=self.epoch + 1, loss=f"{float(values[0]):.4f}", refresh=False)

    def means(self) -> dict[str, float]:
        """Mean of every term over the epoch's steps of all processes."""
        if self.info.distributed:
            counts = torch.tensor([float(self.count)], device=self.sums.device, dtype=torch.float64)
            torch.distributed.all_reduce(self.sums)
            torch.distributed.all_reduce(counts)
            means = (self.sums / counts.clamp_min(1)).tolist()
        else:
            means = (self.sums / max(self.count, 1)).tolist()
        return dict(zip(("loss", *LOSS_PARTS), means, strict=True))


def _fit(
    config: TrainConfig, info: dist_utils.DistInfo, *, resume: bool, overwrite: bool, progress: bool
) -> Path:
    started = time.perf_counter()
    run = _resolve_run(config, info, resume=resume, overwrite=overwrite)
    _seed_everything(run.config.seed)
    data = _build_data(run)
    parts = _build_parts(run, data)
    loop = _restore(run, parts)
    parts.train_model = _distributed(parts.model, info)
    logger = _open_log(run, parts, loop)
    show = progress and info.is_main
    bar = _progress(data.total_steps, loop.step, show)
    try:
        with _range_checks(parts.device):
            for epoch in range(loop.epoch, data.total_epochs):
                if loop.step >= data.total_steps:
                    break
                epoch_start = time.perf_counter()
                loop.losses = _train_epoch(parts, data, loop, epoch, _EpochLosses(info, bar, show, epoch))
                loop.epoch = epoch + 1
                _end_epoch(run, data, parts, loop, logger, epoch_start)
    finally:
        bar.close()
        if logger is not None:
            logger.close()
    _finish(run, data, parts, loop, progress=progress, started=started)
    return run.dir


def _resolve_run(config: TrainConfig, info: dist_utils.DistInfo, *, resume: bool, overwrite: bool) -> _Run:
    """Resume, refuse or start again (every rank reads the same file system)."""
    run = _Run(config, info, Path(config.output), None)
    if run.last_path.is_file():
        if resume:
            run.state = load_checkpoint(run.last_path)
            saved = TrainConfig.from_dict(run.state.config)
            keep = {"device": config.device, "num_workers": config.num_workers, "output": config.output}
            diff = sorted(
                k for k, v in config.to_dict().items() if k not in keep and saved.to_dict().get(k) != v
            )
            if diff and info.is_main:
                warnings.warn(
                    f"resuming {run.dir} with its saved config; ignoring changed field(s) {diff}",
                    stacklevel=4,
                )
            run.config = saved.replace(**keep)
        elif not overwrite:
            raise FileExistsError(
                f"{run.dir} already holds a training checkpoint ({run.last_path}); pass resume=True "
                "(--resume) to continue it or overwrite=True (--overwrite) to start again"
            )
    if run.state is None and info.is_main and overwrite:
        for stale in (run.dir / CHECKPOINT_DIR, run.dir / MODEL_DIR, run.dir / "log.csv"):
            if stale.is_dir():
                shutil.rmtree(stale)
            elif stale.exists():
                stale.unlink()
    dist_utils.barrier(info)
    return run


def _build_data(run: _Run) -> _Data:
    """Training / validation split, the sharded shuffled loader and the texture bank."""
    from fgad.data import TextureFolder

    config, info = run.config, run.info
    full = make_dataset(config.dataset, config.root, config.category, "train", config.image_size)
    if len(full) == 0:
        raise ValueError(f"no training images found for {config.dataset!r} at {config.root!r}")
    if config.val_fraction > 0 and len(full) >= 2:
        train_set, val_set = full.holdout(config.val_fraction, seed=config.val_seed)
    else:
        train_set, val_set = full, None
    per_rank = math.ceil(len(train_set) / info.world_size)
    if config.batch_size > per_rank:
        raise ValueError(
            f"batch_size {config.batch_size} is larger than the {per_rank} training images per process "
            f"({len(train_set)} images after holding back {0 if val_set is None else len(val_set)} for "
            f"validation, {info.world_size} process(es)); use a smaller batch_size"
        )
    sampler: DistributedSampler[Any] = DistributedSampler(
        train_set, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=config.seed
    )
    loader_gen = torch.Generator()
    loader_gen.manual_seed(config.seed)
    loader = DataLoader(
        train_set,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=config.num_workers,
        pin_memory=info.device.type == "cuda",
        drop_last=True,
        persistent_workers=config.num_workers > 0,
        generator=loader_gen,
    )
    steps_per_epoch = len(loader)
    textures = None
    if config.textures is not None:
        textures = TextureFolder(config.textures, image_size=config.image_size).load(device=info.device)
    return _Data(
        train_set=train_set,
        val_set=val_set,
        sampler=sampler,
        loader=loader,
        textures=textures,
        steps_per_epoch=steps_per_epoch,
        total_steps=config.total_steps(steps_per_epoch),
        total_epochs=config.total_epochs(steps_per_epoch),
        val_interval=config.validation_interval(steps_per_epoch),
    )


def _build_parts(run: _Run, data: _Data) -> _Parts:
    """Model (seeded initialisation), loss, synthesizer, optimizer, scheduler, synthesis generator and
    the fixed validation set, in this order (the order the random streams are drawn in)."""
    from fgad.losses import FGADLoss
    from fgad.models import create_model
    from fgad.models.init import init_weights_

    config, info, device = run.config, run.info, run.info.device
    torch.manual_seed(config.seed)
    model = init_weights_(create_model(config.model, **config.model_kwargs), config.init).to(device)
    channels_last = config.channels_last and device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    criterion = module_to(FGADLoss(ssim_weight=config.ssim_weight, focal_gamma=config.focal_gamma), device)
    synth: Any = module_to(make_synthesizer(config), device)
    sources = source_bank(data.train_set, device) if reads_sources(synth) else None
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=config.milestone_steps(data.steps_per_epoch), gamma=config.lr_gamma
    )
    generator = torch.Generator(device=device)
    generator.manual_seed(synthesis_seed(config.seed, info.rank))
    foreground_cache = None
    if config.cache_foreground and synth.foreground_mask is not None:
        from fgad.augment import ForegroundCache

        foreground_cache = ForegroundCache(synth.foreground_mask)
    validation = None
    if data.val_set is not None and info.is_main:
        validation = ValidationSet.build(data.val_set, config, device, data.textures, sources)
    return _Parts(
        model=model,
        train_model=model,
        synth=synth,
        synth_textures=synthesis_textures(synth, data.textures, sources),
        generator=generator,
        foreground_cache=foreground_cache,
        criterion=criterion,
        optimizer=optimizer,
        scheduler=scheduler,
        validation=validation,
        device=device,
        amp=config.amp and device.type == "cuda",
        channels_last=channels_last,
    )


def _restore(run: _Run, parts: _Parts) -> _Loop:
    """Load the resumed checkpoint into the parts and the random states; the loop's counters."""
    state, info = run.state, run.info
    if state is None:
        return _Loop()
    parts.model.load_state_dict(state.model)
    parts.optimizer.load_state_dict(state.optimizer)
    parts.scheduler.load_state_dict(state.scheduler)
    if info.is_main:
        print(f"fgad: resuming {run.dir} from epoch {state.epoch} (step {state.step})", file=sys.stderr)
    restore_rng_state(state.rng)
    if len(state.synthesis_rng) == info.world_size:
        parts.generator.set_state(state.synthesis_rng[info.rank])
    else:
        if info.is_main:
            warnings.warn(
                f"checkpoint was written by {len(state.synthesis_rng)} process(es), this run has "
                f"{info.world_size}; synthesis generators are re-seeded from (seed, rank, epoch)",
                stacklevel=4,
            )
        parts.generator.manual_seed(synthesis_seed(run.config.seed + state.epoch, info.rank))
    return _Loop(state.epoch, state.step, state.best_score, saved_epoch=state.epoch, saved_step=state.step)


def _distributed(model: nn.Module, info: dist_utils.DistInfo) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel under torchrun, else ``model`` itself."""
    if not info.distributed:
        return model
    device = info.device
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None
    )


def _open_log(run: _Run, parts: _Parts, loop: _Loop) -> EpochLogger | None:
    """Rank 0: the run folder, a fresh run's ``config.json`` and the per-epoch log; None elsewhere."""
    if not run.info.is_main:
        return None
    run.dir.mkdir(parents=True, exist_ok=True)
    if run.state is None:
        _write_run_file(run.dir, run.config, calibration=None, validation=None)
    columns = ["lr", "loss", *LOSS_PARTS, "seconds"]
    if parts.validation is not None:
        columns += ["val_image_auroc", "val_pixel_auroc", "val_pixel_ap", "val_score"]
    return EpochLogger(run.dir, columns, resume_epoch=loop.epoch if run.state is not None else None)


def _train_epoch(
    parts: _Parts, data: _Data, loop: _Loop, epoch: int, losses: _EpochLosses
) -> dict[str, float]:
    """One pass over the loader (cut at the run's last step); the epoch's mean losses."""
    data.sampler.set_epoch(epoch)
    parts.train_model.train()
    for batch in data.loader:
        if loop.step >= data.total_steps:
            break
        _train_step(parts, batch, loop, losses)
    return losses.means()


def _train_step(parts: _Parts, batch: dict[str, Any], loop: _Loop, losses: _EpochLosses) -> None:
    """One optimizer step: augment -> model -> loss -> backward / step -> log."""
    from fgad.data import to_float

    res = parts.synthesize(batch, to_float(batch["image"], parts.device, non_blocking=True))
    out = parts.forward(res.image)
    loss = parts.criterion(res.target, out.reconstruction.float(), out.logits.float(), res.mask)
    parts.optimizer.zero_grad(set_to_none=True)
    loss.total.backward()
    parts.optimizer.step()
    parts.scheduler.step()
    loop.step += 1
    losses.log(loss, loop.step)


def _end_epoch(
    run: _Run, data: _Data, parts: _Parts, loop: _Loop, logger: EpochLogger | None, start: float
) -> None:
    """After an epoch: validation (and ``best.pt``), the log row, ``last.pt`` when due."""
    config, info = run.config, run.info
    final = loop.epoch == data.total_epochs or loop.step >= data.total_steps
    metrics = None
    if parts.validation is not None and (loop.epoch % data.val_interval == 0 or final):
        metrics = _validate(parts.model, parts.validation, config.batch_size, parts.amp)
        if loop.best_score is None or metrics["score"] > loop.best_score:
            loop.best_score = metrics["score"]
            save_checkpoint(run.best_path, _train_state(run, parts, loop, extra={"validation": metrics}))
    due = final or _checkpoint_due(config, loop)  # the same on every rank: a collective may depend on it
    synthesis_states = dist_utils.all_gather_objects(info, parts.generator.get_state()) if due else None
    if logger is not None:
        row: dict[str, Any] = {"lr": parts.optimizer.param_groups[0]["lr"], **loop.losses}
        row["seconds"] = round(time.perf_counter() - start, 3)
        if parts.validation is not None:
            for key in ("image_auroc", "pixel_auroc", "pixel_ap", "score"):
                row[f"val_{key}"] = None if metrics is None else metrics.get(key)
        logger.log(loop.epoch, loop.step, row)
        if synthesis_states is not None:
            extra = {"validation": metrics, "losses": loop.losses}
            save_checkpoint(run.last_path, _train_state(run, parts, loop, synthesis_states, extra=extra))
    if due:
        loop.saved_epoch, loop.saved_step = loop.epoch, loop.step
    dist_utils.barrier(info)


def _checkpoint_due(config: TrainConfig, loop: _Loop) -> bool:
    """Whether ``last.pt`` is written at this epoch end (before the last one): once at least
    ``checkpoint_every`` epochs and ``checkpoint_every_steps`` optimizer steps (when not None) have
    passed since the last write or the run's start."""
    if loop.epoch - loop.saved_epoch < config.checkpoint_every:
        return False
    every_steps = config.checkpoint_every_steps
    return every_steps is None or loop.step - loop.saved_step >= every_steps


def _train_state(
    run: _Run,
    parts: _Parts,
    loop: _Loop,
    synthesis_states: list[Any] | None = None,
    *,
    extra: dict[str, Any],
) -> TrainState:
    """The checkpoint of the current state. With ``synthesis_states`` (every rank's synthesis
    generator) it is a full, resumable state (``last.pt``); without, the weights, counters and score
    only (``best.pt``)."""
    full = synthesis_states is not None
    return TrainState(
        model=parts.model.state_dict(),
        optimizer=parts.optimizer.state_dict() if full else {},
        scheduler=parts.scheduler.state_dict() if full else {},
        epoch=loop.epoch,
        step=loop.step,
        rng=capture_rng_state() if full else {},
        synthesis_rng=list(synthesis_states or []),
        best_score=loop.best_score,
        config=run.config.to_dict(),
        model_config=dict(getattr(parts.model, "config", {})),
        extra=extra,
    )


def _finish(run: _Run, data: _Data, parts: _Parts, loop: _Loop, *, progress: bool, started: float) -> None:
    """Rank 0: the final weights (best or last) to ``model/``, the decision threshold and final
    validation to ``config.json``, and the summary table."""
    config, info = run.config, run.info
    if info.is_main:
        model, amp = parts.model, parts.amp
        chosen = "last"
        if config.final_weights == "best" and run.best_path.is_file():
            model.load_state_dict(load_checkpoint(run.best_path).model)
            chosen = "best"
        model.eval()
        calibration = None
        final_val = None
        if parts.validation is not None:
            scores, _ = predict_batches(model, parts.validation.good, config.batch_size, amp)
            calibration = {
                "threshold": calibrate_threshold(scores, config.threshold_quantile),
                "quantile": config.threshold_quantile,
                "num_images": len(scores),
                "scores": [float(s) for s in scores.cpu()],
                "method": "quantile of the final model's image scores on the held-back good training images",
            }
            final_val = _validate(model, parts.validation, config.batch_size, amp)
        export = model.to(memory_format=torch.contiguous_format) if parts.channels_last else model
        _save_pretrained_atomic(export, run.dir / MODEL_DIR)
        _write_run_file(
            run.dir,
            config,
            calibration=calibration,
            validation=final_val,
            final_weights=chosen,
            steps=loop.step,
            epochs=data.total_epochs,
        )
        if progress:
            summary: dict[str, Any] = {
                "run": os.fspath(run.dir),
                "steps": loop.step,
                "epochs": data.total_epochs,
                "weights": chosen,
                **{k: float(v) for k, v in loop.losses.items()},
            }
            if final_val is not None:
                summary.update({f"val_{k}": v for k, v in final_val.items()})
            if calibration is not None:
                summary["threshold"] = calibration["threshold"]
            summary["minutes"] = (time.perf_counter() - started) / 60
            print(format_summary(summary, title="training summary"), file=sys.stderr)
    dist_utils.barrier(info)
