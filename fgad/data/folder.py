"""A plain folder of good images: a user's own data."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .base import AnomalyDataset, DatasetLayoutError, Sample, format_paths
from .io import IMAGE_EXTENSIONS, is_image_file, list_images

__all__ = ["ImageFolder"]


class ImageFolder(AnomalyDataset):
    """Every image under a folder, as good samples (label 0, empty mask).

    Args:
        root: the folder.
        image_size: int or ``(H, W)``; ``None`` keeps the files' size.
        recursive: also read sub-folders (default); hidden files and folders are skipped.
        channels: 3 (RGB) or 1 (grey).
        foreground: a folder of foreground masks, one per image by name (see
            :meth:`~fgad.data.base.AnomalyDataset.attach_foreground`), or None. A folder inside
            ``root`` is not read as images.

    Convention:
        Files with the extensions in :data:`fgad.data.IMAGE_EXTENSIONS` (any case), sorted by
        their path relative to ``root``, so the order is the same on every machine. Other files
        are ignored. For a list of files use :meth:`from_paths`.

    Raises:
        DatasetLayoutError: ``root`` is not a folder or holds no image.

    Example:
        >>> from fgad.data import ImageFolder, demo_root
        >>> folder = ImageFolder(demo_root() / "test", image_size=(48, 64))
        >>> len(folder), folder[0]["image"].shape, folder.labels[0]
        (23, torch.Size([3, 48, 64]), 0)
    """

    def __init__(
        self,
        root: str | Path,
        image_size: int | tuple[int, int] | None = 256,
        recursive: bool = True,
        *,
        channels: int = 3,
        foreground: str | os.PathLike[str] | None = None,
    ) -> None:
        root = Path(root)
        if not root.is_dir():
            what = (
                "is a file; use ImageFolder.from_paths([...]) for files"
                if root.is_file()
                else "does not exist"
            )
            raise DatasetLayoutError(f"expected a folder of images, but {str(root)!r} {what}")
        files = list_images(root, recursive=recursive)
        if foreground is not None:
            masks_dir = Path(foreground).resolve()
            files = [f for f in files if masks_dir not in f.resolve().parents]
        if not files:
            hint = ""
            if not recursive and any(p.is_dir() for p in root.iterdir()):
                hint = " (it has sub-folders; pass recursive=True to read them)"
            raise DatasetLayoutError(
                f"no images found in {str(root)!r}{' or its sub-folders' if recursive else ''}{hint}; "
                f"expected files ending in {', '.join(IMAGE_EXTENSIONS)}"
            )
        super().__init__([Sample(p, None, 0) for p in files], image_size, channels=channels)
        self.root: Path | None = root
        self.recursive = recursive
        if foreground is not None:
            self.attach_foreground(foreground)

    @classmethod
    def from_paths(
        cls,
        paths: Iterable[str | os.PathLike],
        image_size: int | tuple[int, int] | None = 256,
        *,
        channels: int = 3,
    ) -> ImageFolder:
        """A dataset of the given image files, in the given order (label 0, empty masks).

        Raises:
            DatasetLayoutError: a file does not exist, is not an image file, or ``paths`` is empty.
        """
        files = [Path(p) for p in paths]
        if not files:
            raise DatasetLayoutError("expected at least one image file, got an empty list")
        absent = [p for p in files if not p.is_file()]
        if absent:
            raise DatasetLayoutError(f"{len(absent)} image file(s) not found:\n{format_paths(absent)}")
        unknown = [p for p in files if not is_image_file(p)]
        if unknown:
            raise DatasetLayoutError(
                f"{len(unknown)} file(s) without an image extension ({', '.join(IMAGE_EXTENSIONS)}):\n"
                f"{format_paths(unknown)}"
            )
        dataset = cls.__new__(cls)
        AnomalyDataset.__init__(dataset, [Sample(p, None, 0) for p in files], image_size, channels=channels)
        dataset.root = None
        dataset.recursive = False
        return dataset

    def _describe(self) -> str:
        return f"{str(self.root)!r}: " if self.root is not None else "files: "
