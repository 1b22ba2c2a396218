"""Foreground-enhanced synthetic anomalies (Zhao et al. 2023, Eq. 1-2), batched on the device."""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import as_batch, check_image, is_validating, validation
from ._buffers import _any_true, _new_buffer, _new_like
from ._params import ParamsMixin, sample_device
from ._perlin_lattice import _evaluate, _sample_gradients
from ._validate import check_probability, check_range, check_values, given_foreground
from .foreground import FOREGROUND_METHODS, ForegroundMask, Polarity
from .perlin import PerlinMask, PerlinParams
from .texture import TextureAugment, TextureParams

__all__ = ["AnomalySynthesizer", "ProceduralTextureParams", "SynthesisParams", "SynthesisResult"]

_OCTAVE_CELLS = (4, 8, 16)


@dataclass
class ProceduralTextureParams(ParamsMixin):
    """Random values of the built-in texture source (coloured fractal Perlin noise).

    Attributes:
        base: (B, 3) float32 base colour in [0, 1].
        gradients: (B, 3, O, 16, 16, 2) float32 lattice gradients, per channel and octave.
        angle: (B, 3, O) float32 rotation of each octave in degrees.
    """

    base: torch.Tensor
    gradients: torch.Tensor
    angle: torch.Tensor


@dataclass
class SynthesisParams(ParamsMixin):
    """Every random value of one :class:`AnomalySynthesizer` call, per sample (batch first).

    Attributes:
        rotate: (B,) bool, whether the input image is rotated before synthesis.
        image_angle: (B,) float32 rotation of the input image in degrees (used where ``rotate``).
        anomalous: (B,) bool, whether the sample gets an anomaly.
        texture_opacity: (B,) float32 beta of Eq. 2, the weight of the texture inside the mask.
        texture_index: (B,) long index into the texture bank (``arange(B)`` for per-sample textures).
        perlin: the :class:`~fgad.augment.perlin.PerlinParams` of the Perlin masks.
        texture: the :class:`~fgad.augment.texture.TextureParams` of the texture ops.
        procedural: the built-in texture source's params (``None`` when textures were given).
    """

    rotate: torch.Tensor
    image_angle: torch.Tensor
    anomalous: torch.Tensor
    texture_opacity: torch.Tensor
    texture_index: torch.Tensor
    perlin: PerlinParams
    texture: TextureParams
    procedural: ProceduralTextureParams | None = None


@dataclass
class SynthesisResult:
    """Output of :class:`AnomalySynthesizer`.

    Attributes:
        image: (B, C, H, W) I_A, the image with synthetic anomalies.
        target: (B, C, H, W) the clean image, rotated where the input was rotated (the
            reconstruction target).
        mask: (B, 1, H, W) M_a in {0, 1}, the anomaly mask, dtype of the images.
        label: (B,) in {0, 1}, 1 where the mask is non-empty, dtype of the images.
        params: the :class:`SynthesisParams` that replay this call.
        foreground: (B, 1, H, W) bool foreground I_m used (``None`` with ``foreground=None``).
    """

    image: torch.Tensor
    target: torch.Tensor
    mask: torch.Tensor
    label: torch.Tensor
    params: SynthesisParams
    foreground: torch.Tensor | None = None

    def first(self) -> SynthesisResult:
        """The first sample without its batch dimension: (C, H, W) images, a (1, H, W) mask, a 0-d label.

        ``params`` keeps its batch of one, so ``synth(image, params=result.params)`` replays it.
        """
        return SynthesisResult(
            self.image[0],
            self.target[0],
            self.mask[0],
            self.label[0],
            self.params,
            None if self.foreground is None else self.foreground[0],
        )


