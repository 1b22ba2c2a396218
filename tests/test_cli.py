"""The ``fgad`` command line: help for every option, models, synth, a tiny demo, train / predict errors."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from fgad.cli import build_parser, config_from_args, main
from fgad.data import DEMO_CATEGORY, demo_root
from fgad.engine import TrainConfig, get_preset
from fgad.engine.report import FIGURE_GAP, TILE_SIZE

COMMANDS = ("benchmark", "foreground", "train", "evaluate", "predict", "demo", "models", "synth")
TINY = ["--image-size", "32", "--model", "fgad", "--model-arg", "ae_width=4", "--model-arg", "seg_width=4"]


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_and_option_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    subs = subparsers()
    assert set(subs) == set(COMMANDS)
    for name, sub in subs.items():
        for action in sub._actions:
            assert action.help and action.help.strip(), f"fgad {name} {action.option_strings} has no help"
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert capsys.readouterr().out.startswith(f"usage: fgad {name}")


def test_train_has_an_option_for_every_config_field() -> None:
    dests = {a.dest for a in subparsers()["train"]._actions}
    assert {f.name for f in dataclasses.fields(TrainConfig)} <= dests


def test_train_options_override_the_preset(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--preset", "cpu", "--max-steps", "none", "--foreground", "none", "--no-amp",
            "--model-arg", "ae_width=8", "--image-size", "64x96", "--lr-milestones", "0.5,0.75",
            "--print-config"]  # fmt: skip
    assert main(argv) == 0
    got = TrainConfig.from_dict(json.loads(capsys.readouterr().out))
    expected = get_preset("cpu").replace(
        max_steps=None, foreground=None, amp=False, model_kwargs={"ae_width": 8}, image_size=(64, 96),
        lr_milestones=(0.5, 0.75),
    )  # fmt: skip
    assert got == expected
    args = build_parser().parse_args(["train", "--preset", "draem_reference"])
    assert config_from_args(args) == get_preset("draem_reference")


def test_bad_values_fail_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--image-size", "big"])
    assert "expected SIZE or HxW" in capsys.readouterr().err
    assert main(["train", "--anomaly-prob", "2", "--print-config"]) == 1
    assert "anomaly_prob must be in [0, 1]" in capsys.readouterr().err


def test_models_lists_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    from fgad.models import list_models

    assert main(["models"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == list_models()
    assert main(["models", "draem*"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ["draem", "draem_small"]


def test_synth_writes_a_grid(tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    argv = ["synth", "--input", os.fspath(demo_root() / "train"), "--output", os.fspath(out), "--count", "3",
            "--image-size", "48"]  # fmt: skip
    assert main(argv) == 0
    grid = cv2.imread(os.fspath(out))
    # titled columns image | foreground | mask | anomaly; the 48-pixel images upscaled to TILE_SIZE tiles
    plain = (3 * TILE_SIZE + 4 * FIGURE_GAP, 4 * TILE_SIZE + 5 * FIGURE_GAP)
    assert grid.shape[1] == plain[1] and plain[0] + 20 <= grid.shape[0] <= plain[0] + 80
    band = grid.shape[0] - plain[0]
    assert (grid[FIGURE_GAP : FIGURE_GAP + band] < 128).any()  # the column titles
    left = FIGURE_GAP + 2 * (TILE_SIZE + FIGURE_GAP)
    mask = grid[FIGURE_GAP + band : FIGURE_GAP + band + TILE_SIZE, left : left + TILE_SIZE]
    assert set(np.unique(mask)) == {0, 255}  # every row has an anomaly; the mask stays binary


def test_tiny_demo_then_predict_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    argv = ["demo", "--output", os.fspath(out), "--max-steps", "3", "--batch-size", "8", "--num-workers", "0",
            "--overlays", "none", "--no-progress", *TINY]  # fmt: skip
    assert main(argv) == 0
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    assert set(metrics[DEMO_CATEGORY]) >= {"image_auroc", "pixel_auroc", "pixel_ap", "aupro"}
    assert len(list((out / "report" / "overlays" / DEMO_CATEGORY).glob("*.png"))) == 23  # every test image
    assert (out / "report" / "metrics.md").is_file()
    run = json.loads((out / "config.json").read_text())
    assert run["config"]["category"] == DEMO_CATEGORY and run["config"]["max_steps"] == 3

    pred = tmp_path / "pred"
    good = os.fspath(demo_root() / "test" / "good")
    assert main(["predict", os.fspath(out), good, "--output", os.fspath(pred), "--no-progress"]) == 0
    with (pred / "scores.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and float(rows[0]["threshold"]) == pytest.approx(run["calibration"]["threshold"])
    assert len(capsys.readouterr().out.splitlines()) == 6

    # train refuses to overwrite an existing run without --resume / --overwrite
    train = ["train", "--dataset", "mvtec", "--root", os.fspath(demo_root().parent),
             "--category", DEMO_CATEGORY, "--output", os.fspath(out), "--no-progress", *TINY]  # fmt: skip
    assert main(train) == 1
    assert "--resume" in capsys.readouterr().err
    assert main(["evaluate", os.fspath(tmp_path / "nothing"), "--no-progress"]) == 1
    assert "no run at" in capsys.readouterr().err
    assert main(["train", "--model", "nosuch", "--print-config"]) == 1
    assert "unknown model 'nosuch'; registered models" in capsys.readouterr().err
