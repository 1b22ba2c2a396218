"""Helpers shared by the patch-based synthesizers (CutPaste, scar, NSA): call plumbing, placement on
the foreground, colour jitter and bilinear reads, all batched and free of host synchronisation."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, cast

import torch
from torch import nn

from .._checks import as_batch, check_image, is_validating, validation
from ._buffers import _any_true, _new_buffer
from ._params import sample_device
from ._validate import check_probability, check_values, given_foreground
from .foreground import FOREGROUND_METHODS, ForegroundMask, Polarity
from .synthesizer import BankCache, SynthesisResult

__all__: list[str] = []

# ITU-R BT.601 luma weights (torchvision's grayscale, used by its contrast and saturation jitter).
_LUMA = (0.299, 0.587, 0.114)
# Fixed-point scale of the exact patch mean (integer sums do not depend on the reduction order).
_FIXED = float(2**24)


def fresh_copy(x: torch.Tensor) -> torch.Tensor:
    """A copy of ``x`` in a new buffer (on the CPU a large one avoids the page faults of a fresh
    allocation, see ``fgad.augment._buffers._new_buffer``)."""
    return _new_buffer(x.shape, x.dtype, x.device).copy_(x)


def uniform(
    shape: tuple[int, ...], lo: float, hi: float, where: torch.device, generator: torch.Generator | None
) -> torch.Tensor:
    """float32 values uniform in [lo, hi) (drawn in float64, like :class:`AnomalySynthesizer`)."""
    u = torch.rand(shape, generator=generator, device=where, dtype=torch.float64)
    return (u * (hi - lo) + lo).to(torch.float32)


def pick_pixel(
    valid: torch.Tensor | None, u: torch.Tensor, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sample the pixel of rank ``floor(u * count)`` among the ``valid`` pixels (row-major order).

    Args:
        valid: (B, H, W) bool, or None for every pixel.
        u: (B,) float in [0, 1).

    Returns:
        ``(y, x, ok)``, each (B,): the pixel (0 where there is none) and whether one exists. Uniform
        over the valid pixels when ``u`` is uniform; two passes over the masks, no host synchronisation.
    """
    height, width = size
    batch = u.shape[0]
    if valid is None:
        k = (u.to(torch.float64) * (height * width)).floor().long().clamp_(0, height * width - 1)
        return k // width, k % width, torch.ones(batch, dtype=torch.bool, device=u.device)
    rows = valid.sum(2)  # (B, H)
    total = rows.sum(1)
    k = torch.minimum((u.to(torch.float64) * total).floor().long(), (total - 1).clamp(min=0))
    cumulative = rows.cumsum(1)
    y = (cumulative <= k.view(-1, 1)).sum(1).clamp_(max=height - 1)
    before = cumulative.gather(1, y.view(-1, 1)).squeeze(1) - rows.gather(1, y.view(-1, 1)).squeeze(1)
    line = valid.gather(1, y.view(-1, 1, 1).expand(batch, 1, width)).squeeze(1)
    x = (line.cumsum(1) <= (k - before).view(-1, 1)).sum(1).clamp_(max=width - 1)
    return y, x, total > 0


