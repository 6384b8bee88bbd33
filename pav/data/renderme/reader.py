"""Read RenderMe-360 SMC files (HDF5): images, masks, calibration, keypoints and FLAME fits, one item at a time.

Layout (root-level groups; ids are group keys: cameras "00".."59", frames unpadded "0", "1", ...):

    attrs                               actor_id, performance_part, capture_date, age, color, gender, height, weight
    Camera                              attrs num_device, num_frame, resolution [H, W]
    Camera/{cid}/color/{fid}            1-D uint8: encoded JPEG
    Camera/{cid}/mask/{fid}             1-D uint8: encoded PNG alpha (21-subject release only)
    Calibration/{cid}/K, D, RT          [3, 3], [5], [4, 4] camera-to-world (OpenCV, metres)
    Keypoints2d/{cid}/{fid}             [106, 2], cameras 18..32 only, entries may be missing
    Keypoints3d/{fid}                   [73, 3]
    FLAME/{fid}/...                     expression parts only: poses, trans, shape, exp, verts, albedos

The 21-subject release splits a sequence into `{actor}_{part}_raw.smc` (colour) and `{actor}_{part}_anno.smc`
(masks and annotations); the 500-subject release has one `{actor}_{part}.smc` without masks. `SMCReader` takes
both forms and looks every group up in the anno file first, then the main one. Nothing is read up front: each
call reads only the dataset it needs. Every problem is an `SMCError` naming the file, camera and frame.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from PIL import Image

__all__ = ["SMCError", "SMCReader", "find_parts"]

PathLike = str | os.PathLike
N_KEYPOINTS2D, N_KEYPOINTS3D = 106, 73
CALIBRATION_SHAPES = {"K": (3, 3), "D": (5,), "RT": (4, 4)}
# None: any size (the fit's dimensions are the release's choice, checked by whoever consumes them)
FLAME_SHAPES: dict[str, tuple[int | None, ...]] = {
    "global_pose": (3,), "neck_pose": (3,), "jaw_pose": (3,), "left_eye_pose": (3,), "right_eye_pose": (3,),
    "trans": (3,), "shape": (None,), "exp": (None,), "verts": (None, 3), "albedos": (3, None, None),
}
MAX_LISTED = 8  # ids listed in a message before "..."
NO_MASKS = "this file has no masks (the 500-subject release ships none)"
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)
_READ_ERRORS = (OSError, RuntimeError)


class SMCError(ValueError):
    """An SMC file that cannot be read as asked; the message names the file, and the camera and frame."""


# ----------------------------------------------------------------------------- helpers


def _short(ids: Sequence[Any]) -> str:
    """A few ids for a message: '00, 02, 18 ... 59 (12 in all)', or a range for consecutive integers."""
    if not ids:
        return "none"
    if len(ids) > 2 and all(isinstance(i, int) for i in ids) and list(ids) == list(range(ids[0], ids[-1] + 1)):
        return f"{ids[0]}..{ids[-1]}"
    if len(ids) <= MAX_LISTED:
        return ", ".join(str(i) for i in ids)
    return ", ".join(str(i) for i in ids[: MAX_LISTED - 1]) + f" ... {ids[-1]} ({len(ids)} in all)"


def _camera_id(cam: int | str) -> str:
    """'07' from 7, '7' or '07' (the release's ids are two digits)."""
    if isinstance(cam, (int, np.integer)) and not isinstance(cam, bool):
        return f"{int(cam):02d}"
    if isinstance(cam, str):
        return f"{int(cam):02d}" if cam.isdigit() else cam
    raise SMCError(f"camera id must be an int or a str, got {type(cam).__name__}")


def _frame_id(frame: int | str) -> str:
    """'12' from 12 or '12' (frame keys are unpadded decimal strings)."""
    if isinstance(frame, (int, np.integer)) and not isinstance(frame, bool):
        return str(int(frame))
    if isinstance(frame, str) and frame.strip().isdigit():
        return str(int(frame))
    raise SMCError(f"frame id must be a non-negative int or a decimal str, got {frame!r}")


def _plain(value: Any) -> Any:
    """An HDF5 attribute as a plain python value: bytes decoded, numpy scalars and arrays unwrapped."""
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        return _plain(value[()]) if value.ndim == 0 else [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _natural_key(name: str) -> list:
    """e2 before e10: digit runs compare as numbers."""
    return [(0, int(tok), "") if tok.isdigit() else (1, 0, tok) for tok in re.split(r"(\d+)", name) if tok]


def _shape_ok(shape: tuple[int, ...], expected: tuple[int | None, ...]) -> bool:
    return len(shape) == len(expected) and all(e is None or s == e for s, e in zip(shape, expected, strict=True))


def _format_shape(expected: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("N" if e is None else str(e) for e in expected) + ("," if len(expected) == 1 else "") + ")"


def _open(path: Path) -> h5py.File:
    if not path.is_file():
        raise SMCError(f"{path}: file not found")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise SMCError(f"{path}: not a readable SMC (HDF5) file, truncated download? ({err})") from err


# ----------------------------------------------------------------------------- reader


class SMCReader:
    """One RenderMe-360 sequence: `SMCReader(raw_or_single_path, anno_path=None)`.

    cam accepts "07" or 7; frame accepts 12 or "12". Images are uint8 RGB [H, W, 3], masks uint8 [H, W].
    """

    def __init__(self, path: PathLike, anno_path: PathLike | None = None) -> None:
        self.path = Path(path)
        self.anno_path = None if anno_path is None else Path(anno_path)
        self._main: h5py.File | None = _open(self.path)
        self._anno: h5py.File | None = None
        try:
            if self.anno_path is not None:
                self._anno = _open(self.anno_path)
            if not self._exists(self._main, "Camera"):
                raise SMCError(f"{self.path}: no 'Camera' group (not a RenderMe-360 SMC file?)")
            if not self.camera_ids:
                raise SMCError(f"{self.path}: no camera has colour images (Camera/*/color); "
                               "pass the _raw.smc file as the main file and the _anno.smc as anno_path")
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        anno = "" if self.anno_path is None else f", anno={self.anno_path.name!r}"
        state = "closed" if self._main is None else "open"
        return f"SMCReader({self.path.name!r}{anno}, {state})"

    def __enter__(self) -> SMCReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HDF5 handles (idempotent)."""
        for handle in (self._anno, self._main):
            if handle is not None:
                handle.close()
        self._main = self._anno = None

    # -- file access ------------------------------------------------------------------------------

    def _files(self) -> list[h5py.File]:
        """Where to look, in order: the anno file, then the main one."""
        if self._main is None:
            raise SMCError(f"{self.path}: the reader is closed")
        return [f for f in (self._anno, self._main) if f is not None]

    @staticmethod
    def _exists(file: h5py.File, name: str) -> bool:
        try:
            return name in file
        except _READ_ERRORS as err:
            raise SMCError(f"{file.filename}: cannot read '{name}' (truncated download?): {err}") from err

    @staticmethod
    def _keys(file: h5py.File, name: str) -> list[str]:
        try:
            return list(file[name].keys())
        except _READ_ERRORS as err:
            raise SMCError(f"{file.filename}: cannot list '{name}' (truncated download?): {err}") from err

    @staticmethod
    def _attrs(file: h5py.File, name: str) -> dict[str, Any]:
        try:
            return dict(file[name].attrs)
        except _READ_ERRORS as err:
            raise SMCError(f"{file.filename}: cannot read the attributes of '{name}' (truncated download?): {err}") \
                from err

    def _locate(self, name: str) -> h5py.File | None:
        """The first file (anno, then main) that holds `name`."""
        return next((f for f in self._files() if self._exists(f, name)), None)

    @staticmethod
    def _read(file: h5py.File, name: str) -> np.ndarray:
        """One dataset, read only now."""
        try:
            item = file[name]
            if not isinstance(item, h5py.Dataset):
                raise SMCError(f"{file.filename}: '{name}' is a group, expected a dataset")
            return np.asarray(item[()])
        except _READ_ERRORS as err:
            raise SMCError(f"{file.filename}: cannot read '{name}' (truncated download?): {err}") from err

    def _where(self) -> str:
        return str(self.path) if self.anno_path is None else f"{self.path} (+ {self.anno_path.name})"

    # -- metadata ---------------------------------------------------------------------------------

    @cached_property
    def attributes(self) -> dict[str, Any]:
        """Root attributes, the main file's over the anno file's, as plain python values."""
        merged: dict[str, Any] = {}
        for file in reversed(self._files()):  # main first: its values win, the anno file's fill in
            for key, value in self._attrs(file, "/").items():
                merged.setdefault(key, _plain(value))
        return merged

    @cached_property
    def camera_ids(self) -> list[str]:
        """Cameras with colour images, from the main file's group keys (never from num_device)."""
        main = self._files()[-1]
        return sorted(c for c in self._keys(main, "Camera") if self._exists(main, f"Camera/{c}/color"))

    @cached_property
    def frame_ids(self) -> list[int]:
        """Colour frame ids of the first camera, sorted."""
        group = f"Camera/{self.camera_ids[0]}/color"
        keys = self._keys(self._files()[-1], group)
        bad = [k for k in keys if not k.isdigit()]
        if bad:
            raise SMCError(f"{self.path}: '{group}' has non-numeric frame keys {_short(bad)}")
        return sorted(int(k) for k in keys)

    @cached_property
    def resolution(self) -> tuple[int, int]:
        """(H, W) from the Camera attributes, else from the first decoded image."""
        for file in self._files():
            attrs = self._attrs(file, "Camera") if self._exists(file, "Camera") else {}
            if "resolution" in attrs:
                value = np.asarray(attrs["resolution"]).reshape(-1)
                if value.size != 2:
                    raise SMCError(f"{file.filename}: Camera attribute 'resolution' has shape {value.shape}, "
                                   "expected (2,) as [H, W]")
                return int(value[0]), int(value[1])
        cam, frame = self.camera_ids[0], self.frame_ids[0]
        main = self._files()[-1]
        data = self._read(main, f"Camera/{cam}/color/{frame}")
        try:
            with Image.open(io.BytesIO(data.tobytes())) as img:  # the header is enough
                return int(img.size[1]), int(img.size[0])
        except _DECODE_ERRORS as err:
            raise SMCError(f"{main.filename}: camera '{cam}' frame {frame}: image does not decode "
                           f"({type(err).__name__}: {err}); the file has no 'resolution' attribute either") from err

    @cached_property
    def has_masks(self) -> bool:
        return self._mask_file is not None

    @cached_property
    def has_flame(self) -> bool:
        return self._locate("FLAME") is not None

    @cached_property
    def _mask_file(self) -> h5py.File | None:
        """The file whose Camera group holds masks (any camera); looked for once."""
        for file in self._files():
            if self._exists(file, "Camera") and any(
                self._exists(file, f"Camera/{c}/mask") for c in self._keys(file, "Camera")
            ):
                return file
        return None

    # -- images -----------------------------------------------------------------------------------

    def _decode(self, file: h5py.File, name: str, cam: str, frame: str, what: str,
                at_least: tuple[int, int] | None = None) -> np.ndarray:
        """Decode an encoded image dataset: [H, W, 3] RGB for 'image', [H, W] for 'mask'.

        at_least (h, w): a JPEG may decode at 1/2, 1/4 or 1/8 scale while it stays at least that big.
        """
        data = self._read(file, name)
        where = f"{file.filename}: camera '{cam}' frame {frame}: {what} does not decode"
        expected = self.resolution
        try:
            with Image.open(io.BytesIO(data.tobytes())) as img:
                if at_least is not None and img.size == (expected[1], expected[0]):
                    img.draft("RGB", (at_least[1], at_least[0]))  # DCT scaling: a fraction of the decode work
                    if img.size != (expected[1], expected[0]):
                        expected = (img.size[1], img.size[0])
                img.load()
                array = np.asarray(img.convert("RGB")) if what == "image" else _single_channel(img)
        except _DECODE_ERRORS as err:
            raise SMCError(f"{where}: {type(err).__name__}: {err}") from err
        if array.size == 0:
            raise SMCError(f"{where}: empty image")
        if array.shape[:2] != expected:
            raise SMCError(f"{where}: size {array.shape[0]}x{array.shape[1]} is not the file's resolution "
                           f"{self.resolution[0]}x{self.resolution[1]} (H x W)")
        return array

    def _frame_dataset(self, file: h5py.File, group: str, cam: str, frame: str, what: str) -> str:
        """Camera/{cam}/{kind}/{frame}, checked: the camera and frame must exist."""
        if not self._exists(file, group):
            kind = group.rsplit("/", 1)[1]
            present = sorted(c for c in self._keys(file, "Camera") if self._exists(file, f"Camera/{c}/{kind}"))
            raise SMCError(f"{file.filename}: camera '{cam}' not in file (cameras with {what}s: {_short(present)})")
        name = f"{group}/{frame}"
        if not self._exists(file, name):
            frames = sorted(int(k) for k in self._keys(file, group) if k.isdigit())
            raise SMCError(f"{file.filename}: camera '{cam}' has no frame {frame} ({what} frames: {_short(frames)})")
        return name

    def image(self, cam: int | str, frame: int | str, at_least: tuple[int, int] | None = None) -> np.ndarray:
        """Colour image, uint8 RGB [H, W, 3]; with at_least=(h, w), possibly a smaller decode [H/k, W/k, 3]
        (k = 2, 4 or 8, JPEG only) that is still at least h x w: much faster when the image is to be shrunk."""
        cam, frame = _camera_id(cam), _frame_id(frame)
        main = self._files()[-1]
        name = self._frame_dataset(main, f"Camera/{cam}/color", cam, frame, "image")
        return self._decode(main, name, cam, frame, "image", at_least)  # [H, W, 3]

    def mask(self, cam: int | str, frame: int | str) -> np.ndarray:
        """Alpha matte, uint8 [H, W]."""
        cam, frame = _camera_id(cam), _frame_id(frame)
        self._files()  # raises once closed, before the cached handle is touched
        file = self._mask_file
        if file is None:
            raise SMCError(f"{self._where()}: {NO_MASKS}")
        name = self._frame_dataset(file, f"Camera/{cam}/mask", cam, frame, "mask")
        return self._decode(file, name, cam, frame, "mask")  # [H, W]

    # -- annotations ------------------------------------------------------------------------------

    def _array(self, file: h5py.File, name: str, expected: tuple[int | None, ...] | None) -> np.ndarray:
        """A float64 dataset of the expected shape (None: any)."""
        array = self._read(file, name)
        if expected is not None and not _shape_ok(array.shape, expected):
            raise SMCError(f"{file.filename}: '{name}' has shape {array.shape}, expected {_format_shape(expected)}")
        try:
            return array.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise SMCError(f"{file.filename}: '{name}' is not numeric ({array.dtype})") from err

    def calibration(self, cam: int | str) -> dict[str, np.ndarray]:
        """{'K': [3, 3], 'D': [5], 'RT': [4, 4] camera-to-world}, float64."""
        cam = _camera_id(cam)
        file = self._locate(f"Calibration/{cam}")
        if file is None:
            calibrated = sorted({c for f in self._files() if self._exists(f, "Calibration")
                                 for c in self._keys(f, "Calibration")})
            raise SMCError(f"{self._where()}: camera '{cam}' not in file (no Calibration/{cam}; "
                           f"calibrated cameras {_short(calibrated)})")
        out = {}
        for key, expected in CALIBRATION_SHAPES.items():
            name = f"Calibration/{cam}/{key}"
            if not self._exists(file, name):
                raise SMCError(f"{file.filename}: camera '{cam}': '{name}' is missing")
            out[key] = self._array(file, name, None if key == "D" else expected)
            if key == "D":  # OpenCV writes (1, 5) or (5, 1) as readily as (5,)
                if out[key].size != 5:
                    raise SMCError(f"{file.filename}: '{name}' has shape {out[key].shape}, expected (5,)")
                out[key] = out[key].reshape(5)
        return out

    def _optional_points(self, name: str, count: int, dims: int) -> np.ndarray | None:
        """A sparse keypoint entry: None when absent or empty (the release's 'no detection')."""
        file = self._locate(name)
        if file is None:
            return None
        array = self._read(file, name)
        if array.size == 0:
            return None
        if array.shape != (count, dims):
            raise SMCError(f"{file.filename}: '{name}' has shape {array.shape}, expected ({count}, {dims})")
        return array.astype(np.float64)

    def keypoints2d(self, cam: int | str, frame: int | str) -> np.ndarray | None:
        """Detected 2D landmarks [106, 2] (pixels), or None: only cameras 18..32 have them, and not every frame."""
        return self._optional_points(f"Keypoints2d/{_camera_id(cam)}/{_frame_id(frame)}", N_KEYPOINTS2D, 2)

    def keypoints3d(self, frame: int | str) -> np.ndarray | None:
        """Triangulated 3D landmarks [73, 3] (world, metres), or None when absent."""
        return self._optional_points(f"Keypoints3d/{_frame_id(frame)}", N_KEYPOINTS3D, 3)

    def flame(self, frame: int | str, keys: Iterable[str] | None = None) -> dict[str, np.ndarray] | None:
        """FLAME fit of a frame as float64 arrays (all datasets, or only `keys`); None if the file has no FLAME."""
        frame = _frame_id(frame)
        file = self._locate("FLAME")
        if file is None:
            return None
        group = f"FLAME/{frame}"
        if not self._exists(file, group):
            frames = sorted(int(k) for k in self._keys(file, "FLAME") if k.isdigit())
            raise SMCError(f"{file.filename}: FLAME has no frame {frame} (frames {_short(frames)})")
        available = sorted(self._keys(file, group))
        wanted = available if keys is None else [keys] if isinstance(keys, str) else list(keys)
        unknown = [k for k in wanted if k not in available]
        if unknown:
            raise SMCError(f"{file.filename}: frame {frame}: FLAME has no {unknown} (has {available})")
        return {k: self._array(file, f"{group}/{k}", FLAME_SHAPES.get(k)) for k in wanted}


def _single_channel(img: Image.Image) -> np.ndarray:
    """A matte [H, W]: the image itself, or the first channel of a matte saved with 3 (or 4) channels."""
    if img.mode == "L":
        return np.asarray(img)
    if img.mode in ("RGB", "RGBA", "LA"):
        return np.asarray(img)[..., 0].copy()
    return np.asarray(img.convert("L"))


# ----------------------------------------------------------------------------- discovery


def find_parts(root: PathLike, subject: str) -> dict[str, tuple[Path, Path | None]]:
    """Parts of a subject, naturally sorted: {"e0": (main, anno or None), ...}.

    Looks in root/subject (or directly in root) for `{subject}_{part}_raw.smc` + `_anno.smc` pairs (the
    21-subject release; main = the raw file) and single `{subject}_{part}.smc` files (the 500-subject release).
    """
    root = Path(root)
    folder = root / subject if (root / subject).is_dir() else root
    pattern = f"{subject}_*.smc"
    if not folder.is_dir():
        raise SMCError(f"{folder}: not a folder (looking for RenderMe-360 files {pattern})")
    raw: dict[str, Path] = {}
    anno: dict[str, Path] = {}
    single: dict[str, Path] = {}
    for path in folder.glob(pattern):
        stem = path.name[len(subject) + 1 : -len(".smc")]
        for suffix, found in (("_raw", raw), ("_anno", anno)):
            if stem.endswith(suffix):
                found[stem[: -len(suffix)]] = path
                break
        else:
            single[stem] = path
    problems = [f"{p.name}: annotation file without its colour file {subject}_{part}_raw.smc"
                for part, p in anno.items() if part not in raw]
    problems += [f"{single[part].name} and {raw[part].name}: both a single file and a raw file for part {part!r}"
                 for part in single if part in raw]
    if problems:
        raise SMCError(f"{folder}: " + "; ".join(sorted(problems)))
    parts: dict[str, tuple[Path, Path | None]] = {part: (path, anno.get(part)) for part, path in raw.items()}
    parts.update({part: (path, None) for part, path in single.items()})
    if not parts:
        raise SMCError(f"{folder}: no RenderMe-360 files matching {pattern} "
                       f"({subject}_<part>_raw.smc + _anno.smc, or {subject}_<part>.smc)")
    return {part: parts[part] for part in sorted(parts, key=_natural_key)}
