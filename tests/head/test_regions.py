"""Head regions without labels in the model: FLAME's region file, else the face the landmarks span."""

import pickle

import numpy as np
import pytest
import torch

from pav.head.flame import FLAME
from pav.head.pickle_io import HeadModelError, load_head_pickle, save_head_pickle
from pav.head.procedural import procedural_head_path
from pav.head.regions import head_regions


@pytest.fixture(scope="module")
def labelled() -> FLAME:
    return FLAME.from_file("procedural:0", n_shape=10, n_expr=10)


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory) -> FLAME:
    """The procedural head as official FLAME ships: no region labels (its landmarks kept)."""
    data = load_head_pickle(procedural_head_path(0))
    del data["face_region"], data["region_names"]
    path = tmp_path_factory.mktemp("head") / "no_regions.pkl"
    save_head_pickle(path, data)
    return FLAME.from_file(path, n_shape=10, n_expr=10)


def _share(faces: torch.Tensor, region: torch.Tensor) -> float:
    return float((faces & region).sum() / region.sum())


def test_without_labels_the_face_comes_from_the_landmarks(labelled, unlabelled):
    regions, source = head_regions(unlabelled)
    assert set(regions) == {"face", "all"} and "landmarks" in source
    labels = {n: labelled.face_region == i for i, n in enumerate(labelled.region_names)}
    face = regions["face"]
    assert _share(face, labels["face"]) > 0.6  # most of the face
    assert _share(face, labels["scalp"]) < 0.05 and _share(face, labels["neck"]) < 0.05  # none of the hair's place
    assert face.sum() < 0.5 * len(face)


def test_a_region_the_model_cannot_name_is_refused(tmp_path, unlabelled):
    from pav.data.datamodule import AvatarDataModule, DataConfig

    dm = AvatarDataModule(DataConfig(root=str(tmp_path)))
    dm.flame, dm.head_model = unlabelled, str(unlabelled.source)
    assert torch.equal(dm.region_faces(["face"]), head_regions(unlabelled)[0]["face"])
    with pytest.raises(ValueError, match=r"loss.depth_regions=\['scalp'\]: \['scalp'\] not among.*FLAME_masks"):
        dm.region_faces(["scalp"])
    assert bool(dm.region_faces(["all"]).all())


def test_flame_region_file_gives_the_regions(tmp_path, labelled, unlabelled):
    faces = labelled.faces.numpy()
    masks = {}
    for i, name in enumerate(labelled.region_names):  # the vertex lists FLAME_masks.pkl holds, per region
        masks[name] = np.unique(faces[(labelled.face_region == i).numpy()])
    path = tmp_path / "FLAME_masks.pkl"
    path.write_bytes(pickle.dumps(masks, protocol=2))
    regions, source = head_regions(unlabelled, path)
    assert source == str(path) and set(regions) == {*labelled.region_names, "all"}
    face = labelled.face_region == labelled.region_names.index("face")
    assert bool((regions["face"] | ~face).all())  # every face labelled 'face' has its three vertices in the list
    assert _share(regions["face"], face) == 1.0


def test_a_region_file_of_another_model_names_the_file(tmp_path, unlabelled):
    path = tmp_path / "FLAME_masks.pkl"
    path.write_bytes(pickle.dumps({"face": np.array([0, unlabelled.num_verts + 5])}))
    with pytest.raises(HeadModelError, match="(?s)FLAME_masks.pkl.*region 'face' names vertex"):
        head_regions(unlabelled, path)


def test_the_mouth_holds_the_lips_and_nothing_of_the_eyes_scalp_or_back(tmp_path, labelled, unlabelled):
    from pav.head.regions import mouth_faces

    labels = {n: labelled.face_region == i for i, n in enumerate(labelled.region_names)}
    centres = labelled.v_template[labelled.faces].mean(1)  # [F, 3]
    for flame in (labelled, unlabelled):  # with the model's labels, and from the landmarks alone
        mouth = mouth_faces(flame)
        assert _share(mouth, labels["lips"]) == 1.0
        assert _share(mouth, labels["eyes"]) == 0.0 and _share(mouth, labels["scalp"]) == 0.0
        assert bool((centres[mouth, 2] > 0).all())  # the front half only: not the back of the head behind the lips
        assert mouth.sum() < 0.2 * len(mouth)
    data = load_head_pickle(procedural_head_path(0))
    for key in ("face_region", "region_names", "lmk_face_idx", "lmk_b_coords"):
        del data[key]
    save_head_pickle(tmp_path / "bare.pkl", data)
    assert mouth_faces(FLAME.from_file(tmp_path / "bare.pkl", n_shape=10, n_expr=10)) is None  # nothing to find it by
