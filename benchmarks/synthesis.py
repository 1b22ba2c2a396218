"""Throughput of fgad's AnomalySynthesizer against per-sample reference loops, in one run.

Work per image in every contender: 256 x 256 RGB, a Perlin mask (2**0..2**5 cells, thresholded at
0.5, rotated +-90 degrees), every sample anomalous, a texture source blended with opacity in
[0.1, 1]. fgad and the DRAEM-style loop also rotate 30% of the inputs, compute the Otsu foreground
and alter the texture with 3 of 6 ops; anomalib's ``PerlinAnomalyGenerator`` (when installed) does
less (no foreground, no image rotation; without a source folder its texture is the noise itself).

    python benchmarks/synthesis.py                    # CPU, 2 threads, batches 16 and 64
    python benchmarks/synthesis.py --device cuda --batch-sizes 64 256 1024

Numbers depend on the machine and on what else runs on it; run on an idle machine to compare.
On a shared machine, OpenMP threads that spin-wait for a descheduled partner can make every
contender's multi-threaded numbers collapse; ``OMP_WAIT_POLICY=PASSIVE`` (set before Python
starts) gives a steadier comparison there.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

from fgad.augment import AnomalySynthesizer

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "fgad" / "data" / "demo" / "hazelnut_toy" / "train" / "good"
TEXTURES = ROOT.parent / "shared" / "data" / "textures"
SIZE = 256


# --------------------------------------------------------------------------- inputs
def _load_folder(folder: Path, limit: int) -> list[np.ndarray]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg"})[:limit]
    out = []
    for path in files:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is not None:
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            out.append(cv2.resize(rgb, (SIZE, SIZE), interpolation=cv2.INTER_AREA))
    return out


def load_inputs(batch: int, rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``batch`` uint8 RGB images (the demo photos) and textures (the shared texture folder)."""
    images = _load_folder(DEMO, 64) or [rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)]
    textures = _load_folder(TEXTURES, 64) or [rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)]
    pick = range(batch)
    return [images[i % len(images)] for i in pick], [textures[i % len(textures)] for i in pick]


# --------------------------------------------------------------------------- DRAEM-style reference
def _fade(t: np.ndarray) -> np.ndarray:
    return 6 * t**5 - 15 * t**4 + 10 * t**3


def perlin_numpy(shape: tuple[int, int], cells: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Perlin noise on a (cells_y + 1) x (cells_x + 1) gradient lattice, per pixel (DRAEM's recipe)."""
    h, w = shape
    cy, cx = cells
    ys = np.arange(h) * cy / h
    xs = np.arange(w) * cx / w
    iy, ix = ys.astype(int), xs.astype(int)
    fy, fx = (ys - iy)[:, None], (xs - ix)[None, :]
    angles = rng.random((cy + 1, cx + 1)) * 2 * np.pi
    grads = np.stack((np.cos(angles), np.sin(angles)), -1)

    def corner(dy: int, dx: int) -> np.ndarray:
        g = grads[(iy + dy)[:, None], (ix + dx)[None, :]]
        return g[..., 0] * (fx - dx) + g[..., 1] * (fy - dy)

    ux, uy = _fade(fx), _fade(fy)
    top = corner(0, 0) + ux * (corner(0, 1) - corner(0, 0))
    bottom = corner(1, 0) + ux * (corner(1, 1) - corner(1, 0))
    return math.sqrt(2) * (top + uy * (bottom - top))


_PIL_OPS: list[Callable[[Image.Image, np.random.Generator], Image.Image]] = [
    lambda im, r: ImageEnhance.Sharpness(im).enhance(r.uniform(0, 2)),
    lambda im, r: ImageOps.equalize(im),
    lambda im, r: ImageOps.solarize(im, int(r.integers(32, 129))),
    lambda im, r: ImageOps.posterize(im, int(r.integers(1, 9))),
    lambda im, r: ImageOps.autocontrast(im, cutoff=r.uniform(0, 20)),
    lambda im, r: ImageEnhance.Brightness(im).enhance(r.uniform(0.8, 1.2)),
]


def draem_style(images: list[np.ndarray], textures: list[np.ndarray], rng: np.random.Generator) -> list:
    """Per-sample numpy / cv2 / PIL synthesis, the way DRAEM's data loader does it."""
    out = []
    for img, tex in zip(images, textures, strict=True):
        h, w = img.shape[:2]
        if rng.random() < 0.3:
            rot = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-90, 90), 1.0)
            img = cv2.warpAffine(img, rot, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        pil = Image.fromarray(tex)
        for k in rng.choice(6, 3, replace=False):
            pil = _PIL_OPS[k](pil, rng)
        texture = np.asarray(pil, dtype=np.float32) / 255
        cells = (2 ** int(rng.integers(0, 6)), 2 ** int(rng.integers(0, 6)))
        noise = perlin_numpy((h, w), cells, rng).astype(np.float32)
        rot = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-90, 90), 1.0)
        perlin = cv2.warpAffine(noise, rot, (w, h), flags=cv2.INTER_LINEAR, borderValue=0) > 0.5
        gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        t, _ = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        above = gray > t
        border = np.concatenate((above[0], above[-1], above[:, 0], above[:, -1]))
        fg = above if border.mean() <= 0.5 else ~above
        mask = (perlin & fg).astype(np.float32)[..., None]
        beta = rng.uniform(0.1, 1.0)
        image = img.astype(np.float32) / 255
        augmented = image * (1 - mask) + (1 - beta) * image * mask + beta * texture * mask
        out.append((augmented, image, mask, float(mask.any())))
    return out


