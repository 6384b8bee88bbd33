"""FLAME layer: skinning math, gradients, the restricted pickle loader and model validation.

Every test builds its own tiny head (a 10 x 10 vertex grid with a jaw, a neck and two eye patches),
so nothing here needs the real FLAME model or the procedural head.
"""

from __future__ import annotations

import io
import pickle
import struct
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse
import torch

from pav.head.flame import FLAME, axis_angle_to_matrix
from pav.head.landmarks import points_on_mesh
from pav.head.pickle_io import HeadModelError, load_head_pickle, save_head_pickle

GRID = 10  # vertices per side
N_SHAPE, N_EXPR = 6, 4  # components stored in the tiny model
NECK, JAW, LEFT_EYE, RIGHT_EYE = 1, 2, 3, 4


def _grid_faces() -> np.ndarray:
    """Two triangles per grid cell, [2 * (GRID-1)^2, 3]."""
    faces = []
    for row in range(GRID - 1):
        for col in range(GRID - 1):
            a = row * GRID + col
            faces += [[a, a + 1, a + GRID + 1], [a, a + GRID + 1, a + GRID]]
    return np.asarray(faces, dtype=np.int64)


def _skinning_weights() -> np.ndarray:
    """[V, 5]: bottom row neck, rows 1-3 jaw, two 2x2 eye patches, the rest global (row 4 half neck)."""
    weights = np.zeros((GRID, GRID, 5))
    weights[:, :, 0] = 1.0
    weights[4] = [0.5, 0.5, 0, 0, 0]
    weights[0] = [0, 1, 0, 0, 0]
    weights[1] = [0, 0.2, 0.8, 0, 0]
    weights[2:4] = [0, 0, 1, 0, 0]
    weights[6:8, 2:4] = [0, 0, 0, 1, 0]
    weights[6:8, 6:8] = [0, 0, 0, 0, 1]
    return weights.reshape(GRID * GRID, 5)


def make_head(seed: int = 0) -> dict[str, Any]:
    """A small random-but-valid head model dict in the FLAME pickle layout."""
    rng = np.random.default_rng(seed)
    xs = np.linspace(-1.0, 1.0, GRID)
    x, y = np.meshgrid(xs, xs)  # row index follows y
    template = np.stack([x, y, 0.3 * (1 - x**2 - y**2)], -1).reshape(-1, 3) + rng.normal(
        0, 0.01, (GRID**2, 3)
    )
    weights = _skinning_weights()
    regressor = (weights >= 0.5).T.astype(np.float64)  # [5, V]: each joint at the mean of its region
    regressor[0] = 1.0
    regressor /= regressor.sum(1, keepdims=True)
    posedirs = rng.normal(0, 0.01, (GRID**2, 3, 36))
    for joint in range(1, 5):  # pose correctives only where the joint has influence
        posedirs[weights[:, joint] == 0, :, 9 * (joint - 1) : 9 * joint] = 0.0
    faces = _grid_faces()
    in_jaw = (faces // GRID >= 1) & (faces // GRID <= 3)
    return {
        "v_template": template,
        "f": faces.astype(np.uint32),
        "shapedirs": rng.normal(0, 0.02, (GRID**2, 3, N_SHAPE + N_EXPR)),
        "n_shape_total": N_SHAPE,
        "posedirs": posedirs,
        "J_regressor": regressor,
        "weights": weights,
        "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.uint32),
        "vt": np.stack([x, y], -1).reshape(-1, 2) * 0.5 + 0.5,
        "ft": faces,
        "face_region": in_jaw.all(1).astype(np.int64),
        "region_names": ["skin", "jaw"],
        "expr_names": ["jaw_open", "smile"],
        "lmk_face_idx": np.array([0, 40, 100]),
        "lmk_b_coords": np.array([[1.0, 0, 0], [0.2, 0.3, 0.5], [0, 0.5, 0.5]]),
    }


@pytest.fixture
def head() -> dict[str, Any]:
    return make_head()


@pytest.fixture
def head_path(tmp_path: Path, head: dict[str, Any]) -> Path:
    path = tmp_path / "head.pkl"
    save_head_pickle(path, head)
    return path


@pytest.fixture
def flame(head_path: Path) -> FLAME:
    return FLAME.from_file(head_path, n_shape=N_SHAPE, n_expr=N_EXPR)


def _random_params(batch: int, seed: int = 1, scale: float = 0.3) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "shape": torch.randn(batch, N_SHAPE, generator=gen),
        "expr": torch.randn(batch, N_EXPR, generator=gen),
        "rotations": torch.randn(batch, 5, 3, generator=gen) * scale,
        "transl": torch.randn(batch, 3, generator=gen) * 0.1,
    }


