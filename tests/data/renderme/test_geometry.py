"""The converter's parts: rig geometry, FLAME conventions, keypoint embedding and keypoint fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from pav.data.renderme.fit import KeypointFitConfig, KeypointObservations, fit_keypoints
from pav.data.renderme.flame_fits import FlameFits, RenderMeError, to_collection
from pav.data.renderme.geometry import (
    crop_resize_intrinsics,
    distort,
    projection_matrices,
    square_crop,
    triangulate,
    undistort_image,
    undistort_points,
)
from pav.data.renderme.keypoints import learn_embedding
from pav.head.flame import FLAME
from pav.head.landmarks import points_on_mesh
from pav.render.cameras import look_at

D = np.array([-0.12, 0.06, 1e-3, -5e-4, 0.0])  # a lens like the rig's, strong enough to matter


@pytest.fixture(scope="module")
def flame():
    return FLAME.from_file("procedural:0", n_shape=100, n_expr=50)


def _look_at(eye: np.ndarray) -> np.ndarray:  # c2w [4, 4] of an OpenCV camera looking at the origin
    return look_at(eye, np.zeros(3), np.array([0.0, 1.0, 0.0]))


def _pixels(points: np.ndarray, K: np.ndarray, c2w: np.ndarray) -> np.ndarray:  # [N, 3] -> [N, 2]
    cam = points @ np.linalg.inv(c2w)[:3, :3].T + np.linalg.inv(c2w)[:3, 3]
    return cam[:, :2] / cam[:, 2:] * [K[0, 0], K[1, 1]] + K[:2, 2]


def test_square_crop_and_resize_keep_points_in_place():
    K = np.array([[4800.0, 0.0, 1230.5], [0.0, 4790.0, 1019.0], [0.0, 0.0, 1.0]])
    left, top, side = square_crop(2048, 2448)
    assert (left, top, side) == (200, 0, 2048)
    K_out = crop_resize_intrinsics(K, left, top, side, 512)
    points = np.random.default_rng(0).uniform(-0.1, 0.1, (20, 3)) + [0, 0, 1.0]
    full = _pixels(points, K, np.eye(4))
    expected = (full - [left, top] + 0.5) * (512 / side) - 0.5  # pixel centres of the 4x smaller image
    np.testing.assert_allclose(_pixels(points, K_out, np.eye(4)), expected, atol=1e-9)


def test_undistortion_inverts_the_lens():
    K = np.array([[120.0, 0.0, 100.0], [0.0, 120.0, 80.0], [0.0, 0.0, 1.0]])  # wide: the corners move pixels
    ideal = np.random.default_rng(1).uniform([10, 10], [190, 150], (50, 2))
    captured = distort((ideal - K[:2, 2]) / 120.0, D) * 120.0 + K[:2, 2]
    np.testing.assert_allclose(undistort_points(captured, K, D), ideal, atol=1e-6)
    # an image: a bright dot drawn where the lens puts an ideal pixel ends up at that pixel
    target = np.array([180.0, 140.0])
    seen = distort(((target - K[:2, 2]) / 120.0)[None], D)[0] * 120.0 + K[:2, 2]
    assert np.linalg.norm(seen - target) > 3.0
    rows, cols = np.mgrid[0:160, 0:200]
    image = (255 * np.exp(-((cols - seen[0]) ** 2 + (rows - seen[1]) ** 2) / 4.0)).astype(np.uint8)
    fixed = undistort_image(image, K, D).astype(np.float64)
    centre = np.array([(fixed * cols).sum(), (fixed * rows).sum()]) / fixed.sum()
    np.testing.assert_allclose(centre, target, atol=0.3)


def test_triangulation_drops_a_wrong_view():
    cams = [_look_at(np.array([np.sin(a), 0.1, np.cos(a)])) for a in np.deg2rad([-30, -10, 10, 30])]
    K = np.array([[1000.0, 0, 500], [0, 1000.0, 400], [0, 0, 1]])
    P = projection_matrices(np.repeat(K[None], 4, 0), np.stack(cams))
    points = np.random.default_rng(2).uniform(-0.08, 0.08, (10, 3))
    pixels = np.stack([_pixels(points, K, c) for c in cams])  # [C, N, 2]
    pixels[1, 3] += [50.0, -20.0]  # a mislabelled keypoint in one view
    valid = np.ones((4, 10), bool)
    valid[1:, 7] = False  # seen once: cannot be placed
    out = triangulate(pixels, valid, P, max_error_px=5.0)
    assert np.isnan(out[7]).all()
    np.testing.assert_allclose(np.delete(out, 7, 0), np.delete(points, 7, 0), atol=1e-6)


def _fits(flame, shape, rotations, expr, transl, verts) -> FlameFits:
    T = len(rotations)
    return FlameFits("0297_e0_anno.smc", list(range(T)), np.repeat(shape[None], T, 0), expr, rotations, transl,
                     verts)


def test_fits_in_another_convention_are_converted(flame):
    """A file whose global pose turns about the origin (not FLAME's root joint) still lands on its vertices."""
    rng = np.random.default_rng(3)
    shape, expr = rng.normal(0, 0.5, 100).astype(np.float32), rng.normal(0, 0.5, (3, 50)).astype(np.float32)
    rotations = np.zeros((3, 5, 3), np.float32)
    rotations[:, 0] = rng.normal(0, 0.3, (3, 3))
    rotations[:, 2, 0] = 0.2
    transl = rng.normal(0, 0.1, (3, 3)).astype(np.float32)
    local = rotations.copy()
    local[:, 0] = 0.0
    with torch.no_grad():
        unposed = flame(shape=torch.from_numpy(shape)[None], expr=torch.from_numpy(expr),
                        rotations=torch.from_numpy(local)).verts.double().numpy()
    R = Rotation.from_rotvec(rotations[:, 0]).as_matrix()
    verts = np.einsum("tij,tvj->tvi", R, unposed) + transl[:, None]  # rotate about the origin, then move
    converted = to_collection(flame, shape, _fits(flame, shape, rotations, expr, transl, verts))
    assert converted.error_mm.max() < 0.01
    np.testing.assert_allclose(converted.rotations[:, 0], rotations[:, 0], atol=1e-5)  # same rotation
    with pytest.raises(RenderMeError, match="1.100 x the head model's size"):
        to_collection(flame, shape, _fits(flame, shape, rotations, expr, transl, verts * 1.1))
    with pytest.raises(RenderMeError, match="have 5023 vertices but the head model procedural:0 has 4992"):
        to_collection(flame, shape, _fits(flame, shape, rotations, expr, transl, np.zeros((3, 5023, 3))))


def _motion(T: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rotations = np.zeros((T, 5, 3), np.float32)
    rotations[:, 0] = rng.normal(0, 0.25, (T, 3))
    rotations[:, 2, 0] = rng.uniform(0, 0.25, T)
    expr = np.zeros((T, 50), np.float32)
    expr[:, :10] = rng.normal(0, 0.6, (T, 10))
    transl = (rng.normal(0, 0.01, (T, 3)) + [0.03, -0.05, 0.12]).astype(np.float32)
    return rotations, expr, transl


def test_keypoints_are_embedded_and_fitted(flame):
    """Embedding learned on fitted frames (with an outlier), then a new sequence fitted from its keypoints."""
    rng = np.random.default_rng(4)
    shape = torch.from_numpy(rng.normal(0, 0.5, 100).astype(np.float32))[None]
    lmk = flame.landmarks_dense
    with torch.no_grad():
        neutral = flame(shape=shape).verts[0].double().numpy()
        rotations, expr, transl = (torch.from_numpy(a) for a in _motion(8, rng))
        seen = flame(shape=shape, expr=expr, rotations=rotations, transl=transl).verts
    keypoints = points_on_mesh(seen, flame.faces, lmk.face_idx, lmk.bary).double().numpy()
    keypoints[2, 5] += [0.0, 0.0, 0.05]  # a 5 cm blunder in one frame
    keypoints[3, 6] = np.nan  # and a missing one
    emb = learn_embedding(neutral, flame.faces.numpy(), seen.double().numpy(), keypoints)
    assert emb.used.all() and np.nanmax(emb.spread_mm) < 0.05
    np.testing.assert_allclose(
        points_on_mesh(torch.from_numpy(neutral)[None], flame.faces, torch.from_numpy(emb.face_idx),
                       torch.from_numpy(emb.bary))[0].numpy(),
        points_on_mesh(torch.from_numpy(neutral)[None], flame.faces, lmk.face_idx, lmk.bary.double())[0].numpy(),
        atol=1e-5)

    rotations, expr, transl = _motion(5, rng)
    with torch.no_grad():
        truth = flame(shape=shape, expr=torch.from_numpy(expr), rotations=torch.from_numpy(rotations),
                      transl=torch.from_numpy(transl)).verts
    points = points_on_mesh(truth, flame.faces, lmk.face_idx, lmk.bary).double().numpy()
    cams = np.stack([_look_at(np.array([np.sin(a), 0.0, np.cos(a)])) for a in np.deg2rad([-20, 0, 20])])
    K = np.repeat(np.array([[[4700.0, 0, 1224], [0, 4700.0, 1024], [0, 0, 1]]]), 3, 0)
    pixels = np.stack([np.stack([_pixels(p, K[c], cams[c]) for c in range(3)]) for p in points])  # [T, C, K, 2]
    obs = KeypointObservations(points, pixels, K, cams, 512 / 2048)
    fit = fit_keypoints(flame, shape[0].numpy(), emb, emb, obs, KeypointFitConfig())
    with torch.no_grad():
        fitted = flame(shape=shape, expr=torch.from_numpy(fit.expr), rotations=torch.from_numpy(fit.rotations),
                       transl=torch.from_numpy(fit.transl)).verts
    error_mm = 1e3 * (fitted - truth).norm(dim=-1)
    assert error_mm.mean(1).max() < 2.0 and np.nanmax(fit.error_3d_mm) < 1.5
