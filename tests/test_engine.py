"""fgad.engine: config, presets, fit (reproducibility, outputs, calibration), evaluate, predict, reports."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from fgad._io import atomic_write_text
from fgad.augment import AnomalySynthesizer
from fgad.data import DEMO_CATEGORY, MVTecAD, demo_root
from fgad.engine import (
    TrainConfig,
    calibrate_threshold,
    evaluate,
    fit,
    get_preset,
    list_presets,
    load_checkpoint,
    predict,
    run_threshold,
    save_checkpoint,
    validation_score,
)
from fgad.engine.checkpoint import TrainState, capture_rng_state, restore_rng_state
from fgad.engine.logging import EpochLogger
from fgad.engine.report import (
    FIGURE_GAP,
    TILE_SIZE,
    heatmap,
    metrics_markdown,
    overlay_panel,
    save_curves,
    synthesis_grid,
    to_uint8_rgb,
)

TINY_MODEL = {"ae_width": 4, "seg_width": 4}


def tiny_config(output: Path, **overrides) -> TrainConfig:
    """A few optimizer steps of a width-4 detector at 32 x 32 on the bundled photos."""
    base = dict(
        dataset="mvtec",
        root=os.fspath(demo_root().parent),
        category=DEMO_CATEGORY,
        image_size=32,
        model="fgad",
        model_kwargs=dict(TINY_MODEL),
        batch_size=8,
        max_steps=6,
        val_fraction=0.15,
        val_copies=1,
        num_workers=0,
        device="cpu",
        output=os.fspath(output),
    )
    base.update(overrides)
    return TrainConfig(**base)


def read_log(run: Path) -> list[dict[str, str]]:
    with (run / "log.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fit(tiny_config(tmp_path_factory.mktemp("run") / "run"), progress=False)


# -- config -----------------------------------------------------------------------------------------
def test_presets_match_the_paper_and_the_reference_budget() -> None:
    assert list_presets() == ["cpu", "draem_reference", "paper"]
    paper = get_preset("paper")
    assert (paper.lr, paper.epochs, paper.batch_size, paper.image_size) == (1e-4, 700, 16, 256)
    assert (paper.lr_gamma, paper.ssim_weight, paper.model, paper.foreground) == (0.2, 1.0, "fgad", "otsu")
    assert paper.anomaly_prob == 0.5  # DRAEM: half of the training samples get an anomaly
    # lr x 0.2 at epochs 560 and 630 of 700 (stepped per optimizer step).
    assert paper.milestone_steps(steps_per_epoch=13) == [560 * 13, 630 * 13]
    ref = get_preset("draem_reference")
    assert (ref.image_size, ref.batch_size, ref.max_steps, ref.seed, ref.lr) == (128, 8, 600, 0, 1e-4)
    assert ref.model_kwargs == {"ae_width": 32, "seg_width": 16, "score_method": "smoothed_max"}
    # both reproduce DRAEM's image score (the mean-filtered maximum); the cpu preset has the default
    assert paper.model_kwargs == {"score_method": "smoothed_max"} and get_preset("cpu").model_kwargs == {}
    assert get_preset("paper", model_kwargs={"base_width": 64}).model_kwargs == {
        "score_method": "smoothed_max",
        "base_width": 64,
    }
    assert ref.milestone_steps(steps_per_epoch=3) == [480, 540]
    assert ref.total_steps(3) == 600 and ref.total_epochs(3) == 200
    cpu = get_preset("cpu")
    assert cpu.image_size == 128 and cpu.max_steps is not None and cpu.device == "cpu"
    with pytest.raises(KeyError, match="known presets"):
        get_preset("fast")


@settings(max_examples=25)
@given(
    size=st.one_of(st.integers(32, 512), st.tuples(st.integers(32, 300), st.integers(32, 300))),
    steps=st.one_of(st.none(), st.integers(1, 10_000)),
    milestones=st.lists(st.floats(0.01, 1.0), max_size=3).map(sorted),
    foreground=st.sampled_from(["otsu", None]),
    kwargs=st.dictionaries(st.sampled_from(["ae_width", "seg_width", "attention"]), st.integers(1, 64)),
)
def test_config_round_trips_through_json(size, steps, milestones, foreground, kwargs) -> None:
    cfg = TrainConfig(
        image_size=size,
        max_steps=steps,
        lr_milestones=tuple(milestones),
        foreground=foreground,
        model_kwargs=kwargs,
    )
    back = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg
    assert TrainConfig.from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("dataset", "imagenet", ValueError),
        ("image_size", 16, ValueError),
        ("image_size", "256", TypeError),
        ("batch_size", 0, ValueError),
        ("max_steps", -1, ValueError),
        ("lr_milestones", (0.9, 0.8), ValueError),
        ("foreground", "grabcut", ValueError),
        ("anomaly_prob", 1.5, ValueError),
        ("val_fraction", 1.0, ValueError),
        ("final_weights", "first", ValueError),
        ("init", "xavier", ValueError),
        ("checkpoint_every_steps", 0, ValueError),
        ("checkpoint_every_steps", "100", ValueError),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field, value, error) -> None:
    with pytest.raises(error, match=field):
        TrainConfig(**{field: value})


def test_config_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        TrainConfig.from_dict({"learning_rate": 0.1})


def test_config_from_before_checkpoint_every_steps_keeps_epoch_checkpoints() -> None:
    old = TrainConfig().to_dict()
    del old["checkpoint_every_steps"]
    assert TrainConfig.from_dict(old).checkpoint_every_steps is None  # a run folder written before it
    assert TrainConfig.from_dict({"lr": 0.1}).checkpoint_every_steps == 100  # a partial file: the default
    assert TrainConfig.from_dict({**old, "checkpoint_every_steps": 7}).checkpoint_every_steps == 7


# -- checkpoints and logs ---------------------------------------------------------------------------
def test_checkpoint_round_trip_restores_every_random_state(tmp_path: Path) -> None:
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [1], gamma=0.5)
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    sched.step()
    gen = torch.Generator().manual_seed(5)
    torch.manual_seed(1)
    np.random.seed(2)  # noqa: NPY002
    random.seed(3)
    state = TrainState(
        net.state_dict(), opt.state_dict(), sched.state_dict(), 2, 7, capture_rng_state(), [gen.get_state()]
    )
    path = save_checkpoint(tmp_path / "c" / "last.pt", state)
    expected = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(2, generator=gen))  # noqa: NPY002
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]  # no temporary file left

    loaded = load_checkpoint(path)
    restore_rng_state(loaded.rng)
    gen2 = torch.Generator()
    gen2.set_state(loaded.synthesis_rng[0])
    got = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(2, generator=gen2))  # noqa: NPY002
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    assert got[2] == expected[2] and torch.equal(got[3], expected[3])
    assert (loaded.epoch, loaded.step) == (2, 7)
    opt2 = torch.optim.Adam(torch.nn.Linear(3, 2).parameters(), lr=0.1)
    opt2.load_state_dict(loaded.optimizer)
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_load_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an fgad training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_epoch_logger_drops_epochs_after_the_resumed_checkpoint(tmp_path: Path) -> None:
    log = EpochLogger(tmp_path, ["loss"], tensorboard=False)
    for epoch in (1, 2, 3):
        log.log(epoch, epoch * 2, {"loss": 1.0 / epoch})
    log.close()
    log = EpochLogger(tmp_path, ["loss"], resume_epoch=2, tensorboard=False)
    log.log(3, 6, {"loss": 0.25, "val_score": None})
    rows = read_log(tmp_path)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert rows[-1]["loss"] == "0.25" and rows[-1]["val_score"] == ""


# -- reports ----------------------------------------------------------------------------------------
def test_heatmap_is_opencv_jet_and_panel_has_four_columns() -> None:
    amap = torch.linspace(0, 1, 32 * 32).reshape(1, 32, 32)
    grey = np.round(amap[0].numpy().astype(np.float64) * 255).astype(np.uint8)
    ref = cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    assert np.array_equal(heatmap(amap), ref)
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    panel = overlay_panel(image, amap, reconstruction=image, mask=(amap > 0.5).float())
    assert panel.shape == (32, 128, 3) and panel.dtype == np.uint8
    assert np.array_equal(panel[:, :32], np.round(image.permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    assert set(np.unique(panel[:, 96:])) == {0, 255}


def test_metrics_markdown_and_atomic_text(tmp_path: Path) -> None:
    text = metrics_markdown({"a": {"image_auroc": 0.5, "pixel_ap": float("nan")}, "b": {"image_auroc": 1.0}})
    assert text.splitlines() == [
        "| category | image_auroc | pixel_ap |",
        "|---|---|---|",
        "| a | 0.5000 | nan |",
        "| b | 1.0000 |  |",
    ]
    atomic_write_text(tmp_path / "x.txt", "one")
    atomic_write_text(tmp_path / "x.txt", "two")
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"] and (tmp_path / "x.txt").read_text() == "two"


def test_curves_are_written_as_png(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 0, 1, 1, 1.0])
    maps = torch.rand(5, 1, 8, 8, generator=g)
    masks = (torch.rand(5, 1, 8, 8, generator=g) > 0.7).float()
    paths = save_curves(tmp_path, torch.rand(5, generator=g), labels, maps=maps, masks=masks, prefix="x_")
    assert [p.name for p in paths] == ["x_roc.png", "x_pr.png"]
    for p in paths:
        assert cv2.imread(os.fspath(p)) is not None


def test_synthesis_grid_rows_are_clean_foreground_mask_synthetic() -> None:
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    synth = AnomalySynthesizer(foreground="otsu", anomaly_prob=1.0, image_rotation_prob=0.0)
    grid = synthesis_grid(images, synthesizer=synth, generator=torch.Generator().manual_seed(0))
    assert grid.shape == (64, 128, 3) and grid.dtype == np.uint8
    assert np.array_equal(grid[:32, :32], to_uint8_rgb(images[0]))
    assert set(np.unique(grid[:, 32:96])) <= {0, 255}  # foreground and mask are binary
    # The anomaly lies inside the foreground, and the synthetic image differs only inside the mask.
    foreground, mask, synthetic = grid[:, 32:64], grid[:, 64:96], grid[:, 96:]
    assert not np.any((mask == 255) & (foreground == 0))
    clean = grid[:, :32]
    outside = mask[..., 0] == 0
    assert np.array_equal(synthetic[outside], clean[outside])


# -- fit ----------------------------------------------------------------------------------------------
def test_fit_is_reproducible_on_cpu(tmp_path: Path, tiny_run: Path) -> None:
    again = fit(tiny_config(tmp_path / "again"), progress=False)
    first, second = read_log(tiny_run), read_log(again)
    assert [r["loss"] for r in first] == [r["loss"] for r in second]
    a = load_checkpoint(tiny_run / "checkpoints" / "last.pt").model
    b = load_checkpoint(again / "checkpoints" / "last.pt").model
    assert all(torch.equal(a[k], b[k]) for k in a)

    # Another seed gives other losses; the data root holds no test split, so fit never reads it.
    root = tmp_path / "data"
    shutil.copytree(demo_root() / "train", root / "nut" / "train")
    config = tiny_config(tmp_path / "other", root=os.fspath(root), category="nut", seed=1, max_steps=3)
    other = fit(config, progress=False)
    assert read_log(other)[0]["loss"] != first[0]["loss"]
    assert (other / "model" / "model.safetensors").is_file()


def test_fit_writes_run_directory(tiny_run: Path) -> None:
    from fgad.models import load_model

    rows = read_log(tiny_run)
    # 28 images - 4 held back = 24; batch 8 -> 3 steps per epoch; 6 steps -> 2 epochs.
    assert [(r["epoch"], r["step"]) for r in rows] == [("1", "3"), ("2", "6")]
    assert all(float(r["loss"]) > 0 for r in rows)
    assert rows[-1]["val_score"] != ""
    last = load_checkpoint(tiny_run / "checkpoints" / "last.pt")
    assert (last.epoch, last.step) == (2, 6) and last.optimizer["state"]
    assert (tiny_run / "checkpoints" / "best.pt").is_file()
    run = json.loads((tiny_run / "config.json").read_text())
    assert TrainConfig.from_dict(run["config"]) == tiny_config(tiny_run)
    model = load_model(tiny_run / "model").eval()
    chosen = "best.pt" if run["final_weights"] == "best" else "last.pt"
    weights = load_checkpoint(tiny_run / "checkpoints" / chosen)
    assert all(torch.equal(v, weights.model[k]) for k, v in model.state_dict().items())


def test_threshold_is_calibrated_on_held_back_good_training_images(tiny_run: Path) -> None:
    from fgad.data import to_float
    from fgad.models import load_model

    run = json.loads((tiny_run / "config.json").read_text())
    cal = run["calibration"]
    train = MVTecAD(demo_root().parent, DEMO_CATEGORY, split="train", image_size=32)
    held = train.holdout(0.15, seed=1234)[1]
    assert cal["num_images"] == len(held) == 4
    model = load_model(tiny_run / "model").eval()
    with torch.no_grad():
        scores = model(to_float(torch.stack([held[i]["image"] for i in range(len(held))]))).score
    torch.testing.assert_close(torch.tensor(cal["scores"]), scores, rtol=1e-5, atol=1e-6)
    assert cal["threshold"] == pytest.approx(float(scores.max()), rel=1e-6)
    assert run_threshold(tiny_run) == cal["threshold"] == run_threshold(tiny_run / "model")
    assert calibrate_threshold(torch.tensor([0.0, 1.0, 2.0, 3.0]), 0.5) == pytest.approx(1.5)


def test_fit_refuses_to_clobber_and_checks_batch_size(tmp_path: Path, tiny_run: Path) -> None:
    with pytest.raises(FileExistsError, match="resume"):
        fit(tiny_config(tiny_run), progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        fit(tiny_config(tmp_path / "big", batch_size=64), progress=False)


# -- when last.pt is written; a run says nothing to the warnings module ------------------------------
class _Interrupted(Exception):
    pass


def _record_last_writes(
    monkeypatch: pytest.MonkeyPatch, stop_after: int | None = None
) -> list[tuple[int, int]]:
    """(epoch, step) of every ``last.pt`` that fit writes from now on; with ``stop_after``, the run is
    interrupted in place of the write after that many (as a crash between two checkpoints)."""
    import fgad.engine.trainer

    writes: list[tuple[int, int]] = []

    def recording(path: Path, state: TrainState) -> Path:
        if Path(path).name == "last.pt":
            if stop_after is not None and len(writes) == stop_after:
                raise _Interrupted
            writes.append((state.epoch, state.step))
        return save_checkpoint(path, state)

    monkeypatch.setattr(fgad.engine.trainer, "save_checkpoint", recording)
    return writes


@pytest.fixture(scope="module")
def stepped_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[tuple[int, int]], list[str]]:
    """7 epochs of 3 steps, ``last.pt`` due every 4 steps, with the progress bar and summary on:
    the ``last.pt`` writes and every warning the run raised."""
    config = tiny_config(
        tmp_path_factory.mktemp("stepped") / "run", max_steps=21, checkpoint_every_steps=4, val_every=3
    )
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        writes = _record_last_writes(mp)
        fit(config, progress=True)
    return writes, [f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught]


def test_short_training_run_emits_no_warnings(stepped_run: tuple[list[tuple[int, int]], list[str]]) -> None:
    assert stepped_run[1] == []


def test_last_checkpoint_waits_for_checkpoint_every_steps(
    stepped_run: tuple[list[tuple[int, int]], list[str]],
) -> None:
    # At least 4 steps since the last write: after epochs 2, 4 and 6, and always after the last one.
    assert stepped_run[0] == [(2, 6), (4, 12), (6, 18), (7, 21)]


@pytest.mark.parametrize(
    ("every", "every_steps", "epochs"),
    [
        (1, None, [1, 2, 3, 4, 5, 6, 7]),  # the meaning before checkpoint_every_steps existed
        (3, None, [3, 6, 7]),
        (1, 3, [1, 2, 3, 4, 5, 6, 7]),
        (1, 4, [2, 4, 6, 7]),
        (3, 4, [3, 6, 7]),
        (1, 7, [3, 6, 7]),
        (2, 7, [3, 6, 7]),
        (1, 100, [7]),
    ],
)
def test_checkpoint_schedule(every: int, every_steps: int | None, epochs: list[int]) -> None:
    from fgad.engine.trainer import _checkpoint_due, _Loop

    config = TrainConfig(checkpoint_every=every, checkpoint_every_steps=every_steps)
    loop, written = _Loop(), []
    for epoch in range(1, 8):  # 7 epochs of 3 optimizer steps
        loop.epoch, loop.step = epoch, 3 * epoch
        if epoch == 7 or _checkpoint_due(config, loop):
            written.append(epoch)
            loop.saved_epoch, loop.saved_step = loop.epoch, loop.step
    assert written == epochs


def test_run_from_before_checkpoint_every_steps_resumes_with_epoch_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "old"
    writes = _record_last_writes(monkeypatch, stop_after=2)
    with pytest.raises(_Interrupted):
        fit(tiny_config(run, max_steps=12, checkpoint_every_steps=None), progress=False)
    assert writes == [(1, 3), (2, 6)]
    # The run folder as an fgad without the field wrote it: no such key in config.json or last.pt.
    run_file = json.loads((run / "config.json").read_text())
    del run_file["config"]["checkpoint_every_steps"]
    (run / "config.json").write_text(json.dumps(run_file, indent=2))
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    del state.config["checkpoint_every_steps"]
    save_checkpoint(run / "checkpoints" / "last.pt", state)

    config = TrainConfig.from_json(run / "config.json")  # what `fgad train --resume` starts from
    assert config.checkpoint_every_steps is None
    writes = _record_last_writes(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the saved config is the same: no "ignoring changed field(s)"
        fit(config, resume=True, progress=False)
    assert writes == [(3, 9), (4, 12)]  # every epoch, not only at the end (the new default)
    assert [r["epoch"] for r in read_log(run)] == ["1", "2", "3", "4"]


def test_validation_score() -> None:
    assert validation_score({"pixel_ap": 0.25, "image_auroc": float("nan")}) == 0.25


# -- evaluate / predict -------------------------------------------------------------------------------
def test_evaluate_matches_sklearn_and_writes_report(tiny_run: Path, tmp_path: Path) -> None:
    from fgad.data import to_float
    from fgad.models import load_model

    out = tmp_path / "eval"
    metrics = evaluate(tiny_run, output=out, overlays=5, progress=False)
    row = metrics[DEMO_CATEGORY]
    assert set(row) >= {"image_auroc", "pixel_auroc", "pixel_ap", "aupro", "image_f1_max"}
    test = MVTecAD(demo_root().parent, DEMO_CATEGORY, split="test", image_size=32)
    items = [test[i] for i in range(len(test))]
    model = load_model(tiny_run / "model").eval()
    with torch.no_grad():
        result = model(to_float(torch.stack([it["image"] for it in items])))
    labels = np.array([it["label"] for it in items])
    masks = torch.stack([it["mask"] for it in items]).numpy().ravel()
    assert row["image_auroc"] == pytest.approx(roc_auc_score(labels, result.score.numpy()), abs=1e-6)
    amap = result.anomaly_map.numpy().ravel()
    assert row["pixel_auroc"] == pytest.approx(roc_auc_score(masks, amap), abs=1e-5)
    assert row["pixel_ap"] == pytest.approx(average_precision_score(masks, amap), abs=1e-4)
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert (out / "metrics.md").read_text().startswith("| category | image_auroc")
    overlays = sorted((out / "overlays" / DEMO_CATEGORY).iterdir())
    assert len(overlays) == 5
    figure = cv2.imread(os.fspath(overlays[0]))  # image | reconstruction | heatmap | ground truth
    assert figure.shape[0] > TILE_SIZE and figure.shape[1] == 4 * TILE_SIZE + 5 * FIGURE_GAP
    curves = {p.name for p in (out / "curves").iterdir()}
    assert curves == {f"{DEMO_CATEGORY}_roc.png", f"{DEMO_CATEGORY}_pr.png"}


def test_predict_writes_scores_maps_and_overlays(tiny_run: Path, tmp_path: Path) -> None:
    folder = demo_root() / "test" / "colour"
    out = tmp_path / "pred"
    preds = predict(tiny_run, [folder, demo_root() / "test" / "good" / "000.png"], output=out, progress=False)
    assert len(preds) == 18
    threshold = run_threshold(tiny_run)
    assert all(p.anomalous == (p.score > threshold) for p in preds)
    with (out / "scores.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["path"] for r in rows] == [p.path for p in preds]
    assert [float(r["score"]) for r in rows] == pytest.approx([p.score for p in preds], rel=1e-5)
    amap = np.load(preds[0].map_path)
    assert amap.shape == (32, 32) and amap.dtype == np.float32 and 0 <= amap.min() <= amap.max() <= 1
    figure = cv2.imread(preds[0].overlay_path)  # image | reconstruction | heatmap, score and decision below
    assert figure.shape[0] > TILE_SIZE and figure.shape[1] == 3 * TILE_SIZE + 4 * FIGURE_GAP
    explicit = predict(tiny_run, folder, threshold=-1.0, progress=False)
    assert all(p.anomalous for p in explicit)
    with pytest.raises(FileNotFoundError, match="no such image"):
        predict(tiny_run, tmp_path / "missing.png", progress=False)


def test_tensorboard_events_when_installed(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    log = EpochLogger(tmp_path, ["loss"])
    assert log.writer is not None
    log.log(1, 3, {"loss": 0.5, "val_score": 1.0})
    log.close()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
