"""Writes a synthetic multi-appearance collection with ground truth (see `python -m pav.synthetic`)."""

from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import MISSING
from tqdm import tqdm

from ..data.collection import (
    AppearanceSpec,
    Cameras,
    CollectionMeta,
    CollectionWriter,
    FlameSequence,
)
from ..data.collection.splits import with_validation
from ..head.flame import FLAME
from .contact_sheet import write_contact_sheet
from .looks import make_looks
from .motion import Trajectory, make_camera, make_trajectory, test_frames
from .scene import HeadAtlas, Scene, frame_surface, make_scene
from .shading import shade

N_SHAPE, N_EXPR = 100, 50
TEXTURE_SIZE = 1024
CAM = "00"


@dataclass
class SyntheticConfig:
    out: str = MISSING
    appearances: int = 5
    frames: int = 100
    size: int = 256
    seed: int = 0
    workers: int = 2
    cross: bool = True  # render the cross-appearance test set


@dataclass
class Video:
    """One appearance's own recording: its trajectory and its static camera."""

    name: str
    traj: Trajectory
    K: np.ndarray  # [3, 3]
    c2w: np.ndarray  # [4, 4]
    test: list[int]


_STATE: dict = {}  # per worker process: flame, shape, scenes, videos, writer, size


def subject_shape(seed: int) -> np.ndarray:
    """The subject's identity coefficients [N_SHAPE]: about one standard deviation on each leading component."""
    rng = np.random.default_rng(seed + 1)
    return (rng.normal(0.0, 1.0, N_SHAPE) / np.sqrt(1.0 + 0.05 * np.arange(N_SHAPE))).astype(np.float32)


def _pose(flame: FLAME, shape: torch.Tensor, traj: Trajectory, frames: list[int], offsets=None):
    """Posed vertices [B, V, 3] of the given frames."""
    with torch.no_grad():
        return flame(shape=shape, expr=torch.from_numpy(traj.expr[frames]).float(),
                     rotations=torch.from_numpy(traj.rotations[frames]).float(),
                     transl=torch.from_numpy(traj.transl[frames]).float(), offsets=offsets).verts


def _render_job(job: tuple[int, int, list[int]]):
    """Render appearance `a` under the motion and camera of video `d` for the given frames."""
    a, d, frames = job
    s = _STATE
    torch.set_num_threads(1)
    flame, scene, video = s["flame"], s["scenes"][a], s["videos"][d]
    head = _pose(flame, s["shape"], video.traj, frames)
    hair = _pose(flame, s["shape"], video.traj, frames, offsets=scene.hair_offsets)
    w2c = torch.from_numpy(np.linalg.inv(video.c2w)).float()
    lmk68, lmk68_vis, dense, dense_vis = [], [], [], []
    for i, frame in enumerate(frames):
        surface = frame_surface(scene, flame, head[i], hair[i], w2c)
        rgb, alpha, depth = shade(surface, scene.textures, video.K, s["size"], np.asarray(scene.look.light),
                                  scene.background)
        rgb8 = (rgb.numpy() * 255.0 + 0.5).astype(np.uint8)
        mask8 = (alpha.numpy() * 255.0 + 0.5).astype(np.uint8)
        if a == d:
            s["writer"].write_frame(video.name, CAM, frame, rgb8, mask8)
            for kind, out, vis in (("68", lmk68, lmk68_vis), ("dense", dense, dense_vis)):
                xy, visible = _project_landmarks(flame, head[i], w2c, video.K, depth, kind)
                out.append(xy)
                vis.append(visible)
        else:
            s["writer"].write_cross_frame(s["scenes"][a].look.name, video.name, CAM, frame, rgb8, mask8)
    return job, (lmk68, lmk68_vis, dense, dense_vis)


def _project_landmarks(flame, verts, w2c, K, depth, kind: str):
    """Pixel positions [L, 2] of the head model's landmarks and whether each is unoccluded [L]."""
    pts = flame.landmarks(verts[None], kind=kind)[0] @ w2c[:3, :3].T + w2c[:3, 3]
    pts = pts.double().numpy()
    xy = pts[:, :2] / pts[:, 2:3] * [K[0, 0], K[1, 1]] + K[:2, 2]
    fine = depth.shape[0] // int(round(K[0, 2] * 2 + 1))  # supersampling factor
    col = np.clip(np.round(xy[:, 0] * fine + (fine - 1) / 2).astype(int), 0, depth.shape[1] - 1)
    row = np.clip(np.round(xy[:, 1] * fine + (fine - 1) / 2).astype(int), 0, depth.shape[0] - 1)
    visible = pts[:, 2] <= depth.numpy()[row, col] + 0.004
    return xy.astype(np.float32), visible


