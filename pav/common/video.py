"""Video files through the ffmpeg that imageio-ffmpeg ships (no system ffmpeg needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["Mp4Writer", "write_mp4"]


class Mp4Writer:
    """Streams uint8 frames [H, W, 3] into an H.264 mp4, so a long video never sits in memory.

    Odd sizes are padded by one edge pixel (yuv420p needs even). Use as a context manager or call close().
    """

    def __init__(self, path: str | Path, height: int, width: int, fps: float) -> None:
        import imageio_ffmpeg

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.height, self.width = height, width
        self._writer = imageio_ffmpeg.write_frames(str(self.path), (width + width % 2, height + height % 2), fps=fps,
                                                   codec="libx264", pix_fmt_out="yuv420p", macro_block_size=1,
                                                   quality=8)
        self._writer.send(None)
        self.count = 0

    def add(self, frame: np.ndarray) -> None:
        h, w = self.height, self.width
        if frame.shape[:2] != (h, w):
            raise ValueError(f"write_mp4: frame of size {frame.shape[:2]} in a video of size {(h, w)} ({self.path})")
        self._writer.send(np.ascontiguousarray(np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")))
        self.count += 1

    def close(self) -> Path:
        self._writer.close()
        return self.path

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_mp4(path: str | Path, frames: list[np.ndarray], fps: float) -> Path:
    """uint8 frames [H, W, 3] -> H.264 mp4; odd sizes are padded by one edge pixel (yuv420p needs even)."""
    if not frames:
        raise ValueError(f"write_mp4: no frames for {path}")
    h, w = frames[0].shape[:2]
    with Mp4Writer(path, h, w, fps) as writer:
        for frame in frames:
            writer.add(frame)
    return writer.path
