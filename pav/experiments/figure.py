"""The paper's Figure 3 for a protocol: per appearance, the truth and every model's prediction on one held-out view,
with each prediction's error map below it. The view is the one where the reference model (pav) has its median
PSNR, so every column shows the same pose, expression and camera.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..evaluate import EvaluateConfig
from ..evaluate.figure import error_heat
from ..evaluate.job import prepare
from ..evaluate.run import render_items
from ..metrics.pixel import psnr
from ..render.tiles import draw_label
from .runs import Run


def _tile(image: torch.Tensor, height: int, label: str) -> np.ndarray:
    """image [H, W, 3] in [0, 1] -> uint8 [height, W', 3], labelled."""
    pixels = Image.fromarray((image.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8))
    width = max(1, round(pixels.width * height / pixels.height))
    return draw_label(np.asarray(pixels.resize((width, height), Image.BILINEAR)), label)


def render_views(run: Run, views: dict[str, str], eval_cfg: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """appearance -> (prediction, truth) [H, W, 3] of the run's checkpoint on the named test view per appearance."""
    job = prepare(EvaluateConfig(ckpt=str(run.checkpoint), split="test", progress=False, **eval_cfg))
    items = [item for item in job.items if views.get(item.group) == item.view.name]
    rendered = render_items(dataclasses.replace(job, items=items), progress=False)
    return {group: (rows[0][1], rows[0][2]) for group, rows in rendered.items()}


def comparison_figure(columns: dict[str, dict[str, Run]], reference: Run, eval_cfg: dict, path: Path,
                      height: int = 128) -> Path:
    """columns: model label -> {appearance: the run that draws it}; reference: the run whose median-PSNR view
    (its evaluation's error map) is shown for each appearance. Writes a palette PNG."""
    maps = json.loads(reference.eval_metrics.read_text())["error_maps"]  # appearance -> {"path", "view"}
    views = {appearance: entry["view"] for appearance, entry in maps.items()}
    needs: dict[Path, tuple[Run, set[str]]] = {}  # each checkpoint is loaded once, for all its appearances
    for runs in columns.values():
        for appearance, run in runs.items():
            needs.setdefault(run.directory, (run, set()))[1].add(appearance)
    rendered = {key: render_views(run, {a: views[a] for a in names}, eval_cfg) for key, (run, names) in needs.items()}
    drawn = {label: {a: rendered[run.directory][a] for a, run in runs.items()} for label, runs in columns.items()}
    rows = []
    for appearance, view in views.items():
        truth = next(d[appearance][1] for d in drawn.values() if appearance in d)
        top, bottom = [_tile(truth, height, f"{appearance}: truth")], [_tile(torch.ones_like(truth), height, view)]
        for label, per_appearance in drawn.items():
            pred = per_appearance[appearance][0]
            top.append(_tile(pred, height, f"{label} {psnr(pred, truth):.1f} dB"))
            bottom.append(_tile(error_heat(pred, truth), height, f"{label} |error|"))
        rows += [np.concatenate(top, 1), np.concatenate(bottom, 1)]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, 0)).quantize(256).save(path, optimize=True)
    return path