def jitter_factors(
    batch: int,
    strength: tuple[float, float, float, float],
    where: torch.device,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """(B, 4) float32 brightness, contrast, saturation factors in [1 - s, 1 + s] and a hue shift in
    [-s, s] (fractions of the colour circle), torchvision ``ColorJitter``'s ranges."""
    columns = [uniform((batch,), max(0.0, 1.0 - s), 1.0 + s, where, generator) for s in strength[:3]]
    columns.append(uniform((batch,), -strength[3], strength[3], where, generator))
    return torch.stack(columns, 1)


def colour_map(factors: torch.Tensor, mean: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The colour jitter of each sample as one affine map ``x -> A x + t`` (then clamped to [0, 1]).

    Brightness ``b x``, contrast ``c x + (1 - c) mean``, saturation ``s x + (1 - s) grey(x)`` and a hue
    rotation about the grey axis, composed in this order (torchvision draws the order per call and
    shifts the HSV hue; a rotation about the grey axis keeps the grey level of grey pixels and is one
    matrix). Rotation and saturation map grey to grey, so the offset is ``(1 - c) b mean`` on every
    channel.

    Args:
        factors: (B, 4) from :func:`jitter_factors`.
        mean: (B,) mean grey level of each patch.

    Returns:
        ``A`` (B, C, C) and ``t`` (B,), float32.
    """
    b, c, s, hue = (factors[:, k].to(torch.float64) for k in range(4))
    offset = ((1.0 - c) * b * mean.to(torch.float64)).to(torch.float32)
    if channels == 1:
        return (b * c).to(torch.float32).view(-1, 1, 1), offset
    eye = torch.eye(3, dtype=torch.float64, device=factors.device)
    luma = torch.tensor(_LUMA, dtype=torch.float64, device=factors.device)
    saturation = s.view(-1, 1, 1) * eye + (1.0 - s).view(-1, 1, 1) * luma.view(1, 1, 3)
    theta = hue * (2.0 * math.pi)
    axis = torch.full((3,), 1.0 / math.sqrt(3.0), dtype=torch.float64, device=factors.device)
    cross = torch.tensor(
        [[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]], dtype=torch.float64, device=factors.device
    ) / math.sqrt(3.0)
    rotation = (
        torch.cos(theta).view(-1, 1, 1) * eye
        + torch.sin(theta).view(-1, 1, 1) * cross
        + (1.0 - torch.cos(theta)).view(-1, 1, 1) * torch.outer(axis, axis)
    )
    matrix = rotation @ saturation * (b * c).view(-1, 1, 1)
    return matrix.to(torch.float32), offset


def apply_colour(
    values: Sequence[torch.Tensor],
    matrix: list[list[torch.Tensor]],
    offset: torch.Tensor,
    *,
    out: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """``clamp(A x + t)`` channel by channel with a fixed order of operations (the same value for a
    pixel whatever the shape it is computed in). ``values[j]``, the coefficients and ``offset``
    broadcast; the channels are written into ``out`` (C, *shape) when given (else a new tensor) with
    one scratch buffer, not a fresh buffer per operation (on the CPU a large one costs page faults).
    Returns the C channels (views of ``out``)."""
    coefs = [c for row in matrix for c in row]
    shape = torch.broadcast_shapes(*(v.shape for v in values), *(c.shape for c in coefs), offset.shape)
    if out is None:
        dtype = functools.reduce(torch.promote_types, [t.dtype for t in (*values, *coefs, offset)])
        out = torch.empty((len(matrix), *shape), dtype=dtype, device=offset.device)
    scratch = torch.empty(shape, dtype=out.dtype, device=out.device)
    for i, row in enumerate(matrix):
        acc = torch.mul(values[0], row[0], out=out[i])
        for j in range(1, len(values)):
            acc.add_(torch.mul(values[j], row[j], out=scratch))
        acc.add_(offset).clamp_(0.0, 1.0)
    return list(out.unbind(0))


def coefficients(matrix: torch.Tensor, shape: tuple[int, ...]) -> list[list[torch.Tensor]]:
    """The entries of (B, C, C) matrices as nested lists of tensors viewed to ``shape``."""
    channels = matrix.shape[1]
    return [[matrix[:, i, j].reshape(shape) for j in range(channels)] for i in range(channels)]


def grey(values: list[torch.Tensor]) -> torch.Tensor:
    """Grey level (BT.601) of per-channel values (one channel: itself), in float64."""
    if len(values) == 1:
        return values[0].to(torch.float64)
    return sum(float(w) * v.to(torch.float64) for w, v in zip(_LUMA, values, strict=True))  # type: ignore[return-value]


def exact_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of (B, K) float values in [0, 1] along dim 1 from exact integer sums (2**-24 steps), so the
    result does not depend on how the reduction is split (batch or sample, CPU or GPU)."""
    fixed = (x.to(torch.float64) * _FIXED).round_().long()
    return (fixed.sum(1).to(torch.float64) / (x.shape[1] * _FIXED)).to(torch.float32)


def patch_mean(
    images: torch.Tensor,
    y0: torch.Tensor,
    x0: torch.Tensor,
    h: torch.Tensor,
    w: torch.Tensor,
    grid: int = 8,
) -> torch.Tensor:
    """(B,) mean grey level of each rectangle ``[y0, y0 + h) x [x0, x0 + w)``, read on a ``grid x grid``
    lattice of its pixels (the contrast jitter's reference level)."""
    batch, channels, height, width = images.shape
    steps = (torch.arange(grid, device=images.device, dtype=torch.float64) + 0.5) / grid
    ys = y0.view(-1, 1) + (steps.view(1, -1) * h.view(-1, 1)).floor().long()
    xs = x0.view(-1, 1) + (steps.view(1, -1) * w.view(-1, 1)).floor().long()
    flat = (ys.view(batch, grid, 1) * width + xs.view(batch, 1, grid)).view(batch, 1, -1)
    picked = images.reshape(batch, channels, -1).gather(2, flat.expand(batch, channels, grid * grid))
    return exact_mean(grey([picked[:, k] for k in range(channels)]))


def bilinear(
    source: torch.Tensor,
    y: torch.Tensor,
    x: torch.Tensor,
    lo: tuple[torch.Tensor, torch.Tensor],
    hi: tuple[torch.Tensor, torch.Tensor],
    index: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """Bilinear reads of (B, C, H, W) ``source`` at float (B, K) points, neighbours clamped per sample
    to rows ``[lo[0], hi[0]]`` and columns ``[lo[1], hi[1]]`` (each (B,) long); returns C tensors (B, K)
    in float32. Where a point lies on a pixel the read is that pixel exactly. With ``index`` (B,) long,
    ``source`` is a bank (N, C, H, W) and sample b reads ``source[index[b]]`` (nothing is copied)."""
    batch = y.shape[0]
    _, channels, height, width = source.shape
    y0f, x0f = y.floor(), x.floor()
    fy, fx = y - y0f, x - x0f
    ylo, yhi = lo[0].view(-1, 1), hi[0].view(-1, 1)
    xlo, xhi = lo[1].view(-1, 1), hi[1].view(-1, 1)
    ya = torch.minimum(torch.maximum(y0f.long(), ylo), yhi)
    yb = torch.minimum(torch.maximum(y0f.long() + 1, ylo), yhi)
    xa = torch.minimum(torch.maximum(x0f.long(), xlo), xhi)
    xb = torch.minimum(torch.maximum(x0f.long() + 1, xlo), xhi)
    flat = source.reshape(source.shape[0], channels, height * width)
    k = y.shape[1]
    if index is not None:  # (B, C, 1) start of each read image's channels in the flat bank
        channel = torch.arange(channels, device=y.device).view(1, -1, 1)
        base = (index.view(-1, 1, 1) * channels + channel) * (height * width)

    def read(yy: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
        pixel = yy * width + xx
        if index is not None:
            return flat.reshape(-1).take(base + pixel.view(batch, 1, k)).to(torch.float32)
        return flat.gather(2, pixel.view(batch, 1, k).expand(batch, channels, k)).to(torch.float32)

    top = read(ya, xa) * (1 - fx).unsqueeze(1) + read(ya, xb) * fx.unsqueeze(1)
    bottom = read(yb, xa) * (1 - fx).unsqueeze(1) + read(yb, xb) * fx.unsqueeze(1)
    out = top * (1 - fy).unsqueeze(1) + bottom * fy.unsqueeze(1)
    return [out[:, c] for c in range(channels)]


class PatchSynthesizer(nn.Module):
    """The call contract of :class:`~fgad.augment.AnomalySynthesizer` for synthesizers that paste a
    patch: validation, single images, the foreground, params checks; subclasses sample and apply."""

    params_type: type = object

    def __init__(
        self,
        foreground: Literal["auto", "otsu"] | ForegroundMask | None = "auto",
        anomaly_prob: float = 0.5,
        *,
        polarity: Polarity = "auto",
        min_fraction: float = 0.01,
        cleanup: int | tuple[int, int] | None = None,
        fill_holes: bool = True,
    ) -> None:
        super().__init__()
        named = isinstance(foreground, str) and foreground in FOREGROUND_METHODS
        if not (foreground is None or named or isinstance(foreground, ForegroundMask)):
            raise ValueError(
                f"foreground must be one of {FOREGROUND_METHODS}, a ForegroundMask or None, "
                f"got {foreground!r}"
            )
        self.anomaly_prob = check_probability("anomaly_prob", anomaly_prob)
        if isinstance(foreground, str):
            foreground = ForegroundMask(
                foreground,
                polarity=polarity,
                min_fraction=min_fraction,
                cleanup=cleanup,
                fill_holes=fill_holes,
            )
        self.foreground_mask: ForegroundMask | None = foreground
        self.last_params: Any = None
        # the source bank resized to the images' size and its value check, kept between calls
        self._bank_cache = BankCache()

    # subclasses --------------------------------------------------------------------------------
    def sample_params(
        self,
        batch_size: int,
        *,
        bank_size: int | None = None,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> Any:
        raise NotImplementedError

    def _synthesize(
        self, images: torch.Tensor, bank: torch.Tensor | None, params: Any, foreground: torch.Tensor | None
    ) -> tuple[torch.Tensor, ...]:
        """(image, mask (B, 1, H, W)[, label (B,) bool]) of the batch; the mask bool or already in the
        images' dtype."""
        raise NotImplementedError

    def _bank(
        self, textures: torch.Tensor | None, images: torch.Tensor
    ) -> tuple[torch.Tensor | None, int | None]:
        """The source bank this synthesizer reads, and its size for sampling (None: not used)."""
        return None, None

    # shared --------------------------------------------------------------------------------------
    @staticmethod
    def _draw_anomalous(batch: int, prob: float, where: torch.device, generator: torch.Generator | None):
        return torch.rand(batch, generator=generator, device=where) < prob

    @staticmethod
    def _where(generator: torch.Generator | None, device: torch.device | str | None) -> torch.device:
        return sample_device(generator, device)

    def forward(
        self,
        images: torch.Tensor,
        textures: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        params: Any = None,
        foreground: torch.Tensor | Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> SynthesisResult:
        """Synthesise anomalies for a batch (B, C, H, W) or a single image (C, H, W); see the class
        docstring. ``foreground``: this call's masks (B, 1, H, W) or a callable images -> masks,
        overriding the constructor's."""
        images, single = as_batch(images, "images")
        if single and isinstance(textures, torch.Tensor) and textures.ndim == 3:
            textures = textures.unsqueeze(0)
        check_image(images, "images", check_range=False)
        bank, bank_size = self._bank(textures, images)
        check_values(images, "images")
        if bank is not None:
            self._bank_cache.check(bank, bank_size)
        batch = images.shape[0]
        if params is None:
            params = self.sample_params(batch, bank_size=bank_size, device=images.device, generator=generator)
        else:
            if not isinstance(params, self.params_type):
                raise TypeError(f"params must be a {self.params_type.__name__}, got {type(params).__name__}")
            params = cast(Any, params)
            if len(params) != batch:
                raise ValueError(f"params hold {len(params)} samples, expected the batch size {batch}")
            params = params.to(images.device)
            self._check_replay(params, bank_size)
        self.last_params = params
        given = given_foreground(foreground, images, single) if foreground is not None else None
        with torch.no_grad(), validation(False):
            fg = given
            if fg is None and self.foreground_mask is not None:
                fg = self.foreground_mask.foreground(images)
            image, mask, *known = self._synthesize(images, bank, params, fg)
        if mask.dtype == torch.bool:
            label = _any_true(mask).to(images.dtype)
            mask_out = _new_buffer(mask.shape, images.dtype, images.device).copy_(mask)
        else:  # already in the images' dtype (and the label may be known)
            label = known[0] if known else (mask.reshape(mask.shape[0], -1).amax(1) > 0)
            label = label.to(images.dtype)
            mask_out = mask
        result = SynthesisResult(image, images, mask_out, label, cast(Any, params), fg)
        return result.first() if single else result

    def _check_replay(self, params: Any, bank_size: int | None) -> None:
        index = getattr(params, "source_index", None)
        if index is None or not is_validating():
            return
        if bank_size is not None and bool((index >= bank_size).any()):
            raise ValueError(f"params.source_index must be < the bank size {bank_size}")
