"""Time one training step split into its stages on a collection: `python bench/train_step.py [ckpt=PATH]
[device=auto|cpu|cuda] [overrides]`.

Prints a table: marching, canonicalization, fields (forward), compositing + loss, backward, optimiser, grid
refresh (amortised), with steps/s and samples/s, before and after the step's speed-ups side by side in one run
(the two interleaved step by step, so both see the same machine load). Defaults: the default synthetic
collection, trainer=cpu.
`ckpt=PATH` (first argument) starts from a trained run's weights and occupancy grid, so the samples per ray
are those of training after warm-up; without it the grid only knows the masks' hull and the meshes' reach.
"""

from __future__ import annotations

import sys
import time

import torch
from hydra import compose, initialize_config_dir

from pav.data.datamodule import AvatarDataModule
from pav.render.job import pick_device
from pav.render.sampler import march
from pav.render.volume import composite
from pav.train.config import typed_config
from pav.train.losses import total_loss
from pav.train.run import make_meta
from pav.train.system import AvatarSystem

CONFIGS = str(__import__("pathlib").Path(__file__).resolve().parents[1] / "configs")


def main(argv: list[str]) -> None:
    options = {k: v for k, _, v in (a.partition("=") for a in argv if a.split("=")[0] in ("ckpt", "device"))}
    argv = [a for a in argv if a.split("=")[0] not in ("ckpt", "device")]
    ckpt = options.get("ckpt")
    device = pick_device(options.get("device", "auto"))
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        cfg = compose("train", overrides=argv)
    t = typed_config(cfg)
    dm = AvatarDataModule(t.data, t.seed)
    dm.load(t.loss.depth_regions)
    dm.setup("fit")
    meta = make_meta(dm, t.model)
    system = AvatarSystem(t.model, t.render, t.loss, t.optim, meta)
    r = system.renderer
    if ckpt:
        state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
        r.load_state_dict({k[len("renderer."):]: v for k, v in state.items() if k.startswith("renderer.")})
    r.to(device)
    frames = dm.train_frames.to(device)
    opt = system.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt  # a schedule changes rates, not the step's time
    data = dm.train_dataloader().dataset
    gen = torch.Generator().manual_seed(0)
    if not ckpt:
        cams = [x.to(device) for x in (dm.K, dm.c2w, dm.alphas, dm.image_frame)]
        r.grid.carve(frames.head_to_world[cams[3]], cams[0], cams[1], cams[2],
                     (frames.posed_verts - meta.canon_verts.to(device)).norm(dim=-1).amax(-1)[cams[3]],
                     frames.appearance[cams[3]])
        r.update_grid(frames, 0)

    def clock() -> float:  # GPU work is asynchronous: a stage ends when its kernels have
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    table_bytes, segments = r.canonicalizer.table_bytes, r.cfg.segment_samples  # r.cfg is t.render: keep them

    def setup(variant: str) -> None:
        """before: one pass over every marched sample, each sample's own triangle frame (no table), the grid
        refresh asking every cell; after: this version's defaults."""
        before = variant == "before"
        r.cfg.segment_samples = 0 if before else segments
        r.canonicalizer.table_bytes = 0 if before else table_bytes

    def grid_refresh(variant: str) -> float:
        """One refresh as training does it (after warm-up when a trained grid was loaded), amortised; the grid is
        put back afterwards so both variants march the same cells."""
        saved = {k: v.clone() for k, v in r.grid.state_dict().items()}
        if variant == "before":  # every cell asked, as before the hull restriction
            r.grid.hull.fill_(True)
        t8 = clock()
        r.update_grid(frames, 10**6 if ckpt else 0)
        elapsed = clock() - t8
        r.grid.load_state_dict(saved)
        return elapsed / t.render.grid_update_every

    names = ("batch", "march", "canonicalize + visibility", "fields", "composite+loss", "backward", "optimizer",
             "grid (amortised)")
    variants = ("before", "after")
    stages = {v: dict.fromkeys(names, 0.0) for v in variants}
    samples = {v: 0 for v in variants}
    asked = {v: 0 for v in variants}
    n_steps, warm = 10, 2
    for i in range(n_steps + warm):
        for variant in variants:  # interleaved: both see the same machine load
            setup(variant)
            t0 = clock()
            b = {k: v.to(device, non_blocking=True) for k, v in data.batch(gen).items()}
            t1 = clock()
            ho, hd = frames.world_to_head(b["origins"], b["dirs"], b["frame_idx"])
            s = march(ho, hd, r.grid, r.step, r.cfg.max_samples, b["offsets"])
            t2 = clock()
            sf = b["frame_idx"][s.ray_idx]
            keep, canon = r.visible_samples(s, hd, sf, frames, len(ho))
            t3 = clock()
            fk = sf[keep]
            sigma, rgb = r.field(canon.points, canon.dirs, canon.uv, frames.appearance[fk],
                                 r._expr(frames, fk, canon.face_idx), frames.pose[fk])
            t4 = clock()
            out = composite(sigma, rgb, s.t[keep], s.deltas[keep], s.ray_idx[keep], len(ho), b["background"])
            loss = total_loss(t.loss, out.rgb, b["rgb"], out.depth, b["mesh_depth"], b["depth_mask"], out.opacity,
                              b["alpha"])["total"]
            t5 = clock()
            opt.zero_grad()
            loss.backward()
            t6 = clock()
            opt.step()
            t7 = clock()
            if i >= warm:
                for k, dt in zip(names[:7], (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6),
                                 strict=True):
                    stages[variant][k] += dt
                samples[variant] += len(out.weights)
                asked[variant] += len(s.points)
    for variant in variants:
        setup(variant)
        stages[variant] = {k: v / n_steps for k, v in stages[variant].items()}
        stages[variant]["grid (amortised)"] = min(grid_refresh(variant) for _ in range(2))
    totals = {v: sum(stages[v].values()) for v in variants}
    rays = t.data.rays_per_batch
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"\ntraining step, {rays} rays, {asked['after'] / n_steps / rays:.1f} marched and "
          f"{samples['after'] / n_steps / rays:.1f} field samples per ray "
          f"({'trained grid from ' + ckpt if ckpt else 'fresh grid'}), {where}, model={t.model.name}")
    print("before: one pass canonicalizes every marched sample, each through its own triangle's frame, and the grid "
          "refresh asks every cell;\nafter: segments of render.segment_samples="
          f"{segments} samples that stop at opaque rays, the per-frame-and-face table, hull cells only")
    print("| stage | before ms | share | after ms | share | speed-up |\n|---|---|---|---|---|---|")
    for k in names:
        b_, a_ = stages["before"][k], stages["after"][k]
        print(f"| {k} | {b_ * 1e3:.1f} | {b_ / totals['before']:.0%} | {a_ * 1e3:.1f} | {a_ / totals['after']:.0%} | "
              f"{b_ / max(a_, 1e-9):.2f}x |")
    print(f"| **total** | **{totals['before'] * 1e3:.1f}** | | **{totals['after'] * 1e3:.1f}** | | "
          f"**{totals['before'] / totals['after']:.2f}x** |")
    for v in variants:
        print(f"{v}: {1 / totals[v]:.2f} steps/s, {samples[v] / n_steps / totals[v] / 1e3:.0f} k field samples/s, "
              f"{rays / totals[v] / 1e3:.1f} k rays/s")
    print(f"FIG train_step_ms_{device.type}: {totals['after'] * 1e3:.1f}")
    print(f"FIG train_step_ms_before_{device.type}: {totals['before'] * 1e3:.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
