"""Show what the anomaly synthesizer does: a PNG grid, one row per image.

Columns: input image | Otsu foreground | anomaly mask | synthetic anomaly (I_A).

    python examples/synthesize.py --output synthesis.png
    python examples/synthesize.py --input my/images --textures my/textures --seed 3 --count 6
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

from fgad.augment import AnomalySynthesizer

DEMO = Path(__file__).resolve().parents[1] / "fgad" / "data" / "demo" / "hazelnut_toy" / "train" / "good"
SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def read_folder(folder: Path, size: int, limit: int | None = None) -> torch.Tensor:
    """RGB images of a folder as a float batch (N, 3, size, size) in [0, 1]."""
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES)[:limit]
    if not paths:
        raise SystemExit(f"no images ({', '.join(sorted(SUFFIXES))}) found in {folder}")
    arrays = []
    for path in paths:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"cannot read image {path}")
        rgb = cv2.cvtColor(cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        arrays.append(rgb)
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255


def to_bgr(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) float [0, 1] -> (H, W, 3) uint8 BGR (grey masks repeated)."""
    x = x.float().clamp(0, 1)
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    rgb = (x.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def write_png(path: Path, image: np.ndarray) -> None:
    """Write atomically: a temporary file in the same folder, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise SystemExit(f"cannot encode {path}")
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=path.parent)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data.tobytes())
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--input", type=Path, default=DEMO,
                        help="folder of normal images (default: the demo hazelnuts)")
    parser.add_argument("--output", type=Path, default=Path("synthesis.png"), help="PNG grid to write")
    parser.add_argument("--textures", type=Path, default=None,
                        help="folder of texture images (default: the built-in procedural textures)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=4, help="number of images (rows)")
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args(argv)

    images = read_folder(args.input, args.size, args.count)
    textures = read_folder(args.textures, args.size) if args.textures is not None else None
    synth = AnomalySynthesizer(foreground="otsu", anomaly_prob=1.0)
    res = synth(images, textures, generator=torch.Generator().manual_seed(args.seed))
    assert res.foreground is not None

    gap = np.full((args.size, 4, 3), 255, np.uint8)
    rows = []
    for i in range(images.shape[0]):
        tiles = [to_bgr(res.target[i]), to_bgr(res.foreground[i].float()),
                 to_bgr(res.mask[i]), to_bgr(res.image[i])]
        rows.append(np.concatenate([t for tile in tiles for t in (tile, gap)][:-1], axis=1))
    sep = np.full((4, rows[0].shape[1], 3), 255, np.uint8)
    grid = np.concatenate([r for row in rows for r in (row, sep)][:-1], axis=0)
    write_png(args.output, grid)
    print(f"wrote {args.output} ({images.shape[0]} rows: image | foreground | mask | synthetic anomaly)")
    return args.output


if __name__ == "__main__":
    main()
