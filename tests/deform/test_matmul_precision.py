"""The geometry does not follow torch's float32 matmul precision: rays, head space and canonical points come out
the same whether a run allows reduced-precision matmuls (TF32 on a GPU, bf16x3 on this CPU) or not."""

import math

import pytest
import torch

from pav.deform import Canonicalizer, FrameSet
from pav.head.flame import FLAME
from pav.render import pixel_rays


@pytest.fixture
def reduced_matmul_precision():
    before = torch.get_float32_matmul_precision()
    yield lambda: torch.set_float32_matmul_precision("medium")
    torch.set_float32_matmul_precision(before)


def _geometry(frames: FrameSet, canon: Canonicalizer):
    gen = torch.Generator().manual_seed(1)
    n = 4000
    K = torch.tensor([[500.0, 0, 128], [0, 500.0, 128], [0, 0, 1]]).expand(n, 3, 3)
    angle = torch.rand(n, generator=gen)
    c2w = torch.eye(4).repeat(n, 1, 1)
    c2w[:, 0, 0], c2w[:, 0, 2], c2w[:, 2, 0], c2w[:, 2, 2] = angle.cos(), angle.sin(), -angle.sin(), angle.cos()
    c2w[:, :3, 3] = torch.tensor([0.1, -0.05, -1.2])
    origins, dirs = pixel_rays(K, c2w, torch.rand(n, 2, generator=gen) * 256)
    frame_idx = torch.randint(len(frames), (n,), generator=gen)
    head_o, head_d = frames.world_to_head(origins, dirs, frame_idx)
    verts = frames.posed_verts[frame_idx, torch.randint(frames.posed_verts.shape[1], (n,), generator=gen)]
    points = verts + 0.01 * torch.randn(n, 3, generator=gen)
    samples = canon(points, head_d, frames.posed_verts, frames.bvh, frame_idx)
    return [dirs, head_o, head_d, samples.points, samples.dirs]


@pytest.mark.parametrize("mode", ["rigid", "affine"])
def test_geometry_ignores_the_matmul_precision(reduced_matmul_precision, mode):
    flame = FLAME.from_file("procedural:0", n_shape=10, n_expr=10)
    gen = torch.Generator().manual_seed(0)
    rotations = 0.3 * torch.randn(3, 5, 3, generator=gen)
    frames = FrameSet.build(flame, torch.zeros(10), 0.5 * torch.randn(3, 10, generator=gen), rotations,
                            0.05 * torch.randn(3, 3, generator=gen), torch.zeros(3))
    canon_verts = flame(shape=torch.zeros(1, 10)).verts[0]
    canon = Canonicalizer(canon_verts, flame.faces, torch.zeros(flame.num_faces, 3, 2), mode, 0.06, math.inf)
    full = _geometry(frames, canon)
    reduced_matmul_precision()
    for name, a, b in zip(("ray dirs", "head origins", "head dirs", "canonical points", "canonical dirs"), full,
                          _geometry(frames, canon), strict=True):
        assert torch.equal(a, b), f"{name} moved by up to {float((a - b).abs().max()):.3g}"
