"""Ray batches for training and whole views for validation, read from a collection.

Every training image is held in memory as uint8; a batch draws rays from many views at once, a fraction of
them from foreground pixels. Frames are posed once (head-space meshes, one BVH over all of them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from omegaconf import MISSING
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset
from tqdm import tqdm

from ..deform.frames import FrameSet
from ..head.flame import FLAME
from ..head.regions import head_regions
from ..render.rays import pixel_rays, scale_intrinsics
from .collection import Collection
from .collection.format import SPLIT_PARTS
from .reach import matte_reach


@dataclass
class SyntheticSpec:
    appearances: int = 5
    frames: int = 100
    size: int = 256
    seed: int = 0


@dataclass
class DataConfig:
    name: str = "synthetic"
    root: str = MISSING  # data/synthetic.yaml sets data/synthetic; vidcol and renderme need data.root=DIR
    generate: SyntheticSpec | None = None  # synthetic only: written to root when it is missing
    rays_per_batch: int = 2048
    num_workers: int = 0  # processes building ray batches beside training (0: in the training process)
    fg_fraction: float = 0.6  # share of rays drawn from pixels with alpha > 0.5; the rest are uniform
    val_size: int = 128  # longest side of validation renders
    val_views_per_appearance: int = 2
    eval_views_per_appearance: int = 0  # held-out views per appearance for metrics.json; 0 = all
    eval_size: int = 0  # longest side for metrics.json renders; 0 = the collection's size
    verify_images: str = "full"  # full | header | none, as Collection.open
    head_model: str | None = None  # overrides collection.json's head_model (the licensed FLAME files' path)
    uv_layout: str | None = None  # overrides collection.json's uv_layout (FLAME's separate uv file)
    head_regions: str | None = None  # FLAME_masks.pkl (region -> vertex ids): the regions of loss.depth_regions
    landmark_embedding: str | None = None  # overrides collection.json's; without region labels the face region is
    # where these landmarks lie on the neutral head


@dataclass
class View:
    """One held-out image: its frame in the held-out FrameSet, camera and target composited on white."""

    appearance: int
    frame: int
    K: Tensor  # [3, 3] at the view's size
    c2w: Tensor  # [4, 4]
    height: int
    width: int
    rgb: Tensor  # [H, W, 3] on white
    alpha: Tensor  # [H, W]
    name: str  # "<appearance>/<cam>/<frame id>"
    valid: Tensor | None = None  # [H, W] bool, True where the pixel is real; None: every pixel is


Row = tuple[int, int, int, list[str]]  # appearance index, flame position, frame id, cameras


def _frame_table(collection: Collection, which: str) -> list[Row]:
    """The frames with at least one camera in the train, val or test set, in collection order.

    Multiview splits may hold out cameras: their train and validation frames are then test views too (novel views).
    """
    rows = []
    for a, app in enumerate(collection):
        split = app.split
        ids = {"train": split.train, "val": split.val, "test": split.train + split.val + split.test}[which]
        for fid in sorted(ids):
            cams = app.split.cameras(fid, app.camera_names, which)
            if cams:
                rows.append((a, app.flame.index_of(fid), fid, cams))
    return rows


def build_frames(collection: Collection, flame: FLAME, rows: list[Row]) -> FrameSet:
    apps = list(collection)

    def pick(attr: str) -> Tensor:  # one FLAME field, stacked over the rows
        return torch.from_numpy(np.stack([getattr(apps[row[0]].flame, attr)[row[1]] for row in rows]))

    return FrameSet.build(flame, torch.from_numpy(collection.shape), pick("expr"), pick("rotations"),
                          pick("transl"), torch.tensor([row[0] for row in rows]))


def batch_generator(seed: int, rank: int, step: int) -> torch.Generator:
    """The generator of one training step's batch: a function of the run's seed, the rank and the step alone, so a
    resumed run draws the batches an unbroken one would, whatever the number of batch workers."""
    state = np.random.SeedSequence([seed, rank, step]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class RayBatches(IterableDataset):
    """Endless random ray batches, one per training step from start_step on; each rank draws its own stream."""

    def __init__(self, images: Tensor, alphas: Tensor, image_frame: Tensor, K: Tensor, c2w: Tensor,
                 frames: FrameSet, depth_faces: Tensor, cfg: DataConfig, seed: int,
                 valids: Tensor | None = None, start_step: int = 0) -> None:
        self.images, self.alphas = images, alphas  # [N, H, W, 3] uint8, [N, H, W] uint8
        self.image_frame, self.K, self.c2w = image_frame, K, c2w  # [N], [N, 3, 3], [N, 4, 4]
        self.frames, self.depth_faces, self.cfg, self.seed = frames, depth_faces, cfg, seed
        self.start_step = start_step
        fg = alphas.reshape(-1) > 127
        # unknown pixels (valids False) are never drawn: neither a target nor background
        self.known_pixels = None if valids is None else torch.nonzero(valids.reshape(-1))[:, 0]
        self.fg_pixels = torch.nonzero(fg if valids is None else fg & valids.reshape(-1))[:, 0]  # into [N, H, W]

    def draw(self, gen: torch.Generator) -> Tensor:
        """[R] flat pixel indices into [N, H, W]: fg_fraction from the matte, the rest uniform, all real pixels."""
        n_img, height, width = self.alphas.shape
        n = self.cfg.rays_per_batch
        n_fg = int(round(n * self.cfg.fg_fraction)) if len(self.fg_pixels) else 0
        fg = self.fg_pixels[torch.randint(len(self.fg_pixels), (n_fg,), generator=gen)]
        if self.known_pixels is None:
            uniform = torch.randint(n_img * height * width, (n - n_fg,), generator=gen)
        else:
            uniform = self.known_pixels[torch.randint(len(self.known_pixels), (n - n_fg,), generator=gen)]
        return torch.cat([fg, uniform])

    def batch(self, gen: torch.Generator) -> dict[str, Tensor]:
        height, width = self.alphas.shape[1:]
        n = self.cfg.rays_per_batch
        flat = self.draw(gen)
        img, pix = flat // (height * width), flat % (height * width)
        row, col = pix // width, pix % width
        rgb = self.images[img, row, col].float() / 255.0  # [R, 3]
        alpha = self.alphas[img, row, col].float() / 255.0  # [R]
        background = torch.rand(n, 3, generator=gen)
        target = rgb * alpha[:, None] + background * (1.0 - alpha[:, None])
        frame_idx = self.image_frame[img]
        origins, dirs = pixel_rays(self.K[img], self.c2w[img], torch.stack([col, row], -1).float())
        head_o, head_d = self.frames.world_to_head(origins, dirs, frame_idx)
        t, face, _ = self.frames.bvh.raycast(head_o, head_d, frame_idx)
        depth_mask = (face >= 0) & self.depth_faces[face.clamp_min(0)] & (alpha > 0.5)
        offsets = torch.rand(n, generator=gen)  # each ray's place within its march steps
        return {"origins": origins, "dirs": dirs, "frame_idx": frame_idx, "rgb": target, "alpha": alpha,
                "background": background, "mesh_depth": torch.where(depth_mask, t, torch.zeros_like(t)),
                "depth_mask": depth_mask, "offsets": offsets}

    def __iter__(self):
        """Worker w of W draws the batches of steps start_step + w, + w + W, ...: the loader takes them in turn."""
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        step = self.start_step + worker
        while True:
            yield self.batch(batch_generator(self.seed, rank, step))
            step += workers


def _one_thread(worker_id: int) -> None:
    """A batch worker runs on one core, torch's ops and pav._C's alike: the training process keeps the rest."""
    from ..ops import set_num_threads

    set_num_threads(1)


class AvatarDataModule(L.LightningDataModule):
    def __init__(self, cfg: DataConfig, seed: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        self.seed = seed
        self.collection: Collection | None = None

    # ------------------------------------------------------------------ collection, frames, images
    def load(self, depth_regions: list[str] | None = None) -> None:
        """Opens (and checks) the collection and poses every frame; idempotent."""
        if self.collection is not None:
            return
        cfg = self.cfg
        root = Path(cfg.root)
        if not (root / "collection.json").exists() and cfg.generate is not None:
            from ..synthetic.generate import SyntheticConfig, generate

            print(f"[pav] no collection at {root}: generating the synthetic one")
            generate(SyntheticConfig(out=str(root), appearances=cfg.generate.appearances,
                                     frames=cfg.generate.frames, size=cfg.generate.size, seed=cfg.generate.seed))
        self.collection = Collection.open(root, verify_images=cfg.verify_images)
        meta = self.collection.meta
        self.head_model = cfg.head_model or meta.head_model
        self.uv_layout = cfg.uv_layout or meta.uv_layout
        self.flame = FLAME.from_file(self.head_model, n_shape=meta.n_shape, n_expr=meta.n_expr,
                                     uv_layout=self.uv_layout,
                                     landmark_embedding=cfg.landmark_embedding or meta.landmark_embedding)
        self.appearance_names = meta.appearance_names
        self.rows = {which: _frame_table(self.collection, which) for which in SPLIT_PARTS}
        self.train_rows = self.rows["train"]
        self.train_frames = build_frames(self.collection, self.flame, self.train_rows)
        self._held_frames: dict[str, FrameSet] = {}
        self.depth_faces = self.region_faces(depth_regions or ["face"])
        self._images_loaded = False

    def posed(self, which: str) -> FrameSet:
        """The posed frames of the train, val or test set; the held-out ones are posed on first use, so a training
        run poses its test frames only for the final figures."""
        if which == "train":
            return self.train_frames
        if which not in self._held_frames:
            self._held_frames[which] = build_frames(self.collection, self.flame, self.rows[which])
        return self._held_frames[which]

    @property
    def test_frames(self) -> FrameSet:
        return self.posed("test")

    def region_faces(self, regions: list[str]) -> Tensor:
        """[F] bool: the faces of the named regions (the depth loss's, the evaluation's face); a region the head
        model cannot name is refused."""
        available, source = head_regions(self.flame, self.cfg.head_regions)
        unknown = [r for r in regions if r not in available]
        if unknown:
            raise ValueError(f"loss.depth_regions={regions}: {unknown} not among the regions of {source} "
                             f"({sorted(available)}); give data.head_regions=FLAME_masks.pkl (FLAME's region file) "
                             "or data.landmark_embedding=PATH, or loss.depth_regions=[all]")
        return torch.stack([available[r] for r in regions]).any(0)

    def canonical_verts(self) -> Tensor:
        """The subject's neutral mesh [V, 3]: identity shape, no expression, no pose."""
        with torch.no_grad():
            return self.flame(shape=torch.from_numpy(self.collection.shape)[None].float()).verts[0]

    def head_box(self, margin: float) -> tuple[Tensor, Tensor]:
        """Head-space box around the canonical mesh and every training frame's mesh, grown by margin."""
        verts = torch.cat([self.canonical_verts()[None], self.train_frames.posed_verts]).reshape(-1, 3)
        return verts.amin(0) - margin, verts.amax(0) + margin

    def _load_images(self) -> None:
        if self._images_loaded:
            return
        apps = list(self.collection)
        images, alphas, valids, image_frame, Ks, c2ws = [], [], [], [], [], []
        any_unknown = any(app.has_valid_masks for app in apps)
        for f, (a, pos, fid, cams) in enumerate(tqdm(self.train_rows, desc="loading frames", unit="frame")):
            app = apps[a]
            c2w_all = app.cameras.c2w_at(pos)
            for cam in cams:
                c = app.camera_names.index(cam)
                images.append(torch.from_numpy(np.array(Image.open(app.frame_path(cam, fid)).convert("RGB"))))
                alphas.append(torch.from_numpy(np.array(Image.open(app.mask_path(cam, fid)).convert("L"))))
                if any_unknown:
                    valids.append(torch.from_numpy(app.load_valid(cam, fid)))
                image_frame.append(f)
                Ks.append(app.cameras.K[c])
                c2ws.append(c2w_all[c])
        self.images, self.alphas = torch.stack(images), torch.stack(alphas)
        self.valids = torch.stack(valids) if any_unknown else None  # [N, H, W] bool, or None: all pixels real
        self.image_frame = torch.tensor(image_frame)
        self.K = torch.from_numpy(np.stack(Ks)).float()
        self.c2w = torch.from_numpy(np.stack(c2ws)).float()
        self._images_loaded = True

    def matte_reach(self) -> Tensor:
        """Metres each appearance's training mattes reach past the posed mesh [A] (pav/data/reach.py)."""
        self._load_images()
        return matte_reach(self.alphas, self.valids, self.K, self.c2w, self.image_frame, self.train_frames)

    def carving_alphas(self) -> Tensor:
        """[N, H, W] uint8 mattes for the visual hull: an unknown pixel counts as foreground, so it carves nothing."""
        if self.valids is None:
            return self.alphas
        return torch.where(self.valids, self.alphas, torch.full_like(self.alphas, 255))

    # ------------------------------------------------------------------ held-out views
    def heldout_views(self, size: int, per_appearance: int, which: str = "test") -> list[View]:
        """The views (frame and camera) of the test or val set, evenly spread over each appearance's (all when
        per_appearance is 0); a view's frame indexes `posed(which)`."""
        if which not in ("val", "test"):
            raise ValueError(f"heldout_views: which must be 'val' or 'test', got {which!r}")
        apps = list(self.collection)
        views = []
        for a, app in enumerate(apps):
            pairs = [(f, pos, fid, cam) for f, (aa, pos, fid, cams) in enumerate(self.rows[which]) if aa == a
                     for cam in cams]
            if per_appearance and len(pairs) > per_appearance:
                pairs = [pairs[int(i)] for i in np.linspace(0, len(pairs) - 1, per_appearance).round()]
            for f, pos, fid, cam in pairs:
                views.append(self._view(a, app, f, pos, fid, app.camera_names.index(cam), cam, size))
        return views

    def _view(self, a, app, f, pos, fid, c, cam, size) -> View:
        rgb = Image.open(app.frame_path(cam, fid)).convert("RGB")
        alpha = Image.open(app.mask_path(cam, fid)).convert("L")
        full_w, full_h = rgb.size
        factor = 1.0 if not size else min(1.0, size / max(full_w, full_h))
        w, h = max(1, round(full_w * factor)), max(1, round(full_h * factor))
        if (w, h) != (full_w, full_h):
            rgb, alpha = rgb.resize((w, h), Image.BOX), alpha.resize((w, h), Image.BOX)
        rgb_t = torch.from_numpy(np.array(rgb)).float() / 255.0
        alpha_t = torch.from_numpy(np.array(alpha)).float() / 255.0
        valid_t = None
        if app.valid_path(cam, fid) is not None:
            known = Image.fromarray(app.load_valid(cam, fid).astype(np.uint8) * 255)
            known = known.resize((w, h), Image.BOX) if (w, h) != (full_w, full_h) else known
            valid_t = torch.from_numpy(np.array(known) == 255)  # real only where every source pixel is
        K = scale_intrinsics(torch.from_numpy(app.cameras.K[c]).float(), w / full_w)
        return View(a, f, K, torch.from_numpy(app.cameras.c2w_at(pos)[c]).float(), h, w,
                    rgb_t * alpha_t[..., None] + (1.0 - alpha_t[..., None]), alpha_t, f"{app.name}/{cam}/{fid}",
                    valid_t)

    # ------------------------------------------------------------------ Lightning hooks
    def setup(self, stage: str | None = None) -> None:
        self.load()
        if stage in (None, "fit"):
            self._load_images()
            # validation frames only: the test frames are rendered once, for the final figures
            self.val_views = self.heldout_views(self.cfg.val_size, self.cfg.val_views_per_appearance, "val")
            if not self.val_views:
                print(f"[pav] {self.cfg.root}: no validation frames (split.json 'val' is empty in every appearance): "
                      "training runs without validation")

    def train_dataloader(self) -> DataLoader:
        """Batches from the trainer's step on: Lightning asks after restoring a checkpoint's step."""
        start = int(self.trainer.global_step) if self.trainer is not None else 0
        dataset = RayBatches(self.images, self.alphas, self.image_frame, self.K, self.c2w, self.train_frames,
                             self.depth_faces, self.cfg, self.seed, self.valids, start)
        workers = self.cfg.num_workers
        return DataLoader(dataset, batch_size=None, num_workers=workers, persistent_workers=workers > 0,
                          pin_memory=workers > 0 and torch.cuda.is_available(), worker_init_fn=_one_thread,
                          prefetch_factor=4 if workers > 0 else None)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_views, batch_size=None, num_workers=0, collate_fn=lambda v: v)
