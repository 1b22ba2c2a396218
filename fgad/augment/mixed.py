"""A per-sample mixture of registered synthesizers, replayable like each of them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

import torch
from torch import nn

from .._checks import as_batch, check_image
from ._params import sample_device
from ._validate import check_probability, given_foreground
from .foreground import ForegroundMask
from .registry import SYNTHESIZERS, create_synthesizer, register_synthesizer
from .synthesizer import AnomalySynthesizer, SynthesisParams, SynthesisResult

__all__ = ["MixedParams", "MixedSynthesizer"]


@dataclass
class MixedParams:
    """Random values of one :class:`MixedSynthesizer` call.

    Attributes:
        anomalous: (B,) bool, whether the sample gets an anomaly.
        choice: (B,) long, the index of the synthesizer each sample uses (order of ``names``).
        children: one params object per synthesizer, each for the whole batch (only the samples that
            chose it are used).
    """

    anomalous: torch.Tensor
    choice: torch.Tensor
    children: tuple[Any, ...]

    def __getitem__(self, index: int | slice | torch.Tensor) -> MixedParams:
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return MixedParams(self.anomalous[index], self.choice[index], tuple(c[index] for c in self.children))

    def to(self, device: torch.device | str) -> MixedParams:
        return MixedParams(
            self.anomalous.to(device), self.choice.to(device), tuple(c.to(device) for c in self.children)
        )

    def __len__(self) -> int:
        return int(self.anomalous.shape[0])


def _gated(params: Any, anomalous: torch.Tensor, chosen: torch.Tensor | None) -> Any:
    """A child's params with the mixture's anomaly gate (and, on accelerators, only its own samples)."""
    gate = anomalous if chosen is None else anomalous & chosen
    changes: dict[str, torch.Tensor] = {"anomalous": gate}
    if isinstance(params, SynthesisParams) and chosen is not None:
        changes["rotate"] = params.rotate & chosen
    return dataclasses.replace(params, **changes)


class MixedSynthesizer(nn.Module):
    """Each sample gets the anomaly of one synthesizer, drawn per sample with the given weights.

    Args:
        synthesizers: ``{name: weight}`` of registered synthesizers (weights > 0, normalised), e.g.
            ``{"fgad": 0.5, "cutpaste_scar": 0.25, "nsa": 0.25}``, or ``{name: module}`` pairs given
            as ``{name: (weight, module)}`` for synthesizers built by hand.
        foreground: passed to every synthesizer built here (each applies it to its own samples),
            except those registered with a foreground of their own (``draem``: anywhere, its
            definition); ``options`` can still give one. A ``foreground`` given per call restricts
            every synthesizer.
        anomaly_prob: probability that a sample gets an anomaly (the synthesizers themselves are built
            with ``anomaly_prob=1``; the mixture decides).
        options: ``{name: {keyword: value}}``, extra arguments of the synthesizers built here.

    Shape:
        As :class:`~fgad.augment.AnomalySynthesizer`; ``textures`` is passed to every synthesizer
        (the texture bank of ``fgad`` / ``draem``, the source bank of ``nsa``; ignored by CutPaste),
        or given per synthesizer as ``{name: textures}`` (e.g. DTD textures for ``fgad`` and the
        training images for ``nsa``; a name left out gets ``None``).

    Convention:
        The contract of :class:`~fgad.augment.AnomalySynthesizer`. The params hold the per-sample
        choice and each synthesizer's params for the whole batch; ``params=`` replays a call and a
        batch equals its samples done one by one. On the CPU each synthesizer runs on the samples
        that chose it; on accelerators every synthesizer runs on the whole batch with the other
        samples switched off and the results are selected per sample (no host synchronisation).

    Example:
        >>> synth = MixedSynthesizer({"fgad": 0.5, "cutpaste_scar": 0.5}, anomaly_prob=1.0)
        >>> res = synth(torch.rand(4, 3, 32, 32), generator=torch.Generator().manual_seed(0))
        >>> res.params.choice.tolist(), res.label.tolist()
        ([0, 1, 1, 1], [1.0, 1.0, 1.0, 1.0])
    """

    _rows_on_cpu = True  # the CPU runs each synthesizer on its own samples (False: the accelerator path)

    def __init__(
        self,
        synthesizers: Mapping[str, float | tuple[float, nn.Module]],
        foreground: Literal["auto", "otsu"] | ForegroundMask | None = "auto",
        anomaly_prob: float = 0.5,
        options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(synthesizers, Mapping) or not synthesizers:
            raise ValueError(
                f"synthesizers must be a non-empty {{name: weight}} mapping, got {synthesizers!r}"
            )
        options = dict(options or {})
        unknown = set(options) - set(synthesizers)
        if unknown:
            raise ValueError(f"options name synthesizers that are not mixed: {sorted(unknown)}")
        self.names = tuple(synthesizers)
        weights, modules = [], []
        for name, spec in synthesizers.items():
            if isinstance(spec, tuple):
                weight, module = spec
            else:
                weight = spec
                # a method registered with its own foreground (``draem``: anywhere) keeps it
                own = {} if "foreground" in SYNTHESIZERS.get(name).defaults else {"foreground": foreground}
                module = create_synthesizer(name, **{**own, **options.get(name, {}), "anomaly_prob": 1.0})
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
                raise ValueError(f"the weight of {name!r} must be a positive number, got {weight!r}")
            weights.append(float(weight))
            modules.append(module)
        self.synthesizers = nn.ModuleList(modules)
        total = sum(weights)
        self.weights = tuple(w / total for w in weights)
        self.anomaly_prob = check_probability("anomaly_prob", anomaly_prob)
        self.last_params: MixedParams | None = None

    @property
    def foreground_mask(self) -> ForegroundMask | None:
        """The foreground method of the mixed synthesizers (the first one that has one), for callers
        that compute foregrounds once per image and pass them per call (e.g. a foreground cache)."""
        for module in self.synthesizers:
            found = getattr(module, "foreground_mask", None)
            if found is not None:
                return found
        return None

    def _sources(
        self, textures: torch.Tensor | Mapping[str, torch.Tensor | None] | None, images: torch.Tensor
    ) -> list[tuple[torch.Tensor | None, bool, int | None]]:
        """Per synthesizer: (its textures, one texture per sample, bank size)."""
        if isinstance(textures, Mapping):
            unknown = set(textures) - set(self.names)
            if unknown:
                raise ValueError(f"textures name synthesizers that are not mixed: {sorted(unknown)}")
            given = [textures.get(name) for name in self.names]
        else:
            given = [textures] * len(self.names)
        out: list[tuple[torch.Tensor | None, bool, int | None]] = []
        batch, _, height, width = images.shape
        for tex in given:
            if tex is not None and tex.ndim == 3 and batch == 1:
                tex = tex.unsqueeze(0)
            if tex is None:
                out.append((None, False, None))
                continue
            check_image(tex, "textures", channels=(images.shape[1],), check_range=False)
            per_sample = tex.shape[0] == batch and tuple(tex.shape[-2:]) == (height, width)
            out.append((tex, per_sample, None if per_sample else int(tex.shape[0])))
        return out

    def sample_params(
        self,
        batch_size: int,
        *,
        bank_size: int | None | Mapping[str, int | None] = None,
        procedural: bool | Mapping[str, bool] = False,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> MixedParams:
        """Draw the gate, the choice and every synthesizer's params for ``batch_size`` samples.

        Args:
            bank_size: N of the texture / source bank (None: one per sample or none), or per name.
            procedural: whether ``fgad`` / ``draem`` use their built-in textures, or per name.
        """
        where = sample_device(generator, device)
        anomalous = torch.rand(batch_size, generator=generator, device=where) < self.anomaly_prob
        weights = torch.tensor(self.weights, dtype=torch.float64, device=where)
        edges = weights.cumsum(0)[:-1]
        u = torch.rand(batch_size, generator=generator, device=where, dtype=torch.float64)
        choice = torch.bucketize(u, edges, right=True)
        children = []
        for name, module in zip(self.names, self.synthesizers, strict=True):
            size = bank_size.get(name) if isinstance(bank_size, Mapping) else bank_size
            builtin = procedural.get(name, False) if isinstance(procedural, Mapping) else procedural
            sampler = cast(Any, module).sample_params
            if isinstance(module, AnomalySynthesizer):
                child = sampler(
                    batch_size, bank_size=size, procedural=builtin, device=where, generator=generator
                )
            else:
                child = sampler(batch_size, bank_size=size, device=where, generator=generator)
            children.append(child)
        params = MixedParams(anomalous, choice, tuple(children))
        return params.to(device) if device is not None else params

    def forward(
        self,
        images: torch.Tensor,
        textures: torch.Tensor | Mapping[str, torch.Tensor | None] | None = None,
        *,
        generator: torch.Generator | None = None,
        params: MixedParams | None = None,
        foreground: torch.Tensor | Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> SynthesisResult:
        """Synthesise anomalies for a batch (B, C, H, W) or a single image (C, H, W)."""
        images, single = as_batch(images, "images")
        if single and isinstance(textures, torch.Tensor) and textures.ndim == 3:
            textures = textures.unsqueeze(0)
        check_image(images, "images", check_range=False)
        sources = self._sources(textures, images)
        batch = images.shape[0]
        if params is None:
            params = self.sample_params(
                batch,
                bank_size={name: src[2] for name, src in zip(self.names, sources, strict=True)},
                procedural={name: src[0] is None for name, src in zip(self.names, sources, strict=True)},
                device=images.device,
                generator=generator,
            )
        else:
            if not isinstance(params, MixedParams):
                raise TypeError(f"params must be a MixedParams, got {type(params).__name__}")
            if len(params) != batch:
                raise ValueError(f"params hold {len(params)} samples, expected the batch size {batch}")
            params = params.to(images.device)
        self.last_params = params
        masks = given_foreground(foreground, images, single) if foreground is not None else None
        if images.device.type == "cpu" and self._rows_on_cpu:
            result = self._by_rows(images, sources, params, masks)
        else:
            result = self._by_selection(images, sources, params, masks)
        return result.first() if single else result

    def _by_rows(
        self,
        images: torch.Tensor,
        sources: list[tuple[torch.Tensor | None, bool, int | None]],
        params: MixedParams,
        masks: torch.Tensor | None,
    ) -> SynthesisResult:
        """CPU: each synthesizer on the samples that chose it (reading the choice costs nothing here)."""
        image = torch.empty_like(images)
        target = torch.empty_like(images)
        mask = images.new_zeros(images.shape[0], 1, *images.shape[2:])
        label = images.new_zeros(images.shape[0])
        fg = torch.ones(images.shape[0], 1, *images.shape[2:], dtype=torch.bool, device=images.device)
        for k, module in enumerate(self.synthesizers):
            rows = (params.choice == k).nonzero().squeeze(1)
            if rows.numel() == 0:
                continue
            child = _gated(params.children[k][rows], params.anomalous[rows], None)
            textures, per_sample, _ = sources[k]
            tex = textures[rows] if per_sample and textures is not None else textures
            res = module(images[rows], tex, params=child, foreground=None if masks is None else masks[rows])
            image.index_copy_(0, rows, res.image)
            target.index_copy_(0, rows, res.target)
            mask.index_copy_(0, rows, res.mask)
            label.index_copy_(0, rows, res.label)
            if res.foreground is not None:
                fg.index_copy_(0, rows, res.foreground)
        any_fg = any(getattr(m, "foreground_mask", None) is not None for m in self.synthesizers)
        return SynthesisResult(
            image, target, mask, label, cast(Any, params), fg if any_fg or masks is not None else None
        )

    def _by_selection(
        self,
        images: torch.Tensor,
        sources: list[tuple[torch.Tensor | None, bool, int | None]],
        params: MixedParams,
        masks: torch.Tensor | None,
    ) -> SynthesisResult:
        """Accelerators: every synthesizer on the whole batch, the chosen result kept per sample."""
        picked = []
        any_fg = masks is not None
        for k, module in enumerate(self.synthesizers):
            chosen = params.choice == k
            res = module(
                images,
                sources[k][0],
                params=_gated(params.children[k], params.anomalous, chosen),
                foreground=masks,
            )
            any_fg = any_fg or res.foreground is not None
            child_fg = (
                res.foreground if res.foreground is not None else torch.ones_like(res.mask, dtype=torch.bool)
            )
            picked.append((chosen, res, child_fg))
        _, first, fg = picked[0]
        image, target, mask, label = first.image, first.target, first.mask, first.label
        for chosen, res, child_fg in picked[1:]:
            pick = chosen.view(-1, 1, 1, 1)
            image = torch.where(pick, res.image, image)
            target = torch.where(pick, res.target, target)
            mask = torch.where(pick, res.mask, mask)
            label = torch.where(chosen, res.label, label)
            fg = torch.where(pick, child_fg, fg)
        return SynthesisResult(image, target, mask, label, cast(Any, params), fg if any_fg else None)


@register_synthesizer(name="mixed")
def _mixed(
    synthesizers: Mapping[str, float | tuple[float, nn.Module]] | None = None, **kwargs: Any
) -> MixedSynthesizer:
    """A per-sample mixture, default fgad 0.5, cutpaste_scar 0.25, nsa 0.25."""
    if synthesizers is None:
        synthesizers = {"fgad": 0.5, "cutpaste_scar": 0.25, "nsa": 0.25}
    return MixedSynthesizer(synthesizers, **kwargs)
