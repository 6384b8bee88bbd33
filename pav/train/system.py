"""AvatarSystem: wires the renderer, the losses and the optimiser into Lightning, and logs. Computes nothing itself."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from PIL import Image

from ..data.datamodule import View
from ..deform.canonical import Canonicalizer
from ..deform.frames import FrameSet
from ..evaluate.scoring import score_views
from ..fields.avatar import AvatarField, ModelConfig
from ..render.renderer import AvatarRenderer, RenderConfig
from .losses import LossConfig, loss_distortion, total_loss


@dataclass
class OptimConfig:
    lr: float = 2.5e-3  # hash grid, MLP-D, MLP-C, latent textures
    lr_offset: float = 2.5e-4  # MLP-O
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    eps: float = 1e-15
    warmup_steps: int = 0  # learning rates rise linearly from 0 over these first steps
    final_ratio: float = 1.0  # rates decay exponentially to this share of lr by trainer.max_steps (1: constant)
    decay_start: float = 0.0  # the share of trainer.max_steps after which the decay begins (0: from the first step)
    # colour-pass samples a step aims at: while rays carry many (a young, transparent field) a step trains on fewer
    # of its batch's rays, at least a quarter; 0: every ray of every batch
    target_samples: int = 0

    def __post_init__(self) -> None:
        if self.warmup_steps < 0 or not 0 < self.final_ratio <= 1 or self.target_samples < 0 \
                or not 0 <= self.decay_start < 1:
            raise ValueError(f"optim: need warmup_steps >= 0, 0 < final_ratio <= 1, target_samples >= 0 and "
                             f"0 <= decay_start < 1, got {self.warmup_steps}, {self.final_ratio}, "
                             f"{self.target_samples} and {self.decay_start}")


def lr_factor(step: int, max_steps: int, warmup_steps: int, final_ratio: float, decay_start: float = 0.0) -> float:
    """The share of each group's learning rate at `step`: linear warm-up, constant until decay_start * max_steps,
    then exponential decay to final_ratio at max_steps (held there after)."""
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    progress = (step / max_steps - decay_start) / (1.0 - decay_start) if max_steps > 0 else 0.0
    return warm * final_ratio ** min(1.0, max(0.0, progress))


MIN_RAY_SHARE = 0.25  # a step never trains on fewer than this share of its batch's rays


def rays_for_samples(n_rays: int, target_samples: int, samples_per_ray: float | None) -> int:
    """How many of a batch's n_rays rays a step trains on so that it marches about target_samples colour-pass
    samples, given the last step's samples per ray; every ray when target_samples is 0 or nothing is known yet."""
    if target_samples <= 0 or samples_per_ray is None or samples_per_ray <= 0:
        return n_rays
    floor = max(1, int(n_rays * MIN_RAY_SHARE))
    return int(min(n_rays, max(floor, round(target_samples / samples_per_ray))))


def ray_subset(batch: dict[str, torch.Tensor], n_rays: int) -> dict[str, torch.Tensor]:
    """The batch's rays evenly strided down to n_rays: a batch lists its foreground draws first, so a stride keeps
    their share."""
    total = len(batch["origins"])
    if n_rays >= total:
        return batch
    idx = torch.arange(n_rays, device=batch["origins"].device) * total // n_rays  # [n_rays]
    return {key: value[idx] for key, value in batch.items()}


@dataclass
class AvatarMeta:
    """What a checkpoint needs besides weights to render: the head model, canonical mesh and appearance names."""

    head_model: str
    appearance_names: list[str]
    canon_verts: torch.Tensor  # [V, 3]
    faces: torch.Tensor  # [F, 3]
    face_uv: torch.Tensor  # [F, 3, 2]
    shape: torch.Tensor  # [n_shape]
    n_expr: int
    box_min: torch.Tensor  # [3]
    box_max: torch.Tensor  # [3]
    outer_dist: float | None = None  # metres the field reaches past the mesh; None (older runs): model.outer_dist
    expr_faces: torch.Tensor | None = None  # [F] bool: faces whose samples see the expression; None: every face
    pose_range: torch.Tensor | None = None  # [2, 6] least and most global and neck rotation of the training frames

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def build_renderer(model: ModelConfig, render: RenderConfig, meta: AvatarMeta) -> AvatarRenderer:
    field_ = AvatarField(model, len(meta.appearance_names), meta.box_min, meta.box_max, meta.pose_range)
    outer = model.outer_dist if meta.outer_dist is None else meta.outer_dist
    canonicalizer = Canonicalizer(meta.canon_verts, meta.faces, meta.face_uv, model.deform, outer, model.inner_dist,
                                  rigid_reach=model.rigid_reach)
    return AvatarRenderer(field_, canonicalizer, render, meta.expr_faces)


