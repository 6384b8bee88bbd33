"""SMCReader on synthetic RenderMe-360 subjects: it returns what was written, and names the file, camera and
frame of every defect real downloads have (corrupt masks, missing cameras and frames, truncated files)."""

import io
import shutil

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from pav.data.renderme import SMCError, SMCReader
from pav.data.renderme.reader import find_parts
from pav.head.flame import FLAME
from pav.synthetic.renderme import HEAD_CENTRE, SyntheticSMCSpec, render_view, rig_camera, write_synthetic_subject

ACTOR = "0297"
CORRUPT = ("e0", "18", 2)
MISSING_CAMERA = ("h0", "40")
MISSING_KP2D = ("e1", "22", 3)
SMALL = dict(actor=ACTOR, expression_parts=("e0",), hair_parts=("h0",), cameras=("18", "25", "32"), frames=2,
             height=48, width=40, split_files=False, seed=3)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """The default subject, raw + anno files, with one corrupt mask, one missing camera, one missing 2D entry."""
    spec = SyntheticSMCSpec(out=str(tmp_path_factory.mktemp("split")), corrupt_masks=(CORRUPT,),
                            missing_cameras=(MISSING_CAMERA,), missing_keypoints2d=(MISSING_KP2D,))
    subject = write_synthetic_subject(spec)
    return spec, subject, find_parts(spec.out, ACTOR)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """A small subject in the 500-subject layout: one file per part, no masks."""
    spec = SyntheticSMCSpec(out=str(tmp_path_factory.mktemp("single")), **SMALL)
    return spec, write_synthetic_subject(spec)


@pytest.fixture(scope="module")
def flame():
    return FLAME.from_file("procedural:0", n_shape=100, n_expr=50)


def _reader(split, part: str) -> SMCReader:
    return SMCReader(*split[2][part])


def _copy(split, part: str, tmp_path) -> tuple:
    """Writable copies of a part's raw and anno files."""
    return tuple(shutil.copy(p, tmp_path / p.name) for p in split[2][part])


def _project(points: np.ndarray, K: np.ndarray, c2w: np.ndarray) -> np.ndarray:
    cam = (points - c2w[:3, 3]) @ c2w[:3, :3]  # [N, 3] camera space
    return (cam @ K.T)[:, :2] / cam[:, 2:3]


# ----------------------------------------------------------------------------- what was written comes back


def test_metadata(split):
    spec, _, parts = split
    assert list(parts) == ["e0", "e1", "h0", "h1_2bk"]
    assert all(anno is not None and main.name.endswith("_raw.smc") for main, anno in parts.values())
    with _reader(split, "e0") as reader:
        assert reader.attributes == {"actor_id": ACTOR, "performance_part": "e0", "capture_date": "20230101",
                                     "age": 30, "color": "yellow", "gender": "female", "height": 1.7, "weight": 60.0}
        assert reader.camera_ids == list(spec.cameras)
        assert reader.frame_ids == list(range(spec.frames))
        assert reader.resolution == (spec.height, spec.width)
        assert reader.has_masks and reader.has_flame
        assert "0297_e0_raw.smc" in repr(reader)
    with _reader(split, "h0") as reader:
        assert reader.camera_ids == [c for c in spec.cameras if c != "40"]
        assert not reader.has_flame and reader.flame(0) is None


def test_camera_ids_come_from_keys_not_num_device(split, tmp_path):
    raw, anno = _copy(split, "h1_2bk", tmp_path)
    with h5py.File(anno, "r+") as f:
        f["Camera"].attrs["num_device"] = 60
        del f["Camera"].attrs["resolution"]
    with SMCReader(raw, anno) as reader:
        assert reader.camera_ids == list(split[0].cameras)
        assert reader.resolution == (split[0].height, split[0].width)  # from the first image now


def test_calibration_is_the_rig(split):
    spec = split[0]
    with _reader(split, "e1") as reader:
        for cid in spec.cameras:
            calib = reader.calibration(cid)
            rig = rig_camera(cid, spec.height, spec.width, spec.seed)
            np.testing.assert_array_equal(calib["K"], rig.K)
            np.testing.assert_array_equal(calib["RT"], rig.c2w)
            np.testing.assert_array_equal(calib["D"], np.zeros(5))
            R, t = calib["RT"][:3, :3], calib["RT"][:3, 3]
            np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
            to_head = np.asarray(HEAD_CENTRE) - t
            assert np.linalg.norm(to_head) == pytest.approx(1.0)
            np.testing.assert_allclose(R[:, 2], to_head, atol=1e-12)  # the optical axis goes through the head
            assert abs(calib["K"][0, 2] - (spec.width - 1) / 2) <= 1.0
        assert reader.calibration(25)["K"].tolist() == reader.calibration("25")["K"].tolist()


