"""Speed of the detectors: training step and inference throughput, ``fgad`` (ECA) vs ``draem``.

Measures, for each model and precision mode:

* training step: forward + backward + Adam step of both networks (batch 4, 256 x 256 by default),
  with ``MSE(reconstruction, image) + cross_entropy(logits, mask)`` as the loss (a stand-in for
  ``fgad.losses.FGADLoss`` that keeps this script independent of the losses package; the loss is a
  negligible share of the step);
* inference: images per second of ``model(images)`` in eval mode under ``torch.inference_mode``
  (batch 1 and 16 by default), including the mean filter and the score.

Each number is the median of ``--repeats`` timed runs after ``--warmup`` untimed ones. The script
prints a table, the ``fgad / draem`` ratios (the paper's ECA should cost <= 5%), and optionally
writes JSON. Precision modes: ``fp32`` (float32, contiguous; on CUDA with TF32 off unless
``--tf32``) and ``bf16-cl`` (``torch.autocast(dtype=torch.bfloat16)`` + ``channels_last``).

Usage::

    python benchmarks/models.py                          # CPU, default widths (slow: minutes)
    python benchmarks/models.py --width 32 --repeats 5   # CPU, small widths
    python benchmarks/models.py --device cuda            # GPU: fp32 vs bf16 autocast + channels_last
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fgad.models import create_model  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn: Callable[[], None], device: torch.device, warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


@contextlib.contextmanager
def _precision(mode: str, device: torch.device) -> Iterator[None]:
    if mode == "bf16-cl":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


def _build(name: str, width: int | None, device: torch.device, mode: str) -> torch.nn.Module:
    kwargs: dict[str, Any] = {} if width is None else {"base_width": width}
    model = create_model(name, device=device, **kwargs)
    if mode == "bf16-cl":
        model = model.to(memory_format=torch.channels_last)
    return model


def _images(batch: int, size: int, device: torch.device, mode: str) -> torch.Tensor:
    x = torch.rand(batch, 3, size, size, device=device)
    return x.to(memory_format=torch.channels_last) if mode == "bf16-cl" else x


def _train_step(name: str, args: argparse.Namespace, device: torch.device, mode: str) -> Callable[[], None]:
    torch.manual_seed(0)
    model = _build(name, args.width, device, mode).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
    images = _images(args.train_batch, args.size, device, mode)
    mask = (torch.rand(args.train_batch, args.size, args.size, device=device) > 0.9).long()

    def step() -> None:
        optimiser.zero_grad(set_to_none=True)
        with _precision(mode, device):
            out = model(images)
            loss = F.mse_loss(out.reconstruction.float(), images) + F.cross_entropy(out.logits.float(), mask)
        loss.backward()
        optimiser.step()

    return step


def _inference(
    name: str, batch: int, args: argparse.Namespace, device: torch.device, mode: str
) -> Callable[[], None]:
    torch.manual_seed(0)
    model = _build(name, args.width, device, mode).eval()
    images = _images(batch, args.size, device, mode)

    def run() -> None:
        with torch.inference_mode(), _precision(mode, device):
            model(images)

    return run


def _interleaved(
    fns: dict[str, Callable[[], None]], device: torch.device, warmup: int, repeats: int
) -> dict[str, list[float]]:
    """Time the models in turn (a, b, a, b, ...) so that load from other processes hits both alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    _sync(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name] += _time(fn, device, 0, 1)
    return times


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    parser.add_argument("--models", nargs="+", default=["fgad", "draem"])
    parser.add_argument("--width", type=int, default=None, help="base_width (default: the models' 128/64)")
    parser.add_argument("--size", type=int, default=256, help="image side")
    parser.add_argument("--train-batch", type=int, default=4)
    parser.add_argument("--infer-batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--modes", nargs="+", default=None, choices=["fp32", "bf16-cl"])
    parser.add_argument("--tf32", action="store_true", help="allow TF32 in float32 CUDA convolutions")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    modes = args.modes or (["fp32", "bf16-cl"] if device.type == "cuda" else ["fp32"])
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = args.tf32
        torch.backends.cuda.matmul.allow_tf32 = args.tf32

    env = {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "width": args.width or "default (128/64)",
        "size": args.size,
        "train_batch": args.train_batch,
        "repeats": args.repeats,
        "warmup": args.warmup,
    }
    print(json.dumps(env))
    results: dict[str, dict[str, dict[str, float]]] = {}
    for mode in modes:
        rows: dict[str, dict[str, float]] = {name: {} for name in args.models}
        if not args.skip_train:
            fns = {name: _train_step(name, args, device, mode) for name in args.models}
            for name, t in _interleaved(fns, device, args.warmup, args.repeats).items():
                rows[name].update(train_step_s=statistics.median(t), train_step_min_s=min(t))
            del fns
        for batch in args.infer_batches:
            fns = {name: _inference(name, batch, args, device, mode) for name in args.models}
            for name, t in _interleaved(fns, device, args.warmup, args.repeats).items():
                rows[name][f"infer_b{batch}_img_per_s"] = batch / statistics.median(t)
            del fns
        results[mode] = rows
        for name, row in rows.items():
            print(f"[{mode}] {name}: " + ", ".join(f"{k}={v:.4g}" for k, v in row.items()), flush=True)

    ratios: dict[str, dict[str, float]] = {}
    for mode, rows in results.items():
        if "fgad" in rows and "draem" in rows:
            ratios[f"{mode}: fgad/draem"] = {
                k: (
                    rows["fgad"][k] / rows["draem"][k]
                    if k.startswith("train")
                    else rows["draem"][k] / rows["fgad"][k]
                )
                for k in rows["fgad"]
            }
    if device.type == "cuda" and {"fp32", "bf16-cl"} <= set(results):
        for name in args.models:
            fp32, bf16 = results["fp32"][name], results["bf16-cl"][name]
            ratios[f"{name}: bf16-cl speed-up over fp32"] = {
                k: (fp32[k] / bf16[k] if k.startswith("train") else bf16[k] / fp32[k]) for k in fp32
            }
    print("\nratios (time ratio: > 1 means the first is slower; for ECA overhead 1.05 = 5%):")
    for key, row in ratios.items():
        print(f"  {key}: " + ", ".join(f"{k}={v:.3f}" for k, v in row.items()))
    env["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    report = {"env": env, "results": results, "ratios": ratios}
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_suffix(args.json.suffix + ".tmp")
        tmp.write_text(json.dumps(report, indent=2))
        os.replace(tmp, args.json)
    print(f"loadavg at end: {env['loadavg_end']}")
    return report


if __name__ == "__main__":
    main()
