"""Training and the command line with any registered synthesizer (TrainConfig.synthesizer)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import pytest
import torch

from fgad.augment import CutPaste, MixedSynthesizer, NaturalSyntheticAnomaly
from fgad.cli import build_parser, config_from_args, main
from fgad.data import demo_root
from fgad.engine import TrainConfig, fit
from fgad.engine.report import FIGURE_GAP, TILE_SIZE
from fgad.engine.trainer import make_synthesizer, reads_sources, synthesis_textures

DEMO_CATEGORY = demo_root().name


def test_config_names_the_synthesizer_and_keeps_one_writer_per_fact() -> None:
    cfg = TrainConfig(synthesizer="cutpaste", synthesizer_kwargs={"area_ratio": [0.05, 0.1]}, foreground=None)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    synth = make_synthesizer(cfg)
    assert isinstance(synth, CutPaste) and synth.area_ratio == (0.05, 0.1) and synth.foreground_mask is None
    assert make_synthesizer(cfg, anomaly_prob=1.0).anomaly_prob == 1.0
    assert TrainConfig().synthesizer == "fgad"  # the method's own synthesis stays the default
    with pytest.raises(ValueError, match="synthesizer must be one of"):
        TrainConfig(synthesizer="cutpast")
    with pytest.raises(ValueError, match="TrainConfig field"):
        TrainConfig(synthesizer_kwargs={"foreground": None})
    with pytest.raises(TypeError, match="synthesizer_kwargs"):
        TrainConfig(synthesizer_kwargs=[1])  # type: ignore[arg-type]


def test_nsa_reads_the_training_images_and_mixtures_get_one_source_each() -> None:
    textures, sources = torch.rand(3, 3, 8, 8), torch.rand(5, 3, 8, 8)
    nsa = make_synthesizer(TrainConfig(synthesizer="nsa"))
    assert isinstance(nsa, NaturalSyntheticAnomaly) and reads_sources(nsa)
    assert synthesis_textures(nsa, textures, sources) is sources
    mixed = make_synthesizer(TrainConfig(synthesizer="mixed"))
    assert isinstance(mixed, MixedSynthesizer) and reads_sources(mixed)
    given = synthesis_textures(mixed, textures, sources)
    assert given["fgad"] is textures and given["nsa"] is sources
    fgad = make_synthesizer(TrainConfig())
    assert not reads_sources(fgad) and synthesis_textures(fgad, textures, None) is textures


def test_a_few_steps_with_a_mixture(tmp_path: Path) -> None:
    cfg = TrainConfig(
        dataset="mvtec", root=os.fspath(demo_root().parent), category=DEMO_CATEGORY, image_size=32,
        model="fgad", model_kwargs={"ae_width": 4, "seg_width": 4}, batch_size=8, max_steps=2,
        val_fraction=0.15, val_copies=1, num_workers=0, device="cpu", output=os.fspath(tmp_path / "run"),
        synthesizer="mixed", anomaly_prob=1.0,
    )  # fmt: skip
    run = fit(cfg, progress=False)
    saved = json.loads((run / "config.json").read_text())
    assert saved["config"]["synthesizer"] == "mixed"


def test_cli_train_and_synth_take_a_synthesizer(tmp_path: Path) -> None:
    parser = build_parser()
    args = parser.parse_args(["train", "--synthesizer", "nsa", "--synthesizer-arg", "scale=[0.8, 1.2]"])
    cfg = config_from_args(args)
    assert cfg.synthesizer == "nsa" and cfg.synthesizer_kwargs == {"scale": [0.8, 1.2]}
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--synthesizer", "nope"])
    out = tmp_path / "grid.png"
    argv = ["synth", "--input", os.fspath(demo_root() / "train"), "--output", os.fspath(out), "--count", "2",
            "--image-size", "48", "--synthesizer", "nsa", "--foreground", "none"]  # fmt: skip
    assert main(argv) == 0
    grid = cv2.imread(os.fspath(out))
    # two rows of titled columns image | foreground | mask | anomaly, upscaled to TILE_SIZE tiles
    assert grid.shape[1] == 4 * TILE_SIZE + 5 * FIGURE_GAP
    assert 2 * TILE_SIZE + 3 * FIGURE_GAP + 20 <= grid.shape[0] <= 2 * TILE_SIZE + 3 * FIGURE_GAP + 80
