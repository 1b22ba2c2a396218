"""fgad.augment.transforms.SyntheticAnomaly in torchvision.transforms.v2 pipelines."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from fgad.augment import AnomalySynthesizer
from fgad.augment.transforms import SyntheticAnomaly


def _object(size: int = 48, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    image = torch.full((3, size, size), 0.2) + 0.05 * torch.rand(3, size, size, generator=g)
    image[:, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 0.8
    return image.clamp(0, 1)


def test_sample_types_are_kept() -> None:
    sample = {"image": tv_tensors.Image(_object()), "label": 0, "path": "part.png"}
    torch.manual_seed(0)
    out = SyntheticAnomaly(anomaly_prob=1.0)(sample)
    assert type(out["image"]) is tv_tensors.Image and type(out["target"]) is tv_tensors.Image
    assert type(out["mask"]) is tv_tensors.Mask and out["mask"].shape == (1, 48, 48)
    assert out["label"].shape == () and float(out["label"]) == 1.0
    assert out["path"] == "part.png" and sample["label"] == 0  # the input sample is not modified
    assert out["mask"].dtype == out["image"].dtype
    assert set(out["mask"].unique().tolist()) <= {0.0, 1.0}
    outside = out["mask"] == 0
    assert torch.equal(out["image"][outside.expand(3, -1, -1)], out["target"][outside.expand(3, -1, -1)])


def test_bare_image_and_batch() -> None:
    torch.manual_seed(0)
    out = SyntheticAnomaly(anomaly_prob=1.0)(_object())
    assert set(out) == {"image", "target", "mask", "label"} and type(out["image"]) is tv_tensors.Image
    batch = SyntheticAnomaly(anomaly_prob=1.0)(torch.stack([_object(seed=i) for i in range(3)]))
    assert batch["mask"].shape == (3, 1, 48, 48) and batch["label"].shape == (3,)


def test_composes_after_torchvisions_geometric_transforms() -> None:
    pipeline = v2.Compose([
        v2.RandomResizedCrop(32, scale=(0.6, 1.0), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomRotation(10),
        SyntheticAnomaly(anomaly_prob=1.0),
        v2.RandomVerticalFlip(p=1.0),  # after it: image, target and mask move together
    ])
    torch.manual_seed(1)
    out = pipeline({"image": tv_tensors.Image(_object()), "mask": tv_tensors.Mask(torch.zeros(1, 48, 48))})
    assert out["image"].shape == (3, 32, 32) and out["mask"].shape == (1, 32, 32)
    outside = (out["mask"] == 0).expand(3, -1, -1)
    assert torch.equal(out["image"][outside], out["target"][outside])


def test_replay_with_the_synthesizer() -> None:
    transform = SyntheticAnomaly(anomaly_prob=1.0)
    image = _object()
    out = transform({"image": tv_tensors.Image(image)})
    again = transform.synthesizer(image, params=transform.last_params)
    assert torch.equal(again.image, out["image"].as_subclass(torch.Tensor))


def test_synthesizer_or_kwargs_and_textures() -> None:
    synth = AnomalySynthesizer(anomaly_prob=1.0, foreground=None)
    bank = torch.rand(2, 3, 20, 20)
    transform = SyntheticAnomaly(synth, textures=bank)
    assert transform.synthesizer is synth
    out = transform(_object())
    assert float(out["label"]) == 1.0
    with pytest.raises(TypeError, match="not both"):
        SyntheticAnomaly(synth, anomaly_prob=1.0)


@pytest.mark.parametrize(
    ("sample", "error", "match"),
    [
        ({"image": tv_tensors.Image(torch.zeros(3, 8, 8, dtype=torch.uint8))}, TypeError, "ToDtype"),
        ({"picture": torch.zeros(3, 8, 8)}, KeyError, "image"),
        ([torch.zeros(3, 8, 8)], TypeError, "dict sample"),
        ({"image": tv_tensors.Image(torch.full((3, 8, 8), 2.0))}, ValueError, r"\[0, 1\]"),
    ],
)
def test_bad_samples(sample: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        SyntheticAnomaly()(sample)


class _Parts(Dataset):
    def __init__(self, transform: v2.Transform) -> None:
        self.transform = transform

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> dict[str, object]:
        return self.transform({"image": tv_tensors.Image(_object(seed=i)), "label": 0})


def test_in_a_dataloader() -> None:
    transform = v2.Compose([v2.RandomHorizontalFlip(), SyntheticAnomaly(anomaly_prob=1.0)])
    batch = next(iter(DataLoader(_Parts(transform), batch_size=4)))
    assert batch["image"].shape == (4, 3, 48, 48) and batch["mask"].shape == (4, 1, 48, 48)
    assert batch["label"].tolist() == [1.0] * 4


def test_pickles_after_use_for_spawned_workers() -> None:
    # DataLoader workers started with "spawn" receive the dataset's transforms pickled.
    import pickle

    transform = SyntheticAnomaly(anomaly_prob=1.0, textures=torch.rand(2, 3, 20, 20))
    transform(_object())
    copy = pickle.loads(pickle.dumps(transform))
    out = copy(_object())
    assert out["mask"].shape == (1, 48, 48)
