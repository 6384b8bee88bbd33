"""Hash-grid encoding: the native op (pav._C) against its pure-torch twin, gradients, layout, input checks.

The native op is built on first use (about a minute, cached). With PAV_NO_EXT set the native tests skip.
"""

from __future__ import annotations

import os

import pytest
import torch

from pav.fields.encoding import HashGrid
from pav.ops import HashGridSpec, hash_encode, hash_encode_torch
from pav.ops._ext import ExtensionUnavailable, get_ext

PAPER = HashGridSpec()
TINY = HashGridSpec(n_levels=3, n_features=2, log2_hashmap_size=6, base_resolution=2, finest_resolution=8)
SMALL_CONFIGS = [
    TINY,
    HashGridSpec(n_levels=4, n_features=3, log2_hashmap_size=10, base_resolution=3, finest_resolution=40),
    HashGridSpec(n_levels=2, n_features=1, log2_hashmap_size=12, base_resolution=5, finest_resolution=300),
    HashGridSpec(n_levels=5, n_features=4, log2_hashmap_size=8, base_resolution=1, finest_resolution=64),
]


@pytest.fixture(scope="module")
def ext():
    try:
        return get_ext("ext", "test")
    except ExtensionUnavailable:
        if os.environ.get("PAV_NO_EXT"):
            pytest.skip("pav._C disabled by PAV_NO_EXT")
        raise


def make_points(spec: HashGridSpec, n_random: int, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    """Random points slightly beyond the unit box, the box corners, and points on the cell walls of every level."""
    generator = torch.Generator().manual_seed(seed)
    random = torch.rand(n_random, 3, generator=generator, dtype=torch.float64) * 1.2 - 0.1  # [n, 3]
    corners = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.5], [1.0, 0.0, 1.0]], dtype=torch.float64)
    walls = []
    for resolution in spec.resolutions:
        cells = torch.randint(0, resolution + 1, (16, 3), generator=generator)  # [16, 3]
        walls.append(cells.double() / resolution)
    return torch.cat([random, corners, *walls]).to(dtype)  # [N, 3]


def make_table(spec: HashGridSpec, seed: int = 1, dtype=torch.float32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(spec.n_params, spec.n_features, generator=generator, dtype=torch.float64) * 2 - 1).to(dtype)


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual - expected).abs().max() / expected.abs().max().clamp_min(1e-30)).item()


def encode_with_grads(encode, points, table, spec, grad_out):
    points = points.clone().requires_grad_(True)
    table = table.clone().requires_grad_(True)
    out = encode(points, table, spec)
    out.backward(grad_out)
    return out.detach(), table.grad, points.grad


# ---- layout -------------------------------------------------------------------------------------------


def test_paper_spec_layout():
    assert PAPER.resolutions == (16, 22, 30, 42, 58, 80, 111, 153, 212, 294, 406, 561, 776, 1072, 1482, 2048)
    assert PAPER.dense_levels == (True,) * 5 + (False,) * 11  # (58 + 1)^3 <= 2^18 < (80 + 1)^3
    assert PAPER.level_rows[:2] == ((17**3 + 7) // 8 * 8, (23**3 + 7) // 8 * 8)
    assert PAPER.level_rows[5:] == (1 << 18,) * 11
    assert PAPER.offsets[0] == 0 and len(PAPER.offsets) == 17
    assert [b - a for a, b in zip(PAPER.offsets[:-1], PAPER.offsets[1:], strict=True)] == list(PAPER.level_rows)
    assert PAPER.n_params == PAPER.offsets[-1] == 3215360
    assert PAPER.n_output_dims == 32


def test_tiny_spec_has_dense_and_hashed_levels():
    assert TINY.resolutions == (2, 4, 8)
    assert TINY.dense_levels == (True, False, False)  # 27 <= 64 rows, 125 > 64
    assert TINY.offsets == (0, 32, 96, 160)  # 27 rounded up to 32, then 64 + 64


def test_single_level_spec():
    spec = HashGridSpec(n_levels=1, base_resolution=8, finest_resolution=8, log2_hashmap_size=10)
    assert spec.resolutions == (8,) and spec.dense_levels == (True,) and spec.offsets == (0, 736)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"n_levels": 0}, "n_levels"),
        ({"n_levels": 33}, "n_levels"),
        ({"n_features": 0}, "n_features"),
        ({"log2_hashmap_size": 31}, "log2_hashmap_size"),
        ({"base_resolution": 64, "finest_resolution": 32}, "finest_resolution"),
        ({"n_levels": 2.0}, "must be an int"),
        ({"n_features": True}, "must be an int"),
    ],
)
def test_spec_rejects_bad_fields(fields, reason):
    with pytest.raises(ValueError, match=reason):
        HashGridSpec(**fields)


