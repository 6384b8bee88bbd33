"""What a render needs before its first frame: checked options, the checkpoint, its collection, the head model and
the posed drive frames. Errors a user can fix are RenderError (or DriveError) with one clear message.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import MISSING
from torch import Tensor

from ..data.collection import Collection
from ..deform.frames import FrameSet
from ..head.flame import FLAME
from ..train.checkpoint import load_avatar
from ..train.system import AvatarMeta
from .cameras import CAMERA_MODES
from .drive import Drive, Motion, resolve_drive
from .renderer import AvatarRenderer

DEVICES = ("auto", "cpu", "cuda")
DEFAULT_CHUNK = {"cuda": 65536, "cpu": 4096}  # rays per forward pass; small chunks stay in a CPU's caches


@dataclass
class RenderVideoConfig:
    ckpt: str = MISSING
    appearance: str = MISSING  # a name of the checkpoint's appearances, or all: one labelled tile each
    drive: str = MISSING  # an appearance of the collection, a flame.npz path, turntable or expressions
    out: str = MISSING  # the mp4 to write
    camera: str = "source"  # source | front | orbit
    size: int = 512  # pixels on a side of the square output (of each tile for appearance=all)
    fps: float = 25.0
    frames_dir: str | None = None  # also write every frame as <frames_dir>/<index:06d>.png
    max_frames: int = 0  # at most this many drive frames; 0: all (built-ins: 4 s at fps)
    chunk: int = 0  # rays per forward pass; 0: 65536 on CUDA, 4096 on CPU
    device: str = "auto"  # auto | cpu | cuda
    collection: str = ""  # where the drives and cameras are read; default: the checkpoint's data.root
    head_model: str = ""  # default: the checkpoint's (procedural:<seed> or the FLAME pickle's path)


class RenderError(ValueError):
    """A render that cannot start: a bad option, an unknown appearance, a missing checkpoint or collection."""


def check_options(cfg: RenderVideoConfig) -> None:
    problems = []
    if cfg.camera not in CAMERA_MODES:
        problems.append(f"camera={cfg.camera!r} is not one of {', '.join(CAMERA_MODES)}")
    if cfg.device not in DEVICES:
        problems.append(f"device={cfg.device!r} is not one of {', '.join(DEVICES)}")
    for key, ok, rule in (("size", cfg.size >= 1, "at least 1"), ("fps", cfg.fps > 0, "positive"),
                          ("max_frames", cfg.max_frames >= 0, "0 or more"), ("chunk", cfg.chunk >= 0, "0 or more")):
        if not ok:
            problems.append(f"{key}={getattr(cfg, key)} must be {rule}")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        problems.append("device=cuda but torch sees no CUDA device")
    if problems:
        raise RenderError("; ".join(problems))


def pick_device(spec: str) -> torch.device:
    """auto | cpu | cuda -> the device (auto: CUDA when torch sees one)."""
    if spec not in DEVICES:
        raise RenderError(f"device={spec!r} is not one of {', '.join(DEVICES)}")
    if spec == "cuda" and not torch.cuda.is_available():
        raise RenderError("device=cuda but torch sees no CUDA device")
    return torch.device("cuda" if spec == "cuda" or (spec == "auto" and torch.cuda.is_available()) else "cpu")


def open_checkpoint(ckpt: str, device: str, chunk: int) -> tuple[AvatarRenderer, AvatarMeta, dict]:
    """The checkpoint's renderer on the device (auto | cpu | cuda) drawing chunk rays at a time (0: the device's
    default), its meta and its training config."""
    on = pick_device(device)
    try:
        renderer, meta, config = load_avatar(ckpt, on)
    except (FileNotFoundError, ValueError) as err:
        raise RenderError(str(err)) from None
    renderer.cfg = dataclasses.replace(renderer.cfg, chunk_rays=chunk or DEFAULT_CHUNK[on.type])
    return renderer, meta, config


def pick_appearances(spec: str, names: list[str], ckpt: str) -> list[int]:
    if spec == "all":
        return list(range(len(names)))
    if spec not in names:
        raise RenderError(f"appearance={spec!r} is not in {ckpt}; valid: {', '.join(names)} (or all)")
    return [names.index(spec)]


def open_collection(root: str, ckpt: str, reference: str, n_expr: int) -> Collection:
    """The collection the checkpoint was trained on (drives and cameras come from it); images are not read."""
    if not Path(root).is_dir():
        raise RenderError(f"collection {root} (the checkpoint's data.root) not found from {Path.cwd()}; "
                          f"pass collection=DIR ({ckpt})")
    try:
        collection = Collection.open(root, verify_images="none")
    except ValueError as err:
        raise RenderError(f"collection {root} cannot be read: {err}") from None
    if reference not in collection:
        raise RenderError(f"appearance {reference!r} of {ckpt} is not in the collection {root} "
                          f"({', '.join(collection.appearance_names)}); pass the right collection=DIR")
    if collection.meta.n_expr != n_expr:
        raise RenderError(f"collection {root} has n_expr={collection.meta.n_expr} expression coefficients, {ckpt} "
                          f"was trained with {n_expr}; pass the right collection=DIR")
    return collection


def load_head(path: str, meta: AvatarMeta) -> FLAME:
    try:
        return FLAME.from_file(path, n_shape=len(meta.shape), n_expr=meta.n_expr)
    except (OSError, ValueError) as err:
        raise RenderError(f"head model {path}: {err} (head_model=PATH when the file moved)") from None


def pose_frames(flame: FLAME, shape: Tensor, motion: Motion) -> FrameSet:
    """The drive frames posed on the subject's shape [n_shape]; appearance 0 until a tile sets its own."""
    return FrameSet.build(flame, shape, torch.from_numpy(motion.expr).float(),
                          torch.from_numpy(motion.rotations).float(), torch.from_numpy(motion.transl).float(),
                          torch.zeros(len(motion), dtype=torch.long))


@dataclass
class RenderJob:
    renderer: AvatarRenderer  # eval mode, on the chosen device
    appearances: list[int]  # indices of the tiles' appearances
    names: list[str]  # every appearance of the checkpoint
    drive: Drive
    frames: FrameSet  # the posed drive frames [T], on the CPU
    head_verts: Tensor  # [V, 3] the subject's canonical mesh: where the front and orbit cameras look


def prepare(cfg: RenderVideoConfig) -> RenderJob:
    """Checks the options, loads the checkpoint, collection and head model, resolves and poses the drive."""
    check_options(cfg)
    renderer, meta, config = open_checkpoint(cfg.ckpt, cfg.device, cfg.chunk)
    picks = pick_appearances(cfg.appearance, meta.appearance_names, cfg.ckpt)
    reference = meta.appearance_names[picks[0]]
    collection = open_collection(cfg.collection or config["data"]["root"], cfg.ckpt, reference, meta.n_expr)
    flame = load_head(cfg.head_model or meta.head_model, meta)
    drive = resolve_drive(cfg.drive, collection, reference, meta.n_expr, flame.expr_names, cfg.fps, cfg.max_frames)
    frames = pose_frames(flame, meta.shape, drive.motion)
    return RenderJob(renderer, picks, meta.appearance_names, drive, frames, meta.canon_verts)
