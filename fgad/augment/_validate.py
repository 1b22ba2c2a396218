"""Argument checks shared by fgad.augment's synthesizers, Perlin masks and texture ops.

One rule for numbers and ``(lo, hi)`` ranges (:func:`check_range`, :func:`check_number`,
:func:`check_probability`), the ``[0, 1]`` value check of images read in memory order, and the
normalisation of a call's own foreground masks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import cast

import torch

from .._checks import is_validating

__all__: list[str] = []


def _real(value: object) -> float | None:
    """``value`` as a float if it is a real number, else None (a bool or a string is not a number)."""
    if isinstance(value, (bool, str, bytes)):
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None


def _interval(lo: float, hi: float, below_hi: bool, middle: str) -> str:
    """The text of ``lo <= middle <= hi`` (``< hi`` with ``below_hi``), infinite ends left out."""
    text = middle
    if lo > -math.inf:
        text = f"{lo:g} <= {text}"
    if hi < math.inf:
        text = f"{text} {'<' if below_hi else '<='} {hi:g}"
    return text


def check_range(
    name: str,
    value: object,
    lo: float = -math.inf,
    hi: float = math.inf,
    *,
    integer: bool = False,
    below_hi: bool = False,
) -> tuple[float, float]:
    """A validated ``(lo, hi)`` range argument: two finite numbers in order, within the limits.

    Args:
        name: the argument's name, for the messages.
        value: an iterable of exactly two real numbers (a tuple, a list, a (2,) tensor...); bools
            and strings are not numbers.
        lo, hi: the limits: ``lo <= value[0] <= value[1] <= hi`` (default: no limits).
        integer: the numbers must be integers; they are returned as ints.
        below_hi: ``value[1] < hi`` instead of ``<=``.

    Returns:
        The two numbers as floats (ints with ``integer``).

    Raises:
        TypeError: ``value`` is not a pair of numbers (of integers with ``integer``).
        ValueError: a number is not finite, or the pair is out of order or outside the limits.
    """
    kind = "integers" if integer else "numbers"
    pair = _pair(value)
    if pair is None:
        raise TypeError(f"{name} must be a (lo, hi) pair of {kind}, got {value!r}")
    first, second = pair
    if not (math.isfinite(first) and math.isfinite(second)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if integer and not (first.is_integer() and second.is_integer()):
        raise TypeError(f"{name} must be a (lo, hi) pair of integers, got {value!r}")
    upper_ok = second < hi if below_hi else second <= hi
    if not (lo <= first <= second and upper_ok):
        raise ValueError(
            f"{name} must be (lo, hi) with {_interval(lo, hi, below_hi, 'lo <= hi')}, got {value!r}"
        )
    return (int(first), int(second)) if integer else (first, second)


def _pair(value: object) -> tuple[float, float] | None:
    """The two numbers of ``value`` as floats, or None if it is not an iterable of exactly two."""
    if isinstance(value, (str, bytes)):
        return None
    try:
        items = tuple(cast(Iterable[object], value))
    except TypeError:
        return None
    if len(items) != 2:
        return None
    first, second = _real(items[0]), _real(items[1])
    if first is None or second is None:
        return None
    return first, second


def check_number(
    name: str,
    value: object,
    lo: float = -math.inf,
    hi: float = math.inf,
    *,
    below_hi: bool = False,
    what: str = "a number",
) -> float:
    """A validated number argument in ``[lo, hi]`` (``[lo, hi)`` with ``below_hi``), as a float.

    ``what`` names the kind of number in the message (e.g. ``"a probability"``).

    Raises:
        TypeError: ``value`` is not a real number (bools and strings are not).
        ValueError: it is NaN or outside the limits.
    """
    bounds = f"[{lo:g}, {hi:g}{')' if below_hi else ']'}"
    number = _real(value)
    if number is None:
        raise TypeError(f"{name} must be {what} in {bounds}, got {value!r}")
    upper_ok = number < hi if below_hi else number <= hi
    if not (lo <= number and upper_ok):
        raise ValueError(f"{name} must be {what} in {bounds}, got {value!r}")
    return number


def check_probability(name: str, value: object) -> float:
    """A validated probability argument: a number in ``[0, 1]``, as a float."""
    return check_number(name, value, 0.0, 1.0, what="a probability")


def check_values(x: torch.Tensor, name: str) -> None:
    """The [0, 1] check of ``check_image``, read in memory order (channels-last is not copied)."""
    if not is_validating():
        return
    dense = x.permute(0, 2, 3, 1) if x.is_contiguous(memory_format=torch.channels_last) else x
    lo, hi = torch.aminmax(dense)
    if bool(lo < 0) or bool(hi > 1) or bool(torch.isnan(lo) | torch.isnan(hi)):
        raise ValueError(
            f"{name} must have values in [0, 1], got min {float(lo):.4g} and max {float(hi):.4g}"
        )


def given_foreground(
    foreground: torch.Tensor | Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, single: bool
) -> torch.Tensor:
    """A call's own foreground as (B, 1, H, W) bool, checked against the images."""
    batch, _, height, width = images.shape
    source = "foreground"
    if callable(foreground) and not isinstance(foreground, torch.Tensor):
        with torch.no_grad():
            masks = foreground(images)
        source = "the foreground callable's result"
        if not isinstance(masks, torch.Tensor):
            raise TypeError(f"{source} must be a torch.Tensor (B, 1, H, W), got {type(masks).__name__}")
    elif isinstance(foreground, torch.Tensor):
        masks = foreground.unsqueeze(0) if single and foreground.ndim == 3 else foreground
    else:
        raise TypeError(
            f"foreground must be masks (B, 1, H, W), a callable images -> masks, or None, got "
            f"{type(foreground).__name__}"
        )
    if tuple(masks.shape) != (batch, 1, height, width):
        raise ValueError(
            f"{source} must have shape {(batch, 1, height, width)} (the images'), got {tuple(masks.shape)}"
        )
    if masks.device != images.device:
        raise ValueError(f"{source} must be on the images' device {images.device}, got {masks.device}")
    if masks.dtype != torch.bool:
        if not (masks.is_floating_point() or masks.dtype == torch.uint8):
            raise TypeError(f"{source} must be bool, uint8 or floating in {{0, 1}}, got dtype {masks.dtype}")
        if is_validating() and bool(((masks != 0) & (masks != 1)).any()):
            raise ValueError(f"{source} must be binary (values 0 and 1 only)")
        masks = masks != 0
    return masks.contiguous()
