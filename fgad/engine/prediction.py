"""``predict``: anomaly maps, scores and decisions for new images; overlays and a CSV of scores."""

from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from fgad._io import atomic_write_bytes, atomic_write_text
from fgad.engine._common import autocast, find_run_dir, load_detector, read_run_file
from fgad.engine.distributed import resolve_device
from fgad.engine.report import save_overlay

__all__ = ["Prediction", "predict", "run_threshold"]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class Prediction:
    """The result for one image.

    Attributes:
        path: the input file.
        score: image anomaly score (max of the mean-filtered anomaly map).
        score_raw: max of the unsmoothed map.
        anomalous: ``score > threshold``, or None when no threshold is known.
        map_path: the saved anomaly map (``.npy``, float32 (H, W), unsmoothed) or None.
        overlay_path: the saved heatmap overlay PNG or None.
    """

    path: str
    score: float
    score_raw: float
    anomalous: bool | None
    map_path: str | None = None
    overlay_path: str | None = None


def run_threshold(model: PathLike) -> float | None:
    """The decision threshold calibrated by :func:`fgad.engine.fit` for the run that ``model`` is in.

    Returns ``config.json["calibration"]["threshold"]``: a quantile (``threshold_quantile``, default
    1.0 = the maximum) of the final model's image scores on the good training images held back for
    validation. None when the run had no validation images or ``model`` is not inside a run.
    """
    run_dir = find_run_dir(model)
    if run_dir is None:
        return None
    run = read_run_file(run_dir) or {}
    calibration = run.get("calibration") or {}
    value = calibration.get("threshold")
    return None if value is None else float(value)


def _gather_inputs(inputs: PathLike | Sequence[PathLike]) -> list[Path]:
    from fgad.data import is_image_file, list_images

    items = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
    if not items:
        raise ValueError("predict needs at least one image file or folder")
    files: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = list_images(p, recursive=True)
            if not found:
                raise FileNotFoundError(f"no image files found in folder {os.fspath(p)!r}")
            files.extend(found)
        elif p.is_file():
            if not is_image_file(p):
                raise ValueError(f"{os.fspath(p)!r} is not an image file (by its extension)")
            files.append(p)
        else:
            raise FileNotFoundError(f"no such image file or folder: {os.fspath(p)!r}")
    return files


def _unique_names(files: Sequence[Path]) -> list[str]:
    """File stems, made unique with the parent folder (and a counter) where stems collide."""
    names: list[str] = []
    seen: dict[str, int] = {}
    stems = [f.stem for f in files]
    for f, stem in zip(files, stems, strict=True):
        name = stem if stems.count(stem) == 1 else f"{f.parent.name}_{stem}"
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 0
        names.append(name)
    return names


def predict(
    model: PathLike | torch.nn.Module,
    inputs: PathLike | Sequence[PathLike],
    *,
    output: PathLike | None = None,
    threshold: float | None = None,
    image_size: int | tuple[int, int] | None = None,
    batch_size: int = 8,
    device: str = "auto",
    num_workers: int = 0,
    save_maps: bool = True,
    overlays: bool = True,
    amp: bool = True,
    progress: bool = True,
) -> list[Prediction]:
    """Score new images with a trained detector.

    Args:
        model: a run directory, a ``save_pretrained`` folder, a training checkpoint ``.pt`` or a
            model instance.
        inputs: an image file, a folder (read recursively) or a list of either.
        output: folder for ``scores.csv``, ``maps/<name>.npy`` and ``overlays/<name>.png``; None
            writes nothing (the predictions are only returned).
        threshold: image-score decision threshold; default: the run's calibrated threshold
            (:func:`run_threshold`), else None (no decision).
        image_size: input size; default: the run's training ``image_size`` (else 256).
        batch_size: images per forward pass.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        num_workers: DataLoader workers for decoding.
        save_maps: write each unsmoothed anomaly map as float32 ``.npy`` (H, W).
        overlays: write overlay PNGs: image | reconstruction | heatmap, with the score and decision.
        amp: bfloat16 autocast on CUDA.
        progress: tqdm bar.

    Returns:
        One :class:`Prediction` per input image, in input order (folders sorted).

    Convention:
        Images are decoded and resized exactly as for training (:class:`fgad.data.ImageFolder`).
        ``anomalous = score > threshold``. The threshold is never computed from the images being
        predicted. ``scores.csv`` columns: ``path, score, score_raw, threshold, anomalous``.

    Threshold outside a run:
        Only a run stores a calibrated threshold (``config.json["calibration"]``, written by
        :func:`fgad.engine.fit` at the end of training). A ``save_pretrained`` folder holds the
        model alone (name, kwargs, weights) and a training checkpoint ``.pt`` is written before the
        calibration, so for either one outside its run directory (a run's ``model/`` folder and
        ``checkpoints/*.pt`` do find their run) and for a model instance there is no default
        threshold: without ``threshold``, every ``anomalous`` is None and ``scores.csv`` leaves its
        ``threshold`` and ``anomalous`` columns empty.
    """
    from fgad.data import ImageFolder

    files = _gather_inputs(inputs)
    threshold, image_size = _run_defaults(model, threshold, image_size)
    dev = resolve_device(device)
    net = model.to(dev).eval() if isinstance(model, torch.nn.Module) else load_detector(model, dev)
    out_dir = None if output is None else Path(output)
    names = _unique_names(files)
    data = ImageFolder.from_paths(files, image_size=image_size)
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    results: list[Prediction] = []
    with torch.no_grad():
        for image, out, j in _score(net, loader, dev, amp and dev.type == "cuda", progress):
            index = len(results)
            score = float(out.score[j])
            map_path, overlay_path = _save_image_outputs(
                out_dir, names[index], image, out, j, save_maps=save_maps, overlays=overlays,
                score=score, threshold=threshold, caption=files[index].name,
            )  # fmt: skip
            results.append(
                Prediction(
                    path=os.fspath(files[index]),
                    score=score,
                    score_raw=float(out.score_raw[j]),
                    anomalous=None if threshold is None else score > threshold,
                    map_path=map_path,
                    overlay_path=overlay_path,
                )
            )
    if out_dir is not None:
        _write_scores(out_dir / "scores.csv", results, threshold)
    if progress:
        flagged = sum(1 for r in results if r.anomalous)
        decided = "no threshold" if threshold is None else f"threshold {threshold:.4g}: {flagged} anomalous"
        print(f"predicted {len(results)} image(s); {decided}", file=sys.stderr)
    return results


