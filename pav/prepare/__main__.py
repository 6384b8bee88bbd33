"""`python -m pav.prepare videos=DIR out=DIR [frames_per_video=500 size=512 crop_scale=2.2 ...]`."""

from __future__ import annotations

from ..common.cli import parse_overrides
from .pipeline import PrepareConfig, PrepareError, prepare


def main(argv=None) -> None:
    cfg = parse_overrides(PrepareConfig, argv, prog="python -m pav.prepare")
    try:
        prepare(cfg)
    except PrepareError as err:
        raise SystemExit(f"python -m pav.prepare: {err}") from None


if __name__ == "__main__":
    main()
