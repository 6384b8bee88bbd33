"""`track(cfg)`: FLAME for every appearance of a prepared collection, one shape for the person.

Order: (1) the identity: one shape and a focal length per video from keyframes of all videos
together; (2) per video, with the shape fixed: rigid placement, keyframes, interpolation, every
frame with temporal smoothness, then (optionally) the photometric refinement. Each step's result
is saved under ROOT/tracking/, so a rerun resumes with the first unfinished appearance. The saved
identity records the appearances it saw and each appearance's result the shape it was fitted with:
a collection whose appearances changed fits the shape, then every appearance, again.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from omegaconf import MISSING
from tqdm import tqdm

from ..data.collection import CAMERAS_FILE, FLAME_FILE, META_FILE, SHAPE_FILE, SPLIT_FILE, VERSION, Collection
from ..head.flame import FLAME
from .camera import camera_to_world, intrinsics
from .fit import FitWeights
from .identity import fit_identity
from .inputs import TrackingInputError, TrackInput, read_inputs, read_split
from .landmarks import LandmarkProjector
from .overlay import write_overlay
from .sequence import fit_sequence

STATE_DIR = "tracking"
IDENTITY_FILE = "identity.npz"
DEFAULT_FOCAL = 2.0  # x image width (about 28 degrees), when the crop's zoom is unknown
PHONE_FOCAL = 0.87  # x source width: a 60-degree horizontal field of view
DEVICES = ("auto", "cpu", "cuda")
# what a saved result does not depend on: a run started on the CPU resumes on a GPU
RUN_ONLY_KEYS = ("collection", "overlay", "fps", "restart", "threads", "device")
HEAD_FILE_KEYS = ("head_model", "uv_layout", "landmark_embedding")  # collection.json records them


class TrackConfigError(ValueError):
    """A tracking option that cannot work here; the message names the option."""


@dataclass
class TrackConfig:
    collection: str = MISSING
    head_model: str | None = None  # FLAME pickle; default: collection.json's head_model (procedural:0)
    uv_layout: str | None = None  # FLAME's uv layout file (head_template.obj or the texture space npz)
    landmark_embedding: str | None = None  # FLAME's mediapipe_landmark_embedding.npz
    n_shape: int = 100
    n_expr: int = 50
    focal: float = 0.0  # initial focal length in pixels; 0: from the crop's zoom, else 2x the width
    keyframes: int = 40  # per appearance, for the shape and to start each sequence
    rigid_steps: int = 150
    identity_steps: int = 400
    sequence_steps: int = 400
    photometric: bool = True
    photo_size: int = 128  # photometric term's image size (coarse-to-fine ends here)
    photo_batch: int = 16  # frames per photometric batch
    photo_steps: int = 10  # optimisation steps per batch (each about 0.1 s at 128 px, 16 frames)
    overlay: bool = True
    fps: float = 25.0  # of the overlay videos
    restart: bool = False  # ignore saved progress under ROOT/tracking/
    threads: int = 0  # torch threads on the CPU; 0 = all cores
    device: str = "auto"  # auto | cpu | cuda (auto: CUDA when torch sees one)


def pick_device(spec: str) -> torch.device:
    """auto | cpu | cuda -> the device the fit runs on; refuses cuda where torch sees no CUDA device."""
    if spec not in DEVICES:
        raise TrackConfigError(f"device={spec!r} is not one of {', '.join(DEVICES)}")
    if spec == "cuda" and not torch.cuda.is_available():
        raise TrackConfigError("device=cuda but torch sees no CUDA device (a CPU build of torch, or no GPU); "
                               "use device=cpu or device=auto")
    return torch.device("cuda" if spec == "cuda" or (spec == "auto" and torch.cuda.is_available()) else "cpu")


def _settings(cfg: TrackConfig, w: FitWeights) -> dict:
    """What a saved result depends on: a rerun with other settings starts over instead of mixing."""
    keep = {k: v for k, v in asdict(cfg).items() if k not in RUN_ONLY_KEYS}
    return json.loads(json.dumps({**keep, "weights": asdict(w)}))


def _read_state(path: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files}


def _saved_settings(state: dict[str, np.ndarray]) -> dict:
    return json.loads(str(state.get("settings", "{}")))


def _load_state(path: Path, settings: dict) -> dict[str, np.ndarray] | None:
    state = _read_state(path)
    if state is not None and _saved_settings(state) != settings:
        print(f"[pav.track] {path}: saved with other settings; fitting again")
        return None
    return state


def appearance_record(inputs: list[TrackInput]) -> dict[str, dict]:
    """What the identity fit sees of each appearance: its frame count and a digest of its frames' detections."""
    record = {}
    for inp in inputs:
        digest = hashlib.sha1()
        for array in (inp.frame_ids, inp.landmarks, inp.confidence):
            digest.update(np.ascontiguousarray(array).tobytes())
        record[inp.name] = {"frames": len(inp), "detections": digest.hexdigest()}
    return record


