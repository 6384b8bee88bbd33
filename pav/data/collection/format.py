"""The collection format's names, its dataclasses and the paths of its files."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

FORMAT = "pav-collection"
VERSION = 2  # 2 adds the optional valid/ masks; version-1 collections still open
READ_VERSIONS = (1, 2)
KINDS = ("monocular", "multiview")
VerifyLevel = Literal["full", "header", "none"]
VERIFY_LEVELS: tuple[VerifyLevel, ...] = ("full", "header", "none")
ROTATION_NAMES = ("global", "neck", "jaw", "left_eye", "right_eye")
FRAME_EXTS = (".png", ".jpg")
MASK_EXTS = (".png",)

META_FILE = "collection.json"
SHAPE_FILE = "shape.npy"
CAMERAS_FILE = "cameras.npz"
FLAME_FILE = "flame.npz"
LANDMARKS_FILE = "landmarks.npz"
SPLIT_FILE = "split.json"
CROSS_DIR = "cross"
FRAMES_DIR = "frames"
MASKS_DIR = "masks"
VALID_DIR = "valid"  # 255: a real pixel of the source, 0: unknown (a crop past the frame, a cut-off torso)

VERIFY_WORKERS = 4
POSE_TOL = 1e-3  # last row of c2w, orthonormality of its rotation
PNG_COMPRESS_LEVEL = 1

_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
_IMAGE_NAME_RE = re.compile(r"(\d{6,})(\.[A-Za-z]+)")
_META_KEYS = ("format", "version", "subject", "head_model", "n_shape", "n_expr", "image_size",
              "appearances", "cross", "uv_layout", "landmark_embedding")


@dataclass(frozen=True)
class AppearanceSpec:
    name: str
    kind: str  # "monocular" | "multiview"


@dataclass
class CollectionMeta:
    subject: str
    head_model: str  # path to a head model, or "procedural:<seed>"
    n_shape: int
    n_expr: int
    image_size: tuple[int, int]  # (H, W)
    appearances: list[AppearanceSpec]
    cross: list[tuple[str, str]] = field(default_factory=list)  # (appearance, drive)
    uv_layout: str | None = None  # the head model's separate uv layout file (official FLAME ships one)
    landmark_embedding: str | None = None  # the landmark file tracking used (official FLAME ships it apart)
    version: int = VERSION  # the version read; a written collection.json is always the current one

    @property
    def appearance_names(self) -> list[str]:
        return [a.name for a in self.appearances]

    def spec(self, name: str) -> AppearanceSpec:
        for a in self.appearances:
            if a.name == name:
                return a
        raise KeyError(f"unknown appearance {name!r}; collection.json lists {self.appearance_names}")

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "subject": self.subject,
            "head_model": self.head_model,
            "n_shape": _plain(self.n_shape),
            "n_expr": _plain(self.n_expr),
            "image_size": [_plain(v) for v in self.image_size],
            "appearances": [{"name": a.name, "kind": a.kind} for a in self.appearances],
            "cross": [{"appearance": a, "drive": d} for a, d in self.cross],
            **({} if self.uv_layout is None else {"uv_layout": self.uv_layout}),
            **({} if self.landmark_embedding is None else {"landmark_embedding": self.landmark_embedding}),
        }


def _plain(value: Any) -> Any:
    """numpy scalars to Python ones, so that JSON and the type checks accept them."""
    return value.item() if isinstance(value, np.generic) else value


@dataclass(eq=False)
class Cameras:
    K: np.ndarray  # [C, 3, 3] intrinsics in pixels
    c2w: np.ndarray  # [C, 4, 4] or per frame [T, C, 4, 4]; camera-to-world, OpenCV (x right, y down, z fwd)
    names: list[str]  # [C]

    @property
    def per_frame(self) -> bool:
        return self.c2w.ndim == 4

    def __len__(self) -> int:
        return len(self.names)

    def c2w_at(self, frame_index: int) -> np.ndarray:  # [C, 4, 4]
        """Poses at position `frame_index` of the flame sequence (an index, not a frame id)."""
        if not self.per_frame:
            return self.c2w
        if not -len(self.c2w) <= frame_index < len(self.c2w):
            raise IndexError(f"cameras.npz field 'c2w': frame index {frame_index} out of range "
                             f"for {len(self.c2w)} frames")
        return self.c2w[frame_index]

    def index_of(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"camera {name!r} not in cameras.npz names {self.names}") from None


@dataclass(eq=False)
class FlameSequence:
    frame_ids: np.ndarray  # [T] int64
    expr: np.ndarray  # [T, n_expr]
    rotations: np.ndarray  # [T, 5, 3] axis-angle: global, neck, jaw, left eye, right eye
    transl: np.ndarray  # [T, 3]

    def __len__(self) -> int:
        return len(self.frame_ids)

    @cached_property
    def _positions(self) -> dict[int, int]:
        return {int(f): i for i, f in enumerate(self.frame_ids)}

    def index_of(self, frame_id: int) -> int:
        try:
            return self._positions[int(frame_id)]
        except KeyError:
            raise KeyError(f"frame id {frame_id} not in flame.npz field 'frame_ids'") from None


SPLIT_VERSION = 2  # 2 adds 'val'; a split.json without a version takes its validation from its train frames
SPLIT_PARTS = ("train", "val", "test")


@dataclass
class Split:
    """Which frames train, which choose (validation: never trained on, never reported) and which are reported
    (test: rendered for the final figures alone)."""

    train: list[int]
    test: list[int]
    test_cameras: list[str] = field(default_factory=list)  # multiview: cameras never trained on (novel views)
    val: list[int] = field(default_factory=list)

    def cameras(self, frame_id: int, camera_names: Sequence[str], which: str) -> list[str]:
        """The cameras of one frame in the train, val or test set: test frames are held out in every camera, train
        and validation frames are seen through the training cameras (and are test views in the test cameras)."""
        if which not in SPLIT_PARTS:
            raise ValueError(f"Split.cameras: which must be one of {SPLIT_PARTS}, got {which!r}")
        held = set(self.test_cameras)
        if which in ("train", "val"):
            own = self.train if which == "train" else self.val
            return [c for c in camera_names if c not in held] if frame_id in set(own) else []
        if frame_id in set(self.test):
            return list(camera_names)
        return [c for c in camera_names if c in held] if frame_id in set(self.train) | set(self.val) else []


def _frame_file(base: Path, cam: str, frame_id: int, ext: str = ".png") -> Path:
    return base / FRAMES_DIR / cam / f"{_fmt_id(frame_id)}{ext}"


def _mask_file(base: Path, cam: str, frame_id: int) -> Path:
    return base / MASKS_DIR / cam / f"{_fmt_id(frame_id)}.png"


def _valid_file(base: Path, cam: str, frame_id: int) -> Path:
    return base / VALID_DIR / cam / f"{_fmt_id(frame_id)}.png"


def _cross_base(root: Path, appearance: str, drive: str) -> Path:
    return root / CROSS_DIR / appearance / drive


def _scan_images(folder: Path, exts: Sequence[str]) -> tuple[dict[int, Path], list[str]]:
    """Images named <id:06d><ext> in `folder`, and the names of anything else (hidden files skipped)."""
    found: dict[int, Path] = {}
    odd: list[str] = []
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            m = _IMAGE_NAME_RE.fullmatch(entry.name)
            if m is None or m.group(2) not in exts or entry.name != _fmt_id(int(m.group(1))) + m.group(2):
                odd.append(entry.name)
            elif int(m.group(1)) in found:
                odd.append(f"{entry.name} (same frame as {found[int(m.group(1))].name})")
            else:
                found[int(m.group(1))] = Path(entry.path)
    return found, odd


def _fmt_id(frame_id: int) -> str:
    return f"{frame_id:06d}"