def _centres(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Normalised pixel centres along an axis of ``n`` pixels (``align_corners=False``)."""
    return torch.linspace(-1.0, 1.0, n, dtype=dtype, device=device) * (n - 1) / n


def _rotation_grid(
    a: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    d: torch.Tensor,
    size: tuple[int, int],
    dtype: torch.dtype,
) -> torch.Tensor:
    """``F.affine_grid`` of the linear maps [[a, b, 0], [c, d, 0]] (each (B,)), (B, H, W, 2).

    The same base grid and the same products and sum as ``affine_grid``'s batched matrix product
    (equal to it bit for bit with torch's CPU BLAS, pinned in the tests), without a GEMM whose
    inner dimension is 3, which is slow on the CPU.
    """
    height, width = size
    batch = a.shape[0]
    xs = _centres(width, dtype, a.device).view(1, 1, width)
    ys = _centres(height, dtype, a.device).view(1, height, 1)
    grid = torch.empty(batch, height, width, 2, dtype=dtype, device=a.device)
    per = (batch, 1, 1)
    for k, (wx, wy) in enumerate(((a, b), (c, d))):
        # products on one row / column each, then one broadcast sum per pixel
        torch.add(xs * wx.to(dtype).view(per), ys * wy.to(dtype).view(per), out=grid[..., k])
    return grid


def _rotate(images: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate each image about its centre by ``angle`` degrees; bilinear, reflected border."""
    batch, _, height, width = images.shape
    theta = angle.to(torch.float64) * (math.pi / 180.0)
    cos, sin = torch.cos(theta).float(), torch.sin(theta).float()
    # In normalised coordinates a rotation needs the aspect ratio to stay a rotation in pixels.
    compute = images if images.dtype in (torch.float32, torch.float64) else images.float()
    grid = _rotation_grid(
        cos, sin * (height / width), -sin * (width / height), cos, (height, width), compute.dtype
    )
    out = F.grid_sample(compute, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out.clamp_(0.0, 1.0).to(images.dtype)


class BankCache:
    """A source bank resized to the images' size, and whether its values were checked, kept while
    the bank tensor is alive and unchanged (same object, same version counter). Inference tensors
    keep no version counter: for them nothing is kept (resized and checked on every call)."""

    def __init__(self) -> None:
        self._entry: tuple[Any, ...] | None = None
        self._checked: tuple[Any, ...] | None = None

    def __getstate__(self) -> dict[str, object]:
        return {"_entry": None, "_checked": None}  # a weak reference cannot be pickled

    @staticmethod
    def _same(entry: tuple[Any, ...] | None, bank: torch.Tensor, version: int | None) -> bool:
        return version is not None and entry is not None and entry[0]() is bank and entry[1] == version

    def resized(self, bank: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if tuple(bank.shape[-2:]) == size:
            return bank
        version = _version(bank)
        key = (tuple(bank.shape), bank.dtype, bank.device, size)
        entry = self._entry
        if self._same(entry, bank, version) and entry[2] == key:  # type: ignore[index]
            return entry[3]  # type: ignore[index]
        work = bank if bank.dtype in (torch.float32, torch.float64) else bank.float()
        out = F.interpolate(work, size=size, mode="bilinear", align_corners=False, antialias=True)
        out = out.clamp_(0.0, 1.0).to(bank.dtype)
        self._entry = None if version is None else (weakref.ref(bank), version, key, out)
        return out

    def check(self, textures: torch.Tensor, bank_size: int | None) -> None:
        """The [0, 1] check of a call's textures: one per sample (``bank_size`` None) on every call,
        a bank once while it is alive and unchanged (a bank of a few hundred images passed on every
        call is not re-read on every call)."""
        if not is_validating():
            return
        if bank_size is None:
            check_values(textures, "textures")
            return
        version = _version(textures)
        if self._same(self._checked, textures, version):
            return
        check_values(textures, "textures")
        self._checked = None if version is None else (weakref.ref(textures), version)


def _version(x: torch.Tensor) -> int | None:
    """The tensor's version counter (bumped by every in-place write), None for inference tensors."""
    return None if x.is_inference() else x._version


def texture_bank(
    textures: torch.Tensor | None, images: torch.Tensor
) -> tuple[torch.Tensor | None, int | None]:
    """Validate textures against the images; return them and the bank size (None when there are
    none, or one per sample: the images' batch size and size)."""
    if textures is None:
        return None, None
    check_image(textures, "textures", channels=(images.shape[1],), check_range=False)
    if textures.device != images.device:
        raise ValueError(f"textures must be on the images' device {images.device}, got {textures.device}")
    batch, _, height, width = images.shape
    if textures.shape[0] == batch and tuple(textures.shape[-2:]) == (height, width):
        return textures, None
    return textures, int(textures.shape[0])


def _rotate_masks(masks: torch.Tensor, params: SynthesisParams, on_cpu: bool) -> torch.Tensor:
    """(B, 1, H, W) bool masks rotated like the images drawn for rotation (bilinear, reflected
    border, as the images; then > 0.5)."""
    if on_cpu:
        turned = params.rotate.nonzero().squeeze(1)
        if turned.numel() == 0:
            return masks
        rotated = _rotate(masks[turned].to(torch.float32), params.image_angle[turned]) > 0.5
        return masks.clone().index_copy_(0, turned, rotated)
    rotated = _rotate(masks.to(torch.float32), params.image_angle) > 0.5
    return torch.where(params.rotate.view(-1, 1, 1, 1), rotated, masks)


class AnomalySynthesizer(nn.Module):
    """Synthetic anomalies on the object: Perlin mask x foreground, filled with an altered texture.

    For each image I (rotated first with probability ``image_rotation_prob``), a Perlin mask P_m and
    the foreground I_m give the anomaly mask M = P_m * I_m (Eq. 1); the texture source D (one
    texture per sample, altered by :class:`TextureAugment`) is blended into it:
    ``I_A = (1 - beta) (I * M) + beta (D * M) + I * (1 - M)`` (Eq. 2, with the last term ``1 - M``:
    the paper's ``1 - P_m`` would black out background pixels inside the blob). beta is
    ``texture_opacity``, the weight of the texture (DRAEM's beta weights the image instead).

    Args:
        foreground: where anomalies may go. ``"auto"`` (default: :class:`ForegroundMask`'s
            colour- and contrast-aware object mask, whole-frame for textures), ``"otsu"`` (the paper's
            grey-level Otsu mask), a :class:`ForegroundMask` (any of its options), or ``None`` (the
            DRAEM baseline: P_m alone, anywhere in the image). A call can override it with its own
            masks or a callable (see :meth:`forward`).
        anomaly_prob: probability that a sample gets an anomaly (DRAEM: 0.5).
        texture_opacity: (lo, hi) range of beta, uniform per sample (paper: (0.1, 1.0)).
        image_rotation_prob: probability that an input image is rotated (paper: 0.3).
        image_rotation: (lo, hi) range of that rotation in degrees (paper: (-90, 90)).
        perlin: a :class:`PerlinMask` (default: threshold 0.5, 2**0..2**5 cells, +-90 degrees).
        texture_augment: a :class:`TextureAugment` (default: 3 of 6 ops per sample).
        polarity, min_fraction, cleanup, fill_holes: passed to :class:`ForegroundMask` (same
            defaults) when ``foreground`` is a method name.
        ensure_anomaly: when a sample's Perlin blob misses the foreground (or the noise stays below
            the threshold), lower that sample's threshold to 80% of the noise peak on the foreground,
            so every anomalous sample gets a non-empty mask. ``False`` keeps DRAEM's behaviour
            (such a sample silently gets no anomaly, label 0).

    Shape:
        images (B, C, H, W) floating in [0, 1], C in {1, 3}; textures (B, C, H, W) (one per
        sample: same batch size and size as the images), or a bank (N, C, h, w) of any size
        (sampled per sample, resized bilinearly with antialiasing on the device; the resized bank
        is cached while the bank tensor is alive and unmodified), or ``None`` (a built-in texture
        source: coloured fractal Perlin noise, its first channel for grey images, so no files are
        needed). Textures are cast to the
        images' dtype and must have their channel count and device. A single image (C, H, W) is a
        batch of one (a (C, h, w) texture is its texture) and gives a result without the batch
        dimension: image and target (C, H, W), mask (1, H, W), a 0-d label (see
        :meth:`SynthesisResult.first`).

    Convention:
        Sample first, apply second: every random value is drawn into a :class:`SynthesisParams`
        (with a ``generator``, on its device, never touching the global RNG), then applied
        deterministically; ``synth(images, textures, params=result.params)`` (or ``last_params``)
        replays a call bit for bit, and a batch gives exactly its samples done one by one with the
        sliced params (``params[i]``). Pixels outside the mask are bitwise those of ``target``;
        a sample whose mask is empty (not anomalous, or with ``ensure_anomaly=False`` a blob that
        missed the foreground) has label 0 and ``image == target``. The input rotation fills the
        corners by reflection.
        The outputs keep the images' dtype. When nothing needs changing, ``target`` (no image
        rotated) and ``image`` (no sample anomalous) are the input tensor itself, not a copy.
        No Python loop over the batch and no host synchronisation outside the optional
        value checks (see ``fgad.set_validation``): images and textures are checked to lie
        in [0, 1] once, on entry (in memory order, so channels-last input is not copied), and the
        parts run without checks of their own. On the CPU, where it costs nothing, only the
        rotated / anomalous samples are processed. Any memory layout of images and textures gives
        the same values (channels-last is read in place).

    Example:
        >>> synth = AnomalySynthesizer(anomaly_prob=1.0)
        >>> images = torch.rand(2, 3, 64, 64)
        >>> res = synth(images, generator=torch.Generator().manual_seed(0))
        >>> res.image.shape, res.mask.shape, res.label.shape
        (torch.Size([2, 3, 64, 64]), torch.Size([2, 1, 64, 64]), torch.Size([2]))
        >>> torch.equal(synth(images, params=res.params).image, res.image)
        True
    """

    def __init__(
        self,
        foreground: Literal["auto", "otsu"] | ForegroundMask | None = "auto",
        anomaly_prob: float = 0.5,
        texture_opacity: tuple[float, float] = (0.1, 1.0),
        image_rotation_prob: float = 0.3,
        image_rotation: tuple[float, float] = (-90.0, 90.0),
        *,
        perlin: PerlinMask | None = None,
        texture_augment: TextureAugment | None = None,
        polarity: Polarity = "auto",
        min_fraction: float = 0.01,
        cleanup: int | tuple[int, int] | None = None,
        fill_holes: bool = True,
        ensure_anomaly: bool = True,
    ) -> None:
        super().__init__()
        named = isinstance(foreground, str) and foreground in FOREGROUND_METHODS
        if not (foreground is None or named or isinstance(foreground, ForegroundMask)):
            raise ValueError(
                f"foreground must be one of {FOREGROUND_METHODS}, a ForegroundMask or None, "
                f"got {foreground!r}"
            )
        self.anomaly_prob = check_probability("anomaly_prob", anomaly_prob)
        self.image_rotation_prob = check_probability("image_rotation_prob", image_rotation_prob)
        self.texture_opacity = check_range("texture_opacity", texture_opacity, 0.0, 1.0)
        self.image_rotation = check_range("image_rotation", image_rotation, -360.0, 360.0)
        if perlin is not None and not isinstance(perlin, PerlinMask):
            raise TypeError(f"perlin must be a PerlinMask, got {type(perlin).__name__}")
        if texture_augment is not None and not isinstance(texture_augment, TextureAugment):
            raise TypeError(f"texture_augment must be a TextureAugment, got {type(texture_augment).__name__}")
        self.perlin = perlin if perlin is not None else PerlinMask()
        self.texture_augment = texture_augment if texture_augment is not None else TextureAugment(num_ops=3)
        self.ensure_anomaly = bool(ensure_anomaly)
        if isinstance(foreground, str):
            foreground = ForegroundMask(
                foreground,
                polarity=polarity,
                min_fraction=min_fraction,
                cleanup=cleanup,
                fill_holes=fill_holes,
            )
        self.foreground_mask: ForegroundMask | None = foreground
        self.last_params: SynthesisParams | None = None
        # pickles without its entry (DataLoader workers started with "spawn" pickle their transforms)
        self._bank_cache = BankCache()

    # ------------------------------------------------------------------ sampling
    def sample_params(
        self,
        batch_size: int,
        *,
        bank_size: int | None = None,
        procedural: bool = False,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> SynthesisParams:
        """Draw every random value for ``batch_size`` samples.

        Args:
            bank_size: N of a texture bank to index (None: one texture per sample).
            procedural: also draw the built-in texture source's values.
        """
        where = sample_device(generator, device)
        b = batch_size

        def uniform(shape: tuple[int, ...], lo: float, hi: float) -> torch.Tensor:
            u = torch.rand(shape, generator=generator, device=where, dtype=torch.float64)
            return (u * (hi - lo) + lo).to(torch.float32)

        rotate = torch.rand(b, generator=generator, device=where) < self.image_rotation_prob
        image_angle = uniform((b,), *self.image_rotation)
        anomalous = torch.rand(b, generator=generator, device=where) < self.anomaly_prob
        opacity = uniform((b,), *self.texture_opacity)
        if bank_size is None:
            index = torch.arange(b, device=where)
        else:
            index = torch.randint(0, bank_size, (b,), generator=generator, device=where)
        perlin = self.perlin.sample_params(b, generator=generator, device=where)
        texture = self.texture_augment.sample_params(b, generator=generator, device=where)
        proc = None
        if procedural:
            octaves = len(_OCTAVE_CELLS)
            proc = ProceduralTextureParams(
                base=uniform((b, 3), 0.15, 0.85),
                gradients=_sample_gradients(b * 3 * octaves, 16, where, generator).view(
                    b, 3, octaves, 16, 16, 2
                ),
                angle=uniform((b, 3, octaves), -180.0, 180.0),
            )
        params = SynthesisParams(
            rotate=rotate,
            image_angle=image_angle,
            anomalous=anomalous,
            texture_opacity=opacity,
            texture_index=index,
            perlin=perlin,
            texture=texture,
            procedural=proc,
        )
        return params.to(device) if device is not None else params

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _procedural(
        params: ProceduralTextureParams, size: tuple[int, int], dtype: torch.dtype
    ) -> torch.Tensor:
        batch, channels, octaves = params.angle.shape
        n = batch * channels * octaves
        cells = torch.tensor(_OCTAVE_CELLS, device=params.angle.device).repeat(batch * channels)
        perlin = PerlinParams(
            scales=cells.view(n, 1).expand(n, 2).contiguous(),
            gradients=params.gradients.reshape(n, 16, 16, 2),
            angle=params.angle.reshape(n),
        )
        grid = (min(size[0], 64), min(size[1], 64))
        noise = _evaluate(perlin, grid, size).view(batch, channels, octaves, *grid)
        amplitude = torch.tensor([0.5**k for k in range(octaves)], device=noise.device)
        amplitude = amplitude.view(1, 1, octaves, 1, 1)
        fractal = (noise * amplitude).sum(2)
        if grid != size:
            fractal = F.interpolate(fractal, size=size, mode="bilinear", align_corners=False)
        return (fractal * 0.6 + params.base.view(batch, channels, 1, 1)).clamp_(0.0, 1.0).to(dtype)

    def _check_params(self, params: object, batch: int) -> SynthesisParams:
        if not isinstance(params, SynthesisParams):
            raise TypeError(f"params must be a SynthesisParams, got {type(params).__name__}")
        if len(params) != batch:
            raise ValueError(f"params hold {len(params)} samples, expected the batch size {batch}")
        return params

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        images: torch.Tensor,
        textures: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        params: SynthesisParams | None = None,
        foreground: torch.Tensor | Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> SynthesisResult:
        """Synthesise anomalies for a batch; see the class docstring for shapes and conventions.

        Args:
            images: (B, C, H, W) or (C, H, W) floating in [0, 1].
            textures: per-sample textures, a bank, or None (see the class docstring).
            generator: the random source of the sampled params.
            params: replay these params instead of sampling.
            foreground: this call's foreground, overriding the constructor's: masks (B, 1, H, W) (or
                (1, H, W) for a single image), bool or floating in {0, 1}, of the images *before*
                rotation (they are rotated with the images that are rotated), or a callable that maps
                the (unrotated) images (B, C, H, W) to such masks, e.g. a segmentation model. ``None``
                (default): not given, the constructor's ``foreground`` decides (to place anomalies
                anywhere, construct with ``foreground=None``).
        """
        images, single = as_batch(images, "images")
        if single and isinstance(textures, torch.Tensor) and textures.ndim == 3:
            textures = textures.unsqueeze(0)
        check_image(images, "images", check_range=False)
        textures, bank_size = texture_bank(textures, images)
        # The only value checks of the call (each a host synchronisation): the parts below run with
        # validation off, so the same tensors are not checked again.
        check_values(images, "images")
        if textures is not None:
            self._bank_cache.check(textures, bank_size)
        batch, _, height, width = images.shape
        size = (height, width)
        device, dtype = images.device, images.dtype
        if params is None:
            params = self.sample_params(
                batch, bank_size=bank_size, procedural=textures is None, device=device, generator=generator
            )
        else:
            params = self._check_params(params, batch).to(device)
            if textures is None and params.procedural is None:
                raise ValueError(
                    "params hold no built-in texture values: pass the textures of the replayed call"
                )
            if bank_size is not None and is_validating() and bool((params.texture_index >= bank_size).any()):
                raise ValueError(f"params.texture_index must be < the bank size {bank_size}")
        self.last_params = params
        given_fg = None
        if foreground is not None:
            given_fg = given_foreground(foreground, images, single)
        with torch.no_grad(), validation(False):
            result = self._synthesize(images, textures, bank_size, params, size, dtype, given_fg)
        return result.first() if single else result

    def _synthesize(
        self,
        images: torch.Tensor,
        textures: torch.Tensor | None,
        bank_size: int | None,
        params: SynthesisParams,
        size: tuple[int, int],
        dtype: torch.dtype,
        given_fg: torch.Tensor | None = None,
    ) -> SynthesisResult:
        batch = images.shape[0]
        on_cpu = images.device.type == "cpu"
        view = (batch, 1, 1, 1)
        given = images
        if on_cpu and not images.is_contiguous():
            # One copy into the contiguous layout that the texture ops write: the rotation and the
            # blend then read and write one layout (with mixed layouts they are several times
            # slower). An unrotated target is still returned as the caller's tensor itself.
            images = images.contiguous()

        # 1. Rotate the inputs that were drawn for it: the target is the rotated clean image.
        if on_cpu:
            turned = params.rotate.nonzero().squeeze(1)
            if turned.numel() == 0:
                target = images
            else:
                rotated = _rotate(images[turned], params.image_angle[turned])
                target = _new_like(images).copy_(images).index_copy_(0, turned, rotated)
        else:
            rotated = _rotate(images, params.image_angle)
            target = torch.where(params.rotate.view(view), rotated, images)
        # What the result reports as the target: the caller's own tensor when nothing was rotated.
        reported = given if target is images else target

        # 2. M = P_m * I_m, restricted to the anomalous samples (Eq. 1).
        noise = self.perlin.noise(params.perlin, size)
        foreground = None
        offset = 0.0
        if given_fg is not None:
            foreground = _rotate_masks(given_fg, params, on_cpu)
        elif self.foreground_mask is not None:
            foreground = self.foreground_mask.foreground(target)
        if foreground is not None:
            # Lift the noise on the object by 4 (object in [3, 5], background in [-1, 1]): then one
            # comparison with a threshold above 1 is P_m * I_m, and a plain add is much cheaper than
            # a boolean select over the image.
            offset = 4.0
            noise = noise.add_(foreground.view(torch.uint8), alpha=offset)
        threshold = torch.full((batch,), self.perlin.threshold, dtype=noise.dtype, device=noise.device)
        if self.ensure_anomaly:
            # A blob that misses the object would leave the sample without an anomaly: lower its
            # threshold to 80% of the noise peak on the object (just below it if the peak is <= 0).
            peak = noise.reshape(batch, -1).amax(dim=1) - offset
            threshold = torch.minimum(threshold, torch.where(peak > 0, peak * 0.8, peak - 1e-3))
            if foreground is not None:
                threshold = threshold.masked_fill(peak < -2.0, math.inf)  # empty foreground
        threshold = (threshold + offset).masked_fill(~params.anomalous, math.inf)
        mask = noise > threshold.view(view)
        label = _any_true(mask)
        mask_out = _new_buffer(mask.shape, dtype, mask.device).copy_(mask)

        # 3. Texture source D, then the blend of Eq. 2 as a lerp whose weight is beta * M: where M = 0
        #    lerp returns its start exactly, so pixels outside the mask are bitwise the target's.
        rows: torch.Tensor | None = None
        sub = params
        if on_cpu:
            # Copying out a subset costs about what the texture ops save, so only when most skip.
            selected = label.nonzero().squeeze(1)
            if selected.numel() == 0:
                return SynthesisResult(reported, reported, mask_out, label.to(dtype), params, foreground)
            if selected.numel() <= batch // 2:
                rows, sub = selected, params[selected]
        source = self._source(textures, bank_size, sub, rows, size, dtype, images.shape[1])
        # A texture copy made here is the output buffer of the ops (a fresh image-sized buffer
        # costs page faults); the caller's own textures are never written.
        owned = source is not textures and source.is_contiguous()
        altered = self.texture_augment(source, params=sub.texture, out=source if owned else None)
        opacity = sub.texture_opacity.to(dtype).view(-1, 1, 1, 1)
        if rows is None:
            # the noise is spent: its buffer takes the weights when the dtypes agree
            weight = torch.mul(mask_out, opacity, out=noise) if noise.dtype == dtype else mask_out * opacity
        else:
            weight = mask_out[rows].mul_(opacity)
        start = target if rows is None else target[rows]
        blended = torch.lerp(start, altered, weight, out=altered)
        if rows is None or rows.numel() == batch:
            image = blended
        else:
            image = _new_like(target).copy_(target).index_copy_(0, rows, blended)
        return SynthesisResult(image, reported, mask_out, label.to(dtype), params, foreground)

    def _source(
        self,
        textures: torch.Tensor | None,
        bank_size: int | None,
        params: SynthesisParams,
        rows: torch.Tensor | None,
        size: tuple[int, int],
        dtype: torch.dtype,
        textures_channels: int | None = None,
    ) -> torch.Tensor:
        """The texture of each (selected) sample before the texture ops, in the images' size and dtype."""
        if textures is None:
            assert params.procedural is not None
            channels = textures_channels if textures_channels is not None else 3
            return self._procedural(params.procedural, size, dtype)[:, :channels]
        if bank_size is None:
            if rows is None:
                return textures.to(dtype)
            source, index = textures, rows
        else:
            source, index = self._bank_cache.resized(textures, size), params.texture_index
        picked = _new_buffer((index.numel(), *source.shape[1:]), source.dtype, source.device)
        return torch.index_select(source, 0, index, out=picked).to(dtype)
