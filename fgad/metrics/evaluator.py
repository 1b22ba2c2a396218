"""A stateful evaluator: feed batches during the test loop, get every metric at the end."""

from __future__ import annotations

import numpy as np
import torch

from ._ranking import (
    Ranking,
    as_images,
    aupro_from,
    auroc_from,
    average_precision_from,
    check_binary,
    check_same_shape,
    check_scores,
    f1_max_from,
    pack_keys_torch,
    pr_from,
    pro_curve_from,
    ranking_from_scores,
    ranking_from_sorted_keys,
    roc_from,
    to_numpy,
)
from .regions import regions_and_sizes

__all__ = ["Evaluator"]


def sorted_keys_torch(maps: torch.Tensor, groups: torch.Tensor) -> np.ndarray | None:
    """Pack and sort (score, group) keys on the tensors' device; None if float32 would merge scores."""
    if maps.dtype == torch.float64 and not torch.equal(maps.float().double(), maps):
        return None
    keys = torch.sort(pack_keys_torch(maps, groups)).values
    return keys.cpu().numpy()


class Evaluator:
    """Accumulates image scores (and optionally anomaly maps) batch by batch; computes all metrics at once.

    Args:
        fpr_limit: integration limit of AUPRO, in (0, 1].

    Convention:
        - ``update(scores, labels, maps=None, masks=None)``: ``scores`` (B,) image scores, ``labels`` (B,)
          in {0, 1}; ``maps`` (B, 1, H, W) or (B, H, W) anomaly maps and ``masks`` of the same shape in
          {0, 1}, given together and in every batch or in none. H and W may change between batches.
          Torch tensors (any device, any float dtype) or numpy arrays; the values are copied, so the
          caller may reuse its buffers.
        - ``compute()`` returns ``{"image_auroc", "image_f1_max"}`` and, when maps were given,
          ``{"pixel_auroc", "pixel_ap", "pixel_f1_max", "aupro"}``, as Python floats with exactly the values
          of the functions in :mod:`fgad.metrics.functional` on the concatenated data (same tie handling,
          same ``nan`` plus :class:`~fgad.metrics.UndefinedMetricWarning` for undefined metrics). The pixel
          scores are sorted once and all four pixel metrics are read off the same cumulative counts. Maps on a
          CUDA device are sorted there. The F1-optimal thresholds are kept in ``f1_thresholds``.
        - Ground-truth regions (for AUPRO) are labelled per batch, during ``update``.

    Example:
        >>> import torch
        >>> from fgad.metrics import aupro
        >>> g = torch.Generator().manual_seed(0)
        >>> ev, all_maps, all_masks = Evaluator(), [], []
        >>> for _ in range(2):
        ...     masks = (torch.rand(4, 1, 16, 16, generator=g) > 0.9).float()
        ...     masks[:2] = 0  # two normal images per batch
        ...     maps = 0.5 * masks + 0.6 * torch.rand(4, 1, 16, 16, generator=g)
        ...     ev.update(maps.amax(dim=(1, 2, 3)), masks.amax(dim=(1, 2, 3)), maps, masks)
        ...     all_maps.append(maps)
        ...     all_masks.append(masks)
        >>> result = ev.compute()
        >>> sorted(result)
        ['aupro', 'image_auroc', 'image_f1_max', 'pixel_ap', 'pixel_auroc', 'pixel_f1_max']
        >>> result["aupro"] == aupro(torch.cat(all_maps), torch.cat(all_masks))
        True
    """

    def __init__(self, fpr_limit: float = 0.3) -> None:
        if not 0.0 < float(fpr_limit) <= 1.0:
            raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
        self.fpr_limit = float(fpr_limit)
        self.f1_thresholds: dict[str, float] = {}
        self.reset()

    def reset(self) -> None:
        """Forget every batch."""
        self._scores: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []
        self._maps: list[np.ndarray | torch.Tensor] = []
        self._groups: list[np.ndarray | torch.Tensor] = []
        self._region_sizes: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]
        self._n_regions = 0
        self._with_maps: bool | None = None
        self.f1_thresholds = {}

    @property
    def num_images(self) -> int:
        """Images seen since the last reset."""
        return sum(len(s) for s in self._scores)

    def update(
        self, scores: object, labels: object, maps: object | None = None, masks: object | None = None
    ) -> None:
        """Add one batch. See the class docstring for shapes.

        Raises:
            ValueError: inconsistent shapes or batch sizes, non-binary labels/masks, non-finite scores, maps
                without masks (or the reverse), or maps in some batches only.
        """
        s = check_scores(to_numpy(scores, "scores"), "scores").reshape(-1)
        y = check_binary(to_numpy(labels, "labels"), "labels").reshape(-1)
        if s.shape != y.shape:
            raise ValueError(f"scores and labels must both have shape (B,), got {s.shape} and {y.shape}")
        if (maps is None) != (masks is None):
            raise ValueError("maps and masks must be given together (both or neither)")
        with_maps = maps is not None
        if self._with_maps is not None and with_maps != self._with_maps:
            raise ValueError(
                "every batch must give maps and masks, or none may: pixel metrics need all images"
            )
        if with_maps:
            self._update_pixels(maps, masks, batch_size=len(s))
        self._with_maps = with_maps
        self._scores.append(np.array(s, dtype=np.float64 if s.dtype == np.float64 else np.float32))
        self._labels.append(y.copy())

    def _update_pixels(self, maps: object, masks: object, batch_size: int) -> None:
        device_maps: torch.Tensor | None = None
        host_maps: np.ndarray | None = None
        if isinstance(maps, torch.Tensor) and maps.device.type != "cpu":
            device_maps = maps.detach() if maps.is_floating_point() else maps.detach().double()
            if not bool(torch.isfinite(device_maps).all()):
                raise ValueError("maps must be finite, got NaN or infinite values")
            shape = tuple(device_maps.shape)
        else:
            host_maps = check_scores(to_numpy(maps, "maps"), "maps")
            shape = tuple(host_maps.shape)
        y = check_binary(to_numpy(masks, "masks"), "masks")
        check_same_shape(shape, y.shape, ("maps", "masks"))
        images = as_images(y.reshape(shape), "masks")
        if images.shape[0] != batch_size:
            raise ValueError(f"maps must have one map per score (batch size {batch_size}), got shape {shape}")
        groups, sizes = regions_and_sizes(images, offset=self._n_regions)
        self._n_regions += len(sizes) - 1
        self._region_sizes.append(sizes[1:])
        if device_maps is not None:
            self._maps.append(device_maps.reshape(-1).clone())
            self._groups.append(torch.from_numpy(groups.reshape(-1)).to(device_maps.device))
        else:
            assert host_maps is not None
            self._maps.append(np.array(host_maps.reshape(-1), copy=True))
            self._groups.append(groups.reshape(-1))

    def _pixel_ranking(self) -> Ranking:
        if all(isinstance(m, torch.Tensor) for m in self._maps):
            dtype = torch.float64 if any(m.dtype == torch.float64 for m in self._maps) else torch.float32
            maps = torch.cat([m.to(dtype) for m in self._maps])  # type: ignore[union-attr]
            groups = torch.cat(self._groups)  # type: ignore[arg-type]
            keys = sorted_keys_torch(maps, groups)
            if keys is not None:
                return ranking_from_sorted_keys(keys)
        maps_np = np.concatenate([to_numpy(m, "maps").reshape(-1) for m in self._maps])
        groups_np = np.concatenate([to_numpy(g, "groups").reshape(-1) for g in self._groups])
        return ranking_from_scores(maps_np, groups_np)

    def compute(self) -> dict[str, float]:
        """All metrics over every batch since the last reset (see the class docstring for the keys)."""
        if not self._scores:
            raise ValueError("Evaluator.compute() called before any update()")
        scores = np.concatenate(self._scores)
        labels = np.concatenate(self._labels)
        image = ranking_from_scores(scores, labels)
        image_f1, image_t = f1_max_from(image, "image F1-max")
        out = {"image_auroc": auroc_from(image, "image AUROC"), "image_f1_max": image_f1}
        self.f1_thresholds = {"image": image_t}
        if self._with_maps:
            pixels = self._pixel_ranking()
            sizes = np.concatenate(self._region_sizes)
            pixel_f1, pixel_t = f1_max_from(pixels, "pixel F1-max")
            out["pixel_auroc"] = auroc_from(pixels, "pixel AUROC")
            out["pixel_ap"] = average_precision_from(pixels, "pixel AP")
            out["pixel_f1_max"] = pixel_f1
            out["aupro"] = aupro_from(pixels, sizes, self.fpr_limit)
            self.f1_thresholds["pixel"] = pixel_t
        return out

    def curves(self, max_points: int | None = 2000) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Curves for plots: ``image_roc``, ``image_pr`` and, with maps, ``pixel_roc``, ``pixel_pr``, ``pro``.

        ROC curves are ``(fpr, tpr, thresholds)`` and PR curves ``(precision, recall, thresholds)`` as
        :func:`~fgad.metrics.roc_curve` / :func:`~fgad.metrics.precision_recall_curve` return them (with
        ``drop_intermediate=True``); ``pro`` is ``(fpr, pro, thresholds)`` up to ``fpr_limit``, as
        :func:`~fgad.metrics.pro_curve` returns it. With ``max_points``, each curve is thinned to about that
        many points, evenly by index, keeping both ends (for plotting; the metrics use every point). The
        pixel curves sort the pixel scores again.

        Raises:
            ValueError: before any update, or when a curve is undefined (one class only).
        """
        if not self._scores:
            raise ValueError("Evaluator.curves() called before any update()")
        image = ranking_from_scores(np.concatenate(self._scores), np.concatenate(self._labels))
        out = {"image_roc": roc_from(image), "image_pr": pr_from(image, drop_intermediate=True)}
        if self._with_maps:
            pixels = self._pixel_ranking()
            out["pixel_roc"] = roc_from(pixels)
            out["pixel_pr"] = pr_from(pixels, drop_intermediate=True)
            pro = pro_curve_from(pixels, np.concatenate(self._region_sizes), self.fpr_limit, "PRO curve")
            if pro is None:
                raise ValueError("the PRO curve needs masks with at least one anomalous and one normal pixel")
            out["pro"] = pro
        if max_points is not None:
            out = {k: _thin(v, max_points) for k, v in out.items()}
        return out


def _thin(
    curve: tuple[np.ndarray, np.ndarray, np.ndarray], max_points: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every k-th point and both ends; a PR curve's extra last point (1, 0) is kept too."""
    n = min(len(a) for a in curve)
    if n <= max_points:
        return curve
    idx = np.unique(np.linspace(0, n - 1, max(2, max_points)).round().astype(np.int64))
    a, b, c = (v[idx] if len(v) == n else np.append(v[idx], v[-1]) for v in curve)
    return a, b, c
