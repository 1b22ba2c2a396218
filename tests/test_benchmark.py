"""``fgad benchmark``: grid expansion, resume, mean / std; the image-score rules of the detector."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from fgad.engine.benchmarking import (
    REFERENCE_RULE,
    RESULT_FILE,
    DataSpec,
    Variant,
    benchmark,
    expand_grid,
    paired_differences,
    parse_data,
    parse_overrides,
    parse_variant,
    summarize,
    summary_markdown,
)
from fgad.models import create_model
from fgad.models.detector import DEFAULT_SCORE, AnomalyDetector, image_score, smoothing_kernel_for


# -- the grid -----------------------------------------------------------------------------------------
def test_parse_variant_and_data() -> None:
    v = parse_variant(
        'name=small,model=draem_small,foreground=none,model_kwargs={"ae_width": 8, "seg_width": 4}'
    )
    assert v.name == "small"
    assert v.overrides == {
        "model": "draem_small",
        "foreground": None,
        "model_kwargs": {"ae_width": 8, "seg_width": 4},
    }
    assert parse_variant("name=x").overrides == {}
    with pytest.raises(ValueError, match="name="):
        parse_variant("foreground=none")
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        parse_variant("name=x,lrr=3")
    with pytest.raises(ValueError, match="folder"):
        parse_variant("name=a/b")
    assert parse_data("btad:/data/btad:01") == DataSpec("01", "btad", "/data/btad", "01")
    assert parse_data("b=mvtec:C:/data:bottle").root == "C:/data"  # a root with a colon
    with pytest.raises(ValueError, match="labelled test split"):
        parse_data("folder:/x:y")
    assert parse_overrides(["image_size=[64, 96]"]) == {"image_size": (64, 96)}


def test_grid_expands_as_documented(tmp_path: Path) -> None:
    data = [DataSpec("a", "mvtec", "/r", "a"), DataSpec("b", "btad", "/s", "01")]
    variants = [Variant("v1"), Variant("v2", {"foreground": None, "lr": 1e-3})]
    cells = expand_grid(data, variants, [3, 5], preset="cpu", overrides={"max_steps": 7}, output=tmp_path)
    assert len(cells) == 8
    assert [c.key for c in cells[:4]] == ["a/v1/seed3", "a/v2/seed3", "b/v1/seed3", "b/v2/seed3"]
    c = cells[3]
    assert (c.config.dataset, c.config.root, c.config.category, c.config.seed) == ("btad", "/s", "01", 3)
    assert c.config.foreground is None and c.config.lr == 1e-3 and c.config.max_steps == 7
    assert c.config.image_size == 128  # the preset's
    assert Path(c.config.output) == tmp_path / "runs" / "b" / "v2" / "seed3"
    assert cells[0].config.foreground == "auto"
    with pytest.raises(ValueError, match="distinct"):
        expand_grid(data, [Variant("v"), Variant("v")], [0])
    with pytest.raises(ValueError, match="seed"):
        expand_grid(data, [Variant("v", {"seed": 1})], [0])


def _fake_result(data: str, variant: str, seed: int, value: float) -> dict:
    metrics = {"image_auroc": value, "pixel_auroc": value, "pixel_ap": value / 2, "aupro": value}
    return {
        "data": data,
        "variant": variant,
        "seed": seed,
        "metrics": metrics,
        "score_rules": {"max": value, REFERENCE_RULE: 1 - value},
        "weights": {"best": metrics, "last": {k: v / 2 for k, v in metrics.items()}},
    }


def test_mean_and_std_on_a_fake_grid() -> None:
    values = {0: 0.5, 1: 0.7, 2: 0.95}
    results = [_fake_result("d", "v", s, x) for s, x in values.items()] + [_fake_result("d", "w", 0, 0.4)]
    summary = summarize(results)
    cell = next(c for c in summary["cells"] if c["variant"] == "v")
    stat = cell["metrics"]["pixel_ap"]
    halves = [x / 2 for x in values.values()]
    assert math.isclose(stat["mean"], statistics.mean(halves)) and math.isclose(
        stat["std"], statistics.stdev(halves)
    )
    assert stat["n"] == 3
    assert math.isclose(
        cell["score_rules"][REFERENCE_RULE]["mean"], statistics.mean(1 - x for x in values.values())
    )
    assert math.isclose(cell["weights"]["last"]["aupro"]["mean"], statistics.mean(values.values()) / 2)
    single = next(c for c in summary["cells"] if c["variant"] == "w")
    assert single["metrics"]["aupro"]["std"] == 0.0 and single["metrics"]["aupro"]["n"] == 1
    text = summary_markdown(summary)
    assert (
        f"| d | v | 3 | {statistics.mean(values.values()):.3f} ± {statistics.stdev(values.values()):.3f}"
        in text
    )
    assert len(summary["runs"]) == 4


def test_paired_differences_are_taken_run_by_run() -> None:
    # max - REFERENCE_RULE = 2x - 1 per run; best - last = metric / 2 per run; variants pooled
    values = {("v", 0): 0.5, ("v", 1): 0.7, ("v", 2): 0.95, ("w", 0): 0.4}
    results = [_fake_result("d", v, s, x) for (v, s), x in values.items()]
    results.append(_fake_result("e", "v", 0, 0.6))
    paired = paired_differences(results)
    assert set(paired) == {"d", "e"} and paired["d"]["runs"] == 4
    diffs = [2 * x - 1 for x in values.values()]
    stat = paired["d"]["score_rules"]["max"]
    assert math.isclose(stat["mean"], statistics.mean(diffs)) and math.isclose(
        stat["std"], statistics.stdev(diffs)
    )
    assert (stat["wins"], stat["losses"], stat["n"]) == (2, 1, 4)  # 0.5 is a tie
    assert REFERENCE_RULE not in paired["d"]["score_rules"]
    gap = paired["d"]["best_minus_last"]["pixel_ap"]
    assert math.isclose(gap["mean"], statistics.mean(x / 4 for x in values.values()))
    assert (gap["wins"], gap["losses"]) == (4, 0)
    # the spread between runs cancels: a rule ahead by 0.01 in every run is ahead in every run
    shifted = [
        {**r, "score_rules": {REFERENCE_RULE: x, "max": x + 0.01}}
        for r, x in zip(results, (0.6, 0.9, 0.7, 0.95, 0.8), strict=True)
    ]
    stat = paired_differences(shifted)["d"]["score_rules"]["max"]
    assert math.isclose(stat["mean"], 0.01) and stat["std"] < 1e-12 and stat["wins"] == 4
    text = summary_markdown(summarize(results))
    assert f"minus `{REFERENCE_RULE}`" in text and "| e | 1 |" in text
    # a run without both weights or without the reference rule is left out of that comparison
    lone = [{**results[0], "weights": {"best": results[0]["metrics"]}, "score_rules": {"max": 0.5}}]
    alone = paired_differences(lone)["d"]
    assert alone["best_minus_last"] == {} and alone["score_rules"]["max"]["n"] == 0


def test_benchmark_runs_resumes_and_skips_finished_cells(tmp_path: Path) -> None:
    tiny = {
        "max_steps": 2,
        "image_size": 32,
        "batch_size": 4,
        "val_copies": 1,
        "model": "fgad",
        "model_kwargs": {"ae_width": 4, "seg_width": 4},
        "num_workers": 0,
        "val_fraction": 0.2,
    }
    data = [parse_data("demo")]
    variants = ["name=auto", "name=none,foreground=none"]
    out = tmp_path / "bench"
    summary = benchmark(data, variants, [0], overrides=tiny, output=out, jobs=2, threads=1, progress=False)
    assert summary["failed"] == []
    assert {(c["variant"], len(c["seeds"])) for c in summary["cells"]} == {("auto", 1), ("none", 1)}
    result_file = out / "runs" / "demo" / "none" / "seed0" / RESULT_FILE
    result = json.loads(result_file.read_text())
    assert result["config"]["foreground"] is None and set(result["score_rules"]) >= {
        "max",
        "smoothed_max_k21",
    }
    assert set(result["weights"]) <= {"best", "last"} and result["final_weights"] in result["weights"]
    for name in ("summary.md", "summary.csv", "summary.json", "results.csv", "summary.png", "benchmark.json"):
        assert (out / name).is_file()
    # A rerun skips both cells: the results are read back, nothing is retrained.
    stamp = result_file.stat().st_mtime_ns
    again = benchmark(data, variants, [0], overrides=tiny, output=out, jobs=1, threads=1, progress=False)
    assert result_file.stat().st_mtime_ns == stamp and again["runs"] == summary["runs"]
    # Another config for the same folder is refused, not silently mixed in.
    with pytest.raises(ValueError, match="another config"):
        benchmark(data, variants, [0], overrides={**tiny, "lr": 0.5}, output=out, progress=False)


# -- image scores --------------------------------------------------------------------------------------
def test_auto_kernel_scales_with_the_image() -> None:
    assert smoothing_kernel_for(256, 256) == 21
    assert smoothing_kernel_for(128, 128) == 11
    assert smoothing_kernel_for(256, 512) == 21  # the shorter side
    assert all(smoothing_kernel_for(s, s) % 2 == 1 for s in range(1, 600))
    assert smoothing_kernel_for(8, 8) == 1


def test_fixed_kernel_reproduces_draem_scores_bit_for_bit() -> None:
    torch.manual_seed(0)
    fixed = create_model("fgad_small", base_width=8, smoothing_kernel=21, score_method="smoothed_max").eval()
    images = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        out = fixed(images)
    reference = F.avg_pool2d(out.anomaly_map, 21, stride=1, padding=10, count_include_pad=False).amax(
        dim=(1, 2, 3)
    )
    assert torch.equal(out.score, reference)
    assert torch.equal(image_score(out.anomaly_map, "smoothed_max", kernel=21), reference)
    auto = create_model("fgad_small", base_width=8, score_method="smoothed_max").eval()
    auto.load_state_dict(fixed.state_dict())
    with torch.no_grad():
        scored = auto(images)
    k = smoothing_kernel_for(64, 64)
    expected = F.avg_pool2d(scored.anomaly_map, k, stride=1, padding=k // 2, count_include_pad=False)
    assert auto.smoothing_kernel == "auto" and torch.equal(scored.score, expected.amax(dim=(1, 2, 3)))


def test_score_methods() -> None:
    amap = torch.rand(2, 1, 40, 40)
    flat = amap.flatten(1)
    k = round(0.01 * 1600)
    expected = flat.sort(dim=1, descending=True).values[:, :k].mean(dim=1)
    assert torch.allclose(image_score(amap, "topk_mean", topk=0.01), expected)
    assert torch.equal(image_score(amap, "max"), flat.amax(dim=1))
    model = AnomalyDetector(base_width=4, score_method="topk_mean", score_topk=0.05).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 32, 32))
    assert torch.allclose(out.score, image_score(out.anomaly_map, "topk_mean", topk=0.05))
    assert model.config["kwargs"]["score_method"] == "topk_mean"
    # the default: the mean of the top 0.1% (at least one pixel), recorded in the config
    default = AnomalyDetector(base_width=4).eval()
    assert default.config["kwargs"] | DEFAULT_SCORE == default.config["kwargs"]
    assert DEFAULT_SCORE == {"score_method": "topk_mean", "score_topk": 0.001}
    with torch.no_grad():
        out = default(torch.rand(2, 3, 64, 64))
    top = out.anomaly_map.flatten(1).sort(dim=1, descending=True).values[:, :4]  # 0.1% of 4096 -> 4
    assert torch.allclose(out.score, top.mean(dim=1))
    assert torch.equal(image_score(out.anomaly_map), out.score)
    with pytest.raises(ValueError, match="score_method"):
        AnomalyDetector(base_width=4, score_method="mean")
    with pytest.raises(ValueError, match="topk"):
        image_score(amap, "topk_mean", topk=0.0)
    with pytest.raises(ValueError, match="smoothing_kernel"):
        image_score(amap, "smoothed_max", kernel=4)
