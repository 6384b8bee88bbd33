"""The synthetic collection: valid, deterministic, and its masks agree with the ground-truth head."""

import hashlib

import numpy as np
import pytest
import torch

from pav.data.collection import Collection
from pav.head.flame import FLAME
from pav.synthetic.__main__ import main as synthetic_main
from pav.synthetic.generate import SyntheticConfig, generate
from pav.synthetic.raster import rasterize

ARGS = ["appearances=3", "frames=6", "size=64", "seed=3", "workers=1"]


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic") / "col"
    synthetic_main([f"out={root}", *ARGS])
    return Collection.open(root)


def _digest(root):
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_collection_validates_with_cross_set_and_contact_sheet(collection):
    assert len(collection.appearance_names) == 3
    assert len(collection.cross_pairs) == 6
    assert (collection.root / "contact_sheet.png").exists()
    for app in collection:
        assert set(app.split.test).isdisjoint(app.split.train) and app.split.test
        assert app.landmarks["lmk68"].shape == (6, 1, 68, 2)
        rot = app.flame.rotations
        assert np.abs(rot[:, 0]).max() < np.deg2rad(40)  # head pose within the documented range
    a, d = collection.cross_pairs[0]
    rgb, mask = collection.load_cross(a, d, "00", collection[d].split.test[0])
    assert rgb.shape == (64, 64, 3) and mask.max() > 0.5


def test_appearances_differ_in_geometry_not_only_colour(collection):
    masks = [collection[name].load_mask("00", 0) for name in collection.appearance_names]
    areas = [m.sum() for m in masks]
    assert max(areas) > 1.15 * min(areas)  # long hair covers far more than a short cut


def _head_silhouette(collection, name, frame):
    app = collection[name]
    flame = FLAME.from_file(collection.meta.head_model, n_shape=collection.meta.n_shape,
                            n_expr=collection.meta.n_expr)
    i = app.flame.index_of(frame)
    with torch.no_grad():
        verts = flame(shape=torch.from_numpy(collection.shape), expr=torch.from_numpy(app.flame.expr[i:i + 1]),
                      rotations=torch.from_numpy(app.flame.rotations[i:i + 1]),
                      transl=torch.from_numpy(app.flame.transl[i:i + 1])).verts[0]
    w2c = torch.from_numpy(np.linalg.inv(app.cameras.c2w[0])).float()
    cam = verts @ w2c[:3, :3].T + w2c[:3, 3]
    h, w = collection.meta.image_size
    return rasterize(cam, flame.faces, torch.from_numpy(app.cameras.K[0]), h, w).face_idx.numpy() >= 0


def test_mask_matches_projected_head(collection):
    for name in collection.appearance_names:
        for frame in (0, 5):
            head = _head_silhouette(collection, name, frame)
            mask = collection[name].load_mask("00", frame) > 0.5
            assert (mask & head).sum() / head.sum() > 0.97  # the mask contains the head
            if name == "short_dark":  # little hair: the silhouettes nearly agree
                assert (mask & head).sum() / (mask | head).sum() >= 0.8


def test_same_seed_gives_identical_files(collection, tmp_path):
    synthetic_main([f"out={tmp_path / 'again'}", *ARGS])
    assert _digest(tmp_path / "again") == _digest(collection.root)


def test_bad_arguments_fail_at_start(tmp_path):
    with pytest.raises(SystemExit, match="appearancez"):
        synthetic_main([f"out={tmp_path}", "appearancez=3"])


def test_generating_in_process_leaves_torch_threads_alone(tmp_path):
    threads = torch.get_num_threads()
    generate(SyntheticConfig(out=str(tmp_path / "c"), appearances=1, frames=2, size=16, workers=1, cross=False))
    assert torch.get_num_threads() == threads
