"""Pass 1 over a source: even sampling with blur rejection, and a face box for each sampled frame.

The frame count is known before decoding (decode.frame_count), so each evenly spaced target
gets a small window of frames; only those are measured, and the sharpest of each window is
kept in memory until its window closes, when the face detector runs on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from .decode import Source, iter_frames, sharpness
from .detect import FaceBox


@dataclass
class Scan:
    decoded: int  # frames in the source: counted frames (fewer if decoding ended early) or readable images
    ids: np.ndarray  # [S] sampled frame ids, increasing
    sharpness: np.ndarray  # [S] float
    blurred: np.ndarray  # [S] bool: far below the median sharpness of the measured frames
    faces: dict[int, FaceBox]  # sampled frames that are not blurred and show a face


def sample_windows(n: int, count: int, window: int) -> np.ndarray:
    """Windows [S, 2] (first, last frame, inclusive) around min(n, count) evenly spaced targets.

    With n <= count every frame is its own window. Windows never overlap.
    """
    if n <= count:
        ids = np.arange(n, dtype=np.int64)
        return np.stack([ids, ids], axis=1)
    spacing = n / count
    half = int(min(window, max(0, (spacing - 1) // 2)))
    targets = np.floor((np.arange(count) + 0.5) * spacing).astype(np.int64)
    return np.stack([np.maximum(targets - half, 0), np.minimum(targets + half, n - 1)], axis=1)


def scan(source: Source, n: int, count: int, window: int, blur_ratio: float,
         detect: Callable[[np.ndarray], FaceBox | None]) -> Scan:
    """Measures the frames of every window, keeps the sharpest of each and detects its face."""
    windows = sample_windows(n, count, window)
    owner = {int(i): j for j, (lo, hi) in enumerate(windows) for i in range(lo, hi + 1)}  # frame -> window
    measured: list[float] = []  # every measured frame, for the median
    picks: list[tuple[int, float, FaceBox | None]] = []  # (id, sharpness, face) per window
    current: tuple[int, float, np.ndarray] | None = None  # sharpest frame so far in the open window
    open_window, last = -1, -1

    def close() -> None:
        if current is not None:
            picks.append((current[0], current[1], detect(current[2])))

    with tqdm(total=n, desc=f"{source.name}: sampling", unit="frame", leave=False) as bar:
        for index, frame in iter_frames(source, owner):
            last = index
            bar.update(index + 1 - bar.n)
            if owner[index] != open_window:
                close()
                open_window, current = owner[index], None
            s = sharpness(frame)
            measured.append(s)
            if current is None or s > current[1]:
                current = (index, s, frame)
        close()
    ids = np.array([p[0] for p in picks], np.int64)
    sharp = np.array([p[1] for p in picks], np.float64)
    blurred = sharp < blur_ratio * (float(np.median(measured)) if measured else 0.0)
    faces = {p[0]: p[2] for p, b in zip(picks, blurred, strict=True) if not b and p[2] is not None}
    if source.kind == "images":
        decoded = n - len(source.bad_files)
    else:
        decoded = n if last == windows[-1, 1] else last + 1  # a video may end before its counted frames
    return Scan(decoded, ids, sharp, blurred, faces)
