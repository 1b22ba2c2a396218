"""Scanning of ``train/<good>``, ``test/<defect>``, ``ground_truth/<defect>`` layouts (MVTec AD, BTAD).

Masks are matched to images by name (image stem + a suffix, any image extension), never by sort
order; every problem found in a split is reported in one error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
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
    if split == "train":
        return _train_samples(dataset, category_dir / "train" / good, expected)
    test_dir = category_dir / "test"
    gt_dir = category_dir / "ground_truth"
    has_good, defect_names = _test_folders(dataset, test_dir, good, defects, expected)
    samples = [Sample(p, None, 0) for p in list_images(test_dir / good)] if has_good else []
    problems = _MaskProblems()
    samples += _defect_samples(test_dir, gt_dir, defect_names, mask_suffixes, problems)
    problems.orphan_masks += _masks_without_test_folder(gt_dir, good, defect_names)
    messages = problems.messages(mask_suffixes)
    if messages:
        raise DatasetLayoutError(
            f"{dataset} {str(category_dir)!r}, test split: " + "\n".join(messages) + f"\n{expected}"
        )
    if not samples:
        raise DatasetLayoutError(f"{dataset}: no test images in {str(test_dir)!r}.\n{expected}")
    return samples


def _train_samples(dataset: str, folder: Path, expected: str) -> list[Sample]:
    """The good training images of ``train/<good>``; an error when the folder is missing or empty."""
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


def _test_folders(
    dataset: str, test_dir: Path, good: str, defects: Sequence[str] | None, expected: str
) -> tuple[bool, list[str]]:
    """Whether ``test/<good>`` exists, and the defect folders of ``test`` to read (``defects`` that
    exist, or every folder but ``good``); an error when ``test`` holds none of them."""
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
    return good in present, defect_names


@dataclass
class _MaskProblems:
    """What does not match in a test split's masks, collected over every defect folder."""

    missing_dirs: list[Path] = field(default_factory=list)
    missing_masks: list[Path] = field(default_factory=list)
    orphan_masks: list[Path] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)

    def messages(self, mask_suffixes: Sequence[str]) -> list[str]:
        """One message per kind of problem found; empty when the masks match."""
        mask_hint = " or ".join(f"<stem>{s}.png" for s in mask_suffixes) + " (or another image extension)"
        messages = []
        if self.missing_dirs:
            messages.append(f"missing mask folders:\n{format_paths(self.missing_dirs)}")
        if self.missing_masks:
            messages.append(
                f"{len(self.missing_masks)} defective image(s) without a mask (expected {mask_hint} "
                f"in ground_truth/<defect>):\n{format_paths(self.missing_masks)}"
            )
        if self.orphan_masks:
            messages.append(
                f"{len(self.orphan_masks)} mask(s) without an image:\n{format_paths(self.orphan_masks)}"
            )
        if self.ambiguous:
            messages.append(f"images with more than one mask:\n{format_paths(self.ambiguous)}")
        return messages


def _defect_samples(
    test_dir: Path,
    gt_dir: Path,
    defect_names: Sequence[str],
    mask_suffixes: Sequence[str],
    problems: _MaskProblems,
) -> list[Sample]:
    """The images of each defect folder that have exactly one mask; the rest goes to ``problems``."""
    samples: list[Sample] = []
    for defect in defect_names:
        images = list_images(test_dir / defect)
        mask_dir = gt_dir / defect
        if not images:
            problems.orphan_masks += list_images(mask_dir) if mask_dir.is_dir() else []
            continue
        if not mask_dir.is_dir():
            problems.missing_dirs.append(mask_dir)
            continue
        matches, missing, orphans, ambiguous = match_masks(images, mask_dir, mask_suffixes)
        problems.missing_masks += missing
        problems.orphan_masks += orphans
        problems.ambiguous += ambiguous
        samples += [Sample(p, matches[p], 1) for p in images if p in matches]
    return samples


def _masks_without_test_folder(gt_dir: Path, good: str, defect_names: Sequence[str]) -> list[Path]:
    """Masks of a defect type that has no test folder (masks without images); a ground_truth folder
    for the good images is ignored (good images have no masks)."""
    return [
        mask
        for name in _subdirs(gt_dir)
        if name != good and name not in defect_names
        for mask in list_images(gt_dir / name)
    ]
