"""Clips a new user brings: no face, three frames, portrait format, a face that leaves the frame."""

import json

import numpy as np
import pytest
from astro_clip import FACE, apply, render, similarity
from PIL import Image

from pav.common.video import write_mp4
from pav.prepare import PrepareConfig, PrepareError, prepare


def _prepare(tmp_path, frames, name="clip", size=128):
    videos = tmp_path / "videos"
    videos.mkdir(exist_ok=True)
    write_mp4(videos / f"{name}.mp4", frames, fps=25)
    return prepare(PrepareConfig(videos=str(videos), out=str(tmp_path / "out"), size=size))


def test_a_clip_with_no_face_names_the_file(tmp_path, photo):
    sky = [np.ascontiguousarray(photo[:96, 380:508]) for _ in range(8)]  # the flag and the wall: no face
    with pytest.raises(PrepareError, match=r"no appearance could be prepared(.|\n)*sky\.mp4: 0 usable frame"):
        _prepare(tmp_path, sky, "sky")


def test_a_clip_of_three_frames_trains_validates_and_tests_on_one_each(tmp_path, clip_frames):
    summary = _prepare(tmp_path, clip_frames[:3], "short")
    assert summary["appearances"]["short"]["kept"] == 3
    split = json.loads((tmp_path / "out" / "short" / "split.json").read_text())
    assert len(split["train"]) == len(split["val"]) == len(split["test"]) == 1


def test_a_portrait_clip_keeps_the_face_and_marks_the_rest_unknown(tmp_path, photo):
    """720x1280 (width x height): the face box is small; the crop is square around it."""
    frames = []
    for t in range(8):
        M = similarity(t)
        M[:, 2] += np.array([360.0, 640.0]) - apply(M, FACE[None])[0]  # the face in the portrait frame's middle
        frames.append(render(photo, M, hw=(1280, 720)))
    summary = _prepare(tmp_path, frames, "portrait")
    stats = summary["appearances"]["portrait"]
    assert stats["kept"] == 8 and stats["source_size"] in ([720, 1280], [1280, 720])
    alpha = np.asarray(Image.open(next((tmp_path / "out" / "portrait" / "masks" / "00").glob("*.png"))))
    assert (alpha > 127).mean() > 0.2, "the face should fill the crop, not a corner of it"


def test_a_face_that_leaves_the_frame_drops_those_frames_and_says_so(tmp_path, photo):
    frames = []
    for t in range(12):
        M = similarity(0)
        M[:, 2] += np.array([0.0, 0.0]) if t < 8 else np.array([400.0, 0.0])  # the face slides out after frame 7
        frames.append(render(photo, M))
    summary = _prepare(tmp_path, frames, "leaves")
    stats = summary["appearances"]["leaves"]
    # the frames without the face are dropped and counted (as no face, or as blurred: they are nearly flat)
    assert stats["no_face"] + stats["blurred"] >= 3 and stats["kept"] >= 6, stats
    with np.load(tmp_path / "out" / "leaves" / "prepare.npz") as p:
        assert p["frame_ids"].max() < 8, "only the frames that show the face are kept"
