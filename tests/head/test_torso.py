"""The head-and-neck region that pav models, and the torso pixels it leaves unknown."""

import numpy as np
import pytest

from pav.head.torso import TorsoCut, modelled_region, torso_pixels


def _person(shape=(200, 200)):
    """A matte of a head (disc), a neck (bar) and shoulders (a wide block below)."""
    v, u = np.mgrid[: shape[0], : shape[1]]
    head = (u - 100) ** 2 + (v - 60) ** 2 < 40 ** 2
    neck = (abs(u - 100) < 15) & (v < 150)
    shoulders = (v > 130) & (abs(u - 100) < 95)
    return ((head | neck | shoulders) * 255).astype(np.uint8)


def test_shoulders_are_torso_and_head_and_neck_are_not():
    alpha = _person()
    chin, brow = np.array([100.0, 100.0]), np.array([100.0, 50.0])  # face height 50 px
    torso = torso_pixels(alpha, chin, brow, TorsoCut())
    assert torso[140, 20] and torso[140, 180], "the shoulders beside the neck are torso"
    assert torso[195, 100], "below the neck's end is torso everywhere"
    assert not torso[60, 100] and not torso[110, 100] and not torso[140, 100], "head and neck are modelled"
    assert not torso[10, 10] and not torso[120, 5], "background is never torso"


def test_the_cut_turns_with_the_face():
    chin, brow = np.array([100.0, 100.0]), np.array([100.0, 50.0])
    upright = modelled_region((200, 200), chin, brow, TorsoCut())
    # the same face rolled by 90 degrees: its axis points right, so the region turns with it
    rolled = modelled_region((200, 200), np.array([100.0, 100.0]), np.array([50.0, 100.0]), TorsoCut())
    assert np.array_equal(rolled, upright.T)
    assert upright[140, 100] and not upright[140, 20] and upright[110, 20]


def test_degenerate_face_points_are_refused():
    with pytest.raises(ValueError, match="do not span a face"):
        modelled_region((10, 10), np.array([5.0, 5.0]), np.array([5.0, 5.0]), TorsoCut())
    with pytest.raises(ValueError, match="shoulder <= neck_end"):
        TorsoCut(shoulder=1.5, neck_end=1.0)
