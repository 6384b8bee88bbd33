"""Typed `key=value` command lines: a dataclass is the schema, a mistyped key fails at start."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from typing import TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

T = TypeVar("T")


class ConfigError(SystemExit):
    """A bad command line; exits with a message instead of a traceback."""


def parse_overrides(schema: type[T], argv: Sequence[str] | None = None, prog: str = "pav") -> T:
    """Build a `schema` instance from Hydra-style `key=value` arguments.

    Unknown keys, values of the wrong type and missing required values are refused with
    a message that lists the valid keys.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    fields = {f.name: f for f in dataclasses.fields(schema)}  # type: ignore[arg-type]
    usage = f"usage: {prog} " + " ".join(f"{name}=..." for name in fields)
    if any(a in ("-h", "--help") for a in argv):
        raise ConfigError(usage)
    bad = [a for a in argv if "=" not in a or a.startswith("=")]
    if bad:
        raise ConfigError(f"{prog}: arguments must be key=value, got {bad}\n{usage}")
    try:
        base = OmegaConf.structured(schema)
        merged = OmegaConf.merge(base, OmegaConf.from_dotlist(argv))
        missing = sorted(OmegaConf.missing_keys(merged))
        if missing:
            raise ConfigError(f"{prog}: missing required value(s): {', '.join(missing)}\n{usage}")
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as err:
        raise ConfigError(f"{prog}: {str(err).splitlines()[0]}\n{usage}") from None