# ---- native op against the twin ----------------------------------------------------------------------


def spec_id(spec: HashGridSpec) -> str:
    return f"L{spec.n_levels}F{spec.n_features}T{spec.log2_hashmap_size}"


@pytest.mark.parametrize("spec", [PAPER, *SMALL_CONFIGS], ids=spec_id)
def test_forward_and_gradients_match_twin(ext, spec):
    points = make_points(spec, 3000)
    table = make_table(spec)
    grad_out = torch.randn(len(points), spec.n_output_dims, generator=torch.Generator().manual_seed(2))
    native = encode_with_grads(lambda p, t, s: hash_encode(p, t, s, backend="ext"), points, table, spec, grad_out)
    twin = encode_with_grads(hash_encode_torch, points, table, spec, grad_out)
    for name, actual, expected in zip(("features", "table grad", "points grad"), native, twin, strict=True):
        assert relative_error(actual, expected) < 1e-5, name


def test_float64_matches_twin(ext):
    points = make_points(TINY, 500, dtype=torch.float64)
    table = make_table(TINY, dtype=torch.float64)
    grad_out = torch.randn(len(points), TINY.n_output_dims, dtype=torch.float64)
    native = encode_with_grads(lambda p, t, s: hash_encode(p, t, s, backend="ext"), points, table, TINY, grad_out)
    twin = encode_with_grads(hash_encode_torch, points, table, TINY, grad_out)
    for actual, expected in zip(native, twin, strict=True):
        assert relative_error(actual, expected) < 1e-12


def test_box_corners_and_clamping(ext):
    spec = SMALL_CONFIGS[1]
    table = make_table(spec)
    inside = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.25, 1.0, 0.0]])
    outside = torch.tensor([[-3.0, -0.5, -1e-3], [7.0, 1.5, 1.0 + 1e-3], [0.25, 2.0, -1.0]])
    assert torch.equal(hash_encode(outside, table, spec, backend="ext"), hash_encode(inside, table, spec, "ext"))
    points = outside.clone().requires_grad_(True)
    hash_encode(points, table, spec, backend="ext").sum().backward()
    clamped = (outside < 0) | (outside > 1)  # [3, 3]
    assert torch.all(points.grad[clamped] == 0) and torch.all(points.grad[~clamped] != 0)


def test_dense_level_reads_the_vertex_row(ext):
    """A point on a grid vertex of a dense level returns that vertex's row, x fastest."""
    spec = HashGridSpec(n_levels=1, n_features=2, log2_hashmap_size=10, base_resolution=4, finest_resolution=4)
    table = make_table(spec)
    vertex = (1, 3, 2)
    points = torch.tensor([vertex], dtype=torch.float32) / 4
    row = vertex[0] + 5 * vertex[1] + 25 * vertex[2]
    assert torch.allclose(hash_encode(points, table, spec, backend="ext")[0], table[row])


