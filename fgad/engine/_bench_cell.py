"""The child process of one ``fgad benchmark`` cell: ``python -m fgad.engine._bench_cell CELL_JSON``."""

from __future__ import annotations

import sys

from fgad.engine.benchmarking import run_cell


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m fgad.engine._bench_cell CELL_JSON", file=sys.stderr)
        return 2
    run_cell(args[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
