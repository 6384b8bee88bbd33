"""Where pav keeps what it can rebuild: procedural head models, native extension builds."""

import os
from pathlib import Path


def cache_dir() -> Path:
    """`$PAV_CACHE_DIR`, else `~/.cache/pav`."""
    return Path(os.environ.get("PAV_CACHE_DIR", Path.home() / ".cache" / "pav"))
