"""fgad.export.to_onnx: dynamic batch, onnxruntime parity with torch, atomic write, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fgad.export import to_onnx
from fgad.models import create_model

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

SIZE = (48, 80)  # not multiples of 32: the padding and the crop are part of the graph


def _trained(name: str, **kwargs: object) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model(name, base_width=4, **kwargs)
    model(torch.rand(4, model.in_channels, *SIZE))  # move BatchNorm statistics off their init
    return model


@pytest.fixture(scope="module")
def exported(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[torch.nn.Module, Path, dict[str, torch.Tensor]]:
    # A channels_last model in training mode: the export must use eval-mode BatchNorm on a copy and
    # leave the caller's model as it was.
    model = _trained("fgad").to(memory_format=torch.channels_last)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    path = to_onnx(model, tmp_path_factory.mktemp("onnx") / "fgad.onnx", image_size=list(SIZE))
    return model, path, before


def _parity(model: torch.nn.Module, path: Path, batch: int) -> None:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(batch, model.in_channels, *SIZE, generator=torch.Generator().manual_seed(batch))
    amap, score = session.run(["anomaly_map", "score"], {"images": x.numpy()})
    was_training = model.training
    with torch.no_grad():
        out = model.eval()(x)
    model.train(was_training)
    assert amap.shape == (batch, 1, *SIZE) and score.shape == (batch,)
    np.testing.assert_allclose(amap, out.anomaly_map.numpy(), rtol=0, atol=1e-4)
    np.testing.assert_allclose(score, out.score.numpy(), rtol=0, atol=1e-4)


@pytest.mark.parametrize("batch", [1, 3])
def test_onnxruntime_matches_torch(exported: tuple[torch.nn.Module, Path, dict], batch: int) -> None:
    model, path, _ = exported
    _parity(model, path, batch)


def test_graph_has_dynamic_batch_and_named_outputs(exported: tuple[torch.nn.Module, Path, dict]) -> None:
    _, path, _ = exported
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph)
    (image_input,) = graph.graph.input
    dims = image_input.type.tensor_type.shape.dim
    assert image_input.name == "images"
    assert dims[0].dim_param and not dims[0].HasField("dim_value")
    assert [d.dim_value for d in dims[1:]] == [3, *SIZE]
    assert [o.name for o in graph.graph.output] == ["anomaly_map", "score"]
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp or external-data files


def test_model_left_unchanged(exported: tuple[torch.nn.Module, Path, dict]) -> None:
    model, _, before = exported
    assert model.training
    assert next(model.parameters()).is_contiguous(memory_format=torch.channels_last)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_bad_arguments(tmp_path: Path) -> None:
    model = create_model("fgad", base_width=4)
    with pytest.raises(ValueError, match="at least 32"):
        to_onnx(model, tmp_path / "x.onnx", image_size=16)
    with pytest.raises(ValueError, match="image_size"):
        to_onnx(model, tmp_path / "x.onnx", image_size=(64, 64, 3))
    with pytest.raises(ValueError, match="opset"):
        to_onnx(model, tmp_path / "x.onnx", image_size=64, opset=9)
    with pytest.raises(TypeError, match="detector"):
        to_onnx(create_model("autoencoder", base_width=4), tmp_path / "x.onnx", image_size=64)
    assert list(tmp_path.iterdir()) == []
