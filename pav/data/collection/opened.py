"""What `Collection.open` returns: the collection and its appearances, images read on demand."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .format import (
    META_FILE,
    VERIFY_LEVELS,
    Cameras,
    CollectionMeta,
    FlameSequence,
    Split,
    VerifyLevel,
    _cross_base,
    _frame_file,
    _mask_file,
)
from .images import _read_image, _to_unit


@dataclass(eq=False)
class Appearance:
    """One appearance of the subject: its cameras, FLAME sequence, split and images."""

    name: str
    kind: str
    root: Path  # ROOT/<name>
    cameras: Cameras
    flame: FlameSequence
    split: Split
    landmarks: dict[str, np.ndarray] | None
    image_size: tuple[int, int]  # (H, W)
    collection_root: Path
    frame_files: dict[str, dict[int, Path]] = field(default_factory=dict, repr=False)  # cam -> id -> path
    valid_files: dict[str, dict[int, Path]] = field(default_factory=dict, repr=False)  # empty: every pixel known

    @property
    def frame_ids(self) -> list[int]:
        return [int(i) for i in self.flame.frame_ids]

    @property
    def camera_names(self) -> list[str]:
        return list(self.cameras.names)

    def camera_name(self, cam: str | int) -> str:
        """A camera name, from its name or its index into `cameras.names`."""
        if isinstance(cam, int) and not isinstance(cam, bool):
            if not 0 <= cam < len(self.cameras):
                raise IndexError(f"appearance {self.name!r}: camera index {cam} out of range "
                                 f"for {len(self.cameras)} cameras")
            return self.cameras.names[cam]
        if cam not in self.cameras.names:
            raise KeyError(f"appearance {self.name!r}: camera {cam!r} not in cameras.npz names "
                           f"{self.cameras.names}")
        return cam

    def frame_path(self, cam: str | int, frame_id: int) -> Path:
        name = self.camera_name(cam)
        self.flame.index_of(frame_id)  # KeyError for an unknown id
        found = self.frame_files.get(name, {}).get(int(frame_id))
        return found if found is not None else _frame_file(self.root, name, int(frame_id))

    def mask_path(self, cam: str | int, frame_id: int) -> Path:
        name = self.camera_name(cam)
        self.flame.index_of(frame_id)
        return _mask_file(self.root, name, int(frame_id))

    @property
    def has_valid_masks(self) -> bool:
        """Whether some pixels of its frames are unknown (valid/ masks); without them every pixel is real."""
        return bool(self.valid_files)

    def valid_path(self, cam: str | int, frame_id: int) -> Path | None:
        """The frame's validity mask (255: a real pixel, 0: unknown), or None when every pixel is known."""
        name = self.camera_name(cam)
        self.flame.index_of(frame_id)
        return self.valid_files.get(name, {}).get(int(frame_id))

    def load_valid(self, cam: str | int, frame_id: int) -> np.ndarray:  # [H, W] bool: True where the pixel is real
        path = self.valid_path(cam, frame_id)
        if path is None:
            return np.ones(self.image_size, bool)
        return _read_image(path, "L", self.image_size, self.collection_root) >= 128

    def load_frame(self, cam: str | int, frame_id: int) -> np.ndarray:  # [H, W, 3] float32 in [0, 1]
        return _to_unit(_read_image(self.frame_path(cam, frame_id), "RGB", self.image_size,
                                    self.collection_root))

    def load_mask(self, cam: str | int, frame_id: int) -> np.ndarray:  # [H, W] float32 in [0, 1]
        return _to_unit(_read_image(self.mask_path(cam, frame_id), "L", self.image_size,
                                    self.collection_root))


class Collection:
    """A validated collection; build it with `Collection.open(root)`."""

    def __init__(self, root: Path, meta: CollectionMeta, shape: np.ndarray,
                 appearances: dict[str, Appearance],
                 cross_files: dict[tuple[str, str], dict[str, dict[int, Path]]]) -> None:
        self.root = root
        self.meta = meta
        self.shape = shape  # [n_shape] float32
        self._appearances = appearances
        self._cross_files = cross_files

    @classmethod
    def open(cls, root: str | Path, verify_images: VerifyLevel = "full") -> Collection:
        """Checks everything; raises one CollectionError listing every problem.

        verify_images: "full" checks each image's size, mode and PNG chunk CRCs (JPEGs are
        decoded); "header" only size and mode; "none" only that the files exist.
        """
        if verify_images not in VERIFY_LEVELS:
            raise ValueError(f"Collection.open: verify_images must be one of {list(VERIFY_LEVELS)}, "
                             f"got {verify_images!r}")
        from .reader import _Reader  # the reader builds Collections: imported when first opened

        return _Reader(Path(root), verify_images).read()

    @property
    def appearance_names(self) -> list[str]:
        return list(self._appearances)

    @property
    def appearances(self) -> list[Appearance]:
        return list(self._appearances.values())

    def appearance(self, name: str) -> Appearance:
        try:
            return self._appearances[name]
        except KeyError:
            raise KeyError(f"unknown appearance {name!r}; {self.root / META_FILE} lists "
                           f"{self.appearance_names}") from None

    def __getitem__(self, name: str) -> Appearance:
        return self.appearance(name)

    def __contains__(self, name: object) -> bool:
        return name in self._appearances

    def __iter__(self) -> Iterator[Appearance]:
        return iter(self._appearances.values())

    def __len__(self) -> int:
        return len(self._appearances)

    def __repr__(self) -> str:
        return f"Collection({str(self.root)!r}, appearances={self.appearance_names})"

    @property
    def cross_pairs(self) -> list[tuple[str, str]]:
        """(appearance, drive) pairs with cross-appearance ground truth."""
        return list(self.meta.cross)

    def _cross_cam(self, appearance: str, drive: str, cam: str | int, frame_id: int) -> str:
        if (appearance, drive) not in self._cross_files:
            raise KeyError(f"no cross pair (appearance={appearance!r}, drive={drive!r}) in "
                           f"{self.root / META_FILE}; pairs: {self.cross_pairs}")
        driver = self.appearance(drive)
        if int(frame_id) not in driver.split.test:
            raise KeyError(f"cross frames exist only for {drive!r}'s test ids (split.json 'test'); "
                           f"got frame id {frame_id}")
        return driver.camera_name(cam)

    def cross_frame_path(self, appearance: str, drive: str, cam: str | int, frame_id: int) -> Path:
        name = self._cross_cam(appearance, drive, cam, frame_id)
        found = self._cross_files[(appearance, drive)].get(name, {}).get(int(frame_id))
        base = _cross_base(self.root, appearance, drive)
        return found if found is not None else _frame_file(base, name, int(frame_id))

    def cross_mask_path(self, appearance: str, drive: str, cam: str | int, frame_id: int) -> Path:
        name = self._cross_cam(appearance, drive, cam, frame_id)
        return _mask_file(_cross_base(self.root, appearance, drive), name, int(frame_id))

    def load_cross(self, appearance: str, drive: str, cam: str | int,
                   frame_id: int) -> tuple[np.ndarray, np.ndarray]:  # [H, W, 3], [H, W] float32
        size = self.meta.image_size
        rgb = _read_image(self.cross_frame_path(appearance, drive, cam, frame_id), "RGB", size, self.root)
        mask = _read_image(self.cross_mask_path(appearance, drive, cam, frame_id), "L", size, self.root)
        return _to_unit(rgb), _to_unit(mask)
