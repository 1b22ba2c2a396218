"""Reports: metrics tables, heatmap overlays, ROC / PR curves, synthesis grids.

Every function that writes a file writes it atomically (:mod:`fgad._io`), so a reader (or a killed
process) never sees a half-written file.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from fgad._io import atomic_write_bytes, atomic_write_text

__all__ = [
    "foreground_grid",
    "heatmap",
    "metrics_markdown",
    "overlay_panel",
    "save_curves",
    "save_foreground_grid",
    "save_image",
    "save_overlay",
    "save_synthesis_grid",
    "synthesis_grid",
    "to_uint8_rgb",
    "write_metrics",
]

PathLike = str | os.PathLike[str]


# -- images ---------------------------------------------------------------------------------------
def to_uint8_rgb(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """One image as an (H, W, 3) uint8 RGB array.

    Args:
        image: (C, H, W) or (H, W) tensor/array, float in [0, 1] (clamped) or uint8; C in {1, 3}.

    Shape:
        (C, H, W) -> (H, W, 3).
    """
    if isinstance(image, torch.Tensor):
        image = image.detach().float().cpu().numpy() if image.is_floating_point() else image.cpu().numpy()
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] not in (1, 3):
        raise ValueError(f"image must have shape (C, H, W) with C in (1, 3) or (H, W), got {arr.shape}")
    if arr.dtype != np.uint8:
        arr = np.round(np.clip(arr.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
    arr = np.transpose(arr, (1, 2, 0))
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr)


def heatmap(anomaly_map: torch.Tensor | np.ndarray, vmin: float = 0.0, vmax: float = 1.0) -> np.ndarray:
    """Colour an anomaly map with OpenCV's JET colour map.

    Args:
        anomaly_map: (H, W) or (1, H, W) scores.
        vmin: score shown as the coldest colour.
        vmax: score shown as the hottest colour.

    Returns:
        (H, W, 3) uint8 RGB.

    Convention:
        The scale is fixed (default [0, 1], the range of the segmenter's probability), not per
        image, so heatmaps of different images are comparable.
    """
    if isinstance(anomaly_map, torch.Tensor):
        anomaly_map = anomaly_map.detach().float().cpu().numpy()
    arr = np.asarray(anomaly_map, dtype=np.float64).squeeze()
    if arr.ndim != 2:
        raise ValueError(f"anomaly_map must be (H, W) or (1, H, W), got shape {np.shape(anomaly_map)}")
    scale = max(vmax - vmin, 1e-12)
    grey = np.round(np.clip((arr - vmin) / scale, 0.0, 1.0) * 255.0).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def overlay_panel(
    image: torch.Tensor | np.ndarray,
    anomaly_map: torch.Tensor | np.ndarray,
    *,
    reconstruction: torch.Tensor | np.ndarray | None = None,
    mask: torch.Tensor | np.ndarray | None = None,
    alpha: float = 0.5,
) -> np.ndarray:
    """Side-by-side panel: image | reconstruction | heatmap over the image | ground truth.

    Args:
        image: (C, H, W) float [0, 1].
        anomaly_map: (1, H, W) or (H, W) scores in [0, 1].
        reconstruction: (C, H, W) float [0, 1] or None (column left out).
        mask: (1, H, W) or (H, W) in {0, 1} or None (column left out).
        alpha: heatmap opacity over the image.

    Returns:
        (H, k * W, 3) uint8 RGB, k = 2..4 columns.
    """
    base = to_uint8_rgb(image)
    hot = heatmap(anomaly_map)
    if hot.shape[:2] != base.shape[:2]:
        hot = cv2.resize(hot, (base.shape[1], base.shape[0]), interpolation=cv2.INTER_LINEAR)
    blended = np.round((1 - alpha) * base.astype(np.float64) + alpha * hot).astype(np.uint8)
    columns = [base]
    if reconstruction is not None:
        columns.append(to_uint8_rgb(reconstruction))
    columns.append(blended)
    if mask is not None:
        m = mask.detach().float().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
        columns.append(to_uint8_rgb(np.asarray(m, dtype=np.float64).reshape(1, *base.shape[:2])))
    return np.concatenate(columns, axis=1)


def save_image(path: PathLike, rgb: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 RGB array as PNG, atomically."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be an (H, W, 3) uint8 array, got {rgb.dtype} {rgb.shape}")
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"OpenCV could not encode {path} as PNG")
    return atomic_write_bytes(path, buf.tobytes())


def save_overlay(path: PathLike, image: torch.Tensor, anomaly_map: torch.Tensor, **kwargs: Any) -> Path:
    """:func:`overlay_panel` written to ``path`` as PNG (atomic)."""
    return save_image(path, overlay_panel(image, anomaly_map, **kwargs))


# -- metrics tables and curves --------------------------------------------------------------------
def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def metrics_markdown(metrics: Mapping[str, Mapping[str, Any]], keys: Sequence[str] | None = None) -> str:
    """A Markdown table: one row per category, one column per metric.

    Args:
        metrics: ``{category: {metric: value}}``.
        keys: columns, in order (default: the union of metric names, first-seen order).

    Example:
        >>> print(metrics_markdown({"nut": {"image_auroc": 1.0, "pixel_ap": 0.5}}))
        | category | image_auroc | pixel_ap |
        |---|---|---|
        | nut | 1.0000 | 0.5000 |
        <BLANKLINE>
    """
    if keys is None:
        seen: dict[str, None] = {}
        for row in metrics.values():
            for k in row:
                seen.setdefault(k, None)
        keys = list(seen)
    lines = ["| category | " + " | ".join(keys) + " |", "|" + "---|" * (len(keys) + 1)]
    for category, row in metrics.items():
        lines.append(f"| {category} | " + " | ".join(_fmt(row.get(k, "")) for k in keys) + " |")
    return "\n".join(lines) + "\n"


def write_metrics(directory: PathLike, metrics: Mapping[str, Mapping[str, Any]]) -> tuple[Path, Path]:
    """Write ``metrics.json`` and ``metrics.md`` into ``directory`` (atomic). Returns both paths."""
    directory = Path(directory)
    js = atomic_write_text(directory / "metrics.json", json.dumps(metrics, indent=2, sort_keys=False) + "\n")
    md = atomic_write_text(directory / "metrics.md", metrics_markdown(metrics))
    return js, md


def _figure_bytes(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def save_curves(
    directory: PathLike,
    scores: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    *,
    maps: torch.Tensor | np.ndarray | None = None,
    masks: torch.Tensor | np.ndarray | None = None,
    prefix: str = "",
    max_pixels: int = 2_000_000,
) -> list[Path]:
    """ROC and precision-recall curves (image level, and pixel level when maps are given) as PNGs.

    Args:
        directory: output folder.
        scores: (N,) image scores.
        labels: (N,) image labels {0, 1}.
        maps: (N, 1, H, W) anomaly maps or None.
        masks: (N, 1, H, W) ground truth {0, 1} or None.
        prefix: file name prefix (e.g. the category + "_").
        max_pixels: pixel curves use an evenly strided subset of at most this many pixels (the
            curve's shape, not the reported metric, which is computed on all pixels).

    Returns:
        The written files: ``{prefix}roc.png`` and ``{prefix}pr.png``.

    Convention:
        Curves are computed with :func:`fgad.metrics.roc_curve` / ``precision_recall_curve``
        (sklearn semantics). A level whose labels have one class only is left out of the figure.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from fgad.metrics import precision_recall_curve, roc_curve

    series: list[tuple[str, np.ndarray, np.ndarray]] = []
    s = _np(scores).reshape(-1)
    y = _np(labels).reshape(-1)
    if len(np.unique(y)) == 2:
        series.append(("image", s, y))
    if maps is not None and masks is not None:
        pm = _np(maps).reshape(-1)
        py = _np(masks).reshape(-1)
        if pm.size > max_pixels:
            stride = math.ceil(pm.size / max_pixels)
            pm, py = pm[::stride], py[::stride]
        if len(np.unique(py)) == 2:
            series.append(("pixel", pm, py))
    out: list[Path] = []
    directory = Path(directory)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    try:
        for name, sc, lb in series:
            fpr, tpr, _ = roc_curve(sc, lb)
            ax.plot(_np(fpr), _np(tpr), label=name)
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        title = f"{prefix.rstrip('_')} ROC".strip()
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        if series:
            ax.legend(loc="lower right")
        out.append(atomic_write_bytes(directory / f"{prefix}roc.png", _figure_bytes(fig)))
    finally:
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    try:
        for name, sc, lb in series:
            precision, recall, _ = precision_recall_curve(sc, lb)
            ax.plot(_np(recall), _np(precision), label=name)
        ax.set(xlabel="recall", ylabel="precision", title=f"{prefix.rstrip('_')} precision-recall".strip())
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        if series:
            ax.legend(loc="lower left")
        out.append(atomic_write_bytes(directory / f"{prefix}pr.png", _figure_bytes(fig)))
    finally:
        plt.close(fig)
    return out


def _np(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)


# -- synthesis grids ------------------------------------------------------------------------------
def synthesis_grid(
    images: torch.Tensor,
    *,
    synthesizer: torch.nn.Module | None = None,
    textures: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """Rows of clean image | foreground | anomaly mask | synthetic anomaly, one per input image.

    Args:
        images: (B, C, H, W) float [0, 1] clean images.
        synthesizer: an :class:`fgad.augment.AnomalySynthesizer` (default: ``"auto"`` foreground,
            ``anomaly_prob=1`` so every row shows an anomaly).
        textures: texture bank for the synthesizer or None (procedural textures).
        generator: random generator on the images' device (seeded for a reproducible grid).

    Returns:
        (B * H, 4 * W, 3) uint8 RGB. The foreground column is white everywhere when the synthesizer
        has no foreground step (``foreground=None``).
    """
    from fgad._checks import check_image

    check_image(images, "images")
    if synthesizer is None:
        from fgad.augment import AnomalySynthesizer

        synthesizer = AnomalySynthesizer(foreground="auto", anomaly_prob=1.0)
    with torch.no_grad():
        result = synthesizer(images, textures, generator=generator)
    foreground = result.foreground if result.foreground is not None else torch.ones_like(result.mask)
    columns = (result.target, foreground, result.mask, result.image)
    rows = [np.concatenate([to_uint8_rgb(c[i]) for c in columns], axis=1) for i in range(images.shape[0])]
    return np.concatenate(rows, axis=0)


def save_synthesis_grid(
    input_folder: PathLike,
    output: PathLike,
    *,
    count: int = 8,
    image_size: int | tuple[int, int] = 256,
    foreground: str | None = "auto",
    textures: PathLike | None = None,
    seed: int = 0,
    device: str = "cpu",
    synthesizer: str = "fgad",
    synthesizer_kwargs: Mapping[str, Any] | None = None,
) -> Path:
    """Write a PNG grid of synthetic anomalies made from the images of ``input_folder``.

    Args:
        input_folder: a folder of images (read recursively with :class:`fgad.data.ImageFolder`).
        output: the PNG file to write (atomic).
        count: number of rows (the first ``count`` images in sorted order).
        image_size: images are resized to this side / (H, W).
        foreground: ``"auto"``, ``"otsu"`` or None (anomalies anywhere).
        textures: texture folder (:class:`fgad.data.TextureFolder`) or None for procedural textures.
        seed: seed of the synthesis generator.
        device: where synthesis runs.
        synthesizer: a registered synthetic-anomaly method (:func:`fgad.augment.list_synthesizers`);
            ``nsa`` takes its patches from the folder's images (each row's own image excluded
            only by chance).
        synthesizer_kwargs: the method's own options (not ``foreground`` / ``anomaly_prob``).

    Returns:
        The written path. Each row: clean image | foreground | anomaly mask | synthetic anomaly.
    """
    from fgad.augment import create_synthesizer
    from fgad.data import ImageFolder, TextureFolder, to_float
    from fgad.engine.trainer import reads_sources, source_bank, synthesis_textures

    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    dataset = ImageFolder(os.fspath(input_folder), image_size=image_size)
    n = min(count, len(dataset))
    if n == 0:
        raise ValueError(f"no images found in {input_folder}")
    dev = torch.device(device)
    images = to_float(torch.stack([dataset[i]["image"] for i in range(n)]).to(dev))
    bank = None
    if textures is not None:
        bank = TextureFolder(os.fspath(textures), image_size=image_size).load(device=dev)
    synth = create_synthesizer(
        synthesizer, foreground=foreground, anomaly_prob=1.0, **dict(synthesizer_kwargs or {})
    )
    sources = source_bank(dataset, dev) if reads_sources(synth) else None
    gen = torch.Generator(device=dev)
    gen.manual_seed(seed)
    sources_or_textures = synthesis_textures(synth, bank, sources)
    grid = synthesis_grid(images, synthesizer=synth, textures=sources_or_textures, generator=gen)
    return save_image(output, grid)


def _label(tile: np.ndarray, text: str, *, top: bool = True) -> np.ndarray:
    """Write ``text`` on a dark band at the top (or bottom) of an RGB tile (a copy)."""
    out = tile.copy()
    height, width = out.shape[:2]
    scale = max(0.35, min(0.6, width / 420))
    band = max(14, int(28 * scale))
    rows = slice(0, band) if top else slice(height - band, height)
    out[rows] = (out[rows].astype(np.float32) * 0.35).astype(np.uint8)
    y = int(band * 0.72) if top else height - int(band * 0.28)
    cv2.putText(out, text, (4, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def foreground_grid(
    images: torch.Tensor,
    methods: Sequence[str] = ("auto", "otsu"),
    *,
    names: Sequence[str] | None = None,
) -> np.ndarray:
    """Rows of image | one foreground per method, the background dimmed, each tile labelled.

    Args:
        images: (B, C, H, W) float [0, 1].
        methods: :class:`fgad.augment.ForegroundMask` methods, one column each.
        names: a label per row (e.g. file names), written at the bottom of the image tile.

    Returns:
        (B * H, (1 + len(methods)) * W, 3) uint8 RGB. The ``auto`` tiles say which cue found the object,
        or ``whole frame`` for a texture.

    Example:
        >>> foreground_grid(torch.rand(2, 3, 32, 32), ["otsu"]).shape
        (64, 64, 3)
    """
    from fgad._checks import check_image
    from fgad.augment import ForegroundMask
    from fgad.augment.foreground import CUES, GRAY_CUES

    check_image(images, "images")
    columns = []
    for method in methods:
        fm = ForegroundMask(method)  # type: ignore[arg-type]
        with torch.no_grad():
            masks = fm(images)
        tags = []
        for i in range(images.shape[0]):
            if fm.last_fallback is not None and bool(fm.last_fallback[i]):
                texture = fm.last_texture is not None and bool(fm.last_texture[i])
                tags.append(f"{method}: whole frame" + (" (texture)" if texture else ""))
            elif fm.last_cue is not None:
                cues = CUES if images.shape[1] == 3 else GRAY_CUES
                tags.append(f"{method}: {cues[int(fm.last_cue[i])]}")
            else:
                tags.append(method)
        columns.append((masks, tags))
    rows = []
    for i in range(images.shape[0]):
        rgb = to_uint8_rgb(images[i])
        tiles = [_label(rgb, "image")]
        if names is not None:
            tiles[0] = _label(tiles[0], str(names[i]), top=False)
        for masks, tags in columns:
            keep = masks[i, 0].cpu().numpy() > 0.5
            tile = (rgb.astype(np.float32) * 0.25).astype(np.uint8)
            tile[keep] = rgb[keep]
            tiles.append(_label(tile, tags[i]))
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)


def save_foreground_grid(
    input_folder: PathLike,
    output: PathLike,
    *,
    methods: Sequence[str] = ("auto", "otsu"),
    count: int = 8,
    image_size: int | tuple[int, int] = 256,
    device: str = "cpu",
) -> Path:
    """Write a PNG grid of the foregrounds of the images of ``input_folder`` (see :func:`foreground_grid`).

    Check on your own photos, before training, that the foreground covers the object (anomalies
    are synthesised only there) and not the background.

    Args:
        input_folder: a folder of images (read recursively with :class:`fgad.data.ImageFolder`).
        output: the PNG file to write (atomic).
        methods: foreground methods, one column each.
        count: rows, spread evenly over the sorted images.
        image_size: images are resized to this side / (H, W) (use the training size).
        device: where the masks are computed.

    Returns:
        The written path.
    """
    from fgad.data import ImageFolder, to_float

    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    dataset = ImageFolder(os.fspath(input_folder), image_size=image_size)
    total = len(dataset)
    if total == 0:
        raise ValueError(f"no images found in {input_folder}")
    n = min(count, total)
    index = sorted({math.floor(i * total / n) for i in range(n)})
    items = [dataset[i] for i in index]
    images = to_float(torch.stack([it["image"] for it in items]).to(torch.device(device)))
    names = [Path(it["path"]).name for it in items]
    return save_image(output, foreground_grid(images, methods, names=names))
