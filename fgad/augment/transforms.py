"""fgad's anomaly synthesis as a ``torchvision.transforms.v2`` transform, for per-sample pipelines.

torchvision is imported by this module only; import it explicitly::

    from torchvision.transforms import v2
    from fgad.augment.transforms import SyntheticAnomaly

    pipeline = v2.Compose([v2.RandomResizedCrop(256, scale=(0.8, 1.0)), v2.RandomHorizontalFlip(),
                           SyntheticAnomaly(anomaly_prob=0.5)])
    sample = pipeline({"image": tv_tensors.Image(image)})   # image float (3, H, W) in [0, 1]
    sample["image"], sample["target"], sample["mask"], sample["label"]
"""

from __future__ import annotations

from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from fgad.augment.synthesizer import AnomalySynthesizer

__all__ = ["SyntheticAnomaly"]


class SyntheticAnomaly(v2.Transform):
    """Put a synthetic anomaly into one sample (or a batch): a ``torchvision.transforms.v2`` transform.

    Args:
        synthesizer: the :class:`~fgad.augment.AnomalySynthesizer` to run; default: one built from
            ``synthesizer_kwargs`` (fgad's defaults: Otsu foreground, anomaly probability 0.5).
        textures: anomaly-source textures for every call: a bank (N, C, h, w) float in [0, 1] on the
            images' device, or ``None`` (fgad's built-in procedural textures).
        **synthesizer_kwargs: :class:`~fgad.augment.AnomalySynthesizer`'s arguments, e.g.
            ``anomaly_prob=1.0``, ``foreground=None``.

    Input and output:
        A dict sample with an ``"image"`` (a ``tv_tensors.Image`` or a plain tensor, float in [0, 1],
        (C, H, W) or a batch (B, C, H, W)) is returned as a new dict with its other keys kept and
        ``"image"`` (the image with the anomaly) and ``"target"`` (the clean image, rotated where the
        synthesis rotated it), both ``tv_tensors.Image`` (a plain tensor image comes back as one, so
        that later transforms treat both as images), ``"mask"``
        (``tv_tensors.Mask`` (1, H, W) in {0, 1}, the image's dtype) and ``"label"`` (a 0-d tensor,
        1 where the mask is non-empty) set; a ``"mask"`` or ``"label"`` already there is replaced.
        A bare image gives such a dict too. The params of the last call are in ``last_params``.

    Convention:
        Random values come from torch's global RNG (a DataLoader seeds it differently in each
        worker), drawn with the synthesizer's sample-then-apply contract. Transforms placed after
        this one see ``"image"`` and ``"target"`` as images and ``"mask"`` as a mask, so torchvision's
        geometric transforms move all three together. Integer images are rejected: put
        ``v2.ToDtype(torch.float32, scale=True)`` before this transform.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> t = v2.Compose([v2.RandomHorizontalFlip(), SyntheticAnomaly(anomaly_prob=1.0)])
        >>> out = t({"image": tv_tensors.Image(torch.rand(3, 64, 64)), "path": "a.png"})
        >>> type(out["image"]).__name__, type(out["mask"]).__name__, tuple(out["mask"].shape), out["path"]
        ('Image', 'Mask', (1, 64, 64), 'a.png')
    """

    def __init__(
        self,
        synthesizer: AnomalySynthesizer | None = None,
        *,
        textures: torch.Tensor | None = None,
        **synthesizer_kwargs: Any,
    ) -> None:
        super().__init__()
        if synthesizer is not None and synthesizer_kwargs:
            raise TypeError("pass either a synthesizer or the arguments to build one, not both")
        if synthesizer is not None and not isinstance(synthesizer, AnomalySynthesizer):
            raise TypeError(f"synthesizer must be an AnomalySynthesizer, got {type(synthesizer).__name__}")
        if synthesizer is None:
            synthesizer = AnomalySynthesizer(**synthesizer_kwargs)
        self.synthesizer = synthesizer
        self.textures = textures

    @property
    def last_params(self) -> Any:
        """The :class:`~fgad.augment.SynthesisParams` of the last call (replay with the synthesizer)."""
        return self.synthesizer.last_params

    def forward(self, *inputs: Any) -> dict[str, Any]:
        # torchvision's Transform.forward maps leaves one to one; this transform adds keys, so it
        # takes the sample whole.
        sample = inputs[0] if len(inputs) == 1 else inputs
        if isinstance(sample, dict):
            if "image" not in sample:
                raise KeyError(f"the sample has no 'image' key (keys: {sorted(map(str, sample))})")
            image = sample["image"]
        elif isinstance(sample, torch.Tensor):
            image, sample = sample, {}
        else:
            raise TypeError(
                "SyntheticAnomaly takes a dict sample with an 'image' or an image tensor, "
                f"got {type(sample).__name__}"
            )
        if not isinstance(image, torch.Tensor):
            raise TypeError(
                f"sample['image'] must be a tensor (put v2.ToImage() first), got {type(image).__name__}"
            )
        if not image.is_floating_point():
            raise TypeError(
                f"images must be float in [0, 1], got dtype {image.dtype}: put "
                "v2.ToDtype(torch.float32, scale=True) before SyntheticAnomaly"
            )
        plain = image.as_subclass(torch.Tensor)
        result = self.synthesizer(plain, self.textures)
        out = dict(sample)
        out["image"] = tv_tensors.Image(result.image)
        out["target"] = tv_tensors.Image(result.target)
        out["mask"] = tv_tensors.Mask(result.mask)
        out["label"] = result.label
        return out

    def extra_repr(self) -> str:
        return f"textures={'None' if self.textures is None else tuple(self.textures.shape)}"