def appearance_changes(saved: dict[str, dict], current: dict[str, dict]) -> str:
    """The differences between the appearances a saved identity saw and the collection's, in words ('' if none)."""
    added = [name for name in current if name not in saved]
    removed = [name for name in saved if name not in current]
    changed = []
    for name in current:
        before, now = saved.get(name), current[name]
        if before is None or before == now:
            continue
        frames = before.get("frames") if isinstance(before, dict) else None
        changed.append(f"{name} ({frames} -> {now['frames']} frames)" if frames != now["frames"]
                       else f"{name} (other detections)")
    parts = [f"{label} {', '.join(names)}" for label, names in
             (("new:", added), ("removed:", removed), ("changed:", changed)) if names]
    return "; ".join(parts)


def _load_identity(path: Path, settings: dict, record: dict[str, dict]) -> dict[str, np.ndarray] | None:
    """The saved identity, or None (with one line saying why) when it was fitted to other appearances."""
    state = _read_state(path)
    if state is None:
        return None
    if "appearances" not in state:
        why = "does not record which appearances it saw (saved by an older pav)"
    elif _saved_settings(state) != settings:
        why = "was saved with other settings"
    else:
        changes = appearance_changes(json.loads(str(state["appearances"])), record)
        why = f"was fitted to other appearances ({changes})" if changes else ""
    if why:
        print(f"[pav.track] identity: {path} {why}; fitting the shape again over all {len(record)} appearances, "
              "then every appearance")
        return None
    return state


def _load_appearance(path: Path, settings: dict, shape: np.ndarray) -> dict[str, np.ndarray] | None:
    """An appearance's saved fit, or None when it was fitted with another shape (an interrupted refit)."""
    state = _load_state(path, settings)
    if state is not None and not np.array_equal(state.get("identity_shape"), shape):
        print(f"[pav.track] {path}: fitted with another shape than {IDENTITY_FILE}'s; fitting again")
        return None
    return state


def _save_state(path: Path, settings: dict, **arrays) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, settings=np.array(json.dumps(settings)), **arrays)
    os.replace(tmp, path)


def initial_focal(cfg: TrackConfig, inp: TrackInput) -> float:
    if cfg.focal > 0:
        return cfg.focal
    if inp.source_width is not None:  # the crop magnifies the source by source width / crop side
        return PHONE_FOCAL * inp.source_width * inp.image_size[1]
    return DEFAULT_FOCAL * inp.image_size[1]


def head_files(cfg: TrackConfig, meta: dict) -> dict[str, str | None]:
    """The head model and its files: the command line's, else collection.json's (a rerun needs no paths)."""
    files = {key: getattr(cfg, key) or meta.get(key) for key in HEAD_FILE_KEYS}
    return {**files, "head_model": files["head_model"] or "procedural:0"}


def load_head(cfg: TrackConfig, meta: dict, device: torch.device | str = "cpu") -> tuple[FLAME, str]:
    files = head_files(cfg, meta)
    flame = FLAME.from_file(files["head_model"], n_shape=cfg.n_shape, n_expr=cfg.n_expr,
                            uv_layout=files["uv_layout"], landmark_embedding=files["landmark_embedding"])
    return flame.to(device), files["head_model"]


