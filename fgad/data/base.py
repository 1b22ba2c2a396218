"""The dataset base class shared by MVTec AD, BTAD and plain image folders.

A dataset is a list of :class:`Sample` records (image file, mask file or ``None``, label) built
once, at construction, from the folder layout; items are decoded lazily in ``__getitem__`` (in
DataLoader workers) and travel as ``uint8``.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch
from torch.utils.data import Dataset

from .io import list_images, normalize_size, read_image, read_mask, resize_image, resize_mask

#: Name of the folder of foreground masks beside a data set's training images (MVTec AD, BTAD).
FOREGROUND_DIR = "foreground"

__all__ = ["AnomalyDataset", "DatasetLayoutError", "Sample"]

_D = TypeVar("_D", bound="AnomalyDataset")


class DatasetLayoutError(FileNotFoundError, ValueError):
    """A data set folder does not have the expected layout.

    Raised for a missing folder, an image without its mask, a mask without its image, or a folder
    without images; the message lists what was expected and what is missing. It is both a
    :class:`FileNotFoundError` and a :class:`ValueError`, so either ``except`` catches it.
    """


class Sample(NamedTuple):
    """One record of a dataset: ``(image_path, mask_path, label)``.

    ``mask_path`` is ``None`` for good images (their mask is all zeros); ``label`` is 0 (good) or
    1 (anomalous).
    """

    image_path: Path
    mask_path: Path | None
    label: int


def format_paths(paths: Sequence[os.PathLike | str], limit: int = 10, indent: str = "  ") -> str:
    """One path a line, the first ``limit`` of them, then a count of the rest."""
    lines = [f"{indent}{os.fspath(p)}" for p in paths[:limit]]
    if len(paths) > limit:
        lines.append(f"{indent}... and {len(paths) - limit} more")
    return "\n".join(lines)


class AnomalyDataset(Dataset[dict[str, Any]]):
    """Base class of fgad's datasets: a list of samples, decoded and resized on access.

    Args:
        samples: the records, in the order the dataset indexes them.
        image_size: output size, an int (square) or ``(H, W)``; ``None`` keeps each file's size
            (then a DataLoader can only collate images of equal size).
        channels: 3 (RGB; grey files replicated) or 1 (grey; colour files converted).
        mask_threshold: see :func:`fgad.data.read_mask` (0: any non-zero mask value is anomalous).

    Item:
        ``dataset[i]`` is a dict ``{"image": uint8 (channels, H, W), "mask": uint8 (1, H, W) in
        {0, 1}, "label": int 0/1, "path": str}``. The mask of a good image is all zeros. A
        defective image whose mask file is all zeros keeps label 1 (the label comes from the
        folder, not from the mask). With foreground masks attached (:meth:`attach_foreground`) the
        item also has ``"foreground": uint8 (1, H, W) in {0, 1}``, the object, where synthetic
        anomalies may go (training passes it to the synthesizer).

    Attributes:
        samples: list of :class:`Sample` ``(image_path, mask_path | None, label)``; use
            :meth:`subset` or :meth:`holdout` (or ``torch.utils.data.Subset``) to split.

    Raises:
        ValueError (on access): a file cannot be decoded (the message names it), or an image and
        its mask differ in size.
    """

    def __init__(
        self,
        samples: Iterable[Sample | tuple[Any, Any, int]],
        image_size: int | tuple[int, int] | None = 256,
        *,
        channels: int = 3,
        mask_threshold: float = 0.0,
    ) -> None:
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels!r}")
        if not 0.0 <= float(mask_threshold) < 1.0:
            raise ValueError(f"mask_threshold must be in [0, 1), got {mask_threshold!r}")
        self.image_size: tuple[int, int] | None = normalize_size(image_size)
        self.channels = int(channels)
        self.mask_threshold = float(mask_threshold)
        self.samples: list[Sample] = [_as_sample(s) for s in samples]
        self.foreground_paths: dict[Path, Path] | None = None

    def _attach_default_foreground(
        self, category_dir: Path, split: str, foreground: str | os.PathLike[str] | bool | None
    ) -> None:
        """``foreground`` of MVTec AD / BTAD: None reads ``<category>/train/foreground`` when the split is
        ``train`` and the folder exists; False never; a path that folder."""
        if foreground is None:
            folder = category_dir / "train" / FOREGROUND_DIR
            if split == "train" and folder.is_dir():
                self.attach_foreground(folder)
        elif foreground is True:
            self.attach_foreground(category_dir / "train" / FOREGROUND_DIR)
        elif foreground is not False:
            self.attach_foreground(foreground)

    def attach_foreground(self, folder: str | os.PathLike[str]) -> None:
        """Read each image's foreground mask from ``folder``: ``<folder>/<stem>.<ext>`` (or
        ``<stem>_mask.<ext>``), any image extension, non-zero = object, matched by the image's name.

        Raises:
            DatasetLayoutError: the folder is missing, an image has no foreground mask, or two files
                match one image (every such file is listed).
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise DatasetLayoutError(f"expected a folder of foreground masks at {str(folder)!r}")
        by_stem: dict[str, list[Path]] = {}
        for path in list_images(folder):
            stem = path.stem[: -len("_mask")] if path.stem.endswith("_mask") else path.stem
            by_stem.setdefault(stem, []).append(path)
        missing = [s.image_path for s in self.samples if s.image_path.stem not in by_stem]
        doubled = [p for s in self.samples for p in by_stem.get(s.image_path.stem, [])[1:]]
        if missing or doubled:
            lines = []
            if missing:
                lines.append(f"{len(missing)} image(s) without a foreground mask in {str(folder)!r}:\n"
                             + format_paths(missing))
            if doubled:
                lines.append("two or more foreground masks for one image:\n" + format_paths(doubled))
            raise DatasetLayoutError("\n".join(lines))
        self.foreground_paths = {s.image_path: by_stem[s.image_path.stem][0] for s in self.samples}

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if isinstance(index, torch.Tensor | np.integer):
            index = int(index)
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError(f"index must be an int, got {type(index).__name__}; use subset() for many")
        if not -len(self.samples) <= index < len(self.samples):
            raise IndexError(f"index {index} out of range for a dataset of {len(self.samples)} samples")
        sample = self.samples[index]
        image = read_image(sample.image_path, self.channels)
        if sample.mask_path is not None:
            mask = read_mask(sample.mask_path, self.mask_threshold)
            if mask.shape != image.shape[:2]:
                raise ValueError(
                    f"mask {os.fspath(sample.mask_path)!r} is {mask.shape[1]}x{mask.shape[0]} (WxH) but "
                    f"its image {os.fspath(sample.image_path)!r} is {image.shape[1]}x{image.shape[0]}"
                )
            mask = resize_mask(mask, self.image_size)
        original = (int(image.shape[0]), int(image.shape[1]))
        image = resize_image(image, self.image_size)
        if sample.mask_path is None:
            mask = np.zeros(image.shape[:2], dtype=np.uint8)
        item = {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "mask": torch.from_numpy(np.ascontiguousarray(mask[None])),
            "label": int(sample.label),
            "path": os.fspath(sample.image_path),
        }
        if self.foreground_paths is not None:
            path = self.foreground_paths[sample.image_path]
            fg = read_mask(path)
            if fg.shape[:2] != original:
                raise ValueError(
                    f"foreground mask {os.fspath(path)!r} is {fg.shape[1]}x{fg.shape[0]} (WxH) but its "
                    f"image {os.fspath(sample.image_path)!r} is {original[1]}x{original[0]}"
                )
            fg = resize_mask(fg, self.image_size)
            item["foreground"] = torch.from_numpy(np.ascontiguousarray(fg[None]))
        return item

    @property
    def labels(self) -> list[int]:
        """The label (0 good, 1 anomalous) of every sample, in order."""
        return [s.label for s in self.samples]

    @property
    def paths(self) -> list[Path]:
        """The image file of every sample, in order."""
        return [Path(s.image_path) for s in self.samples]

    def subset(self: _D, indices: Iterable[int]) -> _D:
        """A dataset of the same class and settings holding ``samples[i]`` for ``i`` in ``indices``.

        The order of ``indices`` is kept; negative indices count from the end.

        Example:
            >>> from fgad.data import MVTecAD, demo_root
            >>> train = MVTecAD(demo_root().parent, "hazelnut_toy", image_size=64)
            >>> part = train.subset([0, 2, -1])
            >>> len(part), [p.name for p in part.paths]
            (3, ['000.png', '002.png', '027.png'])
        """
        if isinstance(indices, torch.Tensor | np.ndarray):
            indices = indices.tolist()
        picked = []
        n = len(self.samples)
        for i in indices:
            if isinstance(i, bool) or not isinstance(i, int | np.integer):
                raise TypeError(f"indices must be ints, got {i!r}")
            if not -n <= int(i) < n:
                raise IndexError(f"index {int(i)} out of range for a dataset of {n} samples")
            picked.append(self.samples[int(i)])
        view = copy.copy(self)
        view.samples = picked
        return view

    def holdout(self: _D, fraction: float, *, seed: int = 0) -> tuple[_D, _D]:
        """Split into ``(rest, held_out)`` deterministically, e.g. for validation images.

        ``round(len * fraction)`` samples (at least 1 and at most ``len - 1`` when
        ``0 < fraction`` and there are 2 or more samples) are drawn with ``torch.randperm`` under
        a ``torch.Generator`` seeded with ``seed``; both parts keep the dataset's order.

        Example:
            >>> from fgad.data import MVTecAD, demo_root
            >>> train = MVTecAD(demo_root().parent, "hazelnut_toy", image_size=64)
            >>> fit, val = train.holdout(0.2, seed=0)
            >>> len(fit), len(val)
            (22, 6)
        """
        if not 0.0 <= float(fraction) < 1.0:
            raise ValueError(f"fraction must be in [0, 1), got {fraction!r}")
        n = len(self.samples)
        count = round(n * float(fraction))
        if fraction > 0 and n >= 2:
            count = min(max(count, 1), n - 1)
        generator = torch.Generator().manual_seed(int(seed))
        held = set(torch.randperm(n, generator=generator)[:count].tolist())
        rest = [i for i in range(n) if i not in held]
        return self.subset(rest), self.subset(sorted(held))

    def _describe(self) -> str:
        return ""

    def __repr__(self) -> str:
        anomalous = sum(self.labels)
        extra = self._describe()
        return (
            f"{type(self).__name__}({extra}{len(self)} samples: {len(self) - anomalous} good, "
            f"{anomalous} anomalous; image_size={self.image_size}, channels={self.channels})"
        )


def _as_sample(item: Sample | tuple[Any, Any, int]) -> Sample:
    if isinstance(item, Sample):
        return item
    try:
        image_path, mask_path, label = item
    except (TypeError, ValueError):
        raise TypeError(f"a sample must be (image_path, mask_path | None, label), got {item!r}") from None
    if label not in (0, 1) or isinstance(label, float):
        raise ValueError(f"a sample's label must be 0 or 1, got {label!r} for {image_path!r}")
    return Sample(Path(image_path), None if mask_path is None else Path(mask_path), int(label))
