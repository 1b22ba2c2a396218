"""Kill a real ``python -m fgad.cli train`` process with SIGKILL, resume it, and compare with a clean run."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fgad.data import DEMO_CATEGORY, demo_root
from fgad.engine import get_preset, load_checkpoint

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")

# 24 training images (4 held back), batch 8 -> 3 steps per epoch; 30 steps -> 10 epochs.
STEPS = 30


def per_epoch_config(folder: Path) -> Path:
    """The ``paper`` preset (the CLI's default) with ``last.pt`` written at every epoch end (3 steps),
    so that the run can be killed between two checkpoints (at the default of 100 steps a 30-step run
    writes it only at its end)."""
    path = folder / "per_epoch.json"
    get_preset("paper", checkpoint_every_steps=3).to_json(path)
    return path


def train_argv(output: Path, config: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "fgad.cli",
        "train",
        "--config", os.fspath(config),
        "--dataset", "mvtec",
        "--root", os.fspath(demo_root().parent),
        "--category", DEMO_CATEGORY,
        "--image-size", "32",
        "--model", "fgad",
        "--model-arg", "ae_width=4",
        "--model-arg", "seg_width=4",
        "--batch-size", "8",
        "--max-steps", str(STEPS),
        "--val-fraction", "0.15",
        "--val-copies", "1",
        "--val-every", "3",
        "--num-workers", "1",
        "--device", "cpu",
        "--output", os.fspath(output),
        "--no-progress",
        *extra,
    ]  # fmt: skip


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def read_epochs(run: Path) -> list[int]:
    with (run / "log.csv").open(newline="") as fh:
        return [int(r["epoch"]) for r in csv.DictReader(fh)]


def test_sigkilled_run_resumes_and_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    killed_run = tmp_path / "killed"
    config = per_epoch_config(tmp_path)
    proc = subprocess.Popen(
        train_argv(killed_run, config), env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    last = killed_run / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it was killed: {err.decode()[-2000:]}"
    assert not (killed_run / "model").exists()
    saved = load_checkpoint(last)
    assert 1 <= saved.epoch < STEPS // 3 and saved.step == 3 * saved.epoch

    resumed = subprocess.run(
        train_argv(killed_run, config, "--resume"), env=env(), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming {killed_run} from epoch " in resumed.stderr
    assert int(resumed.stderr.split("from epoch ")[1].split()[0]) == saved.epoch
    assert read_epochs(killed_run) == list(range(1, STEPS // 3 + 1))  # every epoch exactly once
    final = load_checkpoint(last)
    assert (final.epoch, final.step) == (STEPS // 3, STEPS)

    clean_run = tmp_path / "clean"
    clean = subprocess.run(
        train_argv(clean_run, config), env=env(), capture_output=True, text=True, timeout=300
    )
    assert clean.returncode == 0, clean.stderr[-3000:]
    reference = load_checkpoint(clean_run / "checkpoints" / "last.pt")
    # Bit-exact on the CPU: same data order, synthesis stream, optimizer and scheduler state.
    for key, value in reference.model.items():
        assert torch.equal(final.model[key], value), key
    assert final.best_score == reference.best_score
    with (clean_run / "log.csv").open() as a, (killed_run / "log.csv").open() as b:
        losses_a = [r["loss"] for r in csv.DictReader(a)]
        losses_b = [r["loss"] for r in csv.DictReader(b)]
    assert losses_a == losses_b
