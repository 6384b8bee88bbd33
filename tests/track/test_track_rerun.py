"""Tracking a collection again: the head files come from collection.json, and the saved identity is
reused only for the appearances it saw."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from stripped import strip_truth

from pav.head.pickle_io import HeadModelError, load_head_pickle, save_head_pickle
from pav.head.procedural import procedural_head_path
from pav.synthetic.generate import SyntheticConfig, generate
from pav.track import TrackConfig, track

FASTEST = dict(rigid_steps=5, identity_steps=5, sequence_steps=5, keyframes=3, photometric=False, overlay=False,
               device="cpu")
UV_KEYS = ("vt", "ft")
MEDIAPIPE_KEYS = {"mp_lmk_face_idx": "lmk_face_idx", "mp_lmk_b_coords": "lmk_b_coords",
                  "mp_landmark_indices": "landmark_indices"}


@pytest.fixture(scope="module")
def two_appearances(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rerun") / "collection"
    generate(SyntheticConfig(out=str(root), appearances=2, frames=4, size=48, seed=3, workers=1, cross=False))
    return root


def official_style_head(folder: Path) -> dict[str, str]:
    """The procedural head split the way the licensed FLAME ships: a pickle without uv layout and mediapipe
    embedding, and those two in files of their own."""
    head = load_head_pickle(procedural_head_path(0))
    folder.mkdir()
    uv, embedding = folder / "texture_space.npz", folder / "mediapipe_landmark_embedding.npz"
    np.savez(uv, **{key: head.pop(key) for key in UV_KEYS})
    np.savez(embedding, **{ours: head.pop(theirs) for theirs, ours in MEDIAPIPE_KEYS.items()})
    save_head_pickle(folder / "generic_model.pkl", head)
    return {"head_model": str(folder / "generic_model.pkl"), "uv_layout": str(uv), "landmark_embedding": str(embedding)}


def set_appearances(root: Path, entries: list[dict]) -> None:
    """collection.json lists only `entries`, as pav.prepare rewrites it (the tracker's keys kept)."""
    path = root / "collection.json"
    meta = json.loads(path.read_text())
    path.write_text(json.dumps({**meta, "appearances": entries}))


def test_a_rerun_takes_the_landmark_embedding_from_collection_json(two_appearances, tmp_path, capsys):
    files = official_style_head(tmp_path / "flame")
    root = strip_truth(two_appearances, tmp_path / "collection")
    track(TrackConfig(collection=str(root), **files, **FASTEST))
    recorded = json.loads((root / "collection.json").read_text())
    assert {key: recorded[key] for key in files} == files

    capsys.readouterr()
    track(TrackConfig(collection=str(root), **FASTEST))  # no head file on the command line
    out = capsys.readouterr().out
    assert "identity: resumed" in out and out.count("resumed from") == 3, out  # the same files: nothing refitted

    missing = tmp_path / "elsewhere.npz"  # the command line's path wins over collection.json's
    with pytest.raises(HeadModelError, match=r"elsewhere\.npz"):
        track(TrackConfig(collection=str(root), landmark_embedding=str(missing), **FASTEST))


def test_an_added_appearance_refits_the_shape_and_every_appearance(two_appearances, tmp_path, capsys):
    root = strip_truth(two_appearances, tmp_path / "collection")
    entries = json.loads((root / "collection.json").read_text())["appearances"]
    names = [entry["name"] for entry in entries]
    first, added = names
    state = root / "tracking"
    set_appearances(root, entries[:1])
    track(TrackConfig(collection=str(root), **FASTEST))
    shape_of_one = np.load(root / "shape.npy")
    shutil.copy(state / f"{first}.npz", tmp_path / "fitted_with_the_first_shape.npz")

    set_appearances(root, entries)  # a video added later
    capsys.readouterr()
    track(TrackConfig(collection=str(root), **FASTEST))
    out = capsys.readouterr().out
    assert "resumed from" not in out, out
    assert f"was fitted to other appearances (new: {added}); fitting the shape again over all 2" in out, out
    with np.load(state / "identity.npz") as identity:
        assert sorted(identity["names"]) == sorted(names)
        assert not np.array_equal(identity["shape"], shape_of_one)

    # a refit stopped after the identity: the appearance fitted with the old shape is not reused
    shutil.copy(tmp_path / "fitted_with_the_first_shape.npz", state / f"{first}.npz")
    capsys.readouterr()
    track(TrackConfig(collection=str(root), **FASTEST))
    out = capsys.readouterr().out
    assert "identity: resumed" in out and f"{added}: resumed" in out and f"{first}: resumed" not in out, out
    assert f"{first}.npz: fitted with another shape" in out, out


def test_progress_without_the_appearance_record_is_fitted_again(two_appearances, tmp_path, capsys):
    root = strip_truth(two_appearances, tmp_path / "collection")
    track(TrackConfig(collection=str(root), **FASTEST))
    path = root / "tracking" / "identity.npz"
    with np.load(path) as archive:
        older = {key: archive[key] for key in archive.files if key != "appearances"}
    np.savez(path, **older)  # as pav wrote it before the identity recorded its appearances

    capsys.readouterr()
    track(TrackConfig(collection=str(root), **FASTEST))
    out = capsys.readouterr().out
    assert "does not record which appearances it saw (saved by an older pav)" in out, out
    assert "resumed from" not in out, out
    with np.load(path) as archive:
        assert "appearances" in archive.files
