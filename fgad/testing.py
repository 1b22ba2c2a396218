"""Property-testing helpers for image augmentations: hypothesis strategies and invariant checks.

fgad's own tests use these; import them to property-test your own transforms::

    from hypothesis import given
    from fgad.testing import image_batches, assert_mask_binary

    @given(images=image_batches())
    def test_my_mask(images):
        assert_mask_binary(my_mask(images))

The assertions need only torch. The strategies need ``hypothesis`` (the ``testing`` extra:
``pip install fgad[testing]``), imported when a strategy is first built.

Convention of the strategies: tensors are generated from a drawn integer seed with a
``torch.Generator`` (hypothesis shrinks the seed and the shape, not millions of pixel values), on
the CPU unless ``devices`` says otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import torch

__all__ = [
    "assert_batch_equals_samples",
    "assert_label_consistent",
    "assert_mask_binary",
    "assert_mask_inside",
    "assert_range_and_dtype",
    "assert_replay_exact",
    "assert_untouched_outside_mask",
    "available_devices",
    "generators",
    "image_batches",
    "texture_banks",
    "uint8_images",
]

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _hypothesis() -> Any:
    try:
        from hypothesis import strategies as st
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("fgad.testing strategies need hypothesis: pip install 'fgad[testing]'") from error
    return st


def available_devices() -> list[str]:
    """``["cpu"]`` plus ``"cuda"`` when a GPU is present."""
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


# ---------------------------------------------------------------------------------------- strategies
def generators(seeds: tuple[int, int] = (0, 2**31 - 1)) -> Any:
    """Strategy of freshly seeded CPU ``torch.Generator`` objects."""
    st = _hypothesis()
    return st.integers(*seeds).map(lambda seed: torch.Generator().manual_seed(seed))


def _pattern(kind: str, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Values in [0, 1] of one of several image kinds (float32, CPU)."""
    b, c, h, w = shape
    if kind == "noise":
        return torch.rand(shape, generator=gen)
    if kind == "constant":
        return torch.rand(b, c, 1, 1, generator=gen).expand(shape).contiguous()
    if kind == "levels":  # two or three grey levels
        levels = torch.rand(b, c, 3, generator=gen)
        pick = torch.randint(0, int(torch.randint(2, 4, (1,), generator=gen)), (b, 1, h, w), generator=gen)
        return torch.gather(levels.unsqueeze(-1).expand(b, c, 3, h * w), 2,
                            pick.view(b, 1, 1, h * w).expand(b, c, 1, h * w)).view(shape)
    # "object": a brighter or darker ellipse on a noisy background, like a part on a table.
    yy = torch.linspace(-1, 1, h).view(1, 1, h, 1)
    xx = torch.linspace(-1, 1, w).view(1, 1, 1, w)
    centre = torch.rand(b, 2, 1, 1, generator=gen) * 0.6 - 0.3
    radius = torch.rand(b, 2, 1, 1, generator=gen) * 0.4 + 0.25
    inside = (((yy - centre[:, :1]) / radius[:, :1]) ** 2 + ((xx - centre[:, 1:]) / radius[:, 1:]) ** 2) < 1
    fg = torch.rand(b, c, 1, 1, generator=gen)
    bg = torch.rand(b, c, 1, 1, generator=gen)
    img = torch.where(inside, fg, bg) + 0.05 * torch.randn(shape, generator=gen)
    return img.clamp(0, 1)


def image_batches(
    *,
    batch_sizes: tuple[int, int] = (1, 4),
    heights: tuple[int, int] = (8, 48),
    widths: tuple[int, int] = (8, 48),
    channels: Sequence[int] = (1, 3),
    dtypes: Sequence[torch.dtype] = FLOAT_DTYPES,
    devices: Sequence[str] | None = None,
    kinds: Sequence[str] = ("noise", "object", "levels", "constant"),
    on_level_grid: bool = False,
) -> Any:
    """Strategy of image batches (B, C, H, W) in [0, 1].

    Args:
        batch_sizes, heights, widths: inclusive (lo, hi) ranges.
        channels: channel counts to draw from.
        dtypes: floating dtypes to draw from.
        devices: devices to draw from (default: :func:`available_devices`).
        kinds: ``"noise"`` (uniform), ``"object"`` (an ellipse on a background), ``"levels"``
            (two or three grey levels), ``"constant"``.
        on_level_grid: round values to multiples of 1/255 (images that came from uint8).
    """
    st = _hypothesis()
    devs = list(devices) if devices is not None else available_devices()

    @st.composite
    def build(draw: Any) -> torch.Tensor:
        shape = (draw(st.integers(*batch_sizes)), draw(st.sampled_from(list(channels))),
                 draw(st.integers(*heights)), draw(st.integers(*widths)))
        kind = draw(st.sampled_from(list(kinds)))
        gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
        img = _pattern(kind, shape, gen)
        if on_level_grid:
            img = torch.round(img * 255) / 255
        return img.to(draw(st.sampled_from(list(dtypes)))).to(draw(st.sampled_from(devs)))

    return build()


