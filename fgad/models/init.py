"""Weight initialisation schemes for fgad's networks."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["INIT_SCHEMES", "init_weights_"]

INIT_SCHEMES = ("draem", "torch")

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_NORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def init_weights_(
    module: nn.Module, scheme: str = "draem", *, generator: torch.Generator | None = None
) -> nn.Module:
    """Re-initialise ``module``'s weights in place and return it.

    Args:
        module: any module; its convolution and batch-norm sub-modules are re-initialised.
        scheme: ``"draem"``: the initialisation of DRAEM's training code (Zavrtanik et al. 2021),
            which the paper's recipe inherits: every convolution weight (transposed and the
            1-D convolutions of ECA included) from N(0, 0.02), batch-norm scales from N(1, 0.02)
            and batch-norm shifts 0; convolution biases keep PyTorch's default. ``"torch"``:
            leave PyTorch's default initialisation (a no-op).
        generator: random source (default: the global RNG).

    Convention:
        With ``"draem"`` every layer starts close to linear and the segmenter's logits close to 0.

    Example:
        >>> conv = init_weights_(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)))[0]
        >>> abs(float(conv.weight.detach().std()) - 0.02) < 0.005
        True
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"scheme must be one of {INIT_SCHEMES}, got {scheme!r}")
    if scheme == "torch":
        return module
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, _CONV):
                m.weight.normal_(0.0, 0.02, generator=generator)
            elif isinstance(m, _NORM) and m.affine:
                m.weight.normal_(1.0, 0.02, generator=generator)
                m.bias.zero_()
    return module
