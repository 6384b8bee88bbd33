"""The ImageNet feature stacks of AlexNet and VGG16 in plain torch, with the layer indices of torchvision's
`features` module, so their saved state dicts load by key (`features.<index>.weight`).
"""

from __future__ import annotations

from torch import nn

# (out channels, kernel, stride, padding) of each convolution; "M" a 3x3 (AlexNet) or 2x2 (VGG) max pool
ALEXNET_LAYOUT: list = [(64, 11, 4, 2), "M", (192, 5, 1, 2), "M", (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1), "M"]
VGG16_LAYOUT: list = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def alexnet_features() -> nn.Sequential:
    """AlexNet's convolutional part: ReLU outputs at indices 1, 4, 7, 9 and 11 are the five LPIPS taps."""
    layers: list[nn.Module] = []
    channels = 3
    for item in ALEXNET_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(3, 2))
        else:
            out, kernel, stride, padding = item
            layers += [nn.Conv2d(channels, out, kernel, stride, padding), nn.ReLU(inplace=False)]
            channels = out
    return nn.Sequential(*layers)


def vgg16_features() -> nn.Sequential:
    """VGG16's convolutional part: 13 3x3 convolutions with ReLUs, a 2x2 max pool closing each of 5 stages."""
    layers: list[nn.Module] = []
    channels = 3
    for item in VGG16_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, item, 3, 1, 1), nn.ReLU(inplace=False)]
            channels = item
    return nn.Sequential(*layers)