def texture_banks(
    *,
    bank_sizes: tuple[int, int] = (1, 5),
    heights: tuple[int, int] = (8, 64),
    widths: tuple[int, int] = (8, 64),
    channels: int = 3,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
) -> Any:
    """Strategy of texture banks (N, C, h, w) in [0, 1] (uniform noise or objects)."""
    return image_batches(batch_sizes=bank_sizes, heights=heights, widths=widths, channels=(channels,),
                         dtypes=(dtype,), devices=(device,), kinds=("noise", "object"))


def uint8_images(
    *,
    heights: tuple[int, int] = (1, 40),
    widths: tuple[int, int] = (1, 40),
    kinds: Sequence[str] = ("uniform", "levels", "constant", "normal"),
) -> Any:
    """Strategy of single uint8 grey images (H, W), e.g. to compare thresholds with OpenCV."""
    st = _hypothesis()

    @st.composite
    def build(draw: Any) -> torch.Tensor:
        h, w = draw(st.integers(*heights)), draw(st.integers(*widths))
        kind = draw(st.sampled_from(list(kinds)))
        gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
        if kind == "uniform":
            return torch.randint(0, 256, (h, w), generator=gen, dtype=torch.uint8)
        if kind == "constant":
            return torch.full((h, w), draw(st.integers(0, 255)), dtype=torch.uint8)
        if kind == "levels":
            values = draw(st.lists(st.integers(0, 255), min_size=1, max_size=4))
            values = torch.tensor(values, dtype=torch.uint8)
            return values[torch.randint(0, len(values), (h, w), generator=gen)]
        mean, std = draw(st.floats(0, 255)), draw(st.floats(0.5, 80))
        return (torch.randn(h, w, generator=gen) * std + mean).round().clamp(0, 255).to(torch.uint8)

    return build()


# ---------------------------------------------------------------------------------------- assertions
def assert_mask_binary(mask: torch.Tensor, batch_size: int | None = None) -> None:
    """A mask batch (B, 1, H, W) holding only 0 and 1."""
    assert isinstance(mask, torch.Tensor), f"mask must be a tensor, got {type(mask).__name__}"
    assert mask.ndim == 4 and mask.shape[1] == 1, f"mask must be (B, 1, H, W), got {tuple(mask.shape)}"
    if batch_size is not None:
        assert mask.shape[0] == batch_size, f"mask batch {mask.shape[0]} != {batch_size}"
    bad = (mask != 0) & (mask != 1)
    assert not bool(bad.any()), f"mask has {int(bad.sum())} values other than 0 and 1"


def assert_mask_inside(mask: torch.Tensor, region: torch.Tensor) -> None:
    """Every pixel of ``mask`` lies in ``region`` (both (B, 1, H, W), non-zero = inside)."""
    outside = (mask != 0) & (region == 0)
    assert not bool(outside.any()), f"{int(outside.sum())} mask pixels lie outside the region"


def assert_untouched_outside_mask(output: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor) -> None:
    """``output`` equals ``reference`` bitwise wherever ``mask`` is 0 (mask broadcast over channels)."""
    assert output.shape == reference.shape, (
        f"shapes differ: {tuple(output.shape)} vs {tuple(reference.shape)}"
    )
    assert output.dtype == reference.dtype, f"dtypes differ: {output.dtype} vs {reference.dtype}"
    outside = (mask == 0).expand_as(output)
    changed = (output != reference) & outside
    assert not bool(changed.any()), f"{int(changed.sum())} values changed outside the mask"


