"""Shared input validation: messages that say what was expected; thread-local switch."""

from __future__ import annotations

import threading

import pytest
import torch

from fgad._checks import (
    check_binary_mask,
    check_image,
    check_positive_int,
    is_validating,
    set_validation,
    validation,
)


def test_check_image_messages() -> None:
    with pytest.raises(TypeError, match="torch.Tensor"):
        check_image([1.0])
    with pytest.raises(TypeError, match="floating"):
        check_image(torch.zeros(1, 3, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        check_image(torch.zeros(3, 4, 4))
    with pytest.raises(ValueError, match="channels"):
        check_image(torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="non-empty"):
        check_image(torch.zeros(1, 3, 0, 4))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        check_image(torch.full((1, 3, 4, 4), 1.5))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        check_image(torch.full((1, 3, 4, 4), float("nan")))
    with pytest.raises(ValueError, match="binary"):
        check_binary_mask(torch.full((1, 1, 4, 4), 0.5))
    with pytest.raises(ValueError, match="batch size 2"):
        check_binary_mask(torch.zeros(1, 1, 4, 4), batch_size=2)


@pytest.mark.parametrize("value", [0, -3, 2.0, True, "4", None])
def test_check_positive_int_rejects_non_sizes(value: object) -> None:
    with pytest.raises(ValueError, match=rf"base_width must be a positive int, got {value!r}"):
        check_positive_int(value, "base_width")


def test_check_positive_int_accepts_sizes() -> None:
    for value in (1, 7, 1024):
        check_positive_int(value, "width")


def test_switches() -> None:
    bad = torch.full((1, 3, 4, 4), 2.0)
    with validation(False):
        assert check_image(bad) is bad
    set_validation(False)
    try:
        assert not is_validating()
        with validation(True):
            with pytest.raises(ValueError):
                check_image(bad)
    finally:
        set_validation(True)
    assert is_validating()


def test_validation_context_is_thread_local() -> None:
    seen: list[bool] = []
    inside, done = threading.Event(), threading.Event()

    def other() -> None:
        inside.wait()
        seen.append(is_validating())
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    with validation(False):
        assert not is_validating()
        inside.set()
        done.wait()
    thread.join()
    assert seen == [True]
