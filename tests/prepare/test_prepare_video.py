"""python -m pav.prepare end to end on a synthetic clip with known motion, plus broken inputs."""

import json
import shutil

import numpy as np
import pytest
from astro_clip import FRAME_HW, N_FRAMES, SIZE, apply, similarity
from PIL import Image, ImageDraw
from scipy.spatial import ConvexHull

from pav.prepare import PrepareConfig, PrepareError, prepare
from pav.prepare.__main__ import main as prepare_main
from pav.prepare.crop import source_positions, to_source
from pav.prepare.detect import FaceModels


def _load(out, name="astro"):
    with np.load(out / name / "prepare.npz") as p, np.load(out / name / "landmarks.npz") as lm:
        return {k: p[k] for k in p.files}, {k: lm[k] for k in lm.files}


def test_face_found_in_every_frame(prepared):
    _, summary = prepared
    stats = summary["appearances"]["astro"]
    assert stats["decoded"] == stats["sampled"] == stats["kept"] == N_FRAMES
    assert stats["no_face"] == stats["blurred"] == stats["no_landmarks"] == 0
    assert stats["source"] == "astro.mp4" and stats["source_size"] == list(FRAME_HW) and stats["fps"] == 25


def test_landmarks_follow_the_known_motion(prepared, photo):
    out, _ = prepared
    with FaceModels() as models:
        reference = models.mesh(photo)  # [478, 2] on the untransformed photo
    assert reference is not None
    p, lm = _load(out)
    for t, frame_id in enumerate(p["frame_ids"]):
        truth = apply(similarity(int(frame_id)), reference)
        found = to_source(lm["dense"][t, 0], p["crop"][t], SIZE)
        err = np.linalg.norm(found - truth, axis=1).mean()
        assert err < 3.0, f"frame {frame_id}: mean landmark error {err:.2f} px"
    assert np.all(lm["dense_score"] > 0.5)


def test_matte_covers_the_face_and_not_the_background(prepared):
    out, _ = prepared
    p, lm = _load(out)
    for t, frame_id in enumerate(p["frame_ids"]):
        alpha = np.asarray(Image.open(out / "astro" / "masks" / "00" / f"{frame_id:06d}.png"))
        pts = lm["dense"][t, 0]
        hull = Image.new("L", (SIZE, SIZE))
        ImageDraw.Draw(hull).polygon([tuple(v) for v in pts[ConvexHull(pts).vertices]], fill=1)
        face = np.asarray(hull).astype(bool)
        assert (alpha[face] > 127).mean() > 0.95, f"frame {frame_id}: matte misses the face"
        # background: beside the head, at eye height and above, at least 0.45 face widths away
        x0, x1 = pts[:, 0].min(), pts[:, 0].max()
        v, u = np.mgrid[:SIZE, :SIZE]
        eye_y = pts[[33, 263], 1].mean()
        xs, ys = source_positions(p["crop"][t], SIZE)
        in_frame = ((ys > 0) & (ys < FRAME_HW[0] - 1))[:, None] & ((xs > 0) & (xs < FRAME_HW[1] - 1))[None, :]
        far = in_frame & (v < eye_y) & ((u < x0 - 0.45 * (x1 - x0)) | (u > x1 + 0.45 * (x1 - x0)))
        assert far.sum() > 1000 and (alpha[far] > 127).mean() < 0.05, f"frame {frame_id}: matte on background"


def test_broken_files_are_reported_and_the_rest_goes_on(prepared):
    _, summary = prepared
    failed = {f["file"]: f["error"] for f in summary["failed"]}
    assert set(failed) == {"empty.mp4", "broken.mov"}
    assert "empty file" in failed["empty.mp4"]
    assert "cannot open as a video" in failed["broken.mov"]
    assert list(summary["appearances"]) == ["astro"]


