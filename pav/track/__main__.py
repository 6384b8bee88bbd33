"""`python -m pav.track collection=DIR [head_model=PATH uv_layout=PATH landmark_embedding=PATH device=auto ...]`."""

from __future__ import annotations

from ..common.cli import parse_overrides
from .inputs import TrackingInputError
from .pipeline import TrackConfig, TrackConfigError, track


def main(argv=None) -> None:
    cfg = parse_overrides(TrackConfig, argv, prog="python -m pav.track")
    try:
        track(cfg)
    except (TrackConfigError, TrackingInputError) as err:
        raise SystemExit(f"python -m pav.track: {err}") from None


if __name__ == "__main__":
    main()
