"""Shared fixtures and markers. GPU tests are skipped with one reason, defined here."""

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

CUDA_SKIP = pytest.mark.skip(reason="needs a CUDA GPU")


def pytest_collection_modifyitems(config, items):
    """`@pytest.mark.cuda` tests (the only way a test asks for a GPU) are skipped, with this one reason, without one.
    A mark needs no import, so no test module depends on which conftest.py a sys.path entry finds first."""
    if torch.cuda.is_available():
        return
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(CUDA_SKIP)

REPO = Path(__file__).resolve().parents[1]


@dataclass
class TinyAvatar:
    ckpt: Path
    collection: Path


@pytest.fixture(scope="session")
def tiny_avatar(tmp_path_factory) -> TinyAvatar:
    """2 appearances x 4 frames at 32 px (with the cross-appearance set), 30 smoke-trainer steps: barely trained,
    but a real checkpoint."""
    from hydra import compose, initialize_config_dir

    from pav.synthetic.generate import SyntheticConfig, generate
    from pav.train.run import run

    base = tmp_path_factory.mktemp("tiny_avatar")
    root = base / "collection"
    threads = torch.get_num_threads()
    generate(SyntheticConfig(out=str(root), appearances=2, frames=4, size=32, seed=0, workers=1, cross=True))
    torch.set_num_threads(threads)  # generate's in-process worker leaves torch at one thread
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=["trainer=smoke", f"data.root={root}", "trainer.max_steps=30", "logger=none",
                                          "checkpoint_every=1000", "data.eval_size=16", "render.max_samples=128"])
    run(cfg, base / "run")
    return TinyAvatar(base / "run" / "checkpoints" / "last.ckpt", root)


@pytest.fixture(scope="session")
def tiny_collection(tmp_path_factory) -> Path:
    """2 appearances x 6 frames at 48 px, no cross set: the training and rendering tests' collection."""
    from pav.synthetic.generate import SyntheticConfig, generate

    root = tmp_path_factory.mktemp("tiny") / "collection"
    threads = torch.get_num_threads()
    generate(SyntheticConfig(out=str(root), appearances=2, frames=6, size=48, seed=0, workers=1, cross=False))
    torch.set_num_threads(threads)  # generate's in-process worker leaves torch at one thread
    return root