class AvatarSystem(L.LightningModule):
    def __init__(self, model: ModelConfig, render: RenderConfig, loss: LossConfig, optim: OptimConfig,
                 meta: AvatarMeta, resolved_config: dict | None = None, run_dir: str | None = None) -> None:
        super().__init__()
        self.model_cfg, self.loss_cfg, self.optim_cfg, self.meta = model, loss, optim, meta
        self.resolved_config = resolved_config or {}
        self.run_dir = Path(run_dir) if run_dir else None
        self.renderer = build_renderer(model, render, meta)
        self.train_seconds = 0.0  # summed over resumed runs
        self._device_frames: dict[str, FrameSet] = {}
        self._val_results: list = []
        self._samples_per_ray: float | None = None  # the last training step's, for optim.target_samples

    # ------------------------------------------------------------------ frames on the module's device
    def frames(self, which: str) -> FrameSet:
        source = self.trainer.datamodule.posed(which)
        cached = self._device_frames.get(which)
        if cached is None or cached.posed_verts.device != self.device:
            cached = self._device_frames[which] = source.to(self.device)
        return cached

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Ray batches go to the device; held-out views stay on the CPU, where their images are scored and saved
        (the renderer moves the camera itself)."""
        if isinstance(batch, View):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def on_fit_start(self) -> None:
        """Ranks on one machine share its cores: each gets its part of the CPU threads (torch's and pav._C's)."""
        local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", self.trainer.num_devices))
        if local_ranks > 1:
            from ..ops import set_num_threads

            set_num_threads(max(1, (os.cpu_count() or 1) // local_ranks))

    # ------------------------------------------------------------------ training
    def on_train_start(self) -> None:
        grid = self.renderer.grid
        if int(grid.n_updates) == 0 and bool(grid.hull.all()):  # a fresh run: carve the masks' visual hull once
            dm = self.trainer.datamodule
            frames = self.frames("train")
            canon = self.meta.canon_verts.to(self.device)
            slack = (frames.posed_verts - canon).norm(dim=-1).amax(-1)  # [frames] metres
            image_frame = dm.image_frame.to(self.device)
            kept = grid.carve(frames.head_to_world[image_frame], dm.K.to(self.device), dm.c2w.to(self.device),
                              dm.carving_alphas().to(self.device), slack[image_frame], frames.appearance[image_frame])
            print(f"[pav] occupancy grid: {kept:.1%} of the head box lies inside the masks' visual hull")
        self._wall_start = time.time()
        self._seconds_at_start = self.train_seconds

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        frames = self.frames("train")
        step = self.global_step
        if step % self.renderer.cfg.grid_update_every == 0:
            gen = torch.Generator(self.device).manual_seed(step)  # every DDP rank refreshes through the same frames
            occupied = self.renderer.update_grid(frames, step, gen)
            self.log("train/grid_occupied", occupied)
        batch = ray_subset(batch, rays_for_samples(len(batch["origins"]), self.optim_cfg.target_samples,
                                                   self._samples_per_ray))
        out = self.renderer.render_rays(batch["origins"], batch["dirs"], batch["frame_idx"], frames,
                                        batch["background"], batch["offsets"])
        n_rays = len(batch["origins"])
        distortion = None
        if self.loss_cfg.lambda_distortion > 0:
            span = self.renderer.step * self.renderer.cfg.max_samples  # the head box's diagonal
            distortion = loss_distortion(out.weights, out.sample_t, out.sample_deltas, out.sample_ray, n_rays, span)
        terms = total_loss(self.loss_cfg, out.rgb, batch["rgb"], out.depth, batch["mesh_depth"], batch["depth_mask"],
                           out.opacity, batch["alpha"], distortion)
        self.log("train/loss", terms["total"], prog_bar=True)
        self.log("train/loss_rgb", terms["rgb"])
        self.log("train/loss_depth", terms["depth"])
        self.log("train/loss_alpha", terms["alpha"])
        if "distortion" in terms:
            self.log("train/loss_distortion", terms["distortion"])
        self.log("train/psnr", -10.0 * torch.log10(terms["rgb"].detach().clamp_min(1e-10)), prog_bar=True)
        self._samples_per_ray = len(out.weights) / n_rays
        self.log("train/samples_per_ray", self._samples_per_ray)
        self.log("train/rays", float(n_rays))
        self.train_seconds = self._seconds_at_start + time.time() - self._wall_start
        self.log("train/minutes", self.train_seconds / 60.0)  # wall clock: PSNR against minutes, steps per second
        return terms["total"]

    def configure_optimizers(self):
        groups = self.renderer.field.param_groups()
        params = [{"params": groups["main"], "lr": self.optim_cfg.lr}]
        if groups["offset"]:
            params.append({"params": groups["offset"], "lr": self.optim_cfg.lr_offset})
        optimizer = torch.optim.Adam(params, betas=tuple(self.optim_cfg.betas), eps=self.optim_cfg.eps, fused=True)
        cfg = self.optim_cfg
        if cfg.warmup_steps == 0 and cfg.final_ratio == 1.0:
            return optimizer
        max_steps = int(self.trainer.max_steps) if self._trainer is not None else -1
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, partial(lr_factor, max_steps=max_steps, warmup_steps=cfg.warmup_steps,
                               final_ratio=cfg.final_ratio, decay_start=cfg.decay_start))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    # ------------------------------------------------------------------ validation
    def validation_step(self, view: View, batch_idx: int) -> None:
        if self.global_rank != 0:  # every rank holds the same weights: one renders, the others go on
            return
        scores, images = score_views(self.renderer, self.frames("val"), [view], self.meta.appearance_names)
        self._val_results.append((view, images[0][1], scores))

    def on_validation_epoch_end(self) -> None:
        results, self._val_results = self._val_results, []
        if not results:
            return
        names = self.meta.appearance_names
        per_app: dict[str, list[tuple[float, float]]] = {}
        for view, _, scores in results:
            s = scores["per_appearance"][names[view.appearance]]
            per_app.setdefault(names[view.appearance], []).append((s["psnr"], s["ssim"]))
        if self.trainer.sanity_checking:  # Lightning drops what a sanity pass logs: say it worked
            print(f"[pav] sanity validation: {len(results)} view(s) rendered on {self.device}, PSNR "
                  f"{np.mean([v[0] for vals in per_app.values() for v in vals]):.2f}")
        for name, vals in per_app.items():
            self.log(f"val/psnr/{name}", float(np.mean([v[0] for v in vals])), rank_zero_only=True)
            self.log(f"val/ssim/{name}", float(np.mean([v[1] for v in vals])), rank_zero_only=True)
        self.log("val/psnr", float(np.mean([np.mean([v[0] for v in vals]) for vals in per_app.values()])),
                 prog_bar=True, rank_zero_only=True)
        self.log("val/ssim", float(np.mean([np.mean([v[1] for v in vals]) for vals in per_app.values()])),
                 rank_zero_only=True)
        self._save_val_sheet(results)

    def _save_val_sheet(self, results) -> None:
        """One PNG per validation: rendered over truth, one column per view; also sent to the logger."""
        if self.run_dir is None or self.trainer.sanity_checking or self.global_rank != 0:
            return
        cols = [torch.cat([img, view.rgb.cpu()], 0) for view, img, _ in results]
        height = max(c.shape[0] for c in cols)
        cols = [torch.nn.functional.pad(c, (0, 0, 0, 0, 0, height - c.shape[0]), value=1.0) for c in cols]
        sheet = (torch.cat(cols, 1).numpy() * 255 + 0.5).astype(np.uint8)
        path = self.run_dir / "val" / f"step_{self.global_step:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(sheet).save(path)
        log_image = getattr(self.logger, "log_image", None)
        if log_image is not None:
            log_image("val/renders", [str(path)], step=self.global_step)

    # ------------------------------------------------------------------ checkpoint
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["pav"] = {"meta": self.meta.to_dict(), "config": self.resolved_config,
                             "train_seconds": self.train_seconds, "samples_per_ray": self._samples_per_ray,
                             "format": 1}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """What the next step depends on besides the weights, the optimiser and the grid: the sample target's
        samples per ray (older checkpoints: unknown, so that step trains every ray)."""
        saved = checkpoint.get("pav", {})
        self.train_seconds = float(saved.get("train_seconds", 0.0))
        self._samples_per_ray = saved.get("samples_per_ray")
