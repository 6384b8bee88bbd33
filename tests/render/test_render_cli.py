"""`python -m pav.render` on a tiny checkpoint: video files, grids, appearance swaps, drives and bad input."""

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from pav.common.cli import parse_overrides
from pav.render.__main__ import main
from pav.render.drive import DriveError
from pav.render.video import RenderError, RenderResult, RenderVideoConfig, render_video

NAMES = ["short_dark", "long_auburn"]


@pytest.fixture(scope="module")
def avatar(tiny_avatar):
    """The shared tiny checkpoint (tests/conftest.py): 2 appearances x 4 frames at 32 px, 30 smoke steps."""
    return tiny_avatar


def render(avatar, out: Path, *options: str) -> RenderResult:
    argv = [f"ckpt={avatar.ckpt}", f"out={out}", "device=cpu", *options]
    return render_video(parse_overrides(RenderVideoConfig, argv))


def read_video(path: Path) -> tuple[dict, list[np.ndarray]]:
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    return meta, [np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in reader]


def read_pngs(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))]


@pytest.fixture(scope="module")
def singles(avatar, tmp_path_factory) -> dict[str, list[np.ndarray]]:
    """Each appearance alone under short_dark's first 2 frames and camera, at 48 px (lossless PNGs)."""
    base = tmp_path_factory.mktemp("singles")
    out = {}
    for name in NAMES:
        render(avatar, base / f"{name}.mp4", f"appearance={name}", "drive=short_dark", "max_frames=2", "size=48",
               f"frames_dir={base / name}")
        out[name] = read_pngs(base / name)
    return out


def test_mp4_has_the_requested_frames_size_and_fps(avatar, tmp_path):
    out = tmp_path / "clip.mp4"
    result = render(avatar, out, "appearance=short_dark", "drive=long_auburn", "size=40", "fps=12", "max_frames=3",
                    f"frames_dir={tmp_path / 'png'}")
    meta, frames = read_video(out)
    assert tuple(meta["size"]) == (40, 40) and meta["fps"] == 12
    assert len(frames) == 3 and result.frames == 3
    assert [f.shape for f in read_pngs(tmp_path / "png")] == [(40, 40, 3)] * 3
    assert not list(tmp_path.glob("*.partial.mp4"))


def test_grid_has_one_labelled_tile_per_appearance(avatar, singles, tmp_path):
    result = render(avatar, tmp_path / "grid.mp4", "appearance=all", "drive=short_dark", "max_frames=2", "size=48",
                    f"frames_dir={tmp_path / 'png'}")
    grid = read_pngs(tmp_path / "png")
    assert (result.height, result.width) == (48, 96) and [g.shape for g in grid] == [(48, 96, 3)] * 2
    for i, name in enumerate(NAMES):
        tile, alone = grid[0][:, 48 * i:48 * (i + 1)], singles[name][0]
        rows = np.nonzero((tile != alone).any(axis=(1, 2)))[0]
        assert len(rows), f"no label on the {name} tile"
        assert rows.max() < 24, "tiles differ from the single renders outside the label in the top corner"
        assert (tile[rows] < 60).any(), "no dark text in the label"
    assert not np.array_equal(grid[0][24:, :48], grid[0][24:, 48:]), "both tiles show the same appearance"


def test_appearances_differ_on_the_head_and_agree_on_the_background(singles):
    a, b = (np.stack(singles[n]).astype(np.int64) for n in NAMES)  # [2, 48, 48, 3]
    diff = np.abs(a - b).max(-1)  # [2, 48, 48]
    assert diff.max() > 0, "both appearances render the same image: is the appearance ignored?"
    corners = np.concatenate([diff[:, :6, :6], diff[:, :6, -6:], diff[:, -6:, :6], diff[:, -6:, -6:]], 1)
    assert corners.max() == 0 and (a[:, :6, :6] == 255).all(), "the background changed with the appearance"
    on_head = (a.min(-1) < 255) | (b.min(-1) < 255)
    assert not (diff > 0)[~on_head].any(), "pixels off the head differ"


def test_builtin_drives_have_their_frame_counts(avatar, tmp_path):
    turn = render(avatar, tmp_path / "turn.mp4", "appearance=long_auburn", "drive=turntable", "fps=2", "size=16")
    expr = render(avatar, tmp_path / "expr.mp4", "appearance=long_auburn", "drive=expressions", "max_frames=5",
                  "size=16", "camera=front")
    assert turn.frames == 8 and len(read_video(turn.path)[1]) == 8  # 4 s at 2 fps
    assert expr.frames == 5 and len(read_video(expr.path)[1]) == 5