def _rotation(axis: list[float], angle: float) -> torch.Tensor:
    return torch.tensor(axis, dtype=torch.float32) / np.linalg.norm(axis) * angle


# ----------------------------------------------------------------------------------------------
# Skinning


def test_zero_parameters_give_the_template(flame: FLAME, head: dict[str, Any]) -> None:
    out = flame()
    template = torch.tensor(head["v_template"], dtype=torch.float32)
    assert out.verts.shape == (1, GRID**2, 3) and out.joints.shape == (1, 5, 3)
    torch.testing.assert_close(out.verts[0], template, atol=1e-6, rtol=0)
    regressor = torch.tensor(head["J_regressor"], dtype=torch.float32)
    torch.testing.assert_close(out.joints[0], regressor @ template, atol=1e-6, rtol=0)
    zeros = flame(shape=torch.zeros(3, N_SHAPE), rotations=torch.zeros(3, 5, 3))
    assert zeros.verts.shape == (3, GRID**2, 3)
    torch.testing.assert_close(zeros.verts, template.expand(3, -1, -1), atol=1e-6, rtol=0)


@pytest.mark.parametrize("joint", [JAW, LEFT_EYE, RIGHT_EYE])
def test_a_joint_rotation_moves_only_its_vertices(flame: FLAME, head: dict[str, Any], joint: int) -> None:
    shape = torch.randn(1, N_SHAPE, generator=torch.Generator().manual_seed(3))
    rest = flame(shape=shape)
    rotations = torch.zeros(1, 5, 3)
    rotations[0, joint] = _rotation([1.0, 0.3, 0.2], 0.4)
    posed = flame(shape=shape, rotations=rotations)
    moved = (posed.verts - rest.verts).norm(dim=-1)[0]  # [V]
    influenced = torch.from_numpy(head["weights"][:, joint] > 0)
    assert (moved[~influenced] < 1e-6).all()
    assert (moved[influenced] > 1e-3).all()
    torch.testing.assert_close(posed.joints, rest.joints, atol=1e-6, rtol=0)  # leaf joints stay put


def test_global_rotation_and_translation_are_rigid(flame: FLAME, head: dict[str, Any]) -> None:
    rotvec = _rotation([0.2, 1.0, -0.4], 1.1)
    transl = torch.tensor([[0.3, -0.2, 0.5]])
    rotations = torch.zeros(1, 5, 3)
    rotations[0, 0] = rotvec
    out = flame(rotations=rotations, transl=transl)
    rot = torch.from_numpy(_rodrigues_reference(rotvec.double().numpy())).float()
    template = torch.tensor(head["v_template"], dtype=torch.float32)
    root = torch.tensor(head["J_regressor"][0] @ head["v_template"], dtype=torch.float32)
    expected = (template - root) @ rot.T + root + transl
    torch.testing.assert_close(out.verts[0], expected, atol=1e-5, rtol=0)
    rest_joints = torch.tensor(head["J_regressor"] @ head["v_template"], dtype=torch.float32)
    torch.testing.assert_close(out.joints[0], (rest_joints - root) @ rot.T + root + transl, atol=1e-5, rtol=0)


