"""Unknown pixels (valid/ masks, collection version 2): never drawn, never carve, never scored."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from pav.data.collection import VALID_DIR, Collection, CollectionError
from pav.data.datamodule import AvatarDataModule, DataConfig, RayBatches
from pav.evaluate.scoring import score_views
from pav.synthetic.generate import SyntheticConfig, generate

SIZE, UNKNOWN_COLS = 32, 10  # the left 10 columns of every frame lie outside the source


@pytest.fixture(scope="module")
def half_known(tmp_path_factory):
    root = tmp_path_factory.mktemp("unknown") / "collection"
    threads = torch.get_num_threads()
    generate(SyntheticConfig(out=str(root), appearances=2, frames=4, size=SIZE, seed=0, workers=1, cross=False))
    torch.set_num_threads(threads)
    for app in Collection.open(root):
        for cam in app.camera_names:
            for fid in app.frame_ids:
                valid = np.full((SIZE, SIZE), 255, np.uint8)
                valid[:, :UNKNOWN_COLS] = 0
                path = app.root / VALID_DIR / cam / f"{fid:06d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(valid).save(path)
    return root


def _datamodule(root) -> AvatarDataModule:
    dm = AvatarDataModule(DataConfig(root=str(root), rays_per_batch=512, val_size=0), 0)
    dm.load()
    dm._load_images()
    return dm


def test_the_reader_knows_which_pixels_are_real(half_known):
    app = next(iter(Collection.open(half_known)))
    fid = app.frame_ids[0]
    valid = app.load_valid(app.camera_names[0], fid)
    assert app.has_valid_masks and valid.dtype == bool and valid.shape == (SIZE, SIZE)
    assert not valid[:, :UNKNOWN_COLS].any() and valid[:, UNKNOWN_COLS:].all()


def test_a_missing_validity_mask_is_named(half_known, tmp_path):
    root = tmp_path / "c"
    shutil.copytree(half_known, root)
    app = next(iter(Collection.open(root)))
    lost = root / app.name / VALID_DIR / app.camera_names[0] / f"{app.frame_ids[1]:06d}.png"
    lost.unlink()
    with pytest.raises(CollectionError, match=f"{app.name}/{VALID_DIR}/{app.camera_names[0]}.*missing"):
        Collection.open(root)


def test_a_version_1_collection_opens_and_refuses_validity_masks(half_known, tmp_path):
    root = tmp_path / "c"
    shutil.copytree(half_known, root)
    meta = json.loads((root / "collection.json").read_text())
    (root / "collection.json").write_text(json.dumps({**meta, "version": 1}))
    with pytest.raises(CollectionError, match="validity masks need collection version 2"):
        Collection.open(root)
    for app in Collection.open(half_known):
        shutil.rmtree(root / app.name / VALID_DIR)
    assert not any(app.has_valid_masks for app in Collection.open(root))  # an older collection: every pixel real


def test_rays_are_never_drawn_from_unknown_pixels(half_known):
    dm = _datamodule(half_known)
    data = RayBatches(dm.images, dm.alphas, dm.image_frame, dm.K, dm.c2w, dm.train_frames, dm.depth_faces,
                      dm.cfg, 0, dm.valids)
    gen = torch.Generator().manual_seed(0)
    flat = torch.cat([data.draw(gen) for _ in range(20)])  # [R] indices into [N, H, W]
    assert int((flat % SIZE).min()) >= UNKNOWN_COLS, "a ray drawn from an unknown pixel"
    everything = RayBatches(dm.images, dm.alphas, dm.image_frame, dm.K, dm.c2w, dm.train_frames, dm.depth_faces,
                            dm.cfg, 0, None)
    assert int((everything.draw(gen) % SIZE).min()) < UNKNOWN_COLS  # without the masks they would be


def test_unknown_pixels_carve_nothing(half_known):
    dm = _datamodule(half_known)
    carving = dm.carving_alphas()
    assert (carving[:, :, :UNKNOWN_COLS] == 255).all()
    assert torch.equal(carving[:, :, UNKNOWN_COLS:], dm.alphas[:, :, UNKNOWN_COLS:])


def test_unknown_pixels_are_not_scored(half_known, tiny_avatar):
    from pav.train.checkpoint import load_avatar

    renderer, meta, _ = load_avatar(tiny_avatar.ckpt)
    dm = _datamodule(half_known)
    views = dm.heldout_views(0, 1)
    assert all(v.valid is not None and not v.valid[:, :UNKNOWN_COLS].any() for v in views)
    frames = dm.test_frames
    scores, _ = score_views(renderer, frames, views, dm.appearance_names)
    for v in views:  # whatever the truth holds in unknown pixels, the score stays
        v.rgb[:, :UNKNOWN_COLS] = torch.rand_like(v.rgb[:, :UNKNOWN_COLS])
    again, _ = score_views(renderer, frames, views, dm.appearance_names)
    assert again["mean"] == pytest.approx(scores["mean"])
