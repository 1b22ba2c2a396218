"""Loaded models are ready for inference; the detector rejects input values that would give wrong scores."""

from __future__ import annotations

import warnings

import pytest
import torch

import fgad
from fgad._checks import validation


@pytest.fixture()
def saved(tmp_path):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = fgad.create_model("fgad", base_width=4)
    model.train()
    for _ in range(2):  # move the BatchNorm running statistics away from their initial values
        model(torch.rand(2, 3, 32, 32))
    model.eval()
    fgad.save_pretrained(model, tmp_path / "model")
    return model, tmp_path / "model"


def test_load_model_is_in_eval_mode_and_scores_like_the_saved_model(saved) -> None:  # type: ignore[no-untyped-def]
    model, path = saved
    loaded = fgad.load_model(path)
    assert not loaded.training and not any(m.training for m in loaded.modules())
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    before = {k: v.clone() for k, v in loaded.state_dict().items()}
    with torch.no_grad():
        assert torch.equal(loaded(images).score, model(images).score)
    after = loaded.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "running statistics changed"
    assert loaded.train().training  # one call away


def test_create_model_from_a_checkpoint_is_in_eval_mode(saved) -> None:  # type: ignore[no-untyped-def]
    _, path = saved
    assert not fgad.create_model("fgad", checkpoint=path).training
    assert fgad.create_model("fgad", base_width=4).training  # a fresh model trains


@pytest.mark.parametrize(
    ("images", "error", "match"),
    [
        (torch.full((1, 3, 32, 32), 255.0), ValueError, r"\[0, 1\]"),
        (torch.full((1, 3, 32, 32), float("nan")), ValueError, r"\[0, 1\]"),
        (torch.full((1, 3, 32, 32), float("inf")), ValueError, r"\[0, 1\]"),
        (torch.full((1, 3, 32, 32), -0.5), ValueError, r"\[0, 1\]"),
        (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), TypeError, "floating"),
    ],
)
def test_detector_rejects_bad_values(images: torch.Tensor, error: type[Exception], match: str) -> None:
    model = fgad.create_model("fgad", base_width=4).eval()
    with pytest.raises(error, match=match):
        model(images)


def test_one_nan_pixel_is_rejected() -> None:
    model = fgad.create_model("fgad", base_width=4).eval()
    images = torch.rand(2, 3, 32, 32)
    images[1, 2, 5, 7] = float("nan")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model(images)


def test_value_check_is_off_with_the_validation_switch_and_while_tracing() -> None:
    model = fgad.create_model("fgad", base_width=4).eval()
    images = torch.full((1, 3, 32, 32), 2.0)
    with validation(False), torch.no_grad():
        assert model(images).score.shape == (1,)
    # No value is read while tracing (a check would raise on this example or bake in its result).
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, images, strict=False, check_trace=False)
    assert traced(torch.rand(1, 3, 32, 32))[3].shape == (1,)
