"""The ``fgad`` command: ``train``, ``evaluate``, ``predict``, ``demo``, ``models``, ``synth``.

The command only parses arguments and calls :mod:`fgad.engine`; every option of ``fgad train`` is a
:class:`fgad.engine.TrainConfig` field (its help text is that field's documentation). Run
``fgad <command> --help`` for the options of a command. Distributed training::

    torchrun --nproc_per_node 4 -m fgad.cli train --preset paper --root /data/mvtec --category bottle
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "config_from_args", "main"]

DEMO_OUTPUT = "fgad-demo"


# -- TrainConfig options --------------------------------------------------------------------------
def _field_help() -> dict[str, str]:
    """Each TrainConfig field's description, read from the class docstring's Args block."""
    from fgad.engine import TrainConfig

    doc = inspect.getdoc(TrainConfig) or ""
    block = doc.split("Args:", 1)[1].split("\n\n", 1)[0] if "Args:" in doc else ""
    helps: dict[str, str] = {}
    current = None
    for line in block.splitlines():
        m = re.match(r"^    (\w+): (.*)$", line)
        if m:
            current = m.group(1)
            helps[current] = m.group(2).strip()
        elif current is not None and line.strip():
            helps[current] += " " + line.strip()
    return {k: v.replace("``", "").replace("%", "%%") for k, v in helps.items()}


def _image_size(text: str) -> int | tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX,]\s*(\d+))?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"expected SIZE or HxW (e.g. 256 or 224x320), got {text!r}")
    return int(m.group(1)) if m.group(2) is None else (int(m.group(1)), int(m.group(2)))


def _optional_int(text: str) -> int | None:
    if text.lower() in ("none", ""):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'none', got {text!r}") from None


def _optional_str(text: str) -> str | None:
    return None if text.lower() in ("none", "") else text


def _foreground_names() -> list[str]:
    """The foreground modes as typed on the command line: auto, otsu, none."""
    from fgad.engine.config import FOREGROUND_MODES

    return [mode or "none" for mode in FOREGROUND_MODES]


def _foreground_metavar() -> str:
    return "{" + ",".join(_foreground_names()) + "}"


def _foreground(text: str) -> str | None:
    from fgad.engine.config import FOREGROUND_MODES

    value = _optional_str(text)
    if value not in FOREGROUND_MODES:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(_foreground_names())}; got {text!r}")
    return value


def _device(text: str) -> str:
    """'auto' or a device string torch can parse ('cpu', 'cuda', 'cuda:1'...); whether the device
    exists is checked when the command runs."""
    if text != "auto":
        import torch

        try:
            torch.device(text)
        except (RuntimeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {text!r}") from None
    return text


def _fractions(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated fractions like 0.8,0.9, got {text!r}"
        ) from None


def _key_value(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. base_width=32), got {text!r}")
    key, value = text.split("=", 1)
    try:
        parsed: Any = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.strip(), parsed


_SPECIAL_TYPES: dict[str, Any] = {
    "image_size": _image_size,
    "max_steps": _optional_int,
    "val_every": _optional_int,
    "checkpoint_every_steps": _optional_int,
    "category": _optional_str,
    "foreground": _foreground,
    "textures": _optional_str,
    "device": _device,
    "lr_milestones": _fractions,
}
#: Dict-valued TrainConfig fields given as repeatable KEY=VALUE options: option, what, help example.
_KWARG_OPTIONS = {
    "model_kwargs": ("--model-arg", "model", "ae_width=32, attention=null"),
    "synthesizer_kwargs": ("--synthesizer-arg", "synthesizer", 'synthesizers=\'{"fgad": 0.5, "nsa": 0.5}\''),
}
_METAVARS = {"image_size": "SIZE|HxW", "lr_milestones": "F1,F2", "device": "{auto,cpu,cuda,cuda:N}"}


def _add_config_options(parser: argparse.ArgumentParser, only: Sequence[str] | None = None) -> None:
    """One ``--field-name`` option per TrainConfig field (default: keep the preset's value)."""
    from fgad.augment import list_synthesizers
    from fgad.engine import TrainConfig
    from fgad.engine.config import DATASET_KINDS, FINAL_WEIGHTS, INIT_SCHEMES
    from fgad.models import list_models

    choices = {
        "dataset": DATASET_KINDS,
        "final_weights": FINAL_WEIGHTS,
        "init": INIT_SCHEMES,
        "synthesizer": list_synthesizers(),
    }
    helps = _field_help()
    # The model name is checked once the config is resolved (it may come from --config), so an
    # unknown one is a command error (status 1) rather than an argparse choice; the help lists them.
    helps["model"] = f"{helps.get('model', 'model')} One of: {', '.join(list_models())} ('fgad models')."
    metavars = {**_METAVARS, "foreground": _foreground_metavar()}
    group = parser.add_argument_group(
        "training configuration (TrainConfig fields; each overrides the preset / --config value)"
    )
    for f in dataclasses.fields(TrainConfig):
        if only is not None and f.name not in only:
            continue
        flag = "--" + f.name.replace("_", "-")
        text = helps.get(f.name, f.name)
        if f.name in _KWARG_OPTIONS:
            option, what, example = _KWARG_OPTIONS[f.name]
            group.add_argument(
                option,
                dest=f.name,
                action="append",
                type=_key_value,
                metavar="KEY=VALUE",
                default=argparse.SUPPRESS,
                help=f"{what} keyword argument (repeatable; VALUE parsed as JSON when it can be, e.g. "
                f"{example}): " + text,
            )
        elif f.type in ("bool", bool):
            group.add_argument(
                flag, dest=f.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=text
            )
        else:
            kind = _SPECIAL_TYPES.get(f.name)
            if kind is None:
                kind = {"int": int, "float": float}.get(str(f.type), str)
            group.add_argument(
                flag,
                dest=f.name,
                type=kind,
                default=argparse.SUPPRESS,
                metavar=metavars.get(f.name),
                choices=choices.get(f.name),
                help=text,
            )


def config_from_args(args: argparse.Namespace, base: Any = None) -> Any:
    """A TrainConfig: ``--config`` file (or ``base`` / the ``--preset``), then every given option.

    Raises:
        ValueError: the config file or an option does not make a valid TrainConfig (a field of the
            wrong type or value, an unknown field or preset), or names an unregistered model.
    """
    from fgad.engine import TrainConfig, get_preset
    from fgad.models import is_model, list_models

    if getattr(args, "config", None):
        config = _user_config(TrainConfig.from_json, args.config)
    elif base is not None:
        config = base
    else:
        config = _user_config(get_preset, getattr(args, "preset", None) or "paper")
    config = _user_config(config.replace, **_given_fields(args, config))
    if not is_model(config.model):
        raise ValueError(f"unknown model {config.model!r}; registered models: {list_models()}")
    return config


def _user_config(build: Any, *args: Any, **kwargs: Any) -> Any:
    """``build(*args, **kwargs)``, a TrainConfig constructor fed the user's file or options.

    TrainConfig validation raises TypeError for a field of the wrong type (and a comparison with
    such a value raises TypeError too), get_preset KeyError for an unknown name: here both are the
    user's input, so they become the ValueError the command reports.
    """
    try:
        return build(*args, **kwargs)
    except (TypeError, KeyError) as err:
        raise ValueError(err.args[0] if err.args else str(err)) from err


def _given_fields(args: argparse.Namespace, config: Any) -> dict[str, Any]:
    """The TrainConfig fields given as options; the kwargs options add to the config's dicts."""
    from fgad.engine import TrainConfig

    changes: dict[str, Any] = {}
    for f in dataclasses.fields(TrainConfig):
        # Options default to SUPPRESS: an attribute exists only when the option was given.
        if not hasattr(args, f.name):
            continue
        value = getattr(args, f.name)
        if f.name == "model_kwargs":
            value = {**config.model_kwargs, **dict(value or [])}
        if f.name == "synthesizer_kwargs":
            value = {**config.synthesizer_kwargs, **dict(value or [])}
        changes[f.name] = value
    return changes


_BOOL = argparse.BooleanOptionalAction


# -- parser -----------------------------------------------------------------------------------------
class _Formatter(argparse.RawDescriptionHelpFormatter):
    """States an option's default once: appended only when the help does not already say it, and
    never for options without a meaningful value (None, an empty list, flags that only switch
    something off)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text.lower()
            or default is None
            or default is argparse.SUPPRESS
            or (isinstance(default, list | tuple) and not default)
            or isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction)
            or not action.option_strings
        ):
            return text
        return text + " (default: %(default)s)"


_DEVICE_METAVAR = "{auto,cpu,cuda,cuda:N}"
_SIZE_METAVAR = "SIZE|HxW"


def build_parser() -> argparse.ArgumentParser:
    """The ``fgad`` argument parser (sub-commands train, evaluate, predict, demo, benchmark,
    foreground, models, synth)."""
    from fgad import __version__

    parser = argparse.ArgumentParser(
        prog="fgad",
        description="Self-supervised industrial anomaly detection (DRAEM + ECA + Otsu foreground-enhanced "
        "anomaly synthesis). Run 'fgad <command> --help' for a command's options.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"fgad {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # Parent parsers share their option objects between commands, so a shared option has one help
    # text and one default everywhere; options whose default differs per command (--output,
    # --preset, --overlays) are added by each command.
    progress, inference, images = _progress_options(), _inference_options(), _image_folder_options()
    _add_train(sub, progress)
    _add_evaluate(sub, inference, progress)
    _add_predict(sub, inference, progress)
    _add_demo(sub, progress)
    _add_benchmark(sub)
    _add_foreground(sub, images)
    _add_models(sub)
    _add_synth(sub, images)
    return parser


def _command(
    sub: Any, name: str, *, parents: Sequence[argparse.ArgumentParser] = (), **kwargs: Any
) -> argparse.ArgumentParser:
    return sub.add_parser(name, parents=list(parents), formatter_class=_Formatter, **kwargs)


def _progress_options() -> argparse.ArgumentParser:
    """``--no-progress`` (train, evaluate, predict, demo)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar / summary")
    return p


def _inference_options() -> argparse.ArgumentParser:
    """The model and how to run it (evaluate, predict)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("model", help="run directory, save_pretrained folder or training checkpoint .pt")
    p.add_argument(
        "--image-size", type=_image_size, metavar=_SIZE_METAVAR, help="input size (default: the run's)"
    )
    p.add_argument("--batch-size", type=int, default=8, help="images per forward pass")
    p.add_argument(
        "--device", type=_device, default="auto", metavar=_DEVICE_METAVAR,
        help="where the model runs ('auto': CUDA when available, else the CPU)",
    )  # fmt: skip
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader decoding workers")
    p.add_argument("--amp", action=_BOOL, default=True, help="bfloat16 autocast on CUDA")
    return p


def _image_folder_options() -> argparse.ArgumentParser:
    """A folder of images to draw a PNG grid of (foreground, synth)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--input", required=True, help="folder of images (read recursively)")
    p.add_argument(
        "--image-size", type=_image_size, default=256, metavar=_SIZE_METAVAR,
        help="images are resized to this",
    )  # fmt: skip
    p.add_argument(
        "--device", type=_device, default="cpu", metavar=_DEVICE_METAVAR,
        help="where the images are processed",
    )  # fmt: skip
    return p


def _add_preset(p: argparse.ArgumentParser, default: str, text: str) -> None:
    from fgad.engine import list_presets

    p.add_argument("--preset", choices=list_presets(), default=default, help=text)


def _add_train(sub: Any, progress: argparse.ArgumentParser) -> None:
    p = _command(
        sub,
        "train",
        parents=[progress],
        help="train a detector on good images (single process, or DDP under torchrun)",
        description="Train a detector. Start from a preset (or a JSON config), override any field with "
        "its option. Writes OUTPUT/config.json, log.csv, checkpoints/{last,best}.pt and the final model/. "
        "Under 'torchrun --nproc_per_node N -m fgad.cli train ...' it runs DistributedDataParallel "
        "(NCCL on GPUs, gloo on CPUs); --batch-size is per process.",
    )
    _add_preset(
        p,
        "paper",
        "starting configuration: 'paper' (the paper's recipe), 'cpu' (small CPU budget), "
        "'draem_reference' (the DRAEM reference budget: 128px, widths 32/16, batch 8, 600 steps)",
    )
    p.add_argument(
        "--config", metavar="JSON", help="a TrainConfig JSON file (or a run's config.json); replaces --preset"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUTPUT/checkpoints/last.pt (model, optimizer, scheduler, epoch, step, random "
        "states); without options the run's saved config.json is used",
    )
    p.add_argument("--overwrite", action="store_true", help="start again even if OUTPUT holds a checkpoint")
    p.add_argument(
        "--print-config", action="store_true", help="print the resolved, checked config as JSON and exit"
    )
    _add_config_options(p)


def _add_evaluate(sub: Any, inference: argparse.ArgumentParser, progress: argparse.ArgumentParser) -> None:
    from fgad.engine.config import LABELLED_DATASETS

    p = _command(
        sub,
        "evaluate",
        parents=[inference, progress],
        help="metrics + report on a test split",
        description="Evaluate a trained detector on the test split: image AUROC, pixel AUROC, pixel AP, "
        "AUPRO (FPR <= 0.3), F1-max per category, written as metrics.json and metrics.md, with overlay "
        "PNGs (image | reconstruction | heatmap | ground truth) and ROC / PR curves.",
    )
    p.add_argument("--dataset", choices=LABELLED_DATASETS, help="data set layout (default: the run's)")
    p.add_argument("--root", help="data set root (default: the run's)")
    p.add_argument("--category", nargs="+", dest="categories", help="categories (default: the run's)")
    p.add_argument("--output", help="report folder (default: RUN/eval)")
    p.add_argument(
        "--overlays", type=_optional_int, default=16, help="overlay PNGs per category ('none' = all)"
    )


def _add_predict(sub: Any, inference: argparse.ArgumentParser, progress: argparse.ArgumentParser) -> None:
    p = _command(
        sub,
        "predict",
        parents=[inference, progress],
        help="anomaly maps, scores and decisions for new images",
        description="Score images (files and/or folders, read recursively). Writes OUTPUT/scores.csv "
        "(path, score, score_raw, threshold, anomalous), OUTPUT/maps/<name>.npy (float32 anomaly maps) "
        "and OUTPUT/overlays/<name>.png. The default threshold is the run's calibrated one: the "
        "threshold_quantile (default: max) of the image scores of the good training images held back "
        "for validation; it is never computed from the predicted images. A save_pretrained folder or a "
        ".pt checkpoint outside a run holds no threshold: without --threshold, scores.csv leaves the "
        "threshold and anomalous columns empty.",
    )
    p.add_argument("inputs", nargs="+", help="image files or folders")
    p.add_argument("--output", default="fgad-predict", help="output folder")
    p.add_argument(
        "--threshold", type=float, help="image-score threshold (default: the run's calibrated one)"
    )
    p.add_argument("--maps", action=_BOOL, default=True, help="write .npy anomaly maps")
    p.add_argument("--overlays", action=_BOOL, default=True, help="write overlay PNGs")


#: The TrainConfig fields ``fgad demo`` takes as options (the data set and run folder are the demo's).
_DEMO_FIELDS = (
    "image_size", "model", "model_kwargs", "init", "batch_size", "lr", "epochs", "max_steps",
    "foreground", "cache_foreground", "anomaly_prob", "synthesizer", "synthesizer_kwargs", "textures",
    "val_fraction", "seed", "device",
    "num_workers", "amp",
    "checkpoint_every", "checkpoint_every_steps", "final_weights",
)  # fmt: skip


def _add_demo(sub: Any, progress: argparse.ArgumentParser) -> None:
    p = _command(
        sub,
        "demo",
        parents=[progress],
        help="train + evaluate on the bundled hazelnut photos",
        description="Train on the bundled hazelnut photos (28 good training images, CC-BY-4.0, see "
        "fgad/data/demo/hazelnut_toy/SOURCE.md) with the 'cpu' preset, then evaluate on their 23 test "
        "images. OUTPUT holds the run; OUTPUT/report the metrics, overlays and curves. Any training "
        "option below overrides the preset (e.g. --max-steps 20 --image-size 64 for a quick check).",
    )
    p.add_argument("--output", default=DEMO_OUTPUT, help="run + report folder (replaced unless --resume)")
    _add_preset(p, "cpu", "starting configuration")
    p.add_argument("--resume", action="store_true", help="continue an interrupted demo run")
    p.add_argument(
        "--overlays", type=_optional_int, default=None, help="overlay PNGs ('none' = all test images)"
    )
    _add_config_options(p, only=_DEMO_FIELDS)


def _add_benchmark(sub: Any) -> None:
    from fgad.engine.config import LABELLED_DATASETS

    p = _command(
        sub,
        "benchmark",
        help="train + evaluate a grid of data sets x variants x seeds; mean +- std tables",
        description="Train and evaluate every (data set, variant, seed) cell, each run in its own "
        "process, JOBS at a time, and write OUTPUT/summary.md / .csv / .json (mean +- std per data set "
        "and variant, the image AUROC of every image-score rule, best vs last weights), results.csv "
        "(one row per run) and summary.png. Rerunning skips finished cells and resumes interrupted ones.",
        epilog="example: fgad benchmark --data demo --data mvtec:/data/devset:cookie "
        "--variant name=fgad --variant name=noforeground,foreground=none "
        "--variant name=draem,model=draem_small,foreground=none --seeds 0 1 2 --jobs 2",
    )
    p.add_argument(
        "--data", action="append", required=True, metavar="SPEC",
        help="a data set (repeatable): 'demo' (bundled photos), KIND:ROOT:CATEGORY or "
        "NAME=KIND:ROOT:CATEGORY, KIND in " + ", ".join(LABELLED_DATASETS),
    )  # fmt: skip
    p.add_argument(
        "--variant", action="append", metavar="name=NAME,FIELD=VALUE,...",
        help="a variant (repeatable): a name and TrainConfig overrides, comma-separated; VALUE is JSON "
        "when it parses, 'none' is None (default: one variant 'default' with the preset as it is)",
    )  # fmt: skip
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    _add_preset(p, "cpu", "starting configuration")
    p.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", dest="overrides",
        help="a TrainConfig override for every cell (repeatable), e.g. --set max_steps=200",
    )  # fmt: skip
    p.add_argument("--output", default="fgad-benchmark", help="benchmark folder")
    p.add_argument("--jobs", type=int, default=1, help="runs at the same time")
    p.add_argument("--threads", type=int, help="torch threads per run (default: CPU count // JOBS)")
    p.add_argument("--dry-run", action="store_true", help="list the cells and exit")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no per-run lines")


def _add_foreground(sub: Any, images: argparse.ArgumentParser) -> None:
    p = _command(
        sub,
        "foreground",
        parents=[images],
        help="PNG grid of the foreground (where anomalies go) of a folder of images",
        description="Write a PNG grid, one row per image: the image, then its foreground by each method "
        "(background dimmed; 'auto' tiles name the cue that found the object, or 'whole frame' for a "
        "texture). Check it on your own photos before training.",
    )
    p.add_argument("--output", default="foreground.png", help="PNG file to write")
    methods = [m for m in _foreground_names() if m != "none"]
    p.add_argument(
        "--method", action="append", choices=methods, dest="methods",
        help=f"foreground method, one column each (repeatable; default: {' and '.join(methods)})",
    )  # fmt: skip
    p.add_argument("--count", type=int, default=8, help="rows, spread evenly over the sorted images")


def _add_models(sub: Any) -> None:
    p = _command(sub, "models", help="list registered models", description="List the model registry.")
    p.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'fgad*'")


def _add_synth(sub: Any, images: argparse.ArgumentParser) -> None:
    from fgad.augment import list_synthesizers

    p = _command(
        sub,
        "synth",
        parents=[images],
        help="PNG grid of synthetic anomalies for a folder of images",
        description=(
            "Write a PNG grid, one row per image: "
            "clean image | foreground | anomaly mask | synthetic anomaly."
        ),
    )
    p.add_argument("--output", default="synthetic_anomalies.png", help="PNG file to write")
    p.add_argument("--count", type=int, default=8, help="rows (the first COUNT images, sorted)")
    p.add_argument(
        "--foreground", type=_foreground, default="auto", metavar=_foreground_metavar(),
        help="'auto' (colour / contrast cues), 'otsu' (the paper's grey-level Otsu) or 'none' (anywhere)",
    )  # fmt: skip
    p.add_argument("--textures", help="texture folder (default: built-in procedural textures)")
    p.add_argument(
        "--synthesizer", default="fgad", choices=list_synthesizers(),
        help="synthetic-anomaly method (nsa takes its patches from the folder's other images)",
    )  # fmt: skip
    p.add_argument(
        "--synthesizer-arg", dest="synthesizer_kwargs", action="append", type=_key_value, default=[],
        metavar="KEY=VALUE", help="synthesizer keyword argument (repeatable; VALUE parsed as JSON)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="synthesis seed")


# -- commands ---------------------------------------------------------------------------------------
def _cmd_train(args: argparse.Namespace) -> int:
    from fgad.engine import TrainConfig, fit

    base = None
    if args.resume and not args.config and args.output:
        run_file = Path(args.output) / "config.json"
        if run_file.is_file():
            base = _user_config(TrainConfig.from_json, run_file)
    config = config_from_args(args, base)
    if args.print_config:
        print(config.to_json(), end="")
        return 0
    fit(config, resume=args.resume, overwrite=args.overwrite, progress=args.progress)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from fgad.engine import evaluate

    evaluate(
        args.model,
        dataset=args.dataset,
        root=args.root,
        categories=args.categories,
        image_size=args.image_size,
        output=args.output,
        batch_size=args.batch_size,
        device=args.device,
        num_workers=args.num_workers,
        overlays=args.overlays,
        amp=args.amp,
        progress=args.progress,
    )
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from fgad.engine import predict

    results = predict(
        args.model,
        args.inputs,
        output=args.output,
        threshold=args.threshold,
        image_size=args.image_size,
        batch_size=args.batch_size,
        device=args.device,
        num_workers=args.num_workers,
        save_maps=args.maps,
        overlays=args.overlays,
        amp=args.amp,
        progress=args.progress,
    )
    for r in results:
        verdict = "" if r.anomalous is None else ("  ANOMALOUS" if r.anomalous else "  good")
        print(f"{r.score:.4f}{verdict}  {r.path}")
    print(f"scores: {Path(args.output) / 'scores.csv'}", file=sys.stderr)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from fgad.data import DEMO_CATEGORY, demo_root
    from fgad.engine import evaluate, fit, get_preset

    base = get_preset(args.preset).replace(
        dataset="mvtec", root=os.fspath(demo_root().parent), category=DEMO_CATEGORY, output=args.output
    )
    config = config_from_args(args, base)
    run = fit(config, resume=args.resume, overwrite=not args.resume, progress=args.progress)
    report = run / "report"
    evaluate(
        run,
        output=report,
        batch_size=config.batch_size,
        device=config.device,
        overlays=args.overlays,
        progress=args.progress,
    )
    print(f"demo report: {report} (metrics.md, metrics.json, overlays/, curves/)", file=sys.stderr)
    return 0


def _cmd_benchmark(args: argparse.Namespace) -> int:
    from fgad.engine import benchmark
    from fgad.engine.benchmarking import expand_grid, parse_data, parse_overrides, parse_variant

    data = [parse_data(d) for d in args.data]
    variants = [parse_variant(v) for v in args.variant] if args.variant else None
    overrides = parse_overrides(args.overrides)
    if args.dry_run:
        cells = expand_grid(
            data,
            variants or [parse_variant("name=default")],
            args.seeds,
            preset=args.preset,
            overrides=overrides,
            output=args.output,
        )
        for cell in cells:
            print(f"{cell.key}  {cell.config.output}")
        return 0
    summary = benchmark(
        data,
        variants,
        args.seeds,
        preset=args.preset,
        overrides=overrides,
        output=args.output,
        jobs=args.jobs,
        threads=args.threads,
        progress=args.progress,
    )
    from fgad.engine.benchmarking import summary_markdown

    print(summary_markdown(summary), end="")
    print(f"benchmark: {Path(args.output) / 'summary.md'}", file=sys.stderr)
    return 1 if summary["failed"] else 0


def _cmd_foreground(args: argparse.Namespace) -> int:
    from fgad.engine.report import save_foreground_grid

    path = save_foreground_grid(
        args.input,
        args.output,
        methods=args.methods or ("auto", "otsu"),
        count=args.count,
        image_size=args.image_size,
        device=args.device,
    )
    print(f"wrote {path}", file=sys.stderr)
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from fgad.models import list_models

    try:
        from fgad.models._registry import MODELS

        docs = {name: MODELS.get(name).doc.replace("``", "") for name in list_models(args.pattern)}
    except ImportError:
        docs = dict.fromkeys(list_models(args.pattern), "")
    width = max((len(n) for n in docs), default=0)
    for name, doc in docs.items():
        print(f"{name.ljust(width)}  {doc}".rstrip())
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from fgad.engine import save_synthesis_grid

    path = save_synthesis_grid(
        args.input,
        args.output,
        count=args.count,
        image_size=args.image_size,
        foreground=args.foreground,
        textures=args.textures,
        seed=args.seed,
        device=args.device,
        synthesizer=args.synthesizer,
        synthesizer_kwargs=dict(args.synthesizer_kwargs),
    )
    print(f"wrote {path}", file=sys.stderr)
    return 0


_COMMANDS = {
    "train": _cmd_train,
    "evaluate": _cmd_evaluate,
    "predict": _cmd_predict,
    "demo": _cmd_demo,
    "benchmark": _cmd_benchmark,
    "foreground": _cmd_foreground,
    "models": _cmd_models,
    "synth": _cmd_synth,
}


#: The exceptions that report a user's mistake rather than a bug: a bad option value, config file,
#: data set layout or checkpoint (ValueError), a missing input (FileNotFoundError, NotADirectoryError),
#: an existing run (FileExistsError). A KeyError is one only when a name lookup raised it
#: (:func:`_unknown_name`).
USER_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
)


def _unknown_name(err: KeyError) -> bool:
    """Whether ``err`` was raised by a name lookup: ``Registry.get`` (an unregistered model,
    synthesizer or loss, e.g. the model a checkpoint names) or ``get_preset``."""
    from fgad._registry import Registry
    from fgad.engine.config import get_preset

    tb = err.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code in (Registry.get.__code__, get_preset.__code__)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fgad`` console script.

    Args:
        argv: arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 1 when the command failed with a user error
        (:data:`USER_ERRORS`, or a KeyError from a name lookup: an unknown model, synthesizer or
        preset), whose message is printed to stderr as ``fgad COMMAND: error: MESSAGE``. A command
        line argparse rejects (unknown option, invalid choice or value) exits with status 2. Any
        other exception is a bug and propagates with its traceback.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except (*USER_ERRORS, KeyError) as err:
        if isinstance(err, KeyError) and not _unknown_name(err):
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"fgad {args.command}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