def assert_label_consistent(mask: torch.Tensor, label: torch.Tensor) -> None:
    """``label`` (B,) is 1 exactly where the mask (B, 1, H, W) is non-empty, 0 elsewhere."""
    assert label.shape == (mask.shape[0],), f"label must be ({mask.shape[0]},), got {tuple(label.shape)}"
    expected = (mask != 0).reshape(mask.shape[0], -1).any(dim=1)
    assert torch.equal(label != 0, expected), (
        f"labels {label.tolist()} vs non-empty masks {expected.tolist()}"
    )
    assert bool(((label == 0) | (label == 1)).all()), f"labels must be 0 or 1, got {label.tolist()}"


def assert_range_and_dtype(
    output: torch.Tensor, reference: torch.Tensor, lo: float = 0.0, hi: float = 1.0
) -> None:
    """``output`` has the shape, dtype and device of ``reference`` and values in [lo, hi]."""
    assert output.shape == reference.shape, f"shape {tuple(output.shape)} != {tuple(reference.shape)}"
    assert output.dtype == reference.dtype, f"dtype {output.dtype} != {reference.dtype}"
    assert output.device == reference.device, f"device {output.device} != {reference.device}"
    assert not bool(torch.isnan(output).any()), "output has NaN"
    assert float(output.min()) >= lo and float(output.max()) <= hi, (
        f"values must lie in [{lo}, {hi}], got [{float(output.min())}, {float(output.max())}]"
    )


def _tensors(result: Any) -> dict[str, torch.Tensor]:
    if isinstance(result, torch.Tensor):
        return {"output": result}
    if dataclasses.is_dataclass(result):
        return {f.name: getattr(result, f.name) for f in dataclasses.fields(result)
                if isinstance(getattr(result, f.name), torch.Tensor)}
    if isinstance(result, (tuple, list)):
        return {str(i): r for i, r in enumerate(result) if isinstance(r, torch.Tensor)}
    raise TypeError(f"cannot compare results of type {type(result).__name__}")


def _assert_same(a: Any, b: Any, what: str) -> None:
    ta, tb = _tensors(a), _tensors(b)
    assert ta.keys() == tb.keys(), f"{what}: fields differ {sorted(ta)} vs {sorted(tb)}"
    for name in ta:
        x, y = ta[name], tb[name]
        assert x.shape == y.shape and x.dtype == y.dtype, (
            f"{what}: {name} is {tuple(x.shape)} {x.dtype} vs {tuple(y.shape)} {y.dtype}"
        )
        same = torch.equal(x, y) or (x.is_floating_point() and bool((torch.isnan(x) == torch.isnan(y)).all())
                                     and torch.equal(torch.nan_to_num(x), torch.nan_to_num(y)))
        assert same, f"{what}: {name} differs in {int((x != y).sum())} values"


def assert_replay_exact(op: Callable[..., Any], *args: Any, seed: int = 0, **kwargs: Any) -> Any:
    """The same generator state gives bit-identical results, and ``params=op.last_params`` replays.

    ``op`` is called as ``op(*args, generator=..., **kwargs)`` and must keep ``last_params``.
    The global RNG must not be read when a generator is given. Returns the first result.
    """
    state = torch.random.get_rng_state()
    first = op(*args, generator=torch.Generator().manual_seed(seed), **kwargs)
    params = op.last_params  # type: ignore[attr-defined]
    assert torch.equal(torch.random.get_rng_state(), state), "the global RNG was used despite a generator"
    second = op(*args, generator=torch.Generator().manual_seed(seed), **kwargs)
    _assert_same(first, second, "same generator state")
    replay = op(*args, params=params, **kwargs)
    _assert_same(first, replay, "replay with params")
    return first


def assert_batch_equals_samples(
    op: Callable[..., Any],
    batched: Sequence[torch.Tensor | None],
    params: Any,
    *,
    skip: Sequence[str] = ("params",),
    **kwargs: Any,
) -> None:
    """A batch gives exactly what its samples give one by one with the sliced params.

    ``op(*batched, params=params)`` is compared with ``op(*[x[i:i+1] ...], params=params[i])`` for
    every sample i; ``None`` entries of ``batched`` are passed through; fields named in ``skip``
    are not compared.
    """
    whole = _tensors(op(*batched, params=params, **kwargs))
    batch = next(x for x in batched if x is not None).shape[0]
    for i in range(batch):
        args = [None if x is None else x[i : i + 1] for x in batched]
        one = _tensors(op(*args, params=params[i], **kwargs))
        for name, value in one.items():
            if name in skip:
                continue
            expected = whole[name][i : i + 1]
            assert torch.equal(value, expected), (
                f"sample {i}: {name} differs from the batched result in "
                f"{int((value != expected).sum())} values"
            )
