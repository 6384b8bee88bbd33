"""Multiresolution hash-grid encoding (instant-ngp style) of points in the unit box.

`hash_encode(points, table, spec)` maps points [N, 3] in [0, 1]^3 to features [N, L*F]: at each of
L levels it trilinearly interpolates F features stored at the 8 corners of the point's cell. Coarse
levels whose vertices all fit in the table slice are stored densely; finer ones are hashed. All levels
share one flat table [n_params, F]; `spec.offsets` says where each level's rows start.

The math (shared by the native op `pav._C` and the pure-torch twin `hash_encode_torch`):
- each coordinate is clamped to [0, 1]; the gradient passes where 0 <= x <= 1, as torch.clamp's does;
- at a level of res cells per side: p = x * res, cell = min(floor(p), res - 1), frac = p - cell;
- corner (cx, cy, cz) lives at row cx + cy * (res+1) + cz * (res+1)^2 of a dense level, at row
  (cx ^ cy * 2654435761 ^ cz * 805459861) mod 2^log2_hashmap_size (uint32) of a hashed one,
  plus the level's offset;
- output is level-major: out[n, l*F + f].
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import cached_property

import torch
from torch.autograd.function import once_differentiable

from ._ext import get_ext

MAX_LEVELS = 32  # the native op passes levels by value to its kernels
MAX_LOG2_HASHMAP_SIZE = 30  # rows stay below 2^30, so the uint32 row arithmetic is exact
MAX_RESOLUTION = 1 << 24  # float32 positions cannot tell finer cells apart
PRIME_Y = 2654435761
PRIME_Z = 805459861
UINT32_MASK = 0xFFFFFFFF
# [8, 3]: corner c = x + 2y + 4z is vertex cell + (x, y, z), as in pav/ops/csrc/include/pav/hashgrid.h
CORNER_BITS = torch.tensor([[(c >> axis) & 1 for axis in range(3)] for c in range(8)])

_warned_cuda_fallback = False


def _check_int(name: str, value: object, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"HashGridSpec.{name} must be an int, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"HashGridSpec.{name} must be {bounds}, got {value}")


@dataclass(frozen=True)
class HashGridSpec:
    """The shape of a hash grid; the derived layout is computed in float64 Python, once."""

    n_levels: int = 16
    n_features: int = 2
    log2_hashmap_size: int = 18
    base_resolution: int = 16
    finest_resolution: int = 2048

    def __post_init__(self) -> None:
        _check_int("n_levels", self.n_levels, 1, MAX_LEVELS)
        _check_int("n_features", self.n_features, 1)
        _check_int("log2_hashmap_size", self.log2_hashmap_size, 1, MAX_LOG2_HASHMAP_SIZE)
        _check_int("base_resolution", self.base_resolution, 1, MAX_RESOLUTION)
        _check_int("finest_resolution", self.finest_resolution, 1, MAX_RESOLUTION)
        if self.finest_resolution < self.base_resolution:
            raise ValueError(
                f"HashGridSpec.finest_resolution ({self.finest_resolution}) must be >= "
                f"base_resolution ({self.base_resolution})"
            )

    @cached_property
    def growth_factor(self) -> float:
        """b = exp((ln finest - ln base) / (L - 1)), 1 for a single level."""
        if self.n_levels == 1:
            return 1.0
        return math.exp((math.log(self.finest_resolution) - math.log(self.base_resolution)) / (self.n_levels - 1))

    @cached_property
    def resolutions(self) -> tuple[int, ...]:
        """Cells per side of each level: floor(base * b^l). The 1e-9 absorbs float64 round-off, so that
        the last level is exactly the finest resolution."""
        return tuple(
            math.floor(self.base_resolution * self.growth_factor**level + 1e-9) for level in range(self.n_levels)
        )

    @cached_property
    def dense_levels(self) -> tuple[bool, ...]:
        """A level is dense when its (res + 1)^3 vertices fit in 2^log2_hashmap_size rows."""
        return tuple((res + 1) ** 3 <= 1 << self.log2_hashmap_size for res in self.resolutions)

    @cached_property
    def level_rows(self) -> tuple[int, ...]:
        """Rows per level: dense vertex count rounded up to a multiple of 8, else 2^log2_hashmap_size."""
        return tuple(
            ((res + 1) ** 3 + 7) // 8 * 8 if dense else 1 << self.log2_hashmap_size
            for res, dense in zip(self.resolutions, self.dense_levels, strict=True)
        )

    @cached_property
    def offsets(self) -> tuple[int, ...]:
        """First row of each level in the flat table, then the total: L + 1 entries, offsets[-1] = n_params."""
        starts = [0]
        for rows in self.level_rows:
            starts.append(starts[-1] + rows)
        return tuple(starts)

    @property
    def n_params(self) -> int:
        """Rows of the flat table."""
        return self.offsets[-1]

    @property
    def n_output_dims(self) -> int:
        return self.n_levels * self.n_features


def _check_inputs(points: torch.Tensor, table: torch.Tensor, spec: HashGridSpec) -> None:
    """ValueError with the reason for anything the op cannot take."""
    if not isinstance(spec, HashGridSpec):
        raise ValueError(f"hash_encode: spec must be a HashGridSpec, got {type(spec).__name__}")
    if not isinstance(points, torch.Tensor) or not isinstance(table, torch.Tensor):
        raise ValueError("hash_encode: points and table must be tensors")
    if points.dim() != 2 or points.shape[1] != 3:
        raise ValueError(f"hash_encode: points must be [N, 3], got {list(points.shape)}")
    expected_table = [spec.n_params, spec.n_features]
    if list(table.shape) != expected_table:
        raise ValueError(f"hash_encode: table must be {expected_table} for this spec, got {list(table.shape)}")
    if points.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"hash_encode: points must be float32 or float64, got {points.dtype}")
    if table.dtype != points.dtype:
        raise ValueError(f"hash_encode: table dtype {table.dtype} differs from points dtype {points.dtype}")
    if table.device != points.device:
        raise ValueError(f"hash_encode: table is on {table.device} but points are on {points.device}")


def _corner_rows(corners: torch.Tensor, resolution: int, dense: bool, log2_hashmap_size: int) -> torch.Tensor:
    """Rows within a level of integer grid vertices [..., 3] -> [...]."""
    x, y, z = corners.unbind(-1)
    if dense:
        side = resolution + 1
        return x + side * (y + side * z)
    hashed = x ^ ((y * PRIME_Y) & UINT32_MASK) ^ ((z * PRIME_Z) & UINT32_MASK)
    return hashed & ((1 << log2_hashmap_size) - 1)


def hash_encode_torch(points: torch.Tensor, table: torch.Tensor, spec: HashGridSpec) -> torch.Tensor:
    """Pure-torch twin of the native op: the test oracle and the fallback. points [N, 3] -> [N, L*F]."""
    _check_inputs(points, table, spec)
    unit = points.clamp(0.0, 1.0)  # [N, 3]
    corner_bits = CORNER_BITS.to(points.device)  # [8, 3]
    features = []
    for resolution, offset, dense in zip(spec.resolutions, spec.offsets[:-1], spec.dense_levels, strict=True):
        scaled = unit * resolution  # [N, 3]
        cell = torch.floor(scaled).clamp(max=resolution - 1).detach()  # [N, 3]
        frac = scaled - cell  # [N, 3]
        corners = cell.long()[:, None, :] + corner_bits  # [N, 8, 3]
        rows = _corner_rows(corners, resolution, dense, spec.log2_hashmap_size) + offset  # [N, 8]
        sides = torch.stack([1.0 - frac, frac], dim=-1)  # [N, 3, 2]: weight of the lower, upper corner
        wx, wy, wz = sides.unbind(1)  # [N, 2] each
        weights = (wz[:, :, None, None] * wy[:, None, :, None] * wx[:, None, None, :]).reshape(-1, 8)  # [N, 8]
        values = table.index_select(0, rows.reshape(-1)).view(-1, 8, spec.n_features)  # [N, 8, F]
        features.append(torch.einsum("nc,ncf->nf", weights, values))  # [N, F]
    return torch.cat(features, dim=1)  # [N, L*F]


class _HashEncode(torch.autograd.Function):
    """The native op with its backward: table gradient always, point gradient only when asked for."""

    @staticmethod
    def forward(ctx, points: torch.Tensor, table: torch.Tensor, spec: HashGridSpec, ext) -> torch.Tensor:
        out = ext.hash_encode_forward(
            points, table, list(spec.resolutions), list(spec.offsets), spec.log2_hashmap_size
        )  # [N, L*F]
        ctx.save_for_backward(points, table)
        ctx.spec = spec
        ctx.ext = ext
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        points, table = ctx.saved_tensors
        spec = ctx.spec
        grad_table, grad_points = ctx.ext.hash_encode_backward(
            grad_out.contiguous(),  # [N, L*F]
            points,
            table,
            list(spec.resolutions),
            list(spec.offsets),
            spec.log2_hashmap_size,
            ctx.needs_input_grad[1],
            ctx.needs_input_grad[0],
        )  # [n_params, F] or None, [N, 3] or None
        return grad_points, grad_table, None, None


def _native_op(points: torch.Tensor, backend: str):
    """The extension to serve these tensors, or None for the twin."""
    global _warned_cuda_fallback
    ext = get_ext(backend, "hash_encode")
    if ext is None:
        return None
    if points.device.type not in ("cpu", "cuda"):
        if backend == "ext":
            raise ValueError(f"hash_encode: backend 'ext' runs on CPU or CUDA tensors, got device {points.device}")
        return None
    if points.device.type == "cuda" and not ext.with_cuda and backend == "auto":
        if not _warned_cuda_fallback:
            warnings.warn(
                "hash_encode: pav._C was built without CUDA; the pure-torch twin serves CUDA tensors",
                RuntimeWarning,
                stacklevel=3,
            )
            _warned_cuda_fallback = True
        return None
    return ext


def hash_encode(points: torch.Tensor, table: torch.Tensor, spec: HashGridSpec, backend: str = "auto") -> torch.Tensor:
    """Encode points [N, 3] in the unit box with the grid `table` [spec.n_params, F] -> [N, L*F].

    Differentiable w.r.t. the table and the points (the native op once; for double backward, e.g. a
    loss on d features / d points, use the twin). backend: "auto" (native op when it builds, else the
    twin), "ext" (native op or an error), "torch" (the twin). float32, or float64 for both tensors.
    """
    _check_inputs(points, table, spec)
    ext = _native_op(points, backend)
    if ext is None:
        return hash_encode_torch(points, table, spec)
    return _HashEncode.apply(points.contiguous(), table.contiguous(), spec, ext)
