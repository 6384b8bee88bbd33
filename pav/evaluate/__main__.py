"""`python -m pav.evaluate ckpt=PATH [split=test|cross out=DIR size=0 views=0 collection=DIR head_model=PATH
device=auto chunk=0 progress=true]`."""

from __future__ import annotations

from ..common.cli import parse_overrides
from .job import EvaluateConfig, EvaluateError
from .run import evaluate


def main(argv=None) -> None:
    cfg = parse_overrides(EvaluateConfig, argv, prog="python -m pav.evaluate")
    try:
        evaluate(cfg)
    except EvaluateError as err:
        raise SystemExit(f"python -m pav.evaluate: {err}") from None


if __name__ == "__main__":
    main()
