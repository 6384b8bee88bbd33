"""Loading a trained avatar from its self-contained checkpoint (weights, head model, canonical mesh, names)."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf

from ..fields.encoding import TinyCudaNNUnavailable
from ..render.renderer import AvatarRenderer
from .system import AvatarMeta, build_renderer


def with_older_defaults(model: dict) -> dict:
    """A saved model config with the options added since filled in as the older runs were trained."""
    return {"pose_cond": False, "rigid_reach": float("inf"), **model}


def load_avatar(path: str | Path, device: str | torch.device = "cpu") -> tuple[AvatarRenderer, AvatarMeta, dict]:
    """-> renderer (eval mode, on device), meta, resolved training config."""
    from .config import typed_config

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file gets one clear message
        raise ValueError(f"{path}: cannot be read as a checkpoint ({exc})") from exc
    if "pav" not in ckpt or "state_dict" not in ckpt:
        raise ValueError(f"{path}: not a pav checkpoint (no 'pav' section)")
    config = ckpt["pav"]["config"]
    if isinstance(config.get("model"), dict):
        config["model"] = with_older_defaults(config["model"])
    typed = typed_config(OmegaConf.create(config))
    meta = AvatarMeta(**ckpt["pav"]["meta"])
    try:
        renderer = build_renderer(typed.model, typed.render, meta)
    except TinyCudaNNUnavailable as exc:  # tiny-cuda-nn's tables have their own layout: pav's op cannot read them
        raise ValueError(f"{path}: trained with model.hashgrid_backend=tcnn, which loads only where tinycudann "
                         f"runs ({exc})") from None
    prefix = "renderer."
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    renderer.load_state_dict(state)
    return renderer.to(device).eval(), meta, config