def test_images_and_masks_are_the_renders(split):
    spec = split[0]
    for part, cam, frame in (("h1_2bk", "25", 4), ("e0", "10", 1)):
        rgb, alpha = render_view(spec, part, cam, frame)
        with _reader(split, part) as reader:
            image, mask = reader.image(cam, frame), reader.mask(int(cam), str(frame))
        assert image.dtype == np.uint8 and image.shape == (spec.height, spec.width, 3)
        np.testing.assert_array_equal(mask, alpha)
        assert np.abs(image.astype(float) - rgb).mean() < 3.0  # JPEG at quality 95
        assert 0.1 < (mask > 127).mean() < 0.9


def test_hair_parts_look_different(split):
    with _reader(split, "h0") as a, _reader(split, "h1_2bk") as b:
        head = (a.mask(25, 0) > 127) | (b.mask(25, 0) > 127)
        diff = np.abs(a.image(25, 0).astype(float) - b.image(25, 0)).mean(2)
    assert diff[head].mean() > 15.0


def test_flame_is_the_truth(split):
    subject = split[1]
    truth = subject.parts["e0"]
    with _reader(split, "e0") as reader:
        for i, frame in enumerate(truth.frame_ids):
            fit = reader.flame(frame)
            assert all(v.dtype == np.float64 for v in fit.values())
            for j, name in enumerate(("global_pose", "neck_pose", "jaw_pose", "left_eye_pose", "right_eye_pose")):
                np.testing.assert_array_equal(fit[name], truth.rotations[i, j])
            np.testing.assert_array_equal(fit["trans"], truth.transl[i])
            np.testing.assert_array_equal(fit["exp"], truth.expr[i])
            np.testing.assert_array_equal(fit["shape"], subject.shape)
            np.testing.assert_array_equal(fit["verts"], truth.verts[i])
            assert fit["albedos"].shape == (3, 16, 16)
        assert list(reader.flame("3", keys=["exp"])) == ["exp"]
        with pytest.raises(SMCError, match="0297_e0_anno.smc.*no frame 99"):
            reader.flame(99)
    saved = np.load(subject.folder / "truth.npz")
    np.testing.assert_array_equal(saved["e0/verts"], truth.verts)
    assert str(saved["head_model"]) == subject.head_model


def test_truth_is_self_consistent(split, flame):
    """verts are the FLAME forward of the truth; keypoints are its landmarks, projected onto the head's masks."""
    subject = split[1]
    for part in ("e1", "h1_2bk"):
        truth = subject.parts[part]
        with torch.no_grad():
            verts = flame(shape=torch.from_numpy(subject.shape), expr=torch.from_numpy(truth.expr),
                          rotations=torch.from_numpy(truth.rotations), transl=torch.from_numpy(truth.transl)).verts
            dense = flame.landmarks(torch.from_numpy(truth.verts), kind="dense").double().numpy()  # [T, 73, 3]
            jaw = flame.landmarks(torch.from_numpy(truth.verts), kind="68")[:, [0, 16]].double().numpy()
        np.testing.assert_allclose(verts.numpy(), truth.verts, atol=1e-6)
        assert np.degrees(np.linalg.norm(truth.rotations[:, 0], axis=1)).max() < 30.0
        on_mask = []
        with _reader(split, part) as reader:
            frontal = [c for c in reader.camera_ids if 18 <= int(c) <= 32]
            assert frontal
            for i, frame in enumerate(truth.frame_ids):
                np.testing.assert_array_equal(reader.keypoints3d(frame), dense[i])
                for cam in frontal:
                    kp = reader.keypoints2d(cam, frame)
                    if (part, cam, frame) == MISSING_KP2D:
                        assert kp is None
                        continue
                    calib = reader.calibration(cam)
                    np.testing.assert_allclose(kp[33:], _project(dense[i], calib["K"], calib["RT"]), atol=1e-6)
                    np.testing.assert_allclose(kp[[0, 32]], _project(jaw[i], calib["K"], calib["RT"]), atol=1e-6)
                    col, row = np.round(kp[33:]).astype(int).T
                    h, w = reader.resolution
                    assert ((col >= 0) & (col < w) & (row >= 0) & (row < h)).all()
                    on_mask.append(reader.mask(cam, frame)[row, col] > 127)
    assert np.mean(on_mask) >= 0.95


