"""`python -m pav.experiments protocol=a|b [data=synthetic budget=smoke|demo|paper out=results root=DIR steps=0
eval_size=0 eval_views=0 device=auto overrides=[key=value,...]]`."""

from __future__ import annotations

from ..common.cli import parse_overrides
from ..evaluate import EvaluateError
from .protocol import ExperimentsConfig, ExperimentsError, run_protocol


def main(argv=None) -> None:
    cfg = parse_overrides(ExperimentsConfig, argv, prog="python -m pav.experiments")
    try:
        run_protocol(cfg)
    except (ExperimentsError, EvaluateError) as err:
        raise SystemExit(f"python -m pav.experiments: {err}") from None


if __name__ == "__main__":
    main()
