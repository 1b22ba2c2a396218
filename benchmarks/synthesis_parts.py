"""Where the time of the Perlin + texture synthesis goes: fgad's batched path part by part, beside the
same parts of the per-sample DRAEM-style reference of ``benchmarks/synthesis.py``, in one run.

Both run on the same batch (the demo photos and the shared textures, 256 x 256 RGB, every sample
anomalous, fgad with the paper's Otsu foreground). Each part is timed by wrapping the function that
does it (wall clock, summed over the calls of a round); the rounds alternate between fgad and the
reference, and the median round is reported. "Blend and the rest" is the total minus the parts.

    python benchmarks/synthesis_parts.py                 # batch 16, one thread
    python benchmarks/synthesis_parts.py --batch 64 --threads 2
    python benchmarks/synthesis_parts.py --device cuda   # fgad on the accelerator (each part synchronised)

With one thread the parts add up to the work each side does; with more, fgad's parts are wall-clock
times of multi-threaded ops, while the reference stays a single-threaded loop.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synthesis as reference  # noqa: E402  (the sibling benchmark's reference and inputs)

import fgad.augment.foreground as fg_module  # noqa: E402
import fgad.augment.synthesizer as synth_module  # noqa: E402
from fgad.augment import AnomalySynthesizer, ForegroundMask, PerlinMask, TextureAugment  # noqa: E402

# (label, owner, attribute): the functions whose time is a part. Sub-parts are indented.
FGAD_PARTS = [
    ("range checks", synth_module, "check_values"),
    ("input rotation", synth_module, "_rotate"),
    ("texture ops", TextureAugment, "forward"),
    ("Perlin noise", PerlinMask, "noise"),
    ("foreground", ForegroundMask, "foreground"),
    ("  grey levels + Otsu", ForegroundMask, "_otsu_split"),
    ("  closing, holes, opening", fg_module, "clean_masks"),
]
REFERENCE_PARTS = [
    ("input rotation", reference, "rotate_input"),
    ("texture ops", reference, "texture_ops"),
    ("Perlin noise", reference, "perlin_mask"),
    ("foreground", reference, "otsu_foreground"),
]
TOTAL = "total"


def _no_sync() -> None:
    return None


@contextlib.contextmanager
def timed(
    parts: list[tuple[str, object, str]], totals: dict[str, float], sync: Callable[[], None] = _no_sync
) -> Iterator[None]:
    """Wrap every part's function so that its wall time adds to ``totals[label]`` (``sync`` waits for
    the device before and after it); unwrap after."""
    saved = []
    for label, owner, name in parts:
        original = getattr(owner, name)
        saved.append((owner, name, original))

        def wrapper(*args: object, _f: Callable = original, _label: str = label, **kwargs: object) -> object:
            sync()
            start = time.perf_counter()
            try:
                return _f(*args, **kwargs)
            finally:
                sync()
                totals[_label] += time.perf_counter() - start

        setattr(owner, name, wrapper)
    try:
        yield
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)


def one_round(
    parts: list[tuple[str, object, str]], fn: Callable[[], object], sync: Callable[[], None]
) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    with timed(parts, totals, sync):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        totals[TOTAL] = time.perf_counter() - start
    return totals


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (and OpenCV's)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--device", default="cpu", help="device of fgad's synthesizer (the reference: CPU)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else _no_sync
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)

    rng = np.random.default_rng(0)
    images_u8, textures_u8 = reference.load_inputs(args.batch, rng)

    def to_tensor(batch: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).float().div_(255).contiguous()

    images, textures = to_tensor(images_u8).to(device), to_tensor(textures_u8).to(device)
    synth = AnomalySynthesizer(foreground="otsu", anomaly_prob=1.0).to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    contenders = {
        "fgad": (FGAD_PARTS, lambda: synth(images, textures, generator=gen), sync),
        "reference": (
            REFERENCE_PARTS,
            lambda: reference.draem_style(images_u8, textures_u8, rng, True),
            _no_sync,
        ),
    }
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    with torch.no_grad():
        for _ in range(3):
            for _parts, fn, wait in contenders.values():
                fn()
                wait()
        for _ in range(args.rounds):
            for name, (parts, fn, wait) in contenders.items():
                rounds[name].append(one_round(parts, fn, wait))

    def median_ms(name: str, label: str) -> float:
        return 1000 * statistics.median(r.get(label, 0.0) for r in rounds[name])

    print(
        f"device={device} batch={args.batch} threads={args.threads} size=256x256 RGB, "
        f"rounds={args.rounds}, ms per batch"
    )
    print(f"{'part':<28} {'fgad':>8} {'share':>6} {'reference':>10} {'share':>6} {'x':>6}")
    labels = [label for label, _, _ in FGAD_PARTS]
    top = {
        name: [label for label, _, _ in parts if not label.startswith(" ")]
        for name, (parts, _, _) in contenders.items()
    }
    # x: how many times longer the reference takes for the part than fgad
    totals = {name: median_ms(name, TOTAL) for name in contenders}
    for label in [*labels, "blend and the rest", TOTAL]:
        cells = []
        for name in contenders:
            if label == "blend and the rest":
                value = totals[name] - sum(median_ms(name, part) for part in top[name])
            elif label == TOTAL or any(label == part for part, _, _ in contenders[name][0]):
                value = median_ms(name, label)
            else:
                value = float("nan")
            cells.append(value)
        shares = [value / totals[name] for value, name in zip(cells, contenders, strict=True)]
        ratio = cells[1] / cells[0] if cells[0] > 0 else float("nan")
        columns = [(cells[0], 8, ".2f"), (shares[0], 6, ".0%"), (cells[1], 10, ".2f"), (shares[1], 6, ".0%")]
        columns.append((ratio, 6, ".2f"))
        text = ("-".rjust(w) if math.isnan(v) else format(v, f">{w}{f}") for v, w, f in columns)
        print(f"{label:<28} " + " ".join(text))


if __name__ == "__main__":
    main()