def test_sparse_keypoints_are_none(split):
    part, cam, frame = MISSING_KP2D
    with _reader(split, part) as reader:
        assert reader.keypoints2d(cam, frame) is None
        assert reader.keypoints2d(cam, frame - 1).shape == (106, 2)
        assert reader.keypoints2d("02", 0) is None  # only cameras 18..32 have detections
        assert reader.keypoints3d(99) is None


# ----------------------------------------------------------------------------- defects are named


def test_corrupt_mask_names_file_camera_and_frame(split):
    part, cam, frame = CORRUPT
    with _reader(split, part) as reader:
        assert reader.image(cam, frame).shape[2] == 3  # the colour next to it is fine
        with pytest.raises(SMCError) as err:
            reader.mask(cam, frame)
    message = str(err.value)
    assert "0297_e0_anno.smc" in message and f"camera '{cam}' frame {frame}" in message
    assert "mask does not decode" in message


def test_missing_camera_and_frame(split):
    part, cam = MISSING_CAMERA
    with _reader(split, part) as reader:
        for call in (lambda: reader.image(cam, 0), lambda: reader.mask(int(cam), 0), lambda: reader.calibration(cam)):
            with pytest.raises(SMCError, match=f"0297_h0_.*camera '{cam}' not in file.*25"):
                call()
        with pytest.raises(SMCError, match=r"0297_h0_raw.smc: camera '25' has no frame 6 \(image frames: 0\.\.5\)"):
            reader.image(25, 6)
        with pytest.raises(SMCError, match="camera '22' has no frame 7"):
            reader.mask("22", "7")