def _rodrigues_reference(rotvec: np.ndarray) -> np.ndarray:
    angle = np.linalg.norm(rotvec)
    if angle == 0:
        return np.eye(3)
    axis = rotvec / angle
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _reference_flame(head: dict[str, Any], params: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """SMPL-style LBS with 4x4 matrices, in float64 numpy: an independent check of the module."""
    dirs = head["shapedirs"]
    v_shaped = head["v_template"] + dirs[:, :, :N_SHAPE] @ params["shape"]
    v_shaped = v_shaped + dirs[:, :, N_SHAPE:] @ params["expr"]
    joints = head["J_regressor"] @ v_shaped  # [5, 3]
    rots = [_rodrigues_reference(r) for r in params["rotations"]]
    pose_feature = np.concatenate([(r - np.eye(3)).ravel() for r in rots[1:]])
    v_posed = v_shaped + head["posedirs"] @ pose_feature
    world, skin = [], []
    for joint, parent in enumerate([-1, 0, 1, 1, 1]):
        local = np.eye(4)
        local[:3, :3] = rots[joint]
        local[:3, 3] = joints[joint] - (joints[parent] if parent >= 0 else 0)
        world.append(local if parent < 0 else world[parent] @ local)
        skin.append(world[-1].copy())
        skin[-1][:3, 3] -= world[-1][:3, :3] @ joints[joint]
    per_vertex = np.einsum("vj,jab->vab", head["weights"], np.stack(skin))  # [V, 4, 4]
    homogeneous = np.concatenate([v_posed, np.ones((len(v_posed), 1))], 1)
    verts = np.einsum("vab,vb->va", per_vertex, homogeneous)[:, :3] + params["transl"]
    return verts, np.stack([g[:3, 3] for g in world]) + params["transl"]


def test_matches_a_4x4_reference_implementation(flame: FLAME, head: dict[str, Any]) -> None:
    params = {name: value[0] for name, value in _random_params(1, seed=11, scale=0.5).items()}
    params["rotations"][3] = 0.0  # one exactly-zero joint rotation
    out = flame(**params)
    verts, joints = _reference_flame(head, {name: value.double().numpy() for name, value in params.items()})
    np.testing.assert_allclose(out.verts[0].numpy(), verts, atol=1e-5)
    np.testing.assert_allclose(out.joints[0].numpy(), joints, atol=1e-5)


def test_axis_angle_matches_reference_and_is_smooth_near_zero() -> None:
    for rotvec in ([0.3, -0.2, 0.9], [1e-3, 2e-3, -1e-3], [0.02, 0.01, 0.0], [2.5, 0.1, 0.3]):
        got = axis_angle_to_matrix(torch.tensor(rotvec, dtype=torch.float64))
        np.testing.assert_allclose(got.numpy(), _rodrigues_reference(np.array(rotvec)), atol=1e-12)
    assert torch.equal(axis_angle_to_matrix(torch.zeros(3)), torch.eye(3))


# ----------------------------------------------------------------------------------------------
# Gradients


@pytest.mark.parametrize("at_zero", [True, False])
def test_gradients_reach_every_input(flame: FLAME, at_zero: bool) -> None:
    params = _random_params(2)
    if at_zero:
        params = {name: torch.zeros_like(value) for name, value in params.items()}
    params = {name: value.requires_grad_() for name, value in params.items()}
    out = flame(**params)
    gen = torch.Generator().manual_seed(7)
    loss = (out.verts * torch.randn(out.verts.shape, generator=gen)).sum() + out.joints.square().sum()
    loss.backward()
    for name, value in params.items():
        assert value.grad is not None and torch.isfinite(value.grad).all(), name
    for name in ("shape", "expr", "transl"):
        assert (params[name].grad.abs().sum(-1) > 0).all(), name
    per_joint = params["rotations"].grad.abs().sum(-1)  # [B, 5]
    assert (per_joint > 0).all(), per_joint


@pytest.mark.parametrize("at_zero", [True, False])
def test_gradcheck_in_float64(flame: FLAME, at_zero: bool) -> None:
    model = flame.double()
    params = {name: value.double() for name, value in _random_params(2, seed=5).items()}
    if at_zero:
        params["rotations"] = torch.zeros_like(params["rotations"])
    names = ("shape", "expr", "rotations", "transl")
    inputs = tuple(params[name].requires_grad_() for name in names)

    def run(shape: torch.Tensor, expr: torch.Tensor, rotations: torch.Tensor, transl: torch.Tensor) -> Any:
        out = model(shape=shape, expr=expr, rotations=rotations, transl=transl)
        return out.verts[:, ::9], out.joints  # a vertex subset keeps the full Jacobian small

    assert torch.autograd.gradcheck(run, inputs)

    def run_all(*args: torch.Tensor) -> Any:
        return tuple(model(**dict(zip(names, args, strict=True))))

    assert torch.autograd.gradcheck(run_all, inputs, fast_mode=True)  # every vertex, random projections


# ----------------------------------------------------------------------------------------------
# Arguments


def test_arguments_broadcast_and_wrong_shapes_name_the_argument(flame: FLAME) -> None:
    params = _random_params(3)
    shape_one = params["shape"][:1]
    batched = flame(shape=shape_one.expand(3, -1), rotations=params["rotations"])
    torch.testing.assert_close(flame(shape=shape_one[0], rotations=params["rotations"]).verts, batched.verts)
    torch.testing.assert_close(flame(shape=shape_one, rotations=params["rotations"]).verts, batched.verts)
    with pytest.raises(ValueError, match="'expr'"):
        flame(expr=torch.zeros(2, N_EXPR + 1))
    with pytest.raises(ValueError, match="'rotations'"):
        flame(rotations=torch.zeros(2, 4, 3))
    with pytest.raises(ValueError, match="batch size"):
        flame(shape=torch.zeros(2, N_SHAPE), transl=torch.zeros(3, 3))
    with pytest.raises(TypeError):
        flame(torch.zeros(1, N_SHAPE))  # keyword arguments only


def test_attributes(flame: FLAME, head_path: Path) -> None:
    assert flame.num_verts == GRID**2 and flame.n_shape == N_SHAPE and flame.n_expr == N_EXPR
    assert flame.faces.dtype == torch.long and flame.faces.shape == (2 * (GRID - 1) ** 2, 3)
    assert flame.parents == [-1, 0, 1, 1, 1]
    assert flame.source == str(head_path)
    assert flame.region_names == ["skin", "jaw"] and flame.face_region is not None
    assert flame.expr_names == ["jaw_open", "smile"] and flame.shape_names == []
    assert flame.vt is not None and flame.vt.shape == (GRID**2, 2) and flame.landmarks_dense is None
    assert flame.state_dict() == {}  # model data never goes into checkpoints


# ----------------------------------------------------------------------------------------------
# The chumpy / scipy FLAME 2020 pickle layout


class _FakeCh:
    """Pickles like chumpy's Ch: a reference to chumpy.ch.Ch plus its __dict__ minus caches."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x

    def __getstate__(self) -> dict[str, Any]:
        return {
            "x": self.x,
            "_dirty_vars": set(),
            "_itr": None,
            "_depends_on_deps": {},
            "_make_dense": False,
            "_make_sparse": False,
        }


class _FakeChOp:
    """A chumpy expression node: its state has no 'x'."""

    def __getstate__(self) -> dict[str, Any]:
        return {"a": 1, "_dirty_vars": set()}


class _Python2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes bytes and ASCII str as Python 2 `str` (BINSTRING), as the FLAME 2020 pickle has them."""

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def _save_py2_str(self, obj: bytes | str) -> None:
        raw = obj.encode("latin-1") if isinstance(obj, str) else obj
        self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str


def _python2_style(data: dict[str, Any]) -> bytes:
    """A pickle as Python 2, numpy 1 and old scipy wrote it: str payloads, numpy.core, scipy.sparse.csc."""
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(data)
    raw = buffer.getvalue().replace(b"numpy._core.", b"numpy.core.")
    return raw.replace(b"scipy.sparse._csc\n", b"scipy.sparse.csc\n")


def _pickle_with_fake_chumpy(data: dict[str, Any], python2: bool = False) -> bytes:
    """Protocol-2 pickle that references chumpy.ch.Ch; the fake chumpy is gone afterwards."""
    assert "chumpy" not in sys.modules
    package, module = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    _FakeCh.__module__, _FakeCh.__qualname__, _FakeCh.__name__ = "chumpy.ch", "Ch", "Ch"
    _FakeChOp.__module__, _FakeChOp.__qualname__, _FakeChOp.__name__ = "chumpy.ch", "add", "add"
    module.Ch, module.add, package.ch = _FakeCh, _FakeChOp, module  # type: ignore[attr-defined]
    sys.modules.update({"chumpy": package, "chumpy.ch": module})
    try:
        return _python2_style(data) if python2 else pickle.dumps(data, protocol=2)
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]


