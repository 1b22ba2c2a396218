"""Decoding, resizing and listing of image files with OpenCV.

Everything here works on NumPy arrays in the decoder's own process (a DataLoader worker), so that
samples can travel to the training device as ``uint8`` and be converted to float there
(:func:`fgad.data.to_float`).

Convention:
    - Decoding: ``cv2.imdecode`` with ``IMREAD_ANYDEPTH | IMREAD_ANYCOLOR`` on the file's bytes
      (read with NumPy, so non-ASCII paths work on every OS). These flags keep 16-bit depth and
      grey images as they are, drop an alpha channel and apply a JPEG's EXIF orientation (the
      image comes out as a viewer shows it, which is how masks are drawn). ``IMREAD_UNCHANGED``
      would skip the EXIF rotation.
    - Alpha (RGBA, grey + alpha) is dropped, not composited: the colour values are kept as stored.
    - Grey images are replicated to 3 channels (``channels=3``); with ``channels=1`` colour
      images are converted to grey with ``cv2.COLOR_BGR2GRAY`` (ITU-R BT.601 weights).
    - 16-bit images are scaled to 8 bits by ``round(x * 255 / 65535)``; float images (32-bit TIFF)
      must lie in [0, 1] and are scaled by 255 and rounded. Other depths are rejected.
    - Channel order of returned colour images is RGB.
    - Resizing images: ``cv2.INTER_AREA`` when no side grows (shrinking), ``cv2.INTER_LINEAR``
      when a side grows; an image already at the target size is returned as is.
    - Masks: a pixel is anomalous where any channel exceeds ``threshold`` times the depth's
      maximum (255, 65535, or 1.0 for float); the default threshold 0 means "non-zero". Masks are
      binarised at their own resolution and resized with ``cv2.INTER_NEAREST``, which only picks
      source pixels, so the result is the same as resizing first and keeping ``mask > 0``.
    - A corrupt or truncated file is an error naming the file. ``cv2.imdecode`` (used here) rejects
      a cut-off JPEG, where ``cv2.imread`` would return it with grey rows and only a warning.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

# The process that imported this module; a forked DataLoader worker has another pid.
_IMPORT_PID = os.getpid()

__all__ = [
    "IMAGE_EXTENSIONS",
    "is_image_file",
    "list_images",
    "normalize_size",
    "read_image",
    "read_mask",
    "resize_image",
    "resize_mask",
    "worker_init",
]

IMAGE_EXTENSIONS: tuple[str, ...] = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
"""File extensions (lower case) that fgad's datasets read; matching ignores case."""

_DECODE_FLAGS = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR

PathLike = str | os.PathLike


def is_image_file(path: PathLike) -> bool:
    """Whether ``path`` has one of :data:`IMAGE_EXTENSIONS` (any case) and is not hidden."""
    name = os.path.basename(os.fspath(path))
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def list_images(folder: PathLike, *, recursive: bool = False) -> list[Path]:
    """List the image files in a folder in a deterministic order.

    Hidden files and folders (name starting with ``.``, e.g. ``.ipynb_checkpoints``) are skipped;
    symbolic links to folders are not followed. Files are sorted by their path relative to
    ``folder`` (``/``-separated), so the order does not depend on the file system.

    Args:
        folder: the folder to list (must exist).
        recursive: also list sub-folders.

    Returns:
        Paths (``folder`` joined with the relative path) of files with an extension in
        :data:`IMAGE_EXTENSIONS`.

    Raises:
        NotADirectoryError: ``folder`` is not a folder.

    Example:
        >>> from fgad.data import demo_root
        >>> files = list_images(demo_root() / "train" / "good")
        >>> len(files), files[0].name
        (28, '000.png')
    """
    root = Path(folder)
    if not root.is_dir():
        raise NotADirectoryError(f"expected a folder of images, {str(root)!r} is not a folder")
    found: list[tuple[str, Path]] = []
    if recursive:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            base = Path(dirpath)
            for name in filenames:
                if is_image_file(name):
                    path = base / name
                    found.append((path.relative_to(root).as_posix(), path))
    else:
        for entry in os.scandir(root):
            if entry.is_file() and is_image_file(entry.name):
                found.append((entry.name, root / entry.name))
    found.sort(key=lambda item: item[0])
    return [path for _, path in found]


