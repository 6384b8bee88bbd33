"""Where the learned metrics find their weights: files in the torch hub cache, never a download.

    <torch.hub.get_dir()>/checkpoints/
        alexnet-owt-7be5be79.pth   ImageNet AlexNet (the file torchvision saves there): the LPIPS backbone
        lpips_alex_v0.1.pth        LPIPS v0.1 linear heads on AlexNet: lin0..lin4.model.1.weight [1, C, 1, 1]
                                   (the file weights/v0.1/alex.pth of the `lpips` package, renamed)
        vgg16-397923af.pth         ImageNet VGG16 (the file torchvision saves there): the DISTS backbone
        dists_weights.pt           DISTS alpha and beta [1, 1475, 1, 1] (the file weights.pt of the
                                   `DISTS_pytorch` package, renamed)

A metric whose file is missing or unreadable raises MetricUnavailable naming the file; reports then show
"unavailable: <reason>" instead of a number.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
LPIPS_HEADS_FILE = "lpips_alex_v0.1.pth"
VGG16_FILE = "vgg16-397923af.pth"
DISTS_FILE = "dists_weights.pt"


class MetricUnavailable(RuntimeError):
    """A metric that cannot run here (missing weights, images too small); the message says why."""


def checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def load_state(file: str, metric: str) -> tuple[Path, dict[str, Tensor]]:
    """The state dict saved in <hub>/checkpoints/<file>, or MetricUnavailable naming the file."""
    path = checkpoint_dir() / file
    if not path.is_file():
        raise MetricUnavailable(f"{metric} needs {path} (not found; no download is attempted)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same missing weight to the user
        raise MetricUnavailable(f"{metric}: {path} cannot be read ({exc})") from None
    if not isinstance(state, dict):
        raise MetricUnavailable(f"{metric}: {path} holds a {type(state).__name__}, not a state dict")
    return path, state


def load_into(module: torch.nn.Module, state: dict[str, Tensor], path: Path, metric: str) -> None:
    """Copies the module's parameters from state by key; any missing key or wrong shape is MetricUnavailable."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})" for k, v in own.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or wrong:
        listed = (f"missing keys {missing[:4]}" if missing else "") + (f" shapes {wrong[:4]}" if wrong else "")
        raise MetricUnavailable(f"{metric}: {path} does not fit: {listed.strip()}")
    module.load_state_dict({k: state[k].float() for k in own})


def network_distance(network: torch.nn.Module, pred: Tensor, target: Tensor, metric: str, min_side: int) -> float:
    """Mean distance of a learned metric's network over images [H, W, 3] or [N, H, W, 3] in [0, 1] (already
    checked to match); MetricUnavailable for images under min_side pixels on a side."""
    if min(pred.shape[-3:-1]) < min_side:
        raise MetricUnavailable(f"{metric} needs images of at least {min_side} px on a side, got "
                                f"{pred.shape[-2]}x{pred.shape[-3]}")
    x = pred.clamp(0, 1).reshape(-1, *pred.shape[-3:]).permute(0, 3, 1, 2).float()  # [N, 3, H, W]
    y = target.reshape(-1, *target.shape[-3:]).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        return float(network.to(x.device)(x, y).mean())
