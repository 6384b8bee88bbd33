"""What an evaluation needs: checked options, the checkpoint, its collection with the held-out frames posed,
and the views to score (the test split, or for the synthetic collection the cross-appearance set).
Errors a user can fix are EvaluateError with one clear message.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import MISSING, OmegaConf
from PIL import Image
from torch import Tensor

from ..data.datamodule import AvatarDataModule, View
from ..deform.frames import FrameSet
from ..head.regions import head_regions
from ..metrics.pixel import known_only
from ..render.job import DEVICES, RenderError, open_checkpoint, open_collection
from ..render.renderer import AvatarRenderer
from ..train.system import AvatarMeta

SPLITS = ("test", "val", "cross", "novel")


@dataclass
class EvaluateConfig:
    ckpt: str = MISSING
    split: str = "test"  # test: held-out views of each appearance (the reported figure) | val: its validation views
    # (what a default is chosen on) | cross: appearance j in the poses of video k
    # (with truth: synthetic only) | novel: appearance j in the poses and expressions of the other videos' held-out
    # frames, no truth: FID against j's own held-out images (the paper's protocol b, any collection)
    out: str = ""  # default: <run dir>/eval/<split>
    size: int = 0  # longest side of the scored images; 0: the collection's size
    views: int = 0  # at most this many views per appearance (test, novel) or per pair (cross), evenly spread; 0: all
    collection: str = ""  # default: the checkpoint's data.root
    head_model: str = ""  # default: the checkpoint's
    device: str = "auto"  # auto | cpu | cuda
    chunk: int = 0  # rays per forward pass; 0: 65536 on CUDA, 4096 on CPU
    progress: bool = True


class EvaluateError(ValueError):
    """An evaluation that cannot start: a bad option, a missing checkpoint or collection, no cross-appearance truth."""


@dataclass
class Scored:
    """One view to score: drawn with `appearance` in the pose and camera of `view`; view.rgb is the truth."""

    group: str  # the table row it counts for (the rendered appearance)
    appearance: int
    view: View


@dataclass
class EvaluateJob:
    renderer: AvatarRenderer
    meta: AvatarMeta
    frames: FrameSet  # the held-out frames, on the renderer's device
    items: list[Scored]
    collection_root: Path
    out: Path
    references: dict[str, list[Tensor]] | None = None  # split=novel: group -> its real held-out images [H, W, 3]
    face_faces: Tensor | None = None  # [F] bool, the head model's face region (None: it names none)
    face_source: str = ""  # where the face region comes from, or why there is none


def check_options(cfg: EvaluateConfig) -> None:
    problems = []
    if cfg.split not in SPLITS:
        problems.append(f"split={cfg.split!r} is not one of {', '.join(SPLITS)}")
    if cfg.device not in DEVICES:
        problems.append(f"device={cfg.device!r} is not one of {', '.join(DEVICES)}")
    for key in ("size", "views", "chunk"):
        if getattr(cfg, key) < 0:
            problems.append(f"{key}={getattr(cfg, key)} must be 0 or more")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        problems.append("device=cuda but torch sees no CUDA device")
    if problems:
        raise EvaluateError("; ".join(problems))


def _spread(items: list, n: int) -> list:
    """At most n of items, evenly spread (all when n is 0)."""
    if not n or len(items) <= n:
        return items
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, n).round()]


def _parse_name(view: View) -> tuple[str, str, int]:
    """(appearance, camera, frame id) of a held-out view named "<appearance>/<cam>/<frame id>"."""
    appearance, cam, frame_id = view.name.rsplit("/", 2)
    return appearance, cam, int(frame_id)


def _cross_view(dm: AvatarDataModule, view: View, appearance: str) -> View:
    """The drive's held-out view with `appearance`'s cross-appearance truth in place of its own image."""
    drive, cam, frame_id = _parse_name(view)
    rgb = Image.open(dm.collection.cross_frame_path(appearance, drive, cam, frame_id)).convert("RGB")
    alpha = Image.open(dm.collection.cross_mask_path(appearance, drive, cam, frame_id)).convert("L")
    if rgb.size != (view.width, view.height):
        rgb = rgb.resize((view.width, view.height), Image.BOX)
        alpha = alpha.resize((view.width, view.height), Image.BOX)
    rgb_t = torch.from_numpy(np.array(rgb)).float() / 255.0  # [H, W, 3]
    alpha_t = torch.from_numpy(np.array(alpha)).float() / 255.0  # [H, W]
    return dataclasses.replace(view, rgb=rgb_t * alpha_t[..., None] + (1.0 - alpha_t[..., None]), alpha=alpha_t,
                               name=f"{appearance} as {drive}/{cam}/{frame_id}")


def own_items(dm: AvatarDataModule, size: int, per_appearance: int, which: str) -> list[Scored]:
    """Each appearance in its own test (or validation) views."""
    names = dm.appearance_names
    views = dm.heldout_views(size, per_appearance, which)
    if not views:
        raise EvaluateError(f"split={which}: the collection {dm.collection.root} has no {which} frames")
    return [Scored(names[v.appearance], v.appearance, v) for v in views]


def cross_items(dm: AvatarDataModule, names: list[str], size: int, per_pair: int) -> list[Scored]:
    """Appearance j rendered in the held-out poses and camera of video k, for every pair with ground truth."""
    collection = dm.collection
    pairs = [(a, d) for a, d in collection.cross_pairs if a in names]
    if not pairs:
        raise EvaluateError(f"split=cross: the collection {collection.root} has no cross-appearance ground truth "
                            "(only synthetic collections have it: python -m pav.synthetic cross=true); "
                            "use split=test")
    held = dm.heldout_views(size, 0)
    items = []
    for appearance, drive in pairs:
        test_ids = set(collection[drive].split.test)
        mine = [v for v in held if _parse_name(v)[0] == drive and _parse_name(v)[2] in test_ids]
        for view in _spread(mine, per_pair):
            items.append(Scored(appearance, names.index(appearance), _cross_view(dm, view, appearance)))
    return items


def novel_items(dm: AvatarDataModule, names: list[str], size: int,
                per_appearance: int) -> tuple[list[Scored], dict[str, list[Tensor]]]:
    """Appearance j in the held-out poses, expressions and cameras of every other video (no truth), and j's own
    held-out images as the reference set its renders are compared with (FID)."""
    held = dm.heldout_views(size, 0)
    if len(dm.appearance_names) < 2:
        raise EvaluateError(f"split=novel: the collection {dm.collection.root} holds one appearance, so there are no "
                            "other videos to take poses and expressions from; use split=test")
    items, references = [], {}
    for name in names:
        own = [v for v in held if _parse_name(v)[0] == name]
        others = [v for v in held if _parse_name(v)[0] != name]
        references[name] = [known_only(v.rgb, v.valid) for v in own]
        for view in _spread(others, per_appearance):
            drive, cam, frame_id = _parse_name(view)
            items.append(Scored(name, names.index(name),
                                dataclasses.replace(view, name=f"{name} as {drive}/{cam}/{frame_id}")))
    return items, references


def prepare(cfg: EvaluateConfig) -> EvaluateJob:
    """Checks the options, loads the checkpoint and collection, poses the held-out frames and lists the views."""
    from ..train.config import typed_config

    check_options(cfg)
    try:
        renderer, meta, config = open_checkpoint(cfg.ckpt, cfg.device, cfg.chunk)
        root = cfg.collection or config["data"]["root"]
        open_collection(root, cfg.ckpt, meta.appearance_names[0], meta.n_expr)
    except RenderError as err:
        raise EvaluateError(str(err)) from None
    device = renderer.field.box_min.device
    typed = typed_config(OmegaConf.create(config))
    data = dataclasses.replace(typed.data, root=root, generate=None, verify_images="none",
                               head_model=cfg.head_model or meta.head_model)
    dm = AvatarDataModule(data)
    try:
        dm.load(typed.loss.depth_regions)
    except (OSError, ValueError) as err:
        raise EvaluateError(f"collection {root}: {err}") from None
    # split=cross and novel may score a model of some appearances (protocol b's INSTA) in every video's poses
    fits = (set(meta.appearance_names) <= set(dm.appearance_names) if cfg.split in ("cross", "novel")
            else dm.appearance_names == meta.appearance_names)
    if not fits:
        raise EvaluateError(f"collection {root} has the appearances {dm.appearance_names}, {cfg.ckpt} was trained "
                            f"on {meta.appearance_names}; pass the right collection=DIR")
    references = None
    if cfg.split in ("test", "val"):
        items = own_items(dm, cfg.size, cfg.views, cfg.split)
    elif cfg.split == "cross":
        items = cross_items(dm, meta.appearance_names, cfg.size, cfg.views)
    else:
        items, references = novel_items(dm, meta.appearance_names, cfg.size, cfg.views)
    out = Path(cfg.out) if cfg.out else Path(cfg.ckpt).resolve().parent.parent / "eval" / cfg.split
    available, source = head_regions(dm.flame, dm.cfg.head_regions)
    face = available.get("face")
    frames = dm.posed("val" if cfg.split == "val" else "test")
    return EvaluateJob(renderer, meta, frames.to(device), items, Path(root), out, references, face,
                       source if face is not None else f"{source} names no face region")
