"""Per-sample random texture ops: ``num_ops`` distinct ops out of six, in random order.

This builds the texture source ``D`` of DRAEM-style anomaly synthesis: each sample of a batch gets its
own choice and order of ops, and its own strengths, applied in one batched pass (no Python loop
over the batch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch
from torch import nn

from fgad._checks import as_batch, check_image, is_validating

from ._buffers import _new_buffer, _scratch
from ._levels import _LEVELS, _quantise, _sharpen_into
from ._validate import check_range
from .functional import (
    apply_levels_lut,
    autocontrast_lut,
    brightness_lut,
    equalize_lut,
    levels_histogram,
    posterize_lut,
    solarize_lut,
)

__all__ = ["TextureAugment", "TextureParams"]

_OPS = ("sharpness", "equalize", "solarize", "posterize", "autocontrast", "brightness")
_SHARPNESS, _EQUALIZE, _SOLARIZE, _POSTERIZE, _AUTOCONTRAST, _BRIGHTNESS = range(6)
# Sharpness factors are drawn on the grid k / 64: exact in float32 and blendable in int16.
_SHARPNESS_STEPS = 64


@dataclass(eq=False)
class TextureParams:
    """Random values of one :class:`TextureAugment` call; every field has the batch as first axis.

    Attributes:
        ops: (B, K) long indices into :attr:`TextureAugment.OPS`, distinct in each row, in the order
            they are applied.
        sharpness: (B,) float32 sharpness factor (1 is the identity).
        solarize: (B,) float32 solarize threshold in levels (levels >= it are inverted; 256 is the
            identity).
        posterize: (B,) long number of bits kept (8 is the identity).
        autocontrast: (B,) float32 autocontrast cutoff, percent per end of the histogram.
        brightness: (B,) float32 brightness factor (1 is the identity).
        brightness_offset: (B,) float32 brightness offset in levels (0 is the identity).

    Every strength is sampled for every sample, whether or not the sample uses that op, so that the
    random stream does not depend on the choice of ops.
    """

    ops: torch.Tensor
    sharpness: torch.Tensor
    solarize: torch.Tensor
    posterize: torch.Tensor
    autocontrast: torch.Tensor
    brightness: torch.Tensor
    brightness_offset: torch.Tensor

    @property
    def batch_size(self) -> int:
        """Number of samples B."""
        return int(self.ops.shape[0])

    @property
    def num_ops(self) -> int:
        """Number of ops per sample K."""
        return int(self.ops.shape[1])

    @property
    def device(self) -> torch.device:
        """Device of the tensors."""
        return self.ops.device

    def __len__(self) -> int:
        return self.batch_size

    def select(self, index: int | slice | Sequence[int] | torch.Tensor) -> TextureParams:
        """The params of some samples, batch axis kept (an int ``i`` selects ``i:i+1``).

        Example:
            >>> p = TextureAugment().sample_params(4, generator=torch.Generator().manual_seed(0))
            >>> keep = torch.tensor([True, False, True, False])
            >>> p.select(1).ops.shape, p[1:3].batch_size, p[keep].batch_size
            (torch.Size([1, 3]), 2, 2)
        """
        if isinstance(index, bool):
            raise TypeError("index must be an int, a slice, a sequence of ints or a tensor, got bool")
        if isinstance(index, int):
            n = self.batch_size
            if not -n <= index < n:
                raise IndexError(f"index {index} is out of range for a batch of {n}")
            index = slice(index % n, index % n + 1)
        elif isinstance(index, torch.Tensor):
            if index.ndim != 1:
                raise ValueError(f"index tensor must be 1-D, got shape {tuple(index.shape)}")
            index = index.to(self.device)
        elif not isinstance(index, slice):
            index = torch.as_tensor(list(index), dtype=torch.long, device=self.device)
        return TextureParams(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    __getitem__ = select

    def to(self, device: torch.device | str | None = None) -> TextureParams:
        """The same params on ``device`` (a no-op copy of references when already there)."""
        return TextureParams(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @classmethod
    def cat(cls, params: Sequence[TextureParams]) -> TextureParams:
        """Concatenate params along the batch axis (all on one device, same number of ops)."""
        if not params:
            raise ValueError("cat needs at least one TextureParams")
        return cls(**{f.name: torch.cat([getattr(p, f.name) for p in params]) for f in fields(cls)})

    def op_names(self) -> list[tuple[str, ...]]:
        """The op names of each sample, in application order (synchronises with the host)."""
        return [tuple(_OPS[i] for i in row) for row in self.ops.tolist()]


class TextureAugment(nn.Module):
    """For each sample, ``num_ops`` distinct texture ops out of :attr:`OPS` in random order.

    The ops are ``sharpness`` (``ImageEnhance.Sharpness``), ``equalize``, ``solarize``,
    ``posterize``, ``autocontrast`` (``ImageOps``) and ``brightness`` (multiplicative, like
    ``ImageEnhance.Brightness``, plus an additive offset), as defined in :mod:`fgad.augment.functional`.
    Each sample draws its own ops, order and strengths (kornia's ``ImageSequential(random_apply=3)``
    draws the ops once per batch: not this).

    Args:
        num_ops: ops per sample, 0..len(ops). 0 returns a copy of the input.
        sharpness: (lo, hi) sharpness factor, >= 0. Default (0, 2): imgaug's
            ``pillike.EnhanceSharpness`` default, as used by DRAEM. Drawn uniformly among the
            multiples of 1/64 in the range (129 values for (0, 2)), which keeps the blend exact in
            16-bit integers; continuously when the range holds none of them or exceeds 2.
        solarize: (lo, hi) threshold in levels, 0..256. Default (32, 128) as DRAEM's
            ``iaa.Solarize(0.5, threshold=(32, 128))``.
        posterize: (lo, hi) bits kept, integers 0..8, both ends included. Default (1, 8), imgaug's
            default ``nb_bits``.
        autocontrast: (lo, hi) cutoff percent per end of the histogram, 0 <= lo <= hi < 50. Default
            (0, 20), imgaug's ``pillike.Autocontrast`` default.
        brightness: (lo, hi) brightness factor, >= 0. Default (0.8, 1.2) as DRAEM's
            ``MultiplyAndAddToBrightness(mul=(0.8, 1.2), add=(-30, 30))``.
        brightness_offset: (lo, hi) levels added after the multiplication, -255..255. Default
            (-30, 30), DRAEM's ``add``.
        ops: names of the ops to draw from (default: all of :attr:`OPS`). With one name and
            ``num_ops=1`` this is the module form of that functional op with a random strength,
            e.g. ``TextureAugment(1, ops=("solarize",), solarize=(64, 192))``.

    Shape:
        (B, C, H, W) -> (B, C, H, W), C in {1, 3}, float32 / float16 / bfloat16, any device; a single
        image (C, H, W) -> (C, H, W).

    Convention:
        Sample first, apply second: :meth:`sample_params` draws every random value into a
        :class:`TextureParams` (per-sample tensors); ``forward`` applies it deterministically and
        keeps it in :attr:`last_params`, so ``aug(x, params=aug.last_params)`` replays a call bit for
        bit. With a ``generator`` the values are drawn from it (on its device) and the global RNG is
        not touched; the same generator state gives the same params and a bit-identical output. A
        batch gives exactly the outputs of its samples done one by one with the sliced params
        (``params[i]``).

        Ops work on 256 levels like PIL (see :mod:`fgad.augment.functional`): the output lies on the
        grid ``k / 255``; identity strengths reproduce an input that lies on that grid. The output
        does not require grad.

        Differences from DRAEM's imgaug pipeline: solarize always applies (DRAEM's ``Solarize(0.5,
        ...)`` leaves half of the images unchanged); brightness scales and shifts every RGB channel
        by the same factor and offset, whereas ``MultiplyAndAddToBrightness`` converts to a random
        luminance colour space (YCrCb, HSV, ...), changes only the luminance and converts back, so
        there chroma is kept; sharpness factors lie on a 1/64 grid. Posterize zeroes the low bits
        like PIL and imgaug's ``Posterize``. The threshold is sampled uniformly in [lo, hi] (a
        fraction acts as its ceiling), bits uniformly among the integers lo..hi, cutoffs uniformly
        in [lo, hi] percent.

        Cost: the five table ops are composed on (B, C, 256) tables (the histogram after a table is
        the histogram pushed through it), so the image is read once for levels and histogram and
        written once; only sharpness (a 3x3 filter) breaks the chain, and on the CPU it is computed
        only for the samples that use it. On other devices it runs on the whole batch with factor 1
        (the identity) where unused, so that nothing synchronises with the host (apart from the
        range check of the input, which ``fgad.set_validation(False)`` switches off). The
        CPU path keeps a per-thread int32 scratch buffer of the batch's size between calls, and
        ``out=`` lets a caller reuse the output buffer too.

        In a kornia ``AugmentationSequential`` use :class:`fgad.augment.kornia.RandomTexture` (this
        module with kornia's params): kornia records and replays its values, whereas a plain
        ``TextureAugment`` there is drawn anew on ``seq(x, params=seq._params)``.

    Example:
        >>> aug = TextureAugment(num_ops=3)
        >>> x = torch.rand(4, 3, 32, 32)
        >>> y = aug(x, generator=torch.Generator().manual_seed(0))
        >>> y.shape, y.dtype, aug.last_params.ops.shape
        (torch.Size([4, 3, 32, 32]), torch.float32, torch.Size([4, 3]))
        >>> torch.equal(aug(x, params=aug.last_params), y)
        True
    """

    OPS: tuple[str, ...] = _OPS

    def __init__(
        self,
        num_ops: int = 3,
        *,
        sharpness: tuple[float, float] = (0.0, 2.0),
        solarize: tuple[float, float] = (32.0, 128.0),
        posterize: tuple[int, int] = (1, 8),
        autocontrast: tuple[float, float] = (0.0, 20.0),
        brightness: tuple[float, float] = (0.8, 1.2),
        brightness_offset: tuple[float, float] = (-30.0, 30.0),
        ops: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        pool = tuple(_OPS) if ops is None else tuple(ops)
        if isinstance(ops, str):
            raise TypeError(f"ops must be a sequence of op names out of {_OPS}, got the string {ops!r}")
        unknown = [name for name in pool if name not in _OPS]
        if unknown:
            raise ValueError(f"ops must be names out of {_OPS}, got unknown {unknown}")
        if len(set(pool)) != len(pool):
            raise ValueError(f"ops must be distinct names, got {pool}")
        if isinstance(num_ops, bool) or not isinstance(num_ops, int):
            raise TypeError(f"num_ops must be an int, got {type(num_ops).__name__}")
        if not 0 <= num_ops <= len(pool):
            raise ValueError(f"num_ops must be in 0..{len(pool)} (the number of ops), got {num_ops}")
        self.num_ops = num_ops
        self.ops = pool
        self.sharpness = check_range("sharpness", sharpness, 0.0)
        self.solarize = check_range("solarize", solarize, 0.0, 256.0)
        bits = check_range("posterize", posterize, 0, 8, integer=True)
        self.posterize = (int(bits[0]), int(bits[1]))
        self.autocontrast = check_range("autocontrast", autocontrast, 0.0, 50.0, below_hi=True)
        self.brightness = check_range("brightness", brightness, 0.0)
        self.brightness_offset = check_range("brightness_offset", brightness_offset, -255.0, 255.0)
        self._pool = tuple(_OPS.index(name) for name in pool)
        self.last_params: TextureParams | None = None

    def extra_repr(self) -> str:
        return (
            f"num_ops={self.num_ops}, ops={self.ops}, sharpness={self.sharpness}, "
            f"solarize={self.solarize}, posterize={self.posterize}, autocontrast={self.autocontrast}, "
            f"brightness={self.brightness}, brightness_offset={self.brightness_offset}"
        )

    def sample_params(
        self,
        batch_size: int,
        *,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> TextureParams:
        """Draw the ops, their order and all strengths for ``batch_size`` samples.

        Values are drawn on the generator's device (or ``device`` / the CPU without a generator)
        and moved to ``device`` when given.

        Example:
            >>> p = TextureAugment(num_ops=2).sample_params(3, generator=torch.Generator().manual_seed(0))
            >>> p.ops.shape, p.sharpness.shape, bool((p.ops[:, 0] != p.ops[:, 1]).all())
            (torch.Size([3, 2]), torch.Size([3]), True)
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
            raise ValueError(f"batch_size must be a non-negative int, got {batch_size!r}")
        if generator is not None:
            where = generator.device
        else:
            where = torch.device(device) if device is not None else torch.device("cpu")
        b = batch_size

        def uniform(bounds: tuple[float, float]) -> torch.Tensor:
            lo, hi = bounds
            return torch.rand(b, generator=generator, device=where).mul_(hi - lo).add_(lo)

        keys = torch.rand(b, len(self._pool), generator=generator, device=where)
        order = torch.argsort(keys, dim=1, stable=True)[:, : self.num_ops]
        ops = torch.tensor(self._pool, dtype=torch.long, device=where)[order]
        params = TextureParams(
            ops=ops,
            sharpness=self._sample_sharpness(b, generator, where),
            solarize=uniform(self.solarize),
            posterize=torch.randint(
                self.posterize[0], self.posterize[1] + 1, (b,), generator=generator, device=where
            ),
            autocontrast=uniform(self.autocontrast),
            brightness=uniform(self.brightness),
            brightness_offset=uniform(self.brightness_offset),
        )
        return params if device is None else params.to(device)

    def _sample_sharpness(
        self, b: int, generator: torch.Generator | None, where: torch.device
    ) -> torch.Tensor:
        lo, hi = self.sharpness
        first, last = math.ceil(lo * _SHARPNESS_STEPS), math.floor(hi * _SHARPNESS_STEPS)
        if first > last or last > 2 * _SHARPNESS_STEPS:
            # no grid point in the range, or factors beyond 2: continuous (float32 blend)
            return torch.rand(b, generator=generator, device=where).mul_(hi - lo).add_(lo)
        steps = torch.randint(first, last + 1, (b,), generator=generator, device=where)
        return steps.to(torch.float32).div_(_SHARPNESS_STEPS)

    def forward(
        self,
        images: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        params: TextureParams | None = None,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Apply ``params`` (or freshly sampled ones) to ``images``; keeps them in ``last_params``.

        Args:
            images: (B, C, H, W) float in [0, 1], or one image (C, H, W): a batch of one (params
                with batch size 1), returned as (C, H, W).
            generator: source of the random values when ``params`` is None.
            params: values of an earlier call (``last_params``) to replay, or sliced from them.
            out: optional contiguous tensor of the images' shape, dtype and device to write the
                result into (it may be ``images`` itself). Reusing a buffer saves allocating, and on
                the CPU page-faulting, a fresh output each call.
        """
        images, single = as_batch(images, "images")
        if single:
            result = self.forward(
                images,
                generator=generator,
                params=params,
                out=None if out is None else as_batch(out, "out")[0],
            )
            return result[0]
        check_image(images, "images")
        b = images.shape[0]
        if out is not None:
            _check_out(out, images)
        if params is None:
            params = self.sample_params(b, device=images.device, generator=generator)
        else:
            params = _check_params(params, b).to(images.device)
        self.last_params = params
        with torch.no_grad():
            return _apply(images, params, out=out)


def _check_out(out: object, images: torch.Tensor) -> None:
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"out must be a torch.Tensor, got {type(out).__name__}")
    if out.shape != images.shape or out.dtype != images.dtype or out.device != images.device:
        raise ValueError(
            f"out must have the images' shape {tuple(images.shape)}, dtype {images.dtype} and "
            f"device {images.device}, got {tuple(out.shape)}, {out.dtype}, {out.device}"
        )
    if not out.is_contiguous():
        raise ValueError("out must be contiguous")


def _check_params(params: object, batch_size: int) -> TextureParams:
    if not isinstance(params, TextureParams):
        raise TypeError(f"params must be a TextureParams, got {type(params).__name__}")
    if params.ops.ndim != 2 or params.ops.shape[0] != batch_size or params.ops.shape[1] > len(_OPS):
        raise ValueError(
            f"params.ops must have shape ({batch_size}, K) with K <= {len(_OPS)}, "
            f"got {tuple(params.ops.shape)}"
        )
    if params.ops.dtype != torch.long:
        raise TypeError(f"params.ops must be a long tensor, got {params.ops.dtype}")
    for f in fields(params):
        if f.name != "ops" and getattr(params, f.name).shape != (batch_size,):
            raise ValueError(
                f"params.{f.name} must have shape ({batch_size},), got {tuple(getattr(params, f.name).shape)}"
            )
    if is_validating() and params.ops.numel() > 0:
        lo, hi = torch.aminmax(params.ops)
        if int(lo) < 0 or int(hi) >= len(_OPS):
            raise ValueError(f"params.ops must hold indices into TextureAugment.OPS (0..{len(_OPS) - 1})")
    return params


def _compose(
    ops: torch.Tensor,
    params: TextureParams,
    hist: torch.Tensor,
    active: torch.Tensor,
    channels: int,
    host_checks: bool,
) -> torch.Tensor:
    """Compose the active table ops of every row into one (B, C, 256) table.

    ``hist`` is each plane's histogram before the first op; it is pushed through every step so that
    equalize and autocontrast see the histogram of the image as it is at their turn.
    """
    b, k = ops.shape
    # Rows where a step is sharpness or outside this stage idle (op id -1).
    step_ops = torch.where(active, ops, -1)
    if host_checks:
        # On the CPU knowing which ops occur costs nothing and saves the tables nobody uses.
        present = [set(column) for column in step_ops.t().tolist()]
    else:
        present = [set(range(len(_OPS))) for _ in range(k)]
    needs_hist = [bool(p & {_EQUALIZE, _AUTOCONTRAST}) for p in present]
    fixed: dict[int, torch.Tensor] = {}
    table = None
    for step in range(k):
        lut = None
        for op in sorted(present[step] - {-1, _SHARPNESS}):
            if op == _EQUALIZE:
                candidate = equalize_lut(hist)
            elif op == _AUTOCONTRAST:
                candidate = autocontrast_lut(hist, params.autocontrast)
            else:
                if op not in fixed:
                    fixed[op] = {
                        _SOLARIZE: lambda: solarize_lut(params.solarize, channels),
                        _POSTERIZE: lambda: posterize_lut(params.posterize, channels),
                        _BRIGHTNESS: lambda: brightness_lut(
                            params.brightness, params.brightness_offset, channels
                        ),
                    }[op]()
                candidate = fixed[op]
            chosen = (step_ops[:, step] == op).view(b, 1, 1)
            if lut is None:
                lut = torch.where(chosen, candidate, torch.arange(_LEVELS, device=ops.device))
            else:
                lut = torch.where(chosen, candidate, lut)
        if lut is None:
            continue
        table = lut if table is None else lut.gather(-1, table)
        if any(needs_hist[step + 1 :]):
            hist = torch.zeros_like(hist).scatter_add_(-1, lut, hist)
    if table is None:
        table = torch.arange(_LEVELS, device=ops.device).expand(b, channels, _LEVELS)
    return table


def _apply(
    images: torch.Tensor, params: TextureParams, compact: bool | None = None, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Apply validated params to images on the same device (see :class:`TextureAugment`).

    ``compact`` (default: on the CPU only) sharpens only the rows that use sharpness, which needs
    their number on the host; otherwise every row is sharpened, with factor 1 where unused.
    ``images`` is read only before ``out`` is first written, so ``out`` may be ``images``.
    """
    b, c, h, w = images.shape
    ops = params.ops
    k = ops.shape[1]
    if k == 0:
        if out is None:
            return images.clone(memory_format=torch.contiguous_format)
        return out.copy_(images)
    device = images.device
    if compact is None:
        compact = device.type == "cpu"
    # Quantising reads any memory layout (e.g. channels-last) straight into the contiguous index:
    # no contiguous copy of the images first.
    index = _quantise(images, scratch=True)
    hist = levels_histogram(index)
    positions = torch.arange(k, device=device)
    sharp_at = torch.where(ops == _SHARPNESS, positions, k).amin(1)
    has_sharp = sharp_at < k
    table_a = _compose(ops, params, hist, positions < sharp_at.unsqueeze(1), c, compact)
    if out is None:
        out = _new_buffer(images.shape, images.dtype, device)
    if compact:
        rows = has_sharp.nonzero().squeeze(1)
        if rows.numel() == 0:
            return apply_levels_lut(index, table_a, images.dtype, out=out)
        # Kept scratch buffers: the sharpened rows are about half of a batch, and fresh buffers
        # that large cost page faults on every call.
        sub_index = torch.index_select(
            index, 0, rows, out=_scratch("sharp_index", (rows.numel(), *index.shape[1:]), index.dtype, device)
        )
    else:
        rows = torch.arange(b, device=device)
        sub_index = index
    factor = torch.where(has_sharp, params.sharpness.float(), 1.0)[rows]
    levels = _scratch("sharp_levels", sub_index.shape, torch.int16, device) if compact else None
    levels = torch.index_select(
        table_a.to(torch.int16).reshape(-1),
        0,
        sub_index.view(-1),
        out=None if levels is None else levels.view(-1),
    )
    plane = (rows.to(torch.int32) * c).view(-1, 1) + torch.arange(c, dtype=torch.int32, device=device)
    # the sharpened levels, offset into the (B, C, 256) tables, overwrite the spent index
    _sharpen_into(levels.view(sub_index.shape), factor, sub_index, plane.mul_(_LEVELS).view(-1, c, 1, 1))
    del levels
    hist_b = levels_histogram(sub_index, b)
    table_b = _compose(ops, params, hist_b, positions > sharp_at.unsqueeze(1), c, compact)
    if not compact:
        return apply_levels_lut(sub_index, table_b, images.dtype, out=out)
    # The sharpened rows rejoin the index, and one pass through each row's own table (table_a for
    # rows without sharpness, table_b after it) writes every output pixel exactly once.
    index.index_copy_(0, rows, sub_index)
    del sub_index
    table = torch.where(has_sharp.view(b, 1, 1), table_b, table_a)
    return apply_levels_lut(index, table, images.dtype, out=out)
