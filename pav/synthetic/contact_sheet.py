"""A contact sheet PNG: one frame of each appearance, labelled, written into the collection root."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

SHEET_NAME = "contact_sheet.png"


def write_contact_sheet(root: Path, appearances: list[str], frames: list[int], cam: str = "00") -> Path:
    tiles = [Image.open(root / name / "frames" / cam / f"{frame:06d}.png").convert("RGB")
             for name, frame in zip(appearances, frames, strict=True)]
    w, h = tiles[0].size
    label = 16
    sheet = Image.new("RGB", (w * len(tiles), h + label), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (tile, name) in enumerate(zip(tiles, appearances, strict=True)):
        sheet.paste(tile, (i * w, label))
        draw.text((i * w + 3, 2), name, fill="black")
    path = root / SHEET_NAME
    sheet.save(path)
    return path