def normalize_size(
    image_size: int | Iterable[int] | None, name: str = "image_size"
) -> tuple[int, int] | None:
    """Turn ``image_size`` (an int, an ``(H, W)`` pair or ``None``) into ``(H, W)`` or ``None``.

    Example:
        >>> normalize_size(256), normalize_size((120, 160)), normalize_size(None)
        ((256, 256), (120, 160), None)
    """
    if image_size is None:
        return None
    if isinstance(image_size, bool):
        raise TypeError(f"{name} must be an int or an (H, W) pair of ints, got {image_size!r}")
    if isinstance(image_size, int | np.integer):
        size: tuple[int, ...] = (int(image_size), int(image_size))
    else:
        try:
            size = tuple(image_size)
        except TypeError:
            raise TypeError(f"{name} must be an int or an (H, W) pair of ints, got {image_size!r}") from None
        if len(size) != 2 or not all(
            isinstance(s, int | np.integer) and not isinstance(s, bool) for s in size
        ):
            raise TypeError(f"{name} must be an int or an (H, W) pair of ints, got {image_size!r}")
        size = (int(size[0]), int(size[1]))
    if min(size) < 1:
        raise ValueError(f"{name} must be positive, got {image_size!r}")
    return size[0], size[1]


def _decode(path: PathLike) -> np.ndarray:
    """Read a file's bytes and decode them with OpenCV; errors name the file."""
    path = os.fspath(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path!r}") from None
    except OSError as error:
        raise OSError(f"cannot read image file {path!r}: {error}") from error
    if data.size == 0:
        raise ValueError(f"cannot decode image file {path!r}: the file is empty")
    image = cv2.imdecode(data, _DECODE_FLAGS)
    if image is None or image.size == 0:
        raise ValueError(
            f"cannot decode image file {path!r}: corrupt or not an image OpenCV can read "
            f"(expected one of {', '.join(IMAGE_EXTENSIONS)})"
        )
    return image


def _to_uint8(image: np.ndarray, path: PathLike) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        # round(x / 257) == round(x * 255 / 65535); x / 257 is never exactly halfway for integer x.
        return ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if image.dtype in (np.float32, np.float64):
        if not np.isfinite(image).all():
            raise ValueError(f"image file {os.fspath(path)!r} holds NaN or infinite values")
        return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    raise ValueError(
        f"image file {os.fspath(path)!r} has pixel type {image.dtype}; "
        "expected 8-bit, 16-bit unsigned or float images"
    )


