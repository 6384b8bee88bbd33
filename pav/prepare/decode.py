"""Sources of frames: video files (streamed through imageio-ffmpeg) and folders of images.

Frames are never all held in memory: each pass over a source decodes it again, and a pass that
only wants some frames converts only those and stops after the last one.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

VIDEO_EXTS = (".mp4", ".mov", ".mkv", ".webm", ".avi")
IMAGE_EXTS = (".png", ".jpg", ".jpeg")
RESERVED_NAMES = (".", "..", "cross", "contact_sheets")  # collection and output folders
SHARPNESS_WIDTH = 640  # frames are shrunk to about this width before measuring sharpness

_BAD_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
_FRAME_COUNT = re.compile(r"frame=\s*(\d+)")
_FFMPEG_PREFIX = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*")
_FFMPEG_BANNER = ("ffmpeg version", "built with", "configuration:", "lib", "Input #", "Duration:", "Stream #")


class DecodeError(RuntimeError):
    """A file that yields no frames; the message gives the reason (the caller names the file)."""


@dataclass
class Source:
    """One appearance's input: a video file or a folder of images."""

    name: str  # appearance name, [A-Za-z0-9_.-]+
    path: Path
    kind: str  # "video" | "images"
    fps: float = 0.0  # 0 when unknown
    size: tuple[int, int] = (0, 0)  # (H, W) of the first frame
    bad_files: list[tuple[str, str]] = field(default_factory=list)  # images that failed: (file, reason)

    @property
    def label(self) -> str:
        return self.path.name


def sanitize(name: str) -> str:
    """A file stem or folder name -> an appearance name: runs of other characters become "_"."""
    clean = _BAD_CHARS.sub("_", name).strip("_") or "appearance"
    return f"{clean}_" if clean in RESERVED_NAMES else clean


def list_sources(videos: Path, exclude: Path | None = None) -> list[Source]:
    """Video files and image folders directly inside `videos`, sorted by appearance name.

    Hidden entries and other files are ignored; clashing names get a "-2", "-3", ... suffix.
    """
    if not videos.is_dir():
        raise DecodeError(f"videos={videos}: not a folder")
    found: list[tuple[str, Path, str]] = []
    for entry in sorted(videos.iterdir()):
        if entry.name.startswith(".") or (exclude is not None and entry.resolve() == exclude.resolve()):
            continue
        if entry.is_file() and entry.suffix.lower() in VIDEO_EXTS:
            found.append((sanitize(entry.stem), entry, "video"))
        elif entry.is_dir() and _image_files(entry):
            found.append((sanitize(entry.name), entry, "images"))
    found.sort(key=lambda t: (t[0], t[1].name))
    sources, used = [], set()
    for name, path, kind in found:
        unique, n = name, 1
        while unique in used:
            n += 1
            unique = f"{name}-{n}"
        used.add(unique)
        sources.append(Source(unique, path, kind))
    return sources


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTS)


# ----------------------------------------------------------------------------- decoding


def frame_count(source: Source) -> int:
    """Frames in a video (its packets, counted without decoding: fast) or image files in a folder."""
    if source.kind == "images":
        return len(_image_files(source.path))
    if source.path.stat().st_size == 0:
        raise DecodeError("empty file (0 bytes)")
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-i", str(source.path),
           "-map", "0:v:0", "-c", "copy", "-f", "null", "-"]
    run = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    counts = _FRAME_COUNT.findall(run.stderr)
    if run.returncode != 0 or not counts:
        raise DecodeError(f"cannot open as a video: {_ffmpeg_reason(run.stderr)}")
    if int(counts[-1]) == 0:
        raise DecodeError("no video frames in it")
    return int(counts[-1])


