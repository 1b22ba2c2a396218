"""Tests of fgad.data: folder layouts, decoding, resizing, loaders, textures, the bundled demo."""

from __future__ import annotations

import pickle
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, Subset

import fgad.data as data
from fgad.data import (
    BTAD,
    AnomalyDataset,
    DatasetLayoutError,
    ImageFolder,
    MVTecAD,
    Sample,
    TextureFolder,
    batch_to_device,
    demo_root,
    read_image,
    read_mask,
    resize_image,
    resize_mask,
    to_float,
)

# ----------------------------------------------------------------------------------------- helpers


def _write(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array), path
    return path


def _coded_image(code: int, size: tuple[int, int] = (12, 16)) -> np.ndarray:
    """A BGR image whose pixels all hold ``code`` in the blue channel (recoverable after decoding)."""
    image = np.zeros((*size, 3), np.uint8)
    image[..., 0] = code
    image[..., 1] = 7
    return image


def _coded_mask(code: int, size: tuple[int, int] = (12, 16)) -> np.ndarray:
    """A 0/255 mask with exactly ``code + 1`` foreground pixels."""
    mask = np.zeros(size, np.uint8)
    mask.reshape(-1)[: code + 1] = 255
    return mask


def _mvtec(
    root: Path,
    *,
    category: str = "widget",
    train: int = 3,
    good: int = 2,
    defects: dict[str, list[str]] | None = None,
    ext: str = ".png",
    mask_ext: str = ".png",
) -> dict[str, int]:
    """Build an MVTec tree; returns stem-path -> code written into both the image and its mask."""
    defects = {"crack": ["000", "001", "002"], "scratch": ["000", "001"]} if defects is None else defects
    base = root / category
    codes: dict[str, int] = {}
    for i in range(train):
        _write(base / "train" / "good" / f"{i:03d}{ext}", _coded_image(200 + i))
    for i in range(good):
        _write(base / "test" / "good" / f"{i:03d}{ext}", _coded_image(150 + i))
    code = 0
    for defect, stems in defects.items():
        for stem in stems:
            _write(base / "test" / defect / f"{stem}{ext}", _coded_image(code))
            _write(base / "ground_truth" / defect / f"{stem}_mask{mask_ext}", _coded_mask(code))
            codes[f"{defect}/{stem}"] = code
            code += 1
    return codes


def _check_item(item: dict, channels: int = 3) -> None:
    assert set(item) == {"image", "mask", "label", "path"}
    assert item["image"].dtype == torch.uint8 and item["image"].shape[0] == channels
    assert item["mask"].dtype == torch.uint8 and item["mask"].shape == (1, *item["image"].shape[1:])
    assert set(item["mask"].unique().tolist()) <= {0, 1}
    assert item["label"] in (0, 1) and isinstance(item["label"], int)
    assert isinstance(item["path"], str)


# ------------------------------------------------------------------------------------------ API


def test_public_names_are_kept_and_sorted():
    expected = {
        "BTAD",
        "DatasetLayoutError",
        "ImageFolder",
        "MVTecAD",
        "Sample",
        "TextureFolder",
        "batch_to_device",
        "demo_root",
        "read_image",
        "read_mask",
        "resize_image",
        "resize_mask",
        "to_float",
    }
    assert expected <= set(data.__all__)
    assert data.__all__ == sorted(data.__all__)
    assert all(hasattr(data, name) for name in data.__all__)


# ---------------------------------------------------------------------------------------- MVTec


