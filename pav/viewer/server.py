"""The viser server and its render loop.

One thread renders for every connected tab in turn, the tab waiting longest first. A change (camera, control,
the next frame of a playing sequence) is answered with a small preview image at once; once nothing has changed for
`settle` seconds the view is rendered again at twice the rows, and again, up to the tab's resolution. A refinement
is dropped between chunks of rays as soon as the user moves again.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass

import viser
from omegaconf import MISSING

from .avatar import ViewerAvatar
from .panel import Panel, Wanted


@dataclass
class ViewerConfig:
    ckpt: str = MISSING
    port: int = 8080
    host: str = "127.0.0.1"
    size: int = 0  # rows of a refined image at the start (the panel changes it); 0: 512 on CUDA, 256 on CPU
    preview: int = 64  # rows of the image shown while something changes
    settle: float = 0.3  # seconds without change before the view is refined
    fps: float = 25.0  # playback rate of a sequence
    jpeg_quality: int = 90
    device: str = "auto"  # auto | cpu | cuda
    chunk: int = 0  # rays per forward pass; 0: 65536 on CUDA, 4096 on CPU
    collection: str = ""  # where the sequences are read; default: the checkpoint's data.root
    head_model: str = ""  # default: the checkpoint's


@dataclass(frozen=True)
class Shown:
    """An image a tab received."""

    client_id: int
    wanted: Wanted
    height: int  # rows rendered
    width: int
    seconds: float  # rendering it
    latency: float  # from the user's last change to the image leaving the server
    sent_at: float  # time.monotonic()

    @property
    def refined(self) -> bool:
        return self.height >= self.wanted.height


class Viewer:
    """Serves an avatar to browsers; `stop()` ends the render loop and the server."""

    def __init__(self, avatar: ViewerAvatar, cfg: ViewerConfig) -> None:
        self.avatar = avatar
        self.cfg = cfg
        self.size = cfg.size or (512 if avatar.device.type == "cuda" else 256)
        self.history: list[Shown] = []  # every image sent, oldest first
        self._panels: dict[int, Panel] = {}
        self._last: dict[int, Shown] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self.server = viser.ViserServer(host=cfg.host, port=cfg.port, label="pav", verbose=False)
        self.server.scene.set_up_direction("+y")
        start = avatar.start
        self.server.initial_camera.position = tuple(start.position)
        self.server.initial_camera.look_at = tuple(start.look_at)
        self.server.initial_camera.up = (0.0, 1.0, 0.0)
        self.server.initial_camera.fov = start.fov
        self.server.on_client_connect(self._connect)
        self.server.on_client_disconnect(self._disconnect)
        self._thread = threading.Thread(target=self._loop, name="pav-viewer-render", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.cfg.host}:{self.server.get_port()}"

    def _connect(self, client: viser.ClientHandle) -> None:
        panel = Panel(client, self.avatar, self.size, self.cfg.fps, self._wake.set)
        with self._lock:
            self._panels[client.client_id] = panel
        self._wake.set()

    def _disconnect(self, client: viser.ClientHandle) -> None:
        with self._lock:
            self._panels.pop(client.client_id, None)
            self._last.pop(client.client_id, None)

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=30)
        self.server.stop()

    def idle(self) -> bool:
        """At least one tab is connected, and every tab shows its current view refined (none is playing)."""
        now = time.monotonic()
        with self._lock:
            panels = dict(self._panels)
            last = dict(self._last)
        if not panels:
            return False
        for client_id, panel in panels.items():
            wanted = panel.wanted(now)
            shown = last.get(client_id)
            if wanted is None or panel.playing or shown is None or shown.wanted != wanted or not shown.refined:
                return False
        return True

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle():
                return True
            time.sleep(0.05)
        return False

    def _next_job(self, now: float) -> tuple[Panel, Wanted, int] | None:
        """The tab waiting longest and the image height it gets, or None when every tab is up to date."""
        with self._lock:
            panels = sorted(self._panels.values(), key=lambda p: p.input_at)
            last = dict(self._last)
        for panel in panels:
            wanted = panel.wanted(now)
            if wanted is None:
                continue
            shown = last.get(panel.client.client_id)
            preview = min(self.cfg.preview, wanted.height)
            if shown is None or shown.wanted != wanted:
                return panel, wanted, preview
            settled = now - panel.input_at >= self.cfg.settle and not panel.playing
            if not shown.refined and settled:  # doubling: a sharper image soon, the full one later
                return panel, wanted, min(2 * shown.height, wanted.height)
        return None

    def _loop(self) -> None:
        while not self._stopping:
            job = self._next_job(time.monotonic())
            if job is None:
                self._wake.wait(timeout=self.cfg.settle / 4)
                self._wake.clear()
                continue
            try:
                self._render(*job)
            except Exception:  # noqa: BLE001 - one bad frame must not end the viewer for every tab
                traceback.print_exc()
                time.sleep(0.5)

    def _render(self, panel: Panel, wanted: Wanted, height: int) -> None:
        start = time.monotonic()
        frame = self.avatar.frame(wanted.pose, wanted.appearance, wanted.sequence, wanted.t)
        refining = height > min(self.cfg.preview, wanted.height)
        # a refinement gives way to any new input; a preview always finishes, so moving never goes blank
        stop = (lambda: panel.wanted(time.monotonic()) != wanted) if refining else None
        image = self.avatar.render(frame, wanted.camera, height, stop)
        with self._lock:
            gone = panel.client.client_id not in self._panels
        if image is None or gone:  # given way to new input, or the tab closed while it rendered
            return
        panel.client.scene.set_background_image(image, format="jpeg", jpeg_quality=self.cfg.jpeg_quality)
        sent = time.monotonic()
        shown = Shown(panel.client.client_id, wanted, image.shape[0], image.shape[1], sent - start,
                      sent - panel.input_at, sent)
        panel.status.content = (f"{'refined' if shown.refined else 'preview'} {shown.width}×{shown.height} "
                                f"in {shown.seconds:.2f} s")
        with self._lock:
            if panel.client.client_id in self._panels:
                self._last[panel.client.client_id] = shown
            self.history.append(shown)
