"""The field's pose conditioning: the head's global and neck rotation reach MLP-D and MLP-O, clamped to the
training frames' range, and frame sets carry the pose they were posed with."""

import pytest
import torch

from pav.deform.frames import FrameSet
from pav.fields.avatar import AvatarField, ModelConfig
from pav.head.flame import FLAME

SMALL = dict(log2_hashmap_size=12, texture_size=16, hashgrid_backend="torch")
BOX = (torch.tensor([-0.2, -0.3, -0.2]), torch.tensor([0.2, 0.2, 0.2]))


def _inputs(n: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(0)
    return (torch.rand(n, 3, generator=gen) * 0.2 - 0.1, torch.rand(n, 2, generator=gen),
            torch.zeros(n, dtype=torch.long), torch.randn(n, 50, generator=gen))


def _field(pose_cond: bool, pose_range: torch.Tensor | None = None) -> AvatarField:
    torch.manual_seed(0)
    field = AvatarField(ModelConfig(pose_cond=pose_cond, density_bias=0.0, **SMALL), 1, *BOX, pose_range)
    with torch.no_grad():  # a trained-looking grid: the default start is nearly constant
        field.encoding.table.normal_(0.0, 0.5)
    return field


def test_density_follows_the_pose_only_when_conditioned():
    points, uv, appearance, expr = _inputs(256)
    front, turned = torch.zeros(256, 6), torch.zeros(256, 6)
    turned[:, 1] = 0.3  # 17 degrees of yaw
    on, off = _field(True), _field(False)
    assert (on.density(points, uv, appearance, expr, front)[0]
            - on.density(points, uv, appearance, expr, turned)[0]).abs().max() > 1e-4
    torch.testing.assert_close(off.density(points, uv, appearance, expr, front)[0],
                               off.density(points, uv, appearance, expr, turned)[0])


def test_poses_past_the_training_range_read_as_its_edge():
    points, uv, appearance, expr = _inputs(128)
    pose_range = torch.tensor([[-0.1] * 6, [0.1, 0.35, 0.1, 0.05, 0.05, 0.05]])
    field = _field(True, pose_range)
    edge, past = torch.zeros(128, 6), torch.zeros(128, 6)
    edge[:, 1], past[:, 1] = 0.35, 1.05  # a turntable's 60 degrees
    dirs = torch.nn.functional.normalize(points, dim=-1)
    torch.testing.assert_close(field(points, dirs, uv, appearance, expr, past),
                               field(points, dirs, uv, appearance, expr, edge))
    inside = torch.zeros(128, 6)
    inside[:, 1] = 0.2
    assert (field.density(points, uv, appearance, expr, inside)[0]
            - field.density(points, uv, appearance, expr, edge)[0]).abs().max() > 1e-5
    assert "pose_range" not in field.state_dict()  # it travels in the checkpoint's meta


def test_a_pose_of_the_wrong_shape_is_refused():
    points, uv, appearance, expr = _inputs(8)
    with pytest.raises(ValueError, match="pose must be"):
        _field(True).density(points, uv, appearance, expr, torch.zeros(8, 3))
    with pytest.raises(ValueError, match="pose_range must be"):
        AvatarField(ModelConfig(**SMALL), 1, *BOX, torch.zeros(6))


def test_frame_sets_carry_the_global_and_neck_rotation():
    flame = FLAME.from_file("procedural:0", n_shape=10, n_expr=10)
    rotations = 0.1 * torch.randn(3, 5, 3)
    frames = FrameSet.build(flame, torch.zeros(10), torch.zeros(3, 10), rotations, torch.zeros(3, 3),
                            torch.zeros(3, dtype=torch.long))
    torch.testing.assert_close(frames.pose, rotations[:, :2].reshape(3, 6))
    assert frames.to("cpu").pose is frames.pose
