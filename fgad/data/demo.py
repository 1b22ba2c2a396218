"""The bundled demo data set: real hazelnut photos in the MVTec AD layout (CC-BY-4.0)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEMO_CATEGORY", "demo_root"]

DEMO_CATEGORY = "hazelnut_toy"
"""Category name of the bundled demo data set."""


def demo_root() -> Path:
    """The folder of the bundled demo data set ``hazelnut_toy`` (MVTec AD layout, 256 x 256 PNG).

    28 good training images; 6 good and 17 defective ("colour") test images with masks. Origin and
    license (CC-BY-4.0): ``demo_root() / "SOURCE.md"``. Read it with
    ``MVTecAD(demo_root().parent, "hazelnut_toy", split)``.

    Raises:
        FileNotFoundError: the data was not installed with the package.

    Example:
        >>> root = demo_root()
        >>> root.name, (root / "SOURCE.md").is_file()
        ('hazelnut_toy', True)
    """
    root = Path(__file__).resolve().parent / "demo" / DEMO_CATEGORY
    if not (root / "train" / "good").is_dir():
        raise FileNotFoundError(
            f"fgad's demo data is missing: expected {str(root)!r} with train/, test/ and ground_truth/; "
            "reinstall fgad with its package data"
        )
    return root
