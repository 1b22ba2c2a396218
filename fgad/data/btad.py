"""BTAD folder layout (beanTech Anomaly Detection, Mishra et al., 2021)."""

from __future__ import annotations

from pathlib import Path

from ._layout import check_category, scan_split
from .base import AnomalyDataset

__all__ = ["BTAD"]

_EXPECTED = """expected the BTAD layout:
  <root>/<category>/train/ok/*.bmp                  good training images
  <root>/<category>/test/ok/*.bmp                   good test images
  <root>/<category>/test/ko/<stem>.bmp              defective test images
  <root>/<category>/ground_truth/ko/<stem>.png      their masks, matched by stem (extensions may differ)
(any of .png .jpg .jpeg .bmp .tif .tiff .webp)"""


class BTAD(AnomalyDataset):
    """One product of BTAD (``"01"``, ``"02"``, ``"03"``), or any data set in its layout.

    Layout::

        <root>/<category>/train/ok/*.bmp
        <root>/<category>/test/ok/*.bmp
        <root>/<category>/test/ko/<stem>.bmp
        <root>/<category>/ground_truth/ko/<stem>.png

    Args:
        root: the folder that holds the product folders.
        category: product folder name, e.g. ``"01"``.
        split: ``"train"`` (``train/ok``) or ``"test"`` (``test/ok`` label 0, ``test/ko`` label 1).
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
        Masks are matched by stem: image ``test/ko/<stem>.<ext>`` takes
        ``ground_truth/ko/<stem>.<ext2>`` or ``ground_truth/ko/<stem>_mask.<ext2>``; the
        extensions may differ (BTAD pairs ``.bmp`` images with ``.png`` masks). Missing or extra
        masks are errors, as for :class:`MVTecAD`. Other folders in ``test`` are ignored. Order:
        ``ok`` then ``ko``, files sorted by name.

    Raises:
        DatasetLayoutError: a folder is missing (the message shows the expected layout) or
            masks and images do not match.
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
        category_dir = check_category(root, category, "BTAD", _EXPECTED)
        samples = scan_split(
            dataset="BTAD",
            category_dir=category_dir,
            split=split,
            good="ok",
            defects=("ko",),
            mask_suffixes=("", "_mask"),
            expected=_EXPECTED,
        )
        super().__init__(samples, image_size, channels=channels, mask_threshold=mask_threshold)
        self._attach_default_foreground(category_dir, split, foreground)
        self.root = Path(root)
        self.category = category
        self.split = split

    def _describe(self) -> str:
        return f"{str(self.root)!r}, {self.category!r}, split={self.split!r}: "
