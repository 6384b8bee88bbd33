"""The mesh-against-matte residuals find a tracked mesh that sits off the frames."""

import torch

from pav.data.datamodule import AvatarDataModule, DataConfig
from pav.deform.frames import FrameSet
from pav.synthetic.generate import SyntheticConfig, generate
from pav.track.alignment import mesh_alignment


def test_a_shifted_mesh_shows_in_the_residuals(tmp_path):
    root = tmp_path / "collection"
    threads = torch.get_num_threads()
    generate(SyntheticConfig(out=str(root), appearances=1, frames=4, size=96, seed=0, workers=1, cross=False))
    torch.set_num_threads(threads)
    dm = AvatarDataModule(DataConfig(root=str(root), val_size=0))
    dm.load()
    true_fit = mesh_alignment(dm)
    assert true_fit.outside.max() < 0.02, f"the true mesh pokes past its own matte: {true_fit.outside}"
    frames = dm.train_frames
    shifted = frames.head_to_world.clone()
    shifted[:, 0, 3] += 0.02  # 2 cm sideways: a tracking error
    dm.train_frames = FrameSet(frames.posed_verts, shifted, frames.expr, frames.pose, frames.appearance, frames.bvh)
    off = mesh_alignment(dm)
    assert off.outside.mean() > true_fit.outside.mean() + 0.03
    assert off.edge_px[0] > true_fit.edge_px[0] + 1.0
