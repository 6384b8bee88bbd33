"""Contact sheet of one prepared appearance: evenly spaced crops, landmarks as dots, background tinted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHEET_DIR = "contact_sheets"
TILES = 12
COLUMNS = 4
TILE = 192  # px
LABEL = 14  # px above each tile
TINT = np.array([40, 90, 200], np.float32)  # background (alpha 0) is blended towards this blue


def sheet_indices(n: int, tiles: int = TILES) -> list[int]:
    """Positions (in the kept sequence of n frames) of the evenly spaced tiles."""
    if n <= tiles:
        return list(range(n))
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, tiles)})


def make_tile(rgb: np.ndarray, alpha: np.ndarray, points: np.ndarray | None,
              valid: np.ndarray | None = None) -> Image.Image:
    """rgb uint8 [S, S, 3], alpha uint8 [S, S], points [478, 2] crop px or None, valid bool [S, S] or None ->
    TILE x TILE image; unknown pixels (outside the source frame, torso) are drawn dark grey."""
    a = alpha.astype(np.float32)[..., None] / 255.0
    tinted = rgb.astype(np.float32) * (a + (1 - a) * 0.4) + (1 - a) * 0.6 * TINT
    if valid is not None:
        tinted = np.where(valid[..., None], tinted, 0.25 * tinted + 40.0)
    tile = Image.fromarray(np.clip(tinted, 0, 255).astype(np.uint8)).resize((TILE, TILE), Image.BILINEAR)
    if points is not None:
        draw = ImageDraw.Draw(tile)
        scale = TILE / rgb.shape[1]
        for x, y in (points + 0.5) * scale - 0.5:
            draw.point((float(x), float(y)), fill=(255, 255, 0))
    return tile


def write_sheet(out: Path, name: str, tiles: list[tuple[int, Image.Image]]) -> Path:
    """tiles [(frame id, tile)] -> OUT/contact_sheets/<name>.png, COLUMNS per row, labelled with ids."""
    cols = min(COLUMNS, len(tiles))
    rows = -(-len(tiles) // cols)
    sheet = Image.new("RGB", (cols * TILE, rows * (TILE + LABEL)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (frame_id, tile) in enumerate(tiles):
        x, y = (i % cols) * TILE, (i // cols) * (TILE + LABEL)
        draw.text((x + 3, y + 1), f"{name} {frame_id:06d}", fill="black")
        sheet.paste(tile, (x, y + LABEL))
    path = out / SHEET_DIR / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
