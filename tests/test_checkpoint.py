"""fgad.models checkpoints: safetensors + config.json, atomic, bitwise round trip, safe refusals."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import fgad
from fgad.models import create_model, load_model, register_model, save_pretrained
from fgad.models._registry import MODELS
from fgad.models.checkpoint import CONFIG_NAME, WEIGHTS_NAME, read_checkpoint

WIDTH = 8


def _trained(name: str = "fgad", **kwargs: object) -> torch.nn.Module:
    """A small model after one optimiser step, so weights and BatchNorm statistics are not at init."""
    torch.manual_seed(0)
    model = create_model(name, base_width=WIDTH, **kwargs)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(2, model.in_channels, 64, 64)
    out = model(x)
    loss = F.mse_loss(out.reconstruction, x) + F.cross_entropy(
        out.logits, (torch.rand(2, 64, 64) > 0.8).long()
    )
    loss.backward()
    optimiser.step()
    return model.eval()


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    model = _trained()
    directory = save_pretrained(model, tmp_path_factory.mktemp("ckpt") / "fgad_run")
    return model, directory


def _assert_same_outputs(a: torch.nn.Module, b: torch.nn.Module, size: tuple[int, int] = (64, 64)) -> None:
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        for s, t in zip(a.eval()(x), b.eval()(x), strict=True):
            assert torch.equal(s, t)


def test_save_writes_safetensors_and_config(saved: tuple[torch.nn.Module, Path]) -> None:
    model, directory = saved
    assert sorted(p.name for p in directory.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]  # no temp files left
    config = json.loads((directory / CONFIG_NAME).read_text())
    assert config["name"] == "fgad"
    assert config["kwargs"] == model.config["kwargs"]
    assert config["fgad_version"] == fgad.__version__
    assert config["weights_sha256"] == hashlib.sha256((directory / WEIGHTS_NAME).read_bytes()).hexdigest()
    tensors = load_file(str(directory / WEIGHTS_NAME))
    state = model.state_dict()
    assert tensors.keys() == state.keys()
    assert all(torch.equal(tensors[k], state[k]) for k in state)


def test_round_trip_is_bitwise(saved: tuple[torch.nn.Module, Path]) -> None:
    model, directory = saved
    _assert_same_outputs(model, load_model(directory))
    _assert_same_outputs(model, create_model("fgad", checkpoint=directory), size=(50, 70))
    _assert_same_outputs(model, create_model("fgad", checkpoint=directory / WEIGHTS_NAME))


def test_weights_file_alone_is_loadable(saved: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    model, directory = saved
    lone = tmp_path / "copied.safetensors"
    shutil.copyfile(directory / WEIGHTS_NAME, lone)
    restored = load_model(lone)
    assert restored.config == model.config
    _assert_same_outputs(model, restored)


def test_load_keeps_non_architecture_overrides(saved: tuple[torch.nn.Module, Path]) -> None:
    model, directory = saved
    restored = load_model(directory, smoothing_kernel=5, dtype=torch.float64)
    assert restored.smoothing_kernel == 5 and restored.config["kwargs"]["smoothing_kernel"] == 5
    assert next(restored.parameters()).dtype == torch.float64
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(restored.eval()(x.double()).anomaly_map.float(), model(x).anomaly_map)


def test_resave_replaces_atomically(saved: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    model, _ = saved
    target = tmp_path / "ckpt"
    save_pretrained(create_model("fgad", base_width=4), target)
    save_pretrained(model, target)
    assert sorted(p.name for p in target.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]
    _assert_same_outputs(model, load_model(target))


def test_wider_model_is_refused_naming_the_shapes(saved: tuple[torch.nn.Module, Path]) -> None:
    _, directory = saved
    with pytest.raises(
        ValueError, match=r"shape mismatch.*checkpoint \(8, 3, 3, 3\) vs model \(16, 3, 3, 3\)"
    ):
        create_model("fgad", checkpoint=directory, base_width=16)
    with pytest.raises(ValueError, match=r"autoencoder\.encoder\.0\.conv\.0\.0\.weight"):
        create_model("fgad", checkpoint=directory, ae_width=16)


def test_other_architecture_is_refused_naming_the_tensors(saved: tuple[torch.nn.Module, Path]) -> None:
    _, directory = saved
    with pytest.raises(ValueError, match=r"holds model 'fgad'.*5 unexpected tensor\(s\).*attn\.conv\.weight"):
        create_model("draem", checkpoint=directory, base_width=WIDTH)
    with pytest.raises(ValueError, match="missing from the checkpoint"):
        create_model("unet_segmenter", checkpoint=directory)
    with pytest.raises(ValueError, match=r"checkpoint \(8, 3, 3, 3\) vs model \(8, 1, 3, 3\)"):
        create_model("fgad", checkpoint=directory, in_channels=1)


def _copy(directory: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(directory, target)
    return target


def test_flipped_byte_is_detected(saved: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    target = _copy(saved[1], tmp_path)
    data = bytearray((target / WEIGHTS_NAME).read_bytes())
    data[-100] ^= 0x01  # inside the last tensor's data: still a well-formed safetensors file
    (target / WEIGHTS_NAME).write_bytes(bytes(data))
    with pytest.raises(ValueError, match="SHA-256.*corrupted"):
        load_model(target)


def test_truncated_file_is_refused(saved: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    target = _copy(saved[1], tmp_path)
    data = (target / WEIGHTS_NAME).read_bytes()
    (target / WEIGHTS_NAME).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="SHA-256"):
        load_model(target)
    (target / CONFIG_NAME).unlink()  # no checksum to compare: the parser must still refuse it
    with pytest.raises(ValueError, match="not a readable safetensors checkpoint"):
        load_model(target / WEIGHTS_NAME)
    (target / WEIGHTS_NAME).write_bytes(b"\x05\x00")
    with pytest.raises(ValueError, match="not a safetensors file"):
        load_model(target / WEIGHTS_NAME)


def test_corrupted_config_is_refused(saved: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    target = _copy(saved[1], tmp_path)
    (target / CONFIG_NAME).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_model(target)
    (target / CONFIG_NAME).write_text(json.dumps({"name": "fgad"}))
    with pytest.raises(ValueError, match="'kwargs'"):
        load_model(target)
    (target / CONFIG_NAME).write_text(json.dumps({"name": "fgad", "kwargs": {}, "format_version": 99}))
    with pytest.raises(ValueError, match="newer"):
        load_model(target)


class _Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(_Exploit.marker),))

    marker = Path()


def test_pickles_are_never_unpickled(saved: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    target = _copy(saved[1], tmp_path)
    _Exploit.marker = tmp_path / "pwned"
    (target / WEIGHTS_NAME).write_bytes(pickle.dumps(_Exploit()))
    with pytest.raises(ValueError, match="pickle"):
        load_model(target)
    torch.save(saved[0].state_dict(), tmp_path / "model.pt")
    with pytest.raises(ValueError, match="only loads safetensors"):
        create_model("fgad", checkpoint=tmp_path / "model.pt")
    assert not _Exploit.marker.exists()


def test_missing_checkpoint_and_missing_config(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=WEIGHTS_NAME):
        load_model(tmp_path)
    plain = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="no config"):
        save_pretrained(plain, tmp_path / "plain")


@pytest.mark.parametrize("name", ["autoencoder", "eca_autoencoder", "unet_segmenter", "draem_small"])
def test_every_kind_round_trips(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model(name, base_width=4).eval()
    restored = load_model(save_pretrained(model, tmp_path / name)).eval()
    assert restored.config == model.config
    x = torch.rand(1, model.in_channels, 32, 48)
    with torch.no_grad():
        a, b = model(x), restored(x)
    for s, t in zip(a if isinstance(a, tuple) else [a], b if isinstance(b, tuple) else [b], strict=True):
        assert torch.equal(s, t)


def test_user_registered_model_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Register into a copy of the registry's table so the name does not outlive this test.
    monkeypatch.setattr(MODELS, "_entries", dict(MODELS._entries))

    @register_model(name="test_checkpoint_linear_probe", features=3)
    def _probe(features: int = 2, device: object = None, dtype: torch.dtype | None = None) -> torch.nn.Module:
        return torch.nn.Linear(features, 1, device=device, dtype=dtype)

    model = create_model("test_checkpoint_linear_probe", features=5)
    assert model.config == {"name": "test_checkpoint_linear_probe", "kwargs": {"features": 5}}
    restored = load_model(save_pretrained(model, tmp_path / "probe"))
    assert torch.equal(restored.weight, model.weight) and restored.in_features == 5


def test_read_checkpoint_returns_cpu_tensors_and_config(saved: tuple[torch.nn.Module, Path]) -> None:
    model, directory = saved
    ckpt = read_checkpoint(directory)
    assert ckpt.config["name"] == "fgad" and ckpt.path == directory / WEIGHTS_NAME
    assert all(t.device.type == "cpu" for t in ckpt.tensors.values())
    assert ckpt.tensors.keys() == model.state_dict().keys()


def test_config_saved_without_the_score_rule_keeps_draem_scores(
    saved: tuple[torch.nn.Module, Path], tmp_path: Path
) -> None:
    # a config that predates the recorded score rule was scored with DRAEM's mean filter: it loads so
    from fgad.engine._common import load_detector
    from fgad.engine.checkpoint import TrainState, save_checkpoint

    model, directory = saved
    assert load_model(directory).score_method == "topk_mean"  # recorded since
    old = tmp_path / "old"
    shutil.copytree(directory, old)
    config = json.loads((old / CONFIG_NAME).read_text())
    for key in ("score_method", "score_topk"):
        del config["kwargs"][key]
    (old / CONFIG_NAME).write_text(json.dumps(config))
    restored = load_model(old)
    assert (restored.score_method, restored.score_topk) == ("smoothed_max", 0.01)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        _, expected = restored.postprocess(model(x).anomaly_map)
        assert torch.equal(restored(x).score, expected)
    state = TrainState(
        model=model.state_dict(),
        optimizer={},
        scheduler={},
        epoch=0,
        step=0,
        model_config={"name": config["name"], "kwargs": config["kwargs"]},
    )
    path = save_checkpoint(tmp_path / "last.pt", state)
    assert load_detector(path).score_method == "smoothed_max"
