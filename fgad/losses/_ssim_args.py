"""Checks of the SSIM window arguments, shared by :func:`fgad.losses.ssim` and the SSIM and
reconstruction losses."""

from __future__ import annotations

from typing import Literal

__all__: list[str] = []

Padding = Literal["zeros", "reflect", "valid"]
_PADDINGS = ("zeros", "reflect", "valid")


def check_ssim_args(window_size: int, sigma: float, padding: str, data_range: float) -> None:
    """Raise ValueError unless ``window_size`` is a positive odd int, ``sigma`` and ``data_range`` are
    > 0 and ``padding`` is one of ``"zeros"``, ``"reflect"``, ``"valid"``."""
    if not isinstance(window_size, int) or window_size < 1 or window_size % 2 == 0:
        raise ValueError(f"window_size must be a positive odd int, got {window_size!r}")
    if not float(sigma) > 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    if padding not in _PADDINGS:
        raise ValueError(f"padding must be one of {_PADDINGS}, got {padding!r}")
    if not float(data_range) > 0:
        raise ValueError(f"data_range must be > 0, got {data_range!r}")
