"""Viewer latency: `python bench/viewer.py [ckpt=PATH collection=DIR switches=4 size=256 preview=64 device=auto
screenshot=PATH]`.

Serves the avatar, opens it in headless Chromium and switches the appearance through the panel `switches` times.
Prints a table per switch: the server's preview render, click to the new image on screen (what a user waits for),
and click to the refined image on screen; then the playback rate of a sequence at the preview size. Without
`ckpt` it first trains a tiny checkpoint (bench/render.py's) and says so. `screenshot=` saves the settled view
(the README's picture).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from render import describe, train_tiny

from pav.common.cli import parse_overrides
from pav.viewer.avatar import load_viewer_avatar
from pav.viewer.headless import headless_chromium
from pav.viewer.server import Viewer, ViewerConfig

SCREENSHOT_WIDTH = 800  # pixels of the saved picture (the tab is 1000 CSS pixels wide)


@dataclass
class BenchConfig:
    ckpt: str = ""  # default: a tiny checkpoint trained here first
    collection: str = ""
    switches: int = 4
    size: int = 256  # rows of the refined image
    preview: int = 64
    device: str = "auto"
    play_seconds: float = 5.0
    screenshot: str = ""
    shot_appearance: str = ""  # the appearance the screenshot shows; default: the last one switched to


def wait_refined(viewer: Viewer, appearance: int, after: int, timeout: float = 600.0) -> float:
    """Seconds until a refined image of `appearance` sent after history index `after` is on the server's record."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if any(s.refined and s.wanted.appearance == appearance for s in viewer.history[after:]):
            return time.monotonic() - start
        time.sleep(0.02)
    raise TimeoutError("no refined image")


def main(argv=None) -> None:
    cfg = parse_overrides(BenchConfig, argv, prog="python bench/viewer.py")
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(cfg.ckpt) if cfg.ckpt else train_tiny(Path(tmp))
        print(f"# viewer latency: {describe(ckpt, not cfg.ckpt)}")
        avatar = load_viewer_avatar(str(ckpt), cfg.device, collection=cfg.collection)
        viewer = Viewer(avatar, ViewerConfig(ckpt=str(ckpt), port=0, size=cfg.size, preview=cfg.preview,
                                             device=cfg.device))
        try:
            with headless_chromium() as browser:
                tab = browser.open(viewer.url)
                if not viewer.wait_idle(600):
                    raise SystemExit("the first view was never refined")
                time.sleep(0.5)
                tab.dismiss_notices()
                print(f"device {avatar.device.type}, tab 1000x700, refined {cfg.size} rows, preview {cfg.preview}")
                print("| switch to | preview render | input -> image sent (server) | click -> new image on screen "
                      "| click -> refined on screen |")
                print("|---|---|---|---|---|")
                on_screen, renders = [], []
                for i in range(cfg.switches):
                    target = (i + 1) % len(avatar.names)
                    before, sent = tab.scene(), len(viewer.history)
                    clicked = time.monotonic()
                    tab.choose("Appearance", avatar.names[target])
                    _, waited = tab.wait_for_change(before, timeout=600, threshold=0.5)
                    seen = time.monotonic() - clicked
                    wait_refined(viewer, target, sent)
                    time.sleep(0.3)  # the refined image reaches the canvas
                    refined = time.monotonic() - clicked - 0.3
                    preview = next(s for s in viewer.history[sent:] if s.wanted.appearance == target)
                    on_screen.append(seen)
                    renders.append(preview.seconds)
                    print(f"| {avatar.names[target]} | {preview.seconds:.2f} s ({preview.width}x{preview.height}) "
                          f"| {preview.latency:.2f} s | {seen:.2f} s | {refined:.2f} s |")
                print(f"median: preview render {statistics.median(renders):.2f} s, "
                      f"click -> new image {statistics.median(on_screen):.2f} s")
                if cfg.screenshot:
                    if cfg.shot_appearance:
                        sent = len(viewer.history)
                        tab.choose("Appearance", cfg.shot_appearance)
                        wait_refined(viewer, avatar.names.index(cfg.shot_appearance), sent)
                        time.sleep(0.5)
                    Path(cfg.screenshot).parent.mkdir(parents=True, exist_ok=True)
                    shot = Image.fromarray(tab.screenshot())
                    shot = shot.resize((SCREENSHOT_WIDTH, round(shot.height * SCREENSHOT_WIDTH / shot.width)),
                                       Image.LANCZOS)
                    shot.quantize(256).save(cfg.screenshot, optimize=True)  # a palette keeps the PNG small
                    print(f"screenshot -> {cfg.screenshot}")
                if avatar.sequences:
                    sent = len(viewer.history)
                    tab.click("Play")
                    time.sleep(cfg.play_seconds)
                    tab.click("Pause")
                    played = [s for s in viewer.history[sent:] if s.wanted.sequence]
                    print(f"playback: {len(played) / cfg.play_seconds:.2f} images/s at the preview size "
                          f"({len({s.wanted.t for s in played})} distinct frames in {cfg.play_seconds:.0f} s)")
        finally:
            viewer.stop()


if __name__ == "__main__":
    main()