@pytest.mark.parametrize("python2", [False, True])
def test_chumpy_and_sparse_pickle_loads_without_chumpy(
    tmp_path: Path, flame: FLAME, head: dict[str, Any], python2: bool
) -> None:
    legacy = dict(head)
    for key in ("shapedirs", "posedirs", "v_template", "weights"):
        legacy[key] = _FakeCh(head[key])
    legacy["J_regressor"] = scipy.sparse.csc_matrix(head["J_regressor"])
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(_pickle_with_fake_chumpy(legacy, python2))
    assert "chumpy" not in sys.modules and "chumpy.ch" not in sys.modules
    raw = path.read_bytes()
    assert (b"scipy.sparse.csc\n" in raw and b"numpy.core.multiarray\n" in raw) == python2

    data = load_head_pickle(path)
    assert isinstance(data["shapedirs"], np.ndarray) and isinstance(data["J_regressor"], np.ndarray)
    np.testing.assert_array_equal(data["J_regressor"], head["J_regressor"])
    loaded = FLAME.from_file(path, n_shape=N_SHAPE, n_expr=N_EXPR)
    params = _random_params(2)
    torch.testing.assert_close(loaded(**params).verts, flame(**params).verts, atol=0, rtol=0)
    assert "chumpy" not in sys.modules


