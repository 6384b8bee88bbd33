"""The converter's options, and how they pick parts, frames and cameras."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

import numpy as np
from omegaconf import MISSING

from .fit import KeypointFitConfig
from .flame_fits import RenderMeError

# The 22 test cameras of RenderMe-360's novel-view benchmark.
BENCHMARK_TEST_CAMERAS = ("02", "06", "10", "14", "18", "22", "26", "30", "34", "38", "42", "46", "50", "08", "12",
                          "36", "44", "52", "54", "56", "58", "51")


@dataclass
class RenderMeConfig:
    root: str = MISSING  # folder with the subject's folder (or its .smc files)
    subject: str = MISSING  # actor id, e.g. 0297
    out: str = MISSING
    parts: str = "h0,h1_*"  # comma-separated names or patterns of the parts that become appearances
    cameras: str = "all"  # all, or comma-separated camera ids (7 or 07)
    frames: str = "every:3"  # all | every:K | count:N (evenly spread)
    size: int = 512  # side of the square images
    head_model: str = "procedural:0"  # the FLAME 2020 model file for real data (RenderMe-360 fits FLAME)
    uv_layout: str | None = None  # FLAME's uv layout file, written into collection.json
    test_cameras: str = "benchmark"  # benchmark (RenderMe-360's 22 test cameras) | none | comma-separated ids
    embed_frames: int = 20  # frames per expression part for the identity and the keypoint embeddings
    mask_tolerance: float = 0.9  # smallest share of face vertices that must project inside the masks
    workers: int = 0  # image threads; 0 = all cores
    torso_cut: bool = True  # shoulders and chest unknown (pav/head/torso.py); False keeps them as targets
    restart: bool = False  # ignore saved progress under OUT/renderme/
    fit: KeypointFitConfig = field(default_factory=KeypointFitConfig)


# ----------------------------------------------------------------------------- selections


def select_parts(available: list[str], spec: str) -> list[str]:
    patterns = [p.strip() for p in spec.split(",") if p.strip()]
    chosen = [name for name in available if any(fnmatch.fnmatchcase(name, p) for p in patterns)]
    if not chosen:
        raise RenderMeError(f"parts={spec!r} matches none of the subject's parts {available}")
    return chosen


def select_frames(ids: list[int], spec: str) -> list[int]:
    kind, _, value = spec.partition(":")
    if kind == "all" and not value:
        return list(ids)
    if kind in ("every", "count") and value.isdigit() and int(value) > 0:
        n = int(value)
        if kind == "every":
            return list(ids[::n])
        picks = np.unique(np.linspace(0, len(ids) - 1, min(n, len(ids))).round().astype(int))
        return [ids[i] for i in picks]
    raise RenderMeError(f"frames={spec!r}: expected all, every:K or count:N with a positive integer")


def camera_list(spec: str) -> list[str] | None:
    """None for all; else two-digit ids."""
    if spec.strip() == "all":
        return None
    out = []
    for item in (s.strip() for s in spec.split(",")):
        if not item.isdigit():
            raise RenderMeError(f"cameras={spec!r}: {item!r} is not a camera number")
        out.append(f"{int(item):02d}")
    return out


def held_out_cameras(spec: str, cams: list[str]) -> list[str]:
    if spec == "none":
        return []
    wanted = BENCHMARK_TEST_CAMERAS if spec == "benchmark" else camera_list(spec) or []
    held = [c for c in cams if c in wanted]
    return held if len(held) < len(cams) else []  # a part seen only by test cameras trains on all of them
