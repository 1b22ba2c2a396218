"""Cost of fgad's kornia augmentation classes against calling fgad's ops directly, in one run.

For each class of :mod:`fgad.augment.kornia` (``p=1`` unless ``--p``), the wrapper (kornia's
parameter sampling, gate and plumbing around fgad's op) is timed against the fgad op it calls, given
the same values (``RandomTexture`` against ``TextureAugment`` sampling its own values, which the
wrapper does too). Below ``p=1`` kornia runs the op on the whole batch and blends by the gate.
The calls alternate, so both see the same machine load; the ratio of the medians is reported.

    python benchmarks/kornia_overhead.py                      # CPU, 2 threads, batch 16, 256 x 256
    python benchmarks/kornia_overhead.py --device cuda --batch-size 64

Numbers depend on the machine and on what else runs on it; run on an idle machine to compare.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import kornia
import torch

import fgad.augment.kornia as fk
from fgad.augment import TextureAugment
from fgad.augment import functional as TF


def _timed(fn: Callable[[], torch.Tensor], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def _cases(
    x: torch.Tensor, p: float
) -> list[tuple[str, Callable[[], torch.Tensor], Callable[[], torch.Tensor]]]:
    """(name, wrapper call, direct call with the values the wrapper drew on its first call)."""
    cases = []
    sharp = fk.RandomSharpness(sharpness=(0.0, 2.0), p=p)
    sharp(x)
    factor = sharp._params["sharpness"].to(x.device)
    cases.append(("RandomSharpness", lambda: sharp(x), lambda: TF.adjust_sharpness(x, factor)))
    equalize = fk.RandomEqualize(p=p)
    cases.append(("RandomEqualize", lambda: equalize(x), lambda: TF.equalize(x)))
    solarize = fk.RandomSolarize(additions=0.0, p=p)
    solarize(x)
    levels = torch.ceil(solarize._params["thresholds"] * 255).to(x.device)
    cases.append(("RandomSolarize", lambda: solarize(x), lambda: TF.solarize(x, levels)))
    posterize = fk.RandomPosterize(p=p)
    posterize(x)
    bits = posterize._params["bits_factor"].long().to(x.device)
    cases.append(("RandomPosterize", lambda: posterize(x), lambda: TF.posterize(x, bits)))
    contrast = fk.RandomAutoContrast(p=p)
    cases.append(("RandomAutoContrast", lambda: contrast(x), lambda: TF.autocontrast(x)))
    bright = fk.RandomBrightness(brightness=0.2, p=p)
    bright(x)
    scale = bright._params["brightness_factor"].to(x.device)
    cases.append(("RandomBrightness", lambda: bright(x), lambda: TF.adjust_brightness(x, scale)))
    texture, direct = fk.RandomTexture(p=p), TextureAugment()
    cases.append(("RandomTexture", lambda: texture(x), lambda: direct(x)))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--p", type=float, default=1.0,
                        help="the wrappers' p (below 1 kornia runs the op on the whole batch and blends)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    x = (torch.randint(0, 256, (args.batch_size, 3, args.size, args.size)).float() / 255).to(device)
    print(f"kornia {kornia.__version__}, torch {torch.__version__}, {device}, {args.threads} threads, "
          f"batch {args.batch_size} x 3 x {args.size} x {args.size}, p={args.p}, median of {args.repeats}")
    print(f"{'class':<20} {'wrapper ms':>11} {'direct ms':>10} {'ratio':>6}")
    ratios = []
    for name, wrapped, direct in _cases(x, args.p):
        for _ in range(3):  # warm-up: scratch buffers, kernels
            wrapped(), direct()
        times_w, times_d = [], []
        for _ in range(args.repeats):
            times_w.append(_timed(wrapped, device))
            times_d.append(_timed(direct, device))
        w, d = statistics.median(times_w), statistics.median(times_d)
        ratios.append(w / d)
        print(f"{name:<20} {w * 1e3:>11.2f} {d * 1e3:>10.2f} {w / d:>6.2f}")
    print(f"{'geometric mean':<20} {'':>11} {'':>10} {statistics.geometric_mean(ratios):>6.2f}")


if __name__ == "__main__":
    main()
