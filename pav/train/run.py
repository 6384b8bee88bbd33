"""One training run: data, system, Lightning trainer, resume, final held-out metrics."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from ..data.datamodule import AvatarDataModule
from ..evaluate.scoring import score_views
from ..fields.avatar import ModelConfig
from ..head.regions import mouth_faces
from .checkpoint import with_older_defaults
from .config import TrainConfig, TrainerConfig, typed_config
from .system import AvatarMeta, AvatarSystem


def _wants_cuda(trainer: TrainerConfig) -> bool:
    accelerator = str(trainer.accelerator).lower()
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def check_accelerator(typed: TrainConfig) -> None:
    """A GPU run stops at once, with the reason, when torch sees no GPU or pav._C lacks its CUDA kernels."""
    if not _wants_cuda(typed.trainer):
        return
    preset = f"trainer={typed.trainer.name} (trainer.accelerator={typed.trainer.accelerator})"
    if not torch.cuda.is_available():
        cuda = torch.version.cuda or "none (a CPU build)"
        raise RuntimeError(f"{preset} needs a CUDA GPU, but torch {torch.__version__} (CUDA {cuda}) sees none; "
                           "use trainer=cpu, or install a CUDA build of torch")
    if not typed.require_cuda_ops:
        return
    from ..ops import _ext

    reason = _ext.cuda_unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"{preset}: pav._C has no CUDA kernels ({reason}); the BVH would run on host copies, "
                           "many times slower. Fix the build (python -m pav.ops.build verbose=true) or pass "
                           "require_cuda_ops=false to train anyway")


def _strategy(name: str):
    """Lightning's strategy; DDP without the per-step buffer broadcast (every rank computes the same grid)."""
    if name == "ddp":
        from lightning.pytorch.strategies import DDPStrategy

        return DDPStrategy(broadcast_buffers=False)
    return name


def make_meta(dm: AvatarDataModule, model: ModelConfig) -> AvatarMeta:
    flame = dm.flame
    if flame.vt is None or flame.ft is None:
        if model.appearance == "texture":
            raise ValueError(f"{dm.head_model}: has no uv layout, which model.appearance=texture needs "
                             "(give data.uv_layout=PATH, FLAME's uv file, or model=pav_glo)")
        face_uv = torch.zeros(flame.num_faces, 3, 2)
    else:
        face_uv = flame.vt[flame.ft]
    outer, margin = field_reach(dm, model)
    box_min, box_max = dm.head_box(margin)
    return AvatarMeta(head_model=dm.head_model, appearance_names=list(dm.appearance_names),
                      canon_verts=dm.canonical_verts(), faces=flame.faces.clone(), face_uv=face_uv.clone(),
                      shape=torch.from_numpy(dm.collection.shape).clone(), n_expr=flame.n_expr,
                      box_min=box_min, box_max=box_max, outer_dist=outer, expr_faces=expression_faces(dm, model),
                      pose_range=torch.stack([dm.train_frames.pose.amin(0), dm.train_frames.pose.amax(0)]))


def expression_faces(dm: AvatarDataModule, model: ModelConfig) -> torch.Tensor | None:
    """[F] bool faces whose samples see the expression (model.expr_region=mouth), None for every face."""
    if model.expr_region == "all":
        return None
    faces = mouth_faces(dm.flame)
    if faces is None or not bool(faces.any()):
        raise ValueError(f"model.expr_region=mouth: {dm.head_model} has no 68-point landmark embedding and no lips "
                         "labels to find the mouth by; give data.landmark_embedding=PATH or model.expr_region=all")
    return faces


REACH_SLACK = 0.01  # metres past the measured reach: the matte's soft edge, the mesh's fit


def field_reach(dm: AvatarDataModule, model: ModelConfig) -> tuple[float, float]:
    """(outer_dist, box_margin) in metres: model.outer_dist and model.box_margin, grown to what the training
    mattes show when model.reach=mattes (never past model.max_reach)."""
    if model.reach == "fixed":
        return model.outer_dist, model.box_margin
    measured = dm.matte_reach()  # [A] metres
    outer = min(max(model.outer_dist, float(measured.max()) + REACH_SLACK), max(model.max_reach, model.outer_dist))
    margin = max(model.box_margin, outer + REACH_SLACK)
    apps = ", ".join(f"{n} {100 * float(r):.1f}" for n, r in zip(dm.appearance_names, measured, strict=True))
    print(f"[pav] reach: the mattes reach past the head model by (cm) {apps}; the field reaches "
          f"{100 * outer:.1f} cm (model.outer_dist={model.outer_dist}, max_reach={model.max_reach}), "
          f"head box margin {100 * margin:.1f} cm", flush=True)
    return outer, margin


def _logger(kind: str, run_dir: Path, name: str):
    if kind == "none":
        return False
    if kind == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(run_dir, name="logs", flush_logs_every_n_steps=20)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    from lightning.pytorch.loggers import WandbLogger

    return WandbLogger(project="pav", name=name, save_dir=str(run_dir), offline=True)


def last_checkpoint(run_dir: Path) -> Path | None:
    path = run_dir / "checkpoints" / "last.ckpt"
    return path if path.exists() else None


# what a resumed run may change: how it runs and reports; everything else makes the step the checkpoint's run took
RESUME_MAY_CHANGE = ("trainer", "logger", "checkpoint_every", "require_cuda_ops", "data.root", "data.num_workers",
                     "data.verify_images", "data.val_size", "data.val_views_per_appearance",
                     "data.eval_views_per_appearance", "data.eval_size", "render.chunk_rays", "render.segment_samples")


