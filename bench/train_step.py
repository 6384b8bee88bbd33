"""Time one training step split into its stages on a collection: `python bench/train_step.py [ckpt=PATH]
[device=auto|cpu|cuda] [overrides]`.

Prints a table: marching, canonicalization, fields (forward), compositing + loss, backward, optimiser, grid
refresh (amortised), with steps/s and samples/s. Defaults: the default synthetic collection, trainer=cpu.
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

    stages = {k: 0.0 for k in ("batch", "march", "canonicalize + visibility", "fields", "composite+loss", "backward",
                                "optimizer", "grid (amortised)")}
    n_steps, warm, samples = 12, 2, 0
    for i in range(n_steps + warm):
        t0 = clock()
        b = {k: v.to(device, non_blocking=True) for k, v in data.batch(gen).items()}
        t1 = clock()
        ho, hd = frames.world_to_head(b["origins"], b["dirs"], b["frame_idx"])
        s = march(ho, hd, r.grid, r.step, r.cfg.max_samples, True)
        t2 = clock()
        sf = b["frame_idx"][s.ray_idx]
        canon = r.canonicalizer(s.points, hd[s.ray_idx], frames.posed_verts, frames.bvh, sf)
        keep = torch.nonzero(canon.valid)[:, 0]
        keep = r._visible(keep, canon, s, sf, frames, len(ho))  # the density-only pass, as training does
        t3 = clock()
        fk = sf[keep]
        sigma, rgb = r.field(canon.points[keep], canon.dirs[keep], canon.uv[keep], frames.appearance[fk],
                             r._expr(frames, fk, canon.face_idx[keep]))
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
        if i == warm:  # one refresh as training does it (after warm-up when a trained grid was loaded)
            t8 = clock()
            r.update_grid(frames, 10**6 if ckpt else 0)
            grid_time = (clock() - t8) / t.render.grid_update_every
        if i >= warm:
            for k, dt in zip(list(stages)[:7], (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6),
                             strict=True):
                stages[k] += dt
            samples += len(out.weights)
    stages = {k: v / n_steps for k, v in stages.items()}
    stages["grid (amortised)"] = grid_time
    total = sum(stages.values())
    rays = t.data.rays_per_batch
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"\ntraining step, {rays} rays, {samples / n_steps / rays:.1f} field samples per ray "
          f"({'trained grid from ' + ckpt if ckpt else 'fresh grid'}), {where}, model={t.model.name}")
    print("| stage | ms | share |\n|---|---|---|")
    for k, v in stages.items():
        print(f"| {k} | {v * 1e3:.1f} | {v / total:.0%} |")
    print(f"| **total** | **{total * 1e3:.1f}** | |")
    print(f"\n{1 / total:.2f} steps/s, {samples / n_steps / total / 1e3:.0f} k samples/s, "
          f"{rays / total / 1e3:.1f} k rays/s")
    print(f"FIG train_step_ms_{device.type}: {total * 1e3:.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