def test_chumpy_object_without_x_is_an_error(tmp_path: Path, head: dict[str, Any]) -> None:
    path = tmp_path / "expression_node.pkl"
    path.write_bytes(_pickle_with_fake_chumpy({**head, "shapedirs": _FakeChOp()}))
    with pytest.raises(HeadModelError, match=r"expression_node\.pkl.*'shapedirs'.*'x'"):
        load_head_pickle(path)


def test_csr_sparse_matrix_is_densified(tmp_path: Path) -> None:
    dense = np.array([[0.0, 2.0, 0.0], [1.0, 0.0, 3.0]])
    path = tmp_path / "sparse.pkl"
    path.write_bytes(pickle.dumps({"a": scipy.sparse.csr_matrix(dense), "b": scipy.sparse.coo_matrix(dense)}))
    data = load_head_pickle(path)
    np.testing.assert_array_equal(data["a"], dense)
    np.testing.assert_array_equal(data["b"], dense)


def test_default_protocol_pickles_load(tmp_path: Path, head: dict[str, Any], flame: FLAME) -> None:
    path = tmp_path / "protocol5.pkl"
    path.write_bytes(pickle.dumps(head, protocol=5))  # arrays go through numpy's _frombuffer
    loaded = FLAME.from_file(path, n_shape=N_SHAPE, n_expr=N_EXPR)
    params = _random_params(1)
    torch.testing.assert_close(loaded(**params).verts, flame(**params).verts, atol=0, rtol=0)


# ----------------------------------------------------------------------------------------------
# Bad files


def _corrupt(name: str, data: dict[str, Any]) -> None:
    n_verts = data["v_template"].shape[0]
    if name == "weights_4_columns":
        data["weights"] = data["weights"][:, :4]
    elif name == "shapedirs_wrong_V":
        data["shapedirs"] = data["shapedirs"][:-1]
    elif name == "v_template_nan":
        data["v_template"] = data["v_template"].copy()
        data["v_template"][3, 1] = np.nan
    elif name == "f_out_of_range":
        data["f"] = data["f"].copy()
        data["f"][5, 2] = n_verts
    elif name == "J_regressor_4_rows":
        data["J_regressor"] = data["J_regressor"][:4]
    elif name == "weights_not_normalized":
        data["weights"] = data["weights"] * 0.9
    elif name == "posedirs_missing":
        del data["posedirs"]
    elif name == "posedirs_flattened":
        data["posedirs"] = data["posedirs"].reshape(n_verts * 3, 36)
    elif name == "kintree_table_cycle":
        data["kintree_table"] = np.array([[4294967295, 0, 3, 1, 1], [0, 1, 2, 3, 4]])
    elif name == "ft_out_of_range":
        data["ft"] = data["ft"] + len(data["vt"])
    elif name == "lmk_b_coords_shape":
        data["lmk_b_coords"] = data["lmk_b_coords"][:, :2]


