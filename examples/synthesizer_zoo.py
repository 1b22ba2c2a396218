"""Every registered synthetic-anomaly method on the same photos: one row per method.

Each tile is the synthetic anomaly with its mask outlined in red; the first tile of a row names the
method. ``nsa`` and ``mixed`` take their patches from the other training photos (the source bank).

    python examples/synthesizer_zoo.py --output synthesizers.jpg
    python examples/synthesizer_zoo.py --input my/images --count 6 --foreground none
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from fgad.augment import create_synthesizer, list_synthesizers
from fgad.data import ImageFolder, demo_root, to_float


def tile(image: torch.Tensor, mask: torch.Tensor, text: str | None) -> np.ndarray:
    """(H, W, 3) uint8 RGB of ``image`` with the outline of ``mask`` in red and an optional label."""
    rgb = (image.float().clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    inside = mask[0].numpy() > 0
    eroded = cv2.erode(inside.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    rgb = np.ascontiguousarray(rgb)
    rgb[inside & ~eroded] = (255, 0, 0)
    if text:
        band = 26
        rgb[:band] = (rgb[:band].astype(np.float32) * 0.35).astype(np.uint8)
        cv2.putText(rgb, text, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return rgb


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
    parser.add_argument("--output", type=Path, default=Path("synthesizers.jpg"), help="image to write")
    parser.add_argument(
        "--foreground",
        choices=("auto", "otsu", "none"),
        default="auto",
        help="foreground of every method except draem (which has none)",
    )
    parser.add_argument("--methods", nargs="+", default=None, help="registered names (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=4, help="number of photos (columns)")
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args(argv)

    dataset = ImageFolder(args.input, image_size=args.size)
    everything = to_float(torch.stack([dataset[i]["image"] for i in range(len(dataset))]))
    images, bank = everything[: args.count], everything[args.count :]
    if bank.shape[0] == 0:
        bank = images.flip(0)
    foreground = None if args.foreground == "none" else args.foreground
    rows = []
    for name in args.methods or list_synthesizers():
        options = {"anomaly_prob": 1.0}
        if name != "draem":
            options["foreground"] = foreground
        synth = create_synthesizer(name, **options)
        sources = bank if name in ("nsa", "mixed") else None
        with torch.no_grad():
            res = synth(images, sources, generator=torch.Generator().manual_seed(args.seed))
        rows.append(
            np.concatenate(
                [tile(res.image[i], res.mask[i], name if i == 0 else None) for i in range(images.shape[0])],
                axis=1,
            )
        )
    grid = np.concatenate(rows, axis=0)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(
        str(args.output), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90]
    ):
        raise OSError(f"could not write {args.output}")
    print(f"wrote {args.output} ({len(rows)} rows: {', '.join(args.methods or list_synthesizers())})")
    return args.output


if __name__ == "__main__":
    main()
