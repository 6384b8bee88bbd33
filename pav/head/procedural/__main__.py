"""`python -m pav.head.procedural out=FILE seed=0`: write the procedural head as a FLAME-format pickle."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from ...common.cli import parse_overrides
from . import write_head_model


@dataclass
class ProceduralHeadConfig:
    out: str = MISSING
    seed: int = 0


def main(argv=None) -> None:
    cfg = parse_overrides(ProceduralHeadConfig, argv, prog="python -m pav.head.procedural")
    path = write_head_model(cfg.out, cfg.seed)
    print(f"wrote procedural head (seed {cfg.seed}) to {path}")


if __name__ == "__main__":
    main()
