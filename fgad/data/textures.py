"""Anomaly-source textures (e.g. DTD) held as one tensor bank on the training device."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from .base import DatasetLayoutError
from .convert import to_float
from .io import IMAGE_EXTENSIONS, list_images, normalize_size, read_image, resize_image

__all__ = ["TextureFolder"]


class TextureFolder:
    """The texture images under a folder, loaded once into a float bank ``(N, C, h, w)``.

    Works with the DTD layout (``<root>/images/<class>/*.jpg``; pass the DTD root or its
    ``images`` folder) or any folder of images, read recursively.

    Args:
        root: the folder.
        image_size: size of every texture in the bank, int or ``(h, w)``. Textures are resized to
            it directly (as DRAEM does; the aspect ratio is not kept), ``cv2.INTER_AREA`` when
            shrinking, ``cv2.INTER_LINEAR`` when enlarging.
        max_images: use at most this many files, spread evenly over the sorted list
            (``files[floor(i * n / max_images)]``) so that every DTD class is represented;
            ``None`` takes all. The bank holds ``N * C * h * w`` floats: DTD's 5640 images at 256
            take 4.4 GB in float32, so pick ``max_images`` for the device.
        recursive: read sub-folders (default).
        channels: 3 (RGB) or 1 (grey).
        num_threads: decoding threads (OpenCV releases the GIL while decoding); default
            ``min(8, os.cpu_count())``.

    Attributes:
        paths: the selected files, in bank order.

    Raises:
        DatasetLayoutError: ``root`` is not a folder or holds no image.

    Example:
        >>> import torch
        >>> from fgad.data import TextureFolder, demo_root
        >>> textures = TextureFolder(demo_root() / "train", image_size=32, max_images=4)
        >>> bank = textures.load()
        >>> bank.shape, bank.dtype, bool(bank.min() >= 0) and bool(bank.max() <= 1)
        (torch.Size([4, 3, 32, 32]), torch.float32, True)
    """

    def __init__(
        self,
        root: str | Path,
        image_size: int | tuple[int, int] = 256,
        max_images: int | None = None,
        recursive: bool = True,
        *,
        channels: int = 3,
        num_threads: int | None = None,
    ) -> None:
        size = normalize_size(image_size)
        if size is None:
            raise ValueError("image_size must be an int or an (h, w) pair: a texture bank needs one size")
        if max_images is not None and (
            isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1
        ):
            raise ValueError(f"max_images must be a positive int or None, got {max_images!r}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels!r}")
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
            raise ValueError(f"num_threads must be a positive int or None, got {num_threads!r}")
        root = Path(root)
        if not root.is_dir():
            raise DatasetLayoutError(
                f"texture folder {str(root)!r} does not exist (expected a folder of images)"
            )
        files = list_images(root, recursive=recursive)
        if not files:
            raise DatasetLayoutError(
                f"no texture images found in {str(root)!r}{' or its sub-folders' if recursive else ''}; "
                f"expected files ending in {', '.join(IMAGE_EXTENSIONS)}"
            )
        if max_images is not None and max_images < len(files):
            n = len(files)
            files = [files[i * n // max_images] for i in range(max_images)]
        self.root = root
        self.image_size: tuple[int, int] = size
        self.channels = int(channels)
        self.num_threads = num_threads or min(8, os.cpu_count() or 1)
        self.paths: list[Path] = files

    def __len__(self) -> int:
        return len(self.paths)

    def _read(self, path: Path) -> np.ndarray:
        image = resize_image(read_image(path, self.channels), self.image_size)
        return image.transpose(2, 0, 1)

    def load_uint8(self) -> torch.Tensor:
        """Decode and resize every texture (in threads) into a CPU ``uint8`` tensor ``(N, C, h, w)``."""
        bank = np.empty((len(self.paths), self.channels, *self.image_size), dtype=np.uint8)
        with ThreadPoolExecutor(max_workers=self.num_threads) as pool:
            for i, image in enumerate(pool.map(self._read, self.paths)):
                bank[i] = image
        return torch.from_numpy(bank)

    def load(
        self, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """The texture bank: float ``(N, C, h, w)`` in [0, 1] on ``device`` (CPU when ``None``).

        Files are decoded once, here; the bank is meant to be kept for the whole training run and
        indexed per synthetic anomaly (``AnomalySynthesizer(images, bank)``). The transfer is done
        as ``uint8`` and the division by 255 on the device.

        Raises:
            ValueError: a file cannot be decoded (the message names it).
        """
        return to_float(self.load_uint8(), device, dtype)

    def __repr__(self) -> str:
        return (
            f"TextureFolder({str(self.root)!r}: {len(self)} images, image_size={self.image_size}, "
            f"channels={self.channels})"
        )
