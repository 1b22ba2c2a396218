"""``benchmark``: train and evaluate a grid of data sets x variants x seeds; one table with the spread.

A *cell* of the grid is one training run (one data set, one variant, one seed) followed by its test
evaluation. Every cell runs in its own process (so the number of threads per run is fixed and
several runs can share a machine) and writes ``result.json`` into its run folder when it is done;
a finished cell is never run again, and an interrupted one resumes from its last checkpoint.

Output folder layout::

    benchmark.json             the grid, the machine and fgad's version (written at every start)
    runs/<data>/<variant>/seed<N>/
        config.json ...        the training run (see fgad.engine.fit)
        result.json            the cell's metrics (atomic; its presence marks the cell done)
        cell.log               the run's stdout / stderr
    results.csv                one row per finished cell
    summary.md / .csv / .json  mean +- standard deviation per (data, variant), plus the score rules
                               and best-vs-last tables, and their paired differences run by run
                               (``paired_differences``: the between-run spread cancels out)
    summary.png                every run and the mean +- std, per metric and data set
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import platform
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fgad._io import atomic_write_bytes, atomic_write_text
from fgad.engine.config import TrainConfig, get_preset

__all__ = [
    "MAIN_METRICS",
    "REFERENCE_RULE",
    "SCORE_RULES",
    "BenchmarkCell",
    "DataSpec",
    "Variant",
    "benchmark",
    "expand_grid",
    "parse_data",
    "paired_differences",
    "parse_variant",
    "summarize",
]

#: The metrics of the main table, for the weights and image score the run's config chose.
MAIN_METRICS = ("image_auroc", "pixel_auroc", "pixel_ap", "aupro")
#: Image-score rules measured from every run's anomaly maps: name -> fgad.models.image_score kwargs.
SCORE_RULES: dict[str, dict[str, Any]] = {
    "smoothed_max_k21": {"method": "smoothed_max", "kernel": 21},
    "smoothed_max_auto": {"method": "smoothed_max", "kernel": "auto"},
    "max": {"method": "max"},
    "topk_mean_1pct": {"method": "topk_mean", "topk": 0.01},
    "topk_mean_0.1pct": {"method": "topk_mean", "topk": 0.001},
}
RESULT_FILE = "result.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


# -- the grid ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataSpec:
    """One data set of the grid: a name (its folder in the output) and what ``TrainConfig`` reads."""

    name: str
    dataset: str
    root: str
    category: str


@dataclass(frozen=True)
class Variant:
    """A named set of ``TrainConfig`` overrides (applied after the preset and the common overrides)."""

    name: str
    overrides: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchmarkCell:
    """One run of the grid."""

    data: DataSpec
    variant: Variant
    seed: int
    config: TrainConfig

    @property
    def key(self) -> str:
        return f"{self.data.name}/{self.variant.name}/seed{self.seed}"


def _check_name(kind: str, name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(
            f"{kind} name {name!r} must be letters, digits and _ . + - (it names a folder), "
            "starting with a letter or digit"
        )
    return name


def parse_data(text: str) -> DataSpec:
    """A data set from its command-line form.

    ``demo`` (the bundled hazelnut photos), ``KIND:ROOT:CATEGORY`` (KIND ``mvtec`` or ``btad``; named
    after the category) or ``NAME=KIND:ROOT:CATEGORY``.

    Example:
        >>> parse_data("mvtec:/data/devset:cookie")
        DataSpec(name='cookie', dataset='mvtec', root='/data/devset', category='cookie')
        >>> parse_data("tray=mvtec:/data/devset:cookie").name
        'tray'
    """
    from fgad.engine.config import LABELLED_DATASETS

    text = text.strip()
    if text == "demo":
        from fgad.data import DEMO_CATEGORY, demo_root

        return DataSpec("demo", "mvtec", os.fspath(demo_root().parent), DEMO_CATEGORY)
    name = None
    if "=" in text.split(":", 1)[0]:
        name, text = text.split("=", 1)
    parts = text.split(":")
    if len(parts) < 3:
        raise ValueError(
            f"a data set is 'demo', 'KIND:ROOT:CATEGORY' or 'NAME=KIND:ROOT:CATEGORY' "
            f"(KIND in {LABELLED_DATASETS}), got {text!r}"
        )
    kind, category = parts[0], parts[-1]
    root = ":".join(parts[1:-1])
    if kind not in LABELLED_DATASETS:
        raise ValueError(
            f"data set kind must be one of {LABELLED_DATASETS} (a labelled test split), got {kind!r}"
        )
    if not root or not category:
        raise ValueError(f"data set {text!r} needs a root and a category")
    return DataSpec(_check_name("data set", name or category), kind, root, category)


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets, braces and quotes."""
    parts, depth, quote, current = [], 0, None, []
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _value(text: str) -> Any:
    if text.lower() in ("none", "null"):
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings -> TrainConfig overrides (VALUE as JSON when it parses, ``none`` = None).

    Example:
        >>> parse_overrides(["foreground=none", "lr=4e-4", 'model_kwargs={"base_width": 16}'])
        {'foreground': None, 'lr': 0.0004, 'model_kwargs': {'base_width': 16}}
    """
    known = set(TrainConfig.__dataclass_fields__)
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        key, value = (s.strip() for s in item.split("=", 1))
        if key not in known:
            raise ValueError(f"unknown TrainConfig field {key!r}; known fields: {sorted(known)}")
        parsed = _value(value)
        if key == "image_size" and isinstance(parsed, list):
            parsed = tuple(parsed)
        out[key] = parsed
    return out


def parse_variant(text: str) -> Variant:
    """A variant from ``name=NAME,FIELD=VALUE,...`` (comma-separated TrainConfig overrides).

    Example:
        >>> parse_variant("name=draem,model=draem_small,foreground=none")
        Variant(name='draem', overrides={'model': 'draem_small', 'foreground': None})
    """
    items = _split_top_level(text)
    if not items or not items[0].startswith("name="):
        raise ValueError(f"a variant starts with name=NAME (then FIELD=VALUE, comma-separated), got {text!r}")
    name = _check_name("variant", items[0].split("=", 1)[1].strip())
    return Variant(name, parse_overrides(items[1:]))


def expand_grid(
    data: Sequence[DataSpec],
    variants: Sequence[Variant],
    seeds: Sequence[int],
    *,
    preset: str = "cpu",
    overrides: Mapping[str, Any] | None = None,
    output: str | os.PathLike[str] = "fgad-benchmark",
) -> list[BenchmarkCell]:
    """Every cell of the grid, seeds outermost (so the first finished runs cover every variant).

    Each cell's config is ``get_preset(preset)``, then ``overrides``, then the variant's overrides,
    then the cell's data set, seed and run folder ``<output>/runs/<data>/<variant>/seed<N>``.

    Raises:
        ValueError: an empty axis, a repeated name or seed, or a config that does not validate.

    Example:
        >>> cells = expand_grid([parse_data("demo")], [Variant("a"), Variant("b", {"lr": 1e-3})], [0, 1])
        >>> [c.key for c in cells]
        ['demo/a/seed0', 'demo/b/seed0', 'demo/a/seed1', 'demo/b/seed1']
        >>> cells[1].config.lr, cells[1].config.seed
        (0.001, 0)
    """
    if not data or not variants or not seeds:
        raise ValueError("a benchmark needs at least one data set, one variant and one seed")
    for kind, names in (("data set", [d.name for d in data]), ("variant", [v.name for v in variants])):
        if len(set(names)) != len(names):
            raise ValueError(f"{kind} names must be distinct, got {names}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {list(seeds)}")
    common = dict(overrides or {})
    for reserved in ("dataset", "root", "category", "seed", "output"):
        if reserved in common or any(reserved in v.overrides for v in variants):
            raise ValueError(
                f"{reserved!r} is set by the grid (data set / seed / run folder), not by overrides"
            )
    runs = Path(output) / "runs"
    cells = []
    for seed in seeds:
        for spec in data:
            for variant in variants:
                config = get_preset(
                    preset,
                    **{**common, **dict(variant.overrides)},
                    dataset=spec.dataset,
                    root=spec.root,
                    category=spec.category,
                    seed=int(seed),
                    output=os.fspath(runs / spec.name / variant.name / f"seed{seed}"),
                )
                cells.append(BenchmarkCell(spec, variant, int(seed), config))
    return cells


# -- one cell (in its own process) ----------------------------------------------------------------------
def _test_outputs(net: Any, data: Any, batch_size: int) -> dict[str, Any]:
    """Anomaly maps, image scores (the model's own), labels and masks of a whole test split."""
    import torch
    from torch.utils.data import DataLoader

    from fgad.data import to_float

    device = next(net.parameters()).device
    maps, scores, labels, masks = [], [], [], []
    with torch.no_grad():
        for batch in DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=0):
            out = net(to_float(batch["image"], device))
            maps.append(out.anomaly_map.float().cpu())
            scores.append(out.score.float().cpu())
            labels.append(batch["label"].float())
            masks.append(batch["mask"].float())
    return {
        "maps": torch.cat(maps),
        "scores": torch.cat(scores),
        "labels": torch.cat(labels),
        "masks": torch.cat(masks),
    }