def test_written_files_match_the_contract(prepared, videos):
    out, summary = prepared
    ids = [f"{i:06d}.png" for i in range(N_FRAMES)]
    expected = {"collection.json", "prepare.json", "contact_sheets/astro.png", "astro/landmarks.npz",
                "astro/split.json", "astro/prepare.npz",
                *(f"astro/frames/00/{i}" for i in ids), *(f"astro/masks/00/{i}" for i in ids),
                *(f"astro/valid/00/{i}" for i in ids)}
    assert {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} == expected

    meta = json.loads((out / "collection.json").read_text())
    assert meta == {"format": "pav-collection", "version": 2, "subject": videos.name, "head_model": "procedural:0",
                    "n_shape": 100, "n_expr": 50, "image_size": [SIZE, SIZE],
                    "appearances": [{"name": "astro", "kind": "monocular"}], "cross": []}
    assert json.loads((out / "prepare.json").read_text()) == summary
    assert set(summary) == {"videos", "size", "frames_per_video", "appearances", "failed"}

    p, lm = _load(out)
    T = N_FRAMES
    assert p["frame_ids"].dtype == np.int64 and p["frame_ids"].tolist() == list(range(T))
    for key, shape in {"crop": (T, 3), "sharpness": (T,), "face_box": (T, 4)}.items():
        assert p[key].dtype == np.float32 and p[key].shape == shape, key
    assert lm["dense"].dtype == np.float32 and lm["dense"].shape == (T, 1, 478, 2)
    assert lm["dense_indices"].dtype == np.int64 and lm["dense_indices"].tolist() == list(range(478))
    assert lm["dense_score"].dtype == np.float32 and lm["dense_score"].shape == (T, 1)
    assert json.loads((out / "astro" / "split.json").read_text()) == {"version": 2, "train": list(range(13)),
                                                                      "val": [13], "test": [14, 15]}

    frame = Image.open(out / "astro" / "frames" / "00" / ids[0])
    mask = Image.open(out / "astro" / "masks" / "00" / ids[0])
    assert (frame.mode, frame.size, mask.mode, mask.size) == ("RGB", (SIZE, SIZE), "L", (SIZE, SIZE))


def test_pixels_past_the_source_frame_are_unknown(prepared):
    out, _ = prepared
    p, _ = _load(out)
    past = 0
    for k, fid in enumerate(p["frame_ids"]):
        xs, ys = source_positions(p["crop"][k], SIZE)
        inside = ((ys >= -0.5) & (ys <= FRAME_HW[0] - 0.5))[:, None] & ((xs >= -0.5) & (xs <= FRAME_HW[1] - 0.5))
        valid = np.array(Image.open(out / "astro" / "valid" / "00" / f"{fid:06d}.png"))
        alpha = np.array(Image.open(out / "astro" / "masks" / "00" / f"{fid:06d}.png"))
        assert set(np.unique(valid)) <= {0, 255}
        assert not valid[~inside].any(), f"frame {fid}: a pixel past the source frame is marked known"
        assert not alpha[~inside].any()
        past += int((~inside).sum())
    assert past > 0, "the clip's crops should reach past its frame (the face sits near the bottom edge)"


def test_shoulders_are_unknown_and_head_and_neck_known(prepared):
    """The astronaut's suit beside her neck is torso: no target, no background; her face, hair and neck are."""
    out, _ = prepared
    p, lm = _load(out)
    v, u = np.mgrid[:SIZE, :SIZE]
    shoulders = 0
    for k, fid in enumerate(p["frame_ids"]):
        valid = np.array(Image.open(out / "astro" / "valid" / "00" / f"{fid:06d}.png")) > 0
        alpha = np.array(Image.open(out / "astro" / "masks" / "00" / f"{fid:06d}.png"))
        pts = lm["dense"][k, 0]
        chin, brow = pts[152], pts[9]
        h = np.linalg.norm(chin - brow)
        down = (chin - brow) / h
        below = ((u - chin[0]) * down[0] + (v - chin[1]) * down[1]) / h
        side = np.abs((u - chin[0]) * -down[1] + (v - chin[1]) * down[0]) / h
        xs, ys = source_positions(p["crop"][k], SIZE)
        inside = ((ys >= -0.5) & (ys <= FRAME_HW[0] - 0.5))[:, None] & ((xs >= -0.5) & (xs <= FRAME_HW[1] - 0.5))
        torso = inside & (alpha > 127) & (below > 0.45) & (side > 0.7)
        assert not valid[torso].any(), f"frame {fid}: shoulder pixels are marked known"
        head = inside & (alpha > 127) & ((below < 0.2) | ((below < 0.8) & (side < 0.4)))
        assert valid[head].all(), f"frame {fid}: head or neck pixels are marked unknown"
        assert valid[inside & (alpha == 0)].mean() > 0.95, f"frame {fid}: background should stay known"
        shoulders += int(torso.sum())
    assert shoulders > 0.01 * SIZE * SIZE * len(p["frame_ids"]), "the suit should show beside the neck"


