"""Tracking a collection again: the head files come from collection.json."""

import json
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