def _metrics_of(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """Main metrics (the model's own score) and the image AUROC of every score rule."""
    from fgad.metrics import Evaluator, image_auroc
    from fgad.models.detector import image_score

    evaluator = Evaluator()
    evaluator.update(outputs["scores"], outputs["labels"], outputs["maps"], outputs["masks"])
    metrics = {k: float(v) for k, v in evaluator.compute().items()}
    rules = {
        name: float(image_auroc(image_score(outputs["maps"], **kwargs), outputs["labels"]))
        for name, kwargs in SCORE_RULES.items()
    }
    return {"metrics": metrics, "score_rules": rules}


def run_cell(cell_file: str | os.PathLike[str]) -> dict[str, Any]:
    """Train (or resume) and evaluate one cell described by a JSON file; write its ``result.json``.

    The file holds ``{"config": TrainConfig dict, "data": ..., "variant": ..., "seed": ..., "threads": T}``.
    The model is evaluated on the test split with the weights the config exports (``model/``) and,
    when they differ, with the other of the best / last checkpoints, so ``final_weights`` can be
    compared without retraining.
    """
    import torch

    from fgad.engine._common import CHECKPOINT_DIR, MODEL_DIR, load_detector, make_dataset, read_run_file
    from fgad.engine.trainer import fit

    spec = json.loads(Path(cell_file).read_text())
    threads = int(spec["threads"])
    torch.set_num_threads(threads)
    config = TrainConfig.from_dict(spec["config"])
    started = time.perf_counter()
    run_dir = fit(config, resume=True, progress=False)
    train_minutes = (time.perf_counter() - started) / 60
    run = read_run_file(run_dir) or {}
    test = make_dataset(config.dataset, config.root, config.category, "test", config.image_size)
    chosen = run.get("final_weights", config.final_weights)
    weights: dict[str, Any] = {}
    for name in ("best", "last"):
        path = run_dir / CHECKPOINT_DIR / f"{name}.pt"
        if name == chosen:
            path = run_dir / MODEL_DIR
        if not path.exists():
            continue
        net = load_detector(path, config.device if config.device != "auto" else "cpu")
        weights[name] = _metrics_of(_test_outputs(net, test, config.batch_size))
    main = weights[chosen]
    result = {
        "data": spec["data"],
        "variant": spec["variant"],
        "seed": spec["seed"],
        "final_weights": chosen,
        "metrics": {k: main["metrics"][k] for k in (*MAIN_METRICS, "image_f1_max", "pixel_f1_max")},
        "score_rules": main["score_rules"],
        "weights": {k: {**v["metrics"], "score_rules": v["score_rules"]} for k, v in weights.items()},
        "train_minutes": round(train_minutes, 3),
        "minutes": round((time.perf_counter() - started) / 60, 3),
        "threads": threads,
        "config": config.to_dict(),
        "environment": _environment(),
    }
    atomic_write_text(run_dir / RESULT_FILE, json.dumps(result, indent=2) + "\n")
    return result


# -- the runner ---------------------------------------------------------------------------------------
def _environment() -> dict[str, Any]:
    import torch

    from fgad import __version__

    return {
        "fgad": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }


def _read_result(cell: BenchmarkCell) -> dict[str, Any] | None:
    path = Path(cell.config.output) / RESULT_FILE
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    saved = TrainConfig.from_dict(result["config"]).to_dict()
    wanted = cell.config.to_dict()
    # where and how often a run is saved does not change its results
    ignore = {"device", "num_workers", "checkpoint_every", "checkpoint_every_steps"}
    diff = sorted(k for k in wanted if k not in ignore and saved.get(k) != wanted[k])
    if diff:
        raise ValueError(
            f"{path} was made with another config (field(s) {diff} differ); use another --output or "
            "delete that run folder"
        )
    return result


def _launch(cell: BenchmarkCell, threads: int) -> dict[str, Any] | None:
    """Run one cell in a child process; its result, or None if it failed (see its cell.log)."""
    run_dir = Path(cell.config.output)
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "config": cell.config.to_dict(),
        "data": cell.data.name,
        "variant": cell.variant.name,
        "seed": cell.seed,
        "threads": threads,
    }
    cell_file = run_dir / "cell.json"
    atomic_write_text(cell_file, json.dumps(spec, indent=2) + "\n")
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
    with open(run_dir / "cell.log", "ab") as log:
        code = subprocess.call(
            [sys.executable, "-m", "fgad.engine._bench_cell", os.fspath(cell_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    if code != 0:
        return None
    return _read_result(cell)


def benchmark(
    data: Sequence[DataSpec | str],
    variants: Sequence[Variant | str] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    *,
    preset: str = "cpu",
    overrides: Mapping[str, Any] | None = None,
    output: str | os.PathLike[str] = "fgad-benchmark",
    jobs: int = 1,
    threads: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train and evaluate every cell of data sets x variants x seeds; write the tables and the plot.

    Args:
        data: :class:`DataSpec` or their command-line strings (:func:`parse_data`: ``"demo"``,
            ``"mvtec:ROOT:CATEGORY"``...).
        variants: :class:`Variant` or ``"name=NAME,FIELD=VALUE,..."`` strings (:func:`parse_variant`);
            default: one variant ``default`` without overrides.
        seeds: the seeds every (data set, variant) is trained with.
        preset: the starting :class:`TrainConfig` (:func:`fgad.engine.get_preset`).
        overrides: TrainConfig fields set for every cell (before the variant's).
        output: the benchmark folder (see the module docstring for its layout).
        jobs: runs at the same time (each in its own process).
        threads: torch threads per run; default ``cpu_count // jobs`` (at least 1), so the runs
            together use the machine's cores once.
        progress: print a line per started / finished cell to stderr.

    Returns:
        The summary (also written as ``summary.json``): per-run rows, and per (data set, variant)
        the mean, standard deviation (n - 1 in the denominator) and count of every metric.

    Convention:
        Resumable: a cell with a ``result.json`` is read, not rerun (its saved config must equal the
        requested one, else ValueError); a cell without one resumes its training from its last
        checkpoint. A failed cell is reported (its ``cell.log``) and left out of the tables; the
        others go on. Results are reproducible bit for bit per cell at the same thread count.
    """
    data_specs = [parse_data(d) if isinstance(d, str) else d for d in data]
    variant_list = [parse_variant(v) if isinstance(v, str) else v for v in (variants or [Variant("default")])]
    threads = _check_jobs_threads(jobs, threads)
    out = Path(output)
    cells = expand_grid(data_specs, variant_list, seeds, preset=preset, overrides=overrides, output=out)
    grid = {
        "preset": preset,
        "overrides": dict(overrides or {}),
        "data": [d.__dict__ for d in data_specs],
        "variants": [{"name": v.name, "overrides": dict(v.overrides)} for v in variant_list],
        "seeds": list(seeds),
        "jobs": jobs,
        "threads": threads,
        "environment": _environment(),
    }
    atomic_write_text(out / "benchmark.json", json.dumps(grid, indent=2, default=str) + "\n")
    say = _say if progress else _quiet
    results = {cell.key: done for cell in cells if (done := _read_result(cell)) is not None}
    todo = [cell for cell in cells if cell.key not in results]
    say(
        f"{len(cells)} cells, {len(results)} done, {len(todo)} to run "
        f"({jobs} at a time, {threads} thread(s) each)"
    )
    failed = _run_cells(cells, todo, results, out, jobs=jobs, threads=threads, say=say)
    summary = _write_tables(out, [results[c.key] for c in cells if c.key in results])
    summary["failed"] = failed
    if failed:
        say(f"{len(failed)} cell(s) failed: {failed}")
    return summary


def _check_jobs_threads(jobs: object, threads: object) -> int:
    """Validate ``jobs`` and ``threads``; the threads per run (default: the cores shared by the jobs)."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive int, got {jobs!r}")
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) // jobs)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    return threads


def _say(text: str) -> None:
    print(f"fgad benchmark: {text}", file=sys.stderr, flush=True)


def _quiet(text: str) -> None:
    del text


def _run_cells(
    cells: Sequence[BenchmarkCell],
    todo: Sequence[BenchmarkCell],
    results: dict[str, dict[str, Any]],
    out: Path,
    *,
    jobs: int,
    threads: int,
    say: Callable[[str], None],
) -> list[str]:
    """Run the ``todo`` cells ``jobs`` at a time, adding each result to ``results`` and rewriting the
    tables after each; the keys of the cells that failed (each reported, the others go on)."""
    failed: list[str] = []
    lock = threading.Lock()

    def work(cell: BenchmarkCell) -> None:
        say(f"start {cell.key}")
        try:
            result = _launch(cell, threads)
        except Exception as err:  # e.g. an unreadable result: report it, let the other cells go on
            result = None
            say(f"{cell.key}: {type(err).__name__}: {err}")
        if result is None:
            with lock:
                failed.append(cell.key)
            say(f"FAILED {cell.key} (see {Path(cell.config.output) / 'cell.log'})")
            return
        m = result["metrics"]
        say(
            f"done {cell.key} in {result['minutes']:.1f} min: "
            + ", ".join(f"{k} {m[k]:.4f}" for k in MAIN_METRICS)
        )
        with lock:
            results[cell.key] = result
            _write_tables(out, [results[c.key] for c in cells if c.key in results])

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(work, todo))
    return failed


# -- tables and the plot ------------------------------------------------------------------------------
def _mean_std(values: Sequence[float]) -> dict[str, float]:
    vals = [float(v) for v in values if not math.isnan(float(v))]
    n = len(vals)
    if n == 0:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    mean = sum(vals) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "n": n}


def summarize(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per (data set, variant): mean, std (n - 1) and n of every main metric, score rule and weights.

    Args:
        results: ``result.json`` dicts (``data``, ``variant``, ``seed``, ``metrics``, ``score_rules``,
            ``weights``).

    Example:
        >>> rows = [{"data": "d", "variant": "v", "seed": s, "metrics": {"pixel_ap": x},
        ...          "score_rules": {}, "weights": {}} for s, x in ((0, 0.5), (1, 0.7))]
        >>> cell = summarize(rows)["cells"][0]
        >>> round(cell["metrics"]["pixel_ap"]["mean"], 6), round(cell["metrics"]["pixel_ap"]["std"], 6)
        (0.6, 0.141421)
    """
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["data"], r["variant"]), []).append(r)
    cells = []
    for (data, variant), rows in groups.items():
        metric_names = list(dict.fromkeys(k for r in rows for k in r["metrics"]))
        rule_names = list(dict.fromkeys(k for r in rows for k in r.get("score_rules", {})))
        weight_names = list(dict.fromkeys(k for r in rows for k in r.get("weights", {})))
        cell: dict[str, Any] = {
            "data": data,
            "variant": variant,
            "seeds": [r["seed"] for r in rows],
            "metrics": {
                k: _mean_std([r["metrics"][k] for r in rows if k in r["metrics"]]) for k in metric_names
            },
            "score_rules": {
                k: _mean_std([r["score_rules"][k] for r in rows if k in r.get("score_rules", {})])
                for k in rule_names
            },
            "weights": {
                w: {
                    k: _mean_std([r["weights"][w][k] for r in rows if w in r.get("weights", {})])
                    for k in MAIN_METRICS
                }
                for w in weight_names
            },
        }
        cells.append(cell)
    runs = [
        {
            "data": r["data"],
            "variant": r["variant"],
            "seed": r["seed"],
            "final_weights": r.get("final_weights"),
            "minutes": r.get("minutes"),
            **r["metrics"],
            **{f"image_auroc[{k}]": v for k, v in r.get("score_rules", {}).items()},
        }
        for r in results
    ]
    return {"cells": cells, "runs": runs, "paired": paired_differences(results)}


#: The image-score rule that the paired comparison measures the others against (the detector's default).
REFERENCE_RULE = "topk_mean_0.1pct"
# Differences smaller than this count as ties (AUROCs of the same maps can agree to the last bit).
_TIE = 1e-9


def _paired(diffs: Sequence[float]) -> dict[str, float]:
    """Mean / std / n of per-run differences, and in how many runs the difference is > 0 / < 0."""
    vals = [float(d) for d in diffs if not math.isnan(float(d))]
    return {
        **_mean_std(vals),
        "wins": sum(d > _TIE for d in vals),
        "losses": sum(d < -_TIE for d in vals),
    }


def paired_differences(
    results: Sequence[Mapping[str, Any]], reference: str = REFERENCE_RULE
) -> dict[str, dict[str, Any]]:
    """Per data set, comparisons made within each run (so the spread between runs cancels out).

    A run's score rules are computed from the same anomaly maps and its best / last weights from the
    same training, so their differences are paired: a rule that is ahead by 0.01 in every run is
    ahead, even where the runs' AUROCs spread by 0.05. All variants of a data set are pooled.

    Returns:
        ``{data: {"runs": n, "reference": reference, "score_rules": {rule: stat}, "best_minus_last":
        {metric: stat}}}``, each
        stat the mean / std / n of the per-run differences (``rule - reference``, ``best - last``)
        and ``wins`` / ``losses``: the runs where the difference is positive / negative.

    Example:
        >>> runs = [{"data": "d", "variant": "v", "seed": s,
        ...          "score_rules": {"topk_mean_0.1pct": 0.80, "max": 0.80 + x}, "weights": {}}
        ...         for s, x in ((0, 0.02), (1, 0.01), (2, -0.01))]
        >>> stat = paired_differences(runs)["d"]["score_rules"]["max"]
        >>> round(stat["mean"], 6), stat["wins"], stat["losses"]
        (0.006667, 2, 1)
    """
    by_data: dict[str, list[Mapping[str, Any]]] = {}
    for r in results:
        by_data.setdefault(r["data"], []).append(r)
    out: dict[str, dict[str, Any]] = {}
    for data, rows in by_data.items():
        rules = list(dict.fromkeys(k for r in rows for k in r.get("score_rules", {}) if k != reference))
        scored = [r["score_rules"] for r in rows if reference in r.get("score_rules", {})]
        both = [r["weights"] for r in rows if {"best", "last"} <= set(r.get("weights", {}))]
        out[data] = {
            "runs": len(rows),
            "reference": reference,
            "score_rules": {k: _paired([s[k] - s[reference] for s in scored if k in s]) for k in rules},
            "best_minus_last": {m: _paired([w["best"][m] - w["last"][m] for w in both]) for m in MAIN_METRICS}
            if both
            else {},
        }
    return out


def _pm(stat: Mapping[str, float]) -> str:
    if stat["n"] == 0:
        return "-"
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """The summary as Markdown: the main table, the score-rule table and the best-vs-last table."""
    cells = summary["cells"]
    lines = [
        "| data | variant | seeds | image AUROC | pixel AUROC | pixel AP | AUPRO@0.3 |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        lines.append(
            f"| {c['data']} | {c['variant']} | {len(c['seeds'])} | "
            + " | ".join(_pm(c["metrics"][k]) if k in c["metrics"] else "-" for k in MAIN_METRICS)
            + " |"
        )
    rules = list(dict.fromkeys(k for c in cells for k in c["score_rules"]))
    if rules:
        lines += ["", "Image AUROC by image-score rule (same runs, same maps):", ""]
        lines.append("| data | variant | " + " | ".join(rules) + " |")
        lines.append("|---|---|" + "---|" * len(rules))
        for c in cells:
            lines.append(
                f"| {c['data']} | {c['variant']} | "
                + " | ".join(_pm(c["score_rules"][k]) if k in c["score_rules"] else "-" for k in rules)
                + " |"
            )
    if any(len(c["weights"]) > 1 for c in cells):
        lines += ["", "Best (validation) vs last weights (same runs):", ""]
        lines.append("| data | variant | weights | " + " | ".join(MAIN_METRICS) + " |")
        lines.append("|---|---|---|" + "---|" * len(MAIN_METRICS))
        for c in cells:
            for w, stats in c["weights"].items():
                lines.append(
                    f"| {c['data']} | {c['variant']} | {w} | "
                    + " | ".join(_pm(stats[k]) for k in MAIN_METRICS)
                    + " |"
                )
    lines += _paired_markdown(summary.get("paired", {}))
    lines += ["", "mean ± standard deviation over seeds (n - 1 in the denominator)."]
    return "\n".join(lines) + "\n"


def _signed(stat: Mapping[str, float]) -> str:
    if stat["n"] == 0:
        return "-"
    return f"{stat['mean']:+.3f} ± {stat['std']:.3f} ({stat['wins']}/{stat['losses']})"


def _paired_markdown(paired: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The paired comparisons as Markdown lines (none when there is nothing to compare)."""
    lines: list[str] = []
    rules = list(dict.fromkeys(k for p in paired.values() for k in p["score_rules"]))
    if rules:
        reference = next(iter(paired.values()))["reference"]
        lines += [
            "",
            f"Image AUROC of each score rule minus `{reference}`, run by run (all variants of a data "
            "set pooled; in parentheses: runs ahead / behind):",
            "",
            "| data | runs | " + " | ".join(rules) + " |",
            "|---|---|" + "---|" * len(rules),
        ]
        for data, p in paired.items():
            lines.append(
                f"| {data} | {p['runs']} | "
                + " | ".join(_signed(p["score_rules"][k]) if k in p["score_rules"] else "-" for k in rules)
                + " |"
            )
    if any(p["best_minus_last"] for p in paired.values()):
        lines += [
            "",
            "Best (validation) minus last weights, run by run (in parentheses: runs ahead / behind):",
            "",
            "| data | runs | " + " | ".join(MAIN_METRICS) + " |",
            "|---|---|" + "---|" * len(MAIN_METRICS),
        ]
        for data, p in paired.items():
            if p["best_minus_last"]:
                lines.append(
                    f"| {data} | {p['best_minus_last']['pixel_ap']['n']} | "
                    + " | ".join(_signed(p["best_minus_last"][m]) for m in MAIN_METRICS)
                    + " |"
                )
    return lines


def _csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def _write_tables(out: Path, results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    summary = summarize(results)
    atomic_write_text(out / "results.csv", _csv_text(summary["runs"]))
    flat = []
    for c in summary["cells"]:
        row: dict[str, Any] = {"data": c["data"], "variant": c["variant"], "n": len(c["seeds"])}
        for group in ("metrics", "score_rules"):
            for k, stat in c[group].items():
                label = k if group == "metrics" else f"image_auroc[{k}]"
                row[f"{label}_mean"], row[f"{label}_std"] = stat["mean"], stat["std"]
        flat.append(row)
    atomic_write_text(out / "summary.csv", _csv_text(flat))
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(out / "summary.md", summary_markdown(summary))
    if results:
        with contextlib.suppress(ImportError):
            atomic_write_bytes(out / "summary.png", _plot(summary))
    return summary


def _plot(summary: Mapping[str, Any]) -> bytes:
    """Per data set (rows) and main metric (columns): every run as a dot, the mean +- std as a bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(c["data"] for c in summary["cells"]))
    variants = list(dict.fromkeys(c["variant"] for c in summary["cells"]))
    fig, axes = plt.subplots(
        len(datasets),
        len(MAIN_METRICS),
        figsize=(3.6 * len(MAIN_METRICS), 0.6 + 2.8 * len(datasets)),
        squeeze=False,
    )
    for i, data in enumerate(datasets):
        for j, metric in enumerate(MAIN_METRICS):
            ax = axes[i][j]
            for x, variant in enumerate(variants):
                runs = [r for r in summary["runs"] if r["data"] == data and r["variant"] == variant]
                values = [r[metric] for r in runs if metric in r and not math.isnan(r[metric])]
                if not values:
                    continue
                stat = _mean_std(values)
                ax.errorbar(x, stat["mean"], yerr=stat["std"], fmt="s", color="black", capsize=4, zorder=3)
                offsets = [(k - (len(values) - 1) / 2) * 0.08 for k in range(len(values))]
                ax.scatter([x + o for o in offsets], values, s=18, alpha=0.7, zorder=2)
            ax.set_xlim(-0.5, len(variants) - 0.5)  # one variant must not stretch its seed jitter
            ax.set_xticks(range(len(variants)), variants, rotation=30, ha="right", fontsize=8)
            ax.set_title(f"{data}: {metric}", fontsize=10)
            ax.grid(axis="y", alpha=0.3)
    fig.suptitle("runs (dots) and mean ± std (black) per variant", fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
