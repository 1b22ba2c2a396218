"""Data: MVTec AD, BTAD and plain image folders; anomaly-source textures; the bundled demo.

Datasets decode and resize with OpenCV (in DataLoader workers) and yield ``uint8`` samples
``{"image": (C, H, W), "mask": (1, H, W) in {0, 1}, "label": 0/1, "path": str}``; convert a
collated batch on the device with :func:`to_float` / :func:`batch_to_device`.
"""

from .base import AnomalyDataset, DatasetLayoutError, Sample
from .btad import BTAD
from .convert import batch_to_device, to_float
from .demo import DEMO_CATEGORY, demo_root
from .folder import ImageFolder
from .io import (
    IMAGE_EXTENSIONS,
    is_image_file,
    list_images,
    normalize_size,
    read_image,
    read_mask,
    resize_image,
    resize_mask,
    worker_init,
)
from .mvtec import MVTecAD
from .textures import TextureFolder

__all__ = [
    "AnomalyDataset",
    "BTAD",
    "DEMO_CATEGORY",
    "DatasetLayoutError",
    "IMAGE_EXTENSIONS",
    "ImageFolder",
    "MVTecAD",
    "Sample",
    "TextureFolder",
    "batch_to_device",
    "demo_root",
    "is_image_file",
    "list_images",
    "normalize_size",
    "read_image",
    "read_mask",
    "resize_image",
    "resize_mask",
    "to_float",
    "worker_init",
]
