"""Head-space frames: moving head-space meshes by head_to_world gives FLAME's world-space vertices."""

import pytest
import torch

from pav.deform import FrameSet, head_transforms
from pav.head.flame import FLAME
from pav.ops._ext import load


def test_head_to_world_recovers_the_posed_mesh():
    flame = FLAME.from_file("procedural:0", n_shape=10, n_expr=10)
    gen = torch.Generator().manual_seed(0)
    shape = 0.5 * torch.randn(1, 10, generator=gen)
    expr = 0.5 * torch.randn(3, 10, generator=gen)
    rotations = 0.3 * torch.randn(3, 5, 3, generator=gen)
    transl = 0.05 * torch.randn(3, 3, generator=gen)
    world = flame(shape=shape, expr=expr, rotations=rotations, transl=transl).verts
    head, to_world = head_transforms(flame, shape, expr, rotations, transl)
    moved = head @ to_world[:, :3, :3].transpose(1, 2) + to_world[:, None, :3, 3]
    torch.testing.assert_close(moved, world, atol=1e-5, rtol=0)


def test_frameset_refuses_nan_expressions():
    flame = FLAME.from_file("procedural:0", n_shape=10, n_expr=10)
    expr = torch.zeros(4, 10)
    expr[2, 3] = float("nan")
    try:
        FrameSet.build(flame, torch.zeros(10), expr, torch.zeros(4, 5, 3), torch.zeros(4, 3), torch.zeros(4))
    except ValueError as exc:
        assert "expr" in str(exc) and "[2]" in str(exc)
    else:
        raise AssertionError("a NaN expression was accepted")


def test_head_transforms_stay_on_the_inputs_device():
    """The meta device stands in for a GPU: nothing may be made on the CPU behind the caller's back."""
    flame = FLAME.from_file("procedural:0", n_shape=10, n_expr=10).to("meta")
    zeros = [torch.zeros(size, device="meta") for size in ((1, 10), (3, 10), (3, 5, 3), (3, 3))]
    verts, to_world = head_transforms(flame, *zeros)
    assert verts.device.type == "meta" and to_world.device.type == "meta"


def _posed_frames(flame: FLAME, device=None) -> FrameSet:
    gen = torch.Generator().manual_seed(1)
    expr = 0.5 * torch.randn(3, 10, generator=gen)
    rotations = 0.2 * torch.randn(3, 5, 3, generator=gen)
    transl = 0.05 * torch.randn(3, 3, generator=gen)
    return FrameSet.build(flame, torch.zeros(10), expr, rotations, transl, torch.arange(3), device=device)


@pytest.fixture
def build_count(monkeypatch):
    """How many times the native BVH build has run since the test started."""
    ext = load()
    builds = []
    real_build = ext.bvh_build
    monkeypatch.setattr(ext, "bvh_build", lambda *args: builds.append(1) or real_build(*args))
    return builds


def test_build_on_a_device_builds_the_bvh_once(build_count):
    flame = FLAME.from_file("procedural:0", n_shape=10, n_expr=10)
    frames = _posed_frames(flame, device="cpu")
    assert len(build_count) == 1 and frames.bvh.device == torch.device("cpu")
    assert frames.to("cpu") is frames and len(build_count) == 1
    default = _posed_frames(flame)
    assert torch.equal(frames.posed_verts, default.posed_verts)
    points = frames.posed_verts[0, ::7] * 1.05  # [n, 3]
    mesh_idx = torch.arange(len(points)) % 3
    for a, b in zip(frames.bvh.nearest(points, mesh_idx), default.bvh.nearest(points, mesh_idx), strict=True):
        assert torch.equal(a, b)


@pytest.mark.cuda
def test_to_moves_the_bvh_instead_of_rebuilding_it(build_count):
    flame = FLAME.from_file("procedural:0", n_shape=10, n_expr=10)
    frames = _posed_frames(flame, device="cuda")
    assert len(build_count) == 1 and frames.bvh.nodes.is_cuda and frames.posed_verts.is_cuda
    on_cpu = frames.to("cpu")
    back = on_cpu.to("cuda")
    assert len(build_count) == 1 and back.bvh.nodes.is_cuda and back.to("cuda") is back
    points = frames.posed_verts[0, ::7] * 1.05
    mesh_idx = torch.arange(len(points), device=points.device) % 3
    on_gpu = frames.bvh.nearest(points, mesh_idx)[0]
    assert torch.equal(back.bvh.nearest(points, mesh_idx)[0], on_gpu)
    assert torch.equal(on_cpu.bvh.nearest(points.cpu(), mesh_idx.cpu())[0], on_gpu.cpu())