@pytest.mark.parametrize(
    ("corruption", "field"),
    [
        ("weights_4_columns", "'weights' has shape (100, 4), expected (100, 5)"),
        ("shapedirs_wrong_V", "'shapedirs' has shape (99, 3, 10), expected (100, 3, K)"),
        ("v_template_nan", "'v_template' contains NaN"),
        ("f_out_of_range", "'f' has index 100"),
        ("J_regressor_4_rows", "'J_regressor' has shape (4, 100)"),
        ("weights_not_normalized", "'weights' rows must sum to 1"),
        ("posedirs_missing", "missing field 'posedirs'"),
        ("posedirs_flattened", "'posedirs' has shape (300, 36), expected (100, 3, 36)"),
        ("kintree_table_cycle", "'kintree_table' gives joint 2 parent 3"),
        ("ft_out_of_range", "'ft' has index"),
        ("lmk_b_coords_shape", "'lmk_b_coords' has shape (3, 2), expected (3, 3)"),
    ],
)
def test_inconsistent_model_names_file_and_field(
    tmp_path: Path, head: dict[str, Any], corruption: str, field: str
) -> None:
    _corrupt(corruption, head)
    path = tmp_path / f"{corruption}.pkl"
    save_head_pickle(path, head)
    with pytest.raises(HeadModelError) as info:
        FLAME.from_file(path, n_shape=N_SHAPE, n_expr=N_EXPR)
    assert f"{path}: " in str(info.value) and field in str(info.value)


def test_all_problems_are_reported_together(tmp_path: Path, head: dict[str, Any]) -> None:
    _corrupt("weights_4_columns", head)
    _corrupt("shapedirs_wrong_V", head)
    path = tmp_path / "two_problems.pkl"
    save_head_pickle(path, head)
    with pytest.raises(HeadModelError) as info:
        FLAME.from_file(path)
    lines = str(info.value).splitlines()
    assert any("'weights'" in line for line in lines) and any("'shapedirs'" in line for line in lines)
    assert all(line.startswith(f"{path}: ") for line in lines)


def test_unreadable_files_fail_clearly(tmp_path: Path) -> None:
    noise = tmp_path / "noise.pkl"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(HeadModelError, match=r"noise\.pkl: not a readable"):
        FLAME.from_file(noise)
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(pickle.dumps({"v_template": np.zeros((4, 3))}, protocol=4)[:60])
    with pytest.raises(HeadModelError, match=r"truncated\.pkl: not a readable"):
        load_head_pickle(truncated)
    a_list = tmp_path / "list.pkl"
    a_list.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(HeadModelError, match=r"list\.pkl: expected a dict .* got list"):
        FLAME.from_file(a_list)
    with pytest.raises(HeadModelError, match=r"missing\.pkl: no such file"):
        FLAME.from_file(tmp_path / "missing.pkl")


def test_code_in_a_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")  # os.system('touch ...')
    with pytest.raises(HeadModelError, match=r"evil\.pkl: refusing to load class 'os\.system'"):
        load_head_pickle(path)
    assert not marker.exists()
    nested = tmp_path / "nested.pkl"
    nested.write_bytes(pickle.dumps({"v_template": np.zeros(3), "x": Path("/")}))
    with pytest.raises(HeadModelError, match=r"nested\.pkl: refusing to load class 'pathlib"):
        load_head_pickle(nested)


def test_save_refuses_values_the_loader_cannot_read(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="'bad'"):
        save_head_pickle(tmp_path / "x.pkl", {"bad": Path("/")})
    with pytest.raises(TypeError, match="object"):
        save_head_pickle(tmp_path / "x.pkl", {"bad": np.array([None, 1])})


# ----------------------------------------------------------------------------------------------
# Components, uv layouts, landmarks, procedural heads


def test_too_many_components_name_the_field_and_both_numbers(head_path: Path) -> None:
    with pytest.raises(HeadModelError, match=r"'shapedirs' has 4 expression components.*n_expr=5"):
        FLAME.from_file(head_path, n_shape=N_SHAPE, n_expr=N_EXPR + 1)
    with pytest.raises(HeadModelError, match=r"'shapedirs' has 6 shape components.*n_shape=100"):
        FLAME.from_file(head_path, n_expr=N_EXPR)
    fewer = FLAME.from_file(head_path, n_shape=2, n_expr=1)
    assert fewer.expr_names == ["jaw_open"]
    full = FLAME.from_file(head_path, n_shape=N_SHAPE, n_expr=N_EXPR)
    expr = torch.tensor([[0.7]])
    padded = torch.cat([expr, torch.zeros(1, N_EXPR - 1)], 1)  # the first expression component is kept
    torch.testing.assert_close(fewer(expr=expr).verts, full(expr=padded).verts)


