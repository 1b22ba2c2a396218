"""Per-epoch logs: a CSV file always, TensorBoard scalars when ``tensorboard`` is installed.

Only rank 0 logs. The CSV has one row per epoch and a fixed header (values that were not measured in
an epoch, e.g. validation metrics between validations, are empty). On resume the rows of epochs
after the checkpoint are dropped so the file never holds the same epoch twice.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fgad._io import atomic_write_text

__all__ = ["EpochLogger", "format_summary"]


class EpochLogger:
    """Append one CSV row (and TensorBoard scalars) per epoch.

    Args:
        directory: the run directory; the CSV is ``<directory>/log.csv`` and TensorBoard events go
            to ``<directory>/tensorboard``.
        columns: CSV columns after ``epoch`` (and ``step``).
        resume_epoch: when resuming, rows with ``epoch > resume_epoch`` are removed (they belong to
            the epoch the interrupted run did not checkpoint); None starts a fresh file.
        tensorboard: try to create a ``torch.utils.tensorboard.SummaryWriter`` (silently skipped when
            the ``tensorboard`` package is not installed).

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> log = EpochLogger(d, ["loss"], tensorboard=False)
        >>> log.log(1, 10, {"loss": 0.5})
        >>> log.close()
        >>> (d / "log.csv").read_text().splitlines()
        ['epoch,step,loss', '1,10,0.5']
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        columns: Sequence[str],
        *,
        resume_epoch: int | None = None,
        tensorboard: bool = True,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "log.csv"
        self.columns = ["epoch", "step", *[c for c in columns if c not in ("epoch", "step")]]
        self.rows: list[dict[str, str]] = []
        if resume_epoch is not None and self.path.is_file():
            with self.path.open(newline="") as fh:
                reader = csv.DictReader(fh)
                old_columns = reader.fieldnames or []
                for row in reader:
                    if row.get("epoch") and int(row["epoch"]) <= resume_epoch:
                        self.rows.append(row)
            for c in old_columns:
                if c not in self.columns:
                    self.columns.append(c)
        self._flush()
        self.writer: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except (ImportError, ModuleNotFoundError):
                self.writer = None
            else:
                self.writer = SummaryWriter(log_dir=os.fspath(self.directory / "tensorboard"))

    def log(self, epoch: int, step: int, values: Mapping[str, float | int | None]) -> None:
        """Record epoch ``epoch`` (1-based, completed) at optimizer step ``step``."""
        row = {"epoch": str(epoch), "step": str(step)}
        for key, value in values.items():
            if key not in self.columns:
                self.columns.append(key)
            row[key] = "" if value is None else _fmt(value)
            if self.writer is not None and value is not None and not _isnan(value):
                self.writer.add_scalar(key.replace("val_", "val/", 1), float(value), step)
        self.rows.append(row)
        self._flush()

    def _flush(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, lineterminator="\n", restval="")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: row.get(k, "") for k in self.columns})
        atomic_write_text(self.path, buf.getvalue())

    def close(self) -> None:
        """Flush and close TensorBoard."""
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None


def _isnan(value: float | int) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _fmt(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    return f"{float(value):.6g}"


def format_summary(rows: Mapping[str, Any], title: str = "summary") -> str:
    """A two-column plain-text table (name, value) for the end of a run.

    Example:
        >>> print(format_summary({"image_auroc": 0.98765, "steps": 10}))
        summary
        -------------------
        image_auroc  0.9877
        steps        10
    """
    width = max((len(k) for k in rows), default=0)
    lines = [f"{k.ljust(width)}  {(f'{v:.4f}' if isinstance(v, float) else v)}" for k, v in rows.items()]
    rule = "-" * max([len(title), *(len(line) for line in lines)])
    return "\n".join([title, rule, *lines])