def _flat(config: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_resume(path: Path, config: dict) -> int:
    """The step of the checkpoint a run resumes from; a clear error naming every option that differs from the
    checkpoint's run and that a resume cannot change (the model, the render, the losses, the optimiser, the batches,
    the seed)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise RuntimeError(f"{path}: cannot be read as a checkpoint ({exc}); delete it to start over") from exc
    saved = dict(ckpt.get("pav", {}).get("config", {}))
    if isinstance(saved.get("model"), dict):
        saved["model"] = with_older_defaults(saved["model"])
    before, now = _flat(saved), _flat(config)
    differ = [f"{k}={before[k]!r} there, {now[k]!r} now" for k in sorted(before) if k in now and before[k] != now[k]
              and not any(k == m or k.startswith(m + ".") for m in RESUME_MAY_CHANGE)]
    if differ:
        hint = (" (for a run begun before model.pose_cond and model.rigid_reach existed: model.pose_cond=false "
                "model.rigid_reach=inf)" if any(d.startswith(("model.pose_cond", "model.rigid_reach")) for d in differ)
                else "")
        raise RuntimeError(f"{path} cannot be resumed with these options: {'; '.join(differ)}. Pass the "
                           f"checkpoint's values{hint} or train in a new run dir; a resume may change only "
                           f"{', '.join(RESUME_MAY_CHANGE)}")
    return int(ckpt.get("global_step", 0))


def run(cfg: DictConfig | dict, run_dir: str | Path) -> dict:
    """Trains (or resumes) in run_dir and returns the metrics written to run_dir/metrics.json."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    typed = typed_config(cfg)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    resolved = OmegaConf.to_container(OmegaConf.structured(typed), resolve=True)
    L.seed_everything(typed.seed, workers=True, verbose=False)
    check_accelerator(typed)

    dm = AvatarDataModule(typed.data, typed.seed)
    dm.load(typed.loss.depth_regions)  # validates the collection: a bad one stops here, before any training
    meta = make_meta(dm, typed.model)
    system = AvatarSystem(typed.model, typed.render, typed.loss, typed.optim, meta, resolved, str(run_dir))
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(resolved))

    resume = last_checkpoint(run_dir)
    if resume is not None:
        print(f"[pav] Resuming from {resume} at step {check_resume(resume, resolved)}")
    trainer_args = dict(resolved["trainer"])
    trainer_args.pop("name")
    trainer_args["strategy"] = _strategy(trainer_args["strategy"])
    checkpoints = ModelCheckpoint(dirpath=run_dir / "checkpoints", save_last=True, save_top_k=0,
                                  every_n_train_steps=typed.checkpoint_every)
    trainer = L.Trainer(**trainer_args, logger=_logger(typed.logger, run_dir, run_dir.name),
                        callbacks=[checkpoints], default_root_dir=str(run_dir), enable_model_summary=False,
                        use_distributed_sampler=False)  # every rank renders all validation views: same numbers
    start = time.time()
    # TF32 for the fields' MLPs on the GPU during the fit only; the geometry never goes through matmul (deform.mat3)
    precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        trainer.fit(system, datamodule=dm, ckpt_path=str(resume) if resume else None)
    finally:
        torch.set_float32_matmul_precision(precision)
    last = run_dir / "checkpoints" / "last.ckpt"
    trainer.save_checkpoint(last)
    if trainer.global_rank != 0:
        return {}
    # Lightning hands the model back on the CPU after the fit: the held-out views render on the training device
    return write_metrics(system, dm, typed, run_dir, last, time.time() - start, trainer.strategy.root_device)


def write_metrics(system: AvatarSystem, dm: AvatarDataModule, typed: TrainConfig, run_dir: Path, ckpt: Path,
                  fit_seconds: float, device: torch.device | None = None) -> dict:
    renderer = system.renderer.to(device or system.device).eval()
    start = time.time()
    scored = {}
    for which in ("val", "test"):  # validation first: what a default is chosen on; the test frames last, once
        views = dm.heldout_views(typed.data.eval_size, typed.data.eval_views_per_appearance, which)
        if views:  # a collection may have no validation frames
            frames = dm.posed(which).to(renderer.field.box_min.device)
            scored[which] = score_views(renderer, frames, views, dm.appearance_names, progress=True)[0]
        else:
            scored[which] = None
    metrics = {
        **scored["test"],
        "validation": scored["val"],
        "steps": int(system.global_step),
        "train_minutes": system.train_seconds / 60.0,
        "fit_wall_minutes_this_run": fit_seconds / 60.0,
        "eval_seconds": time.time() - start,
        "parameters": int(sum(p.numel() for p in renderer.field.parameters())),
        "checkpoint_mb": ckpt.stat().st_size / 1e6,
        "model": typed.model.name,
        "data": typed.data.name,
        "eval_size": typed.data.eval_size or max(dm.collection.meta.image_size),
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(format_metrics(metrics))
    return metrics


def format_metrics(metrics: dict) -> str:
    lines = ["| appearance | PSNR | SSIM | views |", "|---|---|---|---|"]
    for name, s in metrics["per_appearance"].items():
        lines.append(f"| {name} | {s['psnr']:.2f} | {s['ssim']:.4f} | {s['views']} |")
    lines.append(f"| **mean** | **{metrics['mean']['psnr']:.2f}** | **{metrics['mean']['ssim']:.4f}** | |")
    if metrics.get("validation"):
        val = metrics["validation"]["mean"]
        lines.append(f"\nvalidation frames (what defaults are chosen on): PSNR {val['psnr']:.2f}, "
                     f"SSIM {val['ssim']:.4f}")
    lines.append(f"\n{metrics['model']}: {metrics['steps']} steps, {metrics['train_minutes']:.1f} min, "
                 f"{metrics['parameters'] / 1e6:.2f} M parameters, checkpoint {metrics['checkpoint_mb']:.1f} MB")
    return "\n".join(lines)