def test_hashed_level_uses_the_uint32_hash(ext):
    spec = HashGridSpec(n_levels=1, n_features=1, log2_hashmap_size=4, base_resolution=8, finest_resolution=8)
    table = torch.arange(spec.n_params, dtype=torch.float32)[:, None]  # [16, 1]: each row holds its index
    vertex = (5, 7, 3)
    row = (vertex[0] ^ (vertex[1] * 2654435761 % 2**32) ^ (vertex[2] * 805459861 % 2**32)) % 16
    points = torch.tensor([vertex], dtype=torch.float32) / 8
    assert hash_encode(points, table, spec, backend="ext").item() == row


@pytest.mark.parametrize("backend", ["ext", "torch"])
def test_gradcheck_table_and_points(ext, backend):
    generator = torch.Generator().manual_seed(3)
    finest = TINY.resolutions[-1]  # the walls of every level are multiples of 1 / finest
    cells = torch.randint(0, finest, (6, 3), generator=generator)
    offsets = 0.1 + 0.8 * torch.rand(6, 3, generator=generator, dtype=torch.float64)
    points = ((cells + offsets) / finest).requires_grad_(True)  # [6, 3] away from cell walls (kinks)
    table = make_table(TINY, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p, t: hash_encode(p, t, TINY, backend=backend), (points, table))


def test_no_points_grad_unless_asked(ext):
    points = make_points(TINY, 50)
    table = make_table(TINY).requires_grad_(True)
    hash_encode(points, table, TINY, backend="ext").sum().backward()
    assert points.grad is None and table.grad is not None
    points.requires_grad_(True)
    (grad_points,) = torch.autograd.grad(hash_encode(points, table.detach(), TINY, backend="ext").sum(), points)
    assert grad_points.shape == points.shape


def test_backward_does_not_depend_on_thread_count(ext):
    points = make_points(PAPER, 5000)
    table = make_table(PAPER)
    grad_out = torch.randn(len(points), PAPER.n_output_dims, generator=torch.Generator().manual_seed(4))
    threads = torch.get_num_threads()
    results = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            results.append(
                ext.hash_encode_backward(
                    grad_out, points, table, list(PAPER.resolutions), list(PAPER.offsets), 18, True, True
                )
            )
    finally:
        torch.set_num_threads(threads)
    for one, two in zip(*results, strict=True):
        assert torch.equal(one, two)


def test_empty_batch(ext):
    points = torch.zeros(0, 3, requires_grad=True)
    table = make_table(TINY).requires_grad_(True)
    out = hash_encode(points, table, TINY, backend="ext")
    assert out.shape == (0, TINY.n_output_dims)
    out.sum().backward()
    assert torch.equal(table.grad, torch.zeros_like(table)) and points.grad.shape == (0, 3)


def test_nan_point_stays_in_bounds(ext):
    points = torch.tensor([[float("nan"), 0.5, 0.5], [0.5, 0.5, 0.5]])
    out = hash_encode(points, make_table(PAPER), PAPER, backend="ext")
    assert out[0].isnan().any() and out[1].isfinite().all()


def test_torch_backend_is_the_twin():
    points = make_points(TINY, 100)
    table = make_table(TINY)
    assert torch.equal(hash_encode(points, table, TINY, backend="torch"), hash_encode_torch(points, table, TINY))
    with pytest.raises(ValueError, match="backend"):
        hash_encode(points, table, TINY, backend="cuda")


