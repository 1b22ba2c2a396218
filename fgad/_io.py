"""Atomic file writes, shared by every writer in fgad.

Convention:
    The new content goes to a temporary name in the target's own folder (same file system, so the
    rename is atomic), is flushed to disk with :func:`os.fsync`, and is renamed over the target with
    :func:`os.replace`. A reader, or a process killed mid-write, therefore sees the previous complete
    file or the new complete file, never a part of one. On any error the temporary file is removed
    and the target is left as it was. Missing parent folders are created. New files get mode
    ``0o644`` and new folders ``0o755`` (:mod:`tempfile` would leave ``0o600`` / ``0o700``; run
    outputs and checkpoints are meant to be shared). Temporary names start with
    ``.<target name>.`` and end with ``.tmp``.

    Writers that hold bytes or text call :func:`atomic_write_bytes` / :func:`atomic_write_text`;
    writers that need a path (``safetensors.torch.save_file``, an ONNX program's ``save``) write to
    the path that :func:`atomic_path` yields; :func:`atomic_directory` does the same for a folder
    (e.g. a ``save_pretrained`` checkpoint directory), swapping the whole folder into place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_directory", "atomic_path", "atomic_write_bytes", "atomic_write_text"]

PathLike = str | os.PathLike[str]

_FILE_MODE = 0o644
_DIR_MODE = 0o755


@contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is synced and moved onto ``path``.

    The temporary file exists (empty) when the block starts; the block writes it by path. If the
    block raises, the temporary file is removed and ``path`` is untouched.

    Args:
        path: target file; missing parent folders are created.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "sub" / "x.bin"
        >>> with atomic_path(target) as tmp:
        ...     _ = tmp.write_bytes(b"abc")
        >>> target.read_bytes(), sorted(p.name for p in target.parent.iterdir())
        (b'abc', ['x.bin'])
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see the module's convention).

    Args:
        path: target file; missing parent folders are created.
        data: the file's bytes.

    Returns:
        The target path.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> atomic_write_bytes(d / "a" / "x.bin", b"abc").read_bytes()
        b'abc'
    """
    target = Path(path)
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
    return target


def atomic_write_text(path: PathLike, text: str) -> Path:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def atomic_directory(path: PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``path``; on success it replaces ``path`` as a whole.

    An existing ``path`` is first renamed aside and deleted after the new folder is in place, so the
    window in which ``path`` is missing is two renames long. If the block raises, the temporary
    folder is deleted and ``path`` is untouched. The files in the folder are not fsynced here: the
    writer inside the block decides (``save_pretrained`` writes each file with :func:`atomic_path`).

    Args:
        path: target folder; missing parent folders are created.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "ckpt"
        >>> for text in ("one", "two"):
        ...     with atomic_directory(target) as tmp:
        ...         _ = atomic_write_text(tmp / "a.txt", text)
        >>> (target / "a.txt").read_text(), sorted(p.name for p in target.parent.iterdir())
        ('two', ['ckpt'])
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old.{os.getpid()}"
            os.replace(target, old)
        os.chmod(tmp, _DIR_MODE)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