def _expected_uv(vt: np.ndarray, ft: np.ndarray, face_idx: np.ndarray, bary: np.ndarray) -> np.ndarray:
    return np.einsum("nck,nc->nk", vt[ft[face_idx]], bary)


def test_uv_layout_from_obj_and_npz(tmp_path: Path, head_path: Path, head: dict[str, Any]) -> None:
    rng = np.random.default_rng(4)
    faces = head["f"].astype(np.int64)
    vt = rng.uniform(0, 1, (GRID**2 + 5, 2))
    ft = (faces + 5)[:, ::-1]  # texture indices differ from vertex indices
    lines = [f"v {x} {y} {z}" for x, y, z in head["v_template"]] + [f"vt {u} {v}" for u, v in vt]
    for tri, tex in zip(faces + 1, ft + 1, strict=True):
        corners = [f"{a}/{b}" if i else f"{a}/{b}/1" for i, (a, b) in enumerate(zip(tri, tex, strict=True))]
        lines.append("f " + " ".join(corners))
    obj = tmp_path / "layout.obj"
    obj.write_text("# uv layout\nvn 0 0 1\n" + "\n".join(lines) + "\n")
    npz = tmp_path / "layout.npz"
    np.savez(npz, vt=vt, ft=ft)
    face_idx = rng.integers(0, len(faces), 20)
    bary = rng.dirichlet(np.ones(3), 20)
    expected = _expected_uv(vt, ft, face_idx, bary)
    for layout in (obj, npz):
        model = FLAME.from_file(head_path, n_shape=N_SHAPE, n_expr=N_EXPR, uv_layout=layout)
        uv = model.face_uv(torch.from_numpy(face_idx), torch.from_numpy(bary).float())
        np.testing.assert_allclose(uv.numpy(), expected, atol=1e-6)
    np.savez(npz, vt=vt[:10], ft=ft)
    with pytest.raises(HeadModelError, match=r"layout\.npz: field 'ft' has index"):
        FLAME.from_file(head_path, n_shape=N_SHAPE, n_expr=N_EXPR, uv_layout=npz)
    np.savez(npz, vt=vt, ft=ft[:-1])
    with pytest.raises(
        HeadModelError, match=r"layout\.npz: field 'ft' has shape \(161, 3\), expected \(162, 3\)"
    ):
        FLAME.from_file(head_path, n_shape=N_SHAPE, n_expr=N_EXPR, uv_layout=npz)


def test_landmark_embeddings_sparse_and_dense(tmp_path: Path, head_path: Path, head: dict[str, Any]) -> None:
    rng = np.random.default_rng(5)
    n_faces = len(head["f"])
    sparse_idx, sparse_bary = rng.integers(0, n_faces, 68), rng.dirichlet(np.ones(3), 68)
    dense_idx, dense_bary = rng.integers(0, n_faces, 30), rng.dirichlet(np.ones(3), 30)
    mp_indices = rng.permutation(478)[:30]
    sparse = tmp_path / "static_embedding.npz"
    np.savez(sparse, lmk_face_idx=sparse_idx, lmk_b_coords=sparse_bary)
    dense = tmp_path / "mediapipe_embedding.pkl"
    save_head_pickle(
        dense, {"lmk_face_idx": dense_idx, "lmk_b_coords": dense_bary, "landmark_indices": mp_indices}
    )
    model = FLAME.from_file(head_path, n_shape=N_SHAPE, n_expr=N_EXPR, landmark_embedding=[sparse, dense])
    assert (
        model.landmarks68 is not None and model.landmarks68.indices is None and len(model.landmarks68) == 68
    )
    assert model.landmarks_dense is not None and model.landmarks_dense.indices is not None
    np.testing.assert_array_equal(model.landmarks_dense.indices.numpy(), mp_indices)

    verts = model(**_random_params(2)).verts
    for kind, face_idx, bary in (("68", sparse_idx, sparse_bary), ("dense", dense_idx, dense_bary)):
        corners = verts[:, torch.from_numpy(head["f"].astype(np.int64)[face_idx])]  # [B, L, 3, 3]
        expected = (corners * torch.from_numpy(bary).float()[None, :, :, None]).sum(2)
        torch.testing.assert_close(model.landmarks(verts, kind=kind), expected, atol=1e-6, rtol=1e-5)


