"""`python -m pav.evaluate.report RUN_DIR [RUN_DIR ...]`: the metrics table of finished training runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..train.run import format_metrics


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        raise SystemExit("usage: python -m pav.evaluate.report RUN_DIR [RUN_DIR ...]")
    for run in args:
        path = Path(run) / "metrics.json"
        if not path.exists():
            raise SystemExit(f"{path}: missing; has the run in {run} finished?")
        print(f"## {run}\n\n{format_metrics(json.loads(path.read_text()))}\n")


if __name__ == "__main__":
    main()