def test_truncated_and_unreadable_files(split, tmp_path):
    raw, anno = _copy(split, "e1", tmp_path)
    with open(raw, "r+b") as f:
        f.truncate(raw.stat().st_size // 2)

    def read_everything():
        with SMCReader(raw, anno) as reader:
            for cam in reader.camera_ids:
                for frame in reader.frame_ids:
                    reader.image(cam, frame)

    with pytest.raises(SMCError, match="0297_e1_raw.smc.*truncated"):
        read_everything()
    garbage = tmp_path / "garbage.smc"
    garbage.write_bytes(b"not hdf5 " * 100)
    with pytest.raises(SMCError, match="garbage.smc: not a readable SMC \\(HDF5\\) file, truncated download"):
        SMCReader(garbage)
    with pytest.raises(SMCError, match="nothing.smc: file not found"):
        SMCReader(tmp_path / "nothing.smc")
    with pytest.raises(SMCError, match="0297_e1_anno.smc: no camera has colour images"):
        SMCReader(anno)  # the anno file passed as the main one


def test_wrong_shapes_sizes_and_three_channel_masks(split, tmp_path):
    raw, anno = _copy(split, "e0", tmp_path)
    with h5py.File(anno, "r+") as f:
        del f["Keypoints3d/1"], f["Calibration/25/K"]
        f["Keypoints3d/1"] = np.zeros((10, 3))
        f["Calibration/25/K"] = np.eye(4)
        alpha = np.asarray(Image.open(io.BytesIO(f["Camera/30/mask/0"][()].tobytes())))
        buf = io.BytesIO()
        Image.fromarray(np.stack([alpha, alpha // 2, np.zeros_like(alpha)], 2)).save(buf, "PNG")
        del f["Camera/30/mask/0"], f["Camera/30/mask/1"]
        f["Camera/30/mask/0"] = np.frombuffer(buf.getvalue(), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(alpha[:10, :12]).save(buf, "PNG")
        f["Camera/30/mask/1"] = np.frombuffer(buf.getvalue(), dtype=np.uint8)
    with SMCReader(raw, anno) as reader:
        with pytest.raises(SMCError, match=r"e0_anno.smc: 'Keypoints3d/1' has shape \(10, 3\), expected \(73, 3\)"):
            reader.keypoints3d(1)
        with pytest.raises(SMCError, match=r"'Calibration/25/K' has shape \(4, 4\), expected \(3, 3\)"):
            reader.calibration(25)
        np.testing.assert_array_equal(reader.mask(30, 0), alpha)  # a 3-channel matte: its first channel
        with pytest.raises(SMCError, match="camera '30' frame 1: mask does not decode: size 10x12 is not the file's"):
            reader.mask(30, 1)


def test_reads_only_what_is_asked(split, monkeypatch):
    reads = []
    original = h5py.Dataset.__getitem__

    def spy(self, *args, **kwargs):
        reads.append(self.name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    with _reader(split, "e0") as reader:
        _ = (reader.camera_ids, reader.frame_ids, reader.resolution, reader.attributes, reader.has_masks,
             reader.has_flame)
        assert reads == []
        reader.image("25", 3)
        assert reads == ["/Camera/25/color/3"]
        reader.mask(22, 1)
        reader.flame(2, keys=["exp"])
        reader.keypoints2d(30, 4)
        assert reads[1:] == ["/Camera/22/mask/1", "/FLAME/2/exp", "/Keypoints2d/30/4"]
    with pytest.raises(SMCError, match="closed"):
        reader.image(25, 3)


# ----------------------------------------------------------------------------- the 500-subject layout


def test_single_file_subject(single):
    spec, subject = single
    parts = find_parts(spec.out, ACTOR)
    assert parts == {p: (subject.folder / f"{ACTOR}_{p}.smc", None) for p in ("e0", "h0")}
    with SMCReader(parts["e0"][0]) as reader:
        assert not reader.has_masks and reader.has_flame
        assert reader.camera_ids == list(spec.cameras) and reader.frame_ids == [0, 1]
        assert reader.image(32, 1).shape == (spec.height, spec.width, 3)
        assert reader.calibration(18)["RT"].shape == (4, 4)
        assert reader.keypoints2d(25, 0).shape == (106, 2)
        np.testing.assert_array_equal(reader.flame(1)["verts"], subject.parts["e0"].verts[1])
        with pytest.raises(SMCError, match=f"{ACTOR}_e0.smc: this file has no masks"):
            reader.mask(25, 0)


def test_generator_is_deterministic(single, tmp_path):
    spec, subject = single
    again = write_synthetic_subject(SyntheticSMCSpec(out=str(tmp_path), **SMALL))
    for part, truth in subject.parts.items():
        np.testing.assert_array_equal(again.parts[part].verts, truth.verts)
        name = f"{ACTOR}_{part}.smc"
        with h5py.File(subject.folder / name) as a, h5py.File(again.folder / name) as b:
            datasets = _datasets(a)
            assert datasets and datasets == _datasets(b)
            assert all(np.array_equal(a[n][()], b[n][()]) for n in datasets)


def _datasets(file: h5py.File) -> list[str]:
    names: list[str] = []
    file.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
    return names


# ----------------------------------------------------------------------------- discovery


def _touch(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def test_find_parts(tmp_path):
    _touch(tmp_path / "0001", *[f"0001_e{i}_{kind}.smc" for i in (0, 1, 2, 10, 11) for kind in ("raw", "anno")],
           "0001_h1_2bk_raw.smc", "0001_h1_2bk_anno.smc", "0001_s1.smc", "0002_e0.smc", "notes.txt")
    parts = find_parts(tmp_path, "0001")
    assert list(parts) == ["e0", "e1", "e2", "e10", "e11", "h1_2bk", "s1"]
    folder = tmp_path / "0001"
    assert parts["h1_2bk"] == (folder / "0001_h1_2bk_raw.smc", folder / "0001_h1_2bk_anno.smc")
    assert parts["s1"] == (folder / "0001_s1.smc", None)
    _touch(tmp_path / "flat", "0005_e0.smc", "0005_h0.smc")  # files directly in root
    assert list(find_parts(tmp_path / "flat", "0005")) == ["e0", "h0"]


def test_find_parts_errors(tmp_path):
    _touch(tmp_path / "0001", "0001_e0_raw.smc", "0001_e0_anno.smc", "0001_e1_anno.smc")
    with pytest.raises(SMCError, match="0001_e1_anno.smc: annotation file without its colour file 0001_e1_raw.smc"):
        find_parts(tmp_path, "0001")
    with pytest.raises(SMCError, match=r"no RenderMe-360 files matching 0003_\*.smc"):
        find_parts(tmp_path, "0003")
