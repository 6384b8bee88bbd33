"""The viser server and its render loop.

One thread renders for every connected tab in turn: of the tabs that need an image, the one served longest ago
goes first, so a playing tab cannot starve the others. A change (camera, control,
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

HISTORY_LIMIT = 100_000  # image records kept (a few hundred bytes each)


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


class SendFailed(RuntimeError):
    """The image was rendered but could not be handed to the browser's connection."""


class Viewer:
    """Serves an avatar to browsers; `stop()` ends the render loop and the server."""

    def __init__(self, avatar: ViewerAvatar, cfg: ViewerConfig) -> None:
        self.avatar = avatar
        self.cfg = cfg
        self.size = cfg.size or (512 if avatar.device.type == "cuda" else 256)
        self.history: list[Shown] = []  # images sent, oldest first (the last HISTORY_LIMIT at most)
        self._panels: dict[int, Panel] = {}
        self._last: dict[int, Shown] = {}
        self._served_at: dict[int, float] = {}  # when each tab last got an image (or a failed try)
        self._failed: dict[int, Wanted] = {}  # a view whose render raised is not retried until the tab changes
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
            self._failed.pop(client.client_id, None)
            self._served_at.pop(client.client_id, None)

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=30)
        self.server.stop()

    def pending(self) -> list[str]:
        """What keeps each tab from being idle (empty when every tab shows its current view refined)."""
        now = time.monotonic()
        with self._lock:
            panels = dict(self._panels)
            last = dict(self._last)
        if not panels:
            return ["no tab is connected"]
        waiting = []
        for client_id, panel in panels.items():
            wanted, shown = panel.wanted(now), last.get(client_id)
            if wanted is None:
                waiting.append(f"tab {client_id}: no camera reported yet")
            elif self._failed.get(client_id) == wanted:
                waiting.append(f"tab {client_id}: its view failed to render")
            elif panel.playing:
                waiting.append(f"tab {client_id}: playing")
            elif shown is None or shown.wanted != wanted:
                waiting.append(f"tab {client_id}: its current view has not been sent")
            elif not shown.refined:
                waiting.append(f"tab {client_id}: sent at {shown.height} of {wanted.height} rows")
        return waiting

    def idle(self) -> bool:
        """At least one tab is connected, and every tab shows its current view refined (none is playing)."""
        return not self.pending()

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle():
                return True
            time.sleep(0.05)
        return False

    def shown_since(self, start: int = 0) -> list[Shown]:
        """A copy of the images sent from `start` on (an index into `history`), taken under the lock."""
        with self._lock:
            return list(self.history[start:])

    def _next_job(self, now: float) -> tuple[Panel, Wanted, int] | None:
        """The tab served longest ago among those needing an image and the height it gets; None when every tab
        is up to date."""
        with self._lock:
            panels = sorted(self._panels.values(), key=lambda p: self._served_at.get(p.client.client_id, 0.0))
            last = dict(self._last)
            failed = dict(self._failed)
        for panel in panels:
            wanted = panel.wanted(now)
            if wanted is None or failed.get(panel.client.client_id) == wanted:
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
            panel, wanted, height = job
            with self._lock:
                self._served_at[panel.client.client_id] = time.monotonic()
            try:
                self._render(panel, wanted, height)
            except SendFailed as err:  # not the view's fault: it is rendered again on the next turn
                print(f"pav.viewer: sending to tab {panel.client.client_id} failed ({err}); retrying", flush=True)
            except Exception as err:  # noqa: BLE001 - one tab's bad view must not stop the others
                traceback.print_exc()
                with self._lock:
                    self._failed[panel.client.client_id] = wanted
                panel.status.content = f"render failed: {err}"

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
        try:
            panel.client.scene.set_background_image(image, format="jpeg", jpeg_quality=self.cfg.jpeg_quality)
        except RuntimeError as err:  # the server's client tables changed mid-send (a tab opened): try again
            raise SendFailed(str(err)) from err
        sent = time.monotonic()
        shown = Shown(panel.client.client_id, wanted, image.shape[0], image.shape[1], sent - start,
                      sent - panel.input_at, sent)
        panel.status.content = (f"{'refined' if shown.refined else 'preview'} {shown.width}×{shown.height} "
                                f"in {shown.seconds:.2f} s")
        with self._lock:
            if panel.client.client_id in self._panels:
                self._last[panel.client.client_id] = shown
            self.history.append(shown)
            if len(self.history) > HISTORY_LIMIT:  # hours of playback: keep the recent half
                del self.history[:HISTORY_LIMIT // 2]
