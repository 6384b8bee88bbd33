"""Tracking a synthetic collection whose FLAME was removed: accuracy against the known truth."""

import numpy as np
import pytest
import torch
from stripped import strip_truth

from pav.data.collection import Collection
from pav.head.flame import FLAME
from pav.track import TrackConfig, track
from pav.track.accuracy import compare_collections, neutral_shape_error_mm
from pav.track.fit import FitWeights
from pav.track.identity import fit_identity
from pav.track.inputs import read_inputs
from pav.track.landmarks import LandmarkProjector


@pytest.fixture(scope="module")
def tracked(synthetic_truth, tmp_path_factory):
    root = strip_truth(synthetic_truth, tmp_path_factory.mktemp("tracked") / "collection")
    track(TrackConfig(collection=str(root), photometric=False, overlay=False, device="cpu"))
    return root


def test_tracked_vertices_match_the_truth(tracked, synthetic_truth):
    errors = compare_collections(Collection.open(tracked), Collection.open(synthetic_truth, verify_images="none"),
                                 FLAME.from_file("procedural:0"))
    names = [n for n in errors if n != "shape"]
    assert len(names) == 3
    for name in names:
        assert errors[name]["vertex_mm"] <= 5.0, errors  # the 3D target, every appearance
        # Depth and focal length trade off in one view: an appearance whose focal is missed by 40%
        # reprojects its unseen vertices (neck, back of the head) about 2 px off; the mean stays near 1.5.
        assert errors[name]["reprojection_px"] <= 2.5, errors
    assert np.mean([errors[n]["reprojection_px"] for n in names]) <= 1.7, errors
    assert errors["shape"]["neutral_mm"] <= 2.0, errors


def test_one_shape_for_all_appearances_beats_each_alone(tracked, synthetic_truth):
    flame = FLAME.from_file("procedural:0")
    true_shape = Collection.open(synthetic_truth, verify_images="none").shape
    _, inputs = read_inputs(tracked)
    projector = LandmarkProjector(flame, inputs[0].landmark_ids)
    w = FitWeights()
    torch.manual_seed(0)
    shared, _, _ = fit_identity(projector, inputs, [512.0] * 3, 100, 40, 150, 400, w)
    alone = [fit_identity(projector, [inp], [512.0], 100, 40, 150, 400, w)[0] for inp in inputs]
    shared_err = neutral_shape_error_mm(flame, shared, true_shape)
    alone_err = [neutral_shape_error_mm(flame, s, true_shape) for s in alone]
    assert shared_err < np.mean(alone_err), (shared_err, alone_err)
