"""Use fgad's pieces in your own training loop: data, synthesis, models and losses by name.

This is the whole method in about forty lines, without fgad.engine (no checkpoints, validation or
reports: ``fgad train`` does those). It trains on the bundled hazelnut photos by default.

    python examples/custom_loop.py --steps 50
    python examples/custom_loop.py --images path/to/good/images --textures path/to/dtd --steps 2000
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.utils.data import DataLoader

import fgad
from fgad.augment import AnomalySynthesizer
from fgad.data import ImageFolder, TextureFolder, demo_root, to_float
from fgad.losses import FGADLoss


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=Path, default=demo_root() / "train" / "good")
    parser.add_argument("--textures", type=Path, default=None, help="texture folder (default: procedural)")
    parser.add_argument("--model", default="fgad_small", help=f"one of {fgad.list_models('*d*')}")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader decoding processes")
    args = parser.parse_args(argv)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(args.seed)
    generator = torch.Generator(device).manual_seed(args.seed)

    loader = DataLoader(
        ImageFolder(args.images, args.size),
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=2,
        persistent_workers=True,
    )
    textures = TextureFolder(args.textures, args.size).load(device) if args.textures else None

    synth = AnomalySynthesizer(foreground="auto")  # "otsu": the paper's mask; None: plain DRAEM
    model = fgad.create_model(args.model).to(device).train()
    criterion = FGADLoss(ssim_weight=1.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    step, total = 0, float("nan")
    while step < args.steps:
        for batch in loader:
            images = to_float(batch["image"], device)  # uint8 from the workers -> [0, 1]
            with torch.no_grad():
                sample = synth(images, textures, generator=generator)
            out = model(sample.image)
            loss = criterion(sample.target, out.reconstruction, out.logits, sample.mask)
            optimizer.zero_grad(set_to_none=True)
            loss.total.backward()
            optimizer.step()
            step, total = step + 1, loss.total.item()
            if step % 10 == 0 or step == args.steps:
                parts = ", ".join(f"{k} {float(v):.4f}" for k, v in loss.parts.items())
                print(f"step {step:5d}  loss {total:.4f}  ({parts})")
            if step == args.steps:
                break
    return total


if __name__ == "__main__":
    main()
