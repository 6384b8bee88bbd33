"""`python -m pav.viewer ckpt=PATH [port=8080 host=127.0.0.1 size=0 preview=64 settle=0.3 fps=25 device=auto
chunk=0 collection=DIR head_model=PATH]`: serves the avatar to browsers until Ctrl-C."""

from __future__ import annotations

import time

from ..common.cli import parse_overrides
from ..render.job import RenderError
from .avatar import load_viewer_avatar
from .server import Viewer, ViewerConfig


def main(argv=None) -> None:
    cfg = parse_overrides(ViewerConfig, argv, prog="python -m pav.viewer")
    try:
        avatar = load_viewer_avatar(cfg.ckpt, cfg.device, cfg.chunk, cfg.collection, cfg.head_model)
    except RenderError as err:
        raise SystemExit(f"python -m pav.viewer: {err}") from None
    viewer = Viewer(avatar, cfg)
    if cfg.port and viewer.server.get_port() != cfg.port:
        print(f"[pav] port {cfg.port} is taken; serving on {viewer.server.get_port()}")
    print(f"[pav] viewer of {cfg.ckpt} ({', '.join(avatar.names)}) on {viewer.url} - Ctrl-C stops it")
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        viewer.stop()


if __name__ == "__main__":
    main()
