"""The trained avatar as the viewer uses it: posed frames for panel poses, images for browser cameras.

An appearance swap reuses the posed frame (mesh and BVH) and changes only the appearance index, i.e. which latent
texture the field reads, so it costs one render and nothing else.
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..deform.frames import FrameSet, head_transforms
from ..head.flame import FLAME
from ..render.drive import appearance_camera
from ..render.job import RenderError, load_head, open_checkpoint, open_collection
from ..render.renderer import AvatarRenderer
from .camera import BrowserCamera, StartView, start_view
from .pose import PanelPose, Sequence, frame_parameters

POSED_CACHE = 64  # posed frames kept: a played sequence loops without posing again
FALLBACK_FOV = math.radians(20.0)  # a start view when the collection is not at hand
FALLBACK_DISTANCE = 4.0  # head sizes from the centre


@dataclass
class ViewerAvatar:
    renderer: AvatarRenderer  # eval mode, on its device
    flame: FLAME
    shape: torch.Tensor  # [n_shape]
    names: list[str]  # appearances, in the model's order
    n_expr: int
    sequences: dict[str, Sequence]  # tracked motion of each appearance the collection has
    start: StartView

    def __post_init__(self) -> None:
        self._posed: OrderedDict[tuple, FrameSet] = OrderedDict()

    @property
    def device(self) -> torch.device:
        return self.renderer.field.box_min.device

    @property
    def expr_names(self) -> list[str]:
        return list(self.flame.expr_names)

    def frame(self, pose: PanelPose, appearance: int, sequence: str | None = None, t: int = 0) -> FrameSet:
        """One posed frame on the renderer's device; poses seen recently are not posed again."""
        if not 0 <= appearance < len(self.names):
            raise ValueError(f"appearance index {appearance} is outside 0..{len(self.names) - 1}")
        seq = self.sequences[sequence] if sequence is not None else None
        key = (pose, sequence, t % len(seq) if seq is not None else 0)
        posed = self._posed.get(key)
        if posed is None:
            expr, rotations, transl = frame_parameters(pose, self.n_expr, seq, t)
            posed = FrameSet.build(self.flame, self.shape, torch.from_numpy(expr[None]).float(),
                                   torch.from_numpy(rotations[None]).float(), torch.from_numpy(transl[None]).float(),
                                   torch.zeros(1, dtype=torch.long), device=self.device)
            self._posed[key] = posed
            while len(self._posed) > POSED_CACHE:
                self._posed.popitem(last=False)
        self._posed.move_to_end(key)
        return dataclasses.replace(posed, appearance=torch.full_like(posed.appearance, appearance))

    def render(self, frame: FrameSet, camera: BrowserCamera, height: int,
               stop: Callable[[], bool] | None = None) -> np.ndarray | None:
        """The frame on white as the camera sees it, `height` rows high -> uint8 [H, W, 3]; None when stop()
        turned true between chunks of rays."""
        h, w = camera.image_size(height)
        K = torch.from_numpy(camera.intrinsics(height)).float().to(self.device)
        c2w = torch.from_numpy(camera.c2w()).float().to(self.device)
        white = torch.ones(3, device=self.device)
        chunks = []
        for out in self.renderer.image_chunks(K, c2w, h, w, 0, frame, white):
            if stop is not None and stop():
                return None
            chunks.append(out.rgb)
        rgb = torch.cat(chunks).view(h, w, 3)
        return (rgb.clamp(0, 1) * 255 + 0.5).byte().cpu().numpy()


def load_viewer_avatar(ckpt: str, device: str = "auto", chunk: int = 0, collection: str = "",
                       head_model: str = "") -> ViewerAvatar:
    """The checkpoint, its head model and (when found) its collection's sequences and start camera."""
    renderer, meta, config = open_checkpoint(ckpt, device, chunk)
    flame = load_head(head_model or meta.head_model, meta)
    centre = meta.canon_verts.double().mean(0).numpy()
    root = collection or config["data"]["root"]
    sequences: dict[str, Sequence] = {}
    if collection or Path(root).is_dir():
        opened = open_collection(root, ckpt, meta.appearance_names[0], meta.n_expr)
        for name in meta.appearance_names:
            if name in opened:
                sequences[name] = Sequence.of(opened.appearance(name))
        first = opened.appearance(meta.appearance_names[0])
        _, head_to_world = head_transforms(flame, meta.shape[None].float(),
                                           torch.from_numpy(first.flame.expr[:1]).float(),
                                           torch.from_numpy(first.flame.rotations[:1]).float(),
                                           torch.from_numpy(first.flame.transl[:1]).float())
        start = start_view(appearance_camera(first, per_frame=False), head_to_world[0].double().numpy(), centre)
    else:
        print(f"[pav] collection {root} not found: no sequences to play (collection=DIR to add them)")
        size = float((meta.box_max - meta.box_min).max())
        start = StartView(centre + np.array([0.0, 0.0, FALLBACK_DISTANCE * size]), centre, FALLBACK_FOV)
    if not meta.appearance_names:
        raise RenderError(f"{ckpt} has no appearances")
    return ViewerAvatar(renderer, flame, meta.shape, list(meta.appearance_names), meta.n_expr, sequences, start)
