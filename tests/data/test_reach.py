"""The field's reach follows the mattes: hair far above the head model is inside it, unknown pixels say nothing."""

import numpy as np
import pytest
import torch

from pav.data.datamodule import AvatarDataModule, DataConfig
from pav.fields.avatar import ModelConfig
from pav.synthetic.generate import SyntheticConfig, generate
from pav.train.run import field_reach

SIZE, BUN_BESIDE, BUN_RADIUS = 64, 0.06, 0.015  # metres beside the head (the views are tight), the bun's radius


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    root = tmp_path_factory.mktemp("reach") / "collection"
    threads = torch.get_num_threads()
    generate(SyntheticConfig(out=str(root), appearances=2, frames=4, size=SIZE, seed=0, workers=1, cross=False))
    torch.set_num_threads(threads)
    return root


def _with_bun(root, appearance: int = 1) -> AvatarDataModule:
    """The collection's data with a bun painted into one appearance's mattes, BUN_BESIDE past the head's side."""
    dm = AvatarDataModule(DataConfig(root=str(root), rays_per_batch=256, val_size=0), 0)
    dm.load()
    dm._load_images()
    side = dm.canonical_verts()[:, 0].max()
    frames = dm.train_frames
    v, u = np.mgrid[:SIZE, :SIZE]
    for i in range(len(dm.alphas)):
        f = int(dm.image_frame[i])
        if int(frames.appearance[f]) != appearance:
            continue
        centre = frames.head_to_world[f] @ torch.tensor([float(side) + BUN_BESIDE, 0.0, 0.0, 1.0])
        cam = torch.linalg.inv(dm.c2w[i]) @ centre
        K = dm.K[i]
        x, y = (K[0, 0] * cam[0] / cam[2] + K[0, 2]).item(), (K[1, 1] * cam[1] / cam[2] + K[1, 2]).item()
        radius = K[0, 0].item() * BUN_RADIUS / cam[2].item()
        disc = (u - x) ** 2 + (v - y) ** 2 <= radius ** 2
        assert disc.any(), "the bun should be in view"
        dm.alphas[i][torch.from_numpy(disc)] = 255
    return dm


def test_the_reach_follows_a_bun_beside_the_head(collection):
    dm = _with_bun(collection)
    reach = dm.matte_reach()
    assert reach[0] < 0.03, f"the plain appearance reaches {reach[0]:.3f} m past the mesh"
    assert BUN_BESIDE - 0.02 < reach[1] < BUN_BESIDE + BUN_RADIUS + 0.02, f"the bun's reach: {reach[1]:.3f} m"
    outer, margin = field_reach(dm, ModelConfig())
    assert outer >= reach[1] and margin > outer, "the field must reach the bun"
    assert field_reach(dm, ModelConfig(reach="fixed")) == (0.06, 0.07)
    assert field_reach(dm, ModelConfig(outer_dist=0.02, max_reach=0.04))[0] == 0.04, "max_reach caps it"


def test_unknown_pixels_do_not_widen_the_reach(collection):
    dm = _with_bun(collection)
    dm.valids = dm.alphas.new_ones(dm.alphas.shape, dtype=torch.bool)
    plain = _with_bun(collection, appearance=-1).alphas  # the same mattes without the bun
    dm.valids &= ~((dm.alphas > 127) & (plain <= 127))  # the bun's pixels are unknown
    assert dm.matte_reach()[1] < 0.03
