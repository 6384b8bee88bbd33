"""One browser tab's controls and what they currently ask for.

Every tab gets its own panel (appearance, jaw, expressions, head rotation, playback, resolution) and its own
camera; the render loop reads `Panel.wanted()` and never touches viser's widgets itself.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import viser

from .avatar import ViewerAvatar
from .camera import BrowserCamera
from .pose import ANGLE_LIMIT_DEG, EXPR_LIMIT, JAW_MAX_RAD, N_EXPR_SLIDERS, PanelPose

RESOLUTION_RANGE = (32, 1024)
RESOLUTION_STEP = 32


@dataclass(frozen=True)
class Wanted:
    """Everything one image depends on."""

    camera: BrowserCamera
    appearance: int
    pose: PanelPose
    sequence: str | None  # the sequence playing, None when still
    t: int  # its frame
    height: int  # rows of the refined image


def expr_label(i: int, names: list[str]) -> str:
    return f"expr {i} ({names[i]})" if i < len(names) and names[i] else f"expr {i}"


class Panel:
    """The controls of one client and the time of its last input (camera or control)."""

    def __init__(self, client: viser.ClientHandle, avatar: ViewerAvatar, height: int, fps: float,
                 on_input) -> None:
        self.client = client
        self.fps = fps
        self._on_input = on_input
        self._lock = threading.Lock()
        self._camera: BrowserCamera | None = None
        self._play_start: float | None = None
        self.input_at = time.monotonic()  # the last change a user made
        gui = client.gui
        self.appearance = gui.add_dropdown("Appearance", tuple(avatar.names), initial_value=avatar.names[0])
        with gui.add_folder("Expression"):
            self.jaw = gui.add_slider("jaw", 0.0, JAW_MAX_RAD, 0.01, 0.0)
            self.expr = [gui.add_slider(expr_label(i, avatar.expr_names), -EXPR_LIMIT, EXPR_LIMIT, 0.05, 0.0)
                         for i in range(min(N_EXPR_SLIDERS, avatar.n_expr))]
        with gui.add_folder("Head"):
            self.angles = [gui.add_slider(name, -ANGLE_LIMIT_DEG, ANGLE_LIMIT_DEG, 1.0, 0.0)
                           for name in ("yaw", "pitch", "roll")]
            self.reset = gui.add_button("Reset pose")
        with gui.add_folder("Play"):
            names = tuple(avatar.sequences) or ("(no collection)",)
            self.sequence = gui.add_dropdown("sequence", names, initial_value=names[0],
                                             disabled=not avatar.sequences)
            self.play = gui.add_button("Play", disabled=not avatar.sequences)
        self.resolution = gui.add_slider("Resolution", *RESOLUTION_RANGE, RESOLUTION_STEP, height)
        self.status = gui.add_markdown("waiting for the first image")
        self._names = list(avatar.names)
        self._sequence_lengths = {name: len(s) for name, s in avatar.sequences.items()}
        for handle in (self.appearance, self.jaw, *self.expr, *self.angles, self.sequence, self.resolution):
            handle.on_update(lambda _: self._touched())
        self.reset.on_click(lambda _: self._reset_pose())
        self.play.on_click(lambda _: self._toggle_play())
        client.camera.on_update(self._camera_moved)
        # viser connects a tab on its first camera message, before this callback exists: take that camera too
        self._camera_moved(client.camera)

    def _touched(self) -> None:
        self.input_at = time.monotonic()
        self._on_input()

    def _camera_moved(self, camera: viser.CameraHandle) -> None:
        if camera.image_width <= 0 or camera.image_height <= 0 or not 0.0 < camera.fov < math.pi:
            return  # a hidden or closing canvas: nothing to draw for it
        seen = BrowserCamera(tuple(float(v) for v in camera.wxyz), tuple(float(v) for v in camera.position),
                             float(camera.fov), float(camera.aspect))
        if not all(math.isfinite(v) for v in (*seen.wxyz, *seen.position)):
            return  # NaN never equals itself: such a view would be redrawn forever
        with self._lock:
            self._camera = seen
        self._touched()

    def _reset_pose(self) -> None:
        with self.client.atomic():
            for handle in (self.jaw, *self.expr, *self.angles):
                handle.value = 0.0
        self._touched()

    def _toggle_play(self) -> None:
        with self._lock:
            self._play_start = None if self._play_start is not None else time.monotonic()
            playing = self._play_start is not None
        self.play.label = "Pause" if playing else "Play"
        self._touched()

    @property
    def playing(self) -> bool:
        return self._play_start is not None

    def wanted(self, now: float) -> Wanted | None:
        """What the tab shows now; None before its browser reported a camera."""
        with self._lock:
            camera, play_start = self._camera, self._play_start
        if camera is None:
            return None
        pose = PanelPose(float(self.jaw.value), tuple(float(s.value) for s in self.expr)
                         + (0.0,) * (N_EXPR_SLIDERS - len(self.expr)),
                         *(float(a.value) for a in self.angles))
        sequence, t = None, 0
        if play_start is not None:
            sequence = self.sequence.value
            t = int((now - play_start) * self.fps) % self._sequence_lengths[sequence]
        return Wanted(camera, self._names.index(self.appearance.value), pose, sequence, t,
                      int(self.resolution.value))
