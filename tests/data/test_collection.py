"""The collection format: writer/reader round trip, summary, and every corruption named by file."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pav.data.collection import (
    AppearanceSpec,
    Cameras,
    Collection,
    CollectionError,
    CollectionMeta,
    CollectionWriter,
    FlameSequence,
    Split,
)
from pav.data.summary import main as summary_main
from pav.data.summary import summarize

H, W = 16, 16
N_SHAPE, N_EXPR = 6, 4
IDS = {"studio": [0, 1, 2, 3], "street": [10, 11, 12, 13]}  # different ids: catches index/id mix-ups
SPLITS = {"studio": Split(train=[0, 1, 2], test=[3]), "street": Split(train=[10, 11], test=[12, 13])}


@dataclass
class Built:
    root: Path
    shape: np.ndarray  # [N_SHAPE]
    cameras: dict[str, Cameras]
    flames: dict[str, FlameSequence]
    landmarks: dict[str, np.ndarray]
    frames: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]  # (appearance, id) -> rgb, mask
    cross: dict[int, tuple[np.ndarray, np.ndarray]]  # street test id -> rgb, mask of studio


def _meta() -> CollectionMeta:
    return CollectionMeta(
        subject="tester", head_model="procedural:7", n_shape=N_SHAPE, n_expr=N_EXPR, image_size=(H, W),
        appearances=[AppearanceSpec("studio", "monocular"), AppearanceSpec("street", "monocular")],
        cross=[("studio", "street")],
    )


def _pose(z: float) -> np.ndarray:  # [4, 4]
    c2w = np.eye(4, dtype=np.float32)
    c2w[2, 3] = z
    return c2w


def _cameras(per_frame: bool, n_frames: int) -> Cameras:
    K = np.array([[[20.0, 0, 8], [0, 20.0, 8], [0, 0, 1]]], dtype=np.float32)  # [1, 3, 3]
    if per_frame:
        c2w = np.stack([_pose(-1.0 - 0.1 * t)[None] for t in range(n_frames)])  # [T, 1, 4, 4]
    else:
        c2w = _pose(-1.0)[None]  # [1, 4, 4]
    return Cameras(K=K, c2w=c2w, names=["00"])


def _flame(ids: list[int], rng: np.random.Generator) -> FlameSequence:
    T = len(ids)
    return FlameSequence(
        frame_ids=np.array(ids, dtype=np.int64),
        expr=rng.normal(size=(T, N_EXPR)).astype(np.float32),
        rotations=(0.1 * rng.normal(size=(T, 5, 3))).astype(np.float32),
        transl=rng.normal(size=(T, 3)).astype(np.float32),
    )


def _image(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return (rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8),
            rng.integers(0, 256, size=(H, W), dtype=np.uint8))


def build(root: Path, finalize: bool = True) -> Built:
    rng = np.random.default_rng(0)
    writer = CollectionWriter(root, _meta())
    shape = rng.normal(size=N_SHAPE).astype(np.float32)
    writer.write_shape(shape)
    lmk = rng.uniform(0, W, size=(4, 1, 68, 2)).astype(np.float32)
    lmk[1, 0, 5] = np.nan  # an undetected point is allowed
    landmarks = {"lmk68": lmk, "lmk68_visible": np.ones((4, 1, 68), dtype=bool)}
    built = Built(root, shape, {}, {}, landmarks, {}, {})
    for name, ids in IDS.items():
        built.cameras[name] = _cameras(per_frame=name == "street", n_frames=len(ids))
        built.flames[name] = _flame(ids, rng)
        writer.write_appearance(name, built.cameras[name], built.flames[name], SPLITS[name],
                                landmarks if name == "studio" else None)
        for i in ids:
            built.frames[(name, i)] = _image(rng)
            writer.write_frame(name, "00", i, *built.frames[(name, i)])
    for i in SPLITS["street"].test:
        built.cross[i] = _image(rng)
        writer.write_cross_frame("studio", "street", "00", i, *built.cross[i])
    if finalize:
        writer.finalize()
    return built


@pytest.fixture
def built(tmp_path: Path) -> Built:
    return build(tmp_path / "col")


def open_error(root: Path, verify_images: str = "full") -> CollectionError:
    with pytest.raises(CollectionError) as info:
        Collection.open(root, verify_images=verify_images)
    return info.value


def rewrite_npz(path: Path, **changes: np.ndarray) -> None:
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays.update(changes)
    np.savez(path, **arrays)


def edit_json(path: Path, edit: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


# ----------------------------------------------------------------------------- round trip


def test_round_trip(built: Built) -> None:
    col = Collection.open(built.root)
    assert col.meta == _meta()
    assert col.appearance_names == ["studio", "street"]
    np.testing.assert_array_equal(col.shape, built.shape)
    assert col.cross_pairs == [("studio", "street")]
    for name, ids in IDS.items():
        a = col[name]
        assert a is col.appearance(name) and a.kind == "monocular"
        assert a.frame_ids == ids and a.camera_names == ["00"]
        assert a.split == SPLITS[name]
        np.testing.assert_array_equal(a.cameras.K, built.cameras[name].K)
        np.testing.assert_array_equal(a.cameras.c2w, built.cameras[name].c2w)
        for key in ("frame_ids", "expr", "rotations", "transl"):
            np.testing.assert_array_equal(getattr(a.flame, key), getattr(built.flames[name], key))
        for i in ids:
            rgb, mask = built.frames[(name, i)]
            frame, alpha = a.load_frame("00", i), a.load_mask(0, i)
            assert frame.dtype == np.float32 and frame.shape == (H, W, 3) and alpha.shape == (H, W)
            np.testing.assert_array_equal(np.round(frame * 255).astype(np.uint8), rgb)
            np.testing.assert_array_equal(np.round(alpha * 255).astype(np.uint8), mask)
    studio, street = col["studio"], col["street"]
    assert studio.landmarks is not None and street.landmarks is None
    np.testing.assert_array_equal(studio.landmarks["lmk68"], built.landmarks["lmk68"])  # NaN == NaN here
    assert not studio.cameras.per_frame and street.cameras.per_frame
    np.testing.assert_array_equal(street.cameras.c2w_at(2), built.cameras["street"].c2w[2])
    np.testing.assert_array_equal(studio.cameras.c2w_at(2), built.cameras["studio"].c2w)
    assert street.flame.index_of(12) == 2 and len(street.flame) == 4
    for i, (rgb, mask) in built.cross.items():
        frame, alpha = col.load_cross("studio", "street", "00", i)
        np.testing.assert_array_equal(np.round(frame * 255).astype(np.uint8), rgb)
        np.testing.assert_array_equal(np.round(alpha * 255).astype(np.uint8), mask)
    expected = built.root / "cross/studio/street/frames/00/000012.png"
    assert col.cross_frame_path("studio", "street", "00", 12) == expected


def test_reader_refuses_unknown_names(built: Built) -> None:
    col = Collection.open(built.root, verify_images="none")
    with pytest.raises(KeyError, match="nope"):
        col["nope"]
    with pytest.raises(KeyError, match="frame id 7"):
        col["studio"].frame_path("00", 7)
    with pytest.raises(KeyError, match="'01'"):
        col["studio"].frame_path("01", 0)
    with pytest.raises(KeyError, match="test ids"):
        col.cross_frame_path("studio", "street", "00", 10)


def test_summary_mentions_each_appearance(built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    text = summarize(Collection.open(built.root))
    for word in ("tester", "procedural:7", "16 x 16", "studio", "street", "monocular", "per-frame",
                 "cross pairs  1"):
        assert word in text
    assert summary_main([str(built.root)]) == 0
    assert "studio" in capsys.readouterr().out
    (built.root / "shape.npy").unlink()
    assert summary_main([str(built.root)]) == 1
    assert "shape.npy" in capsys.readouterr().err


def test_finalize_makes_it_openable(tmp_path: Path) -> None:
    root = tmp_path / "col"
    build(root, finalize=False)
    err = open_error(root)
    assert len(err.problems) == 1 and "collection.json" in err.problems[0]
    writer = CollectionWriter(root, _meta())
    assert not (root / "collection.json").exists()
    writer.finalize()
    Collection.open(root)
    CollectionWriter(root, _meta())  # starting a rewrite invalidates the collection
    assert "collection.json" in str(open_error(root))


def test_finalize_refuses_missing_parts(tmp_path: Path) -> None:
    writer = CollectionWriter(tmp_path, _meta())
    with pytest.raises(ValueError, match=r"shape\.npy.*studio/flame\.npz"):
        writer.finalize()
    assert not (tmp_path / "collection.json").exists()


# ----------------------------------------------------------------------------- writer checks


def test_writer_checks_inputs(tmp_path: Path) -> None:
    writer = CollectionWriter(tmp_path, _meta())
    rgb, mask = np.zeros((H, W, 3), np.uint8), np.zeros((H, W), np.uint8)
    with pytest.raises(ValueError, match=r"rgb must be uint8.*float32"):
        writer.write_frame("studio", "00", 0, rgb.astype(np.float32), mask)
    with pytest.raises(ValueError, match=r"mask must be uint8 with shape \(16, 16\)"):
        writer.write_frame("studio", "00", 0, rgb, np.zeros((8, 8), np.uint8))
    with pytest.raises(KeyError, match="nope"):
        writer.write_frame("nope", "00", 0, rgb, mask)
    with pytest.raises(ValueError, match=r"shape\.npy: field 'shape' has shape \(5,\)"):
        writer.write_shape(np.zeros(5, np.float32))
    rng = np.random.default_rng(1)
    flame = _flame([0, 1], rng)
    flame.expr[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"studio/flame\.npz: NaN in field 'expr' at frame 1"):
        writer.write_appearance("studio", _cameras(False, 2), flame, Split([0], [1]))
    with pytest.raises(ValueError, match=r"studio/split\.json: field 'test' has frame ids not in"):
        writer.write_appearance("studio", _cameras(False, 2), _flame([0, 1], rng), Split([0], [5]))


@pytest.mark.parametrize("meta_change, message", [
    ({"appearances": [AppearanceSpec("a b", "monocular")]}, "appearances[0].name"),
    ({"appearances": [AppearanceSpec("cross", "monocular")]}, "reserved"),
    ({"appearances": [AppearanceSpec("a", "stereo")]}, "appearances[0].kind"),
    ({"appearances": [AppearanceSpec("a", "monocular")] * 2}, "duplicate name 'a'"),
    ({"image_size": (0, 16)}, "image_size"),
    ({"cross": [("studio", "ghost")]}, "cross[0].drive"),
])
def test_writer_checks_meta(tmp_path: Path, meta_change: dict, message: str) -> None:
    meta = _meta()
    for key, value in meta_change.items():
        setattr(meta, key, value)
    if "appearances" in meta_change:
        meta.cross = []
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        CollectionWriter(tmp_path, meta)


# ----------------------------------------------------------------------------- corruptions


def _cut_in_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _write_png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path)


def _set_version(root: Path) -> None:
    edit_json(root / "collection.json", lambda d: d.update(version=3))


def _nan_expr(root: Path) -> None:
    with np.load(root / "studio/flame.npz") as archive:
        expr = archive["expr"].copy()
    expr[2, 1] = np.nan
    rewrite_npz(root / "studio/flame.npz", expr=expr)


CORRUPTIONS: dict[str, tuple[Callable[[Path], None], list[str]]] = {
    "collection.json missing": (lambda r: (r / "collection.json").unlink(), ["collection.json", "missing"]),
    "wrong version": (_set_version, ["collection.json", "'version'", "got 3"]),
    "collection.json not JSON": (lambda r: (r / "collection.json").write_text("{"),
                                 ["collection.json", "not valid JSON"]),
    "shape wrong shape": (lambda r: np.save(r / "shape.npy", np.zeros(N_SHAPE + 1, np.float32)),
                          ["shape.npy", "(7,)", "n_shape=6"]),
    "missing frame": (lambda r: (r / "studio/frames/00/000002.png").unlink(),
                      ["studio/frames/00 has 3 images, flame.npz has 4 frames", "missing: 000002"]),
    "extra frame": (lambda r: shutil.copy(r / "street/frames/00/000011.png",
                                          r / "street/frames/00/000099.png"),
                    ["street/frames/00 has 5 images", "extra (not in flame.npz): 000099"]),
    "missing mask": (lambda r: (r / "street/masks/00/000011.png").unlink(),
                     ["street/masks/00 has 3 masks", "missing: 000011"]),
    "truncated png": (lambda r: _cut_in_half(r / "studio/frames/00/000001.png"),
                      ["studio/frames/00/000001.png", "corrupt"]),
    "not an image": (lambda r: (r / "street/masks/00/000012.png").write_text("not a png"),
                     ["street/masks/00/000012.png", "corrupt or unreadable"]),
    "wrong image size": (lambda r: _write_png(r / "studio/frames/00/000000.png",
                                              np.zeros((8, 12, 3), np.uint8)),
                         ["studio/frames/00/000000.png", "12x8 (W x H)", "image_size"]),
    "mask not single-channel": (lambda r: _write_png(r / "studio/masks/00/000000.png",
                                                     np.zeros((H, W, 3), np.uint8)),
                                ["studio/masks/00/000000.png", "mode is 'RGB', expected 'L'"]),
    "NaN in expr": (_nan_expr, ["studio/flame.npz: NaN in field 'expr' at frame 2"]),
    "rotations shape": (lambda r: rewrite_npz(r / "street/flame.npz",
                                              rotations=np.zeros((4, 4, 3), np.float32)),
                        ["street/flame.npz", "field 'rotations' has shape (4, 4, 3), expected (T=4, 5, 3)"]),
    "split id not in flame": (lambda r: edit_json(r / "studio/split.json", lambda d: d["test"].append(42)),
                              ["studio/split.json", "'test'", "not in flame.npz", "42"]),
    "train/test overlap": (lambda r: edit_json(r / "street/split.json", lambda d: d["train"].append(12)),
                           ["street/split.json", "'train' and 'test' overlap", "12"]),
    "empty test": (lambda r: edit_json(r / "studio/split.json", lambda d: d.update(test=[])),
                   ["studio/split.json", "field 'test' is empty"]),
    "cameras.npz missing": (lambda r: (r / "studio/cameras.npz").unlink(), ["studio/cameras.npz: missing"]),
    "K wrong shape": (lambda r: rewrite_npz(r / "studio/cameras.npz", K=np.eye(3, dtype=np.float32)),
                      ["studio/cameras.npz", "field 'K' has shape (3, 3), expected (C, 3, 3)"]),
    "per-frame c2w wrong T": (lambda r: rewrite_npz(r / "street/cameras.npz",
                                                    c2w=np.tile(np.eye(4, dtype=np.float32), (3, 1, 1, 1))),
                              ["street/cameras.npz", "field 'c2w' has shape (3, 1, 4, 4), expected (T=4"]),
    "c2w last row": (lambda r: rewrite_npz(r / "studio/cameras.npz", c2w=np.ones((1, 4, 4), np.float32)),
                     ["studio/cameras.npz", "field 'c2w' last row must be [0, 0, 0, 1]"]),
    "landmarks wrong T": (lambda r: rewrite_npz(r / "studio/landmarks.npz", lmk68=np.zeros((3, 1, 68, 2))),
                          ["studio/landmarks.npz", "field 'lmk68' has shape (3, 1, 68, 2)"]),
    "cross frame missing": (lambda r: (r / "cross/studio/street/frames/00/000013.png").unlink(),
                            ["cross/studio/street/frames/00 has 1 image,", "street/split.json 'test'",
                             "missing: 000013"]),
    "appearance folder missing": (lambda r: shutil.rmtree(r / "studio"),
                                  ["studio/: appearance folder missing"]),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruption_is_reported(built: Built, name: str) -> None:
    corrupt, expected = CORRUPTIONS[name]
    corrupt(built.root)
    message = str(open_error(built.root))
    assert f"ROOT={built.root}" in message
    for text in expected:
        assert text in message, f"{text!r} not in:\n{message}"


def test_many_corruptions_reported_at_once(built: Built) -> None:
    names = ["shape wrong shape", "missing frame", "extra frame", "missing mask", "truncated png",
             "not an image", "wrong image size", "NaN in expr", "rotations shape", "train/test overlap",
             "K wrong shape", "cross frame missing", "landmarks wrong T"]
    for name in names:
        CORRUPTIONS[name][0](built.root)
    err = open_error(built.root)
    message = str(err)
    for name in names:
        for text in CORRUPTIONS[name][1]:
            assert text in message, f"{name}: {text!r} not in:\n{message}"
    assert len(err.problems) >= len(names)
    assert message.count("\n") == len(err.problems)  # one line per problem under one header


def test_header_level_skips_crc_but_checks_size(built: Built) -> None:
    _cut_in_half(built.root / "studio/frames/00/000001.png")
    col = Collection.open(built.root, verify_images="header")  # the header survives the cut
    with pytest.raises(CollectionError, match=r"studio/frames/00/000001\.png"):
        col["studio"].load_frame("00", 1)  # a corrupt frame found late still names its file
    _write_png(built.root / "studio/frames/00/000000.png", np.zeros((8, 8, 3), np.uint8))
    assert "studio/frames/00/000000.png" in str(open_error(built.root, verify_images="header"))
    Collection.open(built.root, verify_images="none")


def test_long_id_lists_are_shortened(built: Built) -> None:
    source = built.root / "street/frames/00/000010.png"
    for i in range(100, 125):
        shutil.copy(source, built.root / f"street/frames/00/{i:06d}.png")
    message = str(open_error(built.root, verify_images="none"))
    assert "000109 ... and 15 more" in message and "000110" not in message


def test_jpg_frames_are_accepted(built: Built) -> None:
    path = built.root / "studio/frames/00/000000.png"
    Image.open(path).convert("RGB").save(path.with_suffix(".jpg"), quality=95)
    assert "same frame as 000000.jpg" in str(open_error(built.root))
    path.unlink()
    col = Collection.open(built.root)
    assert col["studio"].frame_path("00", 0).suffix == ".jpg"
    assert col["studio"].load_frame("00", 0).shape == (H, W, 3)


# ----------------------------------------------------------------------------- held-out cameras


def _multiview(root: Path, test_cameras: list[str]) -> None:
    rng = np.random.default_rng(1)
    meta = CollectionMeta(subject="rig", head_model="procedural:7", n_shape=N_SHAPE, n_expr=N_EXPR,
                          image_size=(H, W), appearances=[AppearanceSpec("wig", "multiview")])
    writer = CollectionWriter(root, meta)
    writer.write_shape(np.zeros(N_SHAPE, dtype=np.float32))
    names = ["00", "01", "02"]
    K = np.repeat(np.array([[[20.0, 0, 8], [0, 20.0, 8], [0, 0, 1]]], dtype=np.float32), 3, 0)
    c2w = np.stack([_pose(-1.0 - 0.1 * c) for c in range(3)])
    writer.write_appearance("wig", Cameras(K=K, c2w=c2w, names=names), _flame([0, 1, 2], rng),
                            Split(train=[0, 1], test=[2], test_cameras=test_cameras))
    for cam in names:
        for i in range(3):
            writer.write_frame("wig", cam, i, *_image(rng))
    writer.finalize()


def test_held_out_cameras_round_trip(tmp_path: Path) -> None:
    _multiview(tmp_path / "col", ["02"])
    split = Collection.open(tmp_path / "col")["wig"].split
    assert split.test_cameras == ["02"]
    cams = ["00", "01", "02"]
    assert split.cameras(0, cams, "train") == ["00", "01"]
    assert split.cameras(0, cams, "test") == ["02"]  # a train frame seen from a held-out camera: a novel view
    assert split.cameras(2, cams, "test") == cams and split.cameras(2, cams, "train") == []


def test_held_out_cameras_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'test_cameras' names cameras not in cameras.npz 'names': 07"):
        _multiview(tmp_path / "a", ["07"])
    with pytest.raises(ValueError, match="holds out every camera"):
        _multiview(tmp_path / "b", ["00", "01", "02"])
    _multiview(tmp_path / "c", ["01"])
    edit_json(tmp_path / "c" / "wig" / "split.json", lambda d: d.update(test_cameras=["09"]))
    assert "wig/split.json: field 'test_cameras' names cameras not in" in str(open_error(tmp_path / "c"))
