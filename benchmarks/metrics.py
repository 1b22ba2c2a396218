"""Time fgad's evaluation metrics on the CPU, side by side with anomalib's when it is installed.

Usage::

    python benchmarks/metrics.py                      # 60 and 400 maps of 256 x 256, 2 threads
    python benchmarks/metrics.py --sizes 60 --repeats 5 --json out.json
    python benchmarks/metrics.py --no-anomalib

For every size it builds seeded, model-like anomaly maps (smooth noise plus blurred defects, float32) and
ground-truth masks (half of the images with 1-3 elliptic defects), then reports the best (and median) wall
time of each metric over ``--fgad-repeats`` / ``--repeats`` runs, interleaving fgad and anomalib so that
both see the same background load, and the largest difference between their values (anomalib computes in
float32, fgad in float64 from exact counts). anomalib's metrics are fed batches of 16 with ``update`` and
then ``compute``d, as in a test loop; fgad's functions get all maps at once, and fgad's ``Evaluator`` is fed
the same batches of 16 and computes every image and pixel metric from a single sort. The sort section
compares numpy and torch CPU sorts on as many values as the largest case holds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fgad.metrics import Evaluator, aupro, f1_max, image_auroc, pixel_ap, pixel_auroc  # noqa: E402

BATCH = 16


def make_data(n: int, size: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, 1, size, size) float32 maps in [0, 1] and uint8 masks; the first half of the images are normal."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, 1, size, size), dtype=np.uint8)
    maps = np.empty((n, 1, size, size), dtype=np.float32)
    for i in range(n):
        if i >= n // 2:
            for _ in range(rng.integers(1, 4)):
                center = (int(rng.integers(20, size - 20)), int(rng.integers(20, size - 20)))
                axes = (int(rng.integers(3, size // 6)), int(rng.integers(3, size // 6)))
                cv2.ellipse(masks[i, 0], center, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        noise = cv2.GaussianBlur(rng.random((size, size), dtype=np.float32), (0, 0), 4)
        defect = cv2.GaussianBlur(masks[i, 0].astype(np.float32), (0, 0), 3)
        maps[i, 0] = np.clip(
            0.5 * (noise - noise.min()) / np.ptp(noise) + 0.6 * defect * rng.uniform(0.3, 1), 0, 1
        )
    return maps, masks


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), value


def fgad_cases(maps: np.ndarray, masks: np.ndarray) -> dict[str, Callable[[], Any]]:
    t_maps, t_masks = torch.from_numpy(maps), torch.from_numpy(masks)
    scores, labels = t_maps.amax(dim=(1, 2, 3)), t_masks.amax(dim=(1, 2, 3))

    def evaluator() -> dict[str, float]:
        ev = Evaluator()
        for i in range(0, len(maps), BATCH):
            sl = slice(i, i + BATCH)
            ev.update(scores[sl], labels[sl], t_maps[sl], t_masks[sl])
        return ev.compute()

    return {
        "image_auroc": lambda: image_auroc(scores, labels),
        "pixel_auroc": lambda: pixel_auroc(t_maps, t_masks),
        "pixel_ap": lambda: pixel_ap(t_maps, t_masks),
        "aupro": lambda: aupro(t_maps, t_masks),
        "pixel_f1_max": lambda: f1_max(t_maps, t_masks),
        "evaluator_all": evaluator,
    }


def anomalib_cases(maps: np.ndarray, masks: np.ndarray) -> dict[str, Callable[[], Any]] | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from anomalib.metrics import AUPRO, AUROC, F1Max
    except Exception as exc:  # anomalib is optional
        print(f"anomalib not available ({type(exc).__name__}: {exc}); timing fgad only")
        return None
    batches = [
        types.SimpleNamespace(
            anomaly_map=torch.from_numpy(maps[i : i + BATCH, 0]),
            gt_mask=torch.from_numpy(masks[i : i + BATCH, 0]).bool(),
        )
        for i in range(0, len(maps), BATCH)
    ]

    def run(cls: type) -> Callable[[], float]:
        def go() -> float:
            metric = cls(fields=["anomaly_map", "gt_mask"])
            for b in batches:
                metric.update(b)
            return float(metric.compute())

        return go

    return {"pixel_auroc": run(AUROC), "aupro": run(AUPRO), "pixel_f1_max": run(F1Max)}


def sort_cases(n: int) -> dict[str, Callable[[], Any]]:
    rng = np.random.default_rng(0)
    x = rng.random(n, dtype=np.float32)
    keys = rng.integers(-(2**62), 2**62, size=n, dtype=np.int64)
    tx = torch.from_numpy(x)
    return {
        "numpy sort float32": lambda: np.sort(x),
        "numpy sort int64 (packed keys)": lambda: np.sort(keys),
        "numpy argsort float32": lambda: np.argsort(x),
        "torch sort float32": lambda: torch.sort(tx),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[60, 400], help="numbers of maps")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each anomalib metric")
    parser.add_argument("--fgad-repeats", type=int, default=7, help="runs of each fgad metric")
    parser.add_argument("--threads", type=int, default=2, help="torch / OpenCV threads")
    parser.add_argument("--no-anomalib", action="store_true")
    parser.add_argument("--no-sorts", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="write the results here (atomically)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    print(f"CPU threads: torch {torch.get_num_threads()}, load average {os.getloadavg()}")
    results: dict[str, Any] = {"threads": args.threads, "load_average": os.getloadavg(), "sizes": {}}

    for n in args.sizes:
        maps, masks = make_data(n, args.image_size)
        ours = fgad_cases(maps, masks)
        theirs = None if args.no_anomalib else anomalib_cases(maps, masks)
        rows: dict[str, dict[str, Any]] = {}
        for name, fn in ours.items():
            other = theirs.get(name) if theirs is not None else None
            fn()  # warm-up (imports, allocator)
            if other is not None:
                other()
            # Interleaved, so that both libraries see the same background load.
            mine: list[float] = []
            their: list[float] = []
            value = a_value = None
            for i in range(max(args.fgad_repeats, args.repeats if other is not None else 0)):
                if i < args.fgad_repeats:
                    best, _, value = timed(fn, 1)
                    mine.append(best)
                if other is not None and i < args.repeats:
                    a_best, _, a_value = timed(other, 1)
                    their.append(a_best)
            rows[name] = {"fgad_s": min(mine), "fgad_median_s": statistics.median(mine), "fgad_value": value}
            if other is not None:
                rows[name].update(
                    anomalib_s=min(their),
                    anomalib_median_s=statistics.median(their),
                    anomalib_value=a_value,
                    speedup=min(their) / min(mine),
                    abs_diff=abs(a_value - value),
                )
        if theirs is not None:
            total = sum(rows[k]["anomalib_s"] for k in theirs)
            rows["evaluator_all"].update(anomalib_s=total, speedup=total / rows["evaluator_all"]["fgad_s"])
        results["sizes"][str(n)] = rows

        print(
            f"\n{n} maps of {args.image_size}x{args.image_size}: best of {args.fgad_repeats} (fgad) and "
            f"{args.repeats} (anomalib) interleaved runs, median in brackets"
        )
        print(f"{'metric':16s} {'fgad s':>16s} {'anomalib s':>16s} {'speed-up':>9s} {'|diff|':>9s}")
        for name, r in rows.items():
            fgad_s = f"{r['fgad_s']:.3f} ({r['fgad_median_s']:.3f})"
            if "anomalib_s" in r:
                med = f"({r['anomalib_median_s']:.3f})" if "anomalib_median_s" in r else "(sum)"
                their_s = f"{r['anomalib_s']:.3f} {med}"
                diff = f"{r['abs_diff']:.1e}" if "abs_diff" in r else ""
                print(f"{name:16s} {fgad_s:>16s} {their_s:>16s} {r['speedup']:8.1f}x {diff:>9s}")
            else:
                print(f"{name:16s} {fgad_s:>16s}")

    if not args.no_sorts:
        n = max(args.sizes) * args.image_size**2
        print(f"\nsorting {n} values (best of {args.repeats})")
        results["sorts"] = {}
        for name, fn in sort_cases(n).items():
            best, _, _ = timed(fn, args.repeats)
            results["sorts"][name] = best
            print(f"{name:32s} {best:.3f} s")

    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=args.json.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(results, f, indent=2, default=float)
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