def generate(cfg: SyntheticConfig) -> Path:
    """Render the whole collection into cfg.out; returns its root."""
    if cfg.appearances < 1 or cfg.frames < 2 or cfg.size < 16:
        raise ValueError("synthetic: need appearances >= 1, frames >= 2 and size >= 16")
    start = time.time()
    root = Path(cfg.out)
    head_model = f"procedural:{cfg.seed}"
    flame = FLAME.from_file(head_model, n_shape=N_SHAPE, n_expr=N_EXPR)
    shape = torch.from_numpy(subject_shape(cfg.seed))
    atlas = HeadAtlas(flame, TEXTURE_SIZE)
    looks = make_looks(cfg.appearances, cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    scenes: list[Scene] = []
    videos: list[Video] = []
    for look in looks:
        scenes.append(make_scene(look, flame, atlas, cfg.size, rng))
        K, c2w = make_camera(cfg.size, rng)
        videos.append(Video(look.name, make_trajectory(cfg.frames, rng), K, c2w, test_frames(cfg.frames)))
    names = [v.name for v in videos]
    cross = [(a, d) for a in names for d in names if a != d] if cfg.cross else []
    meta = CollectionMeta(subject=f"synthetic-{cfg.seed}", head_model=head_model, n_shape=N_SHAPE, n_expr=N_EXPR,
                          image_size=(cfg.size, cfg.size),
                          appearances=[AppearanceSpec(n, "monocular") for n in names], cross=cross)
    writer = CollectionWriter(root, meta)
    writer.write_shape(shape.numpy())
    _STATE.update(flame=flame, shape=shape, scenes=scenes, videos=videos, writer=writer, size=cfg.size)

    chunk = 10
    jobs = [(a, a, list(range(f, min(f + chunk, cfg.frames)))) for a in range(len(videos))
            for f in range(0, cfg.frames, chunk)]
    if cfg.cross:
        jobs += [(a, d, videos[d].test) for a in range(len(videos)) for d in range(len(videos)) if a != d]
    results = {}
    total = sum(len(j[2]) for j in jobs)
    with tqdm(total=total, desc="rendering", unit="frame") as bar:
        if cfg.workers > 1:
            with mp.get_context("fork").Pool(cfg.workers) as pool:
                for job, res in pool.imap_unordered(_render_job, jobs):
                    results[(job[0], job[1], job[2][0])] = res
                    bar.update(len(job[2]))
        else:
            threads = torch.get_num_threads()  # _render_job pins one thread (right for a pool worker, not here)
            try:
                for job in jobs:
                    results[(job[0], job[1], job[2][0])] = _render_job(job)[1]
                    bar.update(len(job[2]))
            finally:
                torch.set_num_threads(threads)

    for a, video in enumerate(videos):
        parts = [results[(a, a, f)] for f in range(0, cfg.frames, chunk)]
        lmk = [np.stack([x for p in parts for x in p[k]])[:, None] for k in range(4)]
        landmarks = {"lmk68": lmk[0], "lmk68_visible": lmk[1], "dense": lmk[2], "dense_visible": lmk[3],
                     "dense_indices": flame.landmarks_dense.indices.numpy()}
        traj = video.traj
        writer.write_appearance(
            video.name,
            Cameras(K=video.K[None].astype(np.float32), c2w=video.c2w[None].astype(np.float32), names=[CAM]),
            FlameSequence(frame_ids=np.arange(cfg.frames), expr=traj.expr.astype(np.float32),
                          rotations=traj.rotations.astype(np.float32), transl=traj.transl.astype(np.float32)),
            with_validation([f for f in range(cfg.frames) if f not in set(video.test)], list(video.test)),
            landmarks=landmarks,
        )
    writer.finalize()
    write_contact_sheet(root, names, [v.test[0] for v in videos])
    print(f"synthetic collection: {len(names)} appearances x {cfg.frames} frames at {cfg.size}px"
          f" (+{sum(len(j[2]) for j in jobs if j[0] != j[1])} cross-appearance frames) in {time.time() - start:.1f} s"
          f" -> {root}")
    return root
