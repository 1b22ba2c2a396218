"""Show what the anomaly synthesizer does: a PNG figure, one row per image.

Titled columns: image (clean) | foreground | mask (where the anomaly goes) | anomaly (the synthetic
image I_A). Tiles are at least 256 pixels (smaller --size is upscaled).

    python examples/synthesize.py --output synthesis.png
    python examples/synthesize.py --input my/images --textures my/textures --seed 3 --count 6
    python examples/synthesize.py --foreground otsu      # the paper's grey-level Otsu foreground
    python examples/synthesize.py --foreground none      # DRAEM's synthesis: anomalies anywhere
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from fgad.augment import AnomalySynthesizer
from fgad.data import ImageFolder, TextureFolder, demo_root, to_float
from fgad.engine.report import save_image, synthesis_figure


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--input",
        type=Path,
        default=demo_root() / "train" / "good",
        help="folder of normal images (default: the bundled hazelnut photos)",
    )
    parser.add_argument("--output", type=Path, default=Path("synthesis.png"), help="PNG figure to write")
    parser.add_argument(
        "--textures",
        type=Path,
        default=None,
        help="folder of texture images (default: the built-in procedural textures)",
    )
    parser.add_argument("--foreground", choices=("auto", "otsu", "none"), default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=4, help="number of images (rows)")
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args(argv)

    dataset = ImageFolder(args.input, image_size=args.size)
    images = to_float(torch.stack([dataset[i]["image"] for i in range(min(args.count, len(dataset)))]))
    textures = TextureFolder(args.textures, image_size=args.size).load() if args.textures else None

    foreground = None if args.foreground == "none" else args.foreground
    synth = AnomalySynthesizer(foreground=foreground, anomaly_prob=1.0)
    figure = synthesis_figure(
        images, synthesizer=synth, textures=textures, generator=torch.Generator().manual_seed(args.seed)
    )
    path = save_image(args.output, figure)  # written atomically
    print(f"wrote {path} ({len(images)} rows: image | foreground | mask | anomaly)")
    return path


if __name__ == "__main__":
    main()
