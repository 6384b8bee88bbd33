"""Time one training step split into its stages on a collection: `python bench/train_step.py [overrides]`.

Prints a table: marching, canonicalization, fields (forward), compositing + loss, backward, optimiser, grid
refresh (amortised), with steps/s and samples/s. Defaults: the default synthetic collection, trainer=cpu.
"""

from __future__ import annotations

import sys
import time

import torch
from hydra import compose, initialize_config_dir

from pav.data.datamodule import AvatarDataModule
from pav.losses import total_loss
from pav.render.sampler import march
from pav.render.volume import composite
from pav.system import AvatarSystem
from pav.training import make_meta, typed_config

CONFIGS = str(__import__("pathlib").Path(__file__).resolve().parents[1] / "configs")


def main(argv: list[str]) -> None:
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        cfg = compose("train", overrides=argv)
    t = typed_config(cfg)
    dm = AvatarDataModule(t.data, t.seed)
    dm.load(t.loss.depth_regions)
    dm.setup("fit")
    system = AvatarSystem(t.model, t.render, t.loss, t.optim, make_meta(dm, t.model))
    r = system.renderer
    frames = dm.train_frames
    opt = system.configure_optimizers()
    data = dm.train_dataloader().dataset
    gen = torch.Generator().manual_seed(0)
    # a trained-looking grid: warm-up marks cells within reach, then a few refreshes after some steps
    r.update_grid(frames, 0)
    stages = {k: 0.0 for k in ("batch", "march", "canonicalize", "fields", "composite+loss", "backward",
                                "optimizer", "grid (amortised)")}
    n_steps, warm, samples = 12, 2, 0
    for i in range(n_steps + warm):
        clock = time.perf_counter
        t0 = clock()
        b = data.batch(gen)
        t1 = clock()
        ho, hd = frames.world_to_head(b["origins"], b["dirs"], b["frame_idx"])
        s = march(ho, hd, r.grid, r.step, r.cfg.max_samples, True)
        t2 = clock()
        sf = b["frame_idx"][s.ray_idx]
        canon = r.canonicalizer(s.points, hd[s.ray_idx], frames.posed_verts, frames.bvh, sf)
        keep = torch.nonzero(canon.valid)[:, 0]
        t3 = clock()
        fk = sf[keep]
        sigma, rgb = r.field(canon.points[keep], canon.dirs[keep], canon.uv[keep], frames.appearance[fk],
                             frames.expr[fk])
        t4 = clock()
        out = composite(sigma, rgb, s.t[keep], s.deltas[keep], s.ray_idx[keep], len(ho), b["background"])
        loss = total_loss(t.loss, out.rgb, b["rgb"], out.depth, b["mesh_depth"], b["depth_mask"])["total"]
        t5 = clock()
        opt.zero_grad()
        loss.backward()
        t6 = clock()
        opt.step()
        t7 = clock()
        if i == warm:
            t8 = clock()
            r.update_grid(frames, 10**6)
            grid_time = (clock() - t8) / t.render.grid_update_every
        if i >= warm:
            for k, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6)):
                stages[k] += dt
            samples += len(keep)
    stages = {k: v / n_steps for k, v in stages.items()}
    stages["grid (amortised)"] = grid_time
    total = sum(stages.values())
    rays = t.data.rays_per_batch
    print(f"\ntraining step, {rays} rays, {samples / n_steps / rays:.1f} field samples per ray, "
          f"{torch.get_num_threads()} threads, model={t.model.name}")
    print("| stage | ms | share |\n|---|---|---|")
    for k, v in stages.items():
        print(f"| {k} | {v * 1e3:.1f} | {v / total:.0%} |")
    print(f"| **total** | **{total * 1e3:.1f}** | |")
    print(f"\n{1 / total:.2f} steps/s, {samples / n_steps / total / 1e3:.0f} k samples/s, "
          f"{rays / total / 1e3:.1f} k rays/s")


if __name__ == "__main__":
    main(sys.argv[1:])