def test_mvtec_train_and_test_items(tmp_path):
    codes = _mvtec(tmp_path)
    train = MVTecAD(tmp_path, "widget", "train", image_size=(12, 16))
    assert len(train) == 3 and train.labels == [0, 0, 0]
    assert [p.name for p in train.paths] == ["000.png", "001.png", "002.png"]

    test = MVTecAD(tmp_path, "widget", split="test", image_size=(12, 16))
    assert len(test) == 2 + 5 and test.labels == [0, 0, 1, 1, 1, 1, 1]
    # good first, then the defect types alphabetically
    assert [Path(s.image_path).parent.name for s in test.samples] == ["good"] * 2 + ["crack"] * 3 + [
        "scratch"
    ] * 2
    for i, sample in enumerate(test.samples):
        item = test[i]
        _check_item(item)
        assert item["path"] == str(sample.image_path)
        if sample.label == 0:
            assert sample.mask_path is None and item["mask"].sum() == 0
        else:
            code = codes[f"{Path(item['path']).parent.name}/{Path(item['path']).stem}"]
            # RGB order: the blue channel written by cv2 (BGR) is channel 2
            assert (item["image"][2] == code).all() and (item["image"][1] == 7).all()
            assert int(item["mask"].sum()) == code + 1
    assert test[-1]["path"] == test[len(test) - 1]["path"]
    with pytest.raises(IndexError):
        test[len(test)]


@settings(max_examples=12)
@given(
    stems=st.lists(st.text("ab_1", min_size=1, max_size=4), min_size=2, max_size=6, unique=True),
    ext=st.sampled_from([".png", ".bmp"]),
    mask_ext=st.sampled_from([".png", ".bmp"]),
)
def test_mvtec_masks_are_matched_by_name_not_by_order(stems, ext, mask_ext):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        codes = _mvtec(root, train=1, good=1, defects={"cut": stems}, ext=ext, mask_ext=mask_ext)
        test = MVTecAD(root, "widget", "test", image_size=None)
        assert len(test) == 1 + len(stems)
        for i, sample in enumerate(test.samples[1:], start=1):
            assert sample.mask_path.name == f"{sample.image_path.stem}_mask{mask_ext}"
            item = test[i]
            code = codes[f"cut/{sample.image_path.stem}"]
            assert int(item["image"][2, 0, 0]) == code
            assert int(item["mask"].sum()) == code + 1


def test_mvtec_sort_orders_of_images_and_masks_differ(tmp_path):
    # "a.png" < "a_b.png" but "a_b_mask.png" < "a_mask.png": pairing sorted lists would swap them.
    codes = _mvtec(tmp_path, defects={"cut": ["a", "a_b"]})
    assert sorted(["a.png", "a_b.png"]) == ["a.png", "a_b.png"]
    assert sorted(["a_mask.png", "a_b_mask.png"]) == ["a_b_mask.png", "a_mask.png"]
    test = MVTecAD(tmp_path, "widget", "test", image_size=None)
    for item in (test[2], test[3]):
        assert int(item["mask"].sum()) == codes[f"cut/{Path(item['path']).stem}"] + 1


def test_mvtec_missing_and_orphan_masks_are_errors_naming_the_files(tmp_path):
    _mvtec(tmp_path)
    gt = tmp_path / "widget" / "ground_truth"
    (gt / "crack" / "001_mask.png").unlink()
    _write(gt / "crack" / "099_mask.png", _coded_mask(1))
    _write(gt / "stain" / "000_mask.png", _coded_mask(1))  # a defect type without a test folder
    (gt / "crack" / "notes.txt").write_text("not an image, ignored")
    with pytest.raises(DatasetLayoutError) as info:
        MVTecAD(tmp_path, "widget", "test")
    message = str(info.value)
    assert "without a mask" in message and str(tmp_path / "widget" / "test" / "crack" / "001.png") in message
    assert "without an image" in message
    assert str(gt / "crack" / "099_mask.png") in message and str(gt / "stain" / "000_mask.png") in message
    assert "notes.txt" not in message
    assert isinstance(info.value, ValueError) and isinstance(info.value, FileNotFoundError)
    # the train split does not need masks
    assert len(MVTecAD(tmp_path, "widget", "train")) == 3


def test_mvtec_ambiguous_mask_is_an_error(tmp_path):
    _mvtec(tmp_path)
    _write(tmp_path / "widget" / "ground_truth" / "crack" / "000_mask.bmp", _coded_mask(0))
    with pytest.raises(DatasetLayoutError, match="more than one mask"):
        MVTecAD(tmp_path, "widget", "test")


