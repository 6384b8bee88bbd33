"""`python -m pav.synthetic out=DIR [appearances=5 frames=100 size=256 seed=0 workers=2 cross=true]`."""

from __future__ import annotations

from ..common.cli import parse_overrides
from .generate import SyntheticConfig, generate


def main(argv=None) -> None:
    cfg = parse_overrides(SyntheticConfig, argv, prog="python -m pav.synthetic")
    generate(cfg)


if __name__ == "__main__":
    main()
