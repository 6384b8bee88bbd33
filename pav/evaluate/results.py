"""metrics.json and metrics.md of an evaluation; a metric that could not run shows its reason, never a number."""

from __future__ import annotations

import json
from pathlib import Path

from ..metrics import METRICS
from .regions import regions_table

LABELS = {"psnr": "PSNR ↑", "ssim": "SSIM ↑", "lpips": "LPIPS ↓", "dists": "DISTS ↓", "fid": "FID ↓"}
DIGITS = {"psnr": 2, "ssim": 4, "lpips": 4, "dists": 4, "fid": 2}


def cell(metric: str, value) -> str:
    """A table cell: the number, or "unavailable" (the reason is listed under the table)."""
    if isinstance(value, str):
        return "unavailable"
    return f"{value:.{DIGITS[metric]}f}"


def metrics_table(scores: dict, first_column: str = "appearance") -> list[str]:
    """Markdown rows: one per appearance, then the overall row in bold."""
    lines = [f"| {first_column} | " + " | ".join(LABELS[m] for m in METRICS) + " | views |",
             "|---|" + "---:|" * (len(METRICS) + 1)]
    for name, row in scores["per_appearance"].items():
        lines.append(f"| {name} | " + " | ".join(cell(m, row[m]) for m in METRICS) + f" | {row['views']} |")
    overall = scores["overall"]
    lines.append("| **overall** | " + " | ".join(f"**{cell(m, overall[m])}**" for m in METRICS)
                 + f" | {overall['views']} |")
    return lines


def unavailable_notes(scores: dict) -> list[str]:
    """One line per metric that is unavailable somewhere, with its reason(s)."""
    reasons: dict[str, list[str]] = {}
    for row in (*scores["per_appearance"].values(), scores["overall"]):
        for m in METRICS:
            if isinstance(row[m], str) and row[m] not in reasons.setdefault(m, []):
                reasons[m].append(row[m])
    return [f"- {LABELS[m].split()[0]} " + "; ".join(r) for m, r in reasons.items() if r]


def write_markdown(path: Path, result: dict) -> Path:
    title = {"test": "held-out test views", "val": "validation views (what defaults are chosen on)",
             "cross": "cross-appearance views (appearance j in the poses of video k)",
             "novel": "novel poses and expressions without truth (appearance j in the other videos' held-out "
                      "frames; FID against j's own held-out images)"}[result["split"]]
    lines = [f"# Evaluation: {title}", "",
             f"Checkpoint `{result['checkpoint']}`, collection `{result['collection']}`, images of "
             f"{result['image_size'][1]}x{result['image_size'][0]} px composited on white.", "",
             *metrics_table(result["scores"]), ""]
    regions = result.get("regions")
    if isinstance(regions, dict):
        lines += ["The face (the tracked mesh's face region) and the rest of the person (hair, ears, neck, the "
                  "silhouette) scored apart:", "", *regions_table(regions), ""]
    elif isinstance(regions, str):
        lines += [f"Face and rest scored apart: {regions}", ""]
    notes = unavailable_notes(result["scores"])
    if notes:
        lines += ["Unavailable metrics:", "", *notes, ""]
    if result["error_maps"]:
        lines += ["Error maps (prediction | truth | mean absolute error over the channels, the view of median PSNR):",
                  ""]
        lines += [f"- {name}: `{m['path']}` ({m['view']})" for name, m in result["error_maps"].items()]
    lines += ["", f"Rendering {result['render_seconds']:.1f} s, scoring {result['score_seconds']:.1f} s "
              f"on {result['device']}."]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_json(path: Path, result: dict) -> Path:
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
