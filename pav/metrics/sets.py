"""Every metric over named groups of (prediction, truth) images: per group and over all of them.

A metric that cannot run (MetricUnavailable) gets the string "unavailable: <reason>" in place of each of its
numbers, so that no report ever shows a number for it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from torch import Tensor
from tqdm import tqdm

from .dists import dists
from .fid import frechet_distance, inception_features
from .lpips import lpips
from .pixel import psnr, ssim
from .weights import MetricUnavailable

PER_IMAGE: dict[str, Callable[[Tensor, Tensor], float]] = {"psnr": psnr, "ssim": ssim, "lpips": lpips,
                                                           "dists": dists}
METRICS = ("psnr", "ssim", "lpips", "dists", "fid")
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "lpips": False, "dists": False, "fid": False}
Cell = float | str


def unavailable(reason: str) -> str:
    return f"unavailable: {reason}"


def _per_image(groups: dict[str, tuple[Tensor, Tensor]], progress: bool) -> tuple[dict, dict[str, str]]:
    """Per-image values {metric: {group: [values]}} and the reasons of metrics that cannot run."""
    values: dict[str, dict[str, list[float]]] = {m: {g: [] for g in groups} for m in PER_IMAGE}
    reasons: dict[str, str] = {}
    total = sum(len(pred) for pred, _ in groups.values())
    with tqdm(total=total, desc="scoring", unit="view", disable=not progress) as bar:
        for name, (pred, truth) in groups.items():
            for i in range(len(pred)):
                for metric, fn in PER_IMAGE.items():
                    if metric in reasons:
                        continue
                    try:
                        values[metric][name].append(fn(pred[i], truth[i]))
                    except MetricUnavailable as err:
                        reasons[metric] = str(err)
                bar.update(1)
    return values, reasons


def _distance(a: np.ndarray, b: np.ndarray) -> Cell:
    if min(len(a), len(b)) < 2:
        return unavailable(f"fid needs at least 2 images per set, got {min(len(a), len(b))}")
    return frechet_distance(a, b)


def _set_scores(groups: dict[str, tuple[Tensor, Tensor]]) -> tuple[dict[str, Cell], Cell]:
    """FID of each group and of all groups pooled; Inception features are computed once per image."""
    feats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, (pred, truth) in groups.items():
        try:
            feats[name] = (inception_features(pred), inception_features(truth))  # [N, 2048] each
        except MetricUnavailable as err:
            return {n: unavailable(str(err)) for n in groups}, unavailable(str(err))
    pooled = _distance(np.concatenate([f[0] for f in feats.values()]), np.concatenate([f[1] for f in feats.values()]))
    return {name: _distance(*f) for name, f in feats.items()}, pooled


def score_sets(groups: dict[str, tuple[Tensor, Tensor]], progress: bool = False) -> dict:
    """groups: name -> (predictions [N, H, W, 3], truths [N, H, W, 3]), all on white in [0, 1].

    -> {"per_appearance": {name: {metric: value, "views": N}}, "overall": {...}, "unavailable": {metric: reason}}.
    PSNR, SSIM, LPIPS and DISTS are means over the views; FID compares the sets (overall: all views pooled).
    Metric values that cannot be computed are "unavailable: <reason>" strings.
    """
    for name, (pred, truth) in groups.items():
        if pred.shape != truth.shape:
            raise ValueError(f"{name}: prediction and truth differ in size: prediction {tuple(pred.shape)}, "
                             f"truth {tuple(truth.shape)}")
    values, reasons = _per_image(groups, progress)
    fid_groups, fid_overall = _set_scores(groups)
    per_group: dict[str, dict[str, Cell | int]] = {}
    for name, (pred, _) in groups.items():
        row: dict[str, Cell | int] = {}
        for metric in PER_IMAGE:
            row[metric] = unavailable(reasons[metric]) if metric in reasons else float(np.mean(values[metric][name]))
        row["fid"] = fid_groups[name]
        row["views"] = len(pred)
        per_group[name] = row
    overall: dict[str, Cell | int] = {}
    for metric in PER_IMAGE:
        pooled = [v for vals in values[metric].values() for v in vals]
        overall[metric] = unavailable(reasons[metric]) if metric in reasons else float(np.mean(pooled))
    overall["fid"] = fid_overall
    overall["views"] = sum(len(p) for p, _ in groups.values())
    if isinstance(fid_overall, str):
        reasons["fid"] = fid_overall.removeprefix("unavailable: ")
    return {"per_appearance": per_group, "overall": overall, "unavailable": reasons}


def score_unpaired(groups: dict[str, tuple[Tensor, Tensor]], reason: str) -> dict:
    """groups: name -> (renders [N, H, W, 3], reference images [M, H, W, 3]) with no truth per render (novel poses
    and expressions): FID per group and pooled; the per-image metrics are "unavailable: <reason>". The same
    structure as score_sets."""
    fid_groups, fid_overall = _set_scores(groups)
    per_group: dict[str, dict[str, Cell | int]] = {}
    for name, (pred, _) in groups.items():
        per_group[name] = {**{m: unavailable(reason) for m in PER_IMAGE}, "fid": fid_groups[name], "views": len(pred)}
    overall: dict[str, Cell | int] = {**{m: unavailable(reason) for m in PER_IMAGE}, "fid": fid_overall,
                                      "views": sum(len(p) for p, _ in groups.values())}
    reasons = dict.fromkeys(PER_IMAGE, reason)
    if isinstance(fid_overall, str):
        reasons["fid"] = fid_overall.removeprefix("unavailable: ")
    return {"per_appearance": per_group, "overall": overall, "unavailable": reasons}
