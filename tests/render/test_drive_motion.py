"""Built-in drive animations and the video cameras, without a model."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from pav.render.cameras import SourceCamera, look_at, look_target, square_intrinsics, video_cameras
from pav.render.drive import JAW_OPEN_RAD, expression_sweep, turntable

BASE = np.array([0.1, -0.2, 0.05])  # a rest rotation the animations turn about


def test_turntable_turns_the_neutral_head_to_plus_and_minus_60_degrees_yaw():
    motion = turntable(40, 50, BASE, np.array([0.0, 0.01, 0.02]))
    rel = Rotation.from_rotvec(BASE).inv() * Rotation.from_rotvec(motion.rotations[:, 0])
    yaw = np.rad2deg(rel.as_rotvec())  # a pure turn about the head's own y axis
    np.testing.assert_allclose(yaw[:, [0, 2]], 0, atol=1e-6)
    assert yaw[0, 1] == pytest.approx(0, abs=1e-6)
    assert yaw[:, 1].max() == pytest.approx(60, abs=1e-6) and yaw[:, 1].min() == pytest.approx(-60, abs=1e-6)
    assert not motion.expr.any() and not motion.rotations[:, 1:].any()
    np.testing.assert_allclose(motion.transl, [[0.0, 0.01, 0.02]] * 40)


def test_expression_sweep_uses_named_components_in_turn():
    names = ["smile", "lip_pucker", "brows_up", "brows_down", "blink_left", "blink_right"]
    motion = expression_sweep(40, 50, names, BASE, np.zeros(3))
    quarter = np.arange(40) // 10  # jaw, smile, brows, blink
    jaw = motion.rotations[:, 2, 0]
    assert jaw.max() == pytest.approx(JAW_OPEN_RAD, rel=0.05) and not jaw[quarter != 0].any()
    for column, segment in ((0, 1), (2, 2), (4, 3), (5, 3)):
        assert motion.expr[:, column].max() > 0.9 and not motion.expr[quarter != segment, column].any()
    assert not motion.expr[:, [1, 3, *range(6, 50)]].any()
    np.testing.assert_allclose(motion.rotations[:, 0], np.repeat(BASE[None], 40, 0))


def test_expression_sweep_without_names_uses_the_first_components():
    motion = expression_sweep(8, 10, [], BASE, np.zeros(3))
    assert [int(np.argmax(motion.expr[i])) for i in (2, 4, 6)] == [0, 1, 2]  # smile, brows, blink segments
    assert not motion.expr[:, 3:].any() and len(motion) == 8


def test_square_intrinsics_centre_a_wide_image():
    K = np.array([[100.0, 0, 39.5], [0, 100.0, 19.5], [0, 0, 1]])  # 40 x 80 (H x W), centred
    out = square_intrinsics(K, (40, 80), 64)
    np.testing.assert_allclose(out[:2, 2], [31.5, 31.5])
    np.testing.assert_allclose(np.diag(out)[:2], [80.0, 80.0])


def test_look_at_puts_the_target_at_the_image_centre():
    c2w = look_at(np.array([0.3, 0.1, 0.6]), np.array([0.0, 0.02, 0.0]), np.array([0.0, 1.0, 0.0]))
    R = c2w[:3, :3]
    np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)
    cam = R.T @ (np.array([0.0, 0.02, 0.0]) - c2w[:3, 3])
    np.testing.assert_allclose(cam[:2], 0, atol=1e-12)
    assert cam[2] > 0 and R[1, 1] < 0  # in front, image y points down the world


def _source(distance: float) -> SourceCamera:
    c2w = look_at(np.array([0.0, 0.0, distance]), np.zeros(3), np.array([0.0, 1.0, 0.0]))
    return SourceCamera(np.array([[200.0, 0, 63.5], [0, 200.0, 63.5], [0, 0, 1]]), c2w, (128, 128))


def test_front_and_orbit_cameras_circle_the_head_at_the_source_distance():
    head_to_world = torch.eye(4).repeat(8, 1, 1)  # the head at rest, facing +z
    verts = torch.tensor([[-0.1, -0.1, -0.1], [0.1, 0.1, 0.1]])
    K, front = video_cameras("front", _source(0.7), head_to_world, verts, 64)
    _, orbit = video_cameras("orbit", _source(0.7), head_to_world, verts, 64)
    np.testing.assert_allclose(K[:2, 2], [31.5, 31.5])
    assert float(K[0, 0]) == pytest.approx(100.0)
    torch.testing.assert_close(front, front[:1].expand(8, 4, 4))  # static
    torch.testing.assert_close(front[:, :3, 3], torch.tensor([[0.0, 0.0, 0.7]]).expand(8, 3), atol=1e-6, rtol=0)
    torch.testing.assert_close(orbit[0], front[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(orbit[2, :3, 3], torch.tensor([0.7, 0.0, 0.0]), atol=1e-6, rtol=0)  # a quarter turn
    torch.testing.assert_close(orbit[:, :3, 3].norm(dim=-1), torch.full((8,), 0.7), atol=1e-6, rtol=0)
    forward = orbit[:, :3, 2]
    torch.testing.assert_close(forward, -orbit[:, :3, 3] / 0.7, atol=1e-6, rtol=0)  # always at the centre


def test_source_camera_keeps_per_frame_poses():
    source = _source(0.7)
    moving = SourceCamera(source.K, np.stack([source.c2w, look_at(np.array([0.2, 0, 0.6]), np.zeros(3),
                                                                   np.array([0.0, 1.0, 0.0]))]), (128, 128))
    K, c2w = video_cameras("source", moving, torch.eye(4).repeat(2, 1, 1), torch.zeros(2, 3), 64)
    np.testing.assert_allclose(c2w.numpy(), moving.c2w, atol=1e-6)
    assert float(K[0, 0]) == pytest.approx(100.0)


def test_cameras_look_where_the_source_looks_when_it_looks_at_the_head():
    c2w = look_at(np.array([0.0, 0.0, 0.7]), np.array([0.0, 0.03, 0.0]), np.array([0.0, 1.0, 0.0]))
    centroid = np.array([0.0, 0.0, 0.02])
    target = look_target(c2w, centroid, 0.15)
    axis = c2w[:3, 2]
    np.testing.assert_allclose(np.cross(target - c2w[:3, 3], axis), 0, atol=1e-12)  # on the source's axis
    assert np.dot(target - centroid, axis) == pytest.approx(0, abs=1e-12)  # level with the centroid
    away = look_at(np.array([0.0, 0.0, 0.7]), np.array([0.5, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    np.testing.assert_allclose(look_target(away, centroid, 0.15), centroid)  # the axis misses the head
