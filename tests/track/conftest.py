"""A synthetic collection with ground truth, for the tracking tests (stripped.py removes the truth)."""

from pathlib import Path

import pytest

from pav.synthetic.generate import SyntheticConfig, generate


@pytest.fixture(scope="session")
def synthetic_truth(tmp_path_factory) -> Path:
    """3 appearances x 30 frames at 256 px, with ground-truth FLAME."""
    root = tmp_path_factory.mktemp("track_truth") / "collection"
    generate(SyntheticConfig(out=str(root), appearances=3, frames=30, size=256, seed=0, workers=2, cross=False))
    return root
