"""The examples run as documented (small sizes) and produce what they say."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import cv2
import numpy as np

from fgad.engine.report import FIGURE_GAP, TILE_SIZE

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_synthesize_writes_a_grid(tmp_path: Path) -> None:
    out = _load("synthesize").main(["--output", str(tmp_path / "g.png"), "--count", "2", "--size", "64"])
    grid = cv2.imread(str(out))
    # titled columns image | foreground | mask | anomaly, the 64-pixel images upscaled to TILE_SIZE tiles
    t, gap = TILE_SIZE, FIGURE_GAP
    assert grid.shape[1] == 4 * t + 5 * gap
    band = grid.shape[0] - (2 * t + 3 * gap)
    assert 20 <= band <= 80 and (grid[gap : gap + band] < 128).any()
    rows = [grid[gap + band + r * (t + gap) : gap + band + r * (t + gap) + t] for r in range(2)]
    for row in rows:
        foreground, mask = (row[:, gap + c * (t + gap) : gap + c * (t + gap) + t] for c in (1, 2))
        assert np.any(mask == 255)  # anomaly_prob=1 on real photos: every row has an anomaly
        assert not np.any((mask == 255) & (foreground == 0))  # and it lies on the object


def test_custom_loop_trains(tmp_path: Path) -> None:
    loss = _load("custom_loop").main(["--steps", "2", "--size", "32", "--batch-size", "2", "--workers", "0"])
    assert math.isfinite(loss) and loss > 0
