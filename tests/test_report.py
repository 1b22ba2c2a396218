"""Figures written to files: overlay tiles, labelled overlays and their decision, synthesis figures."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fgad.augment import AnomalySynthesizer
from fgad.engine.report import (
    FIGURE_GAP,
    TILE_SIZE,
    compose_figure,
    display_size,
    format_decision,
    heatmap,
    overlay_figure,
    overlay_panel,
    overlay_tiles,
    save_overlay,
    synthesis_figure,
    synthesis_grid,
    to_uint8_rgb,
)

T, G = TILE_SIZE, FIGURE_GAP


def _inputs(size: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, size, size, generator=g)
    reconstruction = torch.rand(3, size, size, generator=g)
    amap = torch.zeros(1, size, size)
    amap[:, size // 4 : size // 2, size // 4 : size // 2] = 1.0
    return image, reconstruction, amap, (amap > 0.5).float()


def _tile(figure: np.ndarray, top: int, column: int, size: int = T) -> np.ndarray:
    left = G + column * (size + G)
    return figure[top : top + size, left : left + size]


def _ink(region: np.ndarray) -> int:
    """Pixels that are not the white background."""
    return int(np.count_nonzero(np.any(region < 200, axis=-1)))


# -- raw tiles ------------------------------------------------------------------------------------
def test_overlay_tiles_are_the_resized_inputs() -> None:
    image, recon, amap, mask = _inputs()
    tiles = overlay_tiles(image, amap, reconstruction=recon, mask=mask, tile_size=T)
    assert [name for name, _ in tiles] == ["image", "reconstruction", "heatmap", "ground truth"]
    assert all(t.shape == (T, T, 3) and t.dtype == np.uint8 for _, t in tiles)
    linear = cv2.INTER_LINEAR
    assert np.array_equal(tiles[0][1], cv2.resize(to_uint8_rgb(image), (T, T), interpolation=linear))
    assert np.array_equal(tiles[1][1], cv2.resize(to_uint8_rgb(recon), (T, T), interpolation=linear))
    gt = tiles[3][1]
    assert set(np.unique(gt)) == {0, 255}  # nearest neighbours: still binary
    assert np.array_equal(gt, cv2.resize(to_uint8_rgb(mask[0]), (T, T), interpolation=cv2.INTER_NEAREST))
    # The heatmap is JET blended over the image: hot (red) where the map is 1, cold (blue) elsewhere.
    # The map is resized bilinearly before it is coloured.
    smooth = cv2.resize(amap[0].numpy(), (T, T), interpolation=linear)
    expected = np.round(0.5 * tiles[0][1].astype(np.float64) + 0.5 * heatmap(smooth)).astype(np.uint8)
    assert np.array_equal(tiles[2][1], expected)
    hot = tiles[2][1].astype(int)
    inside, outside = hot[T // 4 + 8 : T // 2 - 8, T // 4 + 8 : T // 2 - 8], hot[-40:, -40:]
    assert inside[..., 0].mean() > inside[..., 2].mean() + 30
    assert outside[..., 2].mean() > outside[..., 0].mean() + 30
    # Without reconstruction or ground truth those tiles are left out.
    assert [name for name, _ in overlay_tiles(image, amap, tile_size=T)] == ["image", "heatmap"]


def test_tiles_keep_large_images_and_the_raw_panel_keeps_its_size() -> None:
    image = torch.rand(3, 300, 400, generator=torch.Generator().manual_seed(1))
    amap = torch.rand(1, 75, 100, generator=torch.Generator().manual_seed(2))  # any map size
    tiles = overlay_tiles(image, amap, tile_size=T)
    assert np.array_equal(tiles[0][1], to_uint8_rgb(image))  # large enough: not resized
    assert tiles[1][1].shape == (300, 400, 3)
    assert display_size(64, 128) == (T, 2 * T) and display_size(16, 16, None) == (16, 16)
    small, _, small_map, _ = _inputs()
    assert overlay_panel(small, small_map).shape == (32, 64, 3)  # the unlabelled panel: input size
    assert np.array_equal(overlay_panel(small, small_map)[:, 32:], overlay_tiles(small, small_map)[1][1])


# -- labelled overlays ----------------------------------------------------------------------------
def test_overlay_figure_layout_titles_and_raw_tiles() -> None:
    image, recon, amap, mask = _inputs()
    plain = overlay_figure(image, amap, reconstruction=recon, mask=mask, labels=False)
    titled = overlay_figure(image, amap, reconstruction=recon, mask=mask)
    captioned = overlay_figure(image, amap, reconstruction=recon, mask=mask, score=0.73, threshold=0.41)
    width = 4 * T + 5 * G
    assert plain.shape == (T + 2 * G, width, 3)
    band = titled.shape[0] - plain.shape[0]
    assert band >= 20 and titled.shape[1] == width
    assert captioned.shape == (plain.shape[0] + 2 * band, width, 3)
    tiles = overlay_tiles(image, amap, reconstruction=recon, mask=mask, tile_size=T)
    for column, (_, tile) in enumerate(tiles):
        assert np.array_equal(_tile(plain, G, column), tile)
        assert np.array_equal(_tile(titled, G + band, column), tile)
        assert np.array_equal(_tile(captioned, G + band, column), tile)
    # The title band holds text above every column (and only there); without labels there is no band
    # and nothing but tiles on the white background.
    titles = titled[G : G + band]
    for column in range(4):
        left = G + column * (T + G)
        assert _ink(titles[:, left : left + T]) > 30
    assert not np.array_equal(titles[:, G : G + T], titles[:, 2 * G + T : 2 * G + 2 * T])  # different words
    assert _ink(titles) > 0 and _ink(plain[:G]) == 0 and _ink(plain[-G:]) == 0
    assert _ink(plain[:, :G]) == 0
    # Three columns without ground truth, two without reconstruction either.
    assert overlay_figure(image, amap, reconstruction=recon).shape[1] == 3 * T + 4 * G
    assert overlay_figure(image, amap).shape[1] == 2 * T + 3 * G


def _caption(figure: np.ndarray, band: int) -> np.ndarray:
    return figure[-G - band : -G]


def test_caption_shows_the_score_and_the_decision() -> None:
    image, recon, amap, _ = _inputs()
    titled = overlay_figure(image, amap, reconstruction=recon)
    band = titled.shape[0] - (T + 2 * G)
    above = overlay_figure(image, amap, reconstruction=recon, score=0.73, threshold=0.41)
    below = overlay_figure(image, amap, reconstruction=recon, score=0.12, threshold=0.41)
    bare = overlay_figure(image, amap, reconstruction=recon, score=0.73)
    for fig in (above, below, bare):
        assert fig.shape == (titled.shape[0] + band, 3 * T + 4 * G, 3)
        assert _ink(_caption(fig, band)) > 50
    assert not np.array_equal(_caption(above, band), _caption(below, band))
    assert not np.array_equal(_caption(above, band), _caption(bare, band))

    def reddish(region: np.ndarray) -> int:
        r, g, b = (region[..., i].astype(int) for i in range(3))
        return int(np.count_nonzero((r > g + 60) & (r > b + 60)))

    def greenish(region: np.ndarray) -> int:
        r, g, b = (region[..., i].astype(int) for i in range(3))
        return int(np.count_nonzero((g > r + 40) & (g > b + 20)))

    assert reddish(_caption(above, band)) > 20 and greenish(_caption(above, band)) == 0  # anomalous: red
    assert greenish(_caption(below, band)) > 20 and reddish(_caption(below, band)) == 0  # normal: green
    assert reddish(_caption(bare, band)) == greenish(_caption(bare, band)) == 0  # no threshold: no decision
    # A file name goes before the score.
    named = overlay_figure(
        image, amap, reconstruction=recon, score=0.73, threshold=0.41, caption="crack/001.png"
    )
    assert not np.array_equal(_caption(named, band), _caption(above, band))


def test_format_decision() -> None:
    assert format_decision(0.73, 0.41) == "score 0.73 > 0.41: anomalous"
    assert format_decision(0.12, 0.41) == "score 0.12 <= 0.41: normal"
    assert format_decision(0.41, 0.41) == "score 0.41 <= 0.41: normal"  # anomalous = score > threshold
    assert format_decision(0.41234, 0.41229) == "score 0.41234 > 0.41229: anomalous"
    assert format_decision(0.5) == "score 0.50"


def test_save_overlay_writes_the_figure(tmp_path: Path) -> None:
    image, recon, amap, mask = _inputs()
    kwargs = dict(reconstruction=recon, mask=mask, score=0.9, threshold=0.5, caption="x.png")
    path = save_overlay(tmp_path / "a" / "x.png", image, amap, **kwargs)
    written = cv2.cvtColor(cv2.imread(os.fspath(path)), cv2.COLOR_BGR2RGB)
    assert np.array_equal(written, overlay_figure(image, amap, **kwargs))
    assert written.shape[1] == 4 * T + 5 * G
    small = save_overlay(tmp_path / "s.png", image, amap, tile_size=None, labels=False)
    assert cv2.imread(os.fspath(small)).shape == (32 + 2 * G, 2 * 32 + 3 * G, 3)


def test_compose_figure_checks_the_layout() -> None:
    a, b = np.zeros((10, 10, 3), np.uint8), np.zeros((12, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="share"):
        compose_figure([[a, b]])
    with pytest.raises(ValueError, match="titles"):
        compose_figure([[a, a]], titles=["one"])
    assert compose_figure([[a, a], [a, a]]).shape == (2 * 10 + 3 * G, 2 * 10 + 3 * G, 3)


# -- synthesis figures ----------------------------------------------------------------------------
def test_synthesis_figure_is_the_titled_upscaled_grid() -> None:
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    synth = AnomalySynthesizer(foreground="otsu", anomaly_prob=1.0, image_rotation_prob=0.0)
    grid = synthesis_grid(images, synthesizer=synth, generator=torch.Generator().manual_seed(0))
    figure = synthesis_figure(images, synthesizer=synth, generator=torch.Generator().manual_seed(0))
    plain = synthesis_figure(
        images, synthesizer=synth, generator=torch.Generator().manual_seed(0), labels=False
    )
    assert plain.shape == (2 * T + 3 * G, 4 * T + 5 * G, 3)
    band = figure.shape[0] - plain.shape[0]
    assert band >= 20 and figure.shape[1] == plain.shape[1]
    for row in range(2):
        top = G + band + row * (T + G)
        raw = [grid[row * 32 : (row + 1) * 32, c * 32 : (c + 1) * 32] for c in range(4)]
        for column, nearest in enumerate((False, True, True, False)):
            mode = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
            expected = cv2.resize(raw[column], (T, T), interpolation=mode)
            assert np.array_equal(_tile(figure, top, column), expected)
            assert np.array_equal(_tile(plain, G + row * (T + G), column), expected)
        assert set(np.unique(_tile(figure, top, 2))) <= {0, 255}  # the mask stays binary
    titles = figure[G : G + band]
    assert all(_ink(titles[:, G + c * (T + G) : G + c * (T + G) + T]) > 30 for c in range(4))
    assert _ink(plain[:G]) == 0


def test_heatmap_scale_is_fixed() -> None:
    flat = heatmap(np.full((4, 4), 0.2))
    assert np.array_equal(flat, heatmap(np.full((4, 4), 0.2), vmin=0.0, vmax=1.0))
    assert not np.array_equal(flat, heatmap(np.full((4, 4), 0.9)))


# -- foreground grids -----------------------------------------------------------------------------
def test_foreground_grid_upscales_and_labels_every_tile() -> None:
    from fgad.engine.report import foreground_grid

    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert foreground_grid(images, ["otsu"]).shape == (64, 64, 3)  # the images' size, no gaps
    grid = foreground_grid(images, ["otsu"], names=["a.png", "b.png"], tile_size=T, gap=G)
    assert grid.shape == (2 * T + 3 * G, 2 * T + 3 * G, 3)
    image = _tile(grid, G, 0)
    resized = cv2.resize(to_uint8_rgb(images[0]), (T, T), interpolation=cv2.INTER_LINEAR)
    middle = slice(T // 3, 2 * T // 3)
    assert np.array_equal(image[middle], resized[middle])  # between the top and bottom labels
    for top in (G, 2 * G + T):
        for column in range(2):
            tile = _tile(grid, top, column)
            assert (tile[:12] > 200).any() and (tile[:12].mean(axis=-1) < 100).mean() > 0.5  # dark title band
    assert (_tile(grid, G, 0)[-12:] > 200).any()  # the file name


def test_curve_legend_areas_match_sklearn() -> None:
    """The areas written in the curves' legends equal sklearn's AUROC and AP (ties included)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    from fgad.engine.report import curve_ap, curve_auroc
    from fgad.metrics import precision_recall_curve, roc_curve

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    scores = np.round(rng.random(400) + 0.4 * labels, 2)  # rounded: many ties
    fpr, tpr, _ = roc_curve(scores, labels)
    precision, recall, _ = precision_recall_curve(scores, labels)
    assert curve_auroc(np.asarray(fpr), np.asarray(tpr)) == pytest.approx(
        roc_auc_score(labels, scores), abs=1e-12
    )
    assert curve_ap(np.asarray(precision), np.asarray(recall)) == pytest.approx(
        average_precision_score(labels, scores), abs=1e-12
    )