def read_image(path: PathLike, channels: int = 3) -> np.ndarray:
    """Decode an image file into an 8-bit RGB (or grey) array.

    Args:
        path: the image file.
        channels: 3 for RGB (grey images replicated), 1 for grey (colour converted with
            ``cv2.COLOR_BGR2GRAY``).

    Returns:
        ``uint8`` array of shape ``(H, W, channels)``, RGB order when ``channels == 3``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file cannot be decoded (corrupt, truncated, empty, unsupported depth);
            the message names the file.

    Convention:
        See the module docstring: alpha dropped, 16-bit scaled by ``255 / 65535``, EXIF
        orientation applied.

    Example:
        >>> from fgad.data import demo_root
        >>> image = read_image(demo_root() / "train" / "good" / "000.png")
        >>> image.shape, image.dtype
        ((256, 256, 3), dtype('uint8'))
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    image = _to_uint8(_decode(path), path)
    if image.ndim == 2:
        image = image[:, :, None]
    if channels == 3:
        if image.shape[2] == 1:
            return np.ascontiguousarray(np.repeat(image, 3, axis=2))
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.shape[2] == 1:
        return image
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[:, :, None]


def read_mask(path: PathLike, threshold: float = 0.0) -> np.ndarray:
    """Decode a ground-truth mask file into a binary array.

    Args:
        path: the mask file (any format and depth :func:`read_image` reads; colour masks allowed).
        threshold: fraction of the depth's maximum value; a pixel is anomalous where any channel
            is greater than ``threshold * max`` (``max`` is 255 for 8-bit, 65535 for 16-bit, 1.0
            for float). 0 (default) means "any non-zero value"; 0.5 suits masks saved as JPEG.

    Returns:
        ``uint8`` array ``(H, W)`` with values in {0, 1}.

    Example:
        >>> from fgad.data import demo_root
        >>> mask = read_mask(demo_root() / "ground_truth" / "colour" / "000_mask.png")
        >>> mask.shape, sorted(set(mask.ravel().tolist()))
        ((256, 256), [0, 1])
    """
    if not 0.0 <= float(threshold) < 1.0:
        raise ValueError(f"mask threshold must be in [0, 1), got {threshold!r}")
    mask = _decode(path)
    if np.issubdtype(mask.dtype, np.integer):
        limit = float(np.iinfo(mask.dtype).max) * float(threshold)
    elif np.issubdtype(mask.dtype, np.floating):
        limit = float(threshold)
    else:
        raise ValueError(f"mask file {os.fspath(path)!r} has unsupported pixel type {mask.dtype}")
    binary = np.asarray(mask > limit)
    if binary.ndim == 3:
        binary = np.asarray(binary.any(axis=2))
    return binary.astype(np.uint8)


def _check_hw(array: np.ndarray, size: int | tuple[int, int] | None, name: str) -> tuple[int, int] | None:
    if not isinstance(array, np.ndarray) or array.ndim not in (2, 3) or array.size == 0:
        shape = getattr(array, "shape", None)
        raise ValueError(f"{name} must be a non-empty (H, W) or (H, W, C) array, got shape {shape}")
    return normalize_size(size, "size")


def resize_image(image: np.ndarray, size: int | tuple[int, int] | None) -> np.ndarray:
    """Resize an ``(H, W)`` or ``(H, W, C)`` image to ``size`` = ``(H, W)`` (or a square side).

    Uses ``cv2.INTER_AREA`` when neither side grows and ``cv2.INTER_LINEAR`` otherwise; ``None``
    or the current size returns the input unchanged. The number of dimensions is kept.

    Example:
        >>> import numpy as np
        >>> resize_image(np.zeros((100, 80, 3), np.uint8), (50, 40)).shape
        (50, 40, 3)
    """
    target = _check_hw(image, size, "image")
    height, width = image.shape[:2]
    if target is None or target == (height, width):
        return image
    grows = target[0] > height or target[1] > width
    interpolation = cv2.INTER_LINEAR if grows else cv2.INTER_AREA
    out = cv2.resize(image, (target[1], target[0]), interpolation=interpolation)
    if image.ndim == 3 and out.ndim == 2:
        out = out[:, :, None]
    return out


def resize_mask(mask: np.ndarray, size: int | tuple[int, int] | None) -> np.ndarray:
    """Resize a mask with ``cv2.INTER_NEAREST`` and re-binarise it (``> 0`` -> 1).

    Example:
        >>> import numpy as np
        >>> mask = np.zeros((4, 4), np.uint8); mask[:2, :2] = 255
        >>> resize_mask(mask, 2).tolist()
        [[1, 0], [0, 0]]
    """
    target = _check_hw(mask, size, "mask")
    height, width = mask.shape[:2]
    if target is not None and target != (height, width):
        mask = cv2.resize(mask, (target[1], target[0]), interpolation=cv2.INTER_NEAREST)
    return (mask > 0).astype(np.uint8)


def worker_init(worker_id: int) -> None:
    """``DataLoader(worker_init_fn=...)``: one OpenCV thread per freshly started worker process.

    OpenCV starts a thread per core in every process; with several loader workers that
    oversubscribes the CPU, and the workers already decode in parallel. A *forked* worker is left
    alone: it inherits the parent's OpenCV thread pool without its threads, and
    ``cv2.setNumThreads`` then waits forever for them (OpenCV's pthreads backend). Forked workers
    still decode correctly; spawn / forkserver workers get the single-thread setting.
    """
    if os.getpid() == _IMPORT_PID:  # this module was imported in this process: not a fork
        cv2.setNumThreads(1)
