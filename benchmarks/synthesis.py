"""Throughput of fgad's synthesizers against per-sample numpy / OpenCV references, in one run.

Every registered method (``fgad.augment.list_synthesizers()``) on 256 x 256 RGB batches, every sample
anomalous, side by side with a per-sample reference loop of the same method written with numpy and
OpenCV (the way a per-image data loader does it, its results collated into a batch as a DataLoader
does), and with anomalib's per-image implementation where one exists and anomalib is installed:

- ``fgad``: Perlin mask on the Otsu foreground, 3 of 6 texture ops, 30% of the inputs rotated, textures
  given; reference: the DRAEM-style loop below (numpy Perlin, PIL ops, cv2 Otsu); anomalib's
  ``PerlinAnomalyGenerator`` does less (no foreground, no image rotation).
- ``draem``: the same without the foreground (``foreground=None``); same reference without Otsu.
- ``cutpaste`` / ``cutpaste_scar`` (``foreground=None``, the paper's placement): reference: numpy crop,
  the same affine colour jitter, paste (the scar rotated with ``cv2.warpAffine``); anomalib: FoundAD's
  ``CutPasteNormal`` / ``CutPasteScar`` (torchvision ``ColorJitter`` per image).
- ``nsa`` (``foreground=None``, patches from a bank of the demo photos): reference: ``cv2.resize`` of
  the cut and ``cv2.seamlessClone`` (NORMAL_CLONE) per image.
- ``mixed`` (fgad 0.5, cutpaste_scar 0.25, nsa 0.25, no foreground; textures for fgad, the photo bank
  for nsa): the matching references per sample.

Each contender is timed in turn, one call per round, and the median of its rounds is reported, so
that a change of load on a shared machine hits all of them alike.

    python benchmarks/synthesis.py                    # CPU, 2 threads, batches 16 and 64
    python benchmarks/synthesis.py --device cuda --batch-sizes 64 256 1024
    python benchmarks/synthesis.py --methods cutpaste nsa --seconds 1

Numbers depend on the machine and on what else runs on it; run on an idle machine to compare, and
compare ratios within one run. The OpenMP wait policy (``OMP_WAIT_POLICY``, read when Python starts;
the header prints it) changes the comparison: the batched contenders run a few dozen multi-threaded
ops per call, and with ``PASSIVE`` every one of them wakes the sleeping worker threads (about 0.1 ms
each on a 2-core machine), which the per-sample references, single-threaded numpy loops, never pay.
The default policy (threads spin briefly between ops) is what a training process runs with; on a
machine shared with other jobs, spinning threads that wait for a descheduled partner can make every
multi-threaded number collapse, and ``PASSIVE`` is steadier there but slows the batched paths.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

from fgad.augment import create_synthesizer, list_synthesizers

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


def draem_style(
    images: list[np.ndarray], textures: list[np.ndarray], rng: np.random.Generator, foreground: bool = True
) -> list:
    """Per-sample numpy / cv2 / PIL synthesis, the way DRAEM's data loader does it."""
    return [draem_one(img, tex, rng, foreground) for img, tex in zip(images, textures, strict=True)]


def draem_one(img: np.ndarray, tex: np.ndarray, rng: np.random.Generator, foreground: bool = True) -> tuple:
    """One sample of :func:`draem_style`."""
    img = rotate_input(img, rng)
    texture = texture_ops(tex, rng)
    perlin = perlin_mask(img.shape[:2], rng)
    if foreground:
        perlin &= otsu_foreground(img)
    return blend(img, texture, perlin, rng)


def rotate_input(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The input rotated with probability 0.3 (reflected border), as DRAEM's loader does."""
    if rng.random() >= 0.3:
        return img
    h, w = img.shape[:2]
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-90, 90), 1.0)
    return cv2.warpAffine(img, rot, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def texture_ops(tex: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Three of the six PIL ops in random order, as float32 in [0, 1]."""
    pil = Image.fromarray(tex)
    for k in rng.choice(6, 3, replace=False):
        pil = _PIL_OPS[k](pil, rng)
    return np.asarray(pil, dtype=np.float32) / 255


def perlin_mask(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A rotated Perlin noise thresholded at 0.5 (bool)."""
    h, w = shape
    cells = (2 ** int(rng.integers(0, 6)), 2 ** int(rng.integers(0, 6)))
    noise = perlin_numpy((h, w), cells, rng).astype(np.float32)
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-90, 90), 1.0)
    return cv2.warpAffine(noise, rot, (w, h), flags=cv2.INTER_LINEAR, borderValue=0) > 0.5