def test_mvtec_missing_folders_list_what_was_expected(tmp_path):
    _mvtec(tmp_path)
    with pytest.raises(DatasetLayoutError) as info:
        MVTecAD(tmp_path, "gadget", "train")
    assert "'gadget' not found" in str(info.value) and "widget" in str(info.value)
    assert "<root>/<category>/ground_truth/<defect>/<stem>_mask.png" in str(info.value)

    with pytest.raises(DatasetLayoutError, match="does not exist"):
        MVTecAD(tmp_path / "nowhere", "widget")

    empty = tmp_path / "empty"
    (empty / "widget").mkdir(parents=True)
    for split, folder in (("train", "train/good"), ("test", "test")):
        with pytest.raises(DatasetLayoutError) as info:
            MVTecAD(empty, "widget", split)
        assert str(empty / "widget" / folder) in str(info.value)
        assert "expected the MVTec AD layout" in str(info.value)

    import shutil

    shutil.rmtree(tmp_path / "widget" / "ground_truth" / "scratch")
    with pytest.raises(DatasetLayoutError) as info:
        MVTecAD(tmp_path, "widget", "test")
    assert "missing mask folders" in str(info.value)
    assert str(tmp_path / "widget" / "ground_truth" / "scratch") in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"split": "val"}, ValueError),
        ({"image_size": 0}, ValueError),
        ({"image_size": (4, 5, 6)}, TypeError),
        ({"image_size": "big"}, TypeError),
        ({"image_size": True}, TypeError),
        ({"channels": 2}, ValueError),
        ({"mask_threshold": 1.0}, ValueError),
    ],
)
def test_bad_arguments_are_rejected(tmp_path, kwargs, error):
    _mvtec(tmp_path)
    with pytest.raises(error):
        MVTecAD(tmp_path, "widget", **kwargs)


# ----------------------------------------------------------------------------------------- BTAD


def test_btad_bmp_images_with_png_masks(tmp_path):
    base = tmp_path / "01"
    for i in range(2):
        _write(base / "train" / "ok" / f"{i:04d}.bmp", _coded_image(100 + i))
    _write(base / "test" / "ok" / "0000.bmp", _coded_image(90))
    stems = ["0003", "0010", "0002"]
    for code, stem in enumerate(stems):
        _write(base / "test" / "ko" / f"{stem}.bmp", _coded_image(code))
        _write(base / "ground_truth" / "ko" / f"{stem}.png", _coded_mask(code))

    train = BTAD(tmp_path, "01", "train", image_size=8)
    assert len(train) == 2 and train.labels == [0, 0]
    test = BTAD(tmp_path, "01", "test", image_size=None)
    assert test.labels == [0, 1, 1, 1]
    assert [s.image_path.name for s in test.samples] == ["0000.bmp", "0002.bmp", "0003.bmp", "0010.bmp"]
    for i in range(1, 4):
        item = test[i]
        _check_item(item)
        code = stems.index(Path(item["path"]).stem)
        assert int(item["image"][2, 0, 0]) == code and int(item["mask"].sum()) == code + 1
    assert test.samples[1].mask_path.suffix == ".png"

    (base / "ground_truth" / "ko" / "0010.png").unlink()
    with pytest.raises(DatasetLayoutError, match="0010.bmp"):
        BTAD(tmp_path, "01", "test")
    (tmp_path / "02").mkdir()
    with pytest.raises(DatasetLayoutError, match="train/ok"):
        BTAD(tmp_path, "02", "train")


