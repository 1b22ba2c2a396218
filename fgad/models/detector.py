"""The anomaly detector: reconstructive autoencoder + U-Net segmenter + DRAEM's post-processing."""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from fgad._checks import check_image, check_positive_int
from fgad.models._layers import PAD_MODES, pad_to_multiple
from fgad.models._registry import build_model, register_model, set_config
from fgad.models.autoencoder import ATTENTIONS, ReconstructiveAutoencoder
from fgad.models.segmenter import UNetSegmenter

__all__ = [
    "DEFAULT_SCORE",
    "SCORE_METHODS",
    "AnomalyDetector",
    "DetectorOutput",
    "image_score",
    "smoothing_kernel_for",
]

#: Image-score rules of :func:`image_score`.
SCORE_METHODS = ("smoothed_max", "max", "topk_mean")

#: The detector's image-score rule by default: the mean of the highest 0.1% of the map's pixels
#: (16 pixels at 128 x 128, 66 at 256 x 256). Chosen with ``fgad benchmark`` (README, "Results"):
#: it scored above DRAEM's mean filter on every devset category measured.
DEFAULT_SCORE: dict[str, Any] = {"score_method": "topk_mean", "score_topk": 0.001}

# What a saved detector config without the score keys meant: DRAEM's mean-filter rule.
_LEGACY_SCORE: dict[str, Any] = {"score_method": "smoothed_max", "score_topk": 0.01}


