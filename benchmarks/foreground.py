"""Foreground quality and cost on real photos with defect masks: ``auto`` against the paper's ``otsu``.

Per data set (MVTec AD layout: the bundled hazelnut photos by default, plus any ``--data
KIND:ROOT:CATEGORY``) and image size, for every foreground method:

- share: mean share of the defect pixels of a defective test image that lie inside its foreground
  (defects lie on the object; a crack that opens an object to the background lowers it even for a
  perfect mask of the pieces),
- below: share of the defective images with less than half their defect pixels inside,
- area: mean foreground area (share of the frame) over all test images,
- whole: share of test images whose foreground is the whole frame (texture / fallback),
- rot IoU: mean IoU between the foreground of a rotated image and the rotated foreground of the
  image (angles uniform in [-90, 90], seeded): how much computing the foreground once per training
  image (``ForegroundCache``) changes it for the 30% of samples the synthesizer rotates,
- ms: milliseconds per batch of 16 (median of ``--repeats``), and x otsu: the median over the repeats
  of its time over ``otsu``'s in the same repeat (methods timed in turn: robust to a busy machine).

    python benchmarks/foreground.py --data mvtec:../shared/data/devset:cookie --size 128 256
    python benchmarks/foreground.py --grid out/   # also writes image | foreground grids per data set
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from fgad.augment import ForegroundMask
from fgad.data import DEMO_CATEGORY, MVTecAD, demo_root, to_float

METHODS = {
    "otsu": dict(method="otsu"),
    "auto": dict(method="auto"),
    "auto-nohull": dict(method="auto", hull=False),
}


def load(kind_root_cat: str, size: int):
    if kind_root_cat == "demo":
        root, cat = str(demo_root().parent), DEMO_CATEGORY
    else:
        _, root, cat = kind_root_cat.split(":")
    data = MVTecAD(root, cat, split="test", image_size=size)
    items = [data[i] for i in range(len(data))]
    images = to_float(torch.stack([it["image"] for it in items]), "cpu")
    masks = torch.stack([it["mask"] for it in items]).float()
    labels = torch.tensor([it["label"] for it in items])
    name = "demo" if kind_root_cat == "demo" else cat
    return name, images, masks, labels


def quality(fm: ForegroundMask, images, masks, labels):
    fgs, whole = [], []
    for start in range(0, len(images), 16):
        fg = fm(images[start : start + 16])
        fgs.append(fg)
        whole.append(fm.last_fallback)
    fg = torch.cat(fgs)
    whole = torch.cat(whole)
    defective = labels.bool() & (masks.flatten(1).sum(1) > 0)
    inside = (fg * masks).flatten(1).sum(1) / masks.flatten(1).sum(1).clamp_min(1)
    share = inside[defective]
    return {
        "share": float(share.mean()),
        "below": float((share < 0.5).float().mean()),
        "area": float(fg.mean()),
        "whole": float(whole.float().mean()),
    }, fg


def rotation_iou(fm: ForegroundMask, images) -> float:
    from fgad.augment.synthesizer import _rotate

    g = torch.Generator().manual_seed(0)
    angle = torch.rand(len(images), generator=g) * 180.0 - 90.0
    direct = torch.cat(
        [fm(_rotate(images[i : i + 16], angle[i : i + 16])) for i in range(0, len(images), 16)]
    )
    cached = _rotate(torch.cat([fm(images[i : i + 16]) for i in range(0, len(images), 16)]), angle) > 0.5
    direct = direct > 0.5
    inter = (direct & cached).flatten(1).sum(1).float()
    union = (direct | cached).flatten(1).sum(1).float().clamp_min(1)
    return float((inter / union).mean())


def timings(modules: dict[str, ForegroundMask], images, repeats: int) -> dict[str, tuple[float, float]]:
    """Per method: median ms per batch of 16 and the median over repeats of its time / the first
    method's time in the same repeat (the methods are timed in turn within every repeat, so a change
    in the machine's load hits them alike and the ratio stays meaningful on a busy machine)."""
    batch = images[:16]
    if len(batch) < 16:
        batch = batch.repeat((16 + len(batch) - 1) // len(batch), 1, 1, 1)[:16]
    times: dict[str, list[float]] = {name: [] for name in modules}
    for fm in modules.values():
        fm(batch)
    for _ in range(repeats):
        for name, fm in modules.items():
            t = time.perf_counter()
            fm(batch)
            times[name].append((time.perf_counter() - t) * 1000)
    first = times[next(iter(modules))]
    return {
        name: (statistics.median(v), statistics.median(a / b for a, b in zip(v, first, strict=True)))
        for name, v in times.items()
    }


def save_grid(path: Path, images, fgs: dict[str, torch.Tensor], masks, count: int = 8) -> None:
    import cv2
    import numpy as np

    idx = torch.linspace(0, len(images) - 1, min(count, len(images))).round().long().unique()
    rows = []
    for i in idx.tolist():
        img = (images[i].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        tiles = [img]
        for fg in fgs.values():
            m = fg[i, 0].numpy() > 0.5
            t = (img * 0.35).astype(np.uint8)
            t[m] = img[m]
            edge = masks[i, 0].numpy() > 0.5
            t[edge] = (0.5 * t[edge] + 0.5 * np.array([255, 0, 0])).astype(np.uint8)
            tiles.append(t)
        rows.append(np.concatenate(tiles, axis=1))
    grid = np.concatenate(rows, axis=0)
    header = np.full((24, grid.shape[1], 3), 255, np.uint8)
    w = images.shape[-1]
    for k, name in enumerate(["image", *fgs]):
        cv2.putText(header, name, (k * w + 4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate([header, grid]), cv2.COLOR_RGB2BGR))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", action="append", default=None, help="'demo' or KIND:ROOT:CATEGORY (repeatable)")
    p.add_argument("--size", type=int, nargs="+", default=[128, 256])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--grid", type=Path, help="folder for image | foreground grids (defects in red)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = args.data or ["demo"]
    print("| data | size | method | share | below 0.5 | area | whole frame | rot IoU | ms / 16 | x otsu |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for spec in data:
        for size in args.size:
            name, images, masks, labels = load(spec, size)
            modules = {method: ForegroundMask(**kwargs) for method, kwargs in METHODS.items()}
            results, fgs = {}, {}
            for method, fm in modules.items():
                results[method], fgs[method] = quality(fm, images, masks, labels)
            for method, (ms, ratio) in timings(modules, images, args.repeats).items():
                results[method]["ms"], results[method]["ratio"] = ms, ratio
                results[method]["rot"] = rotation_iou(modules[method], images)
            for method, r in results.items():
                print(
                    f"| {name} | {size} | {method} | {r['share']:.3f} | {r['below']:.2f} | {r['area']:.2f} | "
                    f"{r['whole']:.2f} | {r['rot']:.3f} | {r['ms']:.1f} | {r['ratio']:.2f} |",
                    flush=True,
                )
            if args.grid is not None:
                save_grid(args.grid / f"{name}_{size}.png", images, fgs, masks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
