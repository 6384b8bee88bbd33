"""A tiny synthetic collection shared by the training tests (2 appearances x 6 frames at 48 px)."""

import pytest

from pav.synthetic.generate import SyntheticConfig, generate


@pytest.fixture(scope="session")
def tiny_collection(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny") / "collection"
    generate(SyntheticConfig(out=str(root), appearances=2, frames=6, size=48, seed=0, workers=1, cross=False))
    return root
