"""MVTec AD folder layout (Bergmann et al., CVPR 2019)."""

from __future__ import annotations

from pathlib import Path

from ._layout import check_category, scan_split
from .base import AnomalyDataset

__all__ = ["MVTecAD"]

_EXPECTED = """expected the MVTec AD layout:
  <root>/<category>/train/good/*.png                        good training images
  <root>/<category>/test/good/*.png                         good test images
  <root>/<category>/test/<defect>/<stem>.png                defective test images, a folder per defect type
  <root>/<category>/ground_truth/<defect>/<stem>_mask.png   their masks, matched by name
(any of .png .jpg .jpeg .bmp .tif .tiff .webp)"""


class MVTecAD(AnomalyDataset):
    """One category of MVTec AD, or any data set in its folder layout.

    Layout::

        <root>/<category>/train/good/*.png
        <root>/<category>/test/good/*.png
        <root>/<category>/test/<defect>/<stem>.png
        <root>/<category>/ground_truth/<defect>/<stem>_mask.png

    Args:
        root: the folder that holds the category folders.
        category: e.g. ``"bottle"``; the bundled demo is ``"hazelnut_toy"`` under
            ``demo_root().parent``.
        split: ``"train"`` (``train/good`` only) or ``"test"`` (``test/good`` and every other
            sub-folder of ``test`` as a defect type).
        image_size: int or ``(H, W)``; ``None`` keeps the files' size.
        channels: 3 (RGB) or 1 (grey).
        mask_threshold: see :func:`fgad.data.read_mask`.
        foreground: foreground masks of the training images (where synthetic anomalies may go):
            ``None`` (default) reads ``<root>/<category>/train/foreground/<stem>.png`` (any image
            extension, or ``<stem>_mask.png``; non-zero = object) when that folder exists and the
            split is ``"train"``; ``True`` requires that folder; a path reads another folder;
            ``False`` never. With masks, every item has ``"foreground"`` (see
            :class:`~fgad.data.base.AnomalyDataset`) and every image must have one.

    Convention:
        Masks are matched by name: image ``test/<defect>/<stem>.<ext>`` takes
        ``ground_truth/<defect>/<stem>_mask.<ext2>`` (any image extensions). A defective image
        without a mask, a mask without an image (including masks of a defect type with no test
        folder) and an image with two candidate masks are errors (:class:`DatasetLayoutError`,
        all listed at once). ``ground_truth/good`` is ignored. Order: ``good`` first, then the
        defect types alphabetically; files sorted by name. Other folders in ``train`` are ignored.
        The defect type of a sample is the name of its image's parent folder.

    Raises:
        DatasetLayoutError: a folder is missing (the message shows the expected layout) or
            masks and images do not match.

    Example:
        >>> from fgad.data import MVTecAD, demo_root
        >>> test = MVTecAD(demo_root().parent, "hazelnut_toy", split="test", image_size=64)
        >>> len(test), sum(test.labels)
        (23, 17)
        >>> item = test[-1]
        >>> item["image"].shape, item["image"].dtype, item["mask"].shape, item["label"]
        (torch.Size([3, 64, 64]), torch.uint8, torch.Size([1, 64, 64]), 1)
    """

    def __init__(
        self,
        root: str | Path,
        category: str,
        split: str = "train",
        image_size: int | tuple[int, int] | None = 256,
        *,
        channels: int = 3,
        mask_threshold: float = 0.0,
        foreground: str | Path | bool | None = None,
    ) -> None:
        category_dir = check_category(root, category, "MVTec AD", _EXPECTED)
        samples = scan_split(
            dataset="MVTec AD",
            category_dir=category_dir,
            split=split,
            good="good",
            defects=None,
            mask_suffixes=("_mask",),
            expected=_EXPECTED,
        )
        super().__init__(samples, image_size, channels=channels, mask_threshold=mask_threshold)
        self._attach_default_foreground(category_dir, split, foreground)
        self.root = Path(root)
        self.category = category
        self.split = split

    def _describe(self) -> str:
        return f"{str(self.root)!r}, {self.category!r}, split={self.split!r}: "