def test_a_flame_file_drives_the_render(avatar, tmp_path):
    drive = np.load(avatar.collection / "long_auburn" / "flame.npz")
    path = tmp_path / "drive.npz"
    np.savez(path, **{k: drive[k][:2] for k in drive.files})
    result = render(avatar, tmp_path / "file.mp4", "appearance=short_dark", f"drive={path}", "size=16")
    assert result.frames == 2


def _bad_drive(case: str, good: dict) -> dict:
    arrays = dict(good)
    if case == "no frame_ids":
        arrays.pop("frame_ids")
    elif case == "10 expression coefficients":
        arrays["expr"] = arrays["expr"][:, :10]
    elif case == "NaN":
        arrays["transl"] = arrays["transl"].copy()
        arrays["transl"][1, 0] = np.nan
    elif case == "3 rotations for 4 frames":
        arrays["rotations"] = arrays["rotations"][:3]
    return arrays


@pytest.mark.parametrize(("case", "message"), [
    ("no frame_ids", "missing field 'frame_ids'"),
    ("10 expression coefficients", r"field 'expr' has shape \(4, 10\), expected \(T=4, n_expr=50\)"),
    ("NaN", "NaN in field 'transl' at frame 1"),
    ("3 rotations for 4 frames", r"field 'rotations' has shape \(3, 5, 3\), expected \(T=4, 5, 3\)"),
])
def test_a_bad_drive_file_fails_naming_the_file_and_problem(avatar, tmp_path, case, message):
    good = dict(np.load(avatar.collection / "long_auburn" / "flame.npz"))
    path = tmp_path / "bad_flame.npz"
    np.savez(path, **_bad_drive(case, good))
    with pytest.raises(DriveError, match=message) as err:
        render(avatar, tmp_path / "x.mp4", "appearance=short_dark", f"drive={path}", "size=16")
    assert str(path) in str(err.value)
    assert not (tmp_path / "x.mp4").exists()


def test_a_missing_drive_file_or_unknown_drive_is_named(avatar, tmp_path):
    with pytest.raises(DriveError, match=f"drive file {tmp_path / 'nope.npz'}: no such file"):
        render(avatar, tmp_path / "x.mp4", "appearance=short_dark", f"drive={tmp_path / 'nope.npz'}")
    with pytest.raises(DriveError, match="short_dark, long_auburn.*turntable, expressions"):
        render(avatar, tmp_path / "x.mp4", "appearance=short_dark", "drive=spin")


def test_unknown_appearance_lists_the_valid_names(avatar, tmp_path):
    with pytest.raises(RenderError, match=r"appearance='bald' is not in .*; valid: short_dark, long_auburn \(or all\)"):
        render(avatar, tmp_path / "x.mp4", "appearance=bald", "drive=turntable")
    with pytest.raises(SystemExit, match="python -m pav.render: appearance='bald'"):  # the CLI: a message, no trace
        main([f"ckpt={avatar.ckpt}", "appearance=bald", "drive=turntable", f"out={tmp_path / 'x.mp4'}"])


def test_a_moved_collection_is_named(avatar, tmp_path):
    with pytest.raises(RenderError, match=f"collection {tmp_path / 'gone'} .* pass collection=DIR"):
        render(avatar, tmp_path / "x.mp4", "appearance=short_dark", "drive=turntable",
               f"collection={tmp_path / 'gone'}")


def test_bad_options_fail_before_loading(tmp_path):
    with pytest.raises(RenderError, match="camera='sideways' is not one of source, front, orbit"):
        render(SimpleNamespace(ckpt=tmp_path / "none.ckpt"), tmp_path / "x.mp4", "appearance=a", "drive=turntable",
               "camera=sideways")
    with pytest.raises(RenderError, match="no such checkpoint"):
        render(SimpleNamespace(ckpt=tmp_path / "none.ckpt"), tmp_path / "x.mp4", "appearance=a", "drive=turntable")


def test_module_entry_point_renders_an_orbit(avatar, tmp_path):
    out = tmp_path / "orbit.mp4"
    cmd = [sys.executable, "-m", "pav.render", f"ckpt={avatar.ckpt}", "appearance=short_dark", "drive=turntable",
           "camera=orbit", "size=24", "max_frames=3", f"out={out}", "device=cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rendered 3 frames of 24x24 in" in proc.stdout and "frames/s" in proc.stdout
    frames = read_video(out)[1]
    assert len(frames) == 3 and not np.array_equal(frames[0], frames[1])


def test_importing_pav_render_loads_no_cli():
    code = ("import sys, pav.render; "
            "print(sorted(m for m in sys.modules if m in ('pav.render.video', 'pav.render.drive')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr
