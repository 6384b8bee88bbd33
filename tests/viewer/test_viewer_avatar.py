"""The viewer's pieces without a browser: panel poses, the browser camera, posing and rendering the avatar."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from pav.data.collection import Collection
from pav.render.cameras import look_at
from pav.render.job import RenderError
from pav.viewer.__main__ import main
from pav.viewer.avatar import load_viewer_avatar
from pav.viewer.camera import BrowserCamera
from pav.viewer.pose import N_EXPR_SLIDERS, PanelPose, Sequence, frame_parameters


def camera_at(eye, target, fov=0.5, aspect=1.5) -> BrowserCamera:
    c2w = look_at(np.asarray(eye, float), np.asarray(target, float), np.array([0.0, 1.0, 0.0]))
    x, y, z, w = Rotation.from_matrix(c2w[:3, :3]).as_quat()
    return BrowserCamera((w, x, y, z), tuple(eye), fov, aspect)


@pytest.fixture(scope="module")
def viewer_avatar(contrasting_avatar):
    return load_viewer_avatar(str(contrasting_avatar.ckpt), "cpu", collection=str(contrasting_avatar.collection))


def test_sliders_set_jaw_expression_and_head_rotation():
    pose = PanelPose(jaw=0.2, expr=(1.0, -0.5) + (0.0,) * (N_EXPR_SLIDERS - 2), yaw=30.0)
    expr, rotations, transl = frame_parameters(pose, n_expr=10)
    assert expr.tolist() == [1.0, -0.5] + [0.0] * 8
    assert rotations[2].tolist() == pytest.approx([0.2, 0.0, 0.0])
    assert rotations[0].tolist() == pytest.approx([0.0, np.deg2rad(30.0), 0.0])  # yaw: about the head's up axis
    assert transl.tolist() == [0.0, 0.0, 0.0]


def test_a_sequence_plays_relative_to_its_mean_head_pose(tiny_avatar):
    app = Collection.open(tiny_avatar.collection, verify_images="none").appearance("long_auburn")
    seq = Sequence.of(app)
    mean = Rotation.from_rotvec(seq.rotations[:, 0]).mean()
    assert mean.magnitude() < 1e-6 and np.abs(seq.transl.mean(0)).max() < 1e-6
    expr, rotations, _ = frame_parameters(PanelPose(jaw=0.1), len(seq.expr[0]), seq, t=len(seq) + 2)  # loops
    np.testing.assert_allclose(expr, seq.expr[2])
    assert rotations[2, 0] == pytest.approx(seq.rotations[2, 2, 0] + 0.1)


def test_browser_camera_looks_where_viser_points_it():
    camera = camera_at((0.1, 0.2, 1.0), (0.0, 0.0, 0.0), fov=0.6, aspect=1.5)
    h, w = camera.image_size(64)
    assert (h, w) == (64, 96)
    K, c2w = camera.intrinsics(64), camera.c2w()
    target_cam = np.linalg.inv(c2w) @ np.array([0.0, 0.0, 0.0, 1.0])
    pixel = (K @ target_cam[:3]) / target_cam[2]
    assert pixel[:2] == pytest.approx([(w - 1) / 2, (h - 1) / 2])
    assert K[1, 1] == pytest.approx(32 / np.tan(0.3))  # vertical field of view


def test_an_appearance_swap_reuses_the_posed_frame(viewer_avatar):
    pose = PanelPose(jaw=0.15)
    first = viewer_avatar.frame(pose, 0)
    second = viewer_avatar.frame(pose, 1)
    assert second.bvh is first.bvh and second.posed_verts is first.posed_verts
    assert first.appearance.tolist() == [0] and second.appearance.tolist() == [1]
    with pytest.raises(ValueError, match="appearance index 5"):
        viewer_avatar.frame(pose, 5)


def test_the_start_view_sees_the_avatar_and_appearances_differ(viewer_avatar):
    start = viewer_avatar.start
    camera = camera_at(start.position, start.look_at, start.fov, 1.0)
    images = [viewer_avatar.render(viewer_avatar.frame(PanelPose(), a), camera, 48) for a in (0, 1)]
    assert images[0].shape == (48, 48, 3)
    assert (images[0] < 200).any(axis=-1).mean() > 0.05  # not a blank white canvas
    assert np.abs(images[0].astype(int) - images[1]).mean() > 1.0


def test_a_render_stops_between_chunks_when_asked(viewer_avatar):
    start = viewer_avatar.start
    camera = camera_at(start.position, start.look_at, start.fov, 1.0)
    calls = []
    image = viewer_avatar.render(viewer_avatar.frame(PanelPose(), 0), camera, 256,
                                 stop=lambda: calls.append(1) or len(calls) > 1)
    assert image is None and len(calls) == 2


def test_a_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(RenderError, match="no such checkpoint"):
        load_viewer_avatar(str(tmp_path / "none.ckpt"), "cpu")
    with pytest.raises(SystemExit, match="python -m pav.viewer: .*no such checkpoint"):
        main([f"ckpt={tmp_path / 'none.ckpt'}"])
    with pytest.raises(SystemExit, match="prot"):
        main([f"ckpt={tmp_path / 'none.ckpt'}", "prot=1"])