def track(cfg: TrackConfig) -> dict:
    """Fit, save and write the tracked collection; returns a summary per appearance."""
    device = pick_device(cfg.device)  # before any work: a bad device fails at once
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    root = Path(cfg.collection)
    meta, inputs = read_inputs(root)
    # the files actually used: a rerun that takes them from collection.json has the first run's settings
    cfg = replace(cfg, **head_files(cfg, meta))
    flame, head = load_head(cfg, meta, device)
    ids = {tuple(inp.landmark_ids.tolist()) for inp in inputs}
    if len(ids) != 1:
        raise TrackingInputError(f"{root}: appearances were detected with different landmark sets")
    projector = LandmarkProjector(flame, inputs[0].landmark_ids)
    state_dir = root / STATE_DIR
    state_dir.mkdir(exist_ok=True)
    w = FitWeights()
    settings = _settings(cfg, w)
    started = time.time()

    identity_path = state_dir / IDENTITY_FILE
    record = appearance_record(inputs)
    identity = None if cfg.restart else _load_identity(identity_path, settings, record)
    refitted = identity is None  # the appearances' saved fits used another shape (or none): fit them again
    if identity is None:
        print(f"[pav.track] identity: one shape from {cfg.keyframes} keyframes of each of {len(inputs)} appearances")
        shape, focals, residual = fit_identity(projector, inputs, [initial_focal(cfg, i) for i in inputs], cfg.n_shape,
                                               cfg.keyframes, cfg.rigid_steps, cfg.identity_steps, w)
        _save_state(identity_path, settings, shape=shape, focals=np.asarray(focals, np.float32),
                    names=np.asarray([i.name for i in inputs]), residual=np.float32(residual),
                    appearances=np.array(json.dumps(record)))
        identity = {"shape": shape, "focals": np.asarray(focals), "names": np.asarray([i.name for i in inputs])}
    else:
        print(f"[pav.track] identity: resumed from {identity_path}")
    shape = np.asarray(identity["shape"], np.float32)
    focal_of = dict(zip([str(n) for n in identity["names"]], [float(f) for f in identity["focals"]], strict=True))

    summary = {}
    for inp in tqdm(inputs, desc="[pav.track] appearances", unit="appearance"):
        path = state_dir / f"{inp.name}.npz"
        state = None if refitted else _load_appearance(path, settings, shape)
        if state is not None:
            tqdm.write(f"[pav.track] {inp.name}: resumed from {path}")
        else:
            t0 = time.time()
            seq, residual = fit_sequence(projector, inp, shape, focal_of[inp.name],
                                         cfg.keyframes, cfg.rigid_steps, cfg.sequence_steps, w)
            photo = None
            if cfg.photometric:
                from .photometric import refine_photometric

                photo = refine_photometric(flame, projector, inp, seq, shape, cfg, w)
            state = {**seq.state(), "identity_shape": shape, "residual": np.float32(residual),
                     "photometric": np.float32(np.nan if photo is None else photo),
                     "seconds": np.float32(time.time() - t0)}
            _save_state(path, settings, **state)
            tqdm.write(f"[pav.track] {inp.name}: {len(inp)} frames, landmark error {np.sqrt(2 * residual):.2f} px "
                       f"(at 256), focal {float(state['focal']):.0f} px, {float(state['seconds']):.0f} s")
        summary[inp.name] = {"frames": len(inp), "focal": float(state["focal"]),
                             "landmark_px": float(np.sqrt(2 * float(state["residual"]))),
                             "seconds": float(state["seconds"])}
    write_tracked(root, meta, head, cfg, flame, inputs, shape, state_dir, settings)
    print(f"[pav.track] wrote {root} ({time.time() - started:.0f} s on {device.type}); train with "
          f"`python train.py data=vidcol data.root={root}`")
    return summary


def write_tracked(root: Path, meta: dict, head: str, cfg: TrackConfig, flame: FLAME, inputs: list[TrackInput],
                  shape: np.ndarray, state_dir: Path, settings: dict) -> None:
    """shape.npy, each appearance's cameras.npz, flame.npz, split.json and overlay; collection.json last."""
    np.save(root / SHAPE_FILE, shape.astype(np.float32))
    for inp in inputs:
        state = _load_state(state_dir / f"{inp.name}.npz", settings)
        assert state is not None
        focal = float(state["focal"])
        np.savez(inp.root / CAMERAS_FILE, K=intrinsics(focal, inp.image_size)[None].astype(np.float32),
                 c2w=camera_to_world()[None].astype(np.float32), names=np.asarray(["00"]))
        np.savez(inp.root / FLAME_FILE, frame_ids=inp.frame_ids, expr=state["expr"].astype(np.float32),
                 rotations=state["rotations"].astype(np.float32), transl=state["transl"].astype(np.float32))
        if not (inp.root / SPLIT_FILE).is_file():
            (inp.root / SPLIT_FILE).write_text(json.dumps(read_split(root, inp.name, inp.frame_ids)))
        if cfg.overlay:
            _overlay(state_dir / f"{inp.name}.mp4", flame, inp, shape, state, cfg.fps)
    meta = {**meta, "version": VERSION, "head_model": head, "n_shape": cfg.n_shape, "n_expr": cfg.n_expr}
    for key in ("uv_layout", "landmark_embedding"):  # training finds the head model's files where tracking did
        value = getattr(cfg, key) or meta.get(key)
        if value is not None:
            meta[key] = value
    tmp = root / (META_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, root / META_FILE)
    Collection.open(root, verify_images="header")  # the result must be a collection training accepts


def _overlay(path: Path, flame: FLAME, inp: TrackInput, shape: np.ndarray, state: dict, fps: float) -> None:
    def frames_of(rows: np.ndarray, scale: float) -> np.ndarray:
        size = (round(inp.image_size[0] * scale), round(inp.image_size[1] * scale))
        rgb, _ = inp.load_images(rows, size)
        return (rgb * 255 + 0.5).astype(np.uint8)

    device = flame.v_template.device

    def verts_of(rows: np.ndarray) -> torch.Tensor:
        def t(value: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.asarray(value, np.float32)).to(device)

        return flame(shape=t(shape), expr=t(state["expr"][rows]), rotations=t(state["rotations"][rows]),
                     transl=t(state["transl"][rows])).verts  # [B, V, 3] on the fit's device

    write_overlay(path, frames_of, verts_of, flame.faces, float(state["focal"]), inp.image_size, len(inp), fps)
