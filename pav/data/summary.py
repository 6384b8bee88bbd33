"""A readable summary of a collection: `python -m pav.data.summary ROOT`.

Exits 1 and prints every problem when the collection is invalid.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pav.data.collection import VERIFY_LEVELS, Appearance, Collection, CollectionError

_HEADER = ("appearance", "kind", "cameras", "poses", "frames", "train", "val", "test", "landmarks", "on disk")
_RIGHT = {"cameras", "frames", "train", "val", "test", "on disk"}


def disk_size(path: Path) -> int:
    """Bytes of all files under `path` (0 when it does not exist)."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def format_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    units = ("KiB", "MiB", "GiB", "TiB")
    size, i = n / 1024, 0
    while size >= 1024 and i < len(units) - 1:
        size, i = size / 1024, i + 1
    return f"{size:.1f} {units[i]}"


def _row(a: Appearance) -> tuple[str, ...]:
    landmarks = ", ".join(sorted(a.landmarks)) if a.landmarks else "-"
    return (a.name, a.kind, str(len(a.cameras)), "per-frame" if a.cameras.per_frame else "static",
            str(len(a.flame)), str(len(a.split.train)), str(len(a.split.val)), str(len(a.split.test)), landmarks,
            format_bytes(disk_size(a.root)))


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(w) if h in _RIGHT else c.ljust(w) for c, w, h in zip(cells, widths, header,
                                                                                strict=True)]
        return (indent + "  ".join(parts)).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def summarize(col: Collection) -> str:
    meta = col.meta
    H, W = meta.image_size
    lines = [
        f"collection   {col.root}",
        f"subject      {meta.subject}",
        f"head model   {meta.head_model}",
        f"parameters   n_shape={meta.n_shape}  n_expr={meta.n_expr}",
        f"image size   {H} x {W} (H x W)",
        f"appearances  {len(col)}",
        *format_table(_HEADER, [_row(a) for a in col]),
    ]
    pairs = col.cross_pairs
    cross_size = format_bytes(disk_size(col.root / "cross"))
    lines.append(f"cross pairs  {len(pairs)}" + (f"  ({cross_size} on disk)" if pairs else ""))
    for appearance, drive in pairs:
        n = len(col[drive].split.test) * len(col[drive].cameras)
        lines.append(f"  {appearance} driven by {drive}: {n} images")
    lines.append(f"total        {format_bytes(disk_size(col.root))} on disk")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pav.data.summary", description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="collection folder (holds collection.json)")
    parser.add_argument("--verify", choices=VERIFY_LEVELS, default="full",
                        help="image checks: full (PNG CRCs), header (size and mode), none (existence)")
    args = parser.parse_args(argv)
    try:
        col = Collection.open(args.root, verify_images=args.verify)
    except CollectionError as err:
        print(err, file=sys.stderr)
        return 1
    print(summarize(col))
    return 0


if __name__ == "__main__":
    sys.exit(main())
