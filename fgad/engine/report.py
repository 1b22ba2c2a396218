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
    "FIGURE_GAP",
    "TILE_SIZE",
    "compose_figure",
    "display_size",
    "foreground_grid",
    "format_decision",
    "heatmap",
    "metrics_markdown",
    "overlay_figure",
    "overlay_panel",
    "overlay_tiles",
    "save_curves",
    "save_foreground_grid",
    "save_image",
    "save_overlay",
    "save_synthesis_grid",
    "synthesis_figure",
    "synthesis_grid",
    "to_uint8_rgb",
    "write_metrics",
]

PathLike = str | os.PathLike[str]

TILE_SIZE = 256
"""Default smallest tile side (pixels) of the figures written to files; smaller images are upscaled."""
FIGURE_GAP = 6
"""White pixels between the tiles of a figure and around it."""


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


def _resize(rgb: np.ndarray, size: tuple[int, int], *, nearest: bool = False) -> np.ndarray:
    """``rgb`` resized to ``size`` = (H, W); a no-op (the same array) when it already has that size."""
    if rgb.shape[:2] == size:
        return rgb
    interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.resize(rgb, (size[1], size[0]), interpolation=interpolation)


def display_size(height: int, width: int, tile_size: int | None = TILE_SIZE) -> tuple[int, int]:
    """The (H, W) at which an image is shown in a figure: upscaled until its shorter side is at least
    ``tile_size`` (aspect ratio kept, never shrunk); ``tile_size=None`` keeps the input size.

    Example:
        >>> display_size(32, 32), display_size(128, 256), display_size(300, 400), display_size(32, 32, None)
        ((256, 256), (256, 512), (300, 400), (32, 32))
    """
    if tile_size is None or min(height, width) >= tile_size:
        return height, width
    scale = tile_size / min(height, width)
    return max(tile_size, round(height * scale)), max(tile_size, round(width * scale))


