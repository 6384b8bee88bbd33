"""A small synthetic RenderMe-360 subject in the SMC (HDF5) layout, with its ground truth, for tests and benchmarks.

`write_synthetic_subject(SyntheticSMCSpec(out=DIR))` renders the procedural head with a 60-camera style rig and
writes, per part, `DIR/{actor}/{actor}_{part}_raw.smc` (colour) and `_anno.smc` (masks, calibration, keypoints,
FLAME), as the 21-subject release does, or one `{actor}_{part}.smc` without masks (the 500-subject release).
Expression parts (e*) carry FLAME fits; each hair part (h*) wears its own look. Defects of real downloads
(corrupt masks, missing cameras, missing 2D keypoints) can be injected.

The truth is in the collection convention: `verts == flame(shape=shape, expr=expr, rotations=rotations,
transl=transl).verts`, world space, OpenCV cameras, metres; world up is +y (the head model's), as in
`pav.synthetic.motion.make_camera`, so a camera's y (down) axis points along world -y.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch
from PIL import Image

from ..head.flame import FLAME
from ..render.cameras import look_at
from .generate import N_EXPR, N_SHAPE, subject_shape
from .looks import make_looks
from .motion import _smooth, euler_to_axis_angle
from .scene import HeadAtlas, Scene, frame_surface, make_scene
from .shading import shade

HEAD_CENTRE = (0.03, -0.05, 0.12)  # world position of the head: the world origin is deliberately elsewhere
CAMERA_DISTANCE = 1.0  # metres from the head centre
HEAD_SIZE = 0.26  # metres, with hair
HEAD_FILL = 0.7  # fraction of the image height the head spans
FRONTAL_CAMERA = 25
AZIMUTH_STEP = 6.0  # degrees between neighbouring camera ids
ELEVATIONS = (-8.0, 0.0, 8.0)  # degrees, by camera id modulo 3
KEYPOINT2D_CAMERAS = range(18, 33)  # the release detects 2D landmarks in the frontal-ish cameras only
N_CONTOUR = 33  # face-contour points that start the 106-point 2D layout
ANNO_TEXTURE = 16  # side of the small albedo / UV texture stored with each FLAME frame
SMOOTH_STD = 0.45  # standard deviation of motion._smooth with 3 waves (random phases)
EXPR_STD = 0.6
ACTIVE_EXPR = tuple(range(10))  # the leading expression components (smile, brows, jaw-free mouth, blinks, ...)
ROOT_ATTRS = {"capture_date": "20230101", "age": 30, "color": "yellow", "gender": "female", "height": 1.7,
              "weight": 60.0}
POSE_NAMES = ("global_pose", "neck_pose", "jaw_pose", "left_eye_pose", "right_eye_pose")
GARBAGE = np.frombuffer(b"\x89PNG\r\n\x1a\n this is not an image " * 4, dtype=np.uint8)  # a header, then junk


@dataclass
class SyntheticSMCSpec:
    out: str  # writes out/{actor}/{actor}_{part}_raw.smc and _anno.smc (or {actor}_{part}.smc)
    actor: str = "0297"
    expression_parts: tuple[str, ...] = ("e0", "e1")
    hair_parts: tuple[str, ...] = ("h0", "h1_2bk")
    cameras: tuple[str, ...] = ("02", "10", "18", "22", "25", "30", "40")
    frames: int = 6  # frame ids 0..frames-1, unpadded strings in the file
    height: int = 64
    width: int = 80
    seed: int = 0
    split_files: bool = True
    corrupt_masks: tuple[tuple[str, str, int], ...] = ()  # (part, cam, frame): garbage bytes instead of a PNG
    missing_cameras: tuple[tuple[str, str], ...] = ()  # (part, cam): left out of that part (Camera, Calibration)
    missing_keypoints2d: tuple[tuple[str, str, int], ...] = ()  # (part, cam, frame)
    jpeg_quality: int = 95
    keypoint_noise_mm: float = 0.0
    supersample: int = 1  # antialiasing factor; 1 keeps the default spec fast (the rasteriser's cost is per call)


@dataclass
class PartTruth:
    rotations: np.ndarray  # [T, 5, 3] float32 axis-angle: global, neck, jaw, left eye, right eye
    expr: np.ndarray  # [T, 50] float32
    transl: np.ndarray  # [T, 3] float32
    verts: np.ndarray  # [T, V, 3] float32 world-space posed vertices
    frame_ids: list[int] = field(default_factory=list)


@dataclass
class SyntheticSubject:
    folder: Path  # out/actor
    head_model: str  # "procedural:<seed>"
    shape: np.ndarray  # [100] float32
    parts: dict[str, PartTruth]


@dataclass
class RigCamera:
    """One camera of the rig: K of the stored (cropped) image and of the square render, camera-to-world."""

    cid: str
    K: np.ndarray  # [3, 3] of the stored H x W image
    K_render: np.ndarray  # [3, 3] of the square S x S render
    c2w: np.ndarray  # [4, 4] OpenCV, metres
    crop: tuple[int, int]  # first row and column of the stored image inside the square render


# ----------------------------------------------------------------------------- rig and motion


def rig_camera(cid: str, height: int, width: int, seed: int = 0) -> RigCamera:
    """Camera `cid` of the rig: azimuth (k - 25) * 6 deg about world up, elevation by k % 3, 1 m from the head."""
    k = int(cid)
    azimuth = np.deg2rad((k - FRONTAL_CAMERA) * AZIMUTH_STEP)
    elevation = np.deg2rad(ELEVATIONS[k % 3])
    centre = np.asarray(HEAD_CENTRE)
    direction = np.array([np.sin(azimuth) * np.cos(elevation), np.sin(elevation), np.cos(azimuth) * np.cos(elevation)])
    c2w = look_at(centre + CAMERA_DISTANCE * direction, centre, np.array([0.0, 1.0, 0.0]))
    size = max(height, width)
    focal = HEAD_FILL * height * CAMERA_DISTANCE / HEAD_SIZE
    offset = np.random.default_rng([seed, 7, k]).uniform(-1.0, 1.0, 2)  # a real rig's principal points scatter
    K_render = np.array([[focal, 0.0, (size - 1) / 2.0 + offset[0]], [0.0, focal, (size - 1) / 2.0 + offset[1]],
                         [0.0, 0.0, 1.0]])
    crop = ((size - height) // 2, (size - width) // 2)
    K = K_render.copy()
    K[1, 2] -= crop[0]
    K[0, 2] -= crop[1]
    return RigCamera(cid, K, K_render, c2w, crop)


def project(points: np.ndarray, K: np.ndarray, c2w: np.ndarray) -> np.ndarray:
    """Pinhole pixels [N, 2] of world points [N, 3] (no distortion)."""
    cam = (points - c2w[:3, 3]) @ c2w[:3, :3]  # [N, 3] = R^T (p - t)
    return cam[:, :2] / cam[:, 2:3] * K[[0, 1], [0, 1]] + K[:2, 2]


def make_motion(n_frames: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smooth rotations [T, 5, 3], expression [T, 50] and translation [T, 3] (float64) of one part."""
    t = np.linspace(0.0, 1.0, n_frames)
    rotations = np.zeros((n_frames, 5, 3))
    yaw, pitch, roll = np.deg2rad([25.0, 10.0, 5.0])[:, None] * _waves(rng, t, 3).T  # [3, T]
    rotations[:, 0] = euler_to_axis_angle(yaw, pitch, roll)
    rotations[:, 1] = np.deg2rad(2.0) / np.sqrt(3.0) * _waves(rng, t, 3, 2)  # |neck| <= 2 deg
    rotations[:, 2, 0] = 0.25 * (0.5 + 0.5 * _waves(rng, t, 1, 3, 1.5)[:, 0])  # jaw opening in [0, 0.25] rad
    expr = np.zeros((n_frames, N_EXPR))
    expr[:, ACTIVE_EXPR] = EXPR_STD / SMOOTH_STD * _waves(rng, t, len(ACTIVE_EXPR), 3, 1.0)
    transl = np.asarray(HEAD_CENTRE) + 0.01 * _waves(rng, t, 3, 2)  # within +-1 cm of the head centre
    return rotations, expr, transl


