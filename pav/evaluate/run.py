"""Renders the job's views, scores them per appearance and overall, writes metrics.json, metrics.md and the maps."""

from __future__ import annotations

import time

import numpy as np
import torch
from tqdm import tqdm

from ..metrics import score_sets
from ..metrics.pixel import known_only, psnr
from ..metrics.sets import score_unpaired
from ..render.video import with_appearance
from .figure import write_error_map
from .job import EvaluateConfig, EvaluateJob, prepare
from .regions import face_pixels, region_scores, regions_table
from .results import metrics_table, write_json, write_markdown
from .scoring import render_view


def render_items(job: EvaluateJob, progress: bool) -> dict[str, list[tuple[str, torch.Tensor, torch.Tensor]]]:
    """group -> [(view name, prediction [H, W, 3], truth [H, W, 3])], in the job's order."""
    drawn = {a: with_appearance(job.frames, a) for a in sorted({item.appearance for item in job.items})}
    groups: dict[str, list[tuple[str, torch.Tensor, torch.Tensor]]] = {}
    for item in tqdm(job.items, desc="rendering views", unit="view", disable=not progress):
        image = render_view(job.renderer, drawn[item.appearance], item.view)
        groups.setdefault(item.group, []).append((item.view.name, image, known_only(item.view.rgb, item.view.valid)))
    return groups


def _stack_at(size: tuple[int, int], images: list[torch.Tensor]) -> torch.Tensor:
    """Images [H, W, 3] (of other videos' sizes, maybe) -> [N, *size, 3]."""
    out = [im if im.shape[:2] == size else torch.nn.functional.interpolate(
        im.permute(2, 0, 1)[None], size=size, mode="area")[0].permute(1, 2, 0) for im in images]
    return torch.stack(out)


def _regions(job: EvaluateJob, rendered: dict[str, list[tuple[str, torch.Tensor, torch.Tensor]]]) -> dict | str:
    """The face and the rest of the person scored apart (regions.py), or why not."""
    if not rendered:
        return "unavailable: no truth per render"
    if job.face_faces is None:
        return f"unavailable: {job.face_source}"
    views = {item.view.name: item.view for item in job.items}
    rows = {group: [(pred, truth, face_pixels(job.frames, views[name], job.face_faces), views[name].alpha,
                     views[name].valid) for name, pred, truth in items] for group, items in rendered.items()}
    return region_scores(rows)


def evaluate(cfg: EvaluateConfig) -> dict:
    """Evaluates cfg.ckpt on cfg.split; returns what metrics.json holds."""
    job = prepare(cfg)
    job.out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    rendered = render_items(job, cfg.progress)
    render_seconds = time.time() - start
    start = time.time()
    maps = {}
    if job.references is not None:  # no truth per render: the renders as a set against the real images
        sets = {g: (_stack_at(job.references[g][0].shape[:2], [p for _, p, _ in rows]),
                    _stack_at(job.references[g][0].shape[:2], job.references[g])) for g, rows in rendered.items()}
        scores = score_unpaired(sets, "no ground truth for novel poses and expressions")
        rendered = {}
    else:
        sets = {g: (torch.stack([p for _, p, _ in rows]), torch.stack([t for _, _, t in rows]))
                for g, rows in rendered.items()}
        scores = score_sets(sets, progress=cfg.progress)
    regions = _regions(job, rendered)
    score_seconds = time.time() - start
    for group, rows in rendered.items():
        order = np.argsort([psnr(p, t) for _, p, t in rows])
        name, pred, truth = rows[int(order[len(order) // 2])]
        path = write_error_map(job.out / "error_maps" / f"{group}.png", pred, truth)
        maps[group] = {"path": str(path.relative_to(job.out)), "view": name}
    first = job.items[0].view
    result = {
        "split": cfg.split,
        "checkpoint": str(cfg.ckpt),
        "collection": str(job.collection_root),
        "image_size": [first.height, first.width],
        "scores": scores,
        "regions": regions,
        "error_maps": maps,
        "render_seconds": render_seconds,
        "score_seconds": score_seconds,
        "device": str(job.frames.posed_verts.device),
    }
    write_json(job.out / "metrics.json", result)
    write_markdown(job.out / "metrics.md", result)
    print("\n".join(metrics_table(scores)))
    if isinstance(regions, dict):
        print("\n".join(regions_table(regions)))
    print(f"[pav] {len(job.items)} {cfg.split} views scored -> {job.out}/metrics.json, metrics.md, error_maps/")
    return result
