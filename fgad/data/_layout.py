"""Scanning of ``train/<good>``, ``test/<defect>``, ``ground_truth/<defect>`` layouts (MVTec AD, BTAD).

Masks are matched to images by name (image stem + a suffix, any image extension), never by sort
order; every problem found in a split is reported in one error.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .base import DatasetLayoutError, Sample, format_paths
from .io import IMAGE_EXTENSIONS, list_images

__all__ = ["check_category", "match_masks", "scan_split"]


def _subdirs(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def check_category(root: str | Path, category: str, dataset: str, expected: str) -> Path:
    """Return ``root / category``; a missing root or category is an error listing what exists."""
    if not isinstance(category, str) or not category or Path(category).name != category:
        raise ValueError(f"category must be a folder name (a non-empty str without '/'), got {category!r}")
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"{dataset} root folder {str(root)!r} does not exist.\n{expected}")
    category_dir = root / category
    if not category_dir.is_dir():
        found = _subdirs(root)
        listing = ", ".join(found[:30]) + (" ..." if len(found) > 30 else "") if found else "(no folders)"
        raise DatasetLayoutError(
            f"{dataset} category {category!r} not found: {str(category_dir)!r} is not a folder; "
            f"folders in {str(root)!r}: {listing}.\n{expected}"
        )
    return category_dir


def match_masks(
    images: Sequence[Path], mask_dir: Path, suffixes: Sequence[str]
) -> tuple[dict[Path, Path], list[Path], list[Path], list[str]]:
    """Match each image ``<stem>.<ext>`` to a file ``<stem><suffix>.<any image ext>`` in ``mask_dir``.

    Returns:
        ``(matches, missing, orphans, ambiguous)``: image -> mask; images without a mask; mask
        files no image claims; descriptions of images with more than one candidate mask.
    """
    by_stem: dict[str, list[Path]] = {}
    for mask in list_images(mask_dir):
        by_stem.setdefault(mask.stem, []).append(mask)
    matches: dict[Path, Path] = {}
    missing: list[Path] = []
    ambiguous: list[str] = []
    claimed: set[Path] = set()
    for image in images:
        candidates = [m for suffix in suffixes for m in by_stem.get(image.stem + suffix, [])]
        if len(candidates) == 1:
            matches[image] = candidates[0]
        elif not candidates:
            missing.append(image)
        else:
            ambiguous.append(f"{image} -> {', '.join(m.name for m in candidates)}")
        claimed.update(candidates)
    orphans = [m for masks in by_stem.values() for m in masks if m not in claimed]
    return matches, missing, sorted(orphans), ambiguous


def scan_split(
    *,
    dataset: str,
    category_dir: Path,
    split: str,
    good: str,
    defects: Sequence[str] | None,
    mask_suffixes: Sequence[str],
    expected: str,
) -> list[Sample]:
    """Build the samples of ``split`` ("train" or "test") under ``category_dir``.

    Args:
        dataset: name used in messages ("MVTec AD", "BTAD").
        category_dir: ``<root>/<category>``.
        split: "train" (``train/<good>`` only) or "test" (``test/<good>`` and defect folders).
        good: name of the good-image folder ("good", "ok").
        defects: defect folder names under ``test`` (and ``ground_truth``); ``None`` means every
            sub-folder of ``test`` other than ``good``.
        mask_suffixes: appended to an image's stem to name its mask (``("_mask",)`` for MVTec).
        expected: the layout description appended to every error.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    mask_hint = " or ".join(f"<stem>{s}.png" for s in mask_suffixes) + " (or another image extension)"
    if split == "train":
        folder = category_dir / "train" / good
        if not folder.is_dir():
            raise DatasetLayoutError(
                f"{dataset}: missing folder {str(folder)!r} (the good training images).\n{expected}"
            )
        images = list_images(folder)
        if not images:
            raise DatasetLayoutError(
                f"{dataset}: no images ({', '.join(IMAGE_EXTENSIONS)}) in {str(folder)!r}.\n{expected}"
            )
        return [Sample(p, None, 0) for p in images]

    test_dir = category_dir / "test"
    gt_dir = category_dir / "ground_truth"
    if not test_dir.is_dir():
        raise DatasetLayoutError(
            f"{dataset}: missing folder {str(test_dir)!r} (the test images).\n{expected}"
        )
    present = _subdirs(test_dir)
    defect_names = (
        [d for d in present if d != good] if defects is None else [d for d in defects if d in present]
    )
    if good not in present and not defect_names:
        wanted = [good, *(defects or ["<defect>"])]
        raise DatasetLayoutError(
            f"{dataset}: {str(test_dir)!r} holds none of the expected folders "
            f"{', '.join(repr(w) for w in wanted)} (found: {', '.join(present) or 'nothing'}).\n{expected}"
        )

    samples: list[Sample] = []
    if good in present:
        samples += [Sample(p, None, 0) for p in list_images(test_dir / good)]
    missing_dirs: list[Path] = []
    missing_masks: list[Path] = []
    orphan_masks: list[Path] = []
    ambiguous: list[str] = []
    for defect in defect_names:
        images = list_images(test_dir / defect)
        mask_dir = gt_dir / defect
        if not images:
            orphan_masks += list_images(mask_dir) if mask_dir.is_dir() else []
            continue
        if not mask_dir.is_dir():
            missing_dirs.append(mask_dir)
            continue
        matches, missing, orphans, ambiguous_here = match_masks(images, mask_dir, mask_suffixes)
        missing_masks += missing
        orphan_masks += orphans
        ambiguous += ambiguous_here
        samples += [Sample(p, matches[p], 1) for p in images if p in matches]
    # Masks of a defect type that has no test folder are masks without images; a ground_truth
    # folder for the good images is ignored (good images have no masks).
    for name in _subdirs(gt_dir):
        if name != good and name not in defect_names:
            orphan_masks += list_images(gt_dir / name)

    problems = []
    if missing_dirs:
        problems.append(f"missing mask folders:\n{format_paths(missing_dirs)}")
    if missing_masks:
        problems.append(
            f"{len(missing_masks)} defective image(s) without a mask (expected {mask_hint} "
            f"in ground_truth/<defect>):\n{format_paths(missing_masks)}"
        )
    if orphan_masks:
        problems.append(f"{len(orphan_masks)} mask(s) without an image:\n{format_paths(orphan_masks)}")
    if ambiguous:
        problems.append(f"images with more than one mask:\n{format_paths(ambiguous)}")
    if problems:
        raise DatasetLayoutError(
            f"{dataset} {str(category_dir)!r}, test split: " + "\n".join(problems) + f"\n{expected}"
        )
    if not samples:
        raise DatasetLayoutError(f"{dataset}: no test images in {str(test_dir)!r}.\n{expected}")
    return samples