def test_rerun_skips_completed_appearances(prepared, videos, capsys):
    out, summary = prepared
    stamp = (out / "astro" / "prepare.npz").stat().st_mtime_ns
    again = prepare(PrepareConfig(videos=str(videos), out=str(out), size=SIZE))
    assert "astro: already prepared (16 frames), skipped" in capsys.readouterr().out
    assert again == summary and (out / "astro" / "prepare.npz").stat().st_mtime_ns == stamp
    with pytest.raises(PrepareError, match="prepared with other settings: size=256"):
        prepare(PrepareConfig(videos=str(videos), out=str(out), size=128))


def test_another_split_rewrites_split_json_without_preparing_again(prepared, videos, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(prepared[0], out)
    stamp = (out / "astro" / "prepare.npz").stat().st_mtime_ns
    prepare(PrepareConfig(videos=str(videos), out=str(out), size=SIZE, split="insta"))
    said = capsys.readouterr().out
    assert "astro: already prepared (16 frames), skipped (split.json written for split=insta)" in said
    assert (out / "astro" / "prepare.npz").stat().st_mtime_ns == stamp
    # 16 source frames: the last round(350 * 16 / 1000) = 6 are test, one before them validates
    assert json.loads((out / "astro" / "split.json").read_text()) == {"version": 2, "train": list(range(9)),
                                                                      "val": [9], "test": list(range(10, 16))}
    with pytest.raises(PrepareError, match="split must be one of tail, insta, flashavatar, got 'last'"):
        prepare(PrepareConfig(videos=str(videos), out=str(out), size=SIZE, split="last"))


def test_folder_without_usable_video_is_a_clear_error(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "empty.mp4").write_bytes(b"")
    (videos / "noise.mov").write_bytes(np.random.default_rng(1).bytes(2048))
    with pytest.raises(PrepareError, match=r"no appearance could be prepared(.|\n)*empty\.mp4: empty file"):
        prepare(PrepareConfig(videos=str(videos), out=str(tmp_path / "out")))
    assert not (tmp_path / "out" / "collection.json").exists()
    with pytest.raises(SystemExit, match="noise.mov: cannot open as a video"):
        prepare_main([f"videos={videos}", f"out={tmp_path / 'out'}"])
    (tmp_path / "nothing").mkdir()
    with pytest.raises(SystemExit, match="no video files"):
        prepare_main([f"videos={tmp_path / 'nothing'}", f"out={tmp_path / 'out2'}"])


def test_image_folder_is_an_appearance(tmp_path, clip_frames):
    folder = tmp_path / "videos" / "stills 2019"
    folder.mkdir(parents=True)
    for i, frame in enumerate(clip_frames[:5]):
        Image.fromarray(frame).save(folder / f"img_{i:03d}.{'png' if i % 2 else 'jpg'}")
    (folder / "img_999.png").write_bytes(b"not a png")
    summary = prepare(PrepareConfig(videos=str(tmp_path / "videos"), out=str(tmp_path / "out"), size=128))
    stats = summary["appearances"]["stills_2019"]
    assert stats["kept"] == 5 and stats["decoded"] == 5 and stats["source"] == "stills 2019"
    assert summary["failed"][0]["file"] == "stills 2019/img_999.png"
    with np.load(tmp_path / "out" / "stills_2019" / "prepare.npz") as p:
        assert p["frame_ids"].tolist() == [0, 1, 2, 3, 4]
    assert len(list((tmp_path / "out" / "stills_2019" / "frames" / "00").iterdir())) == 5
