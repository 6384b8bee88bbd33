"""`python -m pav.render ckpt=PATH appearance=NAME|all drive=APPEARANCE|FILE|turntable|expressions out=VIDEO.mp4
[camera=source|front|orbit size=512 fps=25 frames_dir=DIR max_frames=0 chunk=0 device=auto collection=DIR]`."""

from __future__ import annotations

from ..common.cli import parse_overrides
from .drive import DriveError
from .job import RenderError, RenderVideoConfig
from .video import render_video


def main(argv=None) -> None:
    cfg = parse_overrides(RenderVideoConfig, argv, prog="python -m pav.render")
    try:
        render_video(cfg)
    except (RenderError, DriveError) as err:
        raise SystemExit(f"python -m pav.render: {err}") from None


if __name__ == "__main__":
    main()
