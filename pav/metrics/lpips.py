"""LPIPS (Zhang et al., CVPR 2018), AlexNet variant v0.1: learned weights on unit-normalised deep features.

For each of five ReLU outputs of AlexNet, both images' features are scaled to unit length along channels, their
squared difference is weighted per channel by a non-negative 1x1 layer, averaged over the image and summed over
layers. 0 for identical images; larger is more different. Weights: see pav.metrics.weights.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor, nn

from .backbones import alexnet_features
from .pixel import check_pair
from .weights import ALEXNET_FILE, LPIPS_HEADS_FILE, load_into, load_state, network_distance

TAPS = (1, 4, 7, 9, 11)  # AlexNet feature indices whose outputs are compared
CHANNELS = (64, 192, 384, 256, 256)
MIN_SIDE = 32  # smaller images vanish in AlexNet's stride-4 stem and pools before the last tap
# The input normalisation LPIPS was trained with, for images in [-1, 1]
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


class _Head(nn.Module):
    """One layer's 1x1 weighting, keyed like the published file (`lin<k>.model.1.weight`)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, 1, bias=False))


class LPIPSNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = alexnet_features()
        self.heads = nn.ModuleList(_Head(c) for c in CHANNELS)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)

    def taps(self, x: Tensor) -> list[Tensor]:
        """x [N, 3, H, W] in [0, 1] -> the five unit-normalised feature maps."""
        h = ((x * 2.0 - 1.0) - self.shift) / self.scale
        out = []
        for i, layer in enumerate(self.features[:TAPS[-1] + 1]):
            h = layer(h)
            if i in TAPS:
                out.append(h / (h.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        return out

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """[N, 3, H, W] pairs -> distances [N]."""
        total = x.new_zeros(len(x))
        for head, fx, fy in zip(self.heads, self.taps(x), self.taps(y), strict=True):
            total = total + head.model((fx - fy) ** 2).mean((1, 2, 3))
        return total


@lru_cache(maxsize=2)
def _network(hub_dir: str) -> LPIPSNet:
    """The network with its weights from hub_dir (cached per directory)."""
    net = LPIPSNet()
    path, backbone = load_state(ALEXNET_FILE, "lpips")
    load_into(net.features, {k.removeprefix("features."): v for k, v in backbone.items()}, path, "lpips")
    path, heads = load_state(LPIPS_HEADS_FILE, "lpips")
    load_into(net.heads, {k.replace("lin", "", 1): v for k, v in heads.items() if k.startswith("lin")}, path, "lpips")
    return net.eval()


def lpips(pred: Tensor, target: Tensor) -> float:
    """LPIPS distance of images [H, W, 3] (or the mean over [N, H, W, 3]) in [0, 1]; MetricUnavailable without
    the weights or for images under 32 pixels on a side."""
    check_pair(pred, target, "lpips")
    net = _network(torch.hub.get_dir())  # missing weights are the first reason given
    return network_distance(net, pred, target, "lpips", MIN_SIDE)
