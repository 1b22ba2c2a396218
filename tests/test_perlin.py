"""Perlin noise and masks: a per-pixel reference, shapes, ranges, replay and batch semantics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fgad.augment import PerlinMask, PerlinParams, perlin_noise
from fgad.augment.perlin import _evaluate
from fgad.testing import assert_batch_equals_samples, assert_mask_binary, assert_replay_exact


def _fade(t: float) -> float:
    return t * t * t * (t * (t * 6 - 15) + 10)


def _reference(params: PerlinParams, size: tuple[int, int]) -> np.ndarray:
    """Perlin noise pixel by pixel, straight from the definition (float64, one sample at a time)."""
    height, width = size
    out = np.zeros((len(params), height, width))
    for b in range(len(params)):
        cy, cx = (int(v) for v in params.scales[b])
        grads = params.gradients[b].double().numpy()
        theta = math.radians(float(params.angle[b]))
        for y in range(height):
            for x in range(width):
                px, py = x + 0.5 - width / 2, y + 0.5 - height / 2
                u = (math.cos(theta) * px - math.sin(theta) * py + width / 2) * cx / width
                v = (math.sin(theta) * px + math.cos(theta) * py + height / 2) * cy / height
                i0, j0 = math.floor(u), math.floor(v)
                fu, fv = u - i0, v - j0
                dots = {}
                for di in (0, 1):
                    for dj in (0, 1):
                        g = grads[(j0 + dj) % cy, (i0 + di) % cx]
                        dots[di, dj] = g[0] * (fu - di) + g[1] * (fv - dj)
                top = dots[0, 0] + _fade(fu) * (dots[1, 0] - dots[0, 0])
                bottom = dots[0, 1] + _fade(fu) * (dots[1, 1] - dots[0, 1])
                out[b, y, x] = math.sqrt(2) * (top + _fade(fv) * (bottom - top))
    return out


@pytest.mark.parametrize("size", [(17, 23), (32, 32)])
def test_noise_matches_per_pixel_reference(size: tuple[int, int]) -> None:
    g = torch.Generator().manual_seed(3)
    mask = PerlinMask(scale_exponents=(0, 3), subsample=1)
    params = mask.sample_params(3, generator=g)
    ours = _evaluate(params, size, size)[:, 0].double().numpy()
    np.testing.assert_allclose(ours, np.clip(_reference(params, size), -1, 1), atol=2e-5)


@settings(max_examples=10)
@given(b=st.integers(1, 3), h=st.integers(1, 70), w=st.integers(1, 70), seed=st.integers(0, 1000))
def test_noise_shape_range_any_size(b: int, h: int, w: int, seed: int) -> None:
    noise = perlin_noise(b, (h, w), generator=torch.Generator().manual_seed(seed))
    assert noise.shape == (b, 1, h, w) and noise.dtype == torch.float32
    assert float(noise.abs().max()) <= 1.0


def test_noise_scales_given_and_dtype() -> None:
    scales = torch.tensor([[1, 1], [4, 2], [3, 5]])
    noise = perlin_noise(
        3, (40, 30), scales=scales, generator=torch.Generator().manual_seed(0), dtype=torch.float16
    )
    assert noise.dtype == torch.float16 and noise.shape == (3, 1, 40, 30)
    # More cells -> more sign changes along a row than with a single cell.
    flips = (torch.sign(noise[:, 0, 20, 1:]) != torch.sign(noise[:, 0, 20, :-1])).sum(-1)
    assert int(flips[0]) <= int(flips[2])


def test_noise_default_scales_are_powers_of_two() -> None:
    mask = PerlinMask()
    params = mask.sample_params(400, generator=torch.Generator().manual_seed(1))
    exps = torch.log2(params.scales.double())
    assert torch.equal(exps, exps.round()) and set(exps.unique().tolist()) == {0, 1, 2, 3, 4, 5}
    assert float(params.angle.min()) >= -90 and float(params.angle.max()) <= 90
    assert params.angle.std() > 40  # spread over the whole range, not a constant


def test_noise_is_periodic_lattice() -> None:
    # Rotating by 90 degrees a square image with a 4x4 lattice gives a noise field of the same
    # lattice: evaluating at rotated coordinates never leaves the periodic lattice (no empty corners).
    mask = PerlinMask(rotation=(37.0, 37.0), subsample=1, threshold=-1.0)
    out = mask(2, (33, 33), generator=torch.Generator().manual_seed(0))
    assert bool(out.all())  # threshold -1: every pixel has noise, corners included


def test_mask_replay_via_module() -> None:
    mask = PerlinMask()

    class Op:
        last_params = None

        def __call__(self, n: int, **kw: object) -> torch.Tensor:
            res = mask(n, (31, 45), **kw)  # type: ignore[arg-type]
            self.last_params = mask.last_params
            return res

    op = Op()
    out = assert_replay_exact(op, 4)
    assert_mask_binary(out, batch_size=4)
    params = op.last_params
    assert_batch_equals_samples(
        lambda x, params: mask(x.shape[0], (31, 45), params=params), [torch.zeros(4, 1, 1, 1)], params
    )


def test_subsampled_mask_close_to_exact() -> None:
    g = torch.Generator().manual_seed(0)
    coarse, exact = PerlinMask(), PerlinMask(subsample=1)
    params = coarse.sample_params(8, generator=g)
    a = coarse(8, (128, 128), params=params)
    b = exact(8, (128, 128), params=params)
    assert float((a != b).float().mean()) < 0.03


def test_global_rng_untouched_and_device_param() -> None:
    state = torch.random.get_rng_state()
    perlin_noise(2, 16, generator=torch.Generator().manual_seed(0), device="cpu")
    PerlinMask()(2, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(state, torch.random.get_rng_state())


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(batch_size=0, size=8), ValueError),
        (dict(batch_size=2, size=(0, 8)), ValueError),
        (dict(batch_size=2, size=(8, 8, 8)), ValueError),
        (dict(batch_size=2, size=8, scales=torch.ones(2, 2)), TypeError),
        (dict(batch_size=2, size=8, scales=torch.ones(3, 2, dtype=torch.long)), ValueError),
        (dict(batch_size=2, size=8, scales=torch.zeros(2, 2, dtype=torch.long)), ValueError),
        (dict(batch_size=2, size=8, dtype=torch.int32), TypeError),
    ],
)
def test_noise_bad_input(kwargs: dict, error: type) -> None:
    with pytest.raises(error, match="must"):
        perlin_noise(**kwargs)


def test_mask_bad_config() -> None:
    with pytest.raises(ValueError, match="threshold"):
        PerlinMask(threshold=1.5)
    with pytest.raises(ValueError, match="scale_exponents"):
        PerlinMask(scale_exponents=(3, 1))
    with pytest.raises(ValueError, match="rotation"):
        PerlinMask(rotation=(10, -10))
    with pytest.raises(ValueError, match="subsample"):
        PerlinMask(subsample=0)
    mask = PerlinMask()
    with pytest.raises(ValueError, match="batch_size"):
        mask(3, 8, params=mask.sample_params(2))