# ---- input checks -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("points", "table", "reason"),
    [
        (torch.rand(5, 3, dtype=torch.float16), make_table(TINY).half(), "float32 or float64"),
        (torch.randint(0, 2, (5, 3)), make_table(TINY), "float32 or float64"),
        (torch.rand(5, 2), make_table(TINY), r"\[N, 3\]"),
        (torch.rand(5), make_table(TINY), r"\[N, 3\]"),
        (torch.rand(5, 3), make_table(TINY)[:-1], "table must be"),
        (torch.rand(5, 3), make_table(TINY)[:, :1], "table must be"),
        (torch.rand(5, 3, dtype=torch.float64), make_table(TINY), "differs"),
        (torch.rand(5, 3, device="meta"), make_table(TINY), "meta"),
    ],
    ids=["half", "int", "points-2d", "points-1d", "table-rows", "table-features", "mixed-dtypes", "meta-device"],
)
@pytest.mark.parametrize("backend", ["ext", "torch"])
def test_bad_inputs_raise_value_error(points, table, reason, backend):
    with pytest.raises(ValueError, match=reason):
        hash_encode(points, table, TINY, backend=backend)


def test_raw_op_checks_its_inputs(ext):
    points = make_points(TINY, 20)
    table = make_table(TINY)
    levels = (list(TINY.resolutions), list(TINY.offsets), TINY.log2_hashmap_size)
    with pytest.raises(ValueError, match="points must be contiguous"):
        ext.hash_encode_forward(points.t().contiguous().t(), table, *levels)
    with pytest.raises(ValueError, match="table must be contiguous"):
        ext.hash_encode_forward(points, torch.rand(TINY.n_features, TINY.n_params).t(), *levels)
    with pytest.raises(ValueError, match="grad_out must be contiguous"):
        grad_out = torch.rand(TINY.n_output_dims, len(points)).t()
        ext.hash_encode_backward(grad_out, points, table, *levels, True, False)
    with pytest.raises(ValueError, match="rows"):
        ext.hash_encode_forward(points, table, [3, 4, 8], list(TINY.offsets), 6)  # 4^3 dense rows
    with pytest.raises(ValueError, match="table must have"):
        ext.hash_encode_forward(points, table[:-8].contiguous(), *levels)
    with pytest.raises(ValueError, match="differs"):
        ext.hash_encode_forward(points.double(), table, *levels)
    with pytest.raises(ValueError, match="log2_hashmap_size"):
        ext.hash_encode_forward(points, table, list(TINY.resolutions), list(TINY.offsets), 40)


# ---- module -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_hashgrid_module_forward_backward(backend):
    grid = HashGrid(
        n_levels=4, n_features=2, log2_hashmap_size=12, base_resolution=4, finest_resolution=64, backend=backend
    )
    assert grid.n_output_dims == 8 and grid.table.shape == (grid.spec.n_params, 2)
    assert grid.table.abs().max() <= 1e-4
    points = torch.rand(100, 3)
    features = grid(points)
    assert features.shape == (100, 8)
    features.square().sum().backward()
    assert grid.table.grad is not None and grid.table.grad.abs().sum() > 0


def test_hashgrid_module_rejects_unknown_backend():
    with pytest.raises(ValueError, match="backend"):
        HashGrid(backend="jax")


def test_tcnn_backend_needs_tinycudann():
    try:
        import tinycudann  # noqa: F401
    except (ImportError, OSError):  # OSError: installed without a GPU driver
        with pytest.raises(RuntimeError, match="tinycudann"):
            HashGrid(backend="tcnn")
    else:
        pytest.skip("tinycudann is installed")


# ---- CUDA ---------------------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.parametrize("spec", [PAPER, TINY], ids=["paper", "tiny"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_matches_cpu_twin(ext, spec, dtype):
    if not ext.with_cuda:
        pytest.skip("pav._C was built without CUDA")
    points = make_points(spec, 3000, dtype=dtype)
    table = make_table(spec, dtype=dtype)
    grad_out = torch.randn(len(points), spec.n_output_dims, dtype=dtype)
    twin = encode_with_grads(hash_encode_torch, points, table, spec, grad_out)
    native = encode_with_grads(
        lambda p, t, s: hash_encode(p, t, s, backend="ext"), points.cuda(), table.cuda(), spec, grad_out.cuda()
    )
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    for actual, expected in zip(native, twin, strict=True):
        assert relative_error(actual.cpu(), expected) < tolerance
