"""Export a detector to ONNX for deployment (onnxruntime, TensorRT, OpenVINO).

Needs the ``onnx`` extra (``pip install fgad[onnx]``: onnx, onnxscript; onnxruntime to run it).
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from fgad._io import atomic_path

__all__ = ["DEFAULT_OPSET", "to_onnx"]

#: ONNX opset used unless ``opset`` is given (18: the oldest the torch.export-based exporter emits).
DEFAULT_OPSET = 18
_MIN_SIZE = 32


class _AnomalyMapAndScore(nn.Module):
    """The detector with only the deployment outputs: ``(anomaly_map, score)``."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.detector(images)
        return out.anomaly_map, out.score


def to_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    image_size: int | tuple[int, int],
    *,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Write ``model`` (an :class:`fgad.models.AnomalyDetector`) to ``path`` as an ONNX graph.

    The graph has one input ``images`` (N, C, H, W) float32 in [0, 1] with a dynamic batch axis N
    and fixed H x W = ``image_size``, and two outputs: ``anomaly_map`` (N, 1, H, W), the unsmoothed
    anomaly probability, and ``score`` (N,), the model's image score (its ``score_method``) — the
    same values as the model's ``DetectorOutput`` fields in eval mode. Padding to the stride, the
    crop and the image score are part of the graph. The model is exported in eval mode (BatchNorm uses
    its running statistics) on a float32 CPU copy; the model itself is left unchanged. The file is
    written to a temporary name and renamed into place, weights embedded (below 2 GB).

    Args:
        model: the detector (``create_model("fgad")``, ``"draem"``, ...).
        path: the ``.onnx`` file to write.
        image_size: ``H`` or ``(H, W)``, each >= 32.
        opset: ONNX opset version (>= 18).

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        TypeError: ``model`` is not a detector returning ``anomaly_map`` and ``score``.
        ValueError: an image size below 32 or malformed.

    Example:
        >>> import tempfile, onnxruntime
        >>> from fgad.models import create_model
        >>> _ = torch.manual_seed(0)
        >>> model = create_model("fgad", base_width=4).eval()
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = to_onnx(model, f"{tmp}/fgad.onnx", image_size=64)
        ...     session = onnxruntime.InferenceSession(str(path))
        ...     amap, score = session.run(None, {"images": torch.rand(2, 3, 64, 64).numpy()})
        >>> amap.shape, score.shape
        ((2, 1, 64, 64), (2,))
    """
    height, width = _image_size(image_size)
    channels = getattr(model, "in_channels", None)
    if not isinstance(model, nn.Module) or not hasattr(model, "postprocess") or channels not in (1, 3):
        raise TypeError(
            "model must be an fgad detector (create_model('fgad' | 'draem' | ...)) with in_channels 1 or 3, "
            f"got {type(model).__name__}"
        )
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < DEFAULT_OPSET:
        raise ValueError(f"opset must be an int >= {DEFAULT_OPSET}, got {opset!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    # A float32, contiguous CPU copy: the export traces on the CPU, and the caller's model keeps its
    # device, dtype, memory format and train/eval mode.
    export_model = copy.deepcopy(model).to("cpu", torch.float32).to(memory_format=torch.contiguous_format)
    wrapper = _AnomalyMapAndScore(export_model).eval()
    example = torch.rand(2, channels, height, width)
    batch = torch.export.Dim("batch", min=1)

    with atomic_path(path) as tmp:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                wrapper,
                (example,),
                dynamo=True,
                input_names=["images"],
                output_names=["anomaly_map", "score"],
                dynamic_shapes={"images": {0: batch}},
                opset_version=opset,
                external_data=False,
                verbose=False,
            )
        if program is None:
            raise RuntimeError("torch.onnx.export returned no program")
        program.save(str(tmp), external_data=False)
    return path


def _image_size(image_size: object) -> tuple[int, int]:
    size = (image_size, image_size) if isinstance(image_size, int) else image_size
    if (
        not isinstance(size, tuple | list)
        or len(size) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in size)
    ):
        raise ValueError(f"image_size must be an int or a pair (H, W) of ints, got {image_size!r}")
    if min(size) < _MIN_SIZE:
        raise ValueError(f"image_size must be at least {_MIN_SIZE} on each side, got {tuple(size)}")
    return int(size[0]), int(size[1])