def _run_defaults(
    model: PathLike | torch.nn.Module, threshold: float | None, image_size: int | tuple[int, int] | None
) -> tuple[float | None, int | tuple[int, int]]:
    """``threshold`` and ``image_size`` as given, else the run's: its calibrated threshold
    (:func:`run_threshold`; None outside a run) and its training ``image_size`` (else 256)."""
    run_dir = None if isinstance(model, torch.nn.Module) else find_run_dir(model)
    if threshold is None and run_dir is not None:
        threshold = run_threshold(run_dir)
    if image_size is None:
        run = read_run_file(run_dir) if run_dir is not None else None
        size = (run or {}).get("config", {}).get("image_size", 256)
        image_size = tuple(size) if isinstance(size, list) else size
    return threshold, image_size


def _score(
    net: torch.nn.Module, loader: DataLoader, dev: torch.device, use_amp: bool, progress: bool
) -> Iterator[tuple[torch.Tensor, Any, int]]:
    """Each image of ``loader`` (a float tensor on ``dev``), its batch's detector output and its row
    in that batch; the caller holds ``torch.no_grad``."""
    from tqdm.auto import tqdm

    from fgad.data import to_float

    for batch in tqdm(loader, desc="predict", disable=not progress):
        images = to_float(batch["image"], dev)
        with autocast(dev, use_amp):
            out = net(images)
        for j in range(images.shape[0]):
            yield images[j], out, j


def _save_image_outputs(
    out_dir: Path | None,
    name: str,
    image: torch.Tensor,
    out: Any,
    j: int,
    *,
    save_maps: bool,
    overlays: bool,
    score: float,
    threshold: float | None,
    caption: str,
) -> tuple[str | None, str | None]:
    """Write row ``j`` of ``out``: ``maps/<name>.npy`` and ``overlays/<name>.png`` as asked; their
    paths (None where not written, or without ``out_dir``)."""
    map_path = overlay_path = None
    if out_dir is not None and save_maps:
        buf = io.BytesIO()
        np.save(buf, out.anomaly_map[j, 0].float().cpu().numpy().astype(np.float32))
        map_path = os.fspath(atomic_write_bytes(out_dir / "maps" / f"{name}.npy", buf.getvalue()))
    if out_dir is not None and overlays:
        target = out_dir / "overlays" / f"{name}.png"
        overlay_path = os.fspath(
            save_overlay(
                target,
                image,
                out.anomaly_map[j].float(),
                reconstruction=out.reconstruction[j].float(),
                score=score,
                threshold=threshold,
                caption=caption,
            )
        )
    return map_path, overlay_path


def _write_scores(path: Path, results: Sequence[Prediction], threshold: float | None) -> None:
    """``scores.csv``: ``path, score, score_raw, threshold, anomalous`` (the last two empty without a
    threshold), written atomically."""
    buf_csv = io.StringIO()
    writer = csv.writer(buf_csv, lineterminator="\n")
    writer.writerow(["path", "score", "score_raw", "threshold", "anomalous"])
    for r in results:
        writer.writerow(
            [
                r.path,
                f"{r.score:.9g}",
                f"{r.score_raw:.9g}",
                "" if threshold is None else f"{threshold:.9g}",
                "" if r.anomalous is None else int(r.anomalous),
            ]
        )
    atomic_write_text(path, buf_csv.getvalue())
