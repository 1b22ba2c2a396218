"""``fgad`` parser and error handling: shared options, choices, defaults stated once in the help, and
which exceptions are user errors (status 1, one message) or bugs (a traceback)."""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

import pytest

from fgad import cli
from fgad.cli import build_parser, config_from_args, main
from fgad.data import demo_root
from fgad.engine import get_preset


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_help_states_each_default_once(capsys: pytest.CaptureFixture[str]) -> None:
    for name, sub in subparsers().items():
        formatter = sub._get_formatter()
        for action in sub._actions:
            text = " ".join(formatter._expand_help(action).split())
            where = f"fgad {name} {action.option_strings}: {text!r}"
            assert text.lower().count("(default") <= 1, where
            assert "(default: None)" not in text and "(default: [])" not in text, where
            if action.dest == "progress":
                assert "default" not in text, where
        with pytest.raises(SystemExit):
            main([name, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert not re.search(r"\(default: [^)]*\) \(default", out), name


def test_shared_options_keep_their_defaults() -> None:
    parser = build_parser()
    common = {"image_size": None, "batch_size": 8, "device": "auto", "num_workers": 0, "amp": True,
              "progress": True}  # fmt: skip
    args = vars(parser.parse_args(["evaluate", "run"]))
    assert args == {**common, "command": "evaluate", "model": "run", "dataset": None, "root": None,
                    "categories": None, "output": None, "overlays": 16}  # fmt: skip
    args = vars(parser.parse_args(["predict", "run", "a.png", "b"]))
    assert args == {**common, "command": "predict", "model": "run", "inputs": ["a.png", "b"],
                    "output": "fgad-predict", "threshold": None, "maps": True, "overlays": True}  # fmt: skip
    args = vars(parser.parse_args(["foreground", "--input", "x"]))
    assert args == {"command": "foreground", "input": "x", "image_size": 256, "device": "cpu",
                    "output": "foreground.png", "methods": None, "count": 8}  # fmt: skip
    args = vars(parser.parse_args(["synth", "--input", "x", "--foreground", "none"]))
    assert args == {"command": "synth", "input": "x", "image_size": 256, "device": "cpu",
                    "output": "synthetic_anomalies.png", "count": 8, "foreground": None, "textures": None,
                    "synthesizer": "fgad", "synthesizer_kwargs": [], "seed": 0}  # fmt: skip
    assert parser.parse_args(["demo"]).preset == "cpu" and parser.parse_args(["train"]).preset == "paper"


def test_closed_sets_are_choices(capsys: pytest.CaptureFixture[str]) -> None:
    rejected = (["evaluate", "run", "--device", "gpu"], ["evaluate", "run", "--dataset", "folder"],
                ["synth", "--input", "x", "--synthesizer", "nosuch"], ["train", "--synthesizer", "nosuch"],
                ["foreground", "--input", "x", "--method", "none"],
                ["demo", "--preset", "nosuch"])  # fmt: skip
    for argv in rejected:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2, argv
        assert "error: argument" in capsys.readouterr().err, argv
    assert build_parser().parse_args(["predict", "run", "x", "--device", "cuda:1"]).device == "cuda:1"


def test_print_config_rejects_an_unknown_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.json"
    config.write_text(get_preset("cpu").replace(model="nosuch").to_json())
    assert main(["train", "--config", os.fspath(config), "--print-config"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("fgad train: error: unknown model 'nosuch'; registered models")
    config.write_text(json.dumps({**get_preset("cpu").to_dict(), "lr": "fast"}))
    assert main(["train", "--config", os.fspath(config), "--print-config"]) == 1
    assert capsys.readouterr().err.startswith("fgad train: error: ")
    with pytest.raises(ValueError, match="unknown preset 'nosuch'"):
        config_from_args(argparse.Namespace(preset="nosuch"))


def test_an_unregistered_model_in_a_checkpoint_is_a_user_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fgad.models import create_model, save_pretrained

    folder = save_pretrained(create_model("unet_segmenter", base_width=2), tmp_path / "model")
    saved = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**saved, "name": "nosuch"}))
    image = os.fspath(next((demo_root() / "test" / "good").iterdir()))
    argv = ["predict", os.fspath(folder), image, "--output", os.fspath(tmp_path / "out"), "--no-progress"]
    assert main(argv) == 1
    assert capsys.readouterr().err.startswith("fgad predict: error: unknown model 'nosuch'")


@pytest.mark.parametrize("error", [TypeError("a bug"), KeyError("a bug"), AttributeError("a bug")])
def test_programming_errors_propagate(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    def broken(args: argparse.Namespace) -> int:
        raise error

    monkeypatch.setitem(cli._COMMANDS, "models", broken)
    with pytest.raises(type(error), match="a bug"):
        main(["models"])
