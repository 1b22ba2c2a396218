"""DDP on 2 CPU processes (gloo) launched by torchrun (``python -m torch.distributed.run``)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from fgad.data import DEMO_CATEGORY, demo_root
from fgad.engine import load_checkpoint
from fgad.engine.distributed import DistInfo, resolve_device, setup
from fgad.engine.trainer import synthesis_seed

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")


def test_single_process_without_torchrun_has_no_process_group(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    info = setup("cpu")
    assert info == DistInfo(0, 1, 0, torch.device("cpu"), None) and info.is_main and not info.distributed
    assert not dist.is_initialized()
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu:0")


def test_torchrun_two_cpu_processes(tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    argv = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "fgad.cli", "train",
        "--dataset", "mvtec", "--root", os.fspath(demo_root().parent), "--category", DEMO_CATEGORY,
        "--image-size", "32", "--model", "fgad", "--model-arg", "ae_width=4", "--model-arg", "seg_width=4",
        "--batch-size", "4", "--max-steps", "6", "--val-fraction", "0.15", "--val-copies", "1",
        "--num-workers", "0", "--device", "cpu", "--output", os.fspath(run), "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-4000:]
    with (run / "log.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    # 24 training images split over 2 ranks = 12 each; batch 4 -> 3 steps per epoch (6 in one process).
    assert [(r["epoch"], r["step"]) for r in rows] == [("1", "3"), ("2", "6")]
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert not any(k.startswith("module.") for k in state.model)
    # One synthesis generator per rank, seeded differently, both saved by rank 0.
    assert len(state.synthesis_rng) == 2 and not torch.equal(*state.synthesis_rng)
    fresh = torch.Generator().manual_seed(synthesis_seed(0, 0)).get_state()
    assert not torch.equal(state.synthesis_rng[0], fresh)  # it advanced during training
    assert json.loads((run / "config.json").read_text())["calibration"]["num_images"] == 4
    assert (run / "model" / "model.safetensors").is_file()
    # Only rank 0 writes: no stray temporary files, one log.
    assert not [p for p in run.rglob("*.tmp")]
