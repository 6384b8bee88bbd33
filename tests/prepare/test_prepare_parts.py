"""The parts of pav.prepare on their own: listing, sampling with blur rejection, crop geometry, matte."""

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from pav.prepare.crop import cut_crop, smooth_track, source_positions, to_source
from pav.prepare.decode import DecodeError, frame_count, list_sources, sanitize
from pav.prepare.detect import FaceBox
from pav.prepare.matte import guided_filter, refine_matte
from pav.prepare.sample import sample_windows, scan


def test_sources_are_named_sanitised_and_sorted(tmp_path):
    for name in ("b clip.MP4", "a.mov", "a.mkv", "cross.webm", "readme.md", ".hidden.mp4"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "stills").mkdir()
    (tmp_path / "stills" / "x.JPG").write_bytes(b"")
    (tmp_path / "empty folder").mkdir()
    found = [(s.name, s.path.name, s.kind) for s in list_sources(tmp_path)]
    assert found == [("a", "a.mkv", "video"), ("a-2", "a.mov", "video"), ("b_clip", "b clip.MP4", "video"),
                     ("cross_", "cross.webm", "video"), ("stills", "stills", "images")]
    assert sanitize("été 2019 (1)") == "t_2019_1" and sanitize("cross") == "cross_"
    with pytest.raises(DecodeError, match="not a folder"):
        list_sources(tmp_path / "missing")


def test_frame_count_names_the_problem(tmp_path):
    (tmp_path / "zero.mp4").write_bytes(b"")
    (tmp_path / "junk.avi").write_text("hello")
    sources = {s.name: s for s in list_sources(tmp_path)}
    with pytest.raises(DecodeError, match=r"empty file \(0 bytes\)"):
        frame_count(sources["zero"])
    with pytest.raises(DecodeError, match="cannot open as a video: .*Invalid data"):
        frame_count(sources["junk"])


def test_sample_windows_are_even_and_disjoint():
    w = sample_windows(100, 10, window=2)
    assert w.tolist()[:2] == [[3, 7], [13, 17]] and len(w) == 10
    assert np.all(w[1:, 0] > w[:-1, 1])
    assert sample_windows(30, 10, window=5).tolist()[:2] == [[0, 2], [3, 5]]  # shrunk so they never overlap
    assert sample_windows(4, 10, window=2).tolist() == [[0, 0], [1, 1], [2, 2], [3, 3]]  # fewer frames: all


def test_scan_picks_the_sharpest_frame_and_rejects_blurred_ones(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "noise"
    folder.mkdir()
    sharp_frame = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
    blurry = gaussian_filter(sharp_frame.astype(float), (3, 3, 0)).astype(np.uint8)
    # 30 frames, 10 windows of 3: frame 4 (a target) is blurred but its window has sharp neighbours;
    # the whole window 24..26 is blurred, so it has no sharp frame to offer
    for i in range(30):
        frame = blurry if i in (4, 24, 25, 26) else np.roll(sharp_frame, i, axis=1)
        Image.fromarray(frame).save(folder / f"{i:03d}.png")
    (source,) = list_sources(tmp_path)
    box = FaceBox(np.array([10, 10, 20, 20], np.float32), 0.9)
    faceless = [np.roll(sharp_frame, i, axis=1) for i in (6, 7, 8)]  # window 2: a "detector" that finds no face

    def detect(frame):
        return None if any(np.array_equal(frame, f) for f in faceless) else box

    found = scan(source, frame_count(source), count=10, window=2, blur_ratio=0.3, detect=detect)
    assert found.decoded == 30 and len(found.ids) == 10
    assert 4 not in found.ids and found.ids[1] in (3, 5)
    assert found.blurred.tolist() == [i == 8 for i in range(10)]
    assert found.ids[8] in (24, 25, 26) and found.ids[8] not in found.faces
    assert found.ids[2] in (6, 7, 8) and found.ids[2] not in found.faces and len(found.faces) == 8


def test_crop_follows_the_contract_coordinates():
    h, w = 60, 80
    ramp = (np.arange(w)[None, :] + 2 * np.arange(h)[:, None]).astype(np.float64)  # value = x + 2 y
    frame = np.stack([ramp, ramp / 2, np.zeros_like(ramp)], axis=-1).astype(np.uint8)
    crop = np.array([20.3, 10.7, 30.0], np.float32)  # upsampled: 30 source px -> 64
    rgb, inside = cut_crop(frame, crop, 64)
    xs, ys = source_positions(crop, 64)
    want = xs[None, :] + 2 * ys[:, None]
    assert inside.all() and np.abs(rgb[..., 0] - want)[2:-2, 2:-2].max() <= 1.0
    assert np.allclose(to_source(np.array([[0.0, 0.0], [63.0, 63.0]]), crop, 64),
                       [[xs[0], ys[0]], [xs[-1], ys[-1]]])
    # a crop hanging over the top-left corner: replicated edge pixels, marked outside
    rgb, inside = cut_crop(frame, np.array([-20.0, -10.0, 60.0], np.float32), 60)
    assert not inside[:9].any() and not inside[:, :19].any() and inside[11:, 21:].all()
    assert rgb.shape == (60, 60, 3) and (rgb[0, 30] == rgb[8, 30]).all()


def test_smooth_track_follows_boxes_and_ignores_an_outlier_size():
    T = 30
    times = np.arange(T) / 30.0
    boxes = np.tile(np.array([100.0, 50.0, 40.0, 40.0]), (T, 1))
    boxes[:, 0] += np.random.default_rng(0).normal(0, 2.0, T)  # jitter in x
    boxes[15, 2:] = 80.0  # one bad detection, twice the size
    crops = smooth_track(boxes, times, crop_scale=2.0, shift=0.0, sigma_centre=0.2, sigma_size=1.0)
    assert np.allclose(crops[:, 2], 80.0)  # the median ignores the outlier
    centre_x = crops[:, 0] - 0.5 + crops[:, 2] / 2
    assert np.std(np.diff(centre_x)) < 0.5 * np.std(np.diff(boxes[:, 0] + 20))
    raw = smooth_track(boxes, None, crop_scale=2.0, shift=0.0, sigma_centre=0.2, sigma_size=1.0)
    assert raw[15, 2] == 160.0 and np.allclose(raw[:, 0] - 0.5 + raw[:, 2] / 2, boxes[:, 0] + boxes[:, 2] / 2)


def test_guided_filter_moves_a_soft_mask_edge_onto_the_colour_edge():
    rgb = np.zeros((128, 128, 3), np.uint8)
    rgb[:, 64:] = 255  # person on the right half
    soft = np.clip((np.arange(128) - 56) / 16.0, 0, 1)[None, :].repeat(128, 0).astype(np.float32)  # ramp 56..72
    out = guided_filter(rgb, soft, radius=4, eps=1e-4, subsample=2)
    jump = out[:, 64] - out[:, 62]
    assert jump.min() > 2.5 * (soft[0, 64] - soft[0, 62])  # steepest at the colour edge
    assert out[:, :50].max() < 0.05 and out[:, 78:].min() > 0.95
    inside = np.ones((128, 128), bool)
    inside[:, 120:] = False
    alpha = refine_matte(rgb, soft, inside)
    assert alpha.dtype == np.uint8 and (alpha[:, 120:] == 0).all() and alpha[:, 100].min() > 250
