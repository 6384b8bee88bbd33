"""`python -m pav.track collection=DIR [head_model=PATH uv_layout=PATH landmark_embedding=PATH ...]`."""

from __future__ import annotations

from ..config import parse_overrides
from .pipeline import TrackConfig, track


def main(argv=None) -> None:
    track(parse_overrides(TrackConfig, argv, prog="python -m pav.track"))


if __name__ == "__main__":
    main()
