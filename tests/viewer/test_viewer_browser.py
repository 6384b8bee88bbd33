"""The viewer driven by headless Chromium: the canvas shows the avatar, the appearance control changes it, several
tabs are served at once, and Play animates it without starving other tabs."""

import time

import numpy as np
import pytest
from PIL import Image

from pav.viewer.avatar import load_viewer_avatar
from pav.viewer.headless import headless_chromium, unavailable_reason
from pav.viewer.server import Viewer, ViewerConfig

pytestmark = pytest.mark.skipif(unavailable_reason() is not None,
                                reason=f"browser test: {unavailable_reason()}")


def darkened(scene: np.ndarray) -> float:
    """Fraction of the scene that is not the white background."""
    return float((scene < 200).any(axis=-1).mean())


@pytest.fixture(scope="module")
def viewer(contrasting_avatar):
    avatar = contrasting_avatar
    loaded = load_viewer_avatar(str(avatar.ckpt), "cpu", collection=str(avatar.collection))
    served = Viewer(loaded, ViewerConfig(ckpt=str(avatar.ckpt), port=0, size=96, preview=32, settle=0.1, fps=500))
    yield served
    served.stop()


@pytest.fixture(scope="module")
def browser():
    with headless_chromium() as chromium:
        yield chromium


def test_the_canvas_shows_the_avatar_and_the_appearance_control_changes_it(viewer, browser, tmp_path):
    tab = browser.open(viewer.url)
    assert viewer.wait_idle(60), viewer.pending()
    time.sleep(0.3)  # the image reaches the canvas after it leaves the server
    tab.dismiss_notices()
    Image.fromarray(tab.screenshot()).save(tmp_path / "viewer.png")
    before = tab.scene()
    assert darkened(before) > 0.05, "the canvas is blank"
    tab.choose("Appearance", "long_auburn")
    after, _ = tab.wait_for_change(before, timeout=30)
    assert viewer.wait_idle(60), viewer.pending()
    shown = viewer.history[-1]
    assert shown.wanted.appearance == 1 and shown.refined
    assert (shown.height, shown.width) == (96, round(96 * 1000 / 700))
    time.sleep(0.3)
    refined = tab.scene()
    assert np.abs(refined.astype(int) - before).mean() > 1.0
    tab.page.close()


def test_a_tab_whose_controls_are_built_late_is_still_served(contrasting_avatar, browser, monkeypatch):
    """viser reports a tab's first camera before the tab's controls exist; a browser that then keeps still sends no
    other, and the tab must not wait for one forever."""
    import pav.viewer.server as server

    class SlowPanel(server.Panel):
        def __init__(self, *args, **kwargs):
            time.sleep(2.0)  # a busy machine: every camera message of the page load arrives meanwhile
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(server, "Panel", SlowPanel)
    loaded = load_viewer_avatar(str(contrasting_avatar.ckpt), "cpu", collection=str(contrasting_avatar.collection))
    slow = Viewer(loaded, ViewerConfig(ckpt=str(contrasting_avatar.ckpt), port=0, size=48, preview=24, settle=0.1))
    try:
        tab = browser.open(slow.url)
        assert slow.wait_idle(60), slow.pending()
        assert slow.history[-1].refined
        tab.page.close()
    finally:
        slow.stop()


def test_two_tabs_are_served_each_with_its_own_appearance(viewer, browser):
    tabs = [browser.open(viewer.url), browser.open(viewer.url)]
    assert viewer.wait_idle(60), viewer.pending()
    tabs[1].choose("Appearance", "long_auburn")
    time.sleep(0.2)
    assert viewer.wait_idle(60), viewer.pending()
    latest = {s.client_id: s for s in viewer.history}
    shown = [latest[c].wanted.appearance for c in sorted(latest)[-2:]]
    assert shown == [0, 1]
    for tab in tabs:
        tab.page.close()


def test_play_animates_the_avatar_with_a_sequence(viewer, browser):
    tab = browser.open(viewer.url)
    assert viewer.wait_idle(60), viewer.pending()
    client = viewer.history[-1].client_id
    sent = len(viewer.history)
    tab.click("Play")
    played: set[int] = set()
    deadline = time.monotonic() + 60  # a busy machine renders fewer frames per second, never none
    while len(played) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
        played = {s.wanted.t for s in viewer.shown_since(sent) if s.client_id == client and s.wanted.sequence}
    assert len(played) >= 3, f"frames played: {sorted(played)}"
    # at 500 frames/s the playing tab always wants a new frame: a tab opened meanwhile must still be served
    other = browser.open(viewer.url)
    other.choose("Appearance", "long_auburn")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(s.client_id != client and s.wanted.appearance == 1
                                                  for s in viewer.shown_since(sent)):
        time.sleep(0.1)
    assert any(s.client_id != client and s.wanted.appearance == 1 for s in viewer.shown_since(sent)), \
        "the playing tab starved the other one"
    tab.click("Pause")
    assert viewer.wait_idle(60), viewer.pending()
    tab.page.close()
    other.page.close()
