"""The face and the rest of the person scored apart (pav/evaluate/regions.py)."""

import math

import pytest
import torch

from pav.data.datamodule import AvatarDataModule, DataConfig
from pav.evaluate.regions import face_pixels, region_scores, regions_table


@pytest.fixture(scope="module")
def held_out(tiny_collection):
    dm = AvatarDataModule(DataConfig(root=str(tiny_collection)))
    dm.load()
    return dm, dm.heldout_views(48, 1)


def test_face_pixels_are_the_face_regions_part_of_the_mesh(held_out):
    dm, views = held_out
    for view in views:
        face = face_pixels(dm.test_frames, view, dm.region_faces(["face"]))
        mesh = face_pixels(dm.test_frames, view, dm.region_faces(["all"]))
        none = face_pixels(dm.test_frames, view, torch.zeros_like(dm.region_faces(["all"])))
        assert face.shape == (view.height, view.width) and face.dtype == torch.bool
        assert bool((face <= mesh).all()) and not none.any()
        assert 0 < int(face.sum()) < int(mesh.sum())  # scalp, ears and neck are not the face
        assert not face[0].any() and not face[:, 0].any()  # the image's border is background here
        assert bool((view.alpha[face] > 0.5).all())  # the face lies inside the person's matte


def test_face_pixels_refuse_a_region_that_is_not_a_face_mask(held_out):
    dm, views = held_out
    face = dm.region_faces(["face"])
    for wrong in (face.float(), face[:-1]):
        with pytest.raises(ValueError, match=r"\[F\] bool tensor with F = "):
            face_pixels(dm.test_frames, views[0], wrong)


def _scene():
    """A 32² truth: a person (alpha 1) in the middle, the face a 6² square inside it."""
    truth = torch.ones(32, 32, 3)
    alpha = torch.zeros(32, 32)
    alpha[6:26, 8:24] = 1.0
    truth[alpha > 0] = torch.tensor([0.6, 0.4, 0.3])
    face = torch.zeros(32, 32, dtype=torch.bool)
    face[12:18, 13:19] = True
    return truth, alpha, face


def test_error_outside_the_face_leaves_the_face_score_perfect():
    truth, alpha, face = _scene()
    pred = truth.clone()
    pred[6:10, 8:24] = 0.2  # the "hair" at the top of the person is wrong
    row = region_scores({"a": [(pred, truth, face, alpha, None)]})["per_appearance"]["a"]
    assert row["psnr_face"] == math.inf and row["face_error"] == 0.0
    wrong = float(((pred - truth) ** 2).mean(-1)[6:10, 8:24].sum())
    rest = 22 * 18 - 36  # the person grown by one pixel (4 px at 256², 32² here rounds to 1), less the face
    assert row["psnr_rest"] == pytest.approx(-10 * math.log10(wrong / rest))
    assert row["face_pixels"] == pytest.approx(36 / 32 ** 2) and row["views"] == 1


def test_error_in_the_face_only_is_all_the_faces_share():
    truth, alpha, face = _scene()
    pred = truth.clone()
    pred[face] = 0.0
    regions = region_scores({"a": [(pred, truth, face, alpha, None)], "b": [(truth, truth, face, alpha, None)]})
    assert regions["per_appearance"]["a"]["face_error"] == pytest.approx(1.0)
    assert regions["per_appearance"]["a"]["psnr_rest"] == math.inf
    assert regions["overall"]["views"] == 2
    table = regions_table(regions)
    assert table[0].startswith("| appearance | face PSNR") and table[-1].startswith("| **overall** |")


def test_unknown_pixels_count_in_neither_region():
    truth, alpha, face = _scene()
    pred = truth.clone()
    pred[:, :16] = 0.0  # wrong everywhere on the left half ...
    valid = torch.ones(32, 32, dtype=torch.bool)
    valid[:, :16] = False  # ... which is outside the source frame
    row = region_scores({"a": [(pred, truth, face & valid, alpha, valid)]})["per_appearance"]["a"]
    assert row["psnr_face"] == math.inf and row["psnr_rest"] == math.inf and row["face_error"] == 0.0
