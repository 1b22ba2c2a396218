"""kornia augmentation classes over fgad's PIL-exact texture ops.

Each class here is a real kornia augmentation (a subclass of kornia's
``IntensityAugmentationBase2D``), so ``p``, ``p_batch``, ``same_on_batch``, ``keepdim``,
``AugmentationSequential`` (``data_keys=["input", "mask"]``: masks pass through), ``_params`` and
replay with ``params=`` behave as for kornia's own classes. The six classes named like kornia's take
kornia's arguments in kornia's units and draw their values with kornia's own samplers (the same seed
gives the same drawn values as kornia's class); the image is then changed by fgad's functional ops
(:mod:`fgad.augment.functional`), which give PIL's levels exactly. :class:`RandomTexture` is fgad's
:class:`~fgad.augment.TextureAugment` (3 of 6 ops per sample, DRAEM's ranges, PIL units).

kornia is imported by this module only; import it explicitly::

    import fgad.augment.kornia as fk
    aug = kornia.augmentation.AugmentationSequential(fk.RandomTexture(), fk.RandomSolarize(p=0.5),
                                                     data_keys=["input", "mask"])

Convention:
    Shapes follow kornia: (B, C, H, W), (C, H, W) or (H, W) in; (B, C, H, W) out, or the input's
    shape with ``keepdim=True``. C in {1, 3}. Values must lie in [0, 1]: fgad rejects others with a
    ``ValueError`` (kornia clamps them); the output lies on the 256-level grid ``k / 255`` and does not
    require grad (kornia's ops are differentiable; quantised ops have no useful gradient).
    Randomness is kornia's: values are drawn from the global RNG on the augmentation's RNG device
    (``set_rng_device_and_dtype``), the ``p`` gate too. Where the results differ from kornia's
    (the same drawn values, different definitions of the ops):

    - ``RandomSharpness``: PIL's sharpness (the smoothed image rounded to levels, border pixels
      kept, the blend truncated to levels); kornia blends in float.
    - ``RandomEqualize``: PIL's equalisation step rule; kornia's rounds its steps differently.
    - ``RandomSolarize``: which levels are inverted is decided exactly as kornia decides it
      (``clamp(k / 255 + addition) >= threshold``); the level moves by ``round(255 * addition)``
      levels (kornia adds the addition in float), so an output differs from kornia's by less than
      half a level. Without an addition (``additions=0``) it is kornia's result on the level grid.
    - ``RandomPosterize``: the same bits, PIL's bit mask; same result on the level grid.
    - ``RandomAutoContrast``: PIL's autocontrast (each channel's min..max stretched to 0..255 and
      truncated to levels); kornia stretches in float.
    - ``RandomBrightness``: the factor multiplies (PIL's ``ImageEnhance.Brightness``,
      ``floor(factor * level)``); kornia adds ``factor - 1`` to the image. Same factor range.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import torch
from kornia.augmentation import IntensityAugmentationBase2D
from kornia.augmentation import random_generator as rg

from fgad._checks import check_image
from fgad.augment import functional as F
from fgad.augment._validate import check_range
from fgad.augment.texture import TextureAugment, TextureParams

__all__ = [
    "RandomAutoContrast",
    "RandomBrightness",
    "RandomEqualize",
    "RandomPosterize",
    "RandomSharpness",
    "RandomSolarize",
    "RandomTexture",
]

_LEVELS = 256


def _clip_output(clip_output: object, name: str) -> bool:
    if clip_output is not True:
        raise ValueError(
            f"{name}: clip_output must be True: fgad's ops work on 256 levels, so their output always "
            f"lies in [0, 1], got {clip_output!r}"
        )
    return True


class RandomSharpness(IntensityAugmentationBase2D):
    """Sharpen or smooth like ``ImageEnhance.Sharpness``, with kornia's ``RandomSharpness`` arguments.

    Args:
        sharpness: factor range: a number x means [0, x], a pair (lo, hi) itself; 0 smooths, 1 is
            the identity, 2 sharpens (the same factor as kornia's and PIL's).
        same_on_batch: one factor for the whole batch.
        p: probability of changing a sample.
        keepdim: return the input's shape (kornia's ``keepdim``).

    Example:
        >>> aug = RandomSharpness(sharpness=(0.0, 2.0), p=1.0)
        >>> x = torch.rand(2, 3, 16, 16)
        >>> y = aug(x)
        >>> y.shape, torch.equal(aug(x, params=aug._params), y)
        (torch.Size([2, 3, 16, 16]), True)
    """

    def __init__(
        self,
        sharpness: torch.Tensor | float | tuple[float, float] = 0.5,
        same_on_batch: bool = False,
        p: float = 0.5,
        keepdim: bool = False,
    ) -> None:
        super().__init__(p=p, same_on_batch=same_on_batch, keepdim=keepdim)
        self._param_generator = rg.PlainUniformGenerator((sharpness, "sharpness", 0.0, (0, float("inf"))))

    def apply_transform(
        self,
        input: torch.Tensor,
        params: dict[str, torch.Tensor],
        flags: dict[str, Any],
        transform: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return F.adjust_sharpness(input, params["sharpness"].to(input.device, torch.float32))


class RandomEqualize(IntensityAugmentationBase2D):
    """Equalise each channel's histogram like ``ImageOps.equalize`` (kornia's ``RandomEqualize``).

    Example:
        >>> y = RandomEqualize(p=1.0)(torch.rand(2, 3, 16, 16))
        >>> bool(((y * 255).round() == y * 255).all())  # on the 256-level grid
        True
    """

    def __init__(self, same_on_batch: bool = False, p: float = 0.5, keepdim: bool = False) -> None:
        super().__init__(p=p, same_on_batch=same_on_batch, keepdim=keepdim)

    def apply_transform(
        self,
        input: torch.Tensor,
        params: dict[str, torch.Tensor],
        flags: dict[str, Any],
        transform: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return F.equalize(input)


class RandomSolarize(IntensityAugmentationBase2D):
    """Invert the levels at or above a threshold (``ImageOps.solarize``), with kornia's arguments.

    Args:
        thresholds: threshold range in [0, 1] (kornia's unit, not PIL's levels): a number x means
            [0.5 - x, 0.5 + x], a pair (lo, hi) itself.
        additions: range of a brightness shift applied first, in [-0.5, 0.5]: a number x means
            [-x, x]. It is applied as ``round(255 * addition)`` levels.
        same_on_batch: the same values for the whole batch.
        p: probability of changing a sample.
        keepdim: return the input's shape.

    Example:
        >>> x = torch.tensor([[[[0.0, 100 / 255, 200 / 255]]]])
        >>> aug = RandomSolarize(thresholds=(0.5, 0.5), additions=(0.0, 0.0), p=1.0)
        >>> (aug(x) * 255).round().tolist()
        [[[[0.0, 100.0, 55.0]]]]
    """

    def __init__(
        self,
        thresholds: torch.Tensor | float | tuple[float, float] = 0.1,
        additions: torch.Tensor | float | tuple[float, float] = 0.1,
        same_on_batch: bool = False,
        p: float = 0.5,
        keepdim: bool = False,
    ) -> None:
        super().__init__(p=p, same_on_batch=same_on_batch, keepdim=keepdim)
        self._param_generator = rg.PlainUniformGenerator(
            (thresholds, "thresholds", 0.5, (0.0, 1.0)), (additions, "additions", 0.0, (-0.5, 0.5))
        )

    def apply_transform(
        self,
        input: torch.Tensor,
        params: dict[str, torch.Tensor],
        flags: dict[str, Any],
        transform: torch.Tensor | None = None,
    ) -> torch.Tensor:
        check_image(input, "input")
        b, c = input.shape[:2]
        device = input.device
        thresholds = params["thresholds"].to(device, torch.float32).view(b, 1)
        additions = params.get("additions")
        shift = (
            torch.zeros(b, 1, device=device)
            if additions is None
            else (additions.to(device, torch.float32).view(b, 1))
        )
        levels = torch.arange(_LEVELS, device=device)
        # Which levels are inverted is decided as kornia decides it, on the value k / 255 plus the
        # addition (float32); the levels themselves move by the addition rounded to levels.
        inverted = (levels / 255.0 + shift).clamp_(0.0, 1.0) >= thresholds
        moved = (levels + shift.mul(255.0).round_().long()).clamp_(0, _LEVELS - 1)
        table = torch.where(inverted, _LEVELS - 1 - moved, moved).unsqueeze(1).expand(b, c, _LEVELS)
        return F.apply_levels_lut(F.levels_index(input), table, input.dtype)


class RandomPosterize(IntensityAugmentationBase2D):
    """Keep the high bits of every level (``ImageOps.posterize``), with kornia's arguments.

    Args:
        bits: range of the bits kept, in [0, 8]: a number x means [x, 8], a pair (lo, hi) itself;
            drawn uniformly and rounded, as kornia does. 8 is the identity, 0 gives black.
        same_on_batch: the same bits for the whole batch.
        p: probability of changing a sample.
        keepdim: return the input's shape.

    Example:
        >>> x = torch.tensor([[[[0.0, 100 / 255, 200 / 255]]]])
        >>> (RandomPosterize(bits=(2, 2), p=1.0)(x) * 255).round().tolist()
        [[[[0.0, 64.0, 192.0]]]]
    """

    def __init__(
        self,
        bits: float | tuple[float, float] | torch.Tensor = 3,
        same_on_batch: bool = False,
        p: float = 0.5,
        keepdim: bool = False,
    ) -> None:
        super().__init__(p=p, same_on_batch=same_on_batch, keepdim=keepdim)
        self._param_generator = rg.PosterizeGenerator(bits)

    def apply_transform(
        self,
        input: torch.Tensor,
        params: dict[str, torch.Tensor],
        flags: dict[str, Any],
        transform: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return F.posterize(input, params["bits_factor"].to(input.device, torch.long))


class RandomAutoContrast(IntensityAugmentationBase2D):
    """Stretch each channel's range of levels to 0..255 like ``ImageOps.autocontrast``.

    Args:
        clip_output: must be ``True`` (kornia's default): the output is always in [0, 1].
        same_on_batch: kept for kornia's signature (nothing is drawn but the ``p`` gate).
        p: probability of changing a sample (kornia's default 1).
        keepdim: return the input's shape.

    Example:
        >>> x = torch.tensor([[[[50 / 255, 100 / 255, 150 / 255]]]])
        >>> (RandomAutoContrast()(x) * 255).round().tolist()
        [[[[0.0, 127.0, 255.0]]]]
    """

    def __init__(
        self, clip_output: bool = True, same_on_batch: bool = False, p: float = 1.0, keepdim: bool = False
    ) -> None:
        super().__init__(p=p, same_on_batch=same_on_batch, keepdim=keepdim)
        self.clip_output = _clip_output(clip_output, "RandomAutoContrast")

    def apply_transform(
        self,
        input: torch.Tensor,
        params: dict[str, torch.Tensor],
        flags: dict[str, Any],
        transform: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return F.autocontrast(input)


def _factor_range(value: object, name: str) -> torch.Tensor:
    """kornia's reading of a factor range around 1: x means [max(0, 1 - x), 1 + x]."""
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"{name} must be >= 0 as a number, got {value!r}")
        lo, hi = max(0.0, 1.0 - value), 1.0 + value
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        lo, hi = check_range(name, value, 0.0)
    else:
        raise TypeError(f"{name} must be a number or a (lo, hi) pair, got {value!r}")
    if not 0.0 <= lo <= hi:
        raise ValueError(f"{name} must be (lo, hi) with 0 <= lo <= hi, got {value!r}")
    return torch.tensor([lo, hi])


class RandomBrightness(IntensityAugmentationBase2D):
    """Scale the brightness like ``ImageEnhance.Brightness``, with kornia's ``RandomBrightness`` arguments.

    Args:
        brightness: factor range around 1: a number x means [max(0, 1 - x), 1 + x], a pair
            (lo, hi) itself. The level ``k`` becomes ``floor(factor * k)`` (clamped to 255): the
            factor multiplies, as in PIL (kornia adds ``factor - 1`` to the image instead).
        clip_output: must be ``True`` (kornia's default): the output is always in [0, 1].
        same_on_batch: one factor for the whole batch.
        p: probability of changing a sample (kornia's default 1).
        keepdim: return the input's shape.

    Example:
        >>> x = torch.tensor([[[[10 / 255, 100 / 255, 250 / 255]]]])
        >>> (RandomBrightness(brightness=(1.5, 1.5))(x) * 255).round().tolist()
        [[[[15.0, 150.0, 255.0]]]]
    """

    def __init__(
        self,
        brightness: torch.Tensor | float | tuple[float, float] = (1.0, 1.0),
        clip_output: bool = True,
        same_on_batch: bool = False,
        p: float = 1.0,
        keepdim: bool = False,
    ) -> None:
        super().__init__(p=p, same_on_batch=same_on_batch, keepdim=keepdim)
        self.clip_output = _clip_output(clip_output, "RandomBrightness")
        self.brightness = _factor_range(brightness, "brightness")
        self._param_generator = rg.PlainUniformGenerator((self.brightness, "brightness_factor", None, None))

    def apply_transform(
        self,
        input: torch.Tensor,
        params: dict[str, torch.Tensor],
        flags: dict[str, Any],
        transform: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return F.adjust_brightness(input, params["brightness_factor"].to(input.device, torch.float32))


_TEXTURE_KEYS = tuple(f.name for f in fields(TextureParams))


class RandomTexture(IntensityAugmentationBase2D):
    """Per sample, ``num_ops`` distinct texture ops out of six in random order (:class:`TextureAugment`).

    The texture source of DRAEM-style synthesis as a kornia augmentation: every sample draws its own
    ops, order and strengths (kornia's ``ImageSequential(random_apply=3)`` draws the ops once per
    batch). The drawn values are kept in ``_params`` under the names of
    :class:`~fgad.augment.TextureParams`'s fields, so ``aug(x, params=aug._params)`` (or an
    ``AugmentationSequential``'s replay) repeats a call bit for bit.

    Args:
        num_ops: ops per sample (default 3).
        same_on_batch: one draw for the whole batch.
        p: probability of changing a sample (default 1: DRAEM alters every texture).
        keepdim: return the input's shape.
        **texture_kwargs: :class:`TextureAugment`'s ranges in its (PIL) units, e.g.
            ``solarize=(32, 128)`` levels, ``posterize=(1, 8)`` bits, ``ops=("solarize", ...)``.

    Example:
        >>> aug = RandomTexture(num_ops=3)
        >>> x = torch.rand(4, 3, 32, 32)
        >>> y = aug(x)
        >>> aug._params["ops"].shape, torch.equal(aug(x, params=aug._params), y)
        (torch.Size([4, 3]), True)
    """

    def __init__(
        self,
        num_ops: int = 3,
        same_on_batch: bool = False,
        p: float = 1.0,
        keepdim: bool = False,
        **texture_kwargs: Any,
    ) -> None:
        super().__init__(p=p, same_on_batch=same_on_batch, keepdim=keepdim)
        self.texture = TextureAugment(num_ops, **texture_kwargs)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.texture.extra_repr()}, p={self.p}, "
            f"same_on_batch={self.same_on_batch})"
        )

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
        batch = int(batch_shape[0])
        drawn = self.texture.sample_params(1 if self.same_on_batch and batch else batch, device=self.device)
        values = {key: getattr(drawn, key) for key in _TEXTURE_KEYS}
        if self.same_on_batch and batch:
            values = {key: v.expand(batch, *v.shape[1:]) for key, v in values.items()}
        return values

    def apply_transform(
        self,
        input: torch.Tensor,
        params: dict[str, torch.Tensor],
        flags: dict[str, Any],
        transform: torch.Tensor | None = None,
    ) -> torch.Tensor:
        missing = [key for key in _TEXTURE_KEYS if key not in params]
        if missing:
            raise ValueError(f"RandomTexture params lack {missing}: pass the _params of a RandomTexture call")
        texture = TextureParams(**{key: params[key] for key in _TEXTURE_KEYS})
        return self.texture(input, params=texture)