# --------------------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("content", [b"", b"this is not an image" * 10, "truncated-png", "truncated-jpg"])
def test_corrupt_file_error_names_the_file(tmp_path, content):
    root = tmp_path / "images"
    _write(root / "good.png", _coded_image(3))
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    if content == "truncated-png":
        name, raw = "bad.png", cv2.imencode(".png", noisy)[1].tobytes()
        content = raw[: len(raw) // 2]
    elif content == "truncated-jpg":
        name, raw = "bad.jpg", cv2.imencode(".jpg", noisy)[1].tobytes()
        content = raw[: len(raw) // 2]
    else:
        name = "bad.png"
    (root / name).write_bytes(content)
    folder = ImageFolder(root, image_size=8)
    assert [p.name for p in folder.paths] == sorted([name, "good.png"])
    bad = [p.name for p in folder.paths].index(name)
    with pytest.raises(ValueError, match="cannot decode") as info:
        folder[bad]
    assert str(root / name) in str(info.value)
    _check_item(folder[1 - bad])


def test_complete_jpeg_with_exif_orientation_is_read_as_displayed(tmp_path):
    array = np.random.default_rng(1).integers(0, 255, (10, 20, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    Image.fromarray(array).save(tmp_path / "photo.jpg", exif=exif)
    with Image.open(tmp_path / "photo.jpg") as pil:
        displayed = ImageOps.exif_transpose(pil)
        assert displayed.size == (10, 20)
    assert read_image(tmp_path / "photo.jpg").shape == (20, 10, 3)


def test_grayscale_is_replicated_or_kept(tmp_path):
    gray = np.random.default_rng(2).integers(0, 255, (9, 11), dtype=np.uint8)
    _write(tmp_path / "gray.png", gray)
    rgb = read_image(tmp_path / "gray.png")
    assert rgb.shape == (9, 11, 3) and all((rgb[..., c] == gray).all() for c in range(3))
    kept = read_image(tmp_path / "gray.png", channels=1)
    assert kept.shape == (9, 11, 1) and (kept[..., 0] == gray).all()

    colour = np.random.default_rng(3).integers(0, 255, (9, 11, 3), dtype=np.uint8)
    _write(tmp_path / "colour.png", colour)
    assert (read_image(tmp_path / "colour.png")[..., ::-1] == colour).all()
    assert (read_image(tmp_path / "colour.png", 1)[..., 0] == cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)).all()

    folder = ImageFolder(tmp_path, image_size=None, channels=1)
    assert [tuple(folder[i]["image"].shape) for i in range(2)] == [(1, 9, 11), (1, 9, 11)]


def test_rgba_alpha_is_dropped(tmp_path):
    bgra = np.random.default_rng(4).integers(0, 255, (7, 9, 4), dtype=np.uint8)
    bgra[..., 3] = 0  # fully transparent: the colour values must still come through
    _write(tmp_path / "rgba.png", bgra)
    image = read_image(tmp_path / "rgba.png")
    assert image.shape == (7, 9, 3)
    assert (image == bgra[..., 2::-1]).all()
    reference = cv2.cvtColor(cv2.imread(str(tmp_path / "rgba.png"), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert (image == reference).all()


@settings(max_examples=15)
@given(array=hnp.arrays(np.uint16, st.tuples(st.integers(1, 6), st.integers(1, 6), st.sampled_from([1, 3]))))
def test_16bit_is_scaled_to_8bit(array):
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(Path(tmp) / "deep.png", array if array.shape[2] == 3 else array[..., 0])
        image = read_image(path)
    expected = np.rint(array.astype(np.float64) * 255 / 65535).astype(np.uint8)
    if array.shape[2] == 1:
        expected = np.repeat(expected, 3, axis=2)
    else:
        expected = expected[..., ::-1]
    assert image.dtype == np.uint8 and (image == expected).all()
    # the same numbers from OpenCV's own scaling (saturate_cast rounds to nearest)
    scaled = cv2.convertScaleAbs(array.reshape(array.shape[0], -1), alpha=255 / 65535).reshape(array.shape)
    assert (image == (np.repeat(scaled, 3, axis=2) if array.shape[2] == 1 else scaled[..., ::-1])).all()


def test_mask_binarisation_threshold_and_depth(tmp_path):
    mask16 = np.zeros((5, 6), np.uint16)
    mask16[0, 0], mask16[1, 1] = 1, 40000
    _write(tmp_path / "m16.png", mask16)
    assert read_mask(tmp_path / "m16.png").sum() == 2
    assert read_mask(tmp_path / "m16.png", threshold=0.5).sum() == 1

    noisy = np.zeros((5, 6), np.uint8)
    noisy[0, :3] = (3, 128, 255)  # JPEG-like ringing at 3
    _write(tmp_path / "m8.png", noisy)
    assert read_mask(tmp_path / "m8.png").tolist()[0][:3] == [1, 1, 1]
    assert read_mask(tmp_path / "m8.png", threshold=0.5).tolist()[0][:3] == [0, 1, 1]

    colour = np.zeros((5, 6, 3), np.uint8)
    colour[2, 2] = (0, 0, 1)  # a red-only pixel: grey conversion would round it to 0
    _write(tmp_path / "mc.png", colour)
    assert read_mask(tmp_path / "mc.png").sum() == 1 and read_mask(tmp_path / "mc.png")[2, 2] == 1


def test_mask_and_image_of_different_size_is_an_error(tmp_path):
    _mvtec(tmp_path, defects={"cut": ["000"]})
    _write(tmp_path / "widget" / "ground_truth" / "cut" / "000_mask.png", np.zeros((5, 5), np.uint8))
    test = MVTecAD(tmp_path, "widget", "test")
    with pytest.raises(ValueError, match="000_mask.png.*000.png"):
        test[-1]


# ---------------------------------------------------------------------------------------- resize


@settings(max_examples=30)
@given(
    src=st.tuples(st.integers(1, 40), st.integers(1, 40)),
    dst=st.one_of(st.integers(1, 40), st.tuples(st.integers(1, 40), st.integers(1, 40))),
    seed=st.integers(0, 2**16),
)
def test_resize_matches_cv2_with_the_documented_interpolation(src, dst, seed):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (*src, 3), dtype=np.uint8)
    mask = (rng.random(src) < 0.3).astype(np.uint8) * 255
    target = (dst, dst) if isinstance(dst, int) else dst
    out = resize_image(image, dst)
    assert out.shape == (*target, 3) and out.dtype == np.uint8
    if target == src:
        assert (out == image).all()
    else:
        shrink = target[0] <= src[0] and target[1] <= src[1]
        flag = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        assert (out == cv2.resize(image, target[::-1], interpolation=flag)).all()
    small = resize_mask(mask, dst)
    assert small.shape == target and set(np.unique(small).tolist()) <= {0, 1}
    reference = cv2.resize(mask, target[::-1], interpolation=cv2.INTER_NEAREST) > 0
    assert (small == reference).all()
    gray = resize_image(image[..., :1], dst)
    assert gray.shape == (*target, 1)


@pytest.mark.parametrize(
    ("image_size", "shape"), [(8, (8, 8)), ((6, 10), (6, 10)), ((40, 50), (40, 50)), (None, (12, 16))]
)
def test_item_sizes(tmp_path, image_size, shape):
    _mvtec(tmp_path)
    test = MVTecAD(tmp_path, "widget", "test", image_size=image_size)
    for i in (0, len(test) - 1):
        item = test[i]
        _check_item(item)
        assert tuple(item["image"].shape) == (3, *shape) and tuple(item["mask"].shape) == (1, *shape)
    assert test[-1]["mask"].sum() > 0


# ----------------------------------------------------------------------------------- ImageFolder


def test_image_folder_lists_common_extensions_recursively_in_sorted_order(tmp_path):
    names = [
        "b.png",
        "a.jpg",
        "c.jpeg",
        "d.bmp",
        "e.tif",
        "f.tiff",
        "g.webp",
        "H.PNG",
        "sub/z.png",
        "sub/deep/y.png",
    ]
    for i, name in enumerate(names):
        _write(tmp_path / name, _coded_image(i))
    (tmp_path / "readme.txt").write_text("ignored")
    _write(tmp_path / ".hidden" / "x.png", _coded_image(0))
    _write(tmp_path / ".dotfile.png", _coded_image(0))

    folder = ImageFolder(tmp_path, image_size=(6, 8))
    relative = [p.relative_to(tmp_path).as_posix() for p in folder.paths]
    assert relative == sorted(names)
    assert folder.labels == [0] * len(names)
    for i in range(len(folder)):
        item = folder[i]
        _check_item(item)
        assert item["mask"].sum() == 0 and tuple(item["image"].shape) == (3, 6, 8)

    flat = ImageFolder(tmp_path, image_size=8, recursive=False)
    assert len(flat) == len(names) - 2
    files = ImageFolder.from_paths([tmp_path / "sub" / "z.png", tmp_path / "a.jpg"], image_size=4)
    assert [p.name for p in files.paths] == ["z.png", "a.jpg"]
    with pytest.raises(DatasetLayoutError, match="not found"):
        ImageFolder.from_paths([tmp_path / "missing.png"])


def test_image_folder_errors(tmp_path):
    with pytest.raises(DatasetLayoutError, match="no images found"):
        ImageFolder(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    _write(tmp_path / "sub" / "a.png", _coded_image(1))
    with pytest.raises(DatasetLayoutError, match="recursive=True"):
        ImageFolder(tmp_path, recursive=False)
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        ImageFolder(tmp_path / "nope")
    with pytest.raises(DatasetLayoutError, match="from_paths"):
        ImageFolder(tmp_path / "sub" / "a.png")


# --------------------------------------------------------------------------- subsets and loaders


def test_subset_holdout_and_pickling():
    train = MVTecAD(demo_root().parent, "hazelnut_toy", "train", image_size=32)
    fit, val = train.holdout(0.25, seed=3)
    assert len(val) == 7 and len(fit) == 21 and type(val) is MVTecAD
    assert sorted(fit.paths + val.paths) == train.paths
    assert fit.paths == sorted(fit.paths) and val.paths == sorted(val.paths)
    fit2, val2 = train.holdout(0.25, seed=3)
    assert val2.paths == val.paths and fit2.paths == fit.paths
    assert train.holdout(0.25, seed=4)[1].paths != val.paths
    assert len(train.holdout(0.01)[1]) == 1
    assert len(train) == 28  # the parent is not changed
    part = train.subset(torch.tensor([5, 1]))
    assert [p.name for p in part.paths] == ["005.png", "001.png"]
    assert (part[0]["image"] == train[5]["image"]).all()
    assert (Subset(train, [5])[0]["image"] == train[5]["image"]).all()
    clone = pickle.loads(pickle.dumps(part))
    assert clone.paths == part.paths and clone.image_size == (32, 32)
    with pytest.raises(IndexError):
        train.subset([28])
    custom = AnomalyDataset([(p, None, 0) for p in train.paths[:2]], image_size=8)
    assert isinstance(custom.samples[0], Sample) and len(custom) == 2


def test_dataloader_with_two_workers_yields_uint8():
    # Start OpenCV's thread pool in the parent first: forked workers then inherit it without its
    # threads, and worker_init must not deadlock on it.
    big = np.random.default_rng(0).random((1500, 1500), dtype=np.float32)
    for _ in range(3):
        cv2.GaussianBlur(big, (21, 21), 5)
    test = MVTecAD(demo_root().parent, "hazelnut_toy", "test", image_size=(48, 64))
    loader = DataLoader(test, batch_size=8, num_workers=2, shuffle=False, worker_init_fn=data.worker_init)
    batches = list(loader)
    assert [b["image"].shape[0] for b in batches] == [8, 8, 7]
    images = torch.cat([b["image"] for b in batches])
    masks = torch.cat([b["mask"] for b in batches])
    labels = torch.cat([b["label"] for b in batches])
    assert images.dtype == torch.uint8 and images.shape == (23, 3, 48, 64)
    assert masks.dtype == torch.uint8 and masks.shape == (23, 1, 48, 64)
    assert labels.tolist() == test.labels
    assert sum((b["path"] for b in batches), []) == [str(p) for p in test.paths]
    assert (images[-1] == test[22]["image"]).all() and (masks[-1] == test[22]["mask"]).all()

    out = batch_to_device(batches[0])
    assert out["image"].dtype == torch.float32 and 0 <= out["image"].min() and out["image"].max() <= 1
    assert torch.equal(out["image"], batches[0]["image"].float() / 255)
    assert set(out["mask"].unique().tolist()) <= {0.0, 1.0} and out["label"].dtype == torch.float32


def test_to_float(device, dtype):
    images = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    out = to_float(images, device, dtype)
    assert out.device.type == device.type and out.dtype == dtype and out.shape == images.shape
    assert out.min() == 0 and out.max() == 1
    reference = (images.double() / 255).to(dtype)
    assert torch.equal(out.cpu(), reference)
    with pytest.raises(TypeError, match="uint8"):
        to_float(images.float())
    with pytest.raises(TypeError, match="floating"):
        to_float(images, dtype=torch.int32)


# -------------------------------------------------------------------------------------- textures


def test_texture_folder_bank(tmp_path, device):
    rng = np.random.default_rng(5)
    classes = ["banded", "dotted", "woven"]
    for c in classes:
        for i in range(3):
            _write(
                tmp_path / "images" / c / f"{c}_{i:04d}.jpg",
                rng.integers(0, 255, (20 + i, 30, 3), dtype=np.uint8),
            )
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "train1.txt").write_text("banded/banded_0000.jpg\n")

    textures = TextureFolder(tmp_path, image_size=(8, 12))
    assert len(textures) == 9
    bank = textures.load(device=device)
    assert bank.shape == (9, 3, 8, 12) and bank.dtype == torch.float32 and bank.device.type == device.type
    assert 0 <= bank.min() and bank.max() <= 1
    first = cv2.cvtColor(cv2.imread(str(textures.paths[0])), cv2.COLOR_BGR2RGB)
    reference = cv2.resize(first, (12, 8), interpolation=cv2.INTER_AREA).transpose(2, 0, 1)
    assert torch.equal(bank[0].cpu(), torch.from_numpy(reference).float() / 255)

    half = TextureFolder(tmp_path / "images", image_size=8, max_images=3).load(dtype=torch.float16)
    assert half.shape == (3, 3, 8, 8) and half.dtype == torch.float16
    spread = TextureFolder(tmp_path, image_size=8, max_images=3)
    assert [p.parent.name for p in spread.paths] == classes

    with pytest.raises(DatasetLayoutError, match="no texture images"):
        TextureFolder(tmp_path / "labels")
    (tmp_path / "images" / "woven" / "woven_0001.jpg").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="woven_0001.jpg"):
        TextureFolder(tmp_path, image_size=8).load()


# ------------------------------------------------------------------------------------------ demo


def test_demo_data_counts_and_masks():
    root = demo_root()
    assert root.is_dir() and (root / "SOURCE.md").is_file()
    train = MVTecAD(root.parent, "hazelnut_toy", "train", image_size=None)
    test = MVTecAD(root.parent, "hazelnut_toy", "test", image_size=None)
    assert len(train) == 28 and len(test) == 23
    assert test.labels.count(0) == 6 and test.labels.count(1) == 17
    defective = [s for s in test.samples if s.label == 1]
    assert {s.image_path.parent.name for s in defective} == {"colour"}
    assert len({s.mask_path for s in defective}) == 17
    for i, sample in enumerate(test.samples):
        item = test[i]
        _check_item(item)
        assert tuple(item["image"].shape) == (3, 256, 256)
        if sample.label == 1:
            assert item["mask"].sum() > 0, sample.mask_path
            assert Path(sample.mask_path).name == f"{Path(sample.image_path).stem}_mask.png"
        else:
            assert item["mask"].sum() == 0
