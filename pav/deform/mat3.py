"""3x3 products of the geometry as elementwise multiply-adds, never through matmul.

A float32 matmul may run in TF32 (or bf16x3 on some CPUs) when `torch.set_float32_matmul_precision` allows it;
for ray origins a metre from the head that is about half a millimetre of error, two of the finest hash cells.
Elementwise products are always full float32, so rays, canonical points and head transforms do not depend on that
global setting, and training, rendering and evaluation see the same geometry.
"""

from __future__ import annotations

import torch
from torch import Tensor


def matvec3(mat: Tensor, vec: Tensor) -> Tensor:
    """mat [..., 3, 3] @ vec [..., 3] -> [..., 3]."""
    return (mat * vec[..., None, :]).sum(-1)


def matmul3(a: Tensor, b: Tensor) -> Tensor:
    """a [..., 3, 3] @ b [..., 3, 3] -> [..., 3, 3]."""
    return (a[..., :, :, None] * b[..., None, :, :]).sum(-2)


def inverse3(mat: Tensor) -> Tensor:
    """Inverse of mat [..., 3, 3] by its adjugate; a singular matrix gives inf/nan rows, as a division by 0 would."""
    c0 = torch.cross(mat[..., :, 1], mat[..., :, 2], dim=-1)  # rows of the inverse, times det
    c1 = torch.cross(mat[..., :, 2], mat[..., :, 0], dim=-1)
    c2 = torch.cross(mat[..., :, 0], mat[..., :, 1], dim=-1)
    det = (mat[..., :, 0] * c0).sum(-1)
    return torch.stack([c0, c1, c2], dim=-2) / det[..., None, None]
