"""The tracker's rasteriser: BVH visibility with barycentrics that carry gradients."""

import pytest
import torch

from pav.ops.bvh import MeshBVH
from pav.track import raster
from pav.track.raster import clip_space, padded_size, pixel_dirs, rasterize, ray_barycentrics, unpad_triangle_ids


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


@pytest.mark.parametrize("size", [(127, 90), (90, 127), (128, 128), (5, 3)])
def test_padded_clip_space_lands_every_pixel_centre_on_its_pixel(size):
    """Points on the OpenCV rays of pixel_dirs (the BVH path) land, through nvdiffrast's conventions, on the
    same pixels: NDC x/w, pixel centres at (i + 0.5) * 2 / size - 1, y up and row 0 at the bottom, then the
    row flip and the crop back to the image."""
    focal = 0.8 * max(size)
    padded = padded_size(size)
    assert all(p % 8 == 0 and size[k] <= p < size[k] + 8 for k, p in enumerate(padded))
    h, w = size
    hp, wp = padded
    depth = torch.linspace(0.5, 3.0, h * w)[:, None]
    cam = (pixel_dirs(focal, size) * depth)[None]  # [1, H*W, 3]: pixel k's centre, at varying depths
    clip = clip_space(cam, focal, size, padded)[0]  # [H*W, 4]
    ndc = clip[:, :2] / clip[:, 3:]
    column = (ndc[:, 0] + 1) * wp / 2 - 0.5  # nvdiffrast pixel coordinates of the points
    row_up = (ndc[:, 1] + 1) * hp / 2 - 0.5
    k = torch.arange(h * w)
    assert torch.allclose(column, (k % w).float(), atol=1e-3)
    assert torch.allclose(hp - 1 - row_up, (k // w).float(), atol=1e-3)  # rows counted from the top
    assert bool(((clip[:, 2] / clip[:, 3]).abs() < 1).all())  # inside the depth range

    # what nvdiffrast would write for these points (id + 1 at the output pixel), cropped back as rasterize does
    rast = torch.zeros(1, hp, wp)
    rast[0, row_up.round().long(), column.round().long()] = (k + 1).float()
    assert torch.equal(unpad_triangle_ids(rast, size), k)


def test_rasterize_refuses_faces_on_another_device():
    verts, faces = _quad()
    with pytest.raises(ValueError, match="faces are on"):
        rasterize(verts, faces.to("meta"), focal=20.0, size=(16, 16))


@pytest.mark.cuda
def test_bvh_rasteriser_on_cuda_matches_the_cpu():
    verts, faces = _quad()
    cpu = rasterize(verts, faces, focal=20.0, size=(15, 17))
    cuda = raster._visible_faces_bvh(verts.cuda(), faces.cuda(), pixel_dirs(20.0, (15, 17), "cuda"))
    assert torch.equal(cuda[0].cpu(), cpu.pixel) and torch.equal(cuda[1].cpu(), cpu.face_idx)


@pytest.mark.cuda
def test_nvdiffrast_matches_the_bvh_at_any_size_with_one_context():
    pytest.importorskip("nvdiffrast.torch")
    verts, faces = _quad()
    verts, faces = verts.cuda().expand(2, -1, -1).contiguous(), faces.cuda()
    for size in ((127, 90), (128, 128)):
        focal = 0.9 * max(size)
        nv_pixel, nv_face = raster._visible_faces_nvdiffrast(verts, faces, focal, size)
        bvh_pixel, bvh_face, _ = raster._visible_faces_bvh(verts, faces, pixel_dirs(focal, size, "cuda"))
        nv = torch.full((2 * size[0] * size[1],), -1, device="cuda")
        nv[nv_pixel] = nv_face
        bvh = torch.full_like(nv, -1)
        bvh[bvh_pixel] = bvh_face
        assert len(bvh_pixel) > 1000
        assert float((nv != bvh).float().mean()) < 0.01  # only pixels on edges may differ
    assert len(raster._RASTER_CONTEXTS) == 1
