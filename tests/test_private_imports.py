"""No module of fgad imports a private name (``_x``) from a public module.

A helper that several modules share lives in a private module (``fgad.augment._buffers``, ...),
whose names any module of the package may import; a public module's ``_x`` is its own.
"""

from __future__ import annotations

import ast
from pathlib import Path

import fgad

PACKAGE = Path(fgad.__file__).parent


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_imports_from_public(source: str) -> list[str]:
    """``line: from module import _name`` for every such import in the Python ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        # ``from . import _x`` (module None) imports a private module itself, which is fine.
        if not isinstance(node, ast.ImportFrom) or node.module is None:
            continue
        if _is_private(node.module.rsplit(".", 1)[-1]):
            continue
        module = "." * node.level + node.module
        found += [f"{node.lineno}: from {module} import {a.name}" for a in node.names if _is_private(a.name)]
    return found


def test_the_scan_sees_the_package() -> None:
    modules = list(PACKAGE.rglob("*.py"))
    assert len(modules) > 20 and PACKAGE / "augment" / "synthesizer.py" in modules


def test_the_scan_finds_a_private_import() -> None:
    code = (
        "from .public import _helper, fine, __version__\n"
        "from ._private import _ok\n"
        "from . import _module\n"
        "def f():\n"
        "    from fgad.augment.perlin import _evaluate\n"
    )
    assert _private_imports_from_public(code) == [
        "1: from .public import _helper",
        "5: from fgad.augment.perlin import _evaluate",
    ]


def test_no_private_name_is_imported_from_a_public_module() -> None:
    offenders = {
        str(path.relative_to(PACKAGE.parent)): found
        for path in sorted(PACKAGE.rglob("*.py"))
        if (found := _private_imports_from_public(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}, (
        f"move the shared helpers into a private module (its last dotted name starts with '_'): {offenders}"
    )
