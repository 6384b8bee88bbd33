"""Video files through the ffmpeg that imageio-ffmpeg ships (no system ffmpeg needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["write_mp4"]


def write_mp4(path: str | Path, frames: list[np.ndarray], fps: float) -> Path:
    """uint8 frames [H, W, 3] -> H.264 mp4; odd sizes are padded by one edge pixel (yuv420p needs even)."""
    import imageio_ffmpeg

    if not frames:
        raise ValueError(f"write_mp4: no frames for {path}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    writer = imageio_ffmpeg.write_frames(str(path), (w + w % 2, h + h % 2), fps=fps, codec="libx264",
                                         pix_fmt_out="yuv420p", macro_block_size=1, quality=8)
    writer.send(None)
    for frame in frames:
        if frame.shape[:2] != (h, w):
            raise ValueError(f"write_mp4: frame of size {frame.shape[:2]} in a video of size {(h, w)} ({path})")
        writer.send(np.ascontiguousarray(np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")))
    writer.close()
    return path