# --------------------------------------------------------------------------- timing
def measure(fn: Callable[[], object], batch: int, seconds: float, sync: Callable[[], None]) -> float:
    """Median images/s over repeated calls (at least 3, about ``seconds`` of work) after a warm-up."""
    fn()
    sync()
    rates: list[float] = []
    start = time.perf_counter()
    while len(rates) < 3 or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        sync()
        rates.append(batch / (time.perf_counter() - t0))
    return statistics.median(rates)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="device of the fgad synthesizer (cpu, cuda, ...)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (and OpenCV's)")
    parser.add_argument("--seconds", type=float, default=3.0, help="time budget per measurement")
    parser.add_argument("--no-references", action="store_true", help="time fgad only")
    parser.add_argument(
        "--layout", choices=("contiguous", "channels_last"), default="contiguous",
        help="memory layout of the image and texture batches given to fgad and anomalib "
        "(contiguous: what a DataLoader collates and fgad.data produces)",
    )
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rng = np.random.default_rng(0)

    anomalib_generator: Callable[[torch.Tensor], object] | None = None
    try:
        from anomalib.data.utils.generators.perlin import PerlinAnomalyGenerator

        anomalib_generator = PerlinAnomalyGenerator(probability=1.0, blend_factor=(0.1, 1.0))
    except ImportError:
        pass

    print(f"device={device} threads={args.threads} size={SIZE}x{SIZE} RGB ({args.layout}), "
          "every sample anomalous")
    header = f"{'batch':>5} {'fgad img/s':>11} {'DRAEM-style':>12} {'x':>6} {'anomalib':>9} {'x':>6}"
    print(header)
    for batch in args.batch_sizes:
        images_u8, textures_u8 = load_inputs(batch, rng)
        layout = torch.contiguous_format if args.layout == "contiguous" else torch.channels_last
        images, textures = (
            torch.from_numpy(np.stack(batch_u8)).permute(0, 3, 1, 2).float().div(255).to(device)
            .contiguous(memory_format=layout)
            for batch_u8 in (images_u8, textures_u8)
        )
        synth = AnomalySynthesizer(foreground="otsu", anomaly_prob=1.0).to(device)
        gen = torch.Generator(device=device).manual_seed(0)
        with torch.no_grad():
            fgad_rate = measure(partial(synth, images, textures, generator=gen), batch, args.seconds, sync)
        draem_rate = anomalib_rate = float("nan")
        if not args.no_references:
            draem = partial(draem_style, images_u8, textures_u8, rng)
            draem_rate = measure(draem, batch, args.seconds, lambda: None)
            if anomalib_generator is not None:
                with torch.no_grad():
                    anomalib_rate = measure(partial(anomalib_generator, images), batch, args.seconds, sync)
        print(f"{batch:>5} {fgad_rate:>11.1f} {draem_rate:>12.1f} {fgad_rate / draem_rate:>6.1f} "
              f"{anomalib_rate:>9.1f} {fgad_rate / anomalib_rate:>6.1f}", flush=True)


if __name__ == "__main__":
    main()
