"""`python -m pav.evaluate.report RUN_DIR [RUN_DIR ...]`: the metrics table of finished training runs, and for
several runs one row each (validation and test side by side)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..train.run import format_metrics


def _pair(scores: dict | None) -> str:
    if not scores:
        return "—"
    return f"{scores['mean']['psnr']:.2f} / {scores['mean']['ssim']:.3f}"


def runs_table(runs: dict[str, dict]) -> str:
    """One row per run: validation and test PSNR / SSIM (means over appearances), steps, training minutes."""
    lines = ["| run | validation PSNR / SSIM | test PSNR / SSIM | test PSNR per appearance | steps | train min |",
             "|---|---:|---:|---|---:|---:|"]
    for name, m in runs.items():
        per_app = ", ".join(f"{s['psnr']:.2f}" for s in m["per_appearance"].values())
        lines.append(f"| {name} | {_pair(m.get('validation'))} | {_pair(m)} | {per_app} | {m['steps']} | "
                     f"{m['train_minutes']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        raise SystemExit("usage: python -m pav.evaluate.report RUN_DIR [RUN_DIR ...]")
    runs = {}
    for run in args:
        path = Path(run) / "metrics.json"
        if not path.exists():
            raise SystemExit(f"{path}: missing; has the run in {run} finished?")
        runs[run] = json.loads(path.read_text())
        print(f"## {run}\n\n{format_metrics(runs[run])}\n")
    if len(runs) > 1:
        print(runs_table(runs))


if __name__ == "__main__":
    main()