def _waves(rng: np.random.Generator, t: np.ndarray, count: int, n_waves: int = 3, slowest: float = 0.6) -> np.ndarray:
    """`count` independent smooth signals [T, count] in about [-1, 1]."""
    return np.stack([_smooth(rng, t, n_waves, slowest) for _ in range(count)], 1)


def _part_rng(seed: int, part: str) -> np.random.Generator:
    """Per part, so adding or removing a part leaves the others unchanged."""
    return np.random.default_rng([seed, zlib.crc32(part.encode())])


def part_truth(flame: FLAME, shape: np.ndarray, part: str, spec: SyntheticSMCSpec) -> PartTruth:
    rotations, expr, transl = (a.astype(np.float32) for a in make_motion(spec.frames, _part_rng(spec.seed, part)))
    with torch.no_grad():
        verts = flame(shape=torch.from_numpy(shape), expr=torch.from_numpy(expr),
                      rotations=torch.from_numpy(rotations), transl=torch.from_numpy(transl)).verts
    return PartTruth(rotations, expr, transl, verts.numpy(), list(range(spec.frames)))


def _contour(jaw: np.ndarray, count: int = N_CONTOUR) -> np.ndarray:
    """The jaw polyline [17, 3] resampled to `count` points [count, 3] evenly along its length."""
    seg = np.linalg.norm(np.diff(jaw, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    at = np.linspace(0.0, arc[-1], count)
    return np.stack([np.interp(at, arc, jaw[:, i]) for i in range(3)], 1)


# ----------------------------------------------------------------------------- rendering


def _texture_size(size: int) -> int:
    """Texels enough for about two per image pixel: 256 for the small test renders, up to 1024."""
    return min(1024, max(256, 1 << (2 * size - 1).bit_length()))


class _Studio:
    """The rig, the head model and one scene per look, shared by every part of a subject."""

    def __init__(self, spec: SyntheticSMCSpec, flame: FLAME) -> None:
        self.spec = spec
        self.flame = flame
        self.shape = torch.from_numpy(subject_shape(spec.seed))  # [100]
        self.size = max(spec.height, spec.width)
        self.looks = make_looks(max(1, len(spec.hair_parts)), spec.seed)
        self._atlas: HeadAtlas | None = None
        self._scenes: dict[int, Scene] = {}
        frontal = rig_camera(f"{FRONTAL_CAMERA:02d}", spec.height, spec.width, spec.seed)
        self.frontal_rotation = frontal.c2w[:3, :3]  # looks define their light in a frontal camera's space

    def look_index(self, part: str) -> int:
        """Hair part i wears look i; expression parts wear the first (the subject's own hair, as h0)."""
        return self.spec.hair_parts.index(part) if part in self.spec.hair_parts else 0

    def scene(self, index: int) -> Scene:
        if index not in self._scenes:
            if self._atlas is None:
                self._atlas = HeadAtlas(self.flame, _texture_size(self.size))
            rng = np.random.default_rng([self.spec.seed, 100 + index])
            self._scenes[index] = make_scene(self.looks[index], self.flame, self._atlas, self.size, rng)
        return self._scenes[index]

    def hair_verts(self, truth: PartTruth, scene: Scene) -> torch.Tensor:
        """The hair shell [T, V, 3] posed like the head."""
        with torch.no_grad():
            return self.flame(shape=self.shape, expr=torch.from_numpy(truth.expr),
                              rotations=torch.from_numpy(truth.rotations), transl=torch.from_numpy(truth.transl),
                              offsets=scene.hair_offsets).verts

    def render(self, scene: Scene, head: torch.Tensor, hair: torch.Tensor, cam: RigCamera):
        """RGB [H, W, 3] and alpha [H, W] (uint8) of one view; head and hair are [V, 3] world space."""
        w2c = torch.from_numpy(np.linalg.inv(cam.c2w)).float()
        surface = frame_surface(scene, self.flame, head, hair, w2c)
        light = cam.c2w[:3, :3].T @ (self.frontal_rotation @ np.asarray(scene.look.light))  # fixed in the world
        rgb, alpha, _ = shade(surface, scene.textures, cam.K_render, self.size, light, scene.background,
                              self.spec.supersample)
        rows = slice(cam.crop[0], cam.crop[0] + self.spec.height)
        cols = slice(cam.crop[1], cam.crop[1] + self.spec.width)
        rgb8 = (rgb[rows, cols].numpy() * 255.0 + 0.5).astype(np.uint8)
        mask8 = (alpha[rows, cols].numpy() * 255.0 + 0.5).astype(np.uint8)
        return rgb8, mask8


def _encode(image: np.ndarray, fmt: str, **options) -> np.ndarray:
    """Encoded bytes of an image, as the release stores them: a 1-D uint8 dataset."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, fmt, **options)
    return np.frombuffer(buf.getvalue(), dtype=np.uint8)


# ----------------------------------------------------------------------------- writing


def _check_spec(spec: SyntheticSMCSpec) -> None:
    parts = (*spec.expression_parts, *spec.hair_parts)
    problems = []
    if len(set(parts)) != len(parts) or not parts:
        problems.append(f"parts must be distinct and not empty, got {parts}")
    if not spec.cameras or any(len(c) != 2 or not c.isdigit() or int(c) > 59 for c in spec.cameras):
        problems.append(f"cameras must be two-digit ids '00'..'59', got {spec.cameras}")
    if spec.frames < 1 or spec.height < 8 or spec.width < 8 or spec.supersample < 1:
        problems.append("need frames >= 1, height and width >= 8, supersample >= 1")
    if problems:
        raise ValueError("SyntheticSMCSpec: " + "; ".join(problems))


def _set_attrs(obj: h5py.Group, attrs: dict) -> None:
    for key, value in attrs.items():
        obj.attrs[key] = value


def _camera_attrs(spec: SyntheticSMCSpec, n_cameras: int) -> dict:
    return {"num_device": n_cameras, "num_frame": spec.frames,
            "resolution": np.array([spec.height, spec.width], dtype=np.int64)}


def _write_flame(anno: h5py.File, truth: PartTruth, shape: np.ndarray, scene: Scene, neutral: np.ndarray,
                 faces: np.ndarray) -> None:
    """FLAME/{fid}, UV_texture/{fid} and Scan: what the release ships for expression parts only."""
    skin = scene.textures[0].numpy().astype(np.float64)  # [T, T, 3]
    step = skin.shape[0] // ANNO_TEXTURE
    small = skin.reshape(ANNO_TEXTURE, step, ANNO_TEXTURE, step, 3).mean((1, 3))  # [16, 16, 3]
    group = anno.create_group("FLAME")
    group.attrs["num_frame"] = len(truth.frame_ids)
    for i, fid in enumerate(truth.frame_ids):
        frame = group.create_group(str(fid))
        for j, name in enumerate(POSE_NAMES):
            frame.create_dataset(name, data=truth.rotations[i, j].astype(np.float64))
        frame.create_dataset("trans", data=truth.transl[i].astype(np.float64))
        frame.create_dataset("shape", data=shape.astype(np.float64))
        frame.create_dataset("exp", data=truth.expr[i].astype(np.float64))
        frame.create_dataset("verts", data=truth.verts[i].astype(np.float64))
        frame.create_dataset("albedos", data=small.transpose(2, 0, 1))
        anno.create_dataset(f"UV_texture/{fid}", data=(small * 255.0 + 0.5).astype(np.uint8))
    anno.create_dataset("Scan/vertex", data=neutral.astype(np.float64))
    anno.create_dataset("Scan/vertex_indices", data=faces.astype(np.int32))


def _write_keypoints(anno: h5py.File, studio: _Studio, part: str, truth: PartTruth, cams: list[RigCamera]) -> None:
    """Keypoints3d: the dense embedding (+ noise); Keypoints2d: 33 contour points + the 73 projected, frontal views."""
    spec, flame = studio.spec, studio.flame
    with torch.no_grad():
        verts = torch.from_numpy(truth.verts)
        dense = flame.landmarks(verts, kind="dense").double().numpy()  # [T, 73, 3]
        jaw = flame.landmarks(verts, kind="68")[:, :17].double().numpy()  # [T, 17, 3]
    noise_rng = np.random.default_rng([spec.seed, 11, zlib.crc32(part.encode())])
    dense = dense + noise_rng.normal(0.0, spec.keypoint_noise_mm / 1000.0, dense.shape)
    skip = {(c, f) for p, c, f in spec.missing_keypoints2d if p == part}
    k3d, k2d = anno.create_group("Keypoints3d"), anno.create_group("Keypoints2d")
    k3d.attrs["num_frame"] = k2d.attrs["num_frame"] = len(truth.frame_ids)
    for i, fid in enumerate(truth.frame_ids):
        k3d.create_dataset(str(fid), data=dense[i])
        for cam in cams:
            if int(cam.cid) not in KEYPOINT2D_CAMERAS or (cam.cid, fid) in skip:
                continue
            points = np.concatenate([_contour(jaw[i]), dense[i]])  # [106, 3]
            k2d.create_dataset(f"{cam.cid}/{fid}", data=project(points, cam.K, cam.c2w))


def _open_part(folder: Path, spec: SyntheticSMCSpec, part: str) -> tuple[h5py.File, h5py.File]:
    """The (colour, annotation) files of a part: two files in split mode, else the same one twice."""
    attrs = {"actor_id": spec.actor, "performance_part": part, **ROOT_ATTRS}
    if not spec.split_files:
        single = h5py.File(folder / f"{spec.actor}_{part}.smc", "w")
        _set_attrs(single, attrs)
        return single, single
    raw = h5py.File(folder / f"{spec.actor}_{part}_raw.smc", "w")
    anno = h5py.File(folder / f"{spec.actor}_{part}_anno.smc", "w")
    _set_attrs(raw, attrs)
    _set_attrs(anno, attrs)
    return raw, anno


def _write_part(folder: Path, studio: _Studio, part: str, truth: PartTruth) -> None:
    spec = studio.spec
    missing = {c for p, c in spec.missing_cameras if p == part}
    corrupt = {(c, f) for p, c, f in spec.corrupt_masks if p == part}
    cams = [rig_camera(c, spec.height, spec.width, spec.seed) for c in spec.cameras if c not in missing]
    scene = studio.scene(studio.look_index(part))
    hair = studio.hair_verts(truth, scene)  # [T, V, 3]
    head = torch.from_numpy(truth.verts)
    main, anno = _open_part(folder, spec, part)
    try:
        _set_attrs(anno.require_group("Camera"), _camera_attrs(spec, len(cams)))
        for cam in cams:
            calib = anno.create_group(f"Calibration/{cam.cid}")
            calib.create_dataset("K", data=cam.K)
            calib.create_dataset("D", data=np.zeros(5))
            calib.create_dataset("RT", data=cam.c2w)
            for i, fid in enumerate(truth.frame_ids):
                rgb8, mask8 = studio.render(scene, head[i], hair[i], cam)
                main.create_dataset(f"Camera/{cam.cid}/color/{fid}",
                                    data=_encode(rgb8, "JPEG", quality=spec.jpeg_quality))
                if spec.split_files:
                    mask = GARBAGE if (cam.cid, fid) in corrupt else _encode(mask8, "PNG", compress_level=1)
                    anno.create_dataset(f"Camera/{cam.cid}/mask/{fid}", data=mask)
        _write_keypoints(anno, studio, part, truth, cams)
        if part in spec.expression_parts:
            with torch.no_grad():
                neutral = studio.flame(shape=studio.shape, transl=torch.tensor(HEAD_CENTRE)).verts[0].numpy()  # [V, 3]
            _write_flame(anno, truth, studio.shape.numpy(), scene, neutral, studio.flame.faces.numpy())
    finally:
        anno.close()
        if main is not anno:
            main.close()


def _save_truth(path: Path, subject: SyntheticSubject) -> None:
    arrays = {"shape": subject.shape, "head_model": np.array(subject.head_model)}
    for part, truth in subject.parts.items():
        arrays.update({f"{part}/rotations": truth.rotations, f"{part}/expr": truth.expr,
                       f"{part}/transl": truth.transl, f"{part}/verts": truth.verts,
                       f"{part}/frame_ids": np.asarray(truth.frame_ids)})
    np.savez(path, **arrays)


def _all_parts(spec: SyntheticSMCSpec) -> tuple[str, ...]:
    return (*spec.expression_parts, *spec.hair_parts)


@contextmanager
def _one_thread() -> Iterator[None]:
    """Small per-frame ops: one thread is faster, and much faster on a busy machine (no spinning workers)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def write_synthetic_subject(spec: SyntheticSMCSpec) -> SyntheticSubject:
    """Render and write every part of the subject; returns the truth (also saved as out/{actor}/truth.npz)."""
    with _one_thread():
        return _write_subject(spec)


def _write_subject(spec: SyntheticSMCSpec) -> SyntheticSubject:
    _check_spec(spec)
    folder = Path(spec.out) / spec.actor
    folder.mkdir(parents=True, exist_ok=True)
    head_model = f"procedural:{spec.seed}"
    flame = FLAME.from_file(head_model, n_shape=N_SHAPE, n_expr=N_EXPR)
    shape = subject_shape(spec.seed)
    studio = _Studio(spec, flame)
    parts = {}
    for part in _all_parts(spec):
        parts[part] = part_truth(flame, shape, part, spec)
        _write_part(folder, studio, part, parts[part])
    subject = SyntheticSubject(folder, head_model, shape, parts)
    _save_truth(folder / "truth.npz", subject)
    return subject


def render_view(spec: SyntheticSMCSpec, part: str, cam: str, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """The RGB [H, W, 3] and alpha [H, W] (uint8, before encoding) that write_synthetic_subject stores for a view."""
    _check_spec(spec)
    if part not in _all_parts(spec):
        raise ValueError(f"render_view: part {part!r} not in the spec's parts {tuple(_all_parts(spec))}")
    with _one_thread():
        flame = FLAME.from_file(f"procedural:{spec.seed}", n_shape=N_SHAPE, n_expr=N_EXPR)
        studio = _Studio(spec, flame)
        truth = part_truth(flame, subject_shape(spec.seed), part, spec)
        scene = studio.scene(studio.look_index(part))
        hair = studio.hair_verts(truth, scene)
        return studio.render(scene, torch.from_numpy(truth.verts[frame]), hair[frame],
                             rig_camera(cam, spec.height, spec.width, spec.seed))