def otsu_foreground(img: np.ndarray) -> np.ndarray:
    """The bare grey-level Otsu class that covers less of the image border (bool)."""
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    t, _ = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    above = gray > t
    border = np.concatenate((above[0], above[-1], above[:, 0], above[:, -1]))
    return above if border.mean() <= 0.5 else ~above


def blend(img: np.ndarray, texture: np.ndarray, perlin: np.ndarray, rng: np.random.Generator) -> tuple:
    """Eq. 2 in float32: the sample (augmented, image, mask, label)."""
    mask = perlin.astype(np.float32)[..., None]
    beta = rng.uniform(0.1, 1.0)
    image = img.astype(np.float32) / 255
    augmented = image * (1 - mask) + (1 - beta) * image * mask + beta * texture * mask
    return augmented, image, mask, float(mask.any())


# --------------------------------------------------------------------------- patch references
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)


def colour_jitter(patch: np.ndarray, rng: np.random.Generator, strength: float = 0.1) -> np.ndarray:
    """The affine colour jitter of fgad's CutPaste on one float32 (h, w, 3) patch, with numpy."""
    b, c, s = rng.uniform(1 - strength, 1 + strength, 3)
    theta = rng.uniform(-strength, strength) * 2 * np.pi
    saturation = s * np.eye(3) + (1 - s) * _LUMA[None, :]
    k = np.full(3, 1 / np.sqrt(3))
    cross = np.array([[0, -1, 1], [1, 0, -1], [-1, 1, 0]]) / np.sqrt(3)
    rotation = np.cos(theta) * np.eye(3) + np.sin(theta) * cross + (1 - np.cos(theta)) * np.outer(k, k)
    matrix = (rotation @ saturation * (b * c)).astype(np.float32)
    mean = float((patch[::max(1, patch.shape[0] // 8), ::max(1, patch.shape[1] // 8)] @ _LUMA).mean())
    return np.clip(patch @ matrix.T + np.float32((1 - c) * b * mean), 0, 1)


def cutpaste_one(img: np.ndarray, rng: np.random.Generator) -> tuple:
    """CutPaste on one uint8 image: a jittered rectangle of the image pasted elsewhere in it."""
    h_img, w_img = img.shape[:2]
    area = rng.uniform(0.02, 0.15) * h_img * w_img
    aspect = rng.uniform(1, 3.3) if rng.random() < 0.5 else rng.uniform(0.3, 1)
    h = int(np.clip(round(np.sqrt(area * aspect)), 1, h_img))
    w = int(np.clip(round(np.sqrt(area / aspect)), 1, w_img))
    sy, sx = rng.integers(0, h_img - h + 1), rng.integers(0, w_img - w + 1)
    ty, tx = rng.integers(0, h_img - h + 1), rng.integers(0, w_img - w + 1)
    image = img.astype(np.float32) / 255
    out = image.copy()
    out[ty : ty + h, tx : tx + w] = colour_jitter(image[sy : sy + h, sx : sx + w], rng)
    mask = np.zeros((h_img, w_img, 1), np.float32)
    mask[ty : ty + h, tx : tx + w] = 1
    return out, image, mask, 1.0


def scar_one(img: np.ndarray, rng: np.random.Generator) -> tuple:
    """CutPaste-Scar on one uint8 image: a jittered thin rectangle, rotated (cv2) and pasted."""
    h_img, w_img = img.shape[:2]
    h, w = int(rng.integers(10, 26)), int(rng.integers(2, 17))
    sy, sx = rng.integers(0, h_img - h + 1), rng.integers(0, w_img - w + 1)
    image = img.astype(np.float32) / 255
    patch = colour_jitter(image[sy : sy + h, sx : sx + w], rng)
    angle = rng.uniform(-45, 45)
    side = int(np.ceil(np.hypot(h, w))) + 2
    rot = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
    rot[:, 2] += ((side - w) / 2, (side - h) / 2)
    warped = cv2.warpAffine(patch, rot, (side, side), flags=cv2.INTER_LINEAR)
    inside = cv2.warpAffine(np.ones((h, w), np.uint8), rot, (side, side), flags=cv2.INTER_NEAREST) > 0
    ty, tx = rng.integers(0, h_img - side + 1), rng.integers(0, w_img - side + 1)
    out = image.copy()
    region = out[ty : ty + side, tx : tx + side]
    region[inside] = warped[inside]
    mask = np.zeros((h_img, w_img, 1), np.float32)
    mask[ty : ty + side, tx : tx + side, 0] = inside
    return out, image, mask, 1.0


def nsa_one(img: np.ndarray, bank: list[np.ndarray], rng: np.random.Generator) -> tuple:
    """NSA on one uint8 image: a cut of a bank image, resized (cv2) and cv2.seamlessClone'd in."""
    h_img, w_img = img.shape[:2]
    dh = int(np.clip(round(rng.uniform(0.1, 0.4) * h_img), 1, h_img - 2))
    dw = int(np.clip(round(rng.uniform(0.1, 0.4) * w_img), 1, w_img - 2))
    scale = rng.uniform(0.7, 1.3)
    sh = int(np.clip(round(dh / scale), 1, h_img))
    sw = int(np.clip(round(dw / scale), 1, w_img))
    src = bank[rng.integers(len(bank))]
    sy, sx = rng.integers(0, h_img - sh + 1), rng.integers(0, w_img - sw + 1)
    # the cut with a margin, so that the unknowns of cv2's solve are the dh x dw patch
    patch = cv2.resize(src[sy : sy + sh, sx : sx + sw], (dw + 4, dh + 4), interpolation=cv2.INTER_LINEAR)
    ty, tx = rng.integers(1, h_img - dh), rng.integers(1, w_img - dw)
    full = np.full(patch.shape[:2], 255, np.uint8)
    centre = (int(tx) - 1 + (dw + 2) // 2, int(ty) - 1 + (dh + 2) // 2)
    out = cv2.seamlessClone(patch, img, full, centre, cv2.NORMAL_CLONE).astype(np.float32) / 255
    mask = np.zeros((h_img, w_img, 1), np.float32)
    mask[ty : ty + dh, tx : tx + dw] = 1
    return out, img.astype(np.float32) / 255, mask, 1.0


def mixed_one(img: np.ndarray, tex: np.ndarray, bank: list[np.ndarray], rng: np.random.Generator) -> tuple:
    """The mixture's reference: DRAEM-style 0.5, scar 0.25, NSA 0.25, chosen per sample."""
    u = rng.random()
    if u < 0.5:
        return draem_one(img, tex, rng, foreground=False)
    return scar_one(img, rng) if u < 0.75 else nsa_one(img, bank, rng)


def collate(samples: list[tuple]) -> tuple[torch.Tensor, ...]:
    """The per-sample results as the batch a training step takes (what fgad's synthesizers return):
    images, targets and masks (B, C, H, W) and labels (B,), as a DataLoader's collate stacks them."""
    columns = list(zip(*samples, strict=True))
    batch = [torch.from_numpy(np.stack(column)).permute(0, 3, 1, 2) for column in columns[:3]]
    return (*batch, torch.tensor(columns[3]))


def references(
    images: list[np.ndarray], textures: list[np.ndarray], bank: list[np.ndarray], rng: np.random.Generator
) -> dict[str, Callable[[], object]]:
    """Per-sample reference loops, by method name, each collated into a batch."""
    pairs = list(zip(images, textures, strict=True))
    return {
        "fgad": lambda: collate(draem_style(images, textures, rng, True)),
        "draem": lambda: collate(draem_style(images, textures, rng, False)),
        "cutpaste": lambda: collate([cutpaste_one(img, rng) for img in images]),
        "cutpaste_scar": lambda: collate([scar_one(img, rng) for img in images]),
        "nsa": lambda: collate([nsa_one(img, bank, rng) for img in images]),
        "mixed": lambda: collate([mixed_one(img, tex, bank, rng) for img, tex in pairs]),
    }


def anomalib_contenders(device: torch.device) -> dict[str, Callable[[torch.Tensor], object]]:
    """anomalib's per-image implementations, by method name (empty when anomalib is missing)."""
    out: dict[str, Callable[[torch.Tensor], object]] = {}
    try:
        from anomalib.data.utils.generators.perlin import PerlinAnomalyGenerator

        perlin = PerlinAnomalyGenerator(probability=1.0, blend_factor=(0.1, 1.0))
        out["fgad"] = out["draem"] = perlin
    except ImportError:
        pass
    try:
        from anomalib.models.image.foundad.components.cutpaste import CutPasteNormal, CutPasteScar

        normal = CutPasteNormal(area_ratio=(0.02, 0.15), aspect_ratio=0.3, color_jitter=0.1)
        scar = CutPasteScar(color_jitter=0.1)
        out["cutpaste"] = lambda images: torch.stack([normal(img) for img in images])
        out["cutpaste_scar"] = lambda images: torch.stack([scar(img) for img in images])
    except ImportError:
        pass
    return out


def build(name: str, device: torch.device) -> torch.nn.Module:
    """fgad's synthesizer ``name`` as benchmarked (see the module docstring)."""
    if name == "fgad":
        return create_synthesizer("fgad", foreground="otsu", anomaly_prob=1.0).to(device)
    return create_synthesizer(name, foreground=None, anomaly_prob=1.0).to(device)


# --------------------------------------------------------------------------- timing
def measure_together(
    fns: dict[str, Callable[[], object]], batch: int, seconds: float, sync: Callable[[], None]
) -> dict[str, float]:
    """Median images/s of each contender, timed in turn (one call each per round, at least 5 rounds,
    about ``seconds`` per contender), so that a change of load on a shared machine hits all alike."""
    for fn in fns.values():
        fn()
        sync()
    rates: dict[str, list[float]] = {name: [] for name in fns}
    spent = dict.fromkeys(fns, 0.0)
    while min(len(r) for r in rates.values()) < 5 or min(spent.values()) < seconds:
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync()
            elapsed = time.perf_counter() - t0
            spent[name] += elapsed
            rates[name].append(batch / elapsed)
    return {name: statistics.median(r) for name, r in rates.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="device of the fgad synthesizers (cpu, cuda, ...)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--methods", nargs="+", default=None, help="registered names (default: all)")
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
    methods = args.methods or list_synthesizers()
    others = {} if args.no_references else anomalib_contenders(device)
    bank_u8 = _load_folder(DEMO, 64) or [rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)]

    def to_tensor(batch_u8: list[np.ndarray]) -> torch.Tensor:
        layout = torch.contiguous_format if args.layout == "contiguous" else torch.channels_last
        tensor = torch.from_numpy(np.stack(batch_u8)).permute(0, 3, 1, 2).float().div(255)
        return tensor.to(device).contiguous(memory_format=layout)

    bank = to_tensor(bank_u8)
    policy = os.environ.get("OMP_WAIT_POLICY", "default")
    print(f"device={device} threads={args.threads} OMP_WAIT_POLICY={policy} size={SIZE}x{SIZE} RGB "
          f"({args.layout}), every sample anomalous")
    header = f"{'method':>14} {'batch':>5} {'fgad img/s':>11} {'reference':>10} {'x':>6}"
    print(f"{header} {'anomalib':>9} {'x':>6}")
    for batch in args.batch_sizes:
        images_u8, textures_u8 = load_inputs(batch, rng)
        images, textures = to_tensor(images_u8), to_tensor(textures_u8)
        loops = references(images_u8, textures_u8, bank_u8, rng)
        for name in methods:
            synth = build(name, device)
            source: object = bank if name == "nsa" else textures
            if name == "mixed":  # textures for fgad, the photo bank for nsa (as the references)
                source = {"fgad": textures, "nsa": bank}
            gen = torch.Generator(device=device).manual_seed(0)
            contenders: dict[str, Callable[[], object]] = {
                "fgad": partial(torch.no_grad()(synth), images, source, generator=gen)
            }
            if not args.no_references:
                if name in loops:
                    contenders["reference"] = loops[name]
                if name in others:
                    contenders["anomalib"] = partial(torch.no_grad()(others[name]), images)
            rates = measure_together(contenders, batch, args.seconds, sync)
            rate = rates["fgad"]
            ref_rate = rates.get("reference", float("nan"))
            other_rate = rates.get("anomalib", float("nan"))
            print(f"{name:>14} {batch:>5} {rate:>11.1f} {ref_rate:>10.1f} {rate / ref_rate:>6.2f} "
                  f"{other_rate:>9.1f} {rate / other_rate:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
