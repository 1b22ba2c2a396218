"""``evaluate``: test-split metrics per category, a Markdown / JSON report, overlays and curves."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from fgad.engine._common import autocast, find_run_dir, load_detector, make_dataset, read_run_file
from fgad.engine.config import LABELLED_DATASETS
from fgad.engine.distributed import resolve_device
from fgad.engine.logging import format_summary
from fgad.engine.report import metrics_markdown, save_curves, save_overlay, write_metrics

__all__ = ["METRIC_KEYS", "evaluate"]

METRIC_KEYS = ("image_auroc", "pixel_auroc", "pixel_ap", "aupro", "image_f1_max", "pixel_f1_max")


def evaluate(
    model: str | os.PathLike[str] | torch.nn.Module,
    *,
    dataset: str | None = None,
    root: str | os.PathLike[str] | None = None,
    categories: str | Sequence[str] | None = None,
    image_size: int | tuple[int, int] | None = None,
    output: str | os.PathLike[str] | None = None,
    batch_size: int = 8,
    device: str = "auto",
    num_workers: int = 0,
    overlays: int | None = 16,
    amp: bool = True,
    progress: bool = True,
) -> dict[str, dict[str, float]]:
    """Evaluate a detector on the test split of one or more categories and write a report.

    Args:
        model: a run directory (from :func:`fgad.engine.fit`), a ``save_pretrained`` folder, a
            training checkpoint ``.pt``, or a model instance.
        dataset: ``"mvtec"`` or ``"btad"``; default: the run's config.
        root: data set root; default: the run's config.
        categories: one category or several; default: the run's category.
        image_size: input size; default: the run's ``image_size`` (else 256).
        output: report folder; default ``<run>/eval`` (or ``./fgad-eval`` without a run).
        batch_size: images per forward pass.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        num_workers: DataLoader workers.
        overlays: number of overlay PNGs per category (evenly spread over the test images,
            anomalous and good); None writes one for every image, 0 none.
        amp: bfloat16 autocast on CUDA.
        progress: tqdm bar per category and a summary table on stderr.

    Returns:
        ``{category: {metric: value}}`` with :data:`METRIC_KEYS` (``aupro`` integrated to FPR 0.3);
        with several categories a ``"mean"`` row is added.

    Convention:
        Image score = ``DetectorOutput.score`` (max of the mean-filtered map); pixel metrics use the
        unsmoothed ``anomaly_map`` (as DRAEM evaluates). Metrics come from
        :class:`fgad.metrics.Evaluator`; nothing here is tuned on the test split (F1-max is the
        best F1 over all thresholds, an oracle figure reported for comparison only).
        Written (atomically): ``metrics.json``, ``metrics.md``, ``curves/<category>_roc.png``,
        ``curves/<category>_pr.png``, ``overlays/<category>/<defect>_<stem>.png``
        (image | reconstruction | heatmap | ground truth).
    """
    run_dir, run = _find_run(model)
    cfg: dict[str, Any] = run["config"] if run is not None else {}
    dataset, root, categories, image_size = _test_data(cfg, dataset, root, categories, image_size)
    if overlays is not None and overlays < 0:
        raise ValueError(f"overlays must be >= 0 or None (all), got {overlays}")
    if output is None:
        output = (run_dir / "eval") if run_dir is not None else Path("fgad-eval")
    output = Path(output)
    dev = resolve_device(device)
    net = model.to(dev).eval() if isinstance(model, torch.nn.Module) else load_detector(model, dev)
    threshold = ((run or {}).get("calibration") or {}).get("threshold")

    results: dict[str, dict[str, float]] = {}
    for category in categories:
        data = make_dataset(dataset, os.fspath(root), category, "test", image_size)
        loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers)
        results[category] = _evaluate_category(
            net, loader, category, output, dev, use_amp=amp and dev.type == "cuda",
            overlay_rows=_overlay_rows(len(data), overlays), threshold=threshold, progress=progress,
        )  # fmt: skip
    if len(results) > 1:
        keys = [k for k in METRIC_KEYS if all(k in r for r in results.values())]
        results["mean"] = {k: sum(r[k] for r in results.values()) / len(results) for k in keys}
    _write_report(output, results, progress)
    return results


def _find_run(model: str | os.PathLike[str] | torch.nn.Module) -> tuple[Path | None, dict[str, Any] | None]:
    """The run directory ``model`` belongs to and its ``config.json`` (None, None for a model instance
    or a model outside a run); an error when nothing exists at ``model``."""
    if isinstance(model, torch.nn.Module):
        return None, None
    if not Path(model).exists():
        raise FileNotFoundError(
            f"no run at {os.fspath(model)!r}: expected a run directory, a save_pretrained folder or a "
            "training checkpoint .pt"
        )
    run_dir = find_run_dir(model)
    return run_dir, (read_run_file(run_dir) if run_dir is not None else None)


def _test_data(
    cfg: dict[str, Any],
    dataset: str | None,
    root: str | os.PathLike[str] | None,
    categories: str | Sequence[str] | None,
    image_size: int | tuple[int, int] | None,
) -> tuple[str, str | os.PathLike[str], list[str], int | tuple[int, int]]:
    """The test data: each of ``dataset``, ``root``, ``categories``, ``image_size`` as given, else the
    run config's ``cfg`` value (``image_size`` else 256); an error when one is missing or the data set
    has no labelled test split."""
    dataset = dataset or cfg.get("dataset")
    root = root if root is not None else cfg.get("root")
    if categories is None:
        categories = cfg.get("category")
    if image_size is None:
        size = cfg.get("image_size", 256)
        image_size = tuple(size) if isinstance(size, list) else size
    if dataset is None or root is None or not categories:
        raise ValueError(
            "evaluate needs dataset, root and categories (given, or read from a run directory's config.json)"
        )
    if dataset not in LABELLED_DATASETS:
        raise ValueError(
            f"evaluate needs a labelled test split: dataset in {LABELLED_DATASETS}, got {dataset!r}"
        )
    categories = [categories] if isinstance(categories, str) else list(categories)
    return dataset, root, categories, image_size


def _overlay_rows(n: int, overlays: int | None) -> set[int]:
    """Indices of the ``overlays`` test images (all when None) drawn as overlays, evenly spread over ``n``."""
    if overlays is None:
        return set(range(n))
    k = min(overlays, n)
    return {math.floor(i * n / k) for i in range(k)} if k else set()


def _evaluate_category(
    net: torch.nn.Module,
    loader: DataLoader,
    category: str,
    output: Path,
    dev: torch.device,
    *,
    use_amp: bool,
    overlay_rows: set[int],
    threshold: float | None,
    progress: bool,
) -> dict[str, float]:
    """Score one category's test split: its :data:`METRIC_KEYS`, written with the overlays of
    ``overlay_rows`` and the ROC / PR curves under ``output``."""
    from tqdm.auto import tqdm

    from fgad.data import to_float
    from fgad.metrics import Evaluator

    evaluator = Evaluator()
    scores, labels, maps, masks = [], [], [], []
    index = 0
    with torch.no_grad():
        for batch in tqdm(loader, desc=f"evaluate {category}", disable=not progress, leave=False):
            images = to_float(batch["image"], dev)
            gt = batch["mask"].to(dev, torch.float32)
            label = batch["label"].to(dev, torch.float32)
            with autocast(dev, use_amp):
                out = net(images)
            score = out.score.float()
            amap = out.anomaly_map.float()
            evaluator.update(scores=score.cpu(), labels=label.cpu(), maps=amap.cpu(), masks=gt.cpu())
            scores.append(score.cpu())
            labels.append(label.cpu())
            maps.append(amap.cpu())
            masks.append(gt.cpu())
            for j in range(images.shape[0]):
                if index + j in overlay_rows:
                    path = Path(batch["path"][j])
                    save_overlay(
                        output / "overlays" / category / f"{path.parent.name}_{path.stem}.png",
                        images[j],
                        amap[j],
                        reconstruction=out.reconstruction[j].float(),
                        mask=gt[j],
                        score=float(score[j]),
                        threshold=threshold,
                        caption=f"{path.parent.name}/{path.name}",
                    )
            index += images.shape[0]
    metrics = {k: float(v) for k, v in evaluator.compute().items()}
    save_curves(
        output / "curves",
        torch.cat(scores),
        torch.cat(labels),
        maps=torch.cat(maps),
        masks=torch.cat(masks),
        prefix=f"{category}_",
    )
    return {k: metrics[k] for k in METRIC_KEYS if k in metrics}


def _write_report(output: Path, results: dict[str, dict[str, float]], progress: bool) -> None:
    """Write ``metrics.json`` and ``metrics.md`` to ``output``; with ``progress`` print the table and
    a summary to stderr."""
    write_metrics(output, results)
    if progress:
        print(metrics_markdown(results), file=sys.stderr, end="")
        if "mean" in results or len(results) == 1:
            last = results.get("mean", next(iter(results.values())))
            print(format_summary(last, title=f"evaluation summary ({output})"), file=sys.stderr)
