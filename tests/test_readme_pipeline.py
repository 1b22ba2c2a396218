"""The code of the README's "Using fgad's transforms in your pipeline" section runs as written."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Using fgad's transforms in your pipeline"
# The anomalib snippet's budget, cut for the test: one step of a tiny network on 64 x 64 images, no
# visualisations written.
SHORTER = {
    "max_steps=400": "max_steps=1",
    'Fgad(model="fgad_small", ': 'Fgad(model="fgad_small", model_kwargs={"base_width": 4}, visualizer=False, '
    "pre_processor=Fgad.configure_pre_processor((64, 64)), ",
}


def _blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)


def test_the_section_has_the_three_snippets() -> None:
    blocks = _blocks()
    assert len(blocks) == 3
    assert "kornia" in blocks[0] and "v2.Compose" in blocks[1] and "Engine" in blocks[2]


def test_readme_snippets_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("anomalib")
    monkeypatch.chdir(tmp_path)  # anomalib writes its results and the snippet its model here
    namespace: dict[str, object] = {}
    assert all(old in "".join(_blocks()) for old in SHORTER), "the README changed: update SHORTER"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for code in _blocks():
            for old, new in SHORTER.items():
                code = code.replace(old, new)
            exec(compile(code, str(README), "exec"), namespace)  # noqa: S102
    assert (tmp_path / "fgad-from-anomalib" / "model.safetensors").is_file()