def saved_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The constructor kwargs of a saved config, as they were meant when it was saved.

    A detector's config (it always records ``smoothing_kernel``) written before the score rule was
    recorded was scored with ``score_method="smoothed_max"`` (``score_topk=0.01``); those keys are
    filled in so that the model scores, and its saved threshold applies, as before. Other configs
    are returned as they are.

    Example:
        >>> saved_kwargs({"base_width": 8, "smoothing_kernel": "auto"})["score_method"]
        'smoothed_max'
        >>> saved_kwargs({"base_width": 8, "smoothing_kernel": 21, "score_method": "max"})["score_method"]
        'max'
    """
    if "smoothing_kernel" not in kwargs:
        return dict(kwargs)
    return {**_LEGACY_SCORE, **kwargs}

#: DRAEM's mean-filter side for 256-pixel inputs; ``"auto"`` scales it with the input.
_REFERENCE_KERNEL, _REFERENCE_SIZE = 21, 256


def smoothing_kernel_for(height: int, width: int) -> int:
    """The ``"auto"`` mean-filter side: the odd integer nearest ``21 * min(H, W) / 256`` (at least 1).

    The filter then covers the same share of the image at every input size as DRAEM's 21 x 21 filter
    does at 256 x 256.

    Example:
        >>> [smoothing_kernel_for(s, s) for s in (64, 128, 224, 256, 512)]
        [5, 11, 19, 21, 43]
    """
    target = _REFERENCE_KERNEL * min(int(height), int(width)) / _REFERENCE_SIZE
    return max(1, 2 * math.floor((target - 1.0) / 2.0 + 0.5) + 1)


def image_score(
    anomaly_map: torch.Tensor,
    method: str = DEFAULT_SCORE["score_method"],
    *,
    kernel: int | str = "auto",
    include_pad: bool = False,
    topk: float = DEFAULT_SCORE["score_topk"],
) -> torch.Tensor:
    """Image scores (B,) from anomaly maps (B, 1, H, W).

    Args:
        anomaly_map: (B, 1, H, W) floating per-pixel anomaly map.
        method: ``"topk_mean"`` (default: the mean of the ``topk`` share of the highest pixels, at
            least one pixel), ``"smoothed_max"`` (DRAEM's rule: the maximum of the map after a
            ``kernel`` x ``kernel`` mean filter) or ``"max"`` (the maximum of the map).
        kernel: odd side of the mean filter of ``"smoothed_max"``, or ``"auto"``
            (:func:`smoothing_kernel_for` of the map's size: 21 at 256 px, 11 at 128 px).
        include_pad: ``"smoothed_max"`` only: count the zero padding in the border means (DRAEM's
            evaluation code) instead of averaging over the part of the window inside the image.
        topk: ``"topk_mean"`` only: the share of pixels averaged, in (0, 1] (default 0.001).

    Example:
        >>> amap = torch.zeros(1, 1, 10, 10)
        >>> amap[0, 0, :2, :2] = 1.0
        >>> [round(float(image_score(amap, m, kernel=3, topk=0.04)), 4) for m in SCORE_METHODS]
        [1.0, 1.0, 1.0]
        >>> round(float(image_score(amap, "topk_mean", topk=0.08)), 4)
        0.5
    """
    if not isinstance(anomaly_map, torch.Tensor) or not anomaly_map.is_floating_point():
        raise TypeError("anomaly_map must be a floating torch.Tensor of shape (B, 1, H, W)")
    if anomaly_map.ndim != 4 or anomaly_map.shape[1] != 1:
        raise ValueError(f"anomaly_map must have shape (B, 1, H, W), got {tuple(anomaly_map.shape)}")
    if method == "max":
        return anomaly_map.amax(dim=(1, 2, 3))
    if method == "topk_mean":
        _check_topk(topk)
        flat = anomaly_map.flatten(1)
        k = max(1, round(float(topk) * int(flat.shape[1])))  # int(): a tensor while tracing
        return flat.topk(k, dim=1, sorted=False).values.mean(dim=1)
    if method == "smoothed_max":
        k = _resolve_kernel(kernel, anomaly_map.shape)
        return _smooth(anomaly_map, k, include_pad).amax(dim=(1, 2, 3))
    raise ValueError(f"method must be one of {SCORE_METHODS}, got {method!r}")


def _check_topk(topk: object) -> None:
    if isinstance(topk, bool) or not isinstance(topk, (int, float)) or not 0.0 < float(topk) <= 1.0:
        raise ValueError(f"topk must be a share of the pixels in (0, 1], got {topk!r}")


def _resolve_kernel(kernel: int | str, shape: Any) -> int:
    _check_smoothing_kernel(kernel)
    return smoothing_kernel_for(shape[-2], shape[-1]) if kernel == "auto" else int(kernel)


def _smooth(anomaly_map: torch.Tensor, k: int, include_pad: bool) -> torch.Tensor:
    if k == 1:
        return anomaly_map
    return F.avg_pool2d(anomaly_map, k, stride=1, padding=k // 2, count_include_pad=include_pad)


class DetectorOutput(NamedTuple):
    """What :class:`AnomalyDetector` returns (a ``NamedTuple``, so it traces, compiles and unpacks).

    Attributes:
        reconstruction: (B, C, H, W) the autoencoder's reconstruction I_r (not clamped).
        logits: (B, 2, H, W) segmenter logits (normal, anomalous), for the segmentation loss.
        anomaly_map: (B, 1, H, W) per-pixel anomaly probability ``softmax(logits, 1)[:, 1:2]``, not
            smoothed (DRAEM computes pixel metrics on this map).
        score: (B,) image score, by the detector's ``score_method`` (default: the maximum of the
            mean-filtered anomaly map, DRAEM's image score).
        score_raw: (B,) the maximum of the unsmoothed anomaly map.
    """

    reconstruction: torch.Tensor
    logits: torch.Tensor
    anomaly_map: torch.Tensor
    score: torch.Tensor
    score_raw: torch.Tensor


class AnomalyDetector(nn.Module):
    """The detector of DRAEM / Zhao et al. (2023): reconstruct, segment, post-process.

    ``I_r = autoencoder(I)``, ``logits = segmenter(cat(I, I_r))``, ``anomaly_map = softmax(logits)``
    class 1, ``score = max(mean_filter(anomaly_map))``. ``attention="eca"`` (registered as ``fgad``)
    is the paper's network; ``attention=None`` (registered as ``draem``) is DRAEM, the ablation.

    Args:
        in_channels: image channels C, 1 or 3; the segmenter sees 2C.
        base_width: scales both networks: autoencoder width ``base_width``, segmenter width
            ``base_width // 2`` (128 / 64 by default, DRAEM's).
        ae_width: autoencoder base width; overrides ``base_width`` for it.
        seg_width: segmenter base width; overrides ``base_width // 2``.
        attention: ``"eca"`` (the paper) or ``None`` (DRAEM).
        smoothing_kernel: odd side of the square mean filter applied before the image score (21
            in DRAEM, for 256 x 256 inputs); 1 disables smoothing; ``"auto"`` (default) scales it with
            the input, the odd integer nearest ``21 * min(H, W) / 256`` (21 at 256 px, 11 at 128 px;
            :func:`smoothing_kernel_for`), so the filter covers the same share of the image at every
            size. An int keeps a fixed size (21 = DRAEM's rule at any size).
        smoothing_include_pad: ``False`` (default): each smoothed pixel is the mean over the part
            of the window inside the image (``avg_pool2d(count_include_pad=False)``), so a defect
            at the border scores like one in the middle. ``True`` reproduces DRAEM's evaluation
            code exactly (``avg_pool2d`` zero padding counted in the mean): near the border the
            zeros pull the mean down, to ``(k // 2 + 1)^2 / k^2`` of a uniform map's value in the
            corners (0.27 for k = 21).
        score_method: what ``score`` is: ``"topk_mean"`` (default: the mean of the highest
            ``score_topk`` share of the map's pixels), ``"smoothed_max"`` (DRAEM's rule: the maximum
            of the map after the ``smoothing_kernel`` mean filter) or ``"max"`` (the maximum of the
            raw map, also in ``score_raw``); see :func:`image_score`. A saved config without this
            key loads as ``"smoothed_max"`` with ``score_topk=0.01``, what it was saved with.
        score_topk: the share of pixels averaged by ``"topk_mean"``, in (0, 1] (default 0.001).
        pad_mode: how an image whose sides are not multiples of 32 is padded (bottom/right edges)
            before the networks; outputs are cropped back to H x W. ``"reflect"`` (default: no new
            edges for the segmenter to flag), ``"replicate"`` or ``"constant"`` (zeros).
        device: where to create the parameters.
        dtype: parameter dtype.

    Shape:
        images (B, C, H, W), H, W >= 32 -> :class:`DetectorOutput` with (B, C, H, W), (B, 2, H, W),
        (B, 1, H, W), (B,), (B,).

    Convention:
        Images are floats in [0, 1] of the parameters' dtype (any dtype under ``torch.autocast``).
        ``forward`` checks the structure (type, rank, channels, size, dtype) and, like the
        synthesizer, the values: in [0, 1] and not NaN (so an image in [0, 255] is an error, not a
        silent wrong score). The value check is one reduction and one host synchronisation; it is
        skipped while compiling, tracing or exporting, and off inside
        ``fgad.validation(False)`` (fgad's training loop on accelerators). All outputs are
        computed in train and eval mode alike (BatchNorm follows the mode). ``config`` holds the registered
        name and the constructor arguments as given (JSON-serialisable); the resolved widths are
        ``ae_width`` and ``seg_width``.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> model = AnomalyDetector(base_width=8).eval()
        >>> out = model(torch.rand(2, 3, 64, 80))
        >>> out.anomaly_map.shape, out.score.shape
        (torch.Size([2, 1, 64, 80]), torch.Size([2]))
        >>> bool((out.score <= out.score_raw).all())
        True
    """

    #: Total downsampling factor (the segmenter's five poolings); smaller inputs are rejected.
    stride = 32
    #: ``{"name": ..., "kwargs": {...}}``: the registered name and the constructor arguments as given.
    config: dict[str, Any]

    def __init__(
        self,
        in_channels: int = 3,
        base_width: int = 128,
        ae_width: int | None = None,
        seg_width: int | None = None,
        attention: str | None = "eca",
        smoothing_kernel: int | Literal["auto"] = "auto",
        smoothing_include_pad: bool = False,
        pad_mode: str = "reflect",
        score_method: str = DEFAULT_SCORE["score_method"],
        score_topk: float = DEFAULT_SCORE["score_topk"],
        *,
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if in_channels not in (1, 3) or isinstance(in_channels, bool):
            raise ValueError(f"in_channels must be 1 or 3, got {in_channels!r}")
        check_positive_int(base_width, "base_width")
        for value, label in ((ae_width, "ae_width"), (seg_width, "seg_width")):
            if value is not None:
                check_positive_int(value, label)
        # The config keeps the arguments as given (None = derived from base_width), so that a
        # different base_width asked for at load time is not masked by saved derived widths.
        config_kwargs: dict[str, Any] = {
            "in_channels": in_channels,
            "base_width": base_width,
            "ae_width": ae_width,
            "seg_width": seg_width,
            "attention": attention,
            "smoothing_kernel": smoothing_kernel,
            "smoothing_include_pad": smoothing_include_pad,
            "pad_mode": pad_mode,
            # always written: a config without them is read as saved before they were (saved_kwargs)
            "score_method": score_method,
            "score_topk": score_topk,
        }
        ae_width = base_width if ae_width is None else ae_width
        seg_width = max(base_width // 2, 1) if seg_width is None else seg_width
        if attention is not None and attention not in ATTENTIONS:
            raise ValueError(f"attention must be None or one of {ATTENTIONS}, got {attention!r}")
        _check_smoothing_kernel(smoothing_kernel)
        if not isinstance(smoothing_include_pad, bool):
            raise ValueError(f"smoothing_include_pad must be a bool, got {smoothing_include_pad!r}")
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
        if score_method not in SCORE_METHODS:
            raise ValueError(f"score_method must be one of {SCORE_METHODS}, got {score_method!r}")
        _check_topk(score_topk)
        self.score_method = score_method
        self.score_topk = float(score_topk)
        self.in_channels = in_channels
        self.ae_width = ae_width
        self.seg_width = seg_width
        self.smoothing_kernel = smoothing_kernel
        self.smoothing_include_pad = smoothing_include_pad
        self.pad_mode = pad_mode
        self.autoencoder = ReconstructiveAutoencoder(
            in_channels,
            base_width=ae_width,
            attention=attention,
            pad_mode=pad_mode,
            device=device,
            dtype=dtype,
        )
        self.segmenter = UNetSegmenter(
            2 * in_channels, 2, base_width=seg_width, pad_mode=pad_mode, device=device, dtype=dtype
        )
        set_config(self, "draem" if attention is None else "fgad", config_kwargs)

    def forward(self, images: torch.Tensor) -> DetectorOutput:
        """Run both networks and the post-processing on ``images`` (B, C, H, W), H, W >= 32."""
        check_image(images, "images", channels=(self.in_channels,))
        h, w = images.shape[-2], images.shape[-1]
        if h < self.stride or w < self.stride:
            raise ValueError(
                f"images must be at least {self.stride}x{self.stride} pixels (the segmenter pools five "
                f"times), got {h}x{w}"
            )
        weight_dtype = self.segmenter.head.weight.dtype
        if images.dtype != weight_dtype and not torch.is_autocast_enabled(images.device.type):
            raise TypeError(
                f"images have dtype {images.dtype} but the model's parameters are {weight_dtype}; "
                f"convert one of them (images.to({weight_dtype})) or run under torch.autocast"
            )
        x = pad_to_multiple(images, self.stride, self.pad_mode)
        reconstruction = self.autoencoder(x)
        logits = self.segmenter(torch.cat((x, reconstruction), dim=1))
        reconstruction = reconstruction[..., :h, :w]
        logits = logits[..., :h, :w]
        anomaly_map = torch.softmax(logits, dim=1)[:, 1:2]
        score_raw = anomaly_map.amax(dim=(1, 2, 3))
        if self.score_method == "smoothed_max":
            _, score = self.postprocess(anomaly_map)
        elif self.score_method == "max":
            score = score_raw
        else:
            score = image_score(anomaly_map, "topk_mean", topk=self.score_topk)
        return DetectorOutput(reconstruction, logits, anomaly_map, score, score_raw)

    def postprocess(self, anomaly_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean-filter an anomaly map and take its maximum per image, as :meth:`forward` does.

        Args:
            anomaly_map: (B, 1, H, W) floating anomaly map (any H, W >= 1).

        Returns:
            ``(smoothed_map, score)``: (B, 1, H, W) mean over the ``smoothing_kernel`` window
            (stride 1, padding ``k // 2``; see ``smoothing_include_pad`` for the border; ``"auto"``
            sized from the map), and (B,) its maximum per image.

        Example:
            >>> model = AnomalyDetector(base_width=8, smoothing_kernel=3)
            >>> amap = torch.zeros(1, 1, 4, 4)
            >>> amap[0, 0, 0, 0] = 1.0
            >>> smoothed, score = model.postprocess(amap)
            >>> round(float(score), 4)  # the corner window holds 4 pixels, one of them 1
            0.25
        """
        if not isinstance(anomaly_map, torch.Tensor) or not anomaly_map.is_floating_point():
            raise TypeError("anomaly_map must be a floating torch.Tensor of shape (B, 1, H, W)")
        if anomaly_map.ndim != 4 or anomaly_map.shape[1] != 1:
            raise ValueError(f"anomaly_map must have shape (B, 1, H, W), got {tuple(anomaly_map.shape)}")
        k = _resolve_kernel(self.smoothing_kernel, anomaly_map.shape)
        smoothed = _smooth(anomaly_map, k, self.smoothing_include_pad)
        return smoothed, smoothed.amax(dim=(1, 2, 3))


def _check_smoothing_kernel(k: object) -> None:
    if k == "auto":
        return
    if isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0:
        raise ValueError(
            f"smoothing_kernel must be 'auto' or an odd positive int (1 = no smoothing), got {k!r}"
        )


@register_model
def fgad(**kwargs: Any) -> AnomalyDetector:
    """The paper's detector: ECA autoencoder (width 128) + U-Net segmenter (width 64)."""
    return build_model(AnomalyDetector, "fgad", {"attention": "eca"}, kwargs)


@register_model
def draem(**kwargs: Any) -> AnomalyDetector:
    """DRAEM, the ablation baseline: plain autoencoder (width 128) + U-Net segmenter (width 64)."""
    return build_model(AnomalyDetector, "draem", {"attention": None}, kwargs)


@register_model
def fgad_small(**kwargs: Any) -> AnomalyDetector:
    """``fgad`` at CPU size: autoencoder width 32, segmenter width 16 (same structure)."""
    return build_model(AnomalyDetector, "fgad_small", {"attention": "eca", "base_width": 32}, kwargs)


@register_model
def draem_small(**kwargs: Any) -> AnomalyDetector:
    """``draem`` at CPU size: autoencoder width 32, segmenter width 16 (same structure)."""
    return build_model(AnomalyDetector, "draem_small", {"attention": None, "base_width": 32}, kwargs)