def test_landmark_embedding_errors(tmp_path: Path, head_path: Path, flame: FLAME) -> None:
    with pytest.raises(HeadModelError, match="'dense' landmark embedding"):
        flame.landmarks(flame().verts, kind="dense")
    embedded = flame.landmarks(flame().verts)  # the pickle's own embedding
    assert embedded.shape == (1, 3, 3)
    bad = tmp_path / "bad_embedding.npz"
    np.savez(bad, lmk_face_idx=np.array([0, 500]), lmk_b_coords=np.full((2, 3), 1 / 3))
    with pytest.raises(HeadModelError, match=r"bad_embedding\.npz: field 'lmk_face_idx' has index 500"):
        FLAME.from_file(head_path, n_shape=N_SHAPE, n_expr=N_EXPR, landmark_embedding=bad)
    np.savez(bad, lmk_face_idx=np.array([0, 5]), lmk_b_coords=np.full((3, 3), 1 / 3))
    with pytest.raises(HeadModelError, match=r"bad_embedding\.npz: field 'lmk_b_coords' has shape \(3, 3\)"):
        FLAME.from_file(head_path, n_shape=N_SHAPE, n_expr=N_EXPR, landmark_embedding=bad)


def test_points_on_mesh_vertices_and_midpoints() -> None:
    verts = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]]).expand(2, -1, -1)
    faces = torch.tensor([[0, 1, 2]])
    bary = torch.tensor([[0.0, 1, 0], [0.5, 0.5, 0]])
    points = points_on_mesh(verts, faces, torch.tensor([0, 0]), bary)
    torch.testing.assert_close(points, torch.tensor([[[1.0, 0, 0], [0.5, 0, 0]]]).expand(2, -1, -1))


def test_procedural_path_is_resolved_lazily(
    monkeypatch: pytest.MonkeyPatch, head_path: Path, flame: FLAME
) -> None:
    seeds: list[int] = []

    def procedural_head_path(seed: int) -> Path:
        seeds.append(seed)
        return head_path

    fake = types.ModuleType("pav.head.procedural")
    fake.procedural_head_path = procedural_head_path  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pav.head.procedural", fake)
    model = FLAME.from_file("procedural:7", n_shape=N_SHAPE, n_expr=N_EXPR)
    assert seeds == [7] and model.source == "procedural:7"
    torch.testing.assert_close(model().verts, flame().verts)
    with pytest.raises(HeadModelError, match="procedural:x"):
        FLAME.from_file("procedural:x")


@pytest.mark.cuda
def test_runs_on_cuda(flame: FLAME) -> None:
    params = _random_params(2)
    cpu = flame(**params)
    gpu_model = flame.to("cuda")
    gpu = gpu_model(**{name: value.cuda() for name, value in params.items()})
    torch.testing.assert_close(gpu.verts.cpu(), cpu.verts, atol=1e-5, rtol=1e-5)
    assert gpu_model.landmarks(gpu.verts).device.type == "cuda"


def test_vertex_subset_poses_exactly_those_vertices():
    flame = FLAME.from_file("procedural:0")
    g = torch.Generator().manual_seed(0)
    args = dict(shape=torch.randn(2, 100, generator=g), expr=torch.randn(2, 50, generator=g),
                rotations=0.2 * torch.randn(2, 5, 3, generator=g), transl=torch.randn(2, 3, generator=g))
    full = flame(**args)
    ids = torch.tensor([0, 17, 100, 2500, flame.num_verts - 1])
    subset = flame(**args, vertex_ids=ids)
    assert torch.allclose(subset.verts, full.verts[:, ids], atol=1e-6)
    assert torch.allclose(subset.joints, full.joints, atol=1e-6)
    # the joints follow the shape exactly as regressing them from the full shaped mesh does
    v_shaped = flame(shape=args["shape"]).verts  # no pose: the shaped template
    regressed = torch.einsum("jv,bvk->bjk", flame.J_regressor, v_shaped)
    assert torch.allclose(flame(shape=args["shape"]).joints, regressed, atol=1e-5)
