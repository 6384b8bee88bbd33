"""Frames and mattes on disk: verified in parallel, read as float images."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .format import VERIFY_WORKERS
from .problems import CollectionError


@dataclass(frozen=True)
class _ImageJob:
    path: Path
    rel: str
    mode: str  # "RGB" for frames, "L" for masks
    size: tuple[int, int] | None  # (H, W), None when collection.json has no valid image_size


def _verify_image(job: _ImageJob, level: str) -> str | None:
    """One problem line, or None when the image is fine at `level` ("full" or "header")."""
    try:
        with Image.open(job.path) as im:
            problem = _header_problem(im.size, im.mode, job)
            if problem is not None:
                return problem
            if level == "full":
                if im.format == "PNG":
                    im.verify()  # chunk CRCs up to IEND, without decoding
                else:
                    im.load()  # JPEG has no verify(): decode it
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, ... for broken files
        return f"{job.rel}: corrupt or unreadable image ({type(err).__name__}: {_short(err, job.path)})"
    return None


def _header_problem(size_wh: tuple[int, int], mode: str, job: _ImageJob) -> str | None:
    if job.size is not None and size_wh != (job.size[1], job.size[0]):
        return (f"{job.rel}: image is {size_wh[0]}x{size_wh[1]} (W x H), collection.json 'image_size' "
                f"[H, W] = {list(job.size)} wants {job.size[1]}x{job.size[0]}")
    if mode != job.mode:
        return f"{job.rel}: image mode is {mode!r}, expected {job.mode!r}"
    return None


def _short(err: Exception, path: Path) -> str:
    """The error text without the path, which the problem line names already."""
    quoted = repr(str(path))
    return str(err).replace(" " + quoted, "").replace(quoted, "<file>").replace(str(path), "<file>")


def _verify_images(jobs: Sequence[_ImageJob], level: str) -> list[str]:
    if level == "none" or not jobs:
        return []
    with ThreadPoolExecutor(max_workers=VERIFY_WORKERS) as pool:
        results = list(pool.map(lambda job: _verify_image(job, level), jobs))
    return [r for r in results if r is not None]


def _read_image(path: Path, mode: str, size: tuple[int, int], root: Path) -> np.ndarray:
    """uint8 [H, W, 3] for mode "RGB", [H, W] for "L"; a CollectionError naming `path` otherwise."""
    job = _ImageJob(path, str(path), mode, size)
    try:
        with Image.open(path) as im:
            problem = _header_problem(im.size, im.mode, job)
            if problem is None:
                return np.asarray(im)
    except Exception as err:
        raise CollectionError([f"{path}: corrupt or unreadable image ({type(err).__name__}: "
                               f"{_short(err, path)})"], root) from err
    raise CollectionError([problem], root)


def _to_unit(image: np.ndarray) -> np.ndarray:  # uint8 -> float32 in [0, 1]
    return image.astype(np.float32) / np.float32(255.0)
