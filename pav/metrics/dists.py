"""DISTS (Ding et al., TPAMI 2020): structure and texture similarity of VGG16 features.

The image and the outputs of VGG16's five stages (with its max pools replaced by an L2 pool, a Hann-windowed
blur of the squared map) give 1475 channels. Per channel, a texture term compares the global means and a structure
term the global covariance of the two images' maps; learned weights alpha and beta mix them, and DISTS is 1 minus
that weighted sum. 0 for identical images. Weights: see pav.metrics.weights.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbones import vgg16_features
from .pixel import check_pair
from .weights import DISTS_FILE, VGG16_FILE, MetricUnavailable, load_into, load_state, network_distance

STAGES = ((0, 4), (5, 9), (10, 16), (17, 23), (24, 30))  # VGG16 feature index ranges, pools between them
CHANNELS = (3, 64, 128, 256, 512, 512)
MEAN = (0.485, 0.456, 0.406)  # ImageNet normalisation of the backbone
STD = (0.229, 0.224, 0.225)
EPS = 1e-6
MIN_SIDE = 16


class L2Pool(nn.Module):
    """Stride-2 pooling of a map [N, C, H, W]: sqrt of a 3x3 Hann-weighted average of its square."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        hann = torch.hann_window(5, periodic=False)[1:-1]  # [3]
        kernel = hann[:, None] * hann[None, :]
        self.register_buffer("kernel", (kernel / kernel.sum()).expand(channels, 1, 3, 3).contiguous(),
                             persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return (F.conv2d(x * x, self.kernel, stride=2, padding=1, groups=x.shape[1]) + 1e-12).sqrt()


class DISTSNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = vgg16_features()
        self.pools = nn.ModuleList(L2Pool(c) for c in CHANNELS[1:5])
        self.alpha = nn.Parameter(torch.zeros(1, sum(CHANNELS), 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, sum(CHANNELS), 1, 1))
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def maps(self, x: Tensor) -> list[Tensor]:
        """x [N, 3, H, W] in [0, 1] -> the image and the five stage outputs."""
        out = [x]
        h = (x - self.mean) / self.std
        for s, (start, stop) in enumerate(STAGES):
            if s:
                h = self.pools[s - 1](h)
            for layer in self.features[start:stop]:
                h = layer(h)
            out.append(h)
        return out

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """[N, 3, H, W] pairs -> distances [N]."""
        total = self.alpha.sum() + self.beta.sum()
        alphas = torch.split(self.alpha / total, CHANNELS, dim=1)
        betas = torch.split(self.beta / total, CHANNELS, dim=1)
        texture = x.new_zeros(len(x))
        structure = x.new_zeros(len(x))
        for fx, fy, a, b in zip(self.maps(x), self.maps(y), alphas, betas, strict=True):
            mx, my = fx.mean((2, 3), keepdim=True), fy.mean((2, 3), keepdim=True)  # [N, C, 1, 1]
            vx, vy = ((fx - mx) ** 2).mean((2, 3), keepdim=True), ((fy - my) ** 2).mean((2, 3), keepdim=True)
            cxy = ((fx - mx) * (fy - my)).mean((2, 3), keepdim=True)
            texture = texture + (a * (2 * mx * my + EPS) / (mx ** 2 + my ** 2 + EPS)).sum((1, 2, 3))
            structure = structure + (b * (2 * cxy + EPS) / (vx + vy + EPS)).sum((1, 2, 3))
        return 1.0 - (texture + structure)


@lru_cache(maxsize=2)
def _network(hub_dir: str) -> DISTSNet:
    """The network with its weights from hub_dir (cached per directory)."""
    net = DISTSNet()
    path, backbone = load_state(VGG16_FILE, "dists")
    load_into(net.features, {k.removeprefix("features."): v for k, v in backbone.items()}, path, "dists")
    path, mix = load_state(DISTS_FILE, "dists")
    for key in ("alpha", "beta"):
        param = getattr(net, key)
        if key not in mix or tuple(mix[key].shape) != tuple(param.shape):
            found = tuple(mix[key].shape) if key in mix else "missing"
            raise MetricUnavailable(f"dists: {path} needs {key} {tuple(param.shape)}, found {found}")
        param.data.copy_(mix[key].float())
    return net.eval()


def dists(pred: Tensor, target: Tensor) -> float:
    """DISTS distance of images [H, W, 3] (or the mean over [N, H, W, 3]) in [0, 1]; MetricUnavailable without
    the weights or for images under 16 pixels on a side."""
    check_pair(pred, target, "dists")
    net = _network(torch.hub.get_dir())  # missing weights are the first reason given
    return network_distance(net, pred, target, "dists", MIN_SIDE)
