"""Small building blocks of the fields: MLP, truncated exponential, spherical-harmonics direction encoding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MLP(nn.Sequential):
    """in_dims -> [hidden] * n_hidden (ReLU) -> out_dims, no output activation."""

    def __init__(self, in_dims: int, out_dims: int, hidden: int = 64, n_hidden: int = 1) -> None:
        layers: list[nn.Module] = []
        dims = in_dims
        for _ in range(n_hidden):
            layers += [nn.Linear(dims, hidden), nn.ReLU(inplace=True)]
            dims = hidden
        layers.append(nn.Linear(dims, out_dims))
        super().__init__(*layers)


def mlp_with_codes(mlp: MLP, codes: Tensor, index: Tensor, rest: Tensor) -> Tensor:
    """mlp(cat([codes[index], rest], -1)) for codes [A, C], index [N], rest [N, R] -> [N, out], without forming
    the [N, C] gather: the first layer's share of each code is computed once per code (a 512-wide GLO vector
    would otherwise cost 512 floats per sample)."""
    first = mlp[0]
    c = codes.shape[1]
    if first.in_features != c + rest.shape[1]:
        raise ValueError(f"mlp_with_codes: the MLP takes {first.in_features} inputs, got {c} + {rest.shape[1]}")
    h = F.linear(rest, first.weight[:, c:], first.bias) + (codes @ first.weight[:, :c].T)[index]  # [N, hidden]
    for layer in list(mlp)[1:]:
        h = layer(h)
    return h


class _TruncExp(torch.autograd.Function):
    # exp forward in float32 (fp16 overflows at 11); the backward clamps its input so one huge density cannot
    # blow up the step
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return torch.exp(x.float())

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return grad * torch.exp(x.float().clamp(-15.0, 15.0))


def trunc_exp(x: Tensor) -> Tensor:
    return _TruncExp.apply(x)


def sh_encode(dirs: Tensor, degree: int = 4) -> Tensor:
    """Real spherical harmonics of unit directions [N, 3] -> [N, degree**2] (degree 1..4)."""
    if not 1 <= degree <= 4:
        raise ValueError(f"sh_encode: degree must be 1..4, got {degree}")
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, 0.28209479177387814)]
    if degree > 1:
        out += [-0.48860251190291987 * y, 0.48860251190291987 * z, -0.48860251190291987 * x]
    if degree > 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [1.0925484305920792 * x * y, -1.0925484305920792 * y * z,
                0.94617469575755997 * zz - 0.31539156525251999, -1.0925484305920792 * x * z,
                0.54627421529603959 * (xx - yy)]
    if degree > 3:
        out += [0.59004358992664352 * y * (-3.0 * xx + yy), 2.8906114426405538 * x * y * z,
                0.45704579946446572 * y * (1.0 - 5.0 * zz), 0.3731763325901154 * z * (5.0 * zz - 3.0),
                0.45704579946446572 * x * (1.0 - 5.0 * zz), 1.4453057213202769 * z * (xx - yy),
                0.59004358992664352 * x * (-xx + 3.0 * yy)]
    return torch.stack(out, dim=-1)
