"""Head-space frames: moving head-space meshes by head_to_world gives FLAME's world-space vertices."""

import torch

from pav.deform import FrameSet, head_transforms
from pav.head.flame import FLAME


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
