"""fgad.integrations.anomalib.Fgad: anomalib's Engine trains and tests fgad on a tiny folder."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("anomalib")
cv2 = pytest.importorskip("cv2")

import fgad  # noqa: E402
from fgad.integrations.anomalib import Fgad, FgadInference  # noqa: E402

SIZE = 64


def _write_folder(root: Path) -> None:
    rng = np.random.default_rng(0)
    for sub in ("good", "defect", "mask", "test_good"):
        (root / sub).mkdir(parents=True)

    def part() -> np.ndarray:
        image = np.full((SIZE, SIZE, 3), 50, np.uint8)
        cv2.circle(image, (SIZE // 2, SIZE // 2), SIZE // 3, (90, 180, 200), -1)
        return np.clip(image + rng.integers(0, 15, image.shape), 0, 255).astype(np.uint8)

    for i in range(6):
        cv2.imwrite(str(root / "good" / f"{i:03d}.png"), part())
    for i in range(2):
        cv2.imwrite(str(root / "test_good" / f"{i:03d}.png"), part())
        image, mask = part(), np.zeros((SIZE, SIZE), np.uint8)
        image[28:36, 26:38] = 0
        mask[28:36, 26:38] = 255
        cv2.imwrite(str(root / "defect" / f"{i:03d}.png"), image)
        cv2.imwrite(str(root / "mask" / f"{i:03d}.png"), mask)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Fgad, list[dict], Path]:
    from anomalib.data import Folder
    from anomalib.engine import Engine
    from lightning.pytorch import seed_everything

    tmp = tmp_path_factory.mktemp("anomalib")
    _write_folder(tmp / "data")
    seed_everything(0)
    datamodule = Folder(
        name="toy", root=tmp / "data", normal_dir="good", abnormal_dir="defect", mask_dir="mask",
        normal_test_dir="test_good", train_batch_size=3, eval_batch_size=4, num_workers=0,
    )
    module = Fgad(
        model="fgad_small", model_kwargs={"base_width": 8}, anomaly_prob=1.0,
        pre_processor=Fgad.configure_pre_processor((SIZE, SIZE)),
    )
    engine = Engine(max_steps=3, accelerator="cpu", devices=1, default_root_dir=tmp / "results",
                    logger=False, enable_progress_bar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        engine.fit(model=module, datamodule=datamodule)
        results = engine.test(model=module, datamodule=datamodule)
    return module, results, tmp


def test_engine_fit_and_test(trained: tuple[Fgad, list[dict], Path]) -> None:
    module, results, tmp = trained
    assert module.trainer.global_step == 3
    metrics = results[0]
    assert {"image_AUROC", "pixel_AUROC"} <= set(metrics)
    assert all(np.isfinite(v) for v in metrics.values())
    checkpoints = list((tmp / "results").rglob("*.ckpt"))
    assert checkpoints, "anomalib's checkpoint callback wrote no checkpoint"
    restored = Fgad.load_from_checkpoint(checkpoints[0])
    weights, expected = restored.detector.state_dict(), module.detector.state_dict()
    assert all(torch.equal(weights[k], expected[k]) for k in expected)
    assert restored.synthesizer.anomaly_prob == 1.0  # the synthesizer options are hyperparameters


def test_raw_outputs_equal_fgads_detector(trained: tuple[Fgad, list[dict], Path]) -> None:
    module, _, tmp = trained
    images = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    module.eval()
    with torch.no_grad():
        ours = module.model(images)
        theirs = module.detector(images)
        fgad.save_pretrained(module.detector, tmp / "exported")
        reloaded = fgad.load_model(tmp / "exported")(images)
    assert isinstance(module.model, FgadInference)
    assert torch.equal(ours.pred_score, theirs.score)
    assert torch.equal(ours.anomaly_map, theirs.anomaly_map[:, 0])
    assert torch.equal(reloaded.score, theirs.score)


def test_module_contract() -> None:
    from anomalib import LearningType
    from torchvision.transforms.v2 import Normalize

    module = Fgad(model="draem_small", model_kwargs={"base_width": 4}, foreground=None)
    assert module.learning_type == LearningType.ONE_CLASS
    args = module.trainer_arguments
    assert "enable_checkpointing" not in args and args["num_sanity_val_steps"] == 0
    transforms = module.pre_processor.transform.transforms
    assert not any(isinstance(t, Normalize) for t in transforms)
    assert module.synthesizer.foreground_mask is None
    with pytest.raises(ValueError, match="detector"):
        Fgad(model="unet_segmenter")


def test_engine_with_the_mvtec_datamodule_on_the_bundled_photos(tmp_path: Path) -> None:
    from anomalib.data import MVTecAD
    from anomalib.engine import Engine

    from fgad.data import demo_root

    datamodule = MVTecAD(root=demo_root().parent, category=demo_root().name, train_batch_size=4,
                         eval_batch_size=8, num_workers=0)
    module = Fgad(model="fgad_small", model_kwargs={"base_width": 4}, anomaly_prob=1.0,
                  pre_processor=Fgad.configure_pre_processor((SIZE, SIZE)))
    engine = Engine(max_steps=1, accelerator="cpu", devices=1, default_root_dir=tmp_path,
                    logger=False, enable_progress_bar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        engine.fit(model=module, datamodule=datamodule)
        results = engine.test(model=module, datamodule=datamodule)
    assert "image_AUROC" in results[0]


def test_one_opencv_distribution_provides_cv2() -> None:
    # fgad and anomalib both depend on opencv-python-headless; a second OpenCV distribution would
    # overwrite the files of the first in the same cv2 package.
    from importlib.metadata import distributions

    names = {(d.metadata["Name"] or "").lower() for d in distributions()}
    opencv = sorted(n for n in names if n.startswith("opencv"))
    assert opencv == ["opencv-python-headless"], opencv
    ok, encoded = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))
    assert ok and cv2.imdecode(encoded, cv2.IMREAD_COLOR).shape == (4, 4, 3)
