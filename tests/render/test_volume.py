"""Volume rendering against closed forms, marching and the occupancy grid."""

import math

import pytest
import torch

from pav.render import OccupancyGrid, composite, march, pixel_rays, ray_box, scale_intrinsics


def test_constant_density_slab_matches_closed_form():
    sigma0, t0, t1, step = 20.0, 0.3, 0.4, 1e-4
    n = round((t1 - t0) / step)
    t = t0 + (torch.arange(n, dtype=torch.float64) + 0.5) * step
    colour, background = torch.tensor([0.2, 0.6, 0.9]), torch.tensor([1.0, 0.0, 0.5])
    out = composite(torch.full((n,), sigma0), colour.expand(n, 3), t.float(), torch.full((n,), step),
                    torch.zeros(n, dtype=torch.long), 1, background[None])
    opacity = 1 - math.exp(-sigma0 * (t1 - t0))
    # depth = integral of t sigma exp(-sigma (t - t0)) over [t0, t1]
    depth = (t0 + 1 / sigma0) - (t1 + 1 / sigma0) * math.exp(-sigma0 * (t1 - t0))
    assert abs(float(out.opacity) - opacity) < 1e-4
    assert abs(float(out.depth) - depth) < 1e-4
    torch.testing.assert_close(out.rgb[0], colour * opacity + background * (1 - opacity), atol=1e-4, rtol=0)
    assert abs(float(out.weights.sum()) - opacity) < 1e-4


def test_rays_do_not_mix():
    sigma = torch.tensor([1e3, 1e3, 0.0, 0.0])
    rgb = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1, 1]])
    out = composite(sigma, rgb, torch.tensor([1.0, 1.1, 1.0, 1.1]), torch.full((4,), 0.1),
                    torch.tensor([0, 0, 2, 2]), 3)
    torch.testing.assert_close(out.rgb[0], torch.tensor([1.0, 0, 0]), atol=1e-4, rtol=0)
    assert out.opacity[1] == 0 and out.opacity[2] == 0
    torch.testing.assert_close(out.depth[0], torch.tensor(1.0), atol=1e-4, rtol=0)


@pytest.mark.parametrize("huge", [1e20, math.inf])
def test_one_enormous_density_leaves_the_other_rays_alone(huge):
    # a saturated field reached densities of 1e20 after ~2900 GPU steps: every later ray of the batch lost its
    # transmittance (opacity above 1, white specks, samples culled as hidden); a float32 exp overflows to inf
    sigma = torch.tensor([huge, 50.0, 50.0, 50.0], requires_grad=True)
    rgb = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1, 1]])
    t, deltas = torch.tensor([0.1, 0.10, 0.11, 0.12]), torch.full((4,), 0.01)
    both = composite(sigma, rgb, t, deltas, torch.tensor([0, 1, 1, 1]), 2)
    alone = composite(sigma[1:].detach(), rgb[1:], t[1:], deltas[1:], torch.zeros(3, dtype=torch.long), 1)
    torch.testing.assert_close(both.weights[1:], alone.weights)
    torch.testing.assert_close(both.rgb[1], alone.rgb[0])
    assert abs(float(both.opacity[0]) - 1.0) < 1e-6
    both.rgb.sum().backward()
    assert torch.isfinite(sigma.grad).all()


def test_march_keeps_steps_inside_occupied_cells():
    grid = OccupancyGrid(torch.tensor([-1.0, -1, -1]), torch.tensor([1.0, 1, 1]), resolution=4)
    grid.occupied.zero_()
    idx, _ = grid.cell_index(torch.tensor([[0.25, 0.25, 0.25]]))
    grid.occupied[idx] = True  # one cell: [0, 0.5]^3
    origins = torch.tensor([[0.25, 0.25, -3.0], [0.75, 0.75, -3.0]])
    dirs = torch.tensor([[0.0, 0, 1], [0.0, 0, 1]])
    samples = march(origins, dirs, grid, step=0.01, max_samples=1000)
    assert (samples.ray_idx == 0).all()
    z = samples.points[:, 2]
    assert len(z) == 50 and float(z.min()) > 0 and float(z.max()) < 0.5
    torch.testing.assert_close(samples.t, z + 3.0)


def test_grid_update_marks_dense_cells():
    grid = OccupancyGrid(torch.tensor([-1.0, -1, -1]), torch.tensor([1.0, 1, 1]), resolution=8)

    def density(cells):  # a ball of radius 0.5
        return torch.where(grid.cell_points(cells).norm(dim=-1) < 0.5, 100.0, 0.0)

    frac = grid.update(density, threshold=1.0, decay=0.5)
    inside = grid.is_occupied(torch.tensor([[0.1, 0.1, 0.1]]))
    outside = grid.is_occupied(torch.tensor([[0.9, 0.9, 0.9]]))
    assert inside.all() and not outside.any()
    assert 0 < frac < 0.2


def test_pixel_rays_hit_the_principal_point_straight_ahead():
    K = torch.tensor([[100.0, 0, 31.5], [0, 100.0, 31.5], [0, 0, 1]])
    c2w = torch.eye(4)
    origins, dirs = pixel_rays(K[None], c2w[None], torch.tensor([[31.5, 31.5]]))
    torch.testing.assert_close(dirs[0], torch.tensor([0.0, 0, 1]))
    half = scale_intrinsics(K, 0.5)
    assert float(half[0, 2]) == 15.5 and float(half[0, 0]) == 50.0
    near, far = ray_box(torch.tensor([[0.0, 0, -2]]), torch.tensor([[0.0, 0, 1]]),
                        torch.tensor([-1.0, -1, -1]), torch.tensor([1.0, 1, 1]))
    assert float(near) == 1.0 and float(far) == 3.0


def test_carving_keeps_what_any_appearance_shows():
    grid = OccupancyGrid(torch.tensor([-0.5, -0.5, -0.5]), torch.tensor([0.5, 0.5, 0.5]), resolution=32)
    K = torch.tensor([[100.0, 0, 63.5], [0, 100.0, 63.5], [0, 0, 1]])
    c2w = torch.eye(4)
    c2w[2, 3] = -3.0  # looking down +z at the box from 3 m
    small = torch.zeros(128, 128, dtype=torch.uint8)
    small[61:67, 61:67] = 255  # appearance 0: a thin column through the centre
    big = torch.zeros(128, 128, dtype=torch.uint8)
    big[54:74, 54:74] = 255  # appearance 1: a wider one
    images = torch.stack([small, big])
    poses = (torch.eye(4).repeat(2, 1, 1), K.repeat(2, 1, 1), c2w.repeat(2, 1, 1), images, torch.zeros(2))
    kept = grid.carve(*poses, torch.tensor([0, 1]))
    # inside appearance 1's column: kept although appearance 0 sees background there
    assert grid.is_occupied(torch.tensor([[0.2, 0.2, 0.0]])).all()
    assert not grid.is_occupied(torch.tensor([[0.45, 0.45, 0.0]])).any()
    assert 0 < kept < 1
    grid.hull.fill_(True)
    grid.occupied.fill_(True)
    grid.carve(*poses, torch.tensor([0, 0]))  # one appearance: the narrower view carves
    assert not grid.is_occupied(torch.tensor([[0.2, 0.2, 0.0]])).any()
    assert grid.is_occupied(torch.tensor([[0.0, 0.0, 0.0]])).all()
