"""`python -m pav.data.renderme` on a small synthetic subject: accuracy, cameras, defects, resume, training."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from pav.data.collection import Collection
from pav.data.renderme.convert import convert
from pav.data.renderme.flame_fits import RenderMeError, mask_coverage
from pav.data.renderme.geometry import crop_resize_intrinsics, square_crop
from pav.data.renderme.images import ViewGeometry, convert_view
from pav.data.renderme.options import BENCHMARK_TEST_CAMERAS, RenderMeConfig
from pav.data.renderme.part import _write_torso_cut
from pav.data.renderme.reader import SMCReader
from pav.head.flame import FLAME
from pav.synthetic.renderme import SyntheticSMCSpec, write_synthetic_subject
from pav.train.config import typed_config
from pav.train.run import run

REPO = Path(__file__).resolve().parents[3]
CORRUPT = ("h1_2bk", "22", 2)  # this mask does not decode: frame 2 of h1_2bk must be dropped
MISSING = ("h0", "40")  # camera 40 is absent from h0


@pytest.fixture(scope="module")
def subject(tmp_path_factory):
    out = tmp_path_factory.mktemp("renderme")
    return write_synthetic_subject(SyntheticSMCSpec(out=str(out / "raw"), frames=6, corrupt_masks=(CORRUPT,),
                                                    missing_cameras=(MISSING,)))


def _config(subject, out: Path, **changes) -> RenderMeConfig:
    settings = dict(root=str(subject.folder.parent), subject="0297", out=str(out), size=64, frames="all",
                    head_model=subject.head_model)
    return RenderMeConfig(**{**settings, **changes})


@pytest.fixture(scope="module")
def converted(subject, tmp_path_factory):
    return convert(_config(subject, tmp_path_factory.mktemp("converted") / "collection"))


def _posed(flame: FLAME, shape: np.ndarray, app) -> np.ndarray:  # [T, V, 3]
    with torch.no_grad():
        return flame(shape=torch.from_numpy(shape)[None], expr=torch.from_numpy(app.flame.expr),
                     rotations=torch.from_numpy(app.flame.rotations),
                     transl=torch.from_numpy(app.flame.transl)).verts.numpy()


def test_keypoint_fits_reproduce_the_posed_heads(subject, converted):
    collection = Collection.open(converted)
    assert collection.appearance_names == ["h0", "h1_2bk"]
    np.testing.assert_allclose(collection.shape, subject.shape, atol=1e-5)  # the mean of the expression fits
    flame = FLAME.from_file(subject.head_model, n_shape=100, n_expr=50)
    for app in collection:
        truth = subject.parts[app.name]
        rows = [truth.frame_ids.index(int(f)) for f in app.flame.frame_ids]
        error_mm = 1e3 * np.linalg.norm(_posed(flame, collection.shape, app) - truth.verts[rows], axis=-1)
        assert error_mm.mean(1).max() < 2.0, f"{app.name}: mean vertex error per frame {error_mm.mean(1)} mm"


def test_cameras_and_images_agree(subject, converted):
    """The stored (cropped, resized) intrinsics put the true head inside the stored masks."""
    collection = Collection.open(converted)
    flame = FLAME.from_file(subject.head_model, n_shape=100, n_expr=50)
    face = np.unique(flame.faces.numpy()[np.isin(flame.face_region.numpy(), [0, 1])])
    for app in collection:
        truth = subject.parts[app.name]
        for fid in app.flame.frame_ids[:2]:
            for c, cam in enumerate(app.camera_names):
                mask = (app.load_mask(cam, int(fid)) * 255).astype(np.uint8)
                points = truth.verts[truth.frame_ids.index(int(fid))][face]
                share = mask_coverage(points, app.cameras.K[c], np.zeros(5), app.cameras.c2w[c], mask)
                assert share > 0.9, f"{app.name} camera {cam} frame {fid}: {share:.2f} inside the mask"
                rgb = app.load_frame(cam, int(fid))
                assert (rgb[mask == 0] == 1.0).all()  # the background is masked out to white


def test_split_defects_and_report(subject, converted):
    collection = Collection.open(converted)
    h0, wig = collection["h0"], collection["h1_2bk"]
    assert "40" not in h0.camera_names and "40" in wig.camera_names
    assert 2 not in wig.flame.frame_ids and len(wig.flame.frame_ids) == 5 and len(h0.flame.frame_ids) == 6
    for app in (h0, wig):
        assert app.split.test_cameras == [c for c in app.camera_names if c in BENCHMARK_TEST_CAMERAS]
        assert app.split.test and app.split.train
    report = json.loads((converted / "renderme.json").read_text())
    failures = " ".join(report["parts"]["h1_2bk"]["failures"])
    assert "0297_h1_2bk_anno.smc" in failures and "'22'" in failures and "frame 2" in failures
    assert report["parts"]["h0"]["missing_cameras"] == ["40"] and report["parts"]["h1_2bk"]["missing_cameras"] == []
    assert report["identity"]["keypoints3d_embedded"] == 73


def test_rerun_resumes_every_part(subject, converted, capsys):
    convert(_config(subject, converted))
    report = json.loads((converted / "renderme.json").read_text())
    assert all(part.get("resumed") for part in report["parts"].values())
    assert "identity: resumed" in capsys.readouterr().out


def test_train_three_steps_on_the_converted_subject(converted, tmp_path):
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base=None):
        cfg = compose("train", overrides=["trainer=smoke", "data=renderme", f"data.root={converted}",
                                          "trainer.max_steps=3", "trainer.val_check_interval=3",
                                          "checkpoint_every=3"])
    run(typed_config(cfg), tmp_path / "run")
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


def test_an_expression_part_keeps_its_own_fit(subject, tmp_path):
    out = convert(_config(subject, tmp_path / "expr", parts="e0", cameras="18,25,40"))
    app = Collection.open(out)["e0"]
    assert app.camera_names == ["18", "25", "40"]
    report = json.loads((out / "renderme.json").read_text())["parts"]["e0"]["flame"]
    assert report["source"] == "RenderMe-360 fit" and report["vertex_error_mm"] < 0.01


def test_bad_requests_are_refused(subject, tmp_path):
    with pytest.raises(RenderMeError, match=r"parts='h9' matches none of the subject's parts \['e0', 'e1', 'h0'"):
        convert(_config(subject, tmp_path / "a", parts="h9"))
    with pytest.raises(RenderMeError, match="head_model="):  # another head cannot reproduce the fits' vertices
        convert(_config(subject, tmp_path / "b", head_model="procedural:3"))
    cmd = [sys.executable, "-m", "pav.data.renderme", "root=x", "subject=1", "out=y", "frame=all"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode != 0 and "frame" in result.stderr and "usage" in result.stderr


def test_reduced_decoding_matches_the_full_image(subject):
    """Shrinking 4x: the JPEG decoded at 1/4 scale gives the same collection image as the full decode."""
    main, anno = subject.folder / "0297_h0_raw.smc", subject.folder / "0297_h0_anno.smc"
    with SMCReader(main, anno) as reader:
        calib = reader.calibration("25")
        left, top, side = square_crop(64, 80)
        geo = ViewGeometry(64, 80, left, top, side, 16, crop_resize_intrinsics(calib["K"], left, top, side, 16),
                           np.array([-0.1, 0.02, 0.0, 0.0, 0.0]))
        assert geo.decode_size == (16, 20)
        small = reader.image("25", 1, at_least=geo.decode_size)
        assert small.shape == (16, 20, 3)
        mask = reader.mask("25", 1)
        reduced, reduced_mask = convert_view(small, mask, geo)
        full, full_mask = convert_view(reader.image("25", 1), mask, geo)
    np.testing.assert_array_equal(reduced_mask, full_mask)
    assert np.abs(reduced.astype(float) - full).mean() < 3.0


def test_every_image_says_which_pixels_are_known(converted):
    collection = Collection.open(converted)
    for app in collection:
        assert app.has_valid_masks, f"{app.name}: the converter writes valid/ masks (the torso cut)"
    report = json.loads((converted / "renderme.json").read_text())
    assert all(p["torso_unknown"] is not None for p in report["parts"].values())


def test_shoulders_beside_the_fitted_neck_are_unknown(subject, converted, tmp_path):
    """A shoulder painted into a mask beside the true neck is left unknown; the face is kept."""
    collection = Collection.open(converted)
    app = collection["h0"]
    flame = FLAME.from_file(subject.head_model, n_shape=100, n_expr=50)
    fid, c = int(app.flame.frame_ids[0]), app.camera_names.index("25")
    K, c2w = app.cameras.K[c], app.cameras.c2w[c]
    verts = _posed(flame, collection.shape, app)[:1]  # [1, V, 3]
    marks = flame.landmarks(torch.from_numpy(verts), "68")[0].double().numpy()
    chin, brow = marks[8], marks[[21, 22]].mean(0)

    def project(p):  # world [N, 3] -> pixels [N, 2]
        w2c = np.linalg.inv(c2w)
        cam = p @ w2c[:3, :3].T + w2c[:3, 3]
        return cam[:, :2] / cam[:, 2:] * K[[0, 1], [0, 1]] + K[:2, 2]

    (chin_px, brow_px) = project(np.stack([chin, brow]))
    h = np.linalg.norm(chin_px - brow_px)
    down = (chin_px - brow_px) / h
    shoulder = chin_px + 0.45 * h * down + 0.9 * h * np.array([-down[1], down[0]])
    mask = (app.load_mask("25", fid) * 255).astype(np.uint8)
    v, u = np.mgrid[: mask.shape[0], : mask.shape[1]]
    block = (abs(u - shoulder[0]) < 0.08 * h) & (abs(v - shoulder[1]) < 0.08 * h)
    assert block.any(), (chin_px, brow_px, shoulder)
    mask[block] = 255

    class Files:  # the writer's two calls, on files in tmp_path
        written: dict = {}

        def mask_path(self, part, cam, frame):
            path = tmp_path / "mask.png"
            Image.fromarray(mask).save(path)
            return path

        def write_valid(self, part, cam, frame, valid):
            self.written[(cam, frame)] = valid

    files = Files()
    geo = ViewGeometry(64, 64, 0, 0, 64, 64, K.astype(np.float64), np.zeros(5))
    share = _write_torso_cut(files, "h0", ["25"], {"25": geo}, c2w[None], [fid], flame, collection.shape,
                             app.flame.rotations[:1], app.flame.transl[:1], app.flame.expr[:1])
    valid = files.written[("25", fid)]
    assert share > 0 and not valid[block].any(), "the painted shoulder is known"
    face = np.unique(flame.faces.numpy()[np.isin(flame.face_region.numpy(), [0, 1])])
    pix = np.round(project(verts[0][face].astype(np.float64))).astype(int)
    pix = pix[(pix >= 0).all(1) & (pix < 64).all(1)]
    assert valid[pix[:, 1], pix[:, 0]].all(), "face pixels are marked unknown"
