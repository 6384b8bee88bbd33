"""The tracker's rasteriser: BVH visibility with barycentrics that carry gradients."""

import torch

from pav.ops.bvh import MeshBVH
from pav.tracking.raster import pixel_dirs, rasterize, ray_barycentrics


def _quad(z: float = 1.0):
    verts = torch.tensor([[[-0.5, -0.5, z], [0.5, -0.5, z], [0.5, 0.5, z], [-0.5, 0.5, z + 0.2]]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    return verts, faces


def test_barycentrics_match_the_bvh_hits():
    verts, faces = _quad()
    hits = rasterize(verts, faces, focal=20.0, size=(16, 16))
    dirs = pixel_dirs(20.0, (16, 16))[hits.pixel]
    _, face_idx, bary = MeshBVH(verts, faces).raycast(torch.zeros_like(dirs), dirs / dirs.norm(dim=-1, keepdim=True))
    assert len(hits.pixel) > 50
    assert torch.equal(face_idx, hits.face_idx)
    assert torch.allclose(bary, hits.bary, atol=1e-5)


def test_barycentric_gradients_match_finite_differences():
    torch.manual_seed(0)
    corners = (torch.tensor([[-0.3, -0.2, 1.0], [0.4, -0.1, 1.1], [0.0, 0.5, 0.9]], dtype=torch.float64)
               + 0.01 * torch.randn(3, 3, dtype=torch.float64)).requires_grad_()
    dirs = torch.tensor([[0.02, 0.05, 1.0], [-0.1, 0.0, 1.0]], dtype=torch.float64)

    def bary(c):
        return ray_barycentrics(dirs, c[0].expand(2, 3), c[1].expand(2, 3), c[2].expand(2, 3))

    assert torch.autograd.gradcheck(bary, (corners,))
    assert torch.allclose(bary(corners).sum(-1), torch.ones(2, dtype=torch.float64))