def iter_frames(source: Source, wanted: Iterable[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(frame index, uint8 [H, W, 3]) for every frame, or only the `wanted` indices, in order.

    Frames of a video are read-only views of ffmpeg's buffer. Sets `source.fps` and `source.size`.
    """
    want = None if wanted is None else set(int(i) for i in wanted)
    if want is not None and not want:
        return
    if source.kind == "video":
        yield from _video_frames(source, want)
    else:
        yield from _image_frames(source, want)


def _video_frames(source: Source, want: set[int] | None) -> Iterator[tuple[int, np.ndarray]]:
    import imageio_ffmpeg

    path = source.path
    if path.stat().st_size == 0:
        raise DecodeError("empty file (0 bytes)")
    try:
        # passthrough: one output frame per coded frame, so indices agree with frame_count and across passes
        reader = imageio_ffmpeg.read_frames(str(path), output_params=["-fps_mode", "passthrough"])
        meta = next(reader)
    except (OSError, RuntimeError, StopIteration) as err:
        raise DecodeError(f"cannot open as a video: {_ffmpeg_reason(str(err))}") from None
    w, h = meta["size"]
    source.fps, source.size = float(meta.get("fps") or 0.0), (int(h), int(w))
    last = None if want is None else max(want)
    index = -1
    try:
        for index, buf in enumerate(reader):
            if want is None or index in want:
                yield index, np.frombuffer(buf, np.uint8).reshape(h, w, 3)
            if last is not None and index >= last:
                break
    except RuntimeError as err:
        raise DecodeError(f"decoding failed after {index + 1} frames: "
                          f"{_ffmpeg_reason(str(err))}") from None
    finally:
        reader.close()  # stops ffmpeg when we leave early
    if index < 0:
        raise DecodeError("no video frames decoded")


def _image_frames(source: Source, want: set[int] | None) -> Iterator[tuple[int, np.ndarray]]:
    for index, path in enumerate(_image_files(source.path)):
        if want is not None and index not in want:
            continue
        try:
            with Image.open(path) as im:
                rgb = np.asarray(im.convert("RGB"))
        except (OSError, UnidentifiedImageError, ValueError) as err:
            bad = (f"{source.path.name}/{path.name}", f"cannot read image: {err}")
            if bad not in source.bad_files:
                source.bad_files.append(bad)  # the folder goes on without it
            continue
        if source.size == (0, 0):
            source.size = rgb.shape[:2]
        yield index, rgb


def _ffmpeg_reason(text: str) -> str:
    """The informative lines of ffmpeg's stderr, e.g. "moov atom not found; Error opening input ..."."""
    lines = []
    for raw in text.splitlines():
        line = _FFMPEG_PREFIX.sub("", raw.strip())
        if (not line or line.startswith(_FFMPEG_BANNER) or line.startswith(("Could not", "===", "Error opening input:"))
                or "misdetection possible" in line or "Error opening input file " in line):
            continue
        if line not in lines:
            lines.append(line)
    if lines:
        return "; ".join(lines[-3:])
    return text.strip().splitlines()[0] if text.strip() else "unknown ffmpeg error"


# ----------------------------------------------------------------------------- sharpness


def sharpness(frame: np.ndarray) -> float:  # frame uint8 [H, W, 3]
    """Variance of the Laplacian of the green channel (a luma proxy), block-averaged to about
    SHARPNESS_WIDTH wide first: comparable across resolutions, and cheap enough for every frame."""
    f = max(1, frame.shape[1] // SHARPNESS_WIDTH)
    h, w = frame.shape[0] // f * f, frame.shape[1] // f * f
    green = frame[:h, :w, 1]
    # block sums: strided adds are ~10x faster than reshape-mean; uint16 holds 16 x 16 x 255
    acc = np.zeros((h // f, w // f), np.uint16 if f <= 16 else np.uint32)
    for i in range(f):
        for j in range(f):
            acc += green[i::f, j::f]
    grey = acc.astype(np.float32) / (f * f)
    lap = grey[1:-1, :-2] + grey[1:-1, 2:] + grey[:-2, 1:-1] + grey[2:, 1:-1] - 4 * grey[1:-1, 1:-1]
    return float(lap.var()) if lap.size else 0.0