def _mask_rgb(mask: torch.Tensor | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    m = mask.detach().float().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    m = np.asarray(m, dtype=np.float64).squeeze()
    if m.ndim != 2:
        raise ValueError(f"mask must be (H, W) or (1, H, W), got shape {np.shape(mask)}")
    return _resize(to_uint8_rgb(m), size, nearest=True)


def overlay_tiles(
    image: torch.Tensor | np.ndarray,
    anomaly_map: torch.Tensor | np.ndarray,
    *,
    reconstruction: torch.Tensor | np.ndarray | None = None,
    mask: torch.Tensor | np.ndarray | None = None,
    alpha: float = 0.5,
    tile_size: int | None = None,
) -> list[tuple[str, np.ndarray]]:
    """The tiles of an overlay figure, unlabelled: ``[(title, (h, w, 3) uint8 RGB), ...]``.

    Args:
        image: (C, H, W) float [0, 1].
        anomaly_map: (1, h, w) or (h, w) scores in [0, 1] (any size; resized to the tile).
        reconstruction: (C, H, W) float [0, 1] or None (tile left out).
        mask: (1, h, w) or (h, w) ground truth in {0, 1} or None (tile left out).
        alpha: heatmap opacity over the image.
        tile_size: tiles are upscaled to :func:`display_size` (shorter side at least this); None keeps
            the image's size.

    Returns:
        ``image``, ``reconstruction`` (if given), ``heatmap``, ``ground truth`` (if given); every tile
        has the same (h, w).

    Convention:
        Images are upscaled bilinearly, the ground truth with nearest neighbours (it stays {0, 255});
        the anomaly map is resized bilinearly *before* colouring (a smooth field, no blocky colours),
        coloured by :func:`heatmap` on the fixed [0, 1] scale and blended over the image.
    """
    base = to_uint8_rgb(image)
    size = display_size(base.shape[0], base.shape[1], tile_size)
    base = _resize(base, size)
    amap = np.asarray(_np(anomaly_map), dtype=np.float32).squeeze()
    if amap.ndim == 2 and amap.shape != size:
        amap = cv2.resize(amap, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    hot = heatmap(amap)
    blended = np.round((1 - alpha) * base.astype(np.float64) + alpha * hot).astype(np.uint8)
    tiles = [("image", base)]
    if reconstruction is not None:
        tiles.append(("reconstruction", _resize(to_uint8_rgb(reconstruction), size)))
    tiles.append(("heatmap", blended))
    if mask is not None:
        tiles.append(("ground truth", _mask_rgb(mask, size)))
    return tiles


def overlay_panel(
    image: torch.Tensor | np.ndarray,
    anomaly_map: torch.Tensor | np.ndarray,
    *,
    reconstruction: torch.Tensor | np.ndarray | None = None,
    mask: torch.Tensor | np.ndarray | None = None,
    alpha: float = 0.5,
) -> np.ndarray:
    """Side-by-side panel at the image's own size, no labels: image | reconstruction | heatmap over
    the image | ground truth (see :func:`overlay_tiles`; :func:`overlay_figure` is the labelled,
    upscaled version that :func:`save_overlay` writes).

    Returns:
        (H, k * W, 3) uint8 RGB, k = 2..4 columns.
    """
    tiles = overlay_tiles(image, anomaly_map, reconstruction=reconstruction, mask=mask, alpha=alpha)
    return np.concatenate([t for _, t in tiles], axis=1)


def format_decision(score: float, threshold: float | None = None) -> str:
    """The caption of an image score: ``"score 0.73"``, or with a threshold the decision
    ``"score 0.73 > 0.41: anomalous"`` / ``"score 0.12 <= 0.41: normal"`` (``anomalous = score > threshold``,
    as :func:`fgad.engine.predict` decides). Digits are added until score and threshold read differently.

    Example:
        >>> format_decision(0.7312, 0.41), format_decision(0.4101, 0.4099), format_decision(0.2)
        ('score 0.73 > 0.41: anomalous', 'score 0.4101 > 0.4099: anomalous', 'score 0.20')
    """
    if threshold is None:
        return f"score {score:.2f}"
    digits = 2
    while digits < 12 and f"{score:.{digits}f}" == f"{threshold:.{digits}f}" and score != threshold:
        digits += 1
    anomalous = score > threshold
    sign, word = (">", "anomalous") if anomalous else ("<=", "normal")
    return f"score {score:.{digits}f} {sign} {threshold:.{digits}f}: {word}"


# -- labelled figures -------------------------------------------------------------------------------
_FONT = cv2.FONT_HERSHEY_DUPLEX
_WHITE = (255, 255, 255)
_INK = (25, 25, 25)
_RED = (200, 30, 30)
_GREEN = (20, 125, 45)


def _font_scale(tile_width: int) -> float:
    return float(np.clip(tile_width / 400.0, 0.4, 0.9))


def _band_height(scale: float) -> int:
    (_, text_h), baseline = cv2.getTextSize("Ag", _FONT, scale, 1)
    return int(round((text_h + baseline) * 2.0))


_Caption = str | Sequence[tuple[str, tuple[int, int, int]]]
"""A caption: text in the default ink, or (text, RGB colour) segments written one after the other."""


def _put_text(
    canvas: np.ndarray,
    text: _Caption,
    box: tuple[int, int, int, int],
    *,
    scale: float,
    center: bool = True,
) -> None:
    """Write ``text`` into ``box`` = (x, y, w, h) of ``canvas`` (in place), vertically centred,
    horizontally centred or left-aligned, the font shrunk until the text fits the box's width."""
    segments = [(text, _INK)] if isinstance(text, str) else list(text)
    x, y, w, h = box

    def extent(scale: float) -> tuple[list[int], int, int]:
        sizes = [cv2.getTextSize(t, _FONT, scale, 1) for t, _ in segments]
        (_, th), base = cv2.getTextSize("Ag", _FONT, scale, 1)
        return [sw for (sw, _), _ in sizes], th, base

    widths, th, base = extent(scale)
    while sum(widths) > w - 8 and scale > 0.3:
        scale *= 0.9
        widths, th, base = extent(scale)
    left = x + max(0, (w - sum(widths)) // 2) if center else x + 4
    baseline_y = y + (h + th) // 2 - max(0, base // 2 - 1)
    for (segment, color), width in zip(segments, widths, strict=True):
        cv2.putText(canvas, segment, (left, baseline_y), _FONT, scale, color, 1, cv2.LINE_AA)
        left += width


def compose_figure(
    rows: Sequence[Sequence[np.ndarray]],
    *,
    titles: Sequence[str] | None = None,
    captions: Sequence[_Caption | None] | None = None,
    gap: int = FIGURE_GAP,
) -> np.ndarray:
    """Lay tiles out on a white canvas: column titles on top, each row's tiles side by side, an
    optional caption under each row.

    Args:
        rows: rows of (h, w, 3) uint8 RGB tiles; the tiles of a row share h, those of a column share w.
        titles: one per column, written centred in a band above the first row; None: no band.
        captions: one per row (text, or (text, RGB colour) segments), written left-aligned in a band
            under the row; None entries (or ``captions=None``) leave the band out.
        gap: white pixels between tiles and around the figure.

    Returns:
        (H, W, 3) uint8 RGB with W = sum of the column widths + (columns + 1) * ``gap`` and H = the sum
        of the row heights + (rows + 1) * ``gap`` + the title and caption bands.
    """
    if not rows or not rows[0]:
        raise ValueError("compose_figure needs at least one row with one tile")
    widths = [t.shape[1] for t in rows[0]]
    for r, row in enumerate(rows):
        if [t.shape[1] for t in row] != widths or len({t.shape[0] for t in row}) != 1:
            raise ValueError(f"row {r}: tiles must share the row's height and the columns' widths")
    if titles is not None and len(titles) != len(widths):
        raise ValueError(f"{len(titles)} titles for {len(widths)} columns")
    if captions is not None and len(captions) != len(rows):
        raise ValueError(f"{len(captions)} captions for {len(rows)} rows")
    scale = _font_scale(min(widths))
    band = _band_height(scale)
    lefts = [gap + sum(widths[:i]) + i * gap for i in range(len(widths))]
    width = lefts[-1] + widths[-1] + gap
    caps = list(captions) if captions is not None else [None] * len(rows)
    height = gap + (band if titles is not None else 0)
    height += sum(row[0].shape[0] + gap for row in rows) + band * sum(cap is not None for cap in caps)
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    y = gap
    if titles is not None:
        for left, w, title in zip(lefts, widths, titles, strict=True):
            _put_text(canvas, title, (left, y, w, band), scale=scale)
        y += band
    for row, cap in zip(rows, caps, strict=True):
        h = row[0].shape[0]
        for left, tile in zip(lefts, row, strict=True):
            canvas[y : y + h, left : left + tile.shape[1]] = tile
        y += h
        if cap is not None:
            _put_text(canvas, cap, (gap, y, width - 2 * gap, band), scale=scale, center=False)
            y += band
        y += gap
    return canvas


def overlay_figure(
    image: torch.Tensor | np.ndarray,
    anomaly_map: torch.Tensor | np.ndarray,
    *,
    reconstruction: torch.Tensor | np.ndarray | None = None,
    mask: torch.Tensor | np.ndarray | None = None,
    score: float | None = None,
    threshold: float | None = None,
    caption: str | None = None,
    alpha: float = 0.5,
    tile_size: int | None = TILE_SIZE,
    labels: bool = True,
) -> np.ndarray:
    """The overlay figure :func:`save_overlay` writes: :func:`overlay_tiles` upscaled to ``tile_size``,
    column titles (image, reconstruction, heatmap, ground truth) and a caption.

    Args:
        image, anomaly_map, reconstruction, mask, alpha: as :func:`overlay_tiles`.
        score: the image score, written in the caption (None: left out).
        threshold: the decision threshold; with a score the caption reads e.g.
            ``"score 0.73 > 0.41: anomalous"`` in red, or ``"... <= ...: normal"`` in green
            (:func:`format_decision`).
        caption: text put before the score (e.g. the file name).
        tile_size: smallest tile side in pixels (small images are upscaled); None: the image's size.
        labels: False leaves out the title band and the caption (tiles and gaps only).

    Returns:
        (H, W, 3) uint8 RGB; the layout of :func:`compose_figure` with one row.
    """
    tiles = overlay_tiles(
        image, anomaly_map, reconstruction=reconstruction, mask=mask, alpha=alpha, tile_size=tile_size
    )
    if not labels:
        return compose_figure([[t for _, t in tiles]])
    segments = [(f"{caption}   ", _INK)] if caption else []
    if score is not None:
        limit = None if threshold is None else float(threshold)
        color = _INK if limit is None else _RED if float(score) > limit else _GREEN
        segments.append((format_decision(float(score), limit), color))
    captions = [segments] if segments else None
    return compose_figure([[t for _, t in tiles]], titles=[name for name, _ in tiles], captions=captions)


def save_image(path: PathLike, rgb: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 RGB array as PNG, atomically."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be an (H, W, 3) uint8 array, got {rgb.dtype} {rgb.shape}")
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"OpenCV could not encode {path} as PNG")
    return atomic_write_bytes(path, buf.tobytes())


def save_overlay(
    path: PathLike,
    image: torch.Tensor,
    anomaly_map: torch.Tensor,
    *,
    reconstruction: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    score: float | None = None,
    threshold: float | None = None,
    caption: str | None = None,
    alpha: float = 0.5,
    tile_size: int | None = TILE_SIZE,
    labels: bool = True,
) -> Path:
    """:func:`overlay_figure` written to ``path`` as PNG (atomic): image | reconstruction | heatmap |
    ground truth tiles of at least ``tile_size`` pixels, titled, with the score (and decision) below."""
    figure = overlay_figure(
        image, anomaly_map, reconstruction=reconstruction, mask=mask, score=score, threshold=threshold,
        caption=caption, alpha=alpha, tile_size=tile_size, labels=labels,
    )  # fmt: skip
    return save_image(path, figure)


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
            fpr, tpr = _np(fpr), _np(tpr)
            ax.plot(fpr, tpr, label=f"{name} (AUROC {curve_auroc(fpr, tpr):.3f})")
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
            precision, recall = _np(precision), _np(recall)
            ax.plot(recall, precision, label=f"{name} (AP {curve_ap(precision, recall):.3f})")
        ax.set(xlabel="recall", ylabel="precision", title=f"{prefix.rstrip('_')} precision-recall".strip())
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        if series:
            ax.legend(loc="lower left")
        out.append(atomic_write_bytes(directory / f"{prefix}pr.png", _figure_bytes(fig)))
    finally:
        plt.close(fig)
    return out


def curve_auroc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under a ROC curve (trapezoids between its points, as ``sklearn.metrics.roc_auc_score``)."""
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def curve_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """Average precision of a precision-recall curve in sklearn's order (recall decreasing): the
    precision at each recall step times the step, as ``sklearn.metrics.average_precision_score``."""
    return float(-np.sum(np.diff(recall) * precision[:-1]))


def _np(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)


# -- synthesis grids ------------------------------------------------------------------------------
_SYNTHESIS_TITLES = ("image", "foreground", "mask", "anomaly")


def _synthesis_columns(
    images: torch.Tensor,
    synthesizer: torch.nn.Module | None,
    textures: torch.Tensor | None,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, ...]:
    from fgad._checks import check_image

    check_image(images, "images")
    if synthesizer is None:
        from fgad.augment import AnomalySynthesizer

        synthesizer = AnomalySynthesizer(foreground="auto", anomaly_prob=1.0)
    with torch.no_grad():
        result = synthesizer(images, textures, generator=generator)
    foreground = result.foreground if result.foreground is not None else torch.ones_like(result.mask)
    return result.target, foreground, result.mask, result.image


def synthesis_grid(
    images: torch.Tensor,
    *,
    synthesizer: torch.nn.Module | None = None,
    textures: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """Rows of clean image | foreground | anomaly mask | synthetic anomaly, one per input image, at the
    images' own size and unlabelled (:func:`synthesis_figure` is the labelled, upscaled version).

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
    columns = _synthesis_columns(images, synthesizer, textures, generator)
    rows = [np.concatenate([to_uint8_rgb(c[i]) for c in columns], axis=1) for i in range(images.shape[0])]
    return np.concatenate(rows, axis=0)


def synthesis_figure(
    images: torch.Tensor,
    *,
    synthesizer: torch.nn.Module | None = None,
    textures: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    tile_size: int | None = TILE_SIZE,
    labels: bool = True,
) -> np.ndarray:
    """:func:`synthesis_grid` as a figure: column titles image | foreground | mask | anomaly, one row
    per image, tiles upscaled to at least ``tile_size`` pixels (images bilinearly, the binary masks
    with nearest neighbours) and separated by :data:`FIGURE_GAP` white pixels.

    Args:
        images, synthesizer, textures, generator: as :func:`synthesis_grid` (same random draws).
        tile_size: smallest tile side (:func:`display_size`); None keeps the images' size.
        labels: False leaves out the title band.

    Returns:
        (H, W, 3) uint8 RGB, the layout of :func:`compose_figure`.
    """
    columns = _synthesis_columns(images, synthesizer, textures, generator)
    size = display_size(images.shape[-2], images.shape[-1], tile_size)
    nearest = (False, True, True, False)
    rows = [
        [_resize(to_uint8_rgb(c[i]), size, nearest=n) for c, n in zip(columns, nearest, strict=True)]
        for i in range(images.shape[0])
    ]
    return compose_figure(rows, titles=_SYNTHESIS_TITLES if labels else None)


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
    tile_size: int | None = TILE_SIZE,
    labels: bool = True,
) -> Path:
    """Write a PNG figure of synthetic anomalies made from the images of ``input_folder``
    (:func:`synthesis_figure`: titled columns image | foreground | mask | anomaly, one row per image).

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
        tile_size: smallest tile side in the figure (smaller images are upscaled); None: ``image_size``.
        labels: False leaves out the column titles.

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
    figure = synthesis_figure(
        images, synthesizer=synth, textures=sources_or_textures, generator=gen, tile_size=tile_size,
        labels=labels,
    )  # fmt: skip
    return save_image(output, figure)


def _label(tile: np.ndarray, text: str, *, top: bool = True) -> np.ndarray:
    """Write ``text`` on a dark band at the top (or bottom) of an RGB tile (a copy)."""
    out = tile.copy()
    height, width = out.shape[:2]
    scale = _font_scale(width) * 0.9
    while cv2.getTextSize(text, _FONT, scale, 1)[0][0] > width - 8 and scale > 0.3:
        scale *= 0.9
    (_, text_h), baseline = cv2.getTextSize("Ag", _FONT, scale, 1)
    band = min(height, text_h + baseline + max(6, text_h // 2))
    rows = slice(0, band) if top else slice(height - band, height)
    out[rows] = (out[rows].astype(np.float32) * 0.35).astype(np.uint8)
    y = (0 if top else height - band) + (band + text_h) // 2 - max(0, baseline // 2 - 1)
    cv2.putText(out, text, (4, y), _FONT, scale, _WHITE, 1, cv2.LINE_AA)
    return out


def foreground_grid(
    images: torch.Tensor,
    methods: Sequence[str] = ("auto", "otsu"),
    *,
    names: Sequence[str] | None = None,
    tile_size: int | None = None,
    gap: int = 0,
) -> np.ndarray:
    """Rows of image | one foreground per method, the background dimmed, each tile labelled.

    Args:
        images: (B, C, H, W) float [0, 1].
        methods: :class:`fgad.augment.ForegroundMask` methods, one column each.
        names: a label per row (e.g. file names), written at the bottom of the image tile.
        tile_size: tiles are upscaled to :func:`display_size` (images bilinearly, the masks with
            nearest neighbours) before they are labelled; None keeps the images' size.
        gap: white pixels between the tiles and around the grid (:func:`compose_figure`).

    Returns:
        (B * H, (1 + len(methods)) * W, 3) uint8 RGB for ``tile_size=None, gap=0`` (H, W the tile
        size otherwise, plus the gaps). The ``auto`` tiles say which cue found the object, or
        ``whole frame`` for a texture.

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
    size = display_size(images.shape[-2], images.shape[-1], tile_size)
    rows = []
    for i in range(images.shape[0]):
        rgb = _resize(to_uint8_rgb(images[i]), size)
        tiles = [_label(rgb, "image")]
        if names is not None:
            tiles[0] = _label(tiles[0], str(names[i]), top=False)
        for masks, tags in columns:
            keep = _resize((masks[i, 0].cpu().numpy() > 0.5).astype(np.uint8), size, nearest=True) > 0
            tile = (rgb.astype(np.float32) * 0.25).astype(np.uint8)
            tile[keep] = rgb[keep]
            tiles.append(_label(tile, tags[i]))
        rows.append(tiles)
    return compose_figure(rows, gap=gap)


def save_foreground_grid(
    input_folder: PathLike,
    output: PathLike,
    *,
    methods: Sequence[str] = ("auto", "otsu"),
    count: int = 8,
    image_size: int | tuple[int, int] = 256,
    device: str = "cpu",
    tile_size: int | None = TILE_SIZE,
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
        tile_size: smallest tile side in the grid (smaller images are upscaled); None: ``image_size``.

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
    grid = foreground_grid(images, methods, names=names, tile_size=tile_size, gap=FIGURE_GAP)
    return save_image(output, grid)
